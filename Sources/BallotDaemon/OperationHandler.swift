import BallotDomain
import Foundation
import BallotLedger
import BallotFormat
import BallotAudit
import BallotProtocol
import BallotImport

/// How a request is carried out.
enum Plan: Sendable {
    /// Answered at once, from memory.
    case reply(JSONValue)
    /// Reads the ledger: run off the event loop, on the read pool.
    case read(@Sendable () throws -> JSONValue)
    /// Appends through the writer; `combine` turns the outcomes into the reply's result.
    case write([Submission], combine: @Sendable ([Outcome]) throws -> JSONValue)
    /// Appends through the writer, then reads the ledger (on the read pool) for the reply.
    case writeThenRead([Submission], then: @Sendable ([Outcome]) throws -> JSONValue)
    /// Appends through the writer, then waits, in a task, for what the reply needs: a
    /// certification that requires witnesses waits for a witnessed checkpoint covering it.
    case writeThenAwait([Submission], then: @Sendable ([Outcome]) async throws -> JSONValue)
    /// Waits, in a task, for what the reply needs, then reads the ledger (on the read pool)
    /// with the closure the wait gave.
    case awaitThenRead(@Sendable () async throws -> @Sendable () throws -> JSONValue)
    /// Streams events (see `ConnectionHandler`).
    case subscribe(from: UInt64)
    /// Streams the records as stored, to a follower, once the reply is read (the root of the
    /// events before the stream; see `ConnectionHandler`).
    case replicate(start: @Sendable () throws -> ReplicationStart)
    /// Receives a vote file (see `ImportSession`).
    case importFile(ImportRequest)
}

/// Decides how to carry out one operation for one peer. Nothing here blocks: ledger reads are
/// handed back as `.read` closures to run on the read pool, writes as submissions for the
/// writer. Refusals are thrown as `ProtocolError`s.
struct OperationHandler: Sendable {
    let writer: GroupCommitWriter
    let reader: LedgerReader
    let hasher: VoterHasher
    let clock: any LedgerClock
    let metrics: DaemonMetrics
    let verification: LedgerVerification
    let renderMetrics: @Sendable () -> [UInt8]
    /// Asks the witnesses to cosign checkpoints; nil when the daemon has no witness policy.
    var witnesses: WitnessCosigner? = nil
    /// How long a certification that requires witnesses waits for them.
    var certificationTimeout: Duration = .seconds(30)
    /// On a follower, where it stands; it refuses every write as `read_only`.
    var following: FollowerStatus? = nil
    static let protocolVersion: Int64 = 1
    static let serverVersion = "0.1.0"

