import BallotDomain
import Foundation
import BallotLedger
import BallotProtocol

/// Carries out one operation for one peer: writes go to the writer, reads to the ledger's
/// reader (any thread). Returns the `result` object of the reply or throws a `ProtocolError`.
struct OperationHandler: Sendable {
    let writer: GroupCommitWriter
    let reader: LedgerReader
    let hasher: VoterHasher
    let clock: any LedgerClock
    let metrics: DaemonMetrics
    let renderMetrics: @Sendable () -> [UInt8]
    static let protocolVersion = 1
    static let serverVersion = "0.1.0"

    func handle(_ operation: Op, request: Request, peer: Peer) async throws -> JSONValue {
        try Access.check(operation, op: request.op, for: peer)
        let key = try Fields(request).optionalString("idempotency_key") ?? ""
        switch operation {
        case .hello:
            return .object([
                ("protocol_version", .int(Self.protocolVersion)),
                ("server_version", .string(Self.serverVersion)),
                ("role", peer.role.map { .string($0.description) } ?? .null),
                ("uid", .int(Int64(peer.uid))),
                ("ops", .array(Op.names.map(JSONValue.string))),
            ])
        case .status:
            let head = writer.head
            return .object([
                ("ledger_size", .uint(head.size)),
                ("merkle_root", .string(head.root.hex)),
                ("elections", .int(writer.electionCount)),
            ])
        case .electionGet(let id):
            return try status(id).json
        case .tally(let id):
            try requireStandings(id, op: request.op)
            return try projection(id, .tally)
        case .ranking(let id):
            try requireStandings(id, op: request.op)
            return try projection(id, .ranking)
        case .metrics:
            return .object([("format", .string("prometheus-text-0.0.4")), ("text", .string(String(decoding: renderMetrics(), as: UTF8.self)))])
        case .checkpoint:
            let head = writer.head
            return .object([("ledger_size", .uint(head.size)), ("merkle_root", .string(head.root.hex)),
                            ("time", .string(clock.now().rfc3339)), ("signature", .null)])
        case .inclusionProof(let seq, let size):
            let n = size ?? writer.head.size
            do {
                let proof = try reader.inclusionProof(seq: seq, size: n)
                guard let leaf = try reader.leafHash(seq) else { throw ProtocolError(.badRequest, "proof: there is no event \(seq)") }
                return .object([("seq", .uint(seq)), ("size", .uint(n)), ("leaf_hash", .string(leaf.hex)),
                                ("root", .string(try reader.root(size: n).root.hex)), ("path", .array(proof.map { .string($0.hex) }))])
            } catch let error as LedgerError {
                throw ProtocolError(.badRequest, "proof: \(error)")
            }
        case .consistencyProof(let old, let new):
            let n = new ?? writer.head.size
            do {
                let proof = try reader.consistencyProof(oldSize: old, newSize: n)
                return .object([("old_size", .uint(old)), ("new_size", .uint(n)),
                                ("old_root", .string(try reader.root(size: old).root.hex)), ("new_root", .string(try reader.root(size: n).root.hex)),
                                ("path", .array(proof.map { .string($0.hex) }))])
            } catch let error as LedgerError {
                throw ProtocolError(.badRequest, "proof: \(error)")
            }
        case .backup(let directory):
            let manifest: BackupManifest
            do {
                manifest = try await Self.offThread { try reader.backup(to: directory) }
            } catch let error as LedgerError {
                throw ProtocolError(.badRequest, "backup: \(error)")
            }
            return .object([("directory", .string(manifest.directory)), ("ledger_size", .uint(manifest.size)),
                            ("merkle_root", .string(manifest.root.hex)), ("bytes", .int(manifest.bytes))])
        case .subscribe:
            preconditionFailure("subscribe is served by the connection, which streams")
        case .events(let from, let limit):
            return .object([("events", .array(try events(from: from, limit: limit)))])
        case .electionDefine(let spec):
            do {
                let commands = try spec.commands()
                var receipts: [JSONValue] = []
                for (i, command) in commands.enumerated() {
                    // Each command of the set-up gets its own key, derived from the request's.
                    let derived = key.isEmpty ? "" : "\(key)#\(i)"
                    receipts.append(try await write(command, peer: peer, key: derived))
                }
                return .object([("events", .array(receipts))])
            } catch let refusal as DomainError {
                throw ProtocolError(refusal.code, "election.define: \(refusal.message)")
            }
        case .electionOpen(let id): return try await write(.openVoting(election: id), peer: peer, key: key)
        case .electionClose(let id): return try await write(.closeVoting(election: id), peer: peer, key: key)
        case .nomineeAdd(let id, let n): return try await write(.addNominee(election: id, nomination: n), peer: peer, key: key)
        case .voteCast(let e, let n, let voter, let castAt, let channel):
            let command = Command.castVote(election: e, nominee: n, voter: hasher.key(for: voter), castAt: castAt, channel: channel)
            return try await write(command, peer: peer, key: key)
        case .voteInvalidate(let e, let vote, let reason):
            return try await write(.invalidateVote(election: e, vote: vote, reason: reason), peer: peer, key: key)
        case .jurorAdd(let e, let j, let name): return try await write(.addJuror(election: e, juror: j, name: name), peer: peer, key: key)
        case .juryScore(let e, let juror, let n, let c, let score):
            guard let j = juror ?? peer.juror else { throw ProtocolError(.badRequest, "jury.score: missing field 'juror'") }
            return try await write(.scoreJury(election: e, juror: j, nominee: n, criterion: c, score: score), peer: peer, key: key)
        case .juryClose(let e): return try await write(.closeJury(election: e), peer: peer, key: key)
        case .resultCertify(let e): return try await write(.certifyResult(election: e), peer: peer, key: key)
        }
    }

    /// Runs long blocking work (a backup copy) on a thread of its own rather than the
    /// cooperative pool.
    static func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    /// Events from `from`, at most `limit`, as JSON lines.
    func events(from: UInt64, limit: Int) throws -> [JSONValue] {
        var events: [JSONValue] = []
        try reader.forEachRecord(from: from) { record, bytes, _ in
            events.append(EventJSON.render(record, leafHash: MerkleHash.leaf(bytes)))
            return events.count < limit
        }
        return events
    }

    /// Appends one command; the reply carries the event's sequence number and leaf hash.
    private func write(_ command: Command, peer: Peer, key: String) async throws -> JSONValue {
        let outcome: Outcome
        do {
            outcome = try await writer.submit(Submission(command, by: peer.actor, idempotencyKey: key))
        } catch let error as LedgerError where error.isLedgerFull {
            throw ProtocolError(.ledgerFull, error.description)
        }
        switch outcome {
        case .appended(let r):
            return .object([("seq", .uint(r.seq)), ("leaf_hash", .string(r.leafHash.hex)), ("repeated", .bool(false))])
        case .repeated(let r):
            return .object([("seq", .uint(r.seq)), ("leaf_hash", .string(r.leafHash.hex)), ("repeated", .bool(true))])
        case .refused(let e):
            throw ProtocolError(e.code, e.message)
        }
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

    /// A stored projection, returned as it is stored (it is already canonical JSON).
    private func projection(_ id: ElectionID, _ kind: LedgerKeys.ProjectionKind) throws -> JSONValue {
        guard let bytes = try reader.projection(id, kind) else { throw ProtocolError(.unknownElection, "there is no election '\(id)'") }
        return .raw(bytes)
    }
}
