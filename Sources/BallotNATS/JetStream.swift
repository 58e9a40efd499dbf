public import CNATS
#if canImport(Glibc)
import Glibc
#endif

/// JetStream on one connection: streams made if missing, durable pull consumers, publishing
/// with a message id (which JetStream de-duplicates), and reading a subject's last message.
public final class JetStream: @unchecked Sendable {
    public let connection: NATSConnection
    let context: OpaquePointer
    /// Asynchronous publishes JetStream refused or never acknowledged, counted by the C
    /// client's callback (`ballot_nats_count_publish_failures`). Never freed: the C context is
    /// reference-counted and its callback may run after this object is gone (8 bytes a context).
    private let publishFailures = UnsafeMutablePointer<Int64>.allocate(capacity: 1)

    init(connection: NATSConnection, timeoutMilliseconds: Int64) throws(NATSError) {
        self.connection = connection
        publishFailures.initialize(to: 0)
        var options = jsOptions()
        try NATSError.check(jsOptions_Init(&options), "jsOptions_Init", connection.url)
        options.Wait = timeoutMilliseconds
        options.PublishAsync.MaxPending = 65536
        ballot_nats_count_publish_failures(&options, publishFailures)
        var context: OpaquePointer?
        let status = natsConnection_JetStream(&context, connection.handle, &options)
        guard status == NATS_OK, let context else {
            throw NATSError("natsConnection_JetStream", connection.url, status: status)
        }
        self.context = context
    }

    deinit {
        jsCtx_Destroy(context)
    }

    /// What a stream made by `ensureStream` keeps.
    public enum Retention: Sendable {
        /// Until a consumer acknowledges it (a queue of work).
        case workQueue
        /// Until the stream's limits remove it (a record to read back).
        case limits
    }

    /// Makes the stream unless one of that name exists (an operator's own is left as it is).
    /// `duplicateWindowSeconds`: how long JetStream remembers a message id to drop a repeat.
    public func ensureStream(_ name: String, subjects: [String], retention: Retention, duplicateWindowSeconds: Int64) throws(NATSError) {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(rawValue: 0)
        let found = js_GetStreamInfo(&info, context, name, nil, &code)
        if found == NATS_OK {
            jsStreamInfo_Destroy(info)
            return
        }
        guard found == NATS_NOT_FOUND || code == JSStreamNotFoundErr else {
            throw NATSError("js_GetStreamInfo", name, status: found, jetStreamCode: code)
        }
        var config = jsStreamConfig()
        try NATSError.check(jsStreamConfig_Init(&config), "jsStreamConfig_Init", name)
        let status: natsStatus = name.withCString { cName in
            withCStrings(subjects) { cSubjects in
                config.Name = cName
                config.Subjects = cSubjects.baseAddress
                config.SubjectsLen = Int32(subjects.count)
                config.Retention = retention == .workQueue ? js_WorkQueuePolicy : js_LimitsPolicy
                config.Storage = js_FileStorage
                config.Duplicates = duplicateWindowSeconds * 1_000_000_000
                config.AllowDirect = true
                code = jsErrCode(rawValue: 0)
                return js_AddStream(&info, context, &config, nil, &code)
            }
        }
        try NATSError.check(status, "js_AddStream", name, jetStreamCode: code)
        jsStreamInfo_Destroy(info)
    }

    /// A durable pull consumer of `stream` (made if missing, with explicit acks) and a
    /// subscription that fetches from it; with no `durable` name, a consumer of this
    /// subscription's own that the server removes once it is gone.
    public func pullSubscribe(stream: String, subject: String, durable: String?, ackWaitSeconds: Int64,
                              maxAckPending: Int64) throws(NATSError) -> PullSubscription {
        var options = jsSubOptions()
        try NATSError.check(jsSubOptions_Init(&options), "jsSubOptions_Init", stream)
        var subscription: OpaquePointer?
        var code = jsErrCode(rawValue: 0)
        let status: natsStatus = stream.withCString { cStream in
            subject.withCString { cSubject in
                options.Stream = cStream
                options.Config.FilterSubject = cSubject
                options.Config.AckPolicy = js_AckExplicit
                options.Config.AckWait = ackWaitSeconds * 1_000_000_000
                options.Config.MaxAckPending = maxAckPending
                options.Config.MaxDeliver = -1
                return js_PullSubscribe(&subscription, context, subject, durable, nil, &options, &code)
            }
        }
        let name = "\(stream)/\(durable ?? "ephemeral")"
        try NATSError.check(status, "js_PullSubscribe", name, jetStreamCode: code)
        return PullSubscription(subscription!, name: name, jetStream: self)
    }

    /// Whether `stream` has the consumer `durable` (false when either is missing).
    public func hasConsumer(stream: String, durable: String) throws(NATSError) -> Bool {
        var info: UnsafeMutablePointer<jsConsumerInfo>?
        var code = jsErrCode(rawValue: 0)
        let status = js_GetConsumerInfo(&info, context, stream, durable, nil, &code)
        if status == NATS_OK {
            jsConsumerInfo_Destroy(info)
            return true
        }
        let error = NATSError("js_GetConsumerInfo", "\(stream)/\(durable)", status: status, jetStreamCode: code)
        if error.isNotFound { return false }
        throw error
    }