    func plan(_ operation: Op, request: Request, peer: Peer) throws(ProtocolError) -> Plan {
        try Access.check(operation, for: peer)
        if let following, operation.isWrite {
            throw ProtocolError(.readOnly, "\(request.op): this daemon is a follower of \(following.primary) and serves reads only; send writes to the primary")
        }
        let key = try Fields(request).optionalString("idempotency_key") ?? ""
        let reader = self.reader
        switch operation {
        case .hello:
            return .reply(HelloResult(protocolVersion: Self.protocolVersion, serverVersion: Self.serverVersion, role: peer.role?.description,
                                      uid: peer.hasUID ? peer.uid : nil, certificateSHA256: peer.certificate,
                                      ops: OpName.allCases.map(\.rawValue), checkpointPublicKey: writer.checkpointPublicKey?.hex).json)
        case .status:
            let head = writer.head
            return .reply(StatusResult(ledgerID: writer.ledgerID, ledgerSize: head.size, merkleRoot: head.root, elections: Int64(writer.electionCount),
                                       verification: verification.report, witnessing: witnesses?.json ?? .null,
                                       follower: following?.report(size: head.size, checkpointSize: writer.latestCheckpoint?.checkpoint.size)).json)
        case .electionGet(let id):
            return .reply(try status(id).json)
        case .tally(let id):
            try requireStandings(id, op: request.op)
            return .reply(.raw(try published(id).tally))
        case .ranking(let id):
            try requireStandings(id, op: request.op)
            return .reply(.raw(try published(id).ranking))
        case .importFile(let request):
            if let election = request.election, writer.status(election) == nil {
                throw ProtocolError(.unknownElection, "import: there is no election '\(election)'")
            }
            return .importFile(request)
        case .metrics:
            let text = String(decoding: renderMetrics(), as: UTF8.self)
            return .reply(MetricsResult(text: text).json)
        case .checkpoint(latest: true):
            let head = writer.head
            let latest = writer.latestCheckpoint
            return .reply(LatestCheckpoint(seq: latest?.seq, checkpoint: latest.map { EventJSON.checkpoint($0.checkpoint) },
                                           ledgerSize: head.size, merkleRoot: head.root).json)
        case .checkpoint(latest: false):
            return .writeThenRead([Submission(.takeCheckpoint(.request), by: peer.actor)]) { outcomes in
                if case .refused(let refusal) = outcomes[0] { throw refusal }
                guard let receipt = outcomes[0].receipt else { throw ProtocolError(.internal, "checkpoint: no receipt") }
                return CheckpointTaken(seq: receipt.seq, leafHash: receipt.leafHash, checkpoint: EventJSON.checkpoint(try reader.checkpoint(at: receipt.seq))).json
            }
        case .inclusionProof(let seq, let size, let checkpointSeq):
            let head = writer.head.size
            return .read {
                do {
                    let checkpoint = try checkpointSeq.map { try reader.checkpoint(at: $0) }
                    let n = checkpoint?.size ?? size ?? head
                    let proof = try reader.inclusionProof(seq: seq, size: n)
                    guard let leaf = try reader.leafHash(seq) else { throw ProtocolError(.badRequest, "proof: there is no event \(seq)") }
                    return InclusionProofResult(seq: seq, size: n, leafHash: leaf, root: try reader.root(size: n).root, path: proof,
                                                checkpointSeq: checkpoint == nil ? nil : checkpointSeq, checkpoint: checkpoint.map(EventJSON.checkpoint)).json
                } catch let error as LedgerError {
                    throw ProtocolError(.badRequest, "proof: \(error)")
                }
            }
        case .consistencyProof(let old, let new):
            let n = new ?? writer.head.size
            return .read {
                do {
                    let proof = try reader.consistencyProof(oldSize: old, newSize: n)
                    return ConsistencyProofResult(oldSize: old, newSize: n, oldRoot: try reader.root(size: old).root,
                                                  newRoot: try reader.root(size: n).root, path: proof).json
                } catch let error as LedgerError {
                    throw ProtocolError(.badRequest, "proof: \(error)")
                }
            }
        case .backup(let directory):
            return .read {
                do {
                    let manifest = try reader.backup(to: directory)
                    return BackupResult(directory: manifest.directory, ledgerSize: manifest.size, merkleRoot: manifest.root, bytes: Int64(manifest.bytes)).json
                } catch let error as LedgerError {
                    throw ProtocolError(.badRequest, "backup: \(error)")
                }
            }
        case .subscribe(let from):
            let size = writer.head.size
            guard from <= size + 1 else {
                throw ProtocolError(.badRequest, "subscribe: 'from' is \(from) but the ledger holds \(size) events; start at \(size + 1) at most")
            }
            return .subscribe(from: from)
        case .replicate(let from):
            let head = writer.head
            // A follower that holds more than this ledger has events this ledger does not (it
            // was restored from an older copy, or is another history): `conflict`, which stops it.
            guard from <= head.size + 1 else {
                throw ProtocolError(.conflict, "replicate: 'from' is \(from), so the follower holds \(from - 1) events, and this ledger holds \(head.size): the follower has events this ledger does not")
            }
            let id = writer.ledgerIDBytes
            return .replicate {
                do {
                    return ReplicationStart(from: from, ledgerID: id, ledgerSize: head.size, rootBefore: try reader.root(size: from - 1).root)
                } catch let error as LedgerError {
                    throw ProtocolError(.internal, "replicate: the root of events 1…\(from - 1) cannot be read: \(error)")
                }
            }
        case .events(let from, let limit):
            let sealed = writer.sealedElections(at: clock.now())
            return .read { EventsResult(events: try Self.events(reader, from: from, limit: limit, sealed: sealed)).json }
        case .electionDefine(let spec):
            let commands: [Command]
            do {
                commands = try spec.commands()
            } catch {
                throw ProtocolError(error.code, "election.define: \(error.message)")
            }
            // Each event of the set-up gets its own key, derived from the request's.
            let submissions = commands.enumerated().map { i, command in
                Submission(command, by: peer.actor, idempotencyKey: key.isEmpty ? "" : "\(key)#\(i)")
            }
            return .write(submissions) { outcomes in DefineResult(events: try outcomes.map(Self.receipt)).json }
        case .electionOpen(let id): return single(.openVoting(election: id), peer, key)
        case .electionClose(let id): return single(.closeVoting(election: id), peer, key)
        case .nomineeAdd(let id, let n): return single(.addNominee(election: id, nomination: n), peer, key)
        case .voteCast(let e, let n, let voter, let castAt, let channel):
            let voterKey = VoterIdentity(hasher: hasher).key(for: voter, in: writer.status(e)?.definition)
            return single(.castVote(election: e, nominee: n, voter: voterKey, castAt: castAt, channel: channel), peer, key)
        case .voteInvalidate(let e, let vote, let reason): return single(.invalidateVote(election: e, vote: vote, reason: reason), peer, key)
        case .jurorAdd(let e, let j, let name, let vkey):
            var jurorKey: JurorKey?
            if let vkey {
                let parsed: VerifierKey
                do {
                    parsed = try VerifierKey(parsing: vkey)
                } catch {
                    throw ProtocolError(.badRequest, "juror.add: field 'key': \(error)")
                }
                guard parsed.type == SignedNote.ed25519 else {
                    throw ProtocolError(.badRequest, "juror.add: field 'key' is a witness's cosignature key (type 0x04); a juror signs with an Ed25519 key (type 0x01, from ballotctl jury keygen)")
                }
                jurorKey = parsed.jurorKey
            }
            return single(.addJuror(election: e, juror: j, name: name, key: jurorKey), peer, key)
        case .juryScore(let e, let juror, let n, let c, let score, let signed):
            guard let j = juror ?? peer.juror else { throw ProtocolError(.badRequest, "jury.score: missing field 'juror'") }
            return single(.scoreJury(election: e, juror: j, nominee: n, criterion: c, score: score, signed: signed), peer, key)
        case .juryClose(let e): return single(.closeJury(election: e), peer, key)
        case .jury(let e):
            _ = try status(e)
            return .read {
                guard let table = try reader.projection(e, .jury) else { throw ProtocolError(.unknownElection, "jury: there is no election '\(e)'") }
                return .raw(table)
            }
        case .resultSign(let e, let juror, let signature):
            guard let j = juror ?? peer.juror else { throw ProtocolError(.badRequest, "result.sign: missing field 'juror'") }
            let command = Command.signResult(election: e, juror: j, signature: signature)
            guard try status(e).definition.witnessesRequired else { return single(command, peer, key) }
            return try witnessedCertification(command, e, peer, key)
        case .receipt(let seq, let wait):
            return receipt(seq, wait: .seconds(wait), for: peer)
        case .resultCertify(let e, let justification):
            let definition = try status(e).definition
            let command = Command.certifyResult(election: e, justification: justification)
            // With a jury quorum this only puts the result to the jury: the co-signature that
            // completes it (result.sign) is what witnesses must see.
            guard definition.witnessesRequired && definition.jurySignatures.quorum == 0 else { return single(command, peer, key) }
            return try witnessedCertification(command, e, peer, key)
        }
    }

