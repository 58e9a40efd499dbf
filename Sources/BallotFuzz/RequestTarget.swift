import BallotProtocol
import BallotDomain
import NIOCore

enum RequestTarget {
    static func run(_ input: UnsafeRawBufferPointer) {
        var line = ByteBufferAllocator().buffer(capacity: input.count)
        line.writeBytes(input)
        if case .success(let request) = Request.parse(line), let op = try? Op(request) {   // a refusal is fine; a trap is not
            // What the daemon accepts, a client encodes to a line the daemon decodes to the same op.
            let key = try? Fields(request).optionalString("idempotency_key")
            let encoded = op.requestLine(id: request.id, idempotencyKey: key ?? nil)
            let again = Request.parse(ByteBuffer(bytes: encoded.dropLast()))
            guard case .success(let decoded) = again, let same = try? Op(decoded) else {
                preconditionFailure("an op the daemon accepted does not decode once a client encodes it: \(String(decoding: encoded, as: UTF8.self).prefix(300))")
            }
            precondition(same.requestLine(id: request.id, idempotencyKey: key ?? nil) == encoded,
                         "an op changed when encoded and decoded: \(String(decoding: encoded, as: UTF8.self).prefix(300))")
        }
        // The same bytes as a line from the daemon: a client reads it or refuses it, and what it
        // reads writes back as itself.
        if let reply = try? ReplyLine(parsing: UnsafeRawBufferPointer(input)) {
            precondition((try? ReplyLine(parsing: reply.bytes.dropLast())) == reply, "a reply line changed when written and read back")
            if let result = reply.result { ReplyResults.check(result) }
        }
        // JSON the parser accepts, written out by the daemon's writer, reads back as the same value.
        guard let value = try? JSONParser.parse(input) else { return }
        let written = value.serialized()
        let again: JSONValue
        do {
            again = try written.withUnsafeBytes { try JSONParser.parse($0) }
        } catch {
            preconditionFailure("JSON the parser accepted does not read back once written: \(error); written \(String(decoding: written, as: UTF8.self).prefix(200))")
        }
        precondition(again == value, "JSON changed when written and read back: \(String(decoding: written, as: UTF8.self).prefix(200))")
    }
}

/// Every result type a client reads: any JSON is read or refused, never trapped on, and what is
/// read writes back as itself.
enum ReplyResults {
    static func check(_ json: JSONValue) {
        roundTrip(HelloResult.self, json); roundTrip(StatusResult.self, json); roundTrip(MetricsResult.self, json)
        roundTrip(WriteReceipt.self, json); roundTrip(DefineResult.self, json); roundTrip(CheckpointTaken.self, json)
        roundTrip(LatestCheckpoint.self, json); roundTrip(EventsResult.self, json); roundTrip(InclusionProofResult.self, json)
        roundTrip(ConsistencyProofResult.self, json); roundTrip(ReceiptResult.self, json); roundTrip(BackupResult.self, json)
        roundTrip(SubscriptionStart.self, json); roundTrip(ImportGoAhead.self, json); roundTrip(ImportSummary.self, json)
        roundTrip(ImportRefusedRow.self, json); roundTrip(ImportProgress.self, json); roundTrip(ReplicationStart.self, json)
    }

    static func roundTrip<R: OpResult>(_ type: R.Type, _ json: JSONValue) {
        guard let read = try? R(json: json) else { return }
        precondition((try? R(json: read.json)) == read, "\(R.self) changed when written and read back")
    }
}
