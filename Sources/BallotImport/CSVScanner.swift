/// Splits CSV bytes into rows of fields as they stream in (RFC 4180: `,` between fields, `"`
/// around a field that holds `,` or `"` (doubled); LF or CRLF between rows; a UTF-8 byte-order
/// mark at the start is dropped). Memory is bounded by `maxRowBytes` plus one chunk, however
/// large the file.
///
/// One line is one row: unlike RFC 4180, a quoted field may not hold a line break, since no
/// field of a vote does, and a stray quote must not join the lines after it into one row.
/// A malformed line is reported with its own line number and skipped, and the next line is
/// read as usual, so every line of a file is accounted for. A carriage return that does not
/// end a line (a file with classic Mac line endings) is refused in the same way.
///
/// Written by hand rather than with CSV.swift: that library read 265,000 rows/s here, half the
/// import's end-to-end target on its own (docs/import.md has the measurement).
public struct CSVScanner {
    public enum Problem: Sendable, Equatable {
        /// Quoting is broken; the message says how.
        case badQuoting(String)
        /// The row is longer than `maxRowBytes`; it was skipped to the next line break.
        case rowTooLong
    }

    public let maxRowBytes: Int
    private var pending: [UInt8] = []
    /// Line number of `pending[0]`.
    private var line = 1
    private var atFileStart = true
    /// Discarding an over-long line until its line break.
    private var skippingLine = false
    // The row being assembled: its fields' bytes, unescaped and concatenated, and where each ends.
    private var fieldBytes: [UInt8] = []
    private var fieldEnds: [Int] = []

    public init(maxRowBytes: Int = 64 * 1024) {
        self.maxRowBytes = maxRowBytes
        fieldBytes.reserveCapacity(1024)
        fieldEnds.reserveCapacity(16)
    }

