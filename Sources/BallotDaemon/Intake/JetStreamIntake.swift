import Foundation
import Logging
import NIOCore
import BallotDomain
import BallotImport
import BallotLedger
import BallotNATS

/// Takes votes from NATS JetStream (docs/intake.md): performs `IntakeStateMachine`'s actions
/// on a thread of its own, since the C client's calls block. The writer decides each fetched
/// batch in one job; outcomes go to the outcome stream; a message is acknowledged only once
/// its outcome is stored there.
final class JetStreamIntake: @unchecked Sendable {
    private let config: IntakeConfig
    private let writer: GroupCommitWriter
    /// Where the writer runs the job's completion, which only wakes this thread.
    private let loop: any EventLoop
    private let logger: Logger
    private var machine: IntakeStateMachine
    // Used on the intake thread only.
    private var connection: NATSConnection?
    private var jetStream: JetStream?
    private var subscription: PullSubscription?
    private var inHand: [NATSMessage] = []
    private var failureLogged = false
    /// When a fetch last brought messages, or the consumer was last seen to exist.
    private var lastSign = ContinuousClock.now

    private let lock = NSCondition()
    private var stopRequested = false
    private var finished = false

    /// How long a fetch waits for the first message: the longest a stop waits for the loop.
    static let fetchWaitMilliseconds: Int64 = 250
    /// How soon a message whose decision or outcome did not get through is delivered again.
    static let retryDelayMilliseconds: Int64 = 1000

    init(config: IntakeConfig, writer: GroupCommitWriter, hasher: VoterHasher, daemonUID: UInt32, loop: any EventLoop, logger: Logger) {
        self.config = config
        self.writer = writer
        self.loop = loop
        self.logger = logger
        let rows = IntakeRows(subjectPrefix: config.votesSubject, identity: VoterIdentity(hasher: hasher),
                              definitions: { [writer] in writer.status($0)?.definition },
                              actor: Actor(role: .importer, uid: daemonUID))
        machine = IntakeStateMachine(rows: rows, outcomesSubject: config.outcomesSubject)
    }

    func start() {
        let thread = Thread { [self] in
            run()
            lock.withLock {
                finished = true
                lock.broadcast()
            }
        }
        thread.name = "ballotd-intake"
        thread.start()
    }

