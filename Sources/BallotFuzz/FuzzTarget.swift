/// What the fuzzers feed (issue 18, method 3): each target takes any bytes, must not trap, and
/// checks a property of what it parsed. `scripts/fuzz` runs them under libFuzzer with
/// AddressSanitizer (`ballot-fuzz`); `FuzzCorpusTests` replays every committed input, the seed
/// corpora and every crash found, in the ordinary test run.
public enum FuzzTarget: String, Sendable, CaseIterable {
    /// A request line: `Request.parse` and the typed `Op` (which a client's encoding gives back),
    /// JSON that reads back as itself, and the same bytes read by a client as a reply line.
    case request
    /// A CSV vote file, read in one piece and in chunks: the same rows, in line order.
    case csv
    /// An NDJSON vote file, the same.
    case ndjson
    /// A stored record: what decodes, encodes and decodes to the same event.
    case record
    /// A ledger whose records and Merkle nodes the input alters: the audit finds every change.
    case audit

    /// Runs the target on one input. A broken property is a `preconditionFailure`, which
    /// libFuzzer reports as a crash, with the input that caused it.
    public func run(_ input: UnsafeRawBufferPointer) {
        switch self {
        case .request: RequestTarget.run(input)
        case .csv: VoteFileTarget.run(.csv, input)
        case .ndjson: VoteFileTarget.run(.ndjson, input)
        case .record: RecordTarget.run(input)
        case .audit: AuditTarget.shared.run(input)
        }
    }

    public func run(_ input: [UInt8]) {
        input.withUnsafeBytes { run($0) }
    }

    /// The audit target's property on the small golden ledger its long run alters (where an
    /// input found there must be replayed).
    public static func auditTheSmallLedger(_ input: [UInt8]) {
        input.withUnsafeBytes { AuditTarget.small.run($0) }
    }

    /// The audit target's alterations of its ledger (all, and those the ledger protects), and
    /// what the audit found (nil: it could not read the ledger), for tests that its property is
    /// not vacuous.
    public static func audit(_ input: [UInt8]) -> (altered: Int, alteredProtected: Int, findings: Int?) {
        let (altered, alteredProtected, findings) = input.withUnsafeBytes { AuditTarget.shared.audit($0) }
        return (altered, alteredProtected, findings?.count)
    }
}
