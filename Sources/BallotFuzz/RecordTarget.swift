import BallotFormat
import BallotDomain

enum RecordTarget {
    static func run(_ input: UnsafeRawBufferPointer) {
        // Decoded at the sequence number its header holds (bytes 2 to 9), so that a record taken
        // from a ledger reaches its payload.
        let seq = input.count >= 10 ? input.loadUnaligned(fromByteOffset: 2, as: UInt64.self).bigEndian : 1
        guard let record = try? RecordCodec.decode(input, seq: seq) else { return }
        let encoded = RecordCodec.encode(record)
        let again: RecordedEvent
        do {
            again = try encoded.withUnsafeBytes { try RecordCodec.decode($0, seq: seq) }
        } catch {
            preconditionFailure("a record that decoded does not decode once encoded again: \(error)")
        }
        precondition(again == record, "a record changed when encoded and decoded again: \(record) became \(again)")
    }
}
