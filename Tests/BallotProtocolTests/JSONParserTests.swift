import Testing
@testable import BallotProtocol
import BallotDomain

@Suite struct JSONParserTests {
    @Test func parsesWhatTheSerializerWrites() throws {
        var x: UInt64 = 0x2545F4914F6CDD1D
        func next() -> UInt64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
        func generate(_ depth: Int) -> JSONValue {
            switch next() % (depth > 3 ? 5 : 7) {
            case 0: return .null
            case 1: return .bool(next() % 2 == 0)
            case 2: return .int(Int64(bitPattern: next()) >> Int64(next() % 60))
            case 3: return .double(Double(Int64(bitPattern: next()) % 1_000_000) / 1024)
            case 4: return .string(String((0..<(next() % 12)).map { _ in ["a", "ø", "\"", "\\", "\n", "€", "𝄞", "\u{01}", " "][Int(next() % 9)] }))
            case 5: return .array((0..<(next() % 5)).map { _ in generate(depth + 1) })
            default: return .object((0..<(next() % 5)).map { i in ("k\(i)\(next() % 3 == 0 ? "\"é" : "")", generate(depth + 1)) })
            }
        }
        for _ in 0..<2000 {
            let value = generate(0)
            let parsed = try JSONParser.parse(value.text)
            #expect(parsed.serialized() == value.serialized())
        }
    }

    @Test func readsEscapesAndNumbers() throws {
        #expect(try JSONParser.parse(#" {"a" : [1, -2, 3.5, 1e3, -0, true, false, null], "b": "\u00e5\ud834\udd1e\n\/"} "#)
                == .object([("a", .array([.int(1), .int(-2), .double(3.5), .double(1000), .int(0), .bool(true), .bool(false), .null])),
                            ("b", .string("å𝄞\n/"))]))
        #expect(try JSONParser.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSONParser.parse("9223372036854775808") == .double(9223372036854775808))
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "'x'", "01", "1.", ".5", "1e", "-", "+1", "tru", "nul",
        "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud834\"", "\"\\udd1e\"", "\"tab\there\"", "[1] 2", "NaN", "1e999",
        String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ])
    func refuses(text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(text) }
    }

    /// One rule for a repeated member name, wherever JSON is read (the socket took the last,
    /// the NDJSON import the first): it is refused, in small objects and in large ones.
    @Test func refusesAMemberNameUsedTwice() throws {
        for text in [#"{"a":1,"a":2}"#, #"{"x":{"b":true,"c":1,"b":false}}"#,
                     "{" + (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + ",\"k39\":0}"] {
            let failure = #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(text) }
            #expect(failure?.reason.contains("used twice") == true)
        }
        // The same name in sibling objects is fine.
        #expect(try JSONParser.parse(#"[{"a":1},{"a":2}]"#) == .array([.object([("a", .int(1))]), .object([("a", .int(2))])]))
    }

    @Test func refusesInvalidUTF8() {
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC3, 0x28, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22]] {
            #expect(throws: JSONParser.Failure.self) { try bytes.withUnsafeBytes { try JSONParser.parse($0) } }
        }
    }
}
