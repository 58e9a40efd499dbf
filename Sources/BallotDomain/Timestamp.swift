/// A moment in UTC, as whole microseconds since 1970-01-01T00:00:00Z.
///
/// Parsing and printing RFC 3339 is done here by hand: it is on the import hot path, and it must
/// print the same bytes everywhere (projections are compared byte for byte).
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var microseconds: Int64

    public init(microseconds: Int64) { self.microseconds = microseconds }
    public init(seconds: Int64) { self.microseconds = seconds * 1_000_000 }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.microseconds < b.microseconds }

    /// Whole seconds, rounded down.
    public var seconds: Int64 { microseconds >= 0 ? microseconds / 1_000_000 : (microseconds - 999_999) / 1_000_000 }

    public var description: String { rfc3339 }

    // MARK: RFC 3339

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t` and `z` may be lower case and a
    /// space may stand for `T`. Fractions finer than a microsecond are truncated. Nil when malformed.
    public init?(rfc3339 text: some StringProtocol) {
        var copy = String(text)
        guard let value = copy.withUTF8({ Timestamp.parse(UnsafeRawBufferPointer($0)) }) else { return nil }
        self = value
    }

    /// Parses RFC 3339 from raw UTF-8 bytes (used by importers without building a String).
    public static func parse(_ b: UnsafeRawBufferPointer) -> Timestamp? {
        let n = b.count
        guard n >= 20 else { return nil }
        func digits(_ at: Int, _ count: Int) -> Int? {
            var v = 0
            for i in at..<(at + count) {
                let c = b[i]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            return v
        }
        guard let year = digits(0, 4), b[4] == 0x2D, let month = digits(5, 2), b[7] == 0x2D,
              let day = digits(8, 2), b[10] == 0x54 || b[10] == 0x74 || b[10] == 0x20,
              let hour = digits(11, 2), b[13] == 0x3A, let minute = digits(14, 2), b[16] == 0x3A,
              let second = digits(17, 2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
              hour <= 23, minute <= 59, second <= 60
        else { return nil }
        var i = 19
        var micros = 0
        if i < n, b[i] == 0x2E {
            i += 1
            var scale = 100_000
            let start = i
            while i < n, b[i] >= 0x30, b[i] <= 0x39 {
                micros += Int(b[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        guard i < n else { return nil }
        var offsetSeconds = 0
        switch b[i] {
        case 0x5A, 0x7A:
            i += 1
        case 0x2B, 0x2D:
            guard i + 6 == n, let oh = digits(i + 1, 2), b[i + 3] == 0x3A, let om = digits(i + 4, 2),
                  oh <= 23, om <= 59 else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (b[i] == 0x2B ? 1 : -1)
            i += 6
        default:
            return nil
        }
        guard i == n else { return nil }
        // A leap second is folded into the following second.
        let days = daysFromCivil(year: year, month: month, day: day)
        let secs = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        return Timestamp(microseconds: secs * 1_000_000 + Int64(micros))
    }

    /// `2022-11-11T23:00:00Z`, with `.ffffff` (trailing zeros dropped) when there is a fraction.
    /// RFC 3339 has years 0000 to 9999; one outside them gets its sign or fifth digit.
    public var rfc3339: String {
        let secs = seconds
        let micros = Int(microseconds - secs * 1_000_000)
        let days = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
        let rem = Int(secs - days * 86_400)
        let (y, m, d) = Timestamp.civilFromDays(Int(days))
        var out = ""
        out.reserveCapacity(27)
        func pad(_ v: Int, _ width: Int) {
            let s = String(v)
            if s.count < width { out += String(repeating: "0", count: width - s.count) }
            out += s
        }
        // A year before 0 (only a series bucket can start there, from a window in year 0) is
        // written as ISO 8601's expanded years do, with its sign: -0001, not 00-1.
        if y < 0 { out += "-" }
        pad(abs(y), 4); out += "-"; pad(m, 2); out += "-"; pad(d, 2); out += "T"
        pad(rem / 3600, 2); out += ":"; pad(rem / 60 % 60, 2); out += ":"; pad(rem % 60, 2)
        if micros != 0 {
            var frac = String(micros)
            frac = String(repeating: "0", count: 6 - frac.count) + frac
            while frac.hasSuffix("0") { frac.removeLast() }
            out += "." + frac
        }
        out += "Z"
        return out
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// Where the ledger reads the time. Tests pass a fixed or stepping clock.
public protocol LedgerClock: Sendable {
    func now() -> Timestamp
}
