public import BallotDomain

/// The byte layout of one ledger record, version 1. docs/ledger-format.md is the specification;
/// this file implements it and a test decodes stored bytes by the document's offsets.
///
///     offset  size  field
///     0       1     format version (1)
///     1       1     event type (EventKind)
///     2       8     sequence number, u64 BE
///     10      8     timestamp, i64 BE microseconds since 1970-01-01T00:00:00Z
///     18      1     actor role
///     19      4     actor uid, u32 BE
///     23      2     idempotency key length K, u16 BE
///     25      K     idempotency key, UTF-8
///     25+K    4     payload length P, u32 BE
///     29+K    P     payload (per event type)
public enum RecordCodec {
    public static let formatVersion: UInt8 = 1
    /// Idempotency keys longer than this are refused.
    public static let maxIdempotencyKeyBytes = 256

    /// The record's bytes.
    public static func encode(_ record: RecordedEvent) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        encode(record, into: &w)
        return w.bytes
    }

    static func encode(_ record: RecordedEvent, into w: inout ByteWriter) {
        w.u8(formatVersion)
        w.u8(record.event.kind.rawValue)
        w.u64(record.seq)
        w.i64(record.timestamp.microseconds)
        w.u8(record.actor.role.rawValue)
        w.u32(record.actor.uid)
        w.str(record.idempotencyKey)
        let lengthAt = w.bytes.count
        w.u32(0)
        let start = w.bytes.count
        PayloadCodec.encode(record.event, into: &w)
        let length = UInt32(w.bytes.count - start).bigEndian
        withUnsafeBytes(of: length) { b in
            for i in 0..<4 { w.bytes[lengthAt + i] = b[i] }
        }
    }

    /// Decodes the record stored under sequence number `seq`, checking that it says the same.
    public static func decode(_ bytes: UnsafeRawBufferPointer, seq: UInt64) throws(LedgerError) -> RecordedEvent {
        try decode(bytes, seq: seq, interner: nil)
    }

    /// The same, reusing the Strings of texts that `interner` has seen in earlier records.
    static func decode(_ bytes: UnsafeRawBufferPointer, seq: UInt64, interner: inout TextInterner) throws(LedgerError) -> RecordedEvent {
        try withUnsafeMutablePointer(to: &interner) { p throws(LedgerError) in try decode(bytes, seq: seq, interner: p) }
    }

    private static func decode(_ bytes: UnsafeRawBufferPointer, seq: UInt64,
                               interner: UnsafeMutablePointer<TextInterner>?) throws(LedgerError) -> RecordedEvent {
        var r = ByteReader(bytes, interner: interner)
        do {
            let version = try r.u8("format version")
            guard version == formatVersion else {
                throw LedgerError.unsupportedFormat(found: version, supported: formatVersion, at: "the record at sequence number \(seq)")
            }
            let kindByte = try r.u8("event type")
            guard let kind = EventKind(rawValue: kindByte) else {
                throw LedgerError.corruptRecord(seq: seq, reason: "unknown event type \(kindByte) at byte 1")
            }
            let stored = try r.u64("sequence number")
            guard stored == seq else {
                throw LedgerError.corruptRecord(seq: seq, reason: "the record says sequence number \(stored) but is stored under \(seq)")
            }
            let timestamp = Timestamp(microseconds: try r.i64("timestamp"))
            let roleByte = try r.u8("actor role")
            guard let role = Actor.Role(rawValue: roleByte) else {
                throw LedgerError.corruptRecord(seq: seq, reason: "unknown actor role \(roleByte) at byte 18")
            }
            let uid = try r.u32("actor uid")
            let key = try r.str("idempotency key")
            let length = Int(try r.u32("payload length"))
            guard length == r.remaining else {
                throw LedgerError.corruptRecord(seq: seq, reason: "payload length says \(length) bytes but \(r.remaining) follow")
            }
            let event = try PayloadCodec.decode(kind, &r)
            guard r.remaining == 0 else {
                throw LedgerError.corruptRecord(seq: seq, reason: "\(r.remaining) bytes left over after the \(kind) payload")
            }
            return RecordedEvent(seq: seq, timestamp: timestamp, actor: Actor(role: role, uid: uid),
                                 idempotencyKey: key, event: event)
        } catch let failure as ByteReader.Failure {
            throw LedgerError.corruptRecord(seq: seq, reason: failure.description)
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError.corruptRecord(seq: seq, reason: "\(error)")
        }
    }
}
