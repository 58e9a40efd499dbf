/// Bounds on what a command may carry (text lengths and counts), so that every event fits the
/// record format (strings have a 16-bit length) and stays a sensible size. Checked by the
/// rules: a command past a bound is refused with `bad_request`, never written.
public enum Limits {
    /// Names and titles, in UTF-8 bytes.
    public static let name = 256
    /// Free text: reasons.
    public static let text = 2048
    public static let channel = 64
    public static let criteria = 64
    public static let nominees = 1000
    public static let jurors = 1000
    /// The jury's written justification of its result, in UTF-8 bytes.
    public static let justification = 8192
    /// The most co-signatures a result may need: each is in the certification's record.
    public static let juryQuorum = 100
    /// A checkpoint note's origin line, in bytes: what a cosignature's message holds (an
    /// 8-bit length, c2sp.org/tlog-cosignature).
    public static let checkpointOrigin = 255
    /// A checkpoint lists every election's digests under a 16-bit count (docs/ledger-format.md).
    public static let elections = 65_535
    /// The largest weight a criterion may have. Weights are relative, so this costs no
    /// expressiveness; it keeps the jury's weighted sums finite (64 criteria × 10⁶ × scores of
    /// at most 10⁶ in size), where a weight such as 1e308 overflowed to infinity, which JSON
    /// cannot represent.
    public static let criterionWeight = 1_000_000.0
    /// The most events a ledger holds: the tables that outlive the process know an event by the
    /// low 32 bits of its sequence number (`VoterRegister.tag`), and the idempotency index holds
    /// at most 2^30 keys (`SequenceIndex`). The writer refuses past it with `ledger_full`.
    public static let events: UInt64 = (1 << 30) - 1

    static func check(_ value: String, _ what: String, max: Int) throws(DomainError) {
        try check(bytes: value.utf8.count, what, max: max)
    }

    /// The same, for a text of `n` bytes. (Inlined: every vote checks its channel.)
    @inline(__always)
    static func check(bytes n: Int, _ what: String, max: Int) throws(DomainError) {
        if n <= 0 || n > max { throw refusal(bytes: n, what, max: max) }
    }

    @inline(never)
    private static func refusal(bytes n: Int, _ what: String, max: Int) -> DomainError {
        n <= 0 ? DomainError(.badRequest, "\(what) is empty") : DomainError(.badRequest, "\(what) is \(n) bytes long; at most \(max)")
    }
}