    /// A tlog-proof of event `seq` against the newest witnessed checkpoint covering it (with a
    /// witness policy) or the newest signed one, waiting up to `wait` for one. The record names
    /// a vote's nominee: while its election is sealed, only the one who cast it gets it.
    private func receipt(_ seq: UInt64, wait: Duration, for peer: Peer) -> Plan {
        let (writer, reader, witnesses, clock, metrics) = (self.writer, self.reader, self.witnesses, self.clock, self.metrics)
        return .awaitThenRead {
            guard seq >= 1, seq <= writer.head.size else { throw ProtocolError(.badRequest, "receipt: there is no event \(seq); the ledger holds \(writer.head.size)") }
            let note: SignedNote
            if let witnesses {
                guard let witnessed = await witnesses.waitUntilWitnessed(size: seq, timeout: wait) else {
                    throw ProtocolError(.notWitnessed, "receipt: no checkpoint covering event \(seq) has been witnessed\(wait > .zero ? " within \(wait.components.seconds) s" : ""); ask again later, or with 'wait'")
                }
                note = witnessed.note
            } else {
                let deadline = ContinuousClock.now + wait
                while (writer.latestCheckpoint?.checkpoint.size ?? 0) < seq && ContinuousClock.now < deadline && !writer.commits.isClosed {
                    try await Task.sleep(for: .milliseconds(100))
                }
                guard let latest = writer.latestCheckpoint, latest.checkpoint.size >= seq else {
                    throw ProtocolError(.notCovered, "receipt: no checkpoint covers event \(seq) yet; one is taken every checkpoint_interval, or ask for one (checkpoint)")
                }
                guard let signed = latest.checkpoint.note else {
                    throw ProtocolError(.notCovered, "receipt: the newest checkpoint is in the ledger's own form (type 12), not a note")
                }
                note = signed
            }
            let sealed = writer.sealedElections(at: clock.now())
            return {
                let size = try CheckpointNote(text: note.text).size
                guard let record = try reader.rawRecord(seq), let event = try reader.record(seq) else {
                    throw ProtocolError(.badRequest, "receipt: there is no event \(seq)")
                }
                if let election = event.event.election, sealed.contains(election), event.actor.uid != peer.uid,
                   [.voteCast, .voteInvalidated].contains(event.event.kind) {
                    metrics.sealedPeeks.increment()
                    throw ProtocolError(.sealed, "receipt: event \(seq) is a vote of '\(election)', whose standings are sealed until voting closes; only uid \(event.actor.uid), who recorded it, gets its receipt now")
                }
                let proof = TlogProof(record: record, index: seq - 1, proof: try reader.inclusionProof(seq: seq, size: size), checkpoint: note)
                return ReceiptResult(seq: seq, checkpointSize: size, tlogProof: proof.serialized).json
            }
        }
    }

