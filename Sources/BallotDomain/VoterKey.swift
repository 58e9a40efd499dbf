public import BallotCollections

/// The keyed hash (HMAC-SHA256 under the operator's secret) of a voter's identifier. The raw
/// identifier is never stored; this is enough to refuse a second vote.
public struct VoterKey: Hashable, Sendable {
    public let digest: Digest32

    public init(_ digest: Digest32) { self.digest = digest }

    /// From the 32 bytes of the HMAC, in order.
    public init(_ raw: UnsafeRawBufferPointer) { digest = Digest32(raw) }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try digest.withBytes(body) }

    public var hex: String { digest.hex }

    /// The first 128 bits, which is what the in-memory duplicate check keeps per voter (half
    /// the memory; the chance of any collision among 10^9 voters is below 10^-20).
    public var prefix: Key128 { digest.prefix }
}