    /// Publishes and waits for JetStream's acknowledgement: the stream's sequence number, and
    /// whether `messageID` was a repeat it dropped.
    @discardableResult
    public func publish(subject: String, data: [UInt8], messageID: String) throws(NATSError) -> (sequence: UInt64, duplicate: Bool) {
        let message = try Self.message(subject: subject, data: data, messageID: messageID)
        defer { natsMsg_Destroy(message) }
        var ack: UnsafeMutablePointer<jsPubAck>?
        var code = jsErrCode(rawValue: 0)
        try NATSError.check(js_PublishMsg(&ack, context, message, nil, &code), "js_PublishMsg", subject, jetStreamCode: code)
        defer { jsPubAck_Destroy(ack) }
        return (ack!.pointee.Sequence, ack!.pointee.Duplicate)
    }

    /// Publishes without waiting; `publishAsyncComplete` waits for every acknowledgement.
    public func publishAsync(subject: String, data: [UInt8], messageID: String) throws(NATSError) {
        var message: OpaquePointer? = try Self.message(subject: subject, data: data, messageID: messageID)
        let status = js_PublishMsgAsync(context, &message, nil)
        // On success the client owns the message and has set `message` to nil.
        if message != nil { natsMsg_Destroy(message) }
        try NATSError.check(status, "js_PublishMsgAsync", subject)
    }

    /// Waits until JetStream has acknowledged every asynchronous publish, and returns how many
    /// it refused, or did not acknowledge within `timeoutMilliseconds`, since the last call (0:
    /// all are stored). Those not acknowledged are given up: a message whose acknowledgement
    /// died with a server would otherwise be waited for by every later call. Publish them
    /// again (with the same message id, JetStream keeps one).
    public func publishAsyncComplete(timeoutMilliseconds: Int64) throws(NATSError) -> Int64 {
        var options = jsPubOptions()
        try NATSError.check(jsPubOptions_Init(&options), "jsPubOptions_Init", "")
        options.MaxWait = timeoutMilliseconds
        let status = js_PublishAsyncComplete(context, &options)
        // A time-out counts as at least one not stored, whatever the counts say: the client
        // drops a message from its pending list before its failure callback has counted it.
        var abandoned: Int64 = 0
        if status == NATS_TIMEOUT {
            abandoned = 1
            var pending = natsMsgList()
            if js_PublishAsyncGetPendingList(&pending, context) == NATS_OK {
                abandoned = max(1, Int64(pending.Count))
                natsMsgList_Destroy(&pending)
            }
        } else {
            try NATSError.check(status, "js_PublishAsyncComplete", "")
        }
        return ballot_nats_take_counter(publishFailures) + abandoned
    }

    /// The newest message of `stream` on `subject`, or nil when there is none.
    public func lastMessage(stream: String, subject: String) throws(NATSError) -> NATSMessage? {
        var message: OpaquePointer?
        var code = jsErrCode(rawValue: 0)
        let status = js_GetLastMsg(&message, context, stream, subject, nil, &code)
        if status == NATS_OK, let message { return NATSMessage(message, owner: self) }
        let error = NATSError("js_GetLastMsg", "\(stream) \(subject)", status: status, jetStreamCode: code)
        if error.isNotFound { return nil }
        throw error
    }

    private static func message(subject: String, data: [UInt8], messageID: String) throws(NATSError) -> OpaquePointer {
        var message: OpaquePointer?
        let status = data.withUnsafeBufferPointer { bytes in
            natsMsg_Create(&message, subject, nil, bytes.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, Int32(bytes.count))
        }
        try NATSError.check(status, "natsMsg_Create", subject)
        let header = natsMsgHeader_Set(message, "Nats-Msg-Id", messageID)
        guard header == NATS_OK else {
            natsMsg_Destroy(message)
            throw NATSError("natsMsgHeader_Set", subject, status: header)
        }
        return message!
    }
}

/// A pull subscription to a durable consumer.
public final class PullSubscription: @unchecked Sendable {
    let handle: OpaquePointer
    public let name: String
    /// Kept so that the connection outlives the subscription.
    let jetStream: JetStream

    init(_ handle: OpaquePointer, name: String, jetStream: JetStream) {
        self.handle = handle
        self.name = name
        self.jetStream = jetStream
    }

    /// Up to `batch` messages, waiting at most `timeoutMilliseconds` for the first; an empty
    /// array when none came in that time.
    public func fetch(batch: Int, timeoutMilliseconds: Int64) throws(NATSError) -> [NATSMessage] {
        var list = natsMsgList()
        var code = jsErrCode(rawValue: 0)
        let status = natsSubscription_Fetch(&list, handle, Int32(batch), timeoutMilliseconds, &code)
        if status == NATS_TIMEOUT { return [] }
        try NATSError.check(status, "natsSubscription_Fetch", name, jetStreamCode: code)
        var messages: [NATSMessage] = []
        messages.reserveCapacity(Int(list.Count))
        for i in 0..<Int(list.Count) {
            if let m = list.Msgs[i] {
                messages.append(NATSMessage(m, owner: self))
                list.Msgs[i] = nil   // owned by the NATSMessage now, not by the list
            }
        }
        natsMsgList_Destroy(&list)
        return messages
    }

    deinit {
        natsSubscription_Destroy(handle)
    }
}

/// Lends C strings of `strings` as an array of pointers, valid inside `body`.
func withCStrings<R, E: Error>(_ strings: [String], _ body: (UnsafeMutableBufferPointer<UnsafePointer<CChar>?>) throws(E) -> R) throws(E) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    var pointers = copies.map { UnsafePointer($0) }
    return try pointers.withUnsafeMutableBufferPointer { (list) throws(E) -> R in try body(list) }
}