    /// Ends the loop once the batch in hand is settled, and closes the connection.
    func stop() async {
        lock.withLock { stopRequested = true }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread {
                self.lock.withLock { while !self.finished { self.lock.wait() } }
                done.resume()
            }.start()
        }
    }

    private var shouldStop: Bool { lock.withLock { stopRequested } }

    private func run() {
        var action = machine.start()
        while true {
            if shouldStop { machine.stop() }
            switch action {
            case .setUp:
                action = attempt("setting up JetStream") { try setUp(); return machine.setUpDone() }
            case .fetch:
                action = attempt("fetching votes") {
                    inHand = try subscription!.fetch(batch: config.batch, timeoutMilliseconds: Self.fetchWaitMilliseconds)
                    if inHand.isEmpty {
                        try checkConsumerWhenIdle()
                    } else {
                        lastSign = ContinuousClock.now
                    }
                    return machine.fetched(try inHand.map(Self.intakeMessage))
                }
            case .lookUp(let wanted):
                action = attempt("looking up earlier outcomes") {
                    var answered = Set<Int>()
                    for w in wanted {
                        if let last = try jetStream!.lastMessage(stream: config.outcomesStream, subject: w.subject),
                           IntakeOutcome.streamSequence(ofDocument: last.data) == w.streamSequence {
                            answered.insert(w.index)
                        }
                    }
                    return machine.lookedUp(answered: answered)
                }
            case .submit(let submissions):
                let result = decide(submissions)
                if case .failure(let error) = result {
                    logger.warning("intake: the writer did not take a batch; its votes will be delivered again", metadata: ["error": "\(error)"])
                }
                action = machine.decided(result)
            case .publish(let outcomes):
                action = attempt("publishing outcomes") {
                    for o in outcomes {
                        try jetStream!.publishAsync(subject: o.subject(prefix: config.outcomesSubject), data: o.document, messageID: o.messageID)
                    }
                    let lost = try jetStream!.publishAsyncComplete(timeoutMilliseconds: 5000)
                    if lost > 0 {
                        logger.warning("intake: JetStream did not store \(lost) of \(outcomes.count) outcomes; their votes will be delivered again")
                    } else {
                        writer.metrics.intakeOutcomes(outcomes)
                    }
                    return machine.published(allStored: lost == 0)
                }
            case .settle(let ack, let retry):
                action = attempt("acknowledging votes") {
                    defer { inHand = [] }
                    for i in ack { try inHand[i].ack() }
                    for i in retry { try inHand[i].nak(delayMilliseconds: Self.retryDelayMilliseconds) }
                    return machine.settled()
                }
            case .pause(let milliseconds):
                var left = milliseconds
                while left > 0 && !shouldStop {
                    Thread.sleep(forTimeInterval: Double(min(left, 100)) / 1000)
                    left -= 100
                }
                action = machine.paused()
            case .stop:
                // The acknowledgements still buffered go out before the connection closes.
                try? connection?.flush(timeoutMilliseconds: 2000)
                inHand = []
                subscription = nil
                jetStream = nil
                connection = nil
                logger.info("intake stopped")
                return
            }
        }
    }

    /// A fetch from a consumer the server no longer has (a server started on an empty store)
    /// is only ever empty: after 5 s of nothing, ask whether the consumer is still there.
    private func checkConsumerWhenIdle() throws {
        guard ContinuousClock.now - lastSign > .seconds(5) else { return }
        guard try jetStream!.hasConsumer(stream: config.votesStream, durable: config.consumer) else {
            throw NATSError.notFound("the consumer \(config.consumer) of \(config.votesStream) is gone")
        }
        lastSign = ContinuousClock.now
    }

    /// Runs one step; a NATS error is logged (once until a step succeeds) and handed to the machine.
    private func attempt(_ what: String, _ step: () throws -> IntakeStateMachine.Action) -> IntakeStateMachine.Action {
        do {
            let next = try step()
            if failureLogged {
                logger.notice("intake: JetStream answers again")
                failureLogged = false
            }
            return next
        } catch {
            if !failureLogged {
                logger.warning("intake: \(what) failed; retrying", metadata: ["error": "\(error)", "nats.url": "\(config.natsURL)"])
                failureLogged = true
            }
            return machine.failed(setUpLost: (error as? NATSError)?.isNotFound == true)
        }
    }

    private func setUp() throws {
        if connection == nil {
            connection = try NATSConnection(url: config.natsURL, name: "ballotd", waitForServer: true)
        }
        let js = try connection!.jetStream()
        try js.ensureStream(config.votesStream, subjects: ["\(config.votesSubject).*"], retention: .workQueue,
                            duplicateWindowSeconds: config.duplicateWindowSeconds)
        try js.ensureStream(config.outcomesStream, subjects: ["\(config.outcomesSubject).>"], retention: .limits,
                            duplicateWindowSeconds: config.duplicateWindowSeconds)
        subscription = try js.pullSubscribe(stream: config.votesStream, subject: "\(config.votesSubject).*", durable: config.consumer,
                                            ackWaitSeconds: config.ackWaitSeconds, maxAckPending: Int64(max(config.batch * 4, 65536)))
        jetStream = js
        logger.info("intake: taking votes from JetStream", metadata: [
            "nats.url": "\(config.natsURL)", "intake.stream": "\(config.votesStream)", "intake.subject": "\(config.votesSubject).*",
            "intake.consumer": "\(config.consumer)", "intake.outcomes": "\(config.outcomesStream) \(config.outcomesSubject).>"])
    }

    /// One writer job, waited for on this thread.
    private func decide(_ submissions: [Submission]) -> Result<[Outcome], any Error> {
        let answer = NSCondition()
        nonisolated(unsafe) var result: Result<[Outcome], any Error>?
        writer.submit(submissions, on: loop) { r in
            answer.withLock {
                result = r
                answer.signal()
            }
        }
        return answer.withLock {
            while result == nil { answer.wait() }
            return result!
        }
    }

    private static func intakeMessage(_ m: NATSMessage) throws -> IntakeMessage {
        let position = try m.jetStreamPosition()
        return IntakeMessage(subject: m.subject, messageID: m.header("Nats-Msg-Id"), body: m.data,
                             streamSequence: position.streamSequence, delivered: position.delivered)
    }
}
