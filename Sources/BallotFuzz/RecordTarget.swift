import BallotFormat
import BallotDomain

enum RecordTarget {
    static func run(_ input: UnsafeRawBufferPointer) {
        guard let record = try? RecordCodec.decode(input, seq: 1) else { return }
        let encoded = RecordCodec.encode(record)
        let again: RecordedEvent
        do {
            again = try encoded.withUnsafeBytes { try RecordCodec.decode($0, seq: 1) }
        } catch {
            preconditionFailure("a record that decoded does not decode once encoded again: \(error)")
        }
        precondition(again == record, "a record changed when encoded and decoded again: \(record) became \(again)")
    }
}
