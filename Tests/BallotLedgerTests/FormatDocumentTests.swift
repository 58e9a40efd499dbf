import Testing
import Foundation
import TestSupport
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain

/// Reads the payload table of docs/ledger-format.md (§3) and decodes every event type's payload
/// by it alone, field by field: the document must account for every byte the encoder writes.
@Suite struct FormatDocumentTests {
    /// One field of a payload as the document lists it: a primitive, or a counted group.
    indirect enum Field {
        case primitive(String)
        case group([Field])
    }

    /// The table rows: type byte → (name, fields).
    func table() throws -> [UInt8: (name: String, fields: [Field])] {
        let doc = try String(contentsOfFile: "\(Fixtures.repositoryRoot)/docs/ledger-format.md", encoding: .utf8)
        var rows: [UInt8: (String, [Field])] = [:]
        for line in doc.split(separator: "\n") where line.hasPrefix("| ") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == 3, let type = UInt8(cells[0]), cells[1].hasPrefix("`") else { continue }
            rows[type] = (cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`")), parse(Substring(cells[2])))
        }
        return rows
    }

    /// Splits "`id` election · `u16` count c, then c × (`id` x · `f64` w) · …" into fields.
    func parse(_ text: Substring) -> [Field] {
        var parts: [Substring] = []
        var depth = 0
        var start = text.startIndex
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if c == "(" { depth += 1 }
            if c == ")" { depth -= 1 }
            if c == "·" && depth == 0 {
                parts.append(text[start..<i])
                start = text.index(after: i)
            }
            i = text.index(after: i)
        }
        parts.append(text[start...])
        return parts.flatMap { part -> [Field] in
            let type = part.split(separator: "`", omittingEmptySubsequences: false)[1]
            // A counted group reads "`u16` … count c, then c × (…)"; other parentheses are notes.
            guard let times = part.firstIndex(of: "×"), let open = part[times...].firstIndex(of: "("),
                  let close = part[open...].firstIndex(of: ")") else {
                return [.primitive(String(type))]
            }
            return [.primitive(String(type)), .group(parse(part[part.index(after: open)..<close]))]
        }
    }

    /// Consumes `fields` from `bytes` at `at`; a group repeats as many times as the u16 before it says.
    func consume(_ fields: [Field], _ bytes: [UInt8], _ at: inout Int) throws {
        var lastCount = 0
        for field in fields {
            switch field {
            case .primitive(let type):
                let size: Int
                switch type {
                case "u8", "bool": size = 1
                case "u16":
                    lastCount = Int(bytes[at]) << 8 | Int(bytes[at + 1])
                    size = 2
                case "u32", "i32": size = 4
                case "u64", "i64", "f64", "time": size = 8
                case "key32": size = 32
                case "sig64": size = 64
                case "str", "id": size = 2 + (Int(bytes[at]) << 8 | Int(bytes[at + 1]))
                default:
                    Issue.record("the document names an unknown primitive '\(type)'")
                    return
                }
                at += size
                #expect(at <= bytes.count, "\(type) runs past the payload")
            case .group(let inner):
                for _ in 0..<lastCount { try consume(inner, bytes, &at) }
            }
        }
    }

    @Test func everyPayloadDecodesByTheDocumentAlone() throws {
        let rows = try table()
        #expect(Set(rows.keys) == Set(EventKind.allCases.map(\.rawValue)))
        for event in RecordCodecTests().everyKind {
            // The row gives the newest layout; what an older rules version leaves out, and the
            // byte written only when an election requires witnesses, its notes say.
            var trailing = 0
            switch event {
            case .electionDefined(let d):
                if d.rules < .v2 { continue }
                trailing = d.jurySignatures != .none ? 4 : d.witnessesRequired ? 1 : 0
            case .jurorAdded(_, _, _, let key?):
                trailing = 2 + key.name.utf8.count + 32
            case .juryScored(let score) where score.signature != nil:
                trailing = 64
            case .resultCertified(let r) where !r.justification.isEmpty || !r.cosignatures.isEmpty:
                trailing = 2 + r.justification.utf8.count + 8 + 2 + r.cosignatures.reduce(0) { $0 + 2 + $1.juror.value.utf8.count + 64 }
            default:
                break
            }
            let kind = event.kind
            let row = try #require(rows[kind.rawValue], "no row for type \(kind.rawValue)")
            #expect(row.name == kind.description)
            let record = RecordCodec.encode(RecordedEvent(seq: 9, timestamp: Fixtures.time(Fixtures.now), actor: Fixtures.admin,
                                                          idempotencyKey: "k", event: event))
            let k = Int(record[23]) << 8 | Int(record[24])
            let payload = Array(record[(29 + k)...])
            var at = 0
            try consume(row.fields, payload, &at)
            #expect(at + trailing == payload.count, "\(kind): the document accounts for \(at) of \(payload.count) payload bytes")
            if trailing == 1 { #expect(payload.last == 1) }
            if case .electionDefined(let d) = event, trailing == 4 {
                #expect(Array(payload.suffix(4)) == [d.witnessesRequired ? 1 : 0, d.jurySignatures.required ? 1 : 0, 0, UInt8(d.jurySignatures.quorum)])
            }
        }
    }
}
