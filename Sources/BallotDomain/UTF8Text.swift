extension String {
    /// `raw` as a String if it is valid UTF-8, else nil. Most fields are ASCII, which is valid
    /// UTF-8 as it stands: for them `String(decoding:)` skips the generic validating path, which
    /// looks up generic metadata on every call and costs more than the rest of reading a vote.
    @inlinable
    public init?(utf8Bytes raw: UnsafeRawBufferPointer) {
        if raw.allSatisfy({ $0 < 0x80 }) {
            self = String(decoding: raw, as: UTF8.self)
        } else if let valid = String(validating: raw, as: UTF8.self) {
            self = valid
        } else {
            return nil
        }
    }
}

extension String {
    /// Whether the string's UTF-8 is exactly `raw`: compares bytes to bytes, without walking
    /// the string's UTF-8 view one element at a time.
    @inlinable
    public func hasUTF8(_ raw: UnsafeRawBufferPointer) -> Bool {
        guard utf8.count == raw.count else { return false }
        return utf8.withContiguousStorageIfAvailable { UnsafeRawBufferPointer($0).elementsEqual(raw) } ?? utf8.elementsEqual(raw)
    }
}

extension String {
    /// The first control character (Unicode general category Cc) other than those `allowed`:
    /// what may not be in text a person reads in a terminal (an escape sequence could rewrite
    /// what it shows them).
    public func firstControlCharacter(allowing allowed: Set<Unicode.Scalar> = []) -> Unicode.Scalar? {
        unicodeScalars.first { $0.isControlCharacter && !allowed.contains($0) }
    }
}

extension Unicode.Scalar {
    /// A control character: Unicode general category Cc (C0, DEL and C1).
    public var isControlCharacter: Bool { properties.generalCategory == .control }
}
