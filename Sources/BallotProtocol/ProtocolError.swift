public import BallotDomain

/// A request refused before it reaches the ledger: malformed, unknown, or not allowed. Carries
/// the same stable codes as the ledger's refusals.
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
