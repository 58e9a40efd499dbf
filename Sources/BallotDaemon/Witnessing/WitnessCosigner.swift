import Foundation
import Logging
import Metrics
import NIOCore
import Synchronization
import BallotDomain
import BallotFormat

/// Asks the policy's witnesses to cosign each new checkpoint, and knows the latest checkpoint
/// whose cosignatures meet the policy's quorum: the witnessed checkpoint. It runs beside the
/// writer and never holds it up: the writer only hands it the newest checkpoint (one that
/// arrives while a round is under way replaces any other waiting), so a witness that is down
/// or slow costs cosignatures, never votes.
///
/// Each witness is a `WitnessSession`; a round asks them all at once, each bounded by the
/// timeout. `result.certify` of an election that requires witnesses waits here
/// (`waitUntilWitnessed`); while someone waits and the quorum is not met, the witnesses that
/// failed are asked again every second.
final class WitnessCosigner: Sendable {
    struct Witnessed: Sendable {
        var seq: UInt64
        var size: UInt64
        /// The checkpoint note with the log's signature and the cosignatures that met the quorum.
        var note: SignedNote
    }

    let policy: WitnessPolicy
    private let reader: LedgerReader
    private let timeout: TimeAmount
    private let loops: any EventLoopGroup
    private let logger: Logger
    /// Where the latest witnessed note is kept (replaced whole), for auditors and restarts.
    let notePath: String

    private struct Shared {
        var sessions: [WitnessSession]
        var next: (seq: UInt64, checkpoint: Checkpoint)?
        /// The last checkpoint asked about, asked again for a waiter if it was not witnessed.
        var latest: (seq: UInt64, checkpoint: Checkpoint)?
        var witnessed: Witnessed?
        var waiters: [(id: UInt64, size: UInt64, continuation: CheckedContinuation<Witnessed?, Never>)] = []
        var nextWaiter: UInt64 = 0
        var stopped = false
    }
    private let shared: Mutex<Shared>
    /// Rung when there is a checkpoint to ask about, or someone began to wait.
    private let doorbell: AsyncStream<Void>
    private let ring: AsyncStream<Void>.Continuation

