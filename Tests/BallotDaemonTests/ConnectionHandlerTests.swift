import Testing
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import BallotDomain
import BallotLedger
import BallotFormat
import BallotAudit
import BallotProtocol
import TestSupport
@testable import BallotDaemon

/// `ConnectionHandler` on an `EmbeddedChannel`: the machine's actions carried out on a real
/// pipeline (the line decoder in front), for what is answered on the event loop itself.
@Suite(.serialized) struct ConnectionHandlerTests {
    /// A handler with the daemon's real parts behind it (a ledger in a temporary directory),
    /// its writer thread not started: only requests answered at once are sent here.
    final class Rig {
        let dir = TemporaryDirectory("handler")
        let ledger: Ledger
        let channel: EmbeddedChannel
        let pool = NIOThreadPool(numberOfThreads: 1)

        init(role: Actor.Role? = .admin) throws {
            ledger = try Fixtures.ledgerWithElection(in: dir)
            let metrics = DaemonMetrics()
            let writer = GroupCommitWriter(ledger: ledger, maxBatch: 100, metrics: metrics)
            let operations = OperationHandler(writer: writer, reader: ledger.reader, hasher: Fixtures.hasher, clock: ManualClock(Fixtures.now),
                                              metrics: metrics, verification: LedgerVerification(mode: .off, opening: ledger.opening, size: ledger.size, metrics: metrics),
                                              renderMetrics: { [] })
            let service = RequestService(operations: operations, readPool: pool, maxLineBytes: 64, logger: Logger(label: "test"))
            let bulk = LineFrameDecoder.Bulk()
            channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maximumLineBytes: 64, bulk: bulk)))
            try channel.pipeline.syncOperations.addHandler(ConnectionHandler(service: service, peer: Peer(uid: 1, gid: 1, pid: 1, role: role, juror: nil), bulk: bulk))
            // An embedded channel is active (as a socket's is) once "connected".
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        func send(_ text: String) throws { try channel.writeInbound(ByteBuffer(string: text)) }

        /// Every reply line written so far.
        func replies() throws -> [String] {
            var lines: [String] = []
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
                lines += String(buffer: buffer).split(separator: "\n").map(String.init)
            }
            return lines
        }

        deinit {
            _ = try? channel.finish()
            ledger.close()
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let rig = try Rig()
        try rig.send(#"{"id":1,"op":"hello"}"# + "\n" + #"{"id":2,"op":"status"}"# + "\nnot json\n" + #"{"id":4,"op":"nope"}"# + "\n")
        let replies = try rig.replies()
        #expect(replies.count == 4)
        #expect(replies[0].hasPrefix(#"{"id":1,"ok":true"#))
        #expect(replies[1].hasPrefix(#"{"id":2,"ok":true"#))
        #expect(replies[2].contains(#""code":"bad_request""#))
        #expect(replies[3].contains(#""code":"unknown_op""#))
    }

    @Test func aLineTooLongIsRefusedAndTheConnectionGoesOn() throws {
        let rig = try Rig()
        try rig.send(String(repeating: "x", count: 100) + "\n" + #"{"id":9,"op":"hello"}"# + "\n")
        let replies = try rig.replies()
        #expect(replies.count == 2)
        #expect(replies[0].contains("at most 64"))
        #expect(replies[1].hasPrefix(#"{"id":9,"ok":true"#))
        #expect(rig.channel.isActive)
    }

    @Test func aHalfCloseIsAnsweredThenTheConnectionCloses() throws {
        let rig = try Rig()
        try rig.send(#"{"id":1,"op":"hello"}"# + "\n")
        rig.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(try rig.replies().count == 1)
        #expect(!rig.channel.isActive)
    }

    @Test func shutdownClosesAnIdleConnection() throws {
        let rig = try Rig()
        try rig.send(#"{"id":1,"op":"hello"}"# + "\n")
        #expect(try rig.replies().count == 1)
        rig.channel.pipeline.fireUserInboundEventTriggered(ShutdownRequested())
        #expect(!rig.channel.isActive)
    }

    @Test func aPeerWithoutARoleMayOnlySayHello() throws {
        let rig = try Rig(role: nil)
        try rig.send(#"{"id":1,"op":"hello"}"# + "\n" + #"{"id":2,"op":"status"}"# + "\n")
        let replies = try rig.replies()
        #expect(replies.count == 2)
        #expect(replies[0].hasPrefix(#"{"id":1,"ok":true"#))
        #expect(replies[1].contains(#""code":"forbidden""#))
    }
}