    /// `result.certify` of an election that requires witnesses: the certification, and in the
    /// same commit its checkpoint, are appended; the reply waits until a checkpoint covering it
    /// is witnessed, or fails with `not_witnessed` after `witnessTimeout`.
    /// (With a jury quorum, the same for the `result.sign` that certifies; one short of the
    /// quorum is answered at once.)
    private func witnessedCertification(_ command: Command, _ e: ElectionID, _ peer: Peer, _ key: String) throws(ProtocolError) -> Plan {
        guard let witnesses else {
            throw ProtocolError(.noWitnesses, "\(command.name): election '\(e)' requires witnessed checkpoints, and this daemon has no witness_policy; nothing was written")
        }
        guard witnesses.policy.quorum != .none else {
            throw ProtocolError(.noWitnesses, "\(command.name): election '\(e)' requires witnessed checkpoints, and this daemon's witness_policy says 'quorum none'; nothing was written")
        }
        let timeout = certificationTimeout
        let writer = self.writer
        let metrics = self.metrics
        return .writeThenAwait([Submission(command, by: peer.actor, idempotencyKey: key)]) { outcomes in
            var receipt = try Self.receipt(outcomes[0])
            let seq = receipt.seq
            // A co-signature short of the jury's quorum certifies nothing: nothing to witness yet.
            if case .signResult = command, writer.status(e)?.certified == nil { return receipt.json }
            guard let witnessed = await witnesses.waitUntilWitnessed(size: seq, timeout: timeout) else {
                metrics.refused(ErrorCode.notWitnessed.rawValue)
                if witnesses.isStopped {
                    throw ProtocolError(.notWitnessed, "result.certify: the certification of '\(e)' is in the ledger at event \(seq); the daemon is shutting down, and no checkpoint covering it was witnessed yet")
                }
                let answers = witnesses.answers.map { "\($0.name): \($0.answer)" }.joined(separator: "; ")
                throw ProtocolError(.notWitnessed, "result.certify: the certification of '\(e)' is in the ledger at event \(seq), but no checkpoint covering it was cosigned by the witness quorum (\(witnesses.policy.quorumDescription)) within \(timeout.components.seconds) s; \(answers)")
            }
            receipt.witnessedCheckpointSeq = witnessed.seq
            receipt.witnessedNote = witnessed.note.serialized
            return receipt.json
        }
    }