    init(policy: WitnessPolicy, reader: LedgerReader, timeoutSeconds: Int, loops: any EventLoopGroup,
         notePath: String, logger: Logger) {
        self.policy = policy
        self.reader = reader
        self.timeout = .seconds(Int64(timeoutSeconds))
        self.loops = loops
        self.notePath = notePath
        self.logger = logger
        shared = Mutex(Shared(sessions: policy.witnesses.filter { $0.url != nil }.map(WitnessSession.init)))
        (doorbell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        for w in policy.witnesses {
            for outcome in ["cosigned", "failed", "conflict"] {
                Counter(label: "ballotd_witness_requests_total", dimensions: [("witness", w.name), ("outcome", outcome)]).increment(by: 0)
            }
        }
    }

    /// Called by the writer after each commit that recorded a checkpoint: never blocks.
    func checkpointRecorded(seq: UInt64, checkpoint: Checkpoint) {
        shared.withLock { $0.next = (seq, checkpoint) }
        ring.yield()
    }

    /// Asks about checkpoints until `stop`.
    func run() async {
        for await _ in doorbell {
            guard let (seq, checkpoint) = shared.withLock({ s -> (UInt64, Checkpoint)? in
                if s.stopped { return nil }
                if let next = s.next {
                    s.next = nil
                    s.latest = next
                    return next
                }
                // Someone began to wait for the last one, which was not witnessed: ask again.
                guard let latest = s.latest, (s.witnessed?.size ?? 0) < latest.checkpoint.size,
                      s.waiters.contains(where: { $0.size <= latest.checkpoint.size }) else { return nil }
                return latest
            }) else {
                if shared.withLock({ $0.stopped }) { break }
                continue
            }
            await witness(seq: seq, checkpoint)
        }
    }

    /// Ends `run` and answers every waiter with nil.
    func stop() {
        let waiters = shared.withLock { s in
            s.stopped = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.continuation.resume(returning: nil) }
        ring.finish()
    }

    /// The latest witnessed checkpoint.
    var witnessed: Witnessed? { shared.withLock { $0.witnessed } }

    /// Waits until a checkpoint of at least `size` events is witnessed, at most `timeout`;
    /// nil when none is by then.
    func waitUntilWitnessed(size: UInt64, timeout: Duration) async -> Witnessed? {
        return await withCheckedContinuation { (continuation: CheckedContinuation<Witnessed?, Never>) in
            let (done, id): (Witnessed?, UInt64?) = shared.withLock { s in
                if let w = s.witnessed, w.size >= size { return (w, nil) }
                if s.stopped { return (nil, nil) }
                s.nextWaiter += 1
                s.waiters.append((s.nextWaiter, size, continuation))
                return (nil, s.nextWaiter)
            }
            guard let id else { return continuation.resume(returning: done) }
            ring.yield()   // a failed round is retried while someone waits
            Task { [self] in
                try? await Task.sleep(for: timeout)
                let expired = shared.withLock { s -> CheckedContinuation<Witnessed?, Never>? in
                    guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return s.waiters.remove(at: i).continuation
                }
                expired?.resume(returning: nil)
            }
        }
    }

    /// What each witness last answered, in words, for a refusal's message.
    var answers: [(name: String, answer: String)] {
        shared.withLock { $0.sessions }.map { s in
            switch s.last {
            case .notAsked: (s.witness.name, "not asked yet")
            case .cosigned(let size, _): (s.witness.name, "cosigned size \(size)")
            case .failed(let reason): (s.witness.name, reason)
            case .conflict(let reason): (s.witness.name, "conflict: \(reason)")
            }
        }
    }

    /// What `status` shows: each witness asked, what it last answered, and the witnessed checkpoint.
    var json: JSONValue {
        let (sessions, witnessed) = shared.withLock { ($0.sessions, $0.witnessed) }
        return .object([
            ("quorum", .string(policy.quorumDescription)),
            ("witnessed_checkpoint", witnessed.map { .object([("seq", .uint($0.seq)), ("size", .uint($0.size)),
                                                              ("cosigners", .array(policy.cosigners(of: $0.note).verified.sorted().map(JSONValue.string)))]) } ?? .null),
            ("witnesses", .array(sessions.map { s in
                var fields: [(String, JSONValue)] = [("name", .string(s.witness.name)), ("url", .string(s.witness.url ?? "")),
                                                     ("known_size", .uint(s.knownSize))]
                switch s.last {
                case .notAsked: fields.append(("last", .string("not_asked")))
                case .cosigned(let size, let timestamp):
                    fields += [("last", .string("cosigned")), ("cosigned_size", .uint(size)), ("cosigned_at", .uint(timestamp))]
                case .failed(let reason): fields += [("last", .string("failed")), ("reason", .string(reason))]
                case .conflict(let reason): fields += [("last", .string("conflict")), ("reason", .string(reason))]
                }
                return .object(fields)
            })),
        ])
    }

    // MARK: A round

    private func witness(seq: UInt64, _ checkpoint: Checkpoint) async {
        guard let note = checkpoint.note, let origin = checkpoint.origin else {
            logger.warning("the checkpoint is in the ledger's own form, not a note: witnesses cannot cosign it", metadata: ["checkpoint.seq": "\(seq)"])
            return
        }
        let text = CheckpointNote(origin: origin, size: checkpoint.size, root: checkpoint.root)
        let started = DispatchTime.now()
        var cosignatures: [String: SignedNote.Signature] = [:]
        while true {
            let sessions = shared.withLock { $0.sessions }
            let asked = sessions.indices.filter { cosignatures[sessions[$0].witness.name] == nil }
            let answers = await withTaskGroup(of: (Int, WitnessSession, WitnessSession.Action).self) { group in
                for i in asked {
                    var session = sessions[i]
                    group.addTask { [self] in
                        let action = await converse(&session, about: text, note: note)
                        return (i, session, action)
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            var sessionsNow = sessions
            for (i, session, action) in answers {
                sessionsNow[i] = session
                report(action, of: session.witness.name, seq: seq, size: checkpoint.size)
                if case .cosigned(let line) = action { cosignatures[session.witness.name] = line }
            }
            let met = policy.isSatisfied(by: Set(cosignatures.keys))
            let retry = shared.withLock { s -> Bool in
                s.sessions = sessionsNow
                return !met && s.next == nil && !s.stopped && s.waiters.contains { $0.size <= checkpoint.size }
                    && sessionsNow.contains { if case .failed = $0.last { true } else { false } }
            }
            if met {
                Timer(label: "ballotd_witness_round_duration_seconds").recordInterval(since: started)
                let witnessed = Witnessed(seq: seq, size: checkpoint.size,
                                          note: SignedNote(text: note.text, signatures: note.signatures + cosignatures.keys.sorted().map { cosignatures[$0]! }))
                record(witnessed)
                return
            }
            guard retry else { break }
            try? await Task.sleep(for: .seconds(1))
        }
        logger.warning("checkpoint not witnessed: the policy's quorum was not met", metadata: [
            "checkpoint.seq": "\(seq)", "checkpoint.size": "\(checkpoint.size)", "quorum": "\(policy.quorumDescription)",
            "cosigned": "\(cosignatures.keys.sorted().joined(separator: ","))"])
    }

    /// One witness, one checkpoint: requests until the session stops asking.
    private func converse(_ session: inout WitnessSession, about text: CheckpointNote, note: SignedNote) async -> WitnessSession.Action {
        var action = session.ask(text)
        while case .send(let old) = action {
            guard let url = session.witness.url.flatMap(WitnessURL.init) else { return session.unreachable("it has no http:// URL") }
            let proof: [MerkleHash]
            do {
                proof = old == 0 || old == text.size ? [] : try reader.consistencyProof(oldSize: old, newSize: text.size)
            } catch {
                return session.unreachable("no consistency proof from size \(old) to \(text.size): \(error)")
            }
            var body = "old \(old)\n"
            for hash in proof { body += hash.withBytes { Data($0).base64EncodedString() } + "\n" }
            body += "\n" + note.serialized
            do {
                let reply = try await WitnessHTTPClient.addCheckpoint(Array(body.utf8), to: url, timeout: timeout, group: loops)
                action = session.replied(status: reply.status, contentType: reply.contentType, body: reply.body, for: note)
            } catch {
                action = session.unreachable("\(error)")
            }
        }
        return action
    }

    private func report(_ action: WitnessSession.Action, of name: String, seq: UInt64, size: UInt64) {
        let metadata: Logger.Metadata = ["witness": "\(name)", "checkpoint.seq": "\(seq)", "checkpoint.size": "\(size)"]
        switch action {
        case .cosigned:
            Counter(label: "ballotd_witness_requests_total", dimensions: [("witness", name), ("outcome", "cosigned")]).increment()
            logger.info("witness cosigned", metadata: metadata)
        case .failed(let reason):
            Counter(label: "ballotd_witness_requests_total", dimensions: [("witness", name), ("outcome", "failed")]).increment()
            logger.warning("witness did not cosign", metadata: metadata.merging(["reason": "\(reason)"]) { a, _ in a })
        case .conflict(let reason):
            Counter(label: "ballotd_witness_requests_total", dimensions: [("witness", name), ("outcome", "conflict")]).increment()
            logger.critical("witness refused: its view of the log is not this ledger's", metadata: metadata.merging(["reason": "\(reason)"]) { a, _ in a })
        case .send:
            break
        }
    }

    private func record(_ witnessed: Witnessed) {
        Gauge(label: "ballotd_witnessed_checkpoint_size").record(Double(witnessed.size))
        do {
            try ReplacedFile.replace(notePath, with: Array(witnessed.note.serialized.utf8), durable: false)
        } catch {
            logger.warning("cannot write the witnessed checkpoint's note", metadata: ["path": "\(notePath)", "error": "\(error)"])
        }
        logger.info("checkpoint witnessed", metadata: ["checkpoint.seq": "\(witnessed.seq)", "checkpoint.size": "\(witnessed.size)"])
        let ready = shared.withLock { s in
            if (s.witnessed?.size ?? 0) <= witnessed.size { s.witnessed = witnessed }
            let ready = s.waiters.filter { $0.size <= witnessed.size }
            s.waiters.removeAll { $0.size <= witnessed.size }
            return ready
        }
        for w in ready { w.continuation.resume(returning: witnessed) }
    }
}

extension WitnessPolicy {
    /// The quorum as the policy writes it: a witness's name, or "k of (members)".
    var quorumDescription: String { Self.describe(quorum) }

    private static func describe(_ q: Quorum) -> String {
        switch q {
        case .none: "none"
        case .witness(let name): name
        case .group(let name, let k, let members): "\(name): \(k) of (\(members.map(describe).joined(separator: ", ")))"
        }
    }
}
