import BallotDomain
import BallotImport
import BallotLedger

/// The JetStream intake's loop as a value (docs/intake.md): what happened goes in, the next
/// thing to do comes out. `JetStreamIntake` performs the actions with the NATS client and the
/// writer; the tests drive the machine without either.
///
/// One batch at a time: fetch, look for the outcomes of earlier deliveries of redelivered
/// messages, decide the rest in one writer job (one commit), publish every outcome, and only
/// then acknowledge each message whose outcome JetStream has stored. A message whose decision
/// or outcome did not get through is delivered again; its `vote_id` (the idempotency key)
/// makes a vote that was committed come back as the same event.
struct IntakeStateMachine {
    enum State {
        /// Making sure the streams and the consumer exist.
        case settingUp
        case fetching
        case lookingUp(Batch)
        case deciding(Batch)
        case publishing(Batch)
        case settling
        case pausing
        case stopped
    }

    /// The messages in hand and what is known of each.
    struct Batch {
        var messages: [IntakeMessage]
        /// Each message's outcome, once decided.
        var outcomes: [IntakeOutcome?]
        /// Messages an earlier delivery of which has its outcome published: acknowledged
        /// without being decided again.
        var answeredBefore: Set<Int> = []
        /// The message of each submission sent to the writer, in order.
        var submitted: [Int] = []

        init(_ messages: [IntakeMessage]) {
            self.messages = messages
            outcomes = Array(repeating: nil, count: messages.count)
        }
    }

    enum Action {
        case setUp
        case fetch
        /// Look for the published outcome of each of these messages' earlier deliveries.
        case lookUp([IntakeLookUp])
        /// One writer job; `decided` takes its result.
        case submit([Submission])
        case publish([IntakeOutcome])
        /// Acknowledge `ack`; ask for `retry` to be delivered again.
        case settle(ack: [Int], retry: [Int])
        /// Wait, then call `paused`.
        case pause(milliseconds: Int64)
        /// The loop is over.
        case stop
    }

    private(set) var state = State.settingUp
    private var rows: IntakeRows
    private var isSetUp = false
    private var stopRequested = false
    /// Failures in a row, for the back-off.
    private var failures = 0

    /// Where outcomes are published (`IntakeConfig.outcomesSubject`).
    let outcomesSubject: String

    init(rows: IntakeRows, outcomesSubject: String) {
        self.rows = rows
        self.outcomesSubject = outcomesSubject
    }

    mutating func start() -> Action {
        state = .settingUp
        return .setUp
    }

    /// Asks the loop to end once the batch in hand is settled.
    mutating func stop() { stopRequested = true }

    mutating func setUpDone() -> Action {
        isSetUp = true
        failures = 0
        return next()
    }

    mutating func fetched(_ messages: [IntakeMessage]) -> Action {
        failures = 0
        guard !messages.isEmpty else { return next() }
        let batch = Batch(messages)
        let redelivered = messages.indices.filter { messages[$0].delivered > 1 }
        if !redelivered.isEmpty {
            state = .lookingUp(batch)
            return .lookUp(redelivered.map { i in
                IntakeLookUp(index: i, subject: IntakeOutcome.subject(prefix: outcomesSubject, election: rows.outcomeElection(of: messages[i]),
                                                                      voteID: rows.voteID(of: messages[i]), streamSequence: messages[i].streamSequence),
                             streamSequence: messages[i].streamSequence)
            })
        }
        return decide(batch)
    }

    /// `answered`: the messages among those looked up whose outcome is published.
    mutating func lookedUp(answered: Set<Int>) -> Action {
        guard case .lookingUp(var batch) = state else { preconditionFailure("lookedUp in \(state)") }
        batch.answeredBefore = answered
        return decide(batch)
    }

