/// A 128-bit key, such as the first half of an HMAC or SHA-256 value.
@frozen
public struct Key128: Hashable, Sendable {
    public let a: UInt64
    public let b: UInt64
    @inlinable
    public init(a: UInt64, b: UInt64) {
        self.a = a
        self.b = b
    }
}
