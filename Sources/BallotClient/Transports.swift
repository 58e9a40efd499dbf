import Foundation
import NIOCore
import NIOPosix
public import NIOSSL
#if canImport(Glibc)
import Glibc
#endif

/// How a client's bytes travel: the daemon's Unix socket, or TCP with mutual TLS.
protocol ClientTransport: AnyObject {
    func send(_ bytes: [UInt8]) throws
    /// Appends what arrives next to `buffer`; false once the daemon has closed the connection.
    func receive(into buffer: inout [UInt8]) throws -> Bool
    /// Closes the sending side.
    func finishSending()
    func close()
}

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

/// The Unix socket, read and written with blocking calls.
final class UnixSocketTransport: ClientTransport {
    /// -1 once closed: an initializer that throws after setting every property still runs
    /// `deinit`, which must not close the number again (by then it may be another file's).
    private var fd: Int32

    init(path: String, timeout: Int) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError.unreachable("socket(): \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close()
            throw ClientError.unreachable("the socket path \(path) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard ok == 0 else {
            let reason = String(cString: strerror(errno))
            close()
            throw ClientError.unreachable("cannot connect to \(path): \(reason)")
        }
        // Both ways: a daemon that stops reading (a client that does not read its replies) must
        // not block a send for ever either.
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ raw: [UInt8]) throws {
        var offset = 0
        while offset < raw.count {
            // MSG_NOSIGNAL: a daemon that went away is an error here, not a SIGPIPE that kills us.
            let n = raw[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError.connection("write: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    func receive(into buffer: inout [UInt8]) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n == 0 { return false }
        guard n > 0 else { throw ClientError.connection("read: \(String(cString: strerror(errno)))") }
        buffer += chunk[..<n]
        return true
    }

    func finishSending() { shutdown(fd, Int32(SHUT_WR)) }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}

/// TCP with mutual TLS, on NIO and swift-nio-ssl: the client presents its certificate and
/// checks the daemon's against the CA it was given (not its host name: the CA is the
/// operator's own). One event loop thread of its own, ended at `close`.
final class TLSTransport: ClientTransport, @unchecked Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: any Channel
    private let inbox: Inbox
    private let timeout: Int
    private var closed = false

    init(_ endpoint: TLSEndpoint, timeout: Int) throws {
        self.timeout = timeout
        let inbox = Inbox()
        self.inbox = inbox
        let context: NIOSSLContext
        do {
            context = try TLSEndpoint.clientContext(certificateFile: endpoint.certificateFile, privateKeyFile: endpoint.privateKeyFile,
                                                    caFile: endpoint.caFile)
        } catch {
            try? group.syncShutdownGracefully()
            throw ClientError.unreachable("cannot load the client's certificate \(endpoint.certificateFile), key \(endpoint.privateKeyFile) or CA \(endpoint.caFile): \(error)")
        }
        do {
            channel = try ClientBootstrap(group: group)
                .connectTimeout(.seconds(Int64(max(timeout, 1))))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                        try channel.pipeline.syncOperations.addHandler(InboxHandler(inbox))
                    }
                }
                .connect(host: endpoint.host, port: endpoint.port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw ClientError.unreachable("cannot connect to tls://\(endpoint.host):\(endpoint.port): \(error)")
        }
    }

    func send(_ bytes: [UInt8]) throws {
        do {
            try channel.writeAndFlush(ByteBuffer(bytes: bytes)).wait()
        } catch {
            throw ClientError.connection("write: \(inbox.failure ?? "\(error)")")
        }
    }

    func receive(into buffer: inout [UInt8]) throws -> Bool {
        try inbox.take(into: &buffer, timeout: timeout)
    }

    func finishSending() { channel.close(mode: .output, promise: nil) }

    func close() {
        guard !closed else { return }
        closed = true
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    deinit { close() }

    /// What the connection brought, waited for by the reading thread.
    final class Inbox: @unchecked Sendable {
        private let condition = NSCondition()
        private var bytes: [UInt8] = []
        private var ended = false
        private(set) var failure: String?

        func put(_ buffer: ByteBuffer) {
            condition.withLock {
                bytes += buffer.readableBytesView
                condition.broadcast()
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
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { inbox.put(unwrapInboundIn(data)) }
        func channelInactive(context: ChannelHandlerContext) { inbox.end() }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            inbox.end(error)
            context.close(promise: nil)
        }
    }
}
