import Testing
import NIOCore
import NIOTestUtils
import BallotDomain
@testable import BallotProtocol

/// What a follower reads from its primary: reply lines, and chunk headers with their bytes.
@Suite struct RecordStreamDecoderTests {
    static let reply = #"{"id":null,"ok":true,"result":{"from":1,"ledger_id":"000102030405060708090a0b0c0d0e0f","ledger_size":3,"root_before":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}"#

    @Test func splitsRepliesChunksAndHeartbeatsWhateverTheChunking() throws {
        let header = ChunkHeader(records: 2, from: 1, bytes: 11, ledgerSize: 3)
        let wire: [UInt8] = [0, 0, 0, 2, 0x0A, 0x0A, 0, 0, 0, 1, 0xFF]   // newlines inside a record are bytes, not lines
        let beat = ChunkHeader(records: 0, from: 3, bytes: 0, ledgerSize: 3)
        var input = ByteBuffer(string: Self.reply + "\n")
        input.writeBytes(header.line)
        input.writeBytes(wire)
        input.writeBytes(beat.line)
        let expected: [RecordStreamDecoder.Frame] = [
            .reply(try JSONParser.parse(Self.reply)), .chunk(header, wire: wire), .chunk(beat, wire: []),
        ]
        // The verifier also feeds the input one byte at a time and in other splits.
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: [(input, expected)], decoderFactory: { RecordStreamDecoder() })
        let start = try ReplicationStart(json: try JSONParser.parse(Self.reply)["result"]!)
        #expect(start == ReplicationStart(from: 1, ledgerID: Array(0..<16), ledgerSize: 3,
                                          rootBefore: Digest32(hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")!))
    }

    @Test func aHeaderThatAnnouncesTooMuchOrNonsenseIsRefused() {
        for bad in [
            #"{"records":1,"from":1,"bytes":200000000,"ledger_size":1}"#,   // past maxBytes
            #"{"records":2,"from":1,"bytes":5,"ledger_size":1}"#,           // 2 records cannot be 5 bytes
            #"{"records":0,"from":1,"bytes":9,"ledger_size":1}"#,           // a heartbeat with bytes
            #"{"records":1,"from":0,"bytes":5,"ledger_size":1}"#,           // no event 0
            #"{"records":"x","from":1,"bytes":5,"ledger_size":1}"#,
            "not json",
        ] {
            var decoder = RecordStreamDecoder()
            var input = ByteBuffer(string: bad + "\n")
            #expect(throws: ProtocolError.self, "\(bad)") { try decoder.next(&input) }
        }
    }

    @Test func aLineWithoutItsEndPastTheLimitIsRefused() {
        var decoder = RecordStreamDecoder(maximumLineBytes: 16)
        var input = ByteBuffer(string: String(repeating: "x", count: 17))
        #expect(throws: ProtocolError.self) { try decoder.next(&input) }
    }

    @Test func aReplyThatLacksItsFieldsIsRefused() {
        #expect(throws: ProtocolError.self) { try ReplicationStart(json: .object([("from", .int(1)), ("ledger_id", .string("zz"))])) }
    }
}
