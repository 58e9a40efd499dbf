import Metrics

/// What the daemon counts and times, through swift-metrics: `main` chooses the backend
/// (Prometheus in `ballotd`), this code only records. Names follow Prometheus conventions.
struct DaemonMetrics: Sendable {
    let appended = Counter(label: "ballotd_appended_events_total")
    let repeated = Counter(label: "ballotd_repeated_requests_total")
    let commitLatency = Timer(label: "ballotd_commit_duration_seconds")
    let batchSize = Recorder(label: "ballotd_batch_commands", aggregate: true)
    let connections = Meter(label: "ballotd_connections")
    let connectionsOpened = Counter(label: "ballotd_connections_opened_total")
    let sealedPeeks = Counter(label: "ballotd_sealed_peeks_total")
    let ledgerEvents = Gauge(label: "ballotd_ledger_events")
    let mapBytes = Gauge(label: "ballotd_map_size_bytes")
    let mapUsedBytes = Gauge(label: "ballotd_map_used_bytes")

    /// One counter per refusal code.
    func refused(_ code: String) {
        Counter(label: "ballotd_refusals_total", dimensions: [("code", code)]).increment()
    }
}
