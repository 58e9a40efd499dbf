import BallotProtocol
import BallotDomain
import NIOCore

enum RequestTarget {
    static func run(_ input: UnsafeRawBufferPointer) {
        var line = ByteBufferAllocator().buffer(capacity: input.count)
        line.writeBytes(input)
        if case .success(let request) = Request.parse(line) {
            _ = try? Op(request)   // a refusal is fine; a trap is not
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
