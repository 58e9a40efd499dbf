public import BallotDomain
public import BallotCollections
public import BallotStore
public import BallotFormat
public import BallotAudit

/// Which projection documents a batch changed. Noting is an array append (a vote is noted on
/// the hot path); duplicates are removed once, when the batch writes its projections.
struct ProjectionChanges {
    struct Bucket: Equatable {
        let election: ElectionID
        /// The bucket's start, microseconds.
        let start: Int64
    }

    /// Changed elections, in the order first noted, each with the bucket starts noted for it.
    private var noted: [(election: ElectionID, starts: [Int64])] = []

    var elections: [ElectionID] { noted.map(\.election) }

    /// The changed buckets, each once, by election and then start.
    var buckets: [Bucket] {
        noted.flatMap { entry in
            var unique: [Int64] = []
            for start in entry.starts.sorted() where unique.last != start { unique.append(start) }
            return unique.map { Bucket(election: entry.election, start: $0) }
        }
    }

    /// The index of `election`'s entry, adding one if needed.
    private mutating func entry(_ election: ElectionID) -> Int {
        if let last = noted.indices.last, noted[last].election == election { return last }
        if let i = noted.firstIndex(where: { $0.election == election }) { return i }
        noted.append((election, []))
        return noted.count - 1
    }

    mutating func note(_ election: ElectionID) { _ = entry(election) }

    mutating func note(_ election: ElectionID, bucket start: Int64) {
        noted[entry(election)].starts.append(start)
    }

    /// Notes what `event`, just applied to `state`, changed.
    mutating func note(_ event: Event, _ state: LedgerState) {
        guard let election = event.election else { return }
        guard let castAt = event.seriesTime else {
            note(election)
            return
        }
        if let start = state.seriesBucket(of: castAt, in: election) {
            note(election, bucket: start)
        } else {
            note(election)
        }
    }
}
