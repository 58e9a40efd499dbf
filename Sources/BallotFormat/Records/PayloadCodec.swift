public import BallotDomain
public import BallotCollections

/// The payload of each event type: its fields in a fixed order, using the primitives of
/// `ByteWriter` (str = u16 length + UTF-8, integers big-endian, f64 = IEEE 754 bits big-endian).
/// The table in docs/ledger-format.md lists the same fields in the same order.
package enum PayloadCodec {
    package static func encode(_ event: Event, into w: inout ByteWriter) {
        switch event {
        case .electionDefined(let d):
            w.slug(d.id)
            w.str(d.title)
            w.i64(d.opensAt.microseconds)
            w.i64(d.closesAt.microseconds)
            w.i32(d.scale.min)
            w.i32(d.scale.max)
            w.f64(d.eligibility.minDirect)
            w.f64(d.eligibility.minAfterOneYear)
            w.u16(UInt16(d.criteria.count))
            for c in d.criteria {
                w.slug(c.id)
                w.str(c.title)
                w.f64(c.weight)
            }
            w.f64(d.formula.publicWeight)
            w.f64(d.formula.juryWeight)
            w.bool(d.publicStandings)
            w.i64(d.seriesBucketSeconds)
            // Added with rules versions: a definition without them is version 1.
            w.u16(d.rules.rawValue)
            if d.rules >= .v2 { w.u16(d.phoneCountryCode) }
            // Added with witnesses, only when set: definitions before it end above.
            // Added with jurors' signatures, only when asked for: the witnesses byte (then
            // written false too), whether scores must be signed, the co-signing quorum.
            if d.jurySignatures != .none {
                w.bool(d.witnessesRequired)
                w.bool(d.jurySignatures.required)
                w.u16(UInt16(d.jurySignatures.quorum))
            } else if d.witnessesRequired {
                w.bool(true)
            }
        case .nomineeAdded(let e, let n):
            w.slug(e)
            w.slug(n.id)
            w.str(n.name)
            w.f64(n.goalAttainmentDirect)
            w.f64(n.goalAttainmentAfterOneYear)
        case .votingOpened(let e), .votingClosed(let e), .juryClosed(let e):
            w.slug(e)
        case .voteCast(let v):
            w.slug(v.election)
            w.slug(v.nominee)
            v.voter.withBytes { w.raw($0) }
            w.i64(v.castAt.microseconds)
            w.str(v.channel)
        case .voteInvalidated(let x):
            w.slug(x.election)
            w.u64(x.vote)
            w.slug(x.nominee)
            w.i64(x.castAt.microseconds)
            w.str(x.reason)
        case .jurorAdded(let e, let j, let name, let key):
            w.slug(e)
            w.slug(j)
            w.str(name)
            if let key {   // added with jurors' signatures, only when there is one
                w.str(key.name)
                key.publicKey.withBytes { w.raw($0) }
            }
        case .juryScored(let s):
            w.slug(s.election)
            w.slug(s.juror)
            w.slug(s.nominee)
            w.slug(s.criterion)
            w.i32(s.score)
            w.u64(s.supersedes ?? 0)
            if let signature = s.signature { signature.withUnsafeBytes { w.raw($0) } }   // only when signed
        case .resultCertified(let r):
            encodeResult(r.election, r.winner, r.ranking, into: &w)
            // Added with jurors' signatures, only when there is a justification or a co-signature.
            if !r.justification.isEmpty || !r.cosignatures.isEmpty {
                w.str(r.justification)
                w.u64(r.proposal)
                w.u16(UInt16(r.cosignatures.count))
                for c in r.cosignatures {
                    w.slug(c.juror)
                    c.bytes.withUnsafeBytes { w.raw($0) }
                }
            }
        case .resultProposed(let p):
            encodeResult(p.election, p.winner, p.ranking, into: &w)
            w.str(p.justification)
        case .resultCosigned(let c):
            w.slug(c.election)
            w.u64(c.proposal)
            w.slug(c.signature.juror)
            c.signature.bytes.withUnsafeBytes { w.raw($0) }
        case .importRecorded(let i):
            w.slug(i.election)
            w.str(i.file)
            w.u64(i.bytes)
            i.sha256.withBytes { w.raw($0) }
            w.u64(i.rows)
            w.u64(i.accepted)
            w.u64(i.alreadyPresent)
            w.u16(UInt16(i.refused.count))
            for r in i.refused {
                w.str(r.reason)
                w.u64(r.count)
            }
            w.u64(i.firstSeq)
            w.u64(i.lastSeq)
        case .checkpointSigned(let c):
            encodeSignedPart(c, into: &w)
            c.signature.withUnsafeBytes { w.raw($0) }
        }
    }

    /// A result's election, winner and ranking (a certification's and a proposal's).
    private static func encodeResult(_ election: ElectionID, _ winner: NomineeID, _ ranking: [NomineeID], into w: inout ByteWriter) {
        w.slug(election)
        w.slug(winner)
        w.u16(UInt16(ranking.count))
        for n in ranking { w.slug(n) }
    }

    private static func decodeResult(_ r: inout ByteReader) throws -> (ElectionID, NomineeID, [NomineeID]) {
        let e = try r.slug("election id")
        let winner = try r.slug("winner")
        let count = Int(try r.u16("ranking count"))
        var ranking: [NomineeID] = []
        for i in 0..<count { ranking.append(try r.slug("ranking entry \(i)")) }
        return (e, winner, ranking)
    }

    /// A juror's signature: 64 bytes.
    private static func signature(_ r: inout ByteReader, _ what: String) throws -> [UInt8] {
        Array(try r.bytes(64, what))
    }

    /// A checkpoint's payload up to and including the public key: what the signature of a
    /// type-12 checkpoint covers, after a context prefix (`Checkpoint.signedMessage`).
    package static func encodeSignedPart(_ c: Checkpoint, into w: inout ByteWriter) {
        w.u64(c.size)
        c.root.withBytes { w.raw($0) }
        w.i64(c.takenAt.microseconds)
        w.u8(c.reason.rawValue)
        w.u16(UInt16(c.elections.count))
        for e in c.elections {
            w.slug(e.election)
            e.tally.withBytes { w.raw($0) }
            e.jury.withBytes { w.raw($0) }
            e.ranking.withBytes { w.raw($0) }
        }
        if let origin = c.origin { w.str(origin) }   // a noted checkpoint's (type 13)
        c.publicKey.withBytes { w.raw($0) }
    }

    package static func decode(_ kind: EventKind, _ r: inout ByteReader) throws -> Event {
        switch kind {
        case .electionDefined:
            let id = try r.slug("election id")
            let title = try r.str("title")
            let opensAt = Timestamp(microseconds: try r.i64("opens_at"))
            let closesAt = Timestamp(microseconds: try r.i64("closes_at"))
            let scale = ScoreScale(min: try r.i32("scale min"), max: try r.i32("scale max"))
            let eligibility = Eligibility(minDirect: try r.f64("min goal attainment direct"),
                                          minAfterOneYear: try r.f64("min goal attainment after one year"))
            let count = Int(try r.u16("criteria count"))
            var criteria: [Criterion] = []
            for i in 0..<count {
                criteria.append(Criterion(id: try r.slug("criterion \(i) id"), title: try r.str("criterion \(i) title"),
                                          weight: try r.f64("criterion \(i) weight")))
            }
            let formula = Formula(publicWeight: try r.f64("public weight"), juryWeight: try r.f64("jury weight"))
            let publicStandings = try r.bool("public standings")
            let bucket = try r.i64("series bucket seconds")
            var rules = RulesVersion.v1
            var country: UInt16 = 47
            if r.remaining > 0 {
                let version = try r.u16("rules version")
                guard let known = RulesVersion(rawValue: version) else {
                    throw ByteReader.Failure(offset: r.offset, what: "rules version \(version) is not one this build knows (\(RulesVersion.allCases.map { "\($0.rawValue)" }.joined(separator: ", "))); a newer BallotLedger wrote it")
                }
                rules = known
                if rules >= .v2 { country = try r.u16("voter phone country code") }
            }
            var witnessesRequired = false
            var jury = JurySignaturePolicy.none
            if r.remaining > 0 {
                let offset = r.offset
                witnessesRequired = try r.bool("witnesses required")
                if r.remaining > 0 {
                    jury = JurySignaturePolicy(required: try r.bool("jury signatures required"), quorum: Int(try r.u16("jury quorum")))
                    guard jury != .none else { throw ByteReader.Failure(offset: r.offset, what: "the jury's signature policy is written only when it asks for something, and here it asks for nothing") }
                } else {
                    // Written only when true: a false here is not how this build writes it.
                    guard witnessesRequired else { throw ByteReader.Failure(offset: offset, what: "witnesses required is written only when true, and here it is false") }
                }
            }
            return .electionDefined(ElectionDefinition(
                id: id, title: title, opensAt: opensAt, closesAt: closesAt, scale: scale, eligibility: eligibility,
                criteria: criteria, formula: formula, publicStandings: publicStandings, seriesBucketSeconds: bucket,
                rules: rules, phoneCountryCode: country, witnessesRequired: witnessesRequired, jurySignatures: jury))
        case .nomineeAdded:
            let e = try r.slug("election id")
            return .nomineeAdded(election: e, nomination: Nomination(
                id: try r.slug("nominee id"), name: try r.str("nominee name"),
                goalAttainmentDirect: try r.f64("goal attainment direct"),
                goalAttainmentAfterOneYear: try r.f64("goal attainment after one year")))
        case .votingOpened:
            return .votingOpened(election: try r.slug("election id"))
        case .votingClosed:
            return .votingClosed(election: try r.slug("election id"))
        case .juryClosed:
            return .juryClosed(election: try r.slug("election id"))
        case .voteCast:
            let f = try VoteFields(&r)
            return .voteCast(VoteCast(election: try f.election.identifier(), nominee: try f.nominee.identifier(),
                                      voter: VoterKey(f.voter), castAt: f.castAt, channel: try f.channel.string()))
        case .voteInvalidated:
            let e = try r.slug("election id")
            let vote = try r.u64("invalidated vote")
            let n = try r.slug("nominee id")
            let castAt = Timestamp(microseconds: try r.i64("cast_at"))
            return .voteInvalidated(VoteInvalidation(election: e, vote: vote, nominee: n, castAt: castAt, reason: try r.str("reason")))
        case .jurorAdded:
            let (e, j, name) = (try r.slug("election id"), try r.slug("juror id"), try r.str("juror name"))
            var key: JurorKey?
            if r.remaining > 0 {
                let keyName = try r.str("juror key name")
                let publicKey = Digest32(try r.bytes(32, "juror public key"))
                key = VerifierKey(name: keyName, type: SignedNote.ed25519, publicKey: publicKey).jurorKey
            }
            return .jurorAdded(election: e, juror: j, name: name, key: key)
        case .juryScored:
            let e = try r.slug("election id")
            let j = try r.slug("juror id")
            let n = try r.slug("nominee id")
            let c = try r.slug("criterion id")
            let score = try r.i32("score")
            let supersedes = try r.u64("supersedes")
            let signature = r.remaining > 0 ? try Self.signature(&r, "juror's signature") : nil
            return .juryScored(JuryScore(election: e, juror: j, nominee: n, criterion: c, score: score,
                                         supersedes: supersedes == 0 ? nil : supersedes, signature: signature))
        case .resultCertified:
            let (e, winner, ranking) = try decodeResult(&r)
            var result = CertifiedResult(election: e, winner: winner, ranking: ranking)
            if r.remaining > 0 {
                result.justification = try r.str("justification")
                result.proposal = try r.u64("proposal co-signed")
                let count = Int(try r.u16("co-signature count"))
                for i in 0..<count {
                    result.cosignatures.append(JurorSignature(juror: try r.slug("co-signer \(i)"), bytes: try Self.signature(&r, "co-signature \(i)")))
                }
                guard !result.justification.isEmpty || !result.cosignatures.isEmpty else {
                    throw ByteReader.Failure(offset: r.offset, what: "an empty justification without co-signatures is not written")
                }
                guard (result.proposal == 0) == result.cosignatures.isEmpty else {
                    throw ByteReader.Failure(offset: r.offset, what: "a certification names the proposal it co-signs exactly when it has co-signatures")
                }
            }
            return .resultCertified(result)
        case .resultProposed:
            let (e, winner, ranking) = try decodeResult(&r)
            return .resultProposed(ResultProposal(election: e, winner: winner, ranking: ranking, justification: try r.str("justification")))
        case .resultCosigned:
            let e = try r.slug("election id")
            let proposal = try r.u64("proposal")
            let juror = try r.slug("juror id")
            return .resultCosigned(ResultCosignature(election: e, proposal: proposal,
                                                     signature: JurorSignature(juror: juror, bytes: try Self.signature(&r, "co-signature"))))
        case .importRecorded:
            let e = try r.slug("election id")
            let file = try r.str("file name")
            let bytes = try r.u64("file size")
            let sha256 = Digest32(try r.bytes(32, "file sha256"))
            let rows = try r.u64("rows")
            let accepted = try r.u64("accepted")
            let alreadyPresent = try r.u64("already present")
            let count = Int(try r.u16("refusal reason count"))
            var refused: [ImportRecord.ReasonCount] = []
            for i in 0..<count {
                refused.append(ImportRecord.ReasonCount(reason: try r.str("refusal reason \(i)"), count: try r.u64("refusal count \(i)")))
            }
            return .importRecorded(ImportRecord(file: file, election: e, bytes: bytes, sha256: sha256, rows: rows, accepted: accepted,
                                                alreadyPresent: alreadyPresent, refused: refused,
                                                firstSeq: try r.u64("first seq"), lastSeq: try r.u64("last seq")))
        case .checkpointSigned, .checkpointNoted:
            let size = try r.u64("checkpoint size")
            let root = Digest32(try r.bytes(32, "checkpoint root"))
            let takenAt = Timestamp(microseconds: try r.i64("checkpoint taken_at"))
            let at = r.offset
            let reasonByte = try r.u8("checkpoint reason")
            guard let reason = Checkpoint.Reason(rawValue: reasonByte) else {
                throw ByteReader.Failure(offset: at, what: "checkpoint reason is \(reasonByte), not 1…4")
            }
            let count = Int(try r.u16("checkpoint election count"))
            var elections: [Checkpoint.ElectionDigests] = []
            for i in 0..<count {
                elections.append(Checkpoint.ElectionDigests(
                    election: try r.slug("checkpoint election \(i)"), tally: Digest32(try r.bytes(32, "checkpoint election \(i) tally digest")),
                    jury: Digest32(try r.bytes(32, "checkpoint election \(i) jury digest")),
                    ranking: Digest32(try r.bytes(32, "checkpoint election \(i) ranking digest"))))
            }
            let origin = kind == .checkpointNoted ? try r.str("checkpoint origin") : nil
            let publicKey = Digest32(try r.bytes(32, "checkpoint public key"))
            let signature = Array(try r.bytes(Checkpoint.signatureBytes, "checkpoint signature"))
            return .checkpointSigned(Checkpoint(size: size, root: root, takenAt: takenAt, reason: reason, elections: elections,
                                                origin: origin, publicKey: publicKey, signature: signature))
        }
    }
}

/// The fields of a `vote.cast` payload in their order, the texts read but not yet checked: the
/// one reader of its layout, for `PayloadCodec.decode` and for the audit's vote decoding
/// (`CodedVote`), which checks each distinct text once.
package struct VoteFields {
    package let election: ByteReader.Text
    package let nominee: ByteReader.Text
    package let voter: UnsafeRawBufferPointer
    package let castAt: Timestamp
    package let channel: ByteReader.Text

    package init(_ r: inout ByteReader) throws(ByteReader.Failure) {
        election = try r.text("election id")
        nominee = try r.text("nominee id")
        voter = try r.bytes(32, "voter key")
        castAt = Timestamp(microseconds: try r.i64("cast_at"))
        channel = try r.text("channel")
    }
}
