#if canImport(Glibc)
import Glibc  // memchr
#endif

/// Where lines end, the same for both readers of vote files (`CSVScanner`, `LineSplitter`): a
/// line is the bytes before an LF, and a CR that ends them is half of a CRLF (or, at the very
/// end of a file, a line break of its own), which the row limit does not count.
enum LineBreaks {
    /// The index of the first LF in `bytes` at or after `start`.
    static func firstLF(in bytes: [UInt8], from start: Int) -> Int? {
        guard start < bytes.count else { return nil }
        return bytes.withUnsafeBytes { b in
            memchr(b.baseAddress! + start, 0x0A, b.count - start).map { b.baseAddress!.distance(to: UnsafeRawPointer($0)) }
        }
    }

    /// The length of the line in `bytes[start..<end]` (`end`: its LF, or as far as it has come)
    /// as the row limit counts it.
    static func length(of bytes: [UInt8], from start: Int, to end: Int) -> Int {
        end - start - (end > start && bytes[end - 1] == 0x0D ? 1 : 0)
    }
}
