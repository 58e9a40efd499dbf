import CNATS

/// A call to the NATS C client that failed: which call, on what, and the client's own words
/// (its status text, the JetStream error code when the server gave one, and its last error).
public struct NATSError: Error, Sendable, CustomStringConvertible {
    public let call: String
    public let context: String
    /// The client's `natsStatus`, as a number.
    public let status: Int32
    /// The JetStream error code (`jsErrCode`), 0 when there was none.
    public let jetStreamCode: Int32
    public let text: String

    /// The server has no such stream, consumer or message (a look-up's "not there").
    public var isNotFound: Bool {
        status == Int32(NATS_NOT_FOUND.rawValue)
            || [Int32(JSStreamNotFoundErr.rawValue), Int32(JSConsumerNotFoundErr.rawValue), Int32(JSNoMessageFoundErr.rawValue)].contains(jetStreamCode)
    }

    /// The call waited its whole time and got no answer (a fetch with nothing to fetch, a
    /// server away).
    public var isTimeout: Bool { status == Int32(NATS_TIMEOUT.rawValue) }

    public var description: String {
        let code = jetStreamCode != 0 ? " (JetStream error \(jetStreamCode))" : ""
        return "\(call) \(context): \(text)\(code)"
    }

    init(_ call: String, _ context: String, status: natsStatus, jetStreamCode: jsErrCode = jsErrCode(rawValue: 0)) {
        self.call = call
        self.context = context
        self.status = Int32(status.rawValue)
        self.jetStreamCode = Int32(jetStreamCode.rawValue)
        var last = NATS_OK
        let detail = nats_GetLastError(&last).map { String(cString: $0) } ?? ""
        let plain = String(cString: natsStatus_GetText(status))
        text = detail.isEmpty || detail == plain ? plain : "\(plain): \(detail)"
    }

    /// A stream, consumer or message that a look-up found missing.
    public static func notFound(_ what: String) -> NATSError {
        NATSError(call: "look-up", context: what, status: Int32(NATS_NOT_FOUND.rawValue), jetStreamCode: 0, text: "not found")
    }

    private init(call: String, context: String, status: Int32, jetStreamCode: Int32, text: String) {
        self.call = call
        self.context = context
        self.status = status
        self.jetStreamCode = jetStreamCode
        self.text = text
    }

    /// Throws unless `status` is `NATS_OK`.
    static func check(_ status: natsStatus, _ call: String, _ context: String, jetStreamCode: jsErrCode = jsErrCode(rawValue: 0)) throws(NATSError) {
        guard status == NATS_OK else { throw NATSError(call, context, status: status, jetStreamCode: jetStreamCode) }
    }
}
