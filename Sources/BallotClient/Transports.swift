import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
public import NIOSSL

/// Where a TLS listener is and the files that prove who the client is: its certificate and key,
/// and the CA that signed the daemon's certificate.
public struct TLSEndpoint: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var certificateFile: String
    public var privateKeyFile: String
    public var caFile: String

    public init(host: String, port: Int, certificateFile: String, privateKeyFile: String, caFile: String) {
        self.host = host
        self.port = port
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.caFile = caFile
    }

    /// The client side of mutual TLS, as `ballotctl --connect` and a follower speak it: TLS 1.2
    /// or later, this client's certificate, and the daemon's checked against the CA given (not
    /// its host name: the CA is the operator's own).
    public static func clientContext(certificateFile: String, privateKeyFile: String, caFile: String) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .noHostnameVerification
        tls.trustRoots = .file(caFile)
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: privateKeyFile, format: .pem))
        return try NIOSSLContext(configuration: tls)
    }

    /// Reads `tls://HOST:PORT` (an IPv6 host in brackets).
    public static func address(_ url: String) -> (host: String, port: Int)? {
        guard url.hasPrefix("tls://") else { return nil }
        let rest = url.dropFirst("tls://".count)
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }
}

/// A connection to the daemon on NIO, with TLS when the endpoint says so, waited on by a
/// blocking caller. What arrives is kept in an inbox until read; past `Inbox.highWater` bytes
/// the channel stops reading, so that a caller that reads slowly (or not at all) holds a
/// bounded amount and the daemon sees it push back, as it would a blocking socket.
final class ClientConnection: @unchecked Sendable {
    enum Endpoint {
        case unix(String)
        case tls(TLSEndpoint)
    }

    private let channel: any Channel
    private let inbox: Inbox
    private let timeout: Int
    private let closed = NIOLockedValueBox(false)

