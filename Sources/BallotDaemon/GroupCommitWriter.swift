import Foundation
import BallotDomain
import BallotLedger
import BallotFormat
import BallotAudit
import NIOCore

/// The one thread that writes the ledger. Jobs (one or more commands and what to call with
/// their outcomes) wait in a queue; the thread takes all that are waiting (up to `maxBatch`
/// commands), appends them in one transaction with one commit, and only then calls each job's
/// completion: an `appended` outcome is durable. No LMDB call runs anywhere else, and none
/// runs on an event loop or across an `await`.
final class GroupCommitWriter: @unchecked Sendable {
    private let ledger: Ledger
    private let maxBatch: Int
    private let condition = NSCondition()
    /// A job's commands are appended in order, in one batch or in consecutive ones. Its
    /// completion runs on `loop`.
    struct Job {
        let submissions: [Submission]
        let loop: any EventLoop
        let completion: @Sendable (Result<[Outcome], any Error>) -> Void
        /// A dry run's state: decide the submissions, write nothing.
        var trial: TrialBox? = nil
        /// How many more commands the sender expects to send soon (see `Ledger.submit`).
        var expecting = 0
        /// A follower's chunk of its primary's records, to verify and store (`Ledger.replicate`)
        /// in place of submissions; its completion gets no outcomes.
        var replication: (chunk: RecordChunk, primary: Ledger.Primary)? = nil
    }
    /// A dry run's state, used only on the writer thread.
    final class TrialBox: @unchecked Sendable {
        var trial = Trial()
    }
    private var waiting: [Job] = []
    /// The commands in `waiting`, for the queue-depth gauge.
    private var waitingCommands = 0
    private var stopping = false
    private var stopped = false
    /// Resumed by the thread when it has written everything queued and ended.
    private var stopWaiter: CheckedContinuation<Void, Never>?
    /// What readers may see of each election, replaced after each batch that changed it:
    /// its status and its tally and ranking documents, exactly as stored.
    private var statuses: [ElectionID: ElectionStatus] = [:]
    private var standings: [ElectionID: (tally: [UInt8], ranking: [UInt8])] = [:]
    private var published: (size: UInt64, root: MerkleHash)
    /// The ledger's id, which a follower's empty ledger takes from its primary.
    private var publishedLedgerID: [UInt8]
    private var publishedCheckpoint: (seq: UInt64, checkpoint: Checkpoint)?
    /// How often the ledger is checkpointed while it grows (nil: only on request and on close).
    private let checkpointInterval: Int64?
    /// When the interval is counted from before the first checkpoint.
    private let startedAt = SystemClock().now()
    let checkpointPublicKey: Digest32?

    let metrics: DaemonMetrics
    /// Told of each checkpoint a commit recorded, on the writer thread: it must not block (the
    /// witnesses' cosigner only takes note of it).
    private let checkpointRecorded: (@Sendable (UInt64, Checkpoint) -> Void)?

    init(ledger: Ledger, maxBatch: Int, checkpointIntervalSeconds: Int64? = nil, metrics: DaemonMetrics,
         checkpointRecorded: (@Sendable (UInt64, Checkpoint) -> Void)? = nil) {
        self.checkpointRecorded = checkpointRecorded
        self.ledger = ledger
        self.maxBatch = maxBatch
        self.metrics = metrics
        checkpointPublicKey = ledger.checkpointPublicKey
        checkpointInterval = checkpointPublicKey == nil ? nil : checkpointIntervalSeconds
        published = (ledger.size, ledger.root)
        publishedLedgerID = ledger.ledgerID
        publishedCheckpoint = ledger.state.lastCheckpoint
        commits.announce(size: ledger.size)
        for e in ledger.state.elections {
            statuses[e.id] = e.status
            standings[e.id] = storedStandings(e.id)
        }
        metrics.ledgerEvents.record(Double(ledger.size))
        if let info = try? ledger.storageInfo() {
            metrics.mapBytes.record(Double(info.mapSize))
            metrics.mapUsedBytes.record(Double(info.usedBytes))
        }
        recordCheckpoint(publishedCheckpoint)
    }

