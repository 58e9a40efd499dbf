import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import BallotDomain
import BallotFormat
import BallotLedger
import BallotProtocol
import BallotClient

/// Where a follower stands, for `status` and the refusals of writes: read from any thread.
final class FollowerStatus: @unchecked Sendable {
    let primary: String
    private let lock = NSLock()
    private var state = "disconnected"
    private var primarySize: UInt64?
    private var lastError: String?
    private var stoppedBecause: String?
    /// When the primary last sent anything (a reply, a chunk, a heartbeat).
    private var lastContact: ContinuousClock.Instant?

    init(primary: String) {
        self.primary = primary
    }

    func update(_ machine: FollowerStateMachine, contact: Bool) {
        lock.withLock {
            state = machine.state.description
            primarySize = machine.primarySize
            lastError = machine.lastError
            if case .stopped(let why) = machine.state { stoppedBecause = why }
            if contact { lastContact = .now }
        }
    }

    /// `status`'s `follower` object; `size` is what this daemon has published, and
    /// `checkpointSize` the size its newest stored checkpoint signs: events after it are checked
    /// by the rules alone until the next checkpoint comes.
    func report(size: UInt64, checkpointSize: UInt64?) -> FollowerReport {
        lock.withLock {
            let since = lastContact.map { ContinuousClock.now - $0 }
            return FollowerReport(primary: primary, state: state, primaryLedgerSize: primarySize,
                                  lagEvents: primarySize.map { $0 > size ? $0 - size : 0 }, checkpointSize: checkpointSize,
                                  secondsSinceContact: since.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 },
                                  stoppedBecause: stoppedBecause, lastError: lastError)
        }
    }
}

/// A follower's replication: one connection to the primary's socket asking for its records
/// (`replicate`), each chunk handed to the writer, which verifies every record before it stores
/// any (`Ledger.replicate`). What to do is decided by `FollowerStateMachine`; this class
/// performs it, on one event loop.
final class Follower: @unchecked Sendable {
    private let config: FollowConfig
    private let writer: GroupCommitWriter
    private let loop: any EventLoop
    private let logger: Logger
    private let metrics: DaemonMetrics
    let status: FollowerStatus
    /// Touched only on `loop`.
    private var machine: FollowerStateMachine
    private var channel: (any Channel)?
    /// Each connection's number: events of an older one are ignored.
    private var generation = 0
    /// Nothing from the primary for this long (it heartbeats every 2 s when idle) means the
    /// connection is lost.
    static let silence = TimeAmount.seconds(10)

    init(config: FollowConfig, writer: GroupCommitWriter, loop: any EventLoop, metrics: DaemonMetrics, logger: Logger) {
        self.config = config
        self.writer = writer
        self.loop = loop
        self.logger = logger
        self.metrics = metrics
        status = FollowerStatus(primary: config.description)
        machine = FollowerStateMachine(stored: writer.head.size)
    }

    func start() {
        loop.execute { self.perform(self.machine.start()) }
    }

    /// Closes the connection; the chunk being stored still commits.
    func stop() async {
        try? await loop.submit { self.perform(self.machine.shutdown()) }.get()
    }

    private func perform(_ actions: [FollowerStateMachine.Action], contact: Bool = false) {
        loop.preconditionInEventLoop()
        status.update(machine, contact: contact)
        metrics.followerLag.record(Double(machine.lag ?? 0))
        for action in actions {
            switch action {
            case .connect: connect()
            case .ask(let from):
                channel?.writeAndFlush(ByteBuffer(bytes: Op.replicate(from: from).requestLine(id: .int(1))), promise: nil)
            case .store(let chunk, let ledgerID, let primarySize):
                let primary = Ledger.Primary(ledgerID: ledgerID, pinnedKey: config.checkpointKey, size: primarySize)
                let end = chunk.end
                writer.replicate(chunk, from: primary, on: loop) { result in
                    switch result {
                    case .success: self.perform(self.machine.stored(through: end))
                    case .failure(let error):
                        let unverified = if case LedgerError.unverifiedRecord = error { true } else { false }
                        self.perform(self.machine.storeFailed("\(error)", unverified: unverified))
                    }
                }
            case .pauseReading: channel?.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            case .resumeReading:
                channel?.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
                channel?.read()
            case .disconnect:
                generation += 1
                channel?.close(promise: nil)
                channel = nil
            case .reconnect(let delay):
                if let reason = machine.lastError {
                    logger.warning("follower: lost the primary; connecting again", metadata: [
                        "primary": "\(config.description)", "reason": "\(reason)", "after_ms": "\(TimeAmount(delay).nanoseconds / 1_000_000)"])
                }
                loop.scheduleTask(in: TimeAmount(delay)) {
                    self.perform(self.machine.reconnectDue())
                }
            case .halt(let reason):
                metrics.followerStopped.record(1)
                logger.critical("follower: replication stopped; nothing more is taken from the primary. This follower keeps serving what it stored; look at the primary's ledger (ballot-replay verify on a backup)", metadata: [
                    "primary": "\(config.description)", "reason": "\(reason)"])
            }
        }
    }

