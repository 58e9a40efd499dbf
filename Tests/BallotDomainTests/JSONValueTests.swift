import Testing
import BallotDomain

/// The serializer's bytes are the canonical form projections are stored and compared in, so a
/// faster way of writing them must write exactly what the plain way does: each string byte by
/// byte, escaped as JSON needs, and each integer as `String` prints it.
@Suite struct JSONValueTests {
    @Test func serializesCanonically() {
        let v = JSONValue.object([
            ("b", .int(1)), ("a", .array([.double(0.5), .double(1e-7), .bool(true), .null])),
            ("s", .string("Rælingen \"quoted\" \\ \n\t\u{01}")),
        ])
        #expect(v.text == #"{"b":1,"a":[0.5,1e-07,true,null],"s":"Rælingen \"quoted\" \\ \n\t\u0001"}"#)
        #expect(v["b"] == .int(1))
    }

    /// The plain way: the model the serializer is checked against.
    static func model(_ value: JSONValue) -> [UInt8] {
        switch value {
        case .string(let s):
            var out: [UInt8] = [0x22]
            for b in s.utf8 {
                switch b {
                case 0x22: out += [0x5C, 0x22]
                case 0x5C: out += [0x5C, 0x5C]
                case 0x0A: out += Array(#"\n"#.utf8)
                case 0x0D: out += Array(#"\r"#.utf8)
                case 0x09: out += Array(#"\t"#.utf8)
                case 0..<0x20: out += Array(String(format4: b).utf8)
                default: out.append(b)
                }
            }
            return out + [0x22]
        case .int(let i): return Array(String(i).utf8)
        case .array(let items): return [0x5B] + Array(items.map(model).joined(separator: [0x2C])) + [0x5D]
        case .object(let members):
            return [0x7B] + Array(members.map { model(.string($0.0)) + [0x3A] + model($0.1) }.joined(separator: [0x2C])) + [0x7D]
        default: return value.serialized()
        }
    }

    @Test func stringsAndIntegersAreWrittenAsThePlainWayWritesThem() {
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
        let pieces = ["a", "kinn", "ø", "\"", "\\", "\n", "\r", "\t", "€", "𝄞", " ", "/"] + (0..<0x20).map { String(UnicodeScalar(UInt8($0))) }
        let integers: [Int64] = [0, 1, -1, 9, 10, -10, 99, 100, Int64.max, Int64.min, Int64.min + 1]
        for round in 0..<3_000 {
            let text = String((0..<(next() % 24)).map { _ in pieces[Int(next() % UInt64(pieces.count))] }.joined())
            let integer = round < integers.count ? integers[round] : Int64(bitPattern: next()) >> Int64(next() % 64)
            let value = JSONValue.object([(text, .int(integer)), ("nominees", .array([.string(text), .int(integer / -3)]))])
            #expect(value.serialized() == Self.model(value), "\(Array(text.utf8)) \(integer)")
        }
    }
}

private extension String {
    /// `\u00XX` for a control byte.
    init(format4 b: UInt8) {
        let hex = Array("0123456789abcdef")
        self = "\\u00" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 0xF)])
    }
}