    /// Starts the writer thread.
    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "ballotd-writer"
        thread.start()
    }

    /// Queues commands; `completion` gets their outcomes on `loop` once the batch is durable.
    /// `expecting`: how many more the sender expects to send soon (an import's remaining rows).
    func submit(_ submissions: [Submission], expecting: Int = 0, on loop: any EventLoop,
                completion: @escaping @Sendable (Result<[Outcome], any Error>) -> Void) {
        enqueue(Job(submissions: submissions, loop: loop, completion: completion, expecting: expecting))
    }

    /// Queues a follower's chunk of records; `completion` runs on `loop` once it is stored, or
    /// with the error that refused it (nothing of the slice it failed in stored, nor after it;
    /// the slices before it are, and published).
    func replicate(_ chunk: RecordChunk, from primary: Ledger.Primary, on loop: any EventLoop,
                   completion: @escaping @Sendable (Result<[Outcome], any Error>) -> Void) {
        enqueue(Job(submissions: [], loop: loop, completion: completion, replication: (chunk, primary)))
    }

    /// Queues a dry run of `submissions` (see `Ledger.trial`); `completion` runs on `loop`.
    func trial(_ submissions: [Submission], in box: TrialBox, on loop: any EventLoop,
               completion: @escaping @Sendable (Result<[Outcome], any Error>) -> Void) {
        enqueue(Job(submissions: submissions, loop: loop, completion: completion, trial: box))
    }

    private func enqueue(_ job: Job) {
        condition.lock()
        if stopping {
            condition.unlock()
            job.loop.execute { job.completion(.failure(DaemonError.shuttingDown)) }
            return
        }
        waiting.append(job)
        waitingCommands += job.submissions.count
        metrics.queueDepth.record(waitingCommands)
        condition.signal()
        condition.unlock()
    }

    /// The status of one election as of the last commit.
    func status(_ election: ElectionID) -> ElectionStatus? {
        condition.lock()
        defer { condition.unlock() }
        return statuses[election]
    }

    /// The elections whose per-nominee standings are still sealed at `now`.
    func sealedElections(at now: Timestamp) -> Set<ElectionID> {
        condition.lock()
        defer { condition.unlock() }
        return Set(statuses.values.filter { !$0.standingsArePublic(at: now) }.map(\.id))
    }

    /// The tally and ranking documents of one election as of the last commit.
    func standings(_ election: ElectionID) -> (tally: [UInt8], ranking: [UInt8])? {
        condition.lock()
        defer { condition.unlock() }
        return standings[election]
    }

    /// The ledger's size and root as of the last commit.
    var head: (size: UInt64, root: MerkleHash) {
        condition.lock()
        defer { condition.unlock() }
        return published
    }

    /// The last checkpoint recorded, as of the last commit.
    var latestCheckpoint: (seq: UInt64, checkpoint: Checkpoint)? {
        condition.lock()
        defer { condition.unlock() }
        return publishedCheckpoint
    }

    /// The ledger's id, in hex: what jurors' statements name (`status`).
    var ledgerID: String { ledgerIDBytes.withUnsafeBytes { hexString($0) } }
    var ledgerIDBytes: [UInt8] { condition.withLock { publishedLedgerID } }

    var electionCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return statuses.count
    }

    /// Refuses new commands, writes those already queued, and returns when the thread is done.
    func stop() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            condition.lock()
            if stopped {
                condition.unlock()
                done.resume()
                return
            }
            stopWaiter = done
            stopping = true
            condition.broadcast()
            condition.unlock()
        }
    }

    private func run() {
        while true {
            condition.lock()
            while waiting.isEmpty && !stopping {
                guard let due = nextIntervalCheckpoint() else {
                    condition.wait()
                    continue
                }
                if due <= SystemClock().now() { break }
                _ = condition.wait(until: Date(timeIntervalSince1970: Double(due.microseconds) / 1e6))
            }
            // Due, it goes first even while clients keep the queue full: under a steady load
            // the queue is never empty, and the ledger would go unsigned (and unwitnessed).
            if !stopping, let due = nextIntervalCheckpoint(), due <= SystemClock().now() {
                condition.unlock()
                takeIntervalCheckpoint()
                continue
            }
            if waiting.isEmpty {
                stopped = true
                let waiter = stopWaiter
                condition.unlock()
                commits.close()
                waiter?.resume()
                return
            }
            if let box = waiting.first?.trial {
                let job = waiting.removeFirst()
                waitingCommands -= job.submissions.count
                metrics.queueDepth.record(waitingCommands)
                condition.unlock()
                answer([(job, Result { try ledger.trial(job.submissions, &box.trial) })])
                continue
            }
            if let replication = waiting.first?.replication {
                let job = waiting.removeFirst()
                condition.unlock()
                answer([(job, Result { try replicate(replication.chunk, from: replication.primary) })])
                continue
            }
            var jobs: [Job] = []
            var count = 0
            while let job = waiting.first, job.trial == nil, job.replication == nil, jobs.isEmpty || count + job.submissions.count <= maxBatch {
                jobs.append(job)
                count += job.submissions.count
                waiting.removeFirst()
            }
            waitingCommands -= count
            metrics.queueDepth.record(waitingCommands)
            condition.unlock()
            // An import's job is a whole batch already: no copy of it.
            let batch = jobs.count == 1 ? jobs[0].submissions : jobs.flatMap(\.submissions)
            do {
                let started = ContinuousClock.now
                let outcomes = try ledger.submit(batch, expecting: jobs.reduce(0) { $0 + $1.expecting })
                recordCommit(since: started, of: batch.count)
                record(batch, outcomes)
                publish(changed: Self.elections(appendedBy: batch, outcomes))
                var offset = 0
                var answers: [(Job, Result<[Outcome], any Error>)] = []
                for job in jobs {
                    let mine = jobs.count == 1 ? outcomes : Array(outcomes[offset..<(offset + job.submissions.count)])
                    answers.append((job, .success(mine)))
                    offset += job.submissions.count
                }
                answer(answers)
            } catch {
                answer(jobs.map { ($0, .failure(error)) })
            }
        }
    }

    /// Stores a follower's chunk and publishes what it changed, as a batch's commit does.
    private func replicate(_ chunk: RecordChunk, from primary: Ledger.Primary) throws -> [Outcome] {
        let started = ContinuousClock.now
        let before = ledger.size
        let changed: [ElectionID]
        do {
            changed = try ledger.replicate(chunk, from: primary)
        } catch {
            // The slices before the failure are stored: readers, and the follower asking again,
            // go on from there.
            if ledger.size > before {
                metrics.followerEvents.increment(by: Int(ledger.size - before))
                publish(changed: Set(ledger.state.elections.map(\.id)))
            }
            throw error
        }
        recordCommit(since: started, of: chunk.count)
        metrics.followerEvents.increment(by: chunk.count)
        metrics.ledgerEvents.record(Double(ledger.size))
        publish(changed: Set(changed))
        return []
    }

    /// A commit's time and size.
    private func recordCommit(since started: ContinuousClock.Instant, of count: Int) {
        metrics.commitLatency.recordNanoseconds(TimeAmount(ContinuousClock.now - started).nanoseconds)
        metrics.batchSize.record(count)
    }

    /// The elections the appended submissions of a batch changed (a checkpoint names none).
    /// A batch is mostly one election, so the set is checked only when the election changes.
    private static func elections(appendedBy batch: [Submission], _ outcomes: [Outcome]) -> Set<ElectionID> {
        var changed: Set<ElectionID> = []
        var last: ElectionID?
        for (submission, outcome) in zip(batch, outcomes) {
            guard case .appended = outcome, let election = submission.command.election, election != last else { continue }
            changed.insert(election)
            last = election
        }
        return changed
    }

    /// When the next interval checkpoint is due: `checkpointInterval` after the last one (or
    /// after the start), once the ledger has grown since it. Nil when none is due at any time.
    private func nextIntervalCheckpoint() -> Timestamp? {
        guard let interval = checkpointInterval else { return nil }
        let last = ledger.state.lastCheckpoint
        guard ledger.state.lastSeq > (last?.seq ?? 0) else { return nil }
        let due = Timestamp(microseconds: (last?.checkpoint.takenAt ?? startedAt).microseconds + interval * 1_000_000)
        return max(due, retryIntervalCheckpointAt)
    }

    /// After a failed interval checkpoint, the next try waits a minute rather than spin.
    private var retryIntervalCheckpointAt = Timestamp(microseconds: 0)

    private func takeIntervalCheckpoint() {
        do {
            let batch = [Submission(.takeCheckpoint(.interval), by: .system)]
            let outcomes = try ledger.submit(batch)
            if case .refused = outcomes[0] {
                retryIntervalCheckpointAt = Timestamp(microseconds: SystemClock().now().microseconds + 60_000_000)
            }
            record(batch, outcomes)
            publish(changed: [])
        } catch {
            metrics.refused("internal")
            retryIntervalCheckpointAt = Timestamp(microseconds: SystemClock().now().microseconds + 60_000_000)
        }
    }

    /// Calls the completions, one hop per event loop rather than one per job: waking a loop
    /// from this thread costs a system call.
    private func answer(_ answers: [(Job, Result<[Outcome], any Error>)]) {
        var byLoop: [ObjectIdentifier: [(Job, Result<[Outcome], any Error>)]] = [:]
        for answer in answers { byLoop[ObjectIdentifier(answer.0.loop), default: []].append(answer) }
        for group in byLoop.values {
            let calls = group.map { job, result in { job.completion(result) } as @Sendable () -> Void }
            group[0].0.loop.execute { for call in calls { call() } }
        }
    }

    private func record(_ batch: [Submission], _ outcomes: [Outcome]) {
        var appended = 0
        var votes = 0
        for (submission, outcome) in zip(batch, outcomes) {
            switch outcome {
            case .appended:
                appended += 1
                if case .castVote = submission.command { votes += 1 }
            case .repeated: metrics.repeated.increment()
            case .refused(let e): metrics.refused(e.code.rawValue)
            }
        }
        metrics.appended.increment(by: appended)
        metrics.votesAccepted.increment(by: votes)
        metrics.ledgerEvents.record(Double(ledger.size))
        metrics.keptStateFailing.record(ledger.keptStateError == nil ? 0 : 1)
        if let info = try? ledger.storageInfo() {
            metrics.mapBytes.record(Double(info.mapSize))
            metrics.mapUsedBytes.record(Double(info.usedBytes))
        }
    }

    /// Reads back the documents the batch stored (on this thread: LMDB stays off the event
    /// loops). A failed read keeps what was published before and is counted as `internal`.
    private func storedStandings(_ election: ElectionID) -> (tally: [UInt8], ranking: [UInt8])? {
        do {
            guard let tally = try ledger.reader.projection(election, .tally),
                  let ranking = try ledger.reader.projection(election, .ranking) else { return nil }
            return (tally, ranking)
        } catch {
            metrics.refused("internal")
            return standings[election]
        }
    }

    private func publish(changed: Set<ElectionID>) {
        let fresh = changed.compactMap { ledger.state[$0]?.status }
        // The documents the batch just stored, as it stored them (read back only if missing).
        let written = ledger.standingsWritten
        let documents = changed.map { id in (id, written[id] ?? storedStandings(id)) }
        let head = (ledger.size, ledger.root)
        let checkpoint = ledger.state.lastCheckpoint
        let id = ledger.ledgerID
        condition.lock()
        publishedLedgerID = id
        for status in fresh { statuses[status.id] = status }
        for (id, docs) in documents where docs != nil { standings[id] = docs }
        published = head
        let newCheckpoint = checkpoint != nil && checkpoint?.seq != publishedCheckpoint?.seq
        publishedCheckpoint = checkpoint
        condition.unlock()
        if newCheckpoint, let checkpoint { checkpointRecorded?(checkpoint.seq, checkpoint.checkpoint) }
        commits.announce(size: head.0)
        recordCheckpoint(checkpoint)
    }

    private func recordCheckpoint(_ checkpoint: (seq: UInt64, checkpoint: Checkpoint)?) {
        guard let checkpoint else { return }
        metrics.lastCheckpointSeq.record(Double(checkpoint.seq))
        metrics.lastCheckpointTime.record(Double(checkpoint.checkpoint.takenAt.microseconds) / 1e6)
    }

    /// Wakes subscribers when a batch commits.
    let commits = CommitSignal()
}
