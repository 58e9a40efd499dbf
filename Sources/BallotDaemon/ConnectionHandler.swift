import BallotDomain
import BallotLedger
import BallotFormat
import BallotAudit
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
/// a client cannot make the daemon buffer without bound. What the connection is doing lives in
/// a `ConnectionStateMachine`; this class performs its actions.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = LineFrameDecoder.Frame
    typealias OutboundOut = ByteBuffer

    private let service: RequestService
    private let peer: Peer
    private var machine = ConnectionStateMachine()
    /// The import whose file is arriving (while the machine is `importing`).
    private var importing: ImportSession?
    /// The decoder's count of an import's bytes still to come.
    private let bulk: LineFrameDecoder.Bulk

    init(service: RequestService, peer: Peer, bulk: LineFrameDecoder.Bulk) {
        self.service = service
        self.peer = peer
        self.bulk = bulk
    }

    func channelActive(context: ChannelHandlerContext) {
        countOpened()
        context.fireChannelActive()
    }

    /// A TLS connection gets this handler once its handshake is done, after the channel became
    /// active: it is counted here instead.
    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { countOpened() }
    }

    private func countOpened() {
        service.metrics.connections.increment()
        service.metrics.connectionsOpened.increment()
    }

    func channelInactive(context: ChannelHandlerContext) {
        service.metrics.connections.decrement()
        if machine.isSubscribed { service.metrics.subscribers.decrement() }
        if importing != nil { service.metrics.importsInProgress.decrement() }
        importing = nil
        heartbeat?.cancel()
        heartbeat = nil
        machine.channelClosed()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .bytes(let bytes) = frame {
            guard let session = importing, machine.isImporting else { return }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            session.receive(bytes, on: context.eventLoop) { bound.value.0.importProgress(bound.value.1) }
            return importProgress(context)
        }
        perform(machine.lineArrived(frame), context)
        drain(context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if machine.isSubscribed { stream(context) } else if machine.isImporting { importProgress(context) } else { drain(context) }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ShutdownRequested:
            // Answer the request in hand (its write may already be committing), start nothing
            // new; an import is cut off: what it committed stays, and run again it adds the rest.
            for action in machine.shutdownRequested() { perform(action, context) }
        case ChannelEvent.inputClosed:
            perform(machine.inputWasClosed(importWaitsForBytes: importing.map { !$0.allReceived } ?? false), context)
            drain(context)
        case let idle as IdleStateHandler.IdleStateEvent where idle == .read:
            perform(machine.idleTimedOut(importWaitsForBytes: importing.map { !$0.allReceived } ?? false), context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        service.logger.debug("connection error", metadata: ["peer.uid": "\(peer.uid)", "error": "\(error)"])
        context.close(promise: nil)
    }

    /// Carries out one action of the machine.
    private func perform(_ action: ConnectionStateMachine.Action, _ context: ChannelHandlerContext) {
        switch action {
        case .none: break
        case .handle(let frame): handle(frame, context)
        case .pauseReading:
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        case .resumeReading:
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            context.read()
        case .send(.events, let from): sendEvents(from: from, context)
        case .send(.records, let from): sendRecords(from: from, context)
        case .cutImport(let why):
            importing?.stopReceiving(because: why)
            importProgress(context)
        case .close: context.close(promise: nil)
        }
    }

    // MARK: Requests

    /// Answers queued requests while nothing is in flight and the client reads its replies,
    /// then closes or reads again, as the machine says.
    private func drain(_ context: ChannelHandlerContext) {
        while context.channel.isActive {
            let action = machine.next(writable: context.channel.isWritable)
            if action == .none { return }
            perform(action, context)
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
            reply(Reply.error(id: request.id, error), context)
            if Op.isImport(request) { perform(machine.importRefused(), context) }
            return
        }
        let id = request.id
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        switch plan {
        case .reply(let result):
            reply(Reply.ok(id: id, result: result), context)
        case .read(let work):
            machine.startedAnswering()
            service.readPool.runIfActive(eventLoop: context.eventLoop) { try work() }.whenComplete { result in
                bound.value.0.finish(id: id, op: request.op, .read, result, bound.value.1)
            }
        case .write(let submissions, let combine):
            machine.startedAnswering()
            service.writer.submit(submissions, on: context.eventLoop) { outcomes in
                bound.value.0.finish(id: id, op: request.op, .write, Result { try combine(try outcomes.get()) }, bound.value.1)
            }
        case .writeThenRead(let submissions, let then):
            machine.startedAnswering()
            service.writer.submit(submissions, on: context.eventLoop) { outcomes in
                bound.value.0.service.readPool.runIfActive(eventLoop: bound.value.1.eventLoop) { try then(try outcomes.get()) }.whenComplete { result in
                    bound.value.0.finish(id: id, op: request.op, .write, result, bound.value.1)
                }
            }
        case .writeThenAwait(let submissions, let then):
            machine.startedAnswering()
            service.writer.submit(submissions, on: context.eventLoop) { outcomes in
                bound.value.1.eventLoop.makeFutureWithTask { try await then(try outcomes.get()) }.whenComplete { result in
                    bound.value.0.finish(id: id, op: request.op, .write, result, bound.value.1)
                }
            }
        case .awaitThenRead(let wait):
            machine.startedAnswering()
            let readPool = service.readPool
            context.eventLoop.makeFutureWithTask { try await wait() }.flatMap { read in
                readPool.runIfActive(eventLoop: bound.value.1.eventLoop) { try read() }
            }.whenComplete { result in
                bound.value.0.finish(id: id, op: request.op, .read, result, bound.value.1)
            }
        case .subscribe(let from):
            reply(Reply.ok(id: id, result: SubscriptionStart(from: from).json), context)
            machine.subscribed(.events, from: from)
            service.metrics.subscribers.increment()
            stream(context)
        case .replicate(let start):
            machine.startedAnswering()
            service.readPool.runIfActive(eventLoop: context.eventLoop) { try start() }.whenComplete { result in
                let (handler, context) = bound.value
                guard case .success(let start) = result else {
                    return handler.finish(id: id, op: request.op, .read, result.map { $0.json }, context)
                }
                handler.machine.finishedAnswering()
                handler.reply(Reply.ok(id: id, result: start.json), context)
                handler.machine.subscribed(.records, from: start.from)
                handler.service.metrics.subscribers.increment()
                handler.stream(context)
            }
        case .importFile(let request):
            machine.startedImport()
            let session = ImportSession(id: id, request: request, peer: peer, writer: service.writer,
                                        hasher: service.operations.hasher) { line in
                let (handler, context) = bound.value
                handler.reply(line, context)
            }
            importing = session
            service.metrics.importsInProgress.increment()
            bulk.remaining = request.size
            reply(session.goAhead, context)
            if request.size == 0 {
                session.receive(ByteBuffer(), on: context.eventLoop) { bound.value.0.importProgress(bound.value.1) }
                importProgress(context)
            }
        }
    }

    /// Pauses or resumes reading as the import's batches and the client allow, and completes
    /// the import once every byte is in and every batch decided.
    private func importProgress(_ context: ChannelHandlerContext) {
        guard let session = importing else { return }
        perform(machine.importFlow(wantsPause: session.wantsPause, writable: context.channel.isWritable, allReceived: session.allReceived), context)
        guard machine.importCanComplete(finished: session.finished) else { return }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        session.complete(on: context.eventLoop) {
            let (handler, context) = bound.value
            if handler.importing != nil { handler.service.metrics.importsInProgress.decrement() }
            let cutShort = handler.importing?.cutShort == true
            handler.importing = nil
            handler.perform(handler.machine.importEnded(cutShort: cutShort), context)
            handler.drain(context)
        }
    }

    /// The reply line for a planned request's result.
    enum Kind { case read, write }

    /// Answers the request in hand and goes on to the next line waiting.
    private func finish(id: JSONValue, op: String, _ kind: Kind, _ result: Result<JSONValue, any Error>, _ context: ChannelHandlerContext) {
        machine.finishedAnswering()
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
        case .failure(let error as LedgerError) where error.storageCode != nil:
            let code = error.storageCode ?? .internal
            service.metrics.refused(code.rawValue)
            if error.isStorageFailed {
                service.logger.error("a commit failed with an I/O error; nothing of its batch was written", metadata: ["request.op": "\(op)", "error": "\(error)"])
            }
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

    /// Sends the next chunk of events if the machine says so.
    private func stream(_ context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        perform(machine.streamCanSend(writable: context.channel.isWritable), context)
    }

    /// Sends the events from `next` on, a chunk at a time while the client reads, and waits for
    /// the next commit once caught up.
    private func sendEvents(from next: UInt64, _ context: ChannelHandlerContext) {
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
            guard case .success(let lines) = result else { return context.close(promise: nil) }
            handler.machine.chunkRead(count: lines.count)
            for line in lines { context.write(handler.wrapOutboundOut(ByteBuffer(bytes: line)), promise: nil) }
            context.flush()
            handler.machine.chunkWritten()
            if lines.isEmpty {
                handler.awaitCommit(after: next - 1, context)
            } else {
                handler.stream(context)   // goes on at once if writable, else on writability
            }
        }
    }

    /// Sends a follower the records from `next` on, as stored, a chunk at a time while it
    /// reads: a `ChunkHeader` line, then the chunk's bytes. A read that fails (a missing event)
    /// ends the stream with an error line: a follower must never skip one.
    private func sendRecords(from next: UInt64, _ context: ChannelHandlerContext) {
        let reader = service.operations.reader
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        service.readPool.runIfActive(eventLoop: context.eventLoop) {
            try reader.chunk(from: next, maxRecords: 4096, maxBytes: 1 << 20)
        }.whenComplete { result in
            let (handler, context) = bound.value
            let chunk: RecordChunk
            switch result {
            case .success(let read): chunk = read
            case .failure(let error):
                handler.service.logger.error("replicate: cannot read the records for a follower", metadata: ["from": "\(next)", "error": "\(error)"])
                handler.reply(Reply.error(id: .null, code: .internal, message: "replicate: cannot read the records from event \(next): \(error)"), context)
                return context.close(promise: nil)
            }
            handler.machine.chunkRead(count: chunk.count)
            if chunk.count > 0 {
                // The published head can trail the read by the commit being published.
                let size = max(handler.service.writer.head.size, chunk.end - 1)
                let header = ChunkHeader(records: chunk.count, from: next, bytes: chunk.wire.count, ledgerSize: size)
                context.write(handler.wrapOutboundOut(ByteBuffer(bytes: header.line)), promise: nil)
                context.write(handler.wrapOutboundOut(ByteBuffer(bytes: chunk.wire)), promise: nil)
                context.flush()
            }
            handler.machine.chunkWritten()
            if chunk.count == 0 {
                handler.awaitCommit(after: next - 1, context)
                handler.sendHeartbeats(at: next, context)
            } else {
                handler.stream(context)
            }
        }
    }

    /// Streams on once the ledger holds more than `size` events; closes when the daemon stops.
    private func awaitCommit(after size: UInt64, _ context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        service.writer.commits.notify(whenMoreThan: size) { more in
            loop.execute {
                let (handler, context) = bound.value
                handler.heartbeat?.cancel()
                handler.heartbeat = nil
                if more { handler.stream(context) } else { context.close(promise: nil) }
            }
        }
    }

    /// While a follower's stream waits for a commit, an empty chunk every `heartbeatInterval`
    /// tells it the primary is alive and how many events it holds, so that it can tell an idle
    /// primary from a lost one, and report its lag.
    private var heartbeat: Scheduled<Void>?
    static let heartbeatInterval = TimeAmount.seconds(2)

    private func sendHeartbeats(at next: UInt64, _ context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        heartbeat?.cancel()
        heartbeat = context.eventLoop.scheduleTask(in: Self.heartbeatInterval) {
            let (handler, context) = bound.value
            guard context.channel.isActive, handler.machine.streamIsIdle, handler.machine.streamPosition == next else { return }
            let header = ChunkHeader(records: 0, from: next, bytes: 0, ledgerSize: handler.service.writer.head.size)
            context.writeAndFlush(handler.wrapOutboundOut(ByteBuffer(bytes: header.line)), promise: nil)
            handler.sendHeartbeats(at: next, context)
        }
    }
}
