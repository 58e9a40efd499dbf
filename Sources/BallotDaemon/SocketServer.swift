import Foundation
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
import BallotDomain
import BallotLedger
import BallotProtocol
#if canImport(Glibc)
import Glibc
#endif

/// `ballotd` as a service: owns the ledger and its writer thread, serves the Unix socket, and
/// on graceful shutdown stops accepting, answers what is in flight, commits what is queued,
/// closes LMDB, removes its socket file and returns.
public struct BallotDaemon: Service {
    let config: DaemonConfig
    let logger: Logger

    public init(config: DaemonConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    public func run() async throws {
        Self.raiseOpenFileLimit(logger)
        let instance = try InstanceGuard(dataDirectory: config.dataDirectory)
        defer { instance.release() }
        try InstanceGuard.claimSocketPath(config.socketPath)

        let secret: [UInt8]
        do {
            secret = Array(try Data(contentsOf: URL(fileURLWithPath: config.secretFile)))
        } catch {
            throw DaemonError.setup("cannot read the voter secret file \(config.secretFile): \(error.localizedDescription)")
        }
        let hasher = try VoterHasher(secret: secret)
        let ledger = try Ledger(path: "\(config.dataDirectory)/ledger",
                                options: Ledger.Options(environment: .init(mapSize: config.mapSize, maxMapSize: config.maxMapSize),
                                                        verifyOnOpen: config.verifyOnOpen))
        logger.info("ledger open", metadata: ["ledger.path": "\(ledger.path)", "ledger.size": "\(ledger.size)", "ledger.root": "\(ledger.root)"])
        let metrics = DaemonMetrics()
        let writer = GroupCommitWriter(ledger: ledger, maxBatch: config.maxBatch, metrics: metrics)
        writer.start()
        let handler = OperationHandler(writer: writer, reader: ledger.reader, hasher: hasher, clock: SystemClock(),
                                       metrics: metrics, renderMetrics: config.renderMetrics)

        let group = MultiThreadedEventLoopGroup.singleton
        let maxLine = config.maxLineBytes
        let rules = config.access
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .bind(unixDomainSocketPath: config.socketPath) { child in
                Self.peer(of: child, rules: rules).flatMapThrowing { peer in
                    try child.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maximumLineBytes: maxLine)))
                    return (peer, try NIOAsyncChannel<LineFrameDecoder.Frame, ByteBuffer>(wrappingChannelSynchronously: child))
                }
            }
        guard chmod(config.socketPath, mode_t(config.socketMode)) == 0 else {
            throw DaemonError.setup("cannot set the mode of \(config.socketPath): \(String(cString: strerror(errno)))")
        }
        logger.info("serving", metadata: ["socket.path": "\(config.socketPath)", "socket.mode": "\(String(config.socketMode, radix: 8))"])
        SystemdNotify.ready()

        await withDiscardingTaskGroup { connections in
            do {
                try await withGracefulShutdownHandler {
                    try await server.executeThenClose { inbound in
                        for try await (peer, connection) in inbound {
                            connections.addTask {
                                await Connection(handler: handler, peer: peer, maxLineBytes: maxLine, logger: logger).serve(connection)
                            }
                        }
                    }
                } onGracefulShutdown: {
                    logger.info("shutting down: no new connections")
                    server.channel.close(promise: nil)
                    // Subscribers wait for commits rather than for requests: end their streams.
                    writer.commits.close()
                }
            } catch {
                logger.error("the listening socket failed", metadata: ["error": "\(error)"])
            }
        }
        // Every connection has answered its last request; commit what is queued and close.
        await writer.stop()
        ledger.close()
        unlink(config.socketPath)
        logger.info("stopped", metadata: ["ledger.size": "\(writer.head.size)"])
    }

    /// Each client is a file descriptor: lift the soft limit to the hard one, so that a
    /// thousand clients at once do not run the daemon out of descriptors.
    static func raiseOpenFileLimit(_ logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            logger.warning("could not raise the open-file limit", metadata: ["error": "\(String(cString: strerror(errno)))"])
        }
    }

    /// The peer's credentials (`SO_PEERCRED`) and the role the access rules give it.
    static func peer(of channel: any Channel, rules: AccessRules) -> EventLoopFuture<Peer> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(DaemonError.setup("the connection does not expose its socket options"))
        }
        let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET), name: NIOBSDSocket.Option(rawValue: PeerCredentials.option))
        return future.map { cred in
            let role = rules.role(uid: cred.uid, gid: cred.gid)
            return Peer(uid: cred.uid, gid: cred.gid, pid: cred.pid, role: role, juror: role == .juror ? rules.jurors[cred.uid] : nil)
        }
    }
}

