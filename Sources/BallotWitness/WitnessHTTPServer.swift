import NIOCore
import NIOPosix
import NIOHTTP1
import Synchronization
import Glibc
import BallotDomain
import BallotFormat

/// The witness's HTTP side (c2sp.org/tlog-witness): `POST /add-checkpoint` on NIO's HTTP/1
/// server. Requests are decided one at a time on a thread of their own, which makes the new
/// state durable (`WitnessStateFile`) before the reply goes out, so that two requests never
/// check against the same old size.
public final class WitnessServer: Sendable {
    private let witness: Mutex<Witness>
    private let stateFile: WitnessStateFile
    private let decider = NIOThreadPool(numberOfThreads: 1)
    private let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    /// The largest request body read: a checkpoint with its signatures and a full proof.
    static let maxBody = SignedNote.maxBytes + 64 * Witness.maxProofLines

    public init(witness: Witness, stateFile: WitnessStateFile) {
        self.witness = Mutex(witness)
        self.stateFile = stateFile
    }

    /// Listens on `host`:`port` (0: any free port) and returns the port.
    public func start(host: String, port: Int) async throws -> Int {
        decider.start()
        let channel = try await ServerBootstrap(group: loops)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(WitnessHTTPHandler(server: self))
                }
            }
            .bind(host: host, port: port).get()
        return channel.localAddress?.port ?? port
    }

    /// Decides `body` on the decider's thread, persisting a changed state first.
    func decide(_ body: [UInt8], on loop: any EventLoop) -> EventLoopFuture<WitnessReply> {
        decider.runIfActive(eventLoop: loop) { [self] in
            witness.withLock { w in
                let before = w.state
                let reply = w.addCheckpoint(body, now: UInt64(time(nil)))
                if w.state != before {
                    do {
                        try stateFile.write(w.state)
                    } catch {
                        w.state = before
                        return WitnessReply.refusal(500, "the witness could not keep its state, and did not cosign: \(error)")
                    }
                }
                return reply
            }
        }
    }
}

/// One HTTP connection: gathers a request's body (up to `WitnessServer.maxBody`), then answers.
final class WitnessHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: WitnessServer
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(server: WitnessServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            tooLarge = false
        case .body(var buffer):
            if body.count + buffer.readableBytes > WitnessServer.maxBody { tooLarge = true } else { body += buffer.readBytes(length: buffer.readableBytes) ?? [] }
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context)
        }
    }

    private func respond(to head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? head.uri
        guard path.hasSuffix("/add-checkpoint") else {
            return send(.refusal(404, "this witness serves POST /add-checkpoint only"), head, context)
        }
        guard head.method == .POST else { return send(.refusal(405, "add-checkpoint is a POST"), head, context) }
        guard !tooLarge else { return send(.refusal(400, "the request body is over \(WitnessServer.maxBody) bytes"), head, context) }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        server.decide(body, on: context.eventLoop).whenComplete { result in
            let (handler, context) = bound.value
            switch result {
            case .success(let reply): handler.send(reply, head, context)
            case .failure(let error): handler.send(.refusal(500, "\(error)"), head, context)
            }
        }
    }

    private func send(_ reply: WitnessReply, _ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        let body = Array(reply.body.utf8)
        headers.add(name: "Content-Type", value: reply.contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Connection", value: head.isKeepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: reply.status), headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let sent = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: sent)
        if !head.isKeepAlive {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            sent.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }
}

/// The witness's state on disk, replaced whole and synced (`ReplacedFile`), so that a crash
/// leaves the old state or the new, and a cosignature is never sent for a state not kept.
public struct WitnessStateFile: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The state in the file; an empty state when there is no file yet.
    public func read() throws -> WitnessState {
        let bytes: [UInt8]?
        do {
            bytes = try ReplacedFile.read(path)
        } catch {
            throw WitnessError("cannot read the witness state: \(error)")
        }
        guard let bytes else { return WitnessState() }
        return try WitnessState(parsing: String(decoding: bytes, as: UTF8.self))
    }

    public func write(_ state: WitnessState) throws {
        do {
            try ReplacedFile.replace(path, with: Array(state.serialized.utf8), durable: true)
        } catch {
            throw WitnessError("cannot keep the witness state: \(error)")
        }
    }
}
