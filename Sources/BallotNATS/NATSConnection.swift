public import CNATS

/// A connection to a NATS server through the official C client. It reconnects by itself for
/// as long as it lives (a server restart is a pause, not an end), and may be made while no
/// server is up: it connects when one is.
public final class NATSConnection: @unchecked Sendable {
    let handle: OpaquePointer
    public let url: String

    /// `url`: one server, or several comma-separated (a cluster), each tried in turn.
    /// `name` is how the server's monitoring shows this client. `waitForServer`: connect even
    /// when no server answers yet, and go on trying in the background (a daemon); otherwise
    /// (a command) no server is an error at once.
    public init(url: String, name: String, waitForServer: Bool, connectTimeoutMilliseconds: Int64 = 2000) throws(NATSError) {
        self.url = url
        var options: OpaquePointer?
        try NATSError.check(natsOptions_Create(&options), "natsOptions_Create", url)
        defer { natsOptions_Destroy(options) }
        let servers = url.split(separator: ",").map { String($0.filter { !$0.isWhitespace }) }.filter { !$0.isEmpty }
        try withCStrings(servers) { list throws(NATSError) in
            try NATSError.check(natsOptions_SetServers(options, list.baseAddress, Int32(list.count)), "natsOptions_SetServers", url)
        }
        try NATSError.check(natsOptions_SetName(options, name), "natsOptions_SetName", url)
        try NATSError.check(natsOptions_SetTimeout(options, connectTimeoutMilliseconds), "natsOptions_SetTimeout", url)
        try NATSError.check(natsOptions_SetMaxReconnect(options, -1), "natsOptions_SetMaxReconnect", url)
        try NATSError.check(natsOptions_SetReconnectWait(options, 250), "natsOptions_SetReconnectWait", url)
        // Publishes made while reconnecting wait in this buffer (8 MiB) rather than fail at once.
        try NATSError.check(natsOptions_SetReconnectBufSize(options, 8 << 20), "natsOptions_SetReconnectBufSize", url)
        try NATSError.check(natsOptions_SetRetryOnFailedConnect(options, waitForServer, nil, nil), "natsOptions_SetRetryOnFailedConnect", url)
        var connection: OpaquePointer?
        let status = natsConnection_Connect(&connection, options)
        // NATS_NOT_YET_CONNECTED: no server yet; the client keeps trying in the background.
        guard status == NATS_OK || status == NATS_NOT_YET_CONNECTED, let connection else {
            throw NATSError("natsConnection_Connect", url, status: status)
        }
        handle = connection
    }

    /// Whether the client is connected now (it may be reconnecting).
    public var isConnected: Bool { natsConnection_Status(handle) == NATS_CONN_STATUS_CONNECTED }

    /// Sends what is buffered and waits for the server to answer a ping.
    public func flush(timeoutMilliseconds: Int64) throws(NATSError) {
        try NATSError.check(natsConnection_FlushTimeout(handle, timeoutMilliseconds), "natsConnection_FlushTimeout", url)
    }

    /// JetStream on this connection; `timeoutMilliseconds` bounds each request to it.
    public func jetStream(timeoutMilliseconds: Int64 = 5000) throws(NATSError) -> JetStream {
        try JetStream(connection: self, timeoutMilliseconds: timeoutMilliseconds)
    }

    deinit {
        natsConnection_Close(handle)
        natsConnection_Destroy(handle)
    }
}

/// One message as the client received it; it owns the C client's message.
public final class NATSMessage: @unchecked Sendable {
    let handle: OpaquePointer
    /// What the message came from (its subscription, or JetStream), kept so that the
    /// subscription and connection an acknowledgement goes out on outlive the message.
    let owner: AnyObject

    init(_ handle: OpaquePointer, owner: AnyObject) {
        self.handle = handle
        self.owner = owner
    }

    public var subject: String { String(cString: natsMsg_GetSubject(handle)) }

    public var data: [UInt8] {
        let count = Int(natsMsg_GetDataLength(handle))
        guard count > 0, let bytes = natsMsg_GetData(handle) else { return [] }
        return bytes.withMemoryRebound(to: UInt8.self, capacity: count) { Array(UnsafeBufferPointer(start: $0, count: count)) }
    }

    /// A header's first value, or nil when the message has none.
    public func header(_ name: String) -> String? {
        var value: UnsafePointer<CChar>?
        guard natsMsgHeader_Get(handle, name, &value) == NATS_OK, let value else { return nil }
        return String(cString: value)
    }

    /// Where a JetStream message sits in its stream, and how often it has been delivered.
    public func jetStreamPosition() throws(NATSError) -> (streamSequence: UInt64, delivered: UInt64) {
        var meta: UnsafeMutablePointer<jsMsgMetaData>?
        try NATSError.check(natsMsg_GetMetaData(&meta, handle), "natsMsg_GetMetaData", subject)
        defer { jsMsgMetaData_Destroy(meta) }
        return (meta!.pointee.Sequence.Stream, meta!.pointee.NumDelivered)
    }

    /// Tells JetStream the message is dealt with: it is not delivered again.
    public func ack() throws(NATSError) {
        try NATSError.check(natsMsg_Ack(handle, nil), "natsMsg_Ack", subject)
    }

    /// Tells JetStream to deliver the message again after `delayMilliseconds`.
    public func nak(delayMilliseconds: Int64) throws(NATSError) {
        try NATSError.check(natsMsg_NakWithDelay(handle, delayMilliseconds, nil), "natsMsg_NakWithDelay", subject)
    }

    deinit { natsMsg_Destroy(handle) }
}
