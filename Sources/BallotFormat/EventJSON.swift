import FoundationEssentials
public import BallotDomain
public import BallotCollections

/// An event as JSON, for clients and tools: `{"seq", "type", "timestamp", "actor", "idempotency_key", "leaf_hash", "data": {…}}`.
public enum EventJSON {
    /// With `sealing` true for the event's election, a vote's (or an invalidated vote's)
    /// nominee is withheld (`null`, and `"sealed": true`): per-nominee numbers stay hidden while
    /// the vote is open, and counting vote events would reveal them. So are its leaf hash, a
    /// vote's voter key and an invalidation's reason: with every other field of the record
    /// known, hashing each nominee in turn against the leaf (here, or in the published hash
    /// tiles) would find the one withheld.
    public static func render(_ record: RecordedEvent, leafHash: MerkleHash, sealing: (ElectionID) -> Bool = { _ in false }) -> JSONValue {
        var payload = data(record.event)
        if case .object(var members) = payload, let election = record.event.election, sealing(election), [.voteCast, .voteInvalidated].contains(record.event.kind) {
            members = members.map { ["nominee", "voter_key", "reason"].contains($0.0) ? ($0.0, .null) : $0 }
            members.append(("sealed", .bool(true)))
            return render(record, leafHash: nil, data: .object(members))
        }
        return render(record, leafHash: leafHash, data: payload)
    }

    package static func render(_ record: RecordedEvent, leafHash: MerkleHash?, data: JSONValue) -> JSONValue {
        .object([
            ("seq", .uint(record.seq)),
            ("type", .string(record.event.kind.description)),
            ("timestamp", .string(record.timestamp.rfc3339)),
            ("actor", .object([("role", .string(record.actor.role.description)), ("uid", .int(Int64(record.actor.uid)))])),
            ("idempotency_key", record.idempotencyKey.isEmpty ? .null : .string(record.idempotencyKey)),
            ("leaf_hash", leafHash.map { .string($0.hex) } ?? .null),
            ("data", data),
        ])
    }