/// Linux's `struct ucred`, which `SO_PEERCRED` fills (Glibc's Swift module leaves it out).
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    /// `SO_PEERCRED` on Linux.
    static let option: CInt = 17
}

/// One client connection: reads request lines, answers each in order.
struct Connection {
    let handler: OperationHandler
    let peer: Peer
    let maxLineBytes: Int
    let logger: Logger

    func serve(_ channel: NIOAsyncChannel<LineFrameDecoder.Frame, ByteBuffer>) async {
        handler.metrics.connections.increment()
        handler.metrics.connectionsOpened.increment()
        defer { handler.metrics.connections.decrement() }
        do {
            try await channel.executeThenClose { inbound, outbound in
                // Ends at graceful shutdown, after the request in hand has been answered.
                for try await frame in inbound.cancelOnGracefulShutdown() {
                    if case .line(let line) = frame, case .success(let request) = Request.parse(line), request.op == "subscribe" {
                        try await subscribe(request, outbound)
                        return
                    }
                    try await outbound.write(ByteBuffer(bytes: await reply(to: frame)))
                }
            }
        } catch {
            logger.debug("connection closed", metadata: ["peer.uid": "\(peer.uid)", "error": "\(error)"])
        }
    }

    /// `subscribe`: one ok reply, then one line per event from `from`, catching up from the
    /// ledger and then following new commits, until the client leaves or the daemon stops.
    /// Writes wait for the client to read, so a slow subscriber holds no growing buffer.
    func subscribe(_ request: Request, _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        var next: UInt64
        do {
            let operation = try Op(request)
            try Access.check(operation, op: request.op, for: peer)
            guard case .subscribe(let from) = operation else { return }
            next = from
        } catch {
            try await outbound.write(ByteBuffer(bytes: Reply.error(id: request.id, error)))
            return
        }
        try await outbound.write(ByteBuffer(bytes: Reply.ok(id: request.id, result: .object([("from", .uint(next))]))))
        while !Task.isCancelled {
            let batch = try handler.events(from: next, limit: 1000)
            for event in batch {
                var line = event.serialized()
                line.append(UInt8(ascii: "\n"))
                try await outbound.write(ByteBuffer(bytes: line))
            }
            next += UInt64(batch.count)
            if batch.isEmpty {
                guard await handler.writer.commits.wait(forMoreThan: next - 1) else { return }
            }
        }
    }

    func reply(to frame: LineFrameDecoder.Frame) async -> [UInt8] {
        switch frame {
        case .tooLong(let bytes):
            return Reply.error(id: .null, code: .badRequest, message: "the request line is \(bytes) bytes long; at most \(maxLineBytes)")
        case .line(let line):
            let request: Request
            switch Request.parse(line) {
            case .success(let r): request = r
            case .failure(let f): return Reply.error(id: f.id, f.error)
            }
            do {
                let operation = try Op(request)
                return Reply.ok(id: request.id, result: try await handler.handle(operation, request: request, peer: peer))
            } catch let error as ProtocolError {
                if error.code != .sealed && !Self.isLedgerRefusal(error.code) { handler.metrics.refused(error.code.rawValue) }
                return Reply.error(id: request.id, error)
            } catch {
                logger.error("request failed", metadata: ["request.op": "\(request.op)", "peer.uid": "\(peer.uid)", "error": "\(error)"])
                return Reply.error(id: request.id, code: .internal, message: "\(request.op) failed: \(error)")
            }
        }
    }
}

extension Connection {
    /// Refusals the writer already counted (they reached the ledger).
    static func isLedgerRefusal(_ code: ErrorCode) -> Bool {
        switch code {
        case .badRequest, .unknownOp, .forbidden, .sealed, .internal: false
        default: true
        }
    }
}

/// Tells systemd the daemon is ready (`READY=1` to `$NOTIFY_SOCKET`), when run under it.
enum SystemdNotify {
    static func ready() {
        guard let path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], !path.isEmpty else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }   // abstract namespace
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let message = Array("READY=1".utf8)
        _ = withUnsafePointer(to: &address) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)) }
            }
        }
    }
}