    init(_ endpoint: Endpoint, timeout: Int) throws {
        self.timeout = timeout
        let inbox = Inbox()
        self.inbox = inbox
        var tls: NIOSSLContext?
        if case .tls(let e) = endpoint {
            do {
                tls = try TLSEndpoint.clientContext(certificateFile: e.certificateFile, privateKeyFile: e.privateKeyFile, caFile: e.caFile)
            } catch {
                throw ClientError.unreachable("cannot load the client's certificate \(e.certificateFile), key \(e.privateKeyFile) or CA \(e.caFile): \(error)")
            }
        }
        // Connecting takes at most the timeout, or a minute when replies may take for ever.
        let connectLimit = Int64(timeout > 0 ? timeout : 60)
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(connectLimit))
            .channelInitializer { [tls] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: nil)) }
                    try channel.pipeline.syncOperations.addHandler(InboxHandler(inbox))
                }
            }
        let deadline = NIODeadline.now() + .seconds(connectLimit)
        while true {
            do {
                switch endpoint {
                case .unix(let path): channel = try bootstrap.connect(unixDomainSocketPath: path).wait()
                case .tls(let e): channel = try bootstrap.connect(host: e.host, port: e.port).wait()
                }
                break
            } catch let error as IOError where error.errnoCode == EAGAIN && NIODeadline.now() < deadline {
                // The daemon's listen backlog is full (a non-blocking connect does not wait for
                // room as a blocking one does): try again shortly.
                usleep(10_000)
            } catch {
                let reason = (error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(error)"
                switch endpoint {
                case .unix(let path): throw ClientError.unreachable("cannot connect to \(path): \(reason)")
                case .tls(let e): throw ClientError.unreachable("cannot connect to tls://\(e.host):\(e.port): \(reason)")
                }
            }
        }
        inbox.channel = channel
    }

    /// Waits until the bytes are handed to the kernel; a daemon that stops reading for
    /// `timeout` seconds ends the connection.
    func send(_ bytes: [UInt8]) throws {
        let written = channel.writeAndFlush(ByteBuffer(bytes: bytes))
        let timedOut = NIOLockedValueBox(false)
        if timeout > 0 {
            let channel = self.channel
            let limit = channel.eventLoop.scheduleTask(in: .seconds(Int64(timeout))) {
                timedOut.withLockedValue { $0 = true }
                channel.close(promise: nil)
            }
            written.whenComplete { _ in limit.cancel() }
        }
        do {
            try written.wait()
        } catch {
            if timedOut.withLockedValue({ $0 }) { throw ClientError.connection("write: the daemon read nothing for \(timeout) s") }
            throw ClientError.connection("write: \(inbox.failure ?? "\(error)")")
        }
    }

    /// A reply that does not come within the timeout ends the connection: a late one must not
    /// be taken for the answer to the next request.
    func receive(into buffer: inout [UInt8]) throws -> Bool {
        do {
            return try inbox.take(into: &buffer, timeout: timeout)
        } catch {
            close()
            throw error
        }
    }

    func finishSending() { channel.close(mode: .output, promise: nil) }

    func close() {
        guard closed.withLockedValue({ was in defer { was = true }; return !was }) else { return }
        // Waiting for the close is only possible off the channel's own event loop.
        if channel.eventLoop.inEventLoop {
            channel.close(promise: nil)
        } else {
            try? channel.close().wait()
        }
    }

    deinit { close() }

    /// What the connection brought, waited for by the reading thread.
    final class Inbox: @unchecked Sendable {
        /// Past this many unread bytes the channel stops reading until the reader catches up.
        static let highWater = 256 << 10
        private let condition = NSCondition()
        private var bytes: [UInt8] = []
        private var ended = false
        private var reading = true
        private(set) var failure: String?
        /// Set once connected, before any read is handled off the event loop.
        var channel: (any Channel)?

        /// On the event loop; false: stop reading until `take` resumes it.
        func put(_ buffer: ByteBuffer) -> Bool {
            condition.withLock {
                bytes += buffer.readableBytesView
                condition.broadcast()
                if bytes.count >= Self.highWater { reading = false }
                return reading
            }
        }

        func end(_ error: (any Error)? = nil) {
            condition.withLock {
                if let error, failure == nil { failure = Self.describe(error) }
                ended = true
                condition.broadcast()
            }
        }

        /// Moves what has arrived into `buffer`, waiting up to `timeout` seconds (0: for ever)
        /// for something; false once the connection ended with nothing left.
        func take(into buffer: inout [UInt8], timeout: Int) throws -> Bool {
            condition.lock()
            defer { condition.unlock() }
            let deadline = Date(timeIntervalSinceNow: Double(timeout))
            while bytes.isEmpty && !ended {
                if timeout > 0 {
                    guard condition.wait(until: deadline) else { throw ClientError.connection("read: no reply within \(timeout) s") }
                } else {
                    condition.wait()
                }
            }
            if bytes.isEmpty {
                if let failure { throw ClientError.connection(failure) }
                return false
            }
            buffer += bytes
            bytes.removeAll(keepingCapacity: true)
            if !reading, let channel {
                reading = true
                channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in channel.read() }
            }
            return true
        }

        static func describe(_ error: any Error) -> String {
            switch error {
            case NIOSSLError.handshakeFailed(let errors): "the TLS handshake failed: \(errors)"
            case NIOSSLError.uncleanShutdown: "the daemon closed the connection without ending TLS"
            case BoringSSLError.sslError(let errors): "TLS failed (the daemon refused this client's certificate, or this client the daemon's): \(errors)"
            default: "\(error)"
            }
        }
    }

    final class InboxHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private let inbox: Inbox
        init(_ inbox: Inbox) { self.inbox = inbox }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if !inbox.put(unwrapInboundIn(data)) { _ = context.channel.setOption(ChannelOptions.autoRead, value: false) }
        }
        func channelInactive(context: ChannelHandlerContext) { inbox.end() }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            inbox.end(error)
            context.close(promise: nil)
        }
    }
}
