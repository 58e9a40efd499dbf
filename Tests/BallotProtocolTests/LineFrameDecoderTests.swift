import Testing
import NIOCore
import NIOTestUtils
@testable import BallotProtocol

@Suite struct LineFrameDecoderTests {
    func buffer(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    @Test func splitsLinesWhateverTheChunking() throws {
        // The verifier also feeds the input one byte at a time and in other splits.
        try ByteToMessageDecoderVerifier.verifyDecoder(
            stringInputOutputPairs: [
                ("{\"op\":\"hello\"}\n", [.line(buffer("{\"op\":\"hello\"}"))]),
                ("a\r\nb\n", [.line(buffer("a")), .line(buffer("b"))]),
                ("\n", [.line(buffer(""))]),
            ],
            decoderFactory: { LineFrameDecoder(maximumLineBytes: 64) })
    }

    @Test func anOversizedLineIsReportedAndSkippedNotBuffered() {
        var decoder = LineFrameDecoder(maximumLineBytes: 8)
        var input = ByteBuffer(string: "0123456789")
        #expect(decoder.next(&input) == nil)
        #expect(input.readableBytes == 0)            // dropped, not kept
        input.writeString("abcdef\nok\n")
        #expect(decoder.next(&input) == .tooLong(bytes: 16))
        #expect(decoder.next(&input) == .line(buffer("ok")))
        var exact = ByteBuffer(string: "12345678\n123456789\n")
        #expect(decoder.next(&exact) == .line(buffer("12345678")))
        #expect(decoder.next(&exact) == .tooLong(bytes: 9))
    }
}
