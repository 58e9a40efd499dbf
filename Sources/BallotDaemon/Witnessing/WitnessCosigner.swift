import Foundation
import Logging
import Metrics
import NIOCore
import Synchronization
import BallotDomain
import BallotFormat
import BallotHTTP

/// Asks the policy's witnesses to cosign each new checkpoint, and knows the latest checkpoint
/// whose cosignatures meet the policy's quorum: the witnessed checkpoint. It runs beside the
/// writer and never holds it up: the writer only hands it the newest checkpoint, so a witness
/// that is down or slow costs cosignatures, never votes.
///
/// Each witness is a `WitnessSession` served by a task of its own, which asks about the newest
/// checkpoint whenever it is free: a slow witness holds up neither the others nor a quorum they
/// make. A checkpoint is witnessed as soon as the cosignatures gathered for it meet the quorum.
/// `result.certify` of an election that requires witnesses waits here (`waitUntilWitnessed`);
/// while someone waits, a witness whose last request failed is asked again every second.
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
    /// Where the latest witnessed note is kept (replaced whole), for auditors and the tiles.
    let notePath: String
    /// Told of each witnessed checkpoint (the tiles' publisher).
    private let onWitnessed: @Sendable (Witnessed) -> Void

    private struct Shared {
        var sessions: [WitnessSession]
        /// The newest checkpoint handed over.
        var newest: (seq: UInt64, checkpoint: Checkpoint)?
        var newestAt = DispatchTime.now()
        /// The cosignatures gathered for checkpoints not yet witnessed, by the checkpoint's seq.
        var gathered: [UInt64: [String: SignedNote.Signature]] = [:]
        var witnessed: Witnessed?
        var waiters: [(id: UInt64, size: UInt64, continuation: CheckedContinuation<Witnessed?, Never>)] = []
        var nextWaiter: UInt64 = 0
        var stopped = false
    }
    private let shared: Mutex<Shared>
    /// One per witness, rung when there is a newer checkpoint, or someone began to wait.
    private let doorbells: [(stream: AsyncStream<Void>, ring: AsyncStream<Void>.Continuation)]

    init(policy: WitnessPolicy, reader: LedgerReader, timeoutSeconds: Int, loops: any EventLoopGroup,
         notePath: String, logger: Logger, onWitnessed: @escaping @Sendable (Witnessed) -> Void = { _ in }) {
        self.onWitnessed = onWitnessed
        self.policy = policy
        self.reader = reader
        self.timeout = .seconds(Int64(timeoutSeconds))
        self.loops = loops
        self.notePath = notePath
        self.logger = logger
        let sessions = policy.witnesses.filter { $0.url != nil }.map(WitnessSession.init)
        shared = Mutex(Shared(sessions: sessions))
        doorbells = sessions.map { _ in
            let (stream, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            return (stream, ring)
        }
        for w in policy.witnesses {
            for outcome in ["cosigned", "failed", "conflict"] {
                Counter(label: "ballotd_witness_requests_total", dimensions: [("witness", w.name), ("outcome", outcome)]).increment(by: 0)
            }
        }
    }

    /// Called by the writer after each commit that recorded a checkpoint: never blocks.
    func checkpointRecorded(seq: UInt64, checkpoint: Checkpoint) {
        let newer = shared.withLock { s -> Bool in
            // Never back: the start hands over the newest checkpoint it read, and the writer
            // may have recorded a newer one by then.
            guard seq > (s.newest?.seq ?? 0), !s.stopped else { return false }
            s.newest = (seq, checkpoint)
            s.newestAt = DispatchTime.now()
            return true
        }
        if newer { ringAll() }
    }

    private func ringAll() { for bell in doorbells { bell.ring.yield() } }

    /// Serves every witness until `stop` (or cancellation).
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            for i in doorbells.indices { group.addTask { [self] in await serve(witness: i) } }
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
        for bell in doorbells { bell.ring.finish() }
    }

    var isStopped: Bool { shared.withLock { $0.stopped } }

    /// At start: the newest checkpoint's note as cosigned before the stop counts as witnessed
    /// again, if its cosignatures still meet the policy.
    func resume(seq: UInt64, size: UInt64, note: SignedNote) {
        guard policy.isSatisfied(by: policy.cosigners(of: note).verified) else { return }
        shared.withLock { $0.witnessed = Witnessed(seq: seq, size: size, note: note) }
        Gauge(label: "ballotd_witnessed_checkpoint_size").record(Double(size))
    }

    /// The latest witnessed checkpoint.
    var witnessed: Witnessed? { shared.withLock { $0.witnessed } }

    /// Waits until a checkpoint of at least `size` events is witnessed, at most `timeout`;
    /// nil when none is by then.
    func waitUntilWitnessed(size: UInt64, timeout: Duration) async -> Witnessed? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Witnessed?, Never>) in
            let (done, id): (Witnessed?, UInt64?) = shared.withLock { s in
                if let w = s.witnessed, w.size >= size { return (w, nil) }
                if s.stopped { return (nil, nil) }
                s.nextWaiter += 1
                s.waiters.append((s.nextWaiter, size, continuation))
                return (nil, s.nextWaiter)
            }
            guard let id else { return continuation.resume(returning: done) }
            ringAll()   // a witness whose last request failed is asked again while someone waits
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
            case .notAsked: (s.witness.name, "no answer yet")
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

    // MARK: One witness

    /// Asks witness `i` about the newest checkpoint each time there is a newer one, and again
    /// (a second apart) after a failure while someone waits for a checkpoint not yet witnessed.
    private func serve(witness i: Int) async {
        var asked: UInt64 = 0
        for await _ in doorbells[i].stream {
            while !Task.isCancelled {
                let next = shared.withLock { s -> (seq: UInt64, checkpoint: Checkpoint, retry: Bool)? in
                    guard !s.stopped, let newest = s.newest else { return nil }
                    if newest.seq > asked { return (newest.seq, newest.checkpoint, false) }
                    guard case .failed = s.sessions[i].last, (s.witnessed?.size ?? 0) < newest.checkpoint.size,
                          s.waiters.contains(where: { $0.size <= newest.checkpoint.size }) else { return nil }
                    return (newest.seq, newest.checkpoint, true)
                }
                guard let next else { break }
                if next.retry { try? await Task.sleep(for: .seconds(1)) }
                asked = next.seq
                await ask(witness: i, seq: next.seq, next.checkpoint)
            }
        }
    }

    private func ask(witness i: Int, seq: UInt64, _ checkpoint: Checkpoint) async {
        guard let note = checkpoint.note, let origin = checkpoint.origin else {
            if i == 0 { logger.warning("the checkpoint is in the ledger's own form, not a note: witnesses cannot cosign it", metadata: ["checkpoint.seq": "\(seq)"]) }
            return
        }
        let started = DispatchTime.now()
        var session = shared.withLock { $0.sessions[i] }
        let action = await converse(&session, about: CheckpointNote(origin: origin, size: checkpoint.size, root: checkpoint.root), note: note)
        let name = session.witness.name
        let met = shared.withLock { s -> (Witnessed, handedAt: DispatchTime)? in
            s.sessions[i] = session
            let floor = s.witnessed?.seq ?? 0
            guard case .cosigned(let line) = action, seq >= floor else { return nil }
            s.gathered[seq, default: [:]][name] = line
            let lines = s.gathered[seq]!
            // Only the witnessed checkpoint and those after it gather, the newest few.
            s.gathered = s.gathered.filter { $0.key >= floor }
            while s.gathered.count > 16, let oldest = s.gathered.keys.min() { s.gathered[oldest] = nil }
            guard policy.isSatisfied(by: Set(lines.keys)) else { return nil }
            return (Witnessed(seq: seq, size: checkpoint.size,
                              note: SignedNote(text: note.text, signatures: note.signatures + lines.keys.sorted().map { lines[$0]! })),
                    s.newest?.seq == seq ? s.newestAt : started)
        }
        report(action, of: name, seq: seq, size: checkpoint.size)
        if let (witnessed, handedAt) = met {
            Timer(label: "ballotd_witness_round_duration_seconds").recordInterval(since: handedAt)
            record(witnessed)
        }
    }

    /// One witness, one checkpoint: requests until the session stops asking.
    private func converse(_ session: inout WitnessSession, about text: CheckpointNote, note: SignedNote) async -> WitnessSession.Action {
        var action = session.ask(text)
        while case .send(let old) = action {
            guard let url = session.witness.url.flatMap(HTTPURL.init) else { return session.unreachable("it has no http:// URL") }
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
                let reply = try await HTTPClient.request(.post, url, path: "/add-checkpoint", body: Array(body.utf8), timeout: timeout, group: loops)
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

    /// Keeps a witnessed checkpoint if it is newer than the one kept (or the same with more
    /// cosignatures), and answers the waiters it covers.
    private func record(_ witnessed: Witnessed) {
        let (forward, ready) = shared.withLock { s -> (Bool, [CheckedContinuation<Witnessed?, Never>]) in
            if let kept = s.witnessed, kept.size > witnessed.size || (kept.size == witnessed.size && kept.note.signatures.count >= witnessed.note.signatures.count) {
                return (false, [])
            }
            s.witnessed = witnessed
            let ready = s.waiters.filter { $0.size <= witnessed.size }.map(\.continuation)
            s.waiters.removeAll { $0.size <= witnessed.size }
            return (true, ready)
        }
        guard forward else { return }
        Gauge(label: "ballotd_witnessed_checkpoint_size").record(Double(witnessed.size))
        do {
            try ReplacedFile.replace(notePath, with: Array(witnessed.note.serialized.utf8), durable: false, mode: 0o644)
        } catch {
            logger.warning("cannot write the witnessed checkpoint's note", metadata: ["path": "\(notePath)", "error": "\(error)"])
        }
        logger.info("checkpoint witnessed", metadata: ["checkpoint.seq": "\(witnessed.seq)", "checkpoint.size": "\(witnessed.size)",
                                                      "cosignatures": "\(witnessed.note.signatures.count - 1)"])
        onWitnessed(witnessed)
        for continuation in ready { continuation.resume(returning: witnessed) }
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
