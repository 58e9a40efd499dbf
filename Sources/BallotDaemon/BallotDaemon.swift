import Foundation
public import Logging
import NIOCore
import NIOPosix
import NIOHTTP1
import NIOSSL
public import ServiceLifecycle
import BallotDomain
import BallotLedger
import BallotFormat
import BallotAudit
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

        // A follower needs the primary's voter secret only to be promoted one day; while it
        // follows it decides no votes and signs no checkpoints (it loads no key).
        let hasher = try VoterHasher(secret: VoterSecretFile.load(config.secretFile))
        let checkpointKey: CheckpointKey?
        var keyCreated = false
        if config.follow == nil {
            let (key, created) = try CheckpointKeyFile.loadOrCreate(config.checkpointKeyFile, logger: logger)
            (checkpointKey, keyCreated) = (key, created)
        } else {
            checkpointKey = nil
        }
        let metrics = DaemonMetrics()
        let ledger = try Ledger(path: "\(config.dataDirectory)/ledger",
                                options: Ledger.Options(environment: .init(mapSize: config.mapSize, maxMapSize: config.maxMapSize, observer: metrics),
                                                        check: config.verification.openCheck,
                                                        keptTableSlots: config.keptTableSlots, checkpointOrigin: config.checkpointOrigin,
                                                        rebuilding: { [logger] reason in
                                                            logger.notice("rebuilding the kept state from every event", metadata: ["reason": "\(reason)"])
                                                        }),
                                checkpointKey: checkpointKey)
        if let checkpointKey {
            do {
                try CheckpointKeyFile.requireLedgersKey(checkpointKey, path: config.checkpointKeyFile, created: keyCreated,
                                                        signedBy: ledger.state.lastCheckpoint?.checkpoint.publicKey)
            } catch {
                ledger.close()
                throw error
            }
        }
        logger.info("ledger open", metadata: ["ledger.path": "\(ledger.path)", "ledger.verify": "\(config.verification.rawValue)", "ledger.size": "\(ledger.size)", "ledger.root": "\(ledger.root)",
                                              "ledger.kept_events": "\(ledger.opening.keptEvents)", "ledger.replayed_events": "\(ledger.opening.replayedEvents)",
                                              "checkpoint.public_key": "\(checkpointKey?.publicKey.hex ?? "none (a follower)")", "checkpoint.origin": "\(ledger.checkpointOrigin)"])
        let opening = ledger.opening
        if !opening.findings.isEmpty {
            logger.critical("the ledger's check found it unsound; serving anyway (verify: off)", metadata: [
                "findings": "\(opening.findings.count)", "first": "\(opening.findings[0])"])
        }
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: config.eventLoops)
        let tiles = config.tilesDirectory.map { TilePublisher(writer: TileWriter(directory: $0, reader: ledger.reader), logger: logger) }
        let cosigner: WitnessCosigner?
        do {
            cosigner = try config.witnessPolicy.map { policy in
                guard let checkpointKey else { throw DaemonError.setup("witness_policy is set on a follower, which signs no checkpoints") }
                try Self.requireLog(in: policy, origin: ledger.checkpointOrigin, key: checkpointKey.publicKey)
                return WitnessCosigner(policy: policy, reader: ledger.reader, timeoutSeconds: config.witnessTimeoutSeconds, loops: loops,
                                       notePath: "\(config.dataDirectory)/checkpoint.witnessed", logger: logger,
                                       onWitnessed: { tiles?.offer($0.note) })
            }
        } catch {
            ledger.close()
            try? await loops.shutdownGracefully()
            throw error
        }
        let verification = LedgerVerification(mode: config.verification, opening: opening, size: ledger.size, metrics: metrics)
        verification.startInBackground(ledger.reader, logger: logger)
        var checkpointRecorded: (@Sendable (UInt64, Checkpoint) -> Void)?
        if cosigner != nil || tiles != nil {
            checkpointRecorded = { seq, checkpoint in
                cosigner?.checkpointRecorded(seq: seq, checkpoint: checkpoint)
                if let note = checkpoint.note { tiles?.offer(note) }
            }
        }
        let writer = GroupCommitWriter(ledger: ledger, maxBatch: config.maxBatch,
                                       checkpointIntervalSeconds: config.checkpointIntervalSeconds > 0 ? config.checkpointIntervalSeconds : nil,
                                       metrics: metrics, checkpointRecorded: checkpointRecorded)
        // The newest checkpoint, read before the writer thread owns the ledger's state.
        let newest = ledger.state.lastCheckpoint
        tiles?.entriesArePublic = { writer.sealedElections(at: SystemClock().now()).isEmpty }
        writer.start()
        tiles?.start()
        // The newest checkpoint is published at start: the directory catches up with the ledger
        // (and one put back to an older copy shows so to the monitors). Its note as cosigned
        // before the stop, when it was, goes out with the cosignatures, and counts as witnessed.
        if let newest, let note = newest.checkpoint.note {
            let kept = (try? ReplacedFile.read("\(config.dataDirectory)/checkpoint.witnessed")).flatMap { $0 }.flatMap { try? SignedNote(parsing: $0) }
            let cosigned = kept.flatMap { $0.text == note.text ? $0 : nil }
            if let cosigned { cosigner?.resume(seq: newest.seq, size: newest.checkpoint.size, note: cosigned) }
            tiles?.offer(cosigned ?? note)
        }
        let witnessing = cosigner.map { c in Task { await c.run() } }
        if let cosigner {
            // A start asks the witnesses about the newest checkpoint: one that has seen a later
            // one of this log shows a rollback at once.
            if let newest { cosigner.checkpointRecorded(seq: newest.seq, checkpoint: newest.checkpoint) }
            logger.info("asking witnesses", metadata: ["witnesses": "\(cosigner.policy.witnesses.compactMap { w in w.url.map { "\(w.name)=\($0)" } }.joined(separator: ","))",
                                                       "quorum": "\(cosigner.policy.quorumDescription)"])
        }
        let follower = config.follow.map { Follower(config: $0, writer: writer, loop: loops.next(), metrics: metrics, logger: logger) }
        let handler = OperationHandler(writer: writer, reader: ledger.reader, hasher: hasher, clock: SystemClock(),
                                       metrics: metrics, verification: verification, renderMetrics: config.renderMetrics,
                                       witnesses: cosigner, certificationTimeout: .seconds(config.witnessCertifyTimeoutSeconds),
                                       following: follower?.status)

        let intake = config.intake.map {
            JetStreamIntake(config: $0, writer: writer, hasher: hasher, daemonUID: config.access.daemonUID, loop: loops.next(), logger: logger)
        }
        let readPool = NIOThreadPool(numberOfThreads: 2)
        readPool.start()
        let service = RequestService(operations: handler, readPool: readPool, maxLineBytes: config.maxLineBytes, logger: logger)
        let connections = OpenConnections()
        let rules = config.access
        /// What is running by now, stopped in order when the daemon cannot start serving.
        func stopWithoutServing() async {
            cosigner?.stop()
            witnessing?.cancel()
            await witnessing?.value
            await writer.stop()
            tiles?.stop()
            try? await readPool.shutdownGracefully()
            try? await loops.shutdownGracefully()
            ledger.close()
        }
        let server: any Channel
        do {
            server = try await ServerBootstrap(group: loops)
                .serverChannelOption(.backlog, value: 1024)
                // A request is a short line: one read per readiness, rather than a second read
                // that only returns EAGAIN.
                .childChannelOption(.maxMessagesPerRead, value: 1)
                // A client may close its sending side and still read the replies to what it sent.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { [idleTimeout = config.idleTimeoutSeconds] child in
                    connections.add(child)
                    return Self.peer(of: child, rules: rules).flatMapThrowing { peer in
                        try child.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(Int64(idleTimeout))))
                        let bulk = LineFrameDecoder.Bulk()
                        try child.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maximumLineBytes: service.maxLineBytes, bulk: bulk)))
                        try child.pipeline.syncOperations.addHandler(ConnectionHandler(service: service, peer: peer, bulk: bulk))
                    }
                }
                .bind(unixDomainSocketPath: config.socketPath).get()
        } catch {
            await stopWithoutServing()
            throw DaemonError.setup("cannot listen on \(config.socketPath): \(error)")
        }
        guard chmod(config.socketPath, mode_t(config.socketMode)) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await server.close()
            unlink(config.socketPath)
            await stopWithoutServing()
            throw DaemonError.setup("cannot set the mode of \(config.socketPath): \(reason)")
        }
        var tlsServer: (any Channel)?
        if let tls = config.listenTLS {
            do {
                tlsServer = try await Self.serveTLS(tls, loops: loops, service: service, rules: rules, connections: connections,
                                                    idleTimeout: config.idleTimeoutSeconds, logger: logger)
            } catch {
                try? await server.close()
                unlink(config.socketPath)
                await stopWithoutServing()
                throw error as? DaemonError ?? DaemonError.setup("cannot listen with TLS on \(tls.address): \(error)")
            }
            logger.info("serving over TLS", metadata: ["tls.address": "\(tls.address)", "tls.clients": "\(rules.tlsClients.count)"])
        }
        var metricsServer: (any Channel)?
        if let address = config.metricsListen {
            do {
                metricsServer = try await Self.serveMetrics(on: address, loops: loops, render: config.renderMetrics)
            } catch {
                try? await server.close()
                try? await tlsServer?.close()
                unlink(config.socketPath)
                await stopWithoutServing()
                throw DaemonError.setup("cannot listen for metrics on \(address): \(error)")
            }
            logger.info("serving metrics", metadata: ["metrics.address": "\(address)"])
        }
        logger.info("serving", metadata: ["socket.path": "\(config.socketPath)", "socket.mode": "\(String(config.socketMode, radix: 8))",
                                          "event_loops": "\(config.eventLoops)"])
        intake?.start()
        if let follower, let follow = config.follow {
            logger.info("following", metadata: ["primary": "\(follow.description)", "ledger.size": "\(ledger.size)",
                                                 "checkpoint.pinned_key": "\(follow.checkpointKey?.hex ?? "none: the first checkpoint's key")"])
            follower.start()
        }
        SystemdNotify.ready()

        // Serve until SIGTERM or SIGINT (or cancellation).
        try? await gracefulShutdown()
        logger.info("shutting down: no new connections")
        try? await server.close()
        try? await tlsServer?.close()
        try? await metricsServer?.close()
        // The intake settles the batch in hand (its votes decided and their outcomes out, or
        // left to be delivered again) and takes no more.
        await intake?.stop()
        // The follower takes nothing more; the chunk being stored still commits.
        await follower?.stop()
        // Each connection answers the request in hand and closes; subscriptions end.
        writer.commits.close()
        // Certifications waiting for witnesses are answered now (not witnessed), and requests
        // to witnesses in flight are cancelled.
        cosigner?.stop()
        witnessing?.cancel()
        await connections.closeAll()
        await witnessing?.value
        // Commit what is queued and close.
        await writer.stop()
        tiles?.stop()
        try? await readPool.shutdownGracefully()
        try? await loops.shutdownGracefully()
        ledger.close()
        unlink(config.socketPath)
        logger.info("stopped", metadata: ["ledger.size": "\(writer.head.size)"])
    }

    /// A policy that lists logs must list this one: its origin as the key's name, and its key.
    static func requireLog(in policy: WitnessPolicy, origin: String, key: Digest32) throws {
        guard !policy.logs.isEmpty else { return }
        guard policy.logs.contains(where: { $0.name == origin && $0.publicKey == key }) else {
            throw DaemonError.setup("witness_policy lists the logs \(policy.logs.map(\.name).joined(separator: ", ")), and not this ledger (origin \(origin), key \(VerifierKey(name: origin, type: SignedNote.ed25519, publicKey: key)))")
        }
    }

    /// Serves the line protocol over TCP with mutual TLS (see `TLSListener`).
    static func serveTLS(_ tls: TLSListenConfig, loops: any EventLoopGroup, service: RequestService, rules: AccessRules,
                         connections: OpenConnections, idleTimeout: Int, logger: Logger) async throws -> any Channel {
        let context = try TLSListener.context(tls)
        return try await ServerBootstrap(group: loops)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { child in
                connections.add(child)
                return child.eventLoop.makeCompletedFuture {
                    // The idle timeout covers the handshake too (`TLSPeerHandler` closes a client
                    // that connects and never completes it).
                    try child.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(Int64(idleTimeout))))
                    try child.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try child.pipeline.syncOperations.addHandler(TLSPeerHandler(rules: rules, logger: logger) { peer, context in
                        let bulk = LineFrameDecoder.Bulk()
                        try context.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maximumLineBytes: service.maxLineBytes, bulk: bulk)),
                                                                       position: .after(context.handler))
                        let decoder = try context.pipeline.syncOperations.handler(type: ByteToMessageHandler<LineFrameDecoder>.self)
                        try context.pipeline.syncOperations.addHandler(ConnectionHandler(service: service, peer: peer, bulk: bulk),
                                                                       position: .after(decoder))
                    })
                }
            }
            .bind(host: tls.address.host, port: tls.address.port).get()
    }

    /// Serves `GET /metrics` over HTTP/1.1 on `address` (see `MetricsHTTPHandler`).
    static func serveMetrics(on address: ListenAddress, loops: any EventLoopGroup, render: @escaping @Sendable () -> [UInt8]) async throws -> any Channel {
        let connections = MetricsConnections()
        return try await ServerBootstrap(group: loops)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard connections.admit(channel) else { return channel.close() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: MetricsConnections.idleTimeout))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(render: render))
                }
            }
            .bind(host: address.host, port: address.port).get()
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

/// The connections that are open, so that graceful shutdown can ask each to finish.
final class OpenConnections: @unchecked Sendable {
    private let lock = NSLock()
    private var channels: [ObjectIdentifier: any Channel] = [:]

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        lock.withLock { channels[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in lock.withLock { _ = channels.removeValue(forKey: id) } }
    }

    /// Asks every connection to finish what it has in hand and close, waits until they have,
    /// and after `deadline` closes any still open (a client that stopped reading mid-reply).
    func closeAll(deadline: Duration = .seconds(10)) async {
        let open = lock.withLock { Array(channels.values) }
        for channel in open { channel.pipeline.fireUserInboundEventTriggered(ShutdownRequested()) }
        let waited = ContinuousClock.now
        for channel in open {
            let remaining = deadline - (ContinuousClock.now - waited)
            if remaining > .zero {
                let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(remaining.components.seconds) * 1_000_000_000 + remaining.components.attoseconds / 1_000_000_000)) {
                    channel.close(promise: nil)
                }
                try? await channel.closeFuture.get()
                timer.cancel()
            } else {
                channel.close(promise: nil)
                try? await channel.closeFuture.get()
            }
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
