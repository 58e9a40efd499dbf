import BallotDomain
import BallotLedger
import BallotProtocol
import Logging
import NIOCore
import NIOPosix

/// What a connection handler needs from the daemon; shared by all connections.
struct RequestService: Sendable {
    let operations: OperationHandler
    /// Runs ledger reads (and backups) off the event loops.
    let readPool: NIOThreadPool
    let maxLineBytes: Int
    let logger: Logger

    var writer: GroupCommitWriter { operations.writer }
    var metrics: DaemonMetrics { operations.metrics }
}

/// Sent down each connection's pipeline at graceful shutdown: answer what is in hand, then close.
struct ShutdownRequested: Sendable {}

/// One client connection. Requests are answered one at a time, in order: parsed and planned
/// on the event loop (voter ids hashed there too), ledger reads run on the read pool, writes
/// go to the writer thread, and each reply is written back on the event loop. Reading from the
/// socket pauses while requests queue up or while the client is not reading its replies, so
/// a client cannot make the daemon buffer without bound.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = LineFrameDecoder.Frame
    typealias OutboundOut = ByteBuffer

    private let service: RequestService
    private let peer: Peer
    private var pending = CircularBuffer<LineFrameDecoder.Frame>()
    private var busy = false
    /// Graceful shutdown: finish the request in hand, start no other, close.
    private var stopping = false
    /// The client has closed its sending side: answer what it sent, then close.
    private var inputClosed = false
    private var reading = true
    /// The next event to send, once the connection has subscribed.
    private var subscription: UInt64?
    /// The import whose file is arriving, and the decoder's count of its bytes still to come.
    private var importing: ImportSession?
    private var importCompleting = false
    private let bulk: LineFrameDecoder.Bulk
    private static let maxPending = 32

    init(service: RequestService, peer: Peer, bulk: LineFrameDecoder.Bulk) {
        self.service = service
        self.peer = peer
        self.bulk = bulk
    }

    func channelActive(context: ChannelHandlerContext) {
        service.metrics.connections.increment()
        service.metrics.connectionsOpened.increment()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        service.metrics.connections.decrement()
        if subscription != nil { service.metrics.subscribers.decrement() }
        pending.removeAll()
        if importing != nil { service.metrics.importsInProgress.decrement() }
        importing = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A subscribed connection only listens (docs/protocol.md); requests go on another.
        guard subscription == nil, !stopping else { return }
        let frame = unwrapInboundIn(data)
        if case .bytes(let bytes) = frame {
            guard let session = importing else { return }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            session.receive(bytes, on: context.eventLoop) { bound.value.0.importProgress(bound.value.1) }
            return importProgress(context)
        }
        pending.append(frame)
        if pending.count >= Self.maxPending && reading {
            reading = false
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
        drain(context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if subscription != nil { stream(context) } else if importing != nil { importProgress(context) } else { drain(context) }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ShutdownRequested:
            // Answer the request in hand (its write may already be committing), refuse nothing
            // new: queued requests that were not started are dropped unanswered.
            stopping = true
            pending.removeAll()
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            // An import is cut off: what it committed stays, and running it again adds the rest.
            if !busy || subscription != nil || importing != nil { context.close(promise: nil) }
        case ChannelEvent.inputClosed:
            inputClosed = true
            if let session = importing, !session.allReceived {
                session.stopReceiving(because: "the client closed its sending side")
                return importProgress(context)
            }
            drain(context)
        case let idle as IdleStateHandler.IdleStateEvent where idle == .read:
            // Nothing arrived for the idle timeout: a half-sent line, or a forgotten client.
            if subscription == nil && !busy && pending.isEmpty { context.close(promise: nil) }
            // An import whose file stopped arriving while the daemon was reading (not one it
            // paused itself, for its batches to commit or its client to read the refusals).
            if let session = importing, !session.allReceived, reading {
                session.stopReceiving(because: "nothing arrived for the idle timeout")
                importProgress(context)
            }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        service.logger.debug("connection error", metadata: ["peer.uid": "\(peer.uid)", "error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Requests

    /// Answers queued requests while nothing is in flight and the client reads its replies.
    private func drain(_ context: ChannelHandlerContext) {
        while !busy, subscription == nil, context.channel.isActive, context.channel.isWritable, let frame = pending.popFirst() {
            handle(frame, context)
        }
        guard !busy, pending.isEmpty, subscription == nil else { return }
        if stopping || inputClosed {
            context.close(promise: nil)
        } else if !reading {
            reading = true
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            context.read()
        }
    }

    private func handle(_ frame: LineFrameDecoder.Frame, _ context: ChannelHandlerContext) {
        let request: Request
        switch frame {
        case .bytes:
            return  // channelRead hands bulk bytes to the import; none are queued
        case .tooLong(let bytes):
            service.metrics.refused(ErrorCode.badRequest.rawValue)
            return reply(Reply.error(id: .null, code: .badRequest, message: "the request line is \(bytes) bytes long; at most \(service.maxLineBytes)"), context)
        case .line(let line):
            switch Request.parse(line) {
            case .success(let r): request = r
            case .failure(let f):
                service.metrics.refused(f.error.code.rawValue)
                return reply(Reply.error(id: f.id, f.error), context)
            }
        }
        let plan: Plan
        do {
            plan = try service.operations.plan(try Op(request), request: request, peer: peer)
        } catch {
            service.metrics.refused(error.code.rawValue)
            return reply(Reply.error(id: request.id, error), context)
        }
        let id = request.id
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        switch plan {
        case .reply(let result):
            reply(Reply.ok(id: id, result: result), context)
        case .read(let work):
            busy = true
            service.readPool.runIfActive(eventLoop: context.eventLoop) { try work() }.whenComplete { result in
                bound.value.0.finish(id: id, op: request.op, .read, result, bound.value.1)
            }
        case .write(let submissions, let combine):
            busy = true
            service.writer.submit(submissions, on: context.eventLoop) { outcomes in
                bound.value.0.finish(id: id, op: request.op, .write, Result { try combine(try outcomes.get()) }, bound.value.1)
            }
        case .writeThenRead(let submissions, let then):
            busy = true
            service.writer.submit(submissions, on: context.eventLoop) { outcomes in
                bound.value.0.service.readPool.runIfActive(eventLoop: bound.value.1.eventLoop) { try then(try outcomes.get()) }.whenComplete { result in
                    bound.value.0.finish(id: id, op: request.op, .write, result, bound.value.1)
                }
            }
        case .subscribe(let from):
            reply(Reply.ok(id: id, result: .object([("from", .uint(from))])), context)
            subscription = from
            service.metrics.subscribers.increment()
            stream(context)
        case .importFile(let request):
            busy = true
            let session = ImportSession(id: id, request: request, peer: peer, writer: service.writer,
                                        hasher: service.operations.hasher) { line in
                let (handler, context) = bound.value
                handler.reply(line, context)
            }
            importing = session
            service.metrics.importsInProgress.increment()
            importCompleting = false
            bulk.remaining = request.size
            reply(session.goAhead, context)
            if request.size == 0 {
                session.receive(ByteBuffer(), on: context.eventLoop) { bound.value.0.importProgress(bound.value.1) }
                importProgress(context)
            }
        }
    }

    /// Paces an import: stops reading while its batches are in flight or the client is not
    /// reading the refusals, and completes it once every byte is in and decided.
    private func importProgress(_ context: ChannelHandlerContext) {
        guard let session = importing else { return }
        let pause = session.wantsPause || !context.channel.isWritable
        if pause && reading {
            reading = false
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        } else if !pause && !reading && !session.allReceived {
            reading = true
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            context.read()
        }
        guard session.finished, !importCompleting else { return }
        importCompleting = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        session.complete(on: context.eventLoop) {
            let (handler, context) = bound.value
            if handler.importing != nil { handler.service.metrics.importsInProgress.decrement() }
            let cutShort = handler.importing?.cutShort == true
            handler.importing = nil
            handler.busy = false
            // The rest of a file cut short may still come; it must not be read as requests.
            if cutShort { return context.close(promise: nil) }
            handler.drain(context)
        }
    }

    /// The reply line for a planned request's result.
    enum Kind { case read, write }

    /// Answers the request in hand and goes on to the next line waiting.
    private func finish(id: JSONValue, op: String, _ kind: Kind, _ result: Result<JSONValue, any Error>, _ context: ChannelHandlerContext) {
        busy = false
        reply(render(id: id, op: op, kind, result), context)
        drain(context)
    }

    private func render(id: JSONValue, op: String, _ kind: Kind, _ result: Result<JSONValue, any Error>) -> [UInt8] {
        switch result {
        case .success(let value):
            return Reply.ok(id: id, result: value)
        case .failure(let error as ProtocolError):
            // Refusals from the ledger are counted by the writer; count the rest here.
            if case .read = kind { service.metrics.refused(error.code.rawValue) }
            return Reply.error(id: id, error)
        case .failure(let error as LedgerError) where error.fullCode != nil:
            let code = error.fullCode ?? .internal
            service.metrics.refused(code.rawValue)
            return Reply.error(id: id, code: code, message: error.description)
        case .failure(DaemonError.shuttingDown):
            return Reply.error(id: id, code: .internal, message: "\(op): the daemon is shutting down; nothing was written")
        case .failure(let error):
            service.logger.error("request failed", metadata: ["request.op": "\(op)", "peer.uid": "\(peer.uid)", "error": "\(error)"])
            service.metrics.refused(ErrorCode.internal.rawValue)
            return Reply.error(id: id, code: .internal, message: "\(op) failed: \(error)")
        }
    }

    private func reply(_ line: [UInt8], _ context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: line)), promise: nil)
    }

    // MARK: Subscription

    /// Sends the events from `subscription` on, a chunk at a time while the client reads, and
    /// waits for the next commit once caught up.
    private func stream(_ context: ChannelHandlerContext) {
        guard let next = subscription, !busy, context.channel.isActive, context.channel.isWritable else { return }
        if stopping { return context.close(promise: nil) }
        busy = true
        let reader = service.operations.reader
        // Which elections are sealed is decided per chunk: a stream that starts while voting is
        // open shows nominees once it has closed.
        let sealed = service.writer.sealedElections(at: service.operations.clock.now())
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        service.readPool.runIfActive(eventLoop: context.eventLoop) {
            try OperationHandler.events(reader, from: next, limit: 256, sealed: sealed).map { event -> [UInt8] in
                var line = event.serialized()
                line.append(UInt8(ascii: "\n"))
                return line
            }
        }.whenComplete { result in
            let (handler, context) = bound.value
            guard case .success(let lines) = result else {
                handler.busy = false
                return context.close(promise: nil)
            }
            // The position moves before the lines go out, and the stream stays busy while they
            // do: a flush can turn the channel writable again and call `stream` from inside it,
            // which must then start from the next chunk.
            handler.subscription = next + UInt64(lines.count)
            for line in lines { context.write(handler.wrapOutboundOut(ByteBuffer(bytes: line)), promise: nil) }
            context.flush()
            handler.busy = false
            if lines.isEmpty {
                let loop = context.eventLoop
                handler.service.writer.commits.notify(whenMoreThan: next - 1) { more in
                    loop.execute {
                        let (handler, context) = bound.value
                        if more { handler.stream(context) } else { context.close(promise: nil) }
                    }
                }
            } else {
                handler.stream(context)   // goes on at once if writable, else on writability
            }
        }
    }
}