    private func single(_ command: Command, _ peer: Peer, _ key: String) -> Plan {
        .write([Submission(command, by: peer.actor, idempotencyKey: key)]) { outcomes in try Self.receipt(outcomes[0]).json }
    }

    /// The result of a write: the event's sequence number and leaf hash, or its refusal.
    static func receipt(_ outcome: Outcome) throws -> WriteReceipt {
        switch outcome {
        case .appended(let r): WriteReceipt(seq: r.seq, leafHash: r.leafHash, repeated: false)
        case .repeated(let r): WriteReceipt(seq: r.seq, leafHash: r.leafHash, repeated: true)
        case .refused(let refusal): throw refusal
        }
    }

    /// Events from `from`, at most `limit`, as JSON; votes of `sealed` elections without their nominee.
    static func events(_ reader: LedgerReader, from: UInt64, limit: Int, sealed: Set<ElectionID>) throws -> [JSONValue] {
        var events: [JSONValue] = []
        try reader.forEachRecord(from: from) { record, bytes, _ in
            events.append(EventJSON.render(record, leafHash: MerkleHash.leaf(bytes), sealing: sealed.contains))
            return events.count < limit
        }
        return events
    }

    private func status(_ id: ElectionID) throws(ProtocolError) -> ElectionStatus {
        guard let status = writer.status(id) else { throw ProtocolError(.unknownElection, "there is no election '\(id)'") }
        return status
    }

    /// Per-nominee numbers stay hidden while the vote is open, unless the election says otherwise.
    private func requireStandings(_ id: ElectionID, op: String) throws(ProtocolError) {
        let s = try status(id)
        guard s.standingsArePublic(at: clock.now()) else {
            metrics.sealedPeeks.increment()
            throw ProtocolError(.sealed, "\(op): standings of '\(id)' are sealed until voting closes at \(s.effectiveClosesAt); turnout so far: \(s.votesCast) votes (see election.get)")
        }
    }

    /// The tally and ranking as stored by the last commit (already canonical JSON), which the
    /// writer publishes so that reading them needs no LMDB call on the event loop.
    private func published(_ id: ElectionID) throws(ProtocolError) -> (tally: [UInt8], ranking: [UInt8]) {
        guard let documents = writer.standings(id) else { throw ProtocolError(.unknownElection, "there is no election '\(id)'") }
        return documents
    }
}