    package static func data(_ event: Event) -> JSONValue {
        func s(_ slug: Slug) -> JSONValue { .string(slug.value) }
        switch event {
        case .electionDefined(let d):
            return .object([
                ("election", s(d.id)), ("title", .string(d.title)),
                ("opens_at", .string(d.opensAt.rfc3339)), ("closes_at", .string(d.closesAt.rfc3339)),
                ("score_scale", .object([("min", .int(Int64(d.scale.min))), ("max", .int(Int64(d.scale.max)))])),
                ("min_goal_attainment_direct", .double(d.eligibility.minDirect)),
                ("min_goal_attainment_after_one_year", .double(d.eligibility.minAfterOneYear)),
                ("criteria", .array(d.criteria.map { .object([("id", s($0.id)), ("title", .string($0.title)), ("weight", .double($0.weight))]) })),
                ("public_weight", .double(d.formula.publicWeight)), ("jury_weight", .double(d.formula.juryWeight)),
                ("public_standings", .bool(d.publicStandings)), ("series_bucket_seconds", .int(d.seriesBucketSeconds)),
            ] + (d.witnessesRequired ? [("witnesses_required", .bool(true))] : [])
              + (d.jurySignatures != .none ? [("jury_signatures", .string(d.jurySignatures.required ? "required" : "optional")),
                                              ("jury_quorum", .int(d.jurySignatures.quorum))] : []))
        case .nomineeAdded(let e, let n):
            return .object([("election", s(e)), ("nominee", s(n.id)), ("name", .string(n.name)),
                            ("goal_attainment_direct", .double(n.goalAttainmentDirect)),
                            ("goal_attainment_after_one_year", .double(n.goalAttainmentAfterOneYear))])
        case .votingOpened(let e), .votingClosed(let e), .juryClosed(let e):
            return .object([("election", s(e))])
        case .voteCast(let v):
            return .object([("election", s(v.election)), ("nominee", s(v.nominee)), ("voter_key", .string(v.voter.hex)),
                            ("cast_at", .string(v.castAt.rfc3339)), ("channel", .string(v.channel))])
        case .voteInvalidated(let x):
            return .object([("election", s(x.election)), ("vote", .uint(x.vote)), ("nominee", s(x.nominee)),
                            ("cast_at", .string(x.castAt.rfc3339)), ("reason", .string(x.reason))])
        case .jurorAdded(let e, let j, let name, let key):
            return .object([("election", s(e)), ("juror", s(j)), ("name", .string(name))] + (key.map { [("key", .string($0.vkey))] } ?? []))
        case .juryScored(let x):
            return .object([("election", s(x.election)), ("juror", s(x.juror)), ("nominee", s(x.nominee)),
                            ("criterion", s(x.criterion)), ("score", .int(Int64(x.score))),
                            ("supersedes", x.supersedes.map { .uint($0) } ?? .null)]
                           + (x.signature.map { [("signature", .string(base64($0)))] } ?? []))
        case .resultCertified(let r):
            return .object([("election", s(r.election)), ("winner", s(r.winner)), ("ranking", .array(r.ranking.map(s)))]
                           + (r.justification.isEmpty ? [] : [("justification", .string(r.justification))])
                           + (r.cosignatures.isEmpty ? [] : [("proposal", .uint(r.proposal)), ("cosignatures", .array(r.cosignatures.map(cosignature)))]))
        case .resultProposed(let p):
            return .object([("election", s(p.election)), ("winner", s(p.winner)), ("ranking", .array(p.ranking.map(s))),
                            ("justification", .string(p.justification))])
        case .resultCosigned(let c):
            return .object([("election", s(c.election)), ("proposal", .uint(c.proposal))] + cosignatureFields(c.signature))
        case .importRecorded(let i):
            return .object([("election", s(i.election)), ("file", .string(i.file)), ("bytes", .uint(i.bytes)),
                            ("sha256", .string(i.sha256.hex)), ("rows", .uint(i.rows)), ("accepted", .uint(i.accepted)),
                            ("already_present", .uint(i.alreadyPresent)),
                            ("refused", .object(i.refused.map { ($0.reason, .uint($0.count)) })),
                            ("first_seq", .uint(i.firstSeq)), ("last_seq", .uint(i.lastSeq))])
        case .checkpointSigned(let c):
            return checkpoint(c)
        }
    }

    private static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    private static func cosignatureFields(_ c: JurorSignature) -> [(String, JSONValue)] {
        [("juror", .string(c.juror.value)), ("signature", .string(base64(c.bytes)))]
    }

    private static func cosignature(_ c: JurorSignature) -> JSONValue { .object(cosignatureFields(c)) }

    /// A checkpoint as JSON: what the `checkpoint` op returns and checkpoint events carry.
    public static func checkpoint(_ c: Checkpoint) -> JSONValue {
        .object([
            ("size", .uint(c.size)), ("root", .string(c.root.hex)), ("taken_at", .string(c.takenAt.rfc3339)),
            ("reason", .string(c.reason.description)),
            ("elections", .array(c.elections.map { e in
                .object([("election", .string(e.election.value)), ("tally_sha256", .string(e.tally.hex)),
                         ("jury_sha256", .string(e.jury.hex)), ("ranking_sha256", .string(e.ranking.hex))])
            })),
            ("origin", c.origin.map(JSONValue.string) ?? .null),
            ("public_key", .string(c.publicKey.hex)),
            ("signature", .string(c.signature.withUnsafeBytes { hexString($0) })),
            // The checkpoint as a C2SP signed note (c2sp.org/tlog-checkpoint), for the tools of
            // that world; null for a checkpoint from before the notes.
            ("note", c.note.map { .string($0.serialized) } ?? .null),
        ])
    }
}
