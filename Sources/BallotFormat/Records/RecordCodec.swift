public import BallotDomain
public import BallotCollections

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

    package static func encode(_ record: RecordedEvent, into w: inout ByteWriter) {
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
        try reading(bytes, seq: seq) { r throws in
            let header = try Header(&r, seq: seq)
            let key = try header.key.string()
            let event = try PayloadCodec.decode(header.kind, &r)
            try header.checkEnd(r, seq: seq)
            return RecordedEvent(seq: seq, timestamp: header.timestamp, actor: header.actor, idempotencyKey: key, event: event)
        }
    }

    /// Runs `body` over a reader of `bytes`, turning what it throws into a `LedgerError` about
    /// the record at `seq`.
    package static func reading<T>(_ bytes: UnsafeRawBufferPointer, seq: UInt64,
                           _ body: (inout ByteReader) throws -> T) throws(LedgerError) -> T {
        var r = ByteReader(bytes)
        do {
            return try body(&r)
        } catch let failure as ByteReader.Failure {
            throw LedgerError.corruptRecord(seq: seq, reason: failure.description)
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError.corruptRecord(seq: seq, reason: "\(error)")
        }
    }

    /// The fields before the payload, checked; the idempotency key is read but its UTF-8 not
    /// yet checked (`key.string()` does).
    package struct Header {
        package let kind: EventKind
        package let timestamp: Timestamp
        package let actor: Actor
        package let key: ByteReader.Text

        /// Reads up to the payload and checks that the payload length is what follows. (Inlined:
        /// returned through memory, its fields were read back before the stores had landed, a
        /// stall on every record the audit decodes.)
        @inline(__always)
        package init(_ r: inout ByteReader, seq: UInt64) throws {
            let version = try r.u8("format version")
            guard version == formatVersion else {
                throw LedgerError.unsupportedFormat(found: version, supported: formatVersion, at: "the record at sequence number \(seq)")
            }
            let kindByte = try r.u8("event type")
            guard let kind = EventKind(rawValue: kindByte) else {
                throw LedgerError.corruptRecord(seq: seq, reason: "unknown event type \(kindByte) at byte 1")
            }
            self.kind = kind
            let stored = try r.u64("sequence number")
            guard stored == seq else {
                throw LedgerError.corruptRecord(seq: seq, reason: "the record says sequence number \(stored) but is stored under \(seq)")
            }
            timestamp = Timestamp(microseconds: try r.i64("timestamp"))
            let roleByte = try r.u8("actor role")
            guard let role = Actor.Role(rawValue: roleByte) else {
                throw LedgerError.corruptRecord(seq: seq, reason: "unknown actor role \(roleByte) at byte 18")
            }
            actor = Actor(role: role, uid: try r.u32("actor uid"))
            key = try r.text("idempotency key")
            let length = Int(try r.u32("payload length"))
            guard length == r.remaining else {
                throw LedgerError.corruptRecord(seq: seq, reason: "payload length says \(length) bytes but \(r.remaining) follow")
            }
        }

        /// The payload must have been read to its last byte.
        package func checkEnd(_ r: ByteReader, seq: UInt64) throws(LedgerError) {
            guard r.remaining == 0 else {
                throw LedgerError.corruptRecord(seq: seq, reason: "\(r.remaining) bytes left over after the \(kind) payload")
            }
        }
    }
}