    /// The TLS context of a follower over TLS: the client side `ballotctl --connect` speaks.
    private lazy var tls: Result<NIOSSLContext, any Error>? = {
        guard case .tls(_, _, let certificate, let key, let ca) = config.primary else { return nil }
        return Result { try TLSEndpoint.clientContext(certificateFile: certificate, privateKeyFile: key, caFile: ca) }
    }()

    private func connect() {
        generation += 1
        let mine = generation
        var context: NIOSSLContext?
        switch tls {
        case .success(let made)?: context = made
        case .failure(let error)?:
            return perform(machine.connectionLost("cannot load follow_tls's certificate, key or CA: \(error)"))
        case nil: context = nil
        }
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.allowRemoteHalfClosure, value: false)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context { try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil)) }
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: Self.silence))
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RecordStreamDecoder()))
                    try channel.pipeline.syncOperations.addHandler(FollowerChannelHandler(self, generation: mine))
                }
            }
        let connecting: EventLoopFuture<any Channel>
        switch config.primary {
        case .socket(let path): connecting = bootstrap.connect(unixDomainSocketPath: path)
        case .tls(let host, let port, _, _, _): connecting = bootstrap.connect(host: host, port: port)
        }
        connecting.whenComplete { result in
                guard mine == self.generation else {
                    if case .success(let channel) = result { channel.close(promise: nil) }
                    return
                }
                switch result {
                case .success(let channel):
                    self.channel = channel
                    let head = self.writer.head
                    self.perform(self.machine.connected(stored: head.size, root: head.root))
                case .failure(let error):
                    self.perform(self.machine.connectionLost("cannot connect to \(self.config.description): \(error)"))
                }
            }
    }

    // What the connection's handler reports, on the loop.

    fileprivate func received(_ frame: RecordStreamDecoder.Frame, generation: Int) {
        guard generation == self.generation else { return }
        switch frame {
        case .reply(let value):
            do {
                switch try ReplyLine(value) {
                case .ok(_, let result): perform(machine.replied(try ReplicationStart(json: result)), contact: true)
                case .refused(_, let error): perform(machine.refused(error.code.rawValue, error.message), contact: true)
                case .streamed: perform(machine.connectionLost("the primary sent a line that is neither a reply nor a chunk: \(value.text.prefix(300))"), contact: true)
                }
            } catch {
                perform(machine.connectionLost("the primary's reply to replicate: \(error.message)"), contact: true)
            }
        case .chunk(let header, let wire):
            do {
                let chunk = try RecordChunk(first: header.from, count: header.records, wire: wire)
                perform(machine.chunkArrived(header, chunk), contact: true)
            } catch {
                perform(machine.connectionLost("the primary sent a chunk that cannot be read: \(error)"))
            }
        }
    }

    fileprivate func lost(_ reason: String, generation: Int) {
        guard generation == self.generation else { return }
        perform(machine.connectionLost(reason))
    }

    /// Nothing arrived for `silence`: the primary is lost, unless the follower stopped reading
    /// itself while a long store runs.
    fileprivate func silent(generation: Int) -> Bool {
        guard generation == self.generation, machine.isReading else { return false }
        perform(machine.connectionLost("nothing from the primary for \(Self.silence.nanoseconds / 1_000_000_000) s"))
        return true
    }
}

/// The follower's connection: hands each frame to `Follower`, and says when it ends.
private final class FollowerChannelHandler: ChannelInboundHandler {
    typealias InboundIn = RecordStreamDecoder.Frame
    private let follower: Follower
    private let generation: Int

    init(_ follower: Follower, generation: Int) {
        self.follower = follower
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        follower.received(unwrapInboundIn(data), generation: generation)
    }

    func channelInactive(context: ChannelHandlerContext) {
        follower.lost("the primary closed the connection", generation: generation)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            if follower.silent(generation: generation) { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The decoder's errors are the primary's: what it sent is not a replicate stream.
        let reason = (error as? ProtocolError).map { "the primary sent what is not a replicate stream: \($0.message)" }
            ?? "the connection failed: \(error)"
        follower.lost(reason, generation: generation)
        context.close(promise: nil)
    }
}