    /// One row's fields, valid only during the callback.
    public struct Row: ~Copyable {
        public let line: Int
        let bytes: UnsafeBufferPointer<UInt8>
        let ends: UnsafeBufferPointer<Int>
        public var count: Int { ends.count }
        public func field(_ i: Int) -> UnsafeRawBufferPointer {
            let start = i == 0 ? 0 : ends[i - 1]
            return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[start..<ends[i]])
        }
    }

    /// Feeds the next chunk; calls `row` for each complete row and `problem` for each malformed one.
    public mutating func feed(_ chunk: UnsafeRawBufferPointer, row: (borrowing Row) throws -> Void,
                              problem: (Int, Problem) throws -> Void) rethrows {
        var chunk = chunk
        if skippingLine {
            guard let lf = chunk.firstIndex(of: 0x0A) else { return }
            skippingLine = false
            line += 1
            chunk = UnsafeRawBufferPointer(rebasing: chunk[(lf + 1)...])
        }
        pending.append(contentsOf: chunk)
        if atFileStart && pending.count >= 3 {
            if pending[0] == 0xEF && pending[1] == 0xBB && pending[2] == 0xBF { pending.removeFirst(3) }
            atFileStart = false
        }
        try scan(atEnd: false, row: row, problem: problem)
    }

    /// The end of the file: the last row may lack its line break; a quote still open is reported.
    public mutating func finish(row: (borrowing Row) throws -> Void, problem: (Int, Problem) throws -> Void) rethrows {
        if skippingLine { skippingLine = false; pending.removeAll(); return }
        if atFileStart, pending.starts(with: [0xEF, 0xBB, 0xBF]) { pending.removeFirst(3) }
        atFileStart = false
        try scan(atEnd: true, row: row, problem: problem)
        pending.removeAll()
    }

    static let bareCR = "a carriage return that does not end the line: lines must end in LF or CRLF (is this a file with classic Mac line endings? convert it first)"

    /// `resumeAt` nil: the bad line goes on past the bytes at hand; skip it to its line break.
    private enum Step { case row(end: Int), needMore(inQuotes: Bool), bad(String, resumeAt: Int?) }

    private mutating func scan(atEnd: Bool, row: (borrowing Row) throws -> Void,
                               problem: (Int, Problem) throws -> Void) rethrows {
        var start = 0
        defer { if start > 0 { pending.removeFirst(start) } }
        while start < pending.count {
            let rowLine = line
            let step = pending.withUnsafeBufferPointer { parseRow(from: start, in: $0, atEnd: atEnd) }
            switch step {
            case .row(let end):
                line += countLineBreaks(start, end)
                start = end
                // A blank line is not a row.
                if fieldEnds.count == 1 && fieldEnds[0] == 0 { continue }
                try fieldBytes.withUnsafeBufferPointer { b in
                    try fieldEnds.withUnsafeBufferPointer { e in try row(Row(line: rowLine, bytes: b, ends: e)) }
                }
            case .bad(let why, let resume):
                try problem(rowLine, .badQuoting(why))
                if let resume {
                    line += countLineBreaks(start, resume)
                    start = resume
                } else {
                    line += countLineBreaks(start, pending.count)
                    start = pending.count
                    skippingLine = !atEnd
                }
            case .needMore(let inQuotes):
                guard pending.count - start > maxRowBytes else { return }
                if inQuotes, let lf = pending[start...].firstIndex(of: 0x0A), lf - start < maxRowBytes {
                    try problem(rowLine, .badQuoting("a quoted field opened on line \(rowLine) is still open after \(maxRowBytes) bytes"))
                    line += 1
                    start = lf + 1
                } else {
                    try problem(rowLine, .rowTooLong)
                    if let lf = pending[start...].firstIndex(of: 0x0A) {
                        line += 1
                        start = lf + 1
                    } else {
                        start = pending.count
                        skippingLine = true
                    }
                }
            }
        }
    }

    private func countLineBreaks(_ from: Int, _ to: Int) -> Int {
        var n = 0
        for i in from..<to where pending[i] == 0x0A { n += 1 }
        return n
    }

    /// Parses one row starting at `start`, filling `fieldBytes`/`fieldEnds`.
    private mutating func parseRow(from start: Int, in b: UnsafeBufferPointer<UInt8>, atEnd: Bool) -> Step {
        fieldBytes.removeAll(keepingCapacity: true)
        fieldEnds.removeAll(keepingCapacity: true)
        let quote: UInt8 = 0x22, comma: UInt8 = 0x2C, lf: UInt8 = 0x0A, cr: UInt8 = 0x0D
        var i = start
        func restOfLine(_ from: Int) -> Int? {
            var j = from
            while j < b.count && b[j] != lf { j += 1 }
            return j < b.count ? j + 1 : nil
        }
        while true {
            if i < b.count && b[i] == quote {
                // Quoted field: runs to a quote not followed by another.
                i += 1
                while true {
                    guard i < b.count else {
                        if atEnd {
                            let next = restOfLine(start)
                            return .bad("the file ends inside a quoted field", resumeAt: next)
                        }
                        return .needMore(inQuotes: true)
                    }
                    let c = b[i]
                    if c == lf {
                        return .bad("the quoted field \(fieldEnds.count + 1) is not closed on its line (a field cannot span lines)", resumeAt: i + 1)
                    }
                    if c == cr {
                        if i + 1 == b.count && !atEnd { return .needMore(inQuotes: true) }
                        if i + 1 == b.count || b[i + 1] != lf { return .bad(Self.bareCR, resumeAt: restOfLine(i)) }
                    }
                    if c == quote {
                        if i + 1 < b.count && b[i + 1] == quote {
                            fieldBytes.append(quote)
                            i += 2
                            continue
                        }
                        if i + 1 == b.count && !atEnd { return .needMore(inQuotes: true) }
                        i += 1
                        break
                    }
                    fieldBytes.append(c)
                    i += 1
                }
                fieldEnds.append(fieldBytes.count)
                guard i < b.count else { return atEnd ? .row(end: i) : .needMore(inQuotes: false) }
                switch b[i] {
                case comma: i += 1; continue
                case lf: return .row(end: i + 1)
                case cr where i + 1 < b.count && b[i + 1] == lf: return .row(end: i + 2)
                case cr where i + 1 == b.count: return atEnd ? .row(end: i + 1) : .needMore(inQuotes: false)
                case cr: return .bad(Self.bareCR, resumeAt: restOfLine(i))
                default: return .bad("text after the closing quote of field \(fieldEnds.count)", resumeAt: restOfLine(i))
                }
            }
            // Unquoted field: runs to a comma or the line break.
            let fieldStart = i
            while i < b.count {
                let c = b[i]
                if c == comma || c == lf { break }
                if c == quote { return .bad("a quote inside unquoted field \(fieldEnds.count + 1)", resumeAt: restOfLine(i)) }
                if c == cr {
                    if i + 1 == b.count { if atEnd { break } else { return .needMore(inQuotes: false) } }
                    if b[i + 1] != lf { return .bad(Self.bareCR, resumeAt: restOfLine(i)) }
                }
                i += 1
            }
            guard i < b.count || atEnd else { return .needMore(inQuotes: false) }
            var end = i
            if end > fieldStart && b[end - 1] == cr && (i == b.count || b[i] == lf) { end -= 1 }
            fieldBytes.append(contentsOf: UnsafeBufferPointer(rebasing: b[fieldStart..<end]))
            fieldEnds.append(fieldBytes.count)
            if i == b.count { return .row(end: i) }
            if b[i] == lf { return .row(end: i + 1) }
            i += 1  // comma
        }
    }
}
