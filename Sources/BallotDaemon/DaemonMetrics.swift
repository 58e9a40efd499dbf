import BallotDomain
import BallotStore
import Metrics

/// What the daemon counts and times, through swift-metrics: `main` chooses the backend
/// (Prometheus in `ballotd`), this code only records. Names follow Prometheus's conventions:
/// a unit suffix (`_seconds`, `_bytes`), `_total` on counters, a timestamp rather than an age.
/// docs/operations.md lists each with what an operator reads from it.
struct DaemonMetrics: Sendable {
    // Writes.
    let appended = Counter(label: "ballotd_appended_events_total")
    /// `vote.cast` events appended and acknowledged (live and imported): rate() is votes/s.
    let votesAccepted = Counter(label: "ballotd_votes_accepted_total")
    let repeated = Counter(label: "ballotd_repeated_requests_total")
    /// A batch from its first command taken off the queue to durable (decide, write, commit).
    let commitLatency = Timer(label: "ballotd_commit_duration_seconds")
    /// LMDB's `mdb_txn_commit` alone: page writes and its two fsyncs, what the disk sets.
    let syncLatency = Timer(label: "ballotd_sync_duration_seconds")
    let failedCommits = Counter(label: "ballotd_failed_commits_total")
    let batchSize = Recorder(label: "ballotd_batch_commands", aggregate: true)
    /// Commands waiting for the writer.
    let queueDepth = Gauge(label: "ballotd_writer_queue_commands")
    /// How long a write was held up by a growth of the map (the writer's stall).
    let mapGrowthStall = Timer(label: "ballotd_map_growth_stall_seconds")
    // The ledger.
    let ledgerEvents = Gauge(label: "ballotd_ledger_events")
    let mapBytes = Gauge(label: "ballotd_map_size_bytes")
    let mapUsedBytes = Gauge(label: "ballotd_map_used_bytes")
    /// 1 while the kept state's last snapshot could not be written (a crash would then replay
    /// more, or rebuild); 0 once one is.
    let keptStateFailing = Gauge(label: "ballotd_kept_state_failing")
    let lastCheckpointTime = Gauge(label: "ballotd_last_checkpoint_timestamp_seconds")
    let lastCheckpointSeq = Gauge(label: "ballotd_last_checkpoint_seq")
    /// The full check of the ledger (`verify`): 1 while it runs; the events the last one
    /// covered, and what it found (0 for a sound ledger).
    let verificationRunning = Gauge(label: "ballotd_verification_running")
    let verifiedEvents = Gauge(label: "ballotd_verified_events")
    let verificationFindings = Gauge(label: "ballotd_verification_findings")
    // A follower (`follow`).
    /// Events its primary holds beyond its own, as of the last chunk or heartbeat.
    let followerLag = Gauge(label: "ballotd_follower_lag_events")
    /// Events verified and stored from the primary.
    let followerEvents = Counter(label: "ballotd_follower_events_total")
    /// 1 while replication is stopped because a record did not verify.
    let followerStopped = Gauge(label: "ballotd_follower_stopped")
    // Clients.
    let connections = Meter(label: "ballotd_connections")
    let connectionsOpened = Counter(label: "ballotd_connections_opened_total")
    let subscribers = Meter(label: "ballotd_subscribers")
    let sealedPeeks = Counter(label: "ballotd_sealed_peeks_total")
    // Imports.
    let importsInProgress = Meter(label: "ballotd_imports_in_progress")
    let importBytes = Counter(label: "ballotd_import_bytes_total")

    /// Every labelled series starts at zero, so that a rate() or a dashboard panel has a series
    /// to read before the first refusal or import.
    init() {
        for code in ErrorCode.allCases { Counter(label: "ballotd_refusals_total", dimensions: [("code", code.rawValue)]).increment(by: 0) }
        for outcome in ImportRowOutcome.allCases {
            importRows(outcome, 0)
            intakeMessages(outcome, 0)
        }
    }

    /// One counter per refusal code.
    func refused(_ code: String) {
        Counter(label: "ballotd_refusals_total", dimensions: [("code", code)]).increment()
    }

    enum ImportRowOutcome: String, CaseIterable { case accepted, alreadyPresent = "already_present", refused }

    /// Rows of vote files read, by what became of them.
    func importRows(_ outcome: ImportRowOutcome, _ count: Int = 1) {
        Counter(label: "ballotd_import_rows_total", dimensions: [("outcome", outcome.rawValue)]).increment(by: count)
    }

    /// Vote messages taken from JetStream and answered, by outcome (docs/intake.md).
    func intakeMessages(_ outcome: ImportRowOutcome, _ count: Int = 1) {
        Counter(label: "ballotd_intake_messages_total", dimensions: [("outcome", outcome.rawValue)]).increment(by: count)
    }

    func intakeOutcomes(_ outcomes: [IntakeOutcome]) {
        var counts: [ImportRowOutcome: Int] = [:]
        for o in outcomes {
            switch o.decision {
            case .accepted(_, _, let alreadyPresent): counts[alreadyPresent ? .alreadyPresent : .accepted, default: 0] += 1
            case .refused: counts[.refused, default: 0] += 1
            }
        }
        for (outcome, n) in counts { intakeMessages(outcome, n) }
    }
}

extension DaemonMetrics: EnvironmentObserver {
    func committed(nanoseconds: UInt64, ok: Bool) {
        if ok { syncLatency.recordNanoseconds(Int64(clamping: nanoseconds)) } else { failedCommits.increment() }
    }

    func grewMap(to mapSize: Int, stalledNanoseconds: UInt64) {
        mapGrowthStall.recordNanoseconds(Int64(clamping: stalledNanoseconds))
        mapBytes.record(Double(mapSize))
    }
}
