import Testing
import NIOCore
import TestSupport
@testable import BallotProtocol
import BallotDomain

@Suite struct RequestTests {
    func parse(_ line: String) -> Result<Request, RequestFailure> { Request.parse(ByteBuffer(string: line)) }

    func operation(_ line: String) throws -> Op {
        let request = try parse(line).get()
        return try Op(request)
    }

    func refusal(_ line: String) -> ProtocolError? {
        switch parse(line) {
        case .failure(let f): return f.error
        case .success(let r):
            do {
                _ = try Op(r)
                return nil
            } catch {
                return error
            }
        }
    }

    @Test func parsesAVote() throws {
        let op = try operation(#"{"id": 7, "op": "vote.cast", "election": "imdi-2022", "nominee": "kinn", "voter": "ola@example.no", "cast_at": "2022-11-03T10:00:00Z"}"#)
        guard case .voteCast(let e, let n, let voter, let castAt, let channel) = op else { Issue.record("not a vote"); return }
        #expect(e.value == "imdi-2022" && n.value == "kinn" && voter == "ola@example.no" && channel == "")
        #expect(castAt == Fixtures.time("2022-11-03T10:00:00Z"))
        #expect(try parse(#"{"id": 7, "op": "hello"}"#).get().id == .int(7))
        #expect(try parse(#"{"id": "x", "op": "hello"}"#).get().id == .string("x"))
    }

    @Test func badRequestsNameWhatIsWrong() {
        #expect(refusal("not json")?.code == .badRequest)
        #expect(refusal("[1, 2]")?.message.contains("JSON object") == true)
        #expect(refusal(#"{"id": 1}"#)?.message.contains("no 'op'") == true)
        #expect(refusal(#"{"op": 5}"#)?.code == .badRequest)
        #expect(refusal(#"{"op": "vote.launch"}"#)?.code == .unknownOp)
        #expect(refusal(#"{"op": "vote.cast", "election": "e", "nominee": "n"}"#)?.message == "vote.cast: missing field 'voter'")
        #expect(refusal(#"{"op": "vote.cast", "election": 5, "nominee": "n", "voter": "v"}"#)?.message == "vote.cast: field 'election' must be a string")
        #expect(refusal(#"{"op": "vote.cast", "election": "Bad Id", "nominee": "n", "voter": "v"}"#)?.message.contains("not a valid identifier") == true)
        #expect(refusal(#"{"op": "vote.cast", "election": "e", "nominee": "n", "voter": "v", "cast_at": "soon"}"#)?.message.contains("RFC 3339") == true)
        #expect(refusal(#"{"op": "jury.score", "election": "e", "nominee": "n", "criterion": "c", "score": 1.5}"#)?.message.contains("integer") == true)
        #expect(refusal(#"{"op": "election.define", "election": {"id": "x"}}"#)?.message.contains("missing field 'title'") == true)
        // A NUL would cut the path short in the file system (the copy once landed at "/tmp/b").
        #expect(refusal(#"{"op": "backup", "directory": "/tmp/b\u0000ackup"}"#)?.message.contains("NUL") == true)
        #expect(refusal(#"{"op": "import", "file": "a\u0000b.csv", "size": 5}"#)?.message.contains("NUL") == true)
    }

    /// A numeric id comes back as it was written: 100 digits, not 1e+100; 1.50, not 1.5.
    @Test func aNumericIDIsEchoedAsWritten() throws {
        let digits = String(repeating: "9", count: 100)
        for id in [digits, "1.50", "-0", "7"] {
            let request = try parse(#"{"id": \#(id), "op": "hello"}"#).get()
            #expect(String(decoding: Reply.ok(id: request.id, result: .null), as: UTF8.self) == "{\"id\":\(id),\"ok\":true,\"result\":null}\n")
        }
        // Also when the request is refused.
        guard case .failure(let f) = parse(#"{"id": \#(digits), "nop": 1}"#) else { Issue.record("no op accepted"); return }
        #expect(String(decoding: Reply.error(id: f.id, f.error), as: UTF8.self).hasPrefix("{\"id\":\(digits),"))
        #expect(refusal(#"{"id": 1, "op": "hello", "op": "status"}"#)?.message.contains("'op' is used twice") == true)
    }

    @Test func invalidUTF8IsABadRequest() {
        var buffer = ByteBuffer()
        buffer.writeBytes([0x7B, 0x22, 0x6F, 0x70, 0x22, 0x3A, 0x22, 0xFF, 0xFE, 0x22, 0x7D])
        guard case .failure(let f) = Request.parse(buffer) else { Issue.record("invalid UTF-8 accepted"); return }
        #expect(f.error.code == .badRequest)
    }

    @Test func repliesAreOneLineOfJSON() {
        let ok = String(decoding: Reply.ok(id: .int(1), result: .object([("seq", .int(5))])), as: UTF8.self)
        #expect(ok == "{\"id\":1,\"ok\":true,\"result\":{\"seq\":5}}\n")
        let error = String(decoding: Reply.error(id: .null, code: .badRequest, message: "no \"op\""), as: UTF8.self)
        #expect(error == "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"bad_request\",\"message\":\"no \\\"op\\\"\"}}\n")
    }
}