    private mutating func decide(_ batch: Batch) -> Action {
        var batch = batch
        var submissions: [Submission] = []
        rows.startBatch()
        for (i, message) in batch.messages.enumerated() where !batch.answeredBefore.contains(i) {
            switch rows.read(message) {
            case .success(let submission):
                submissions.append(submission)
                batch.submitted.append(i)
            case .failure(let refusal):
                batch.outcomes[i] = outcome(of: message, .refused(code: refusal.reason, message: refusal.message))
            }
        }
        guard !submissions.isEmpty else { return publish(batch) }
        state = .deciding(batch)
        return .submit(submissions)
    }

    /// The writer's answer. A failure (the disk, a shutdown) decides nothing: those messages
    /// are delivered again.
    mutating func decided(_ result: Result<[Outcome], any Error>) -> Action {
        guard case .deciding(var batch) = state else { preconditionFailure("decided in \(state)") }
        if case .success(let outcomes) = result {
            for (i, o) in zip(batch.submitted, outcomes) {
                let decision: IntakeOutcome.Decision = switch o {
                case .appended(let r): .accepted(seq: r.seq, leafHash: r.leafHash, alreadyPresent: false)
                case .repeated(let r): .accepted(seq: r.seq, leafHash: r.leafHash, alreadyPresent: true)
                case .refused(let e): .refused(code: e.code.rawValue, message: e.message)
                }
                batch.outcomes[i] = outcome(of: batch.messages[i], decision)
            }
        }
        return publish(batch)
    }

    private mutating func publish(_ batch: Batch) -> Action {
        let outcomes = batch.outcomes.compactMap { $0 }
        guard !outcomes.isEmpty else { return settle(batch) }
        state = .publishing(batch)
        return .publish(outcomes)
    }

    /// Whether JetStream stored every outcome. If not, none of the batch's decided messages is
    /// acknowledged: delivered again, each finds its outcome if it was stored, or is decided
    /// again (a committed vote as the same event).
    mutating func published(allStored: Bool) -> Action {
        guard case .publishing(var batch) = state else { preconditionFailure("published in \(state)") }
        if !allStored { batch.outcomes = Array(repeating: nil, count: batch.messages.count) }
        return settle(batch)
    }

    private mutating func settle(_ batch: Batch) -> Action {
        let ack = batch.messages.indices.filter { batch.answeredBefore.contains($0) || batch.outcomes[$0] != nil }
        let retry = batch.messages.indices.filter { !batch.answeredBefore.contains($0) && batch.outcomes[$0] == nil }
        state = .settling
        return .settle(ack: ack, retry: retry)
    }

    mutating func settled() -> Action { next() }

    /// A call to NATS failed. With messages in hand, none is acknowledged: they are asked for
    /// again (which may fail too, and then JetStream delivers them again after its ack wait).
    /// Then the loop pauses, longer after each failure in a row, up to 5 s. `setUpLost`: the
    /// server no longer has the stream or the consumer (a server started on an empty store),
    /// so they are set up again after the pause.
    mutating func failed(setUpLost: Bool = false) -> Action {
        failures += 1
        if setUpLost { isSetUp = false }
        switch state {
        case .lookingUp(let batch), .deciding(let batch), .publishing(let batch):
            state = .settling
            return .settle(ack: [], retry: Array(batch.messages.indices))
        default:
            state = .pausing
            return .pause(milliseconds: min(5000, 100 << min(failures - 1, 6)))
        }
    }

    mutating func paused() -> Action { next() }

    private mutating func next() -> Action {
        if stopRequested {
            state = .stopped
            return .stop
        }
        if !isSetUp {
            state = .settingUp
            return .setUp
        }
        state = .fetching
        return .fetch
    }

    private mutating func outcome(of message: IntakeMessage, _ decision: IntakeOutcome.Decision) -> IntakeOutcome {
        IntakeOutcome(election: rows.outcomeElection(of: message), voteID: rows.voteID(of: message),
                      streamSequence: message.streamSequence, decision: decision)
    }
}

/// A redelivered message's look-up: the subject its earlier delivery's outcome would be on
/// (its own, see `IntakeOutcome.subject`), and the stream sequence that outcome must name.
struct IntakeLookUp: Sendable, Equatable {
    var index: Int
    var subject: String
    var streamSequence: UInt64
}
