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
        // Nothing is read before the file's first three bytes are here: a byte-order mark is
        // dropped only from the very start of the file, however it arrives.
        if atFileStart {
            guard pending.count >= 3 else { return }
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

    /// Finds the row at `start`: a whole line, up to its LF, or to the end of the file. Nothing
    /// is decided about a line before all of it is at hand, or more than `maxRowBytes` of it,
    /// so a file gives the same rows and problems whatever pieces it arrives in.
    private mutating func scan(atEnd: Bool, row: (borrowing Row) throws -> Void,
                               problem: (Int, Problem) throws -> Void) rethrows {
        var start = 0
        defer { if start > 0 { pending.removeFirst(start) } }
        while start < pending.count {
            let rowLine = line
            let lf = LineBreaks.firstLF(in: pending, from: start)
            let contentEnd = lf ?? pending.count
            // The line goes on past `maxRowBytes`: refused whether or not its end is here yet.
            if LineBreaks.length(of: pending, from: start, to: contentEnd) > maxRowBytes {
                try problem(rowLine, tooLong(from: start))
                if let lf {
                    line += 1
                    start = lf + 1
                } else {
                    start = pending.count
                    skippingLine = !atEnd
                }
                continue
            }
            guard lf != nil || atEnd else { return }
            let parsed = pending.withUnsafeBufferPointer { parseLine(UnsafeBufferPointer(rebasing: $0[start..<contentEnd]), endsFile: lf == nil) }
            if lf != nil { line += 1 }
            start = lf.map { $0 + 1 } ?? pending.count
            if let why = parsed {
                try problem(rowLine, .badQuoting(why))
                continue
            }
            // A blank line is not a row.
            if fieldEnds.count == 1 && fieldEnds[0] == 0 { continue }
            try fieldBytes.withUnsafeBufferPointer { b in
                try fieldEnds.withUnsafeBufferPointer { e in try row(Row(line: rowLine, bytes: b, ends: e)) }
            }
        }
    }

    /// What is wrong with a line longer than `maxRowBytes`, from the part of it every reading
    /// has: a bare carriage return in it says the file has classic Mac line endings.
    private func tooLong(from start: Int) -> Problem {
        let end = min(pending.count, start + maxRowBytes + 1)
        for i in start..<end where pending[i] == 0x0D && i + 1 < end && pending[i + 1] != 0x0A {
            return .badQuoting(Self.bareCR)
        }
        return .rowTooLong
    }

    /// Parses one line (without its LF) into `fieldBytes`/`fieldEnds`; nil if it is a row,
    /// else what is wrong with it. `endsFile`: the line is the file's last and has no LF.
    private mutating func parseLine(_ b: UnsafeBufferPointer<UInt8>, endsFile: Bool) -> String? {
        fieldBytes.removeAll(keepingCapacity: true)
        fieldEnds.removeAll(keepingCapacity: true)
        let quote: UInt8 = 0x22, comma: UInt8 = 0x2C, cr: UInt8 = 0x0D
        // A CR is allowed only as the first half of a CRLF (or at the very end of the file),
        // which is the line's last byte here.
        let end = b.last == cr ? b.count - 1 : b.count
        var i = 0
        while true {
            if i < end && b[i] == quote {
                // Quoted field: runs to a quote not followed by another.
                i += 1
                while true {
                    guard i < end else {
                        return endsFile ? "the file ends inside a quoted field"
                            : "the quoted field \(fieldEnds.count + 1) is not closed on its line (a field cannot span lines)"
                    }
                    let c = b[i]
                    if c == cr { return Self.bareCR }
                    if c == quote {
                        if i + 1 < end && b[i + 1] == quote {
                            fieldBytes.append(quote)
                            i += 2
                            continue
                        }
                        i += 1
                        break
                    }
                    fieldBytes.append(c)
                    i += 1
                }
                fieldEnds.append(fieldBytes.count)
                guard i < end else { return nil }
                switch b[i] {
                case comma: i += 1; continue
                case cr: return Self.bareCR
                default: return "text after the closing quote of field \(fieldEnds.count)"
                }
            }
            // Unquoted field: runs to a comma or the line's end.
            let fieldStart = i
            while i < end {
                let c = b[i]
                if c == comma { break }
                if c == quote { return "a quote inside unquoted field \(fieldEnds.count + 1)" }
                if c == cr { return Self.bareCR }
                i += 1
            }
            fieldBytes.append(contentsOf: UnsafeBufferPointer(rebasing: b[fieldStart..<i]))
            fieldEnds.append(fieldBytes.count)
            if i == end { return nil }
            i += 1  // comma
        }
    }
}
