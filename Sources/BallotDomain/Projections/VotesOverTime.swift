/// One bucket of the votes-over-time series: valid votes per nominee whose `cast_at` falls in
/// `[start, start + width)`. Buckets are aligned on the scheduled window's opening.
public struct VotesOverTimeBucket: Sendable {
    public var election: ElectionID
    public var start: Timestamp
    public var widthSeconds: Int64
    public var nominees: [(nominee: NomineeID, votes: Int)]

    public init(_ e: borrowing ElectionState, bucket: Int64) {
        election = e.id
        start = Timestamp(microseconds: bucket)
        widthSeconds = e.definition.seriesBucketSeconds
        let counts = e.seriesRow(bucket) ?? []
        nominees = e.nominees.enumerated().map { i, n in (n.id, i < counts.count ? counts[i] : 0) }
    }

    public var total: Int { nominees.reduce(0) { $0 + $1.votes } }

    public var json: JSONValue {
        .object([
            ("election", .string(election.value)),
            ("start", .string(start.rfc3339)),
            ("width_seconds", .int(widthSeconds)),
            ("total", .int(total)),
            ("nominees", .object(nominees.map { ($0.nominee.value, .int($0.votes)) })),
        ])
    }
}
