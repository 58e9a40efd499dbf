public import BallotDomain
public import BallotCollections

// How the audit carries votes, nearly every event, from its segment checkers to its rule pass:
// as plain numbers, with a code for each id (election, nominee), so that a
// million votes cost no String and no reference counting on their way (docs/performance.md,
// "Auditing"). Every other event, and a vote whose texts cannot be coded, travels decoded.

/// A `vote.cast` record, decoded and checked as `RecordCodec.decode` would, its texts
/// replaced by their codes in the segment checker's `TextCodes`.
package struct CodedVote {
    package var seq: UInt64
    package var timestamp: Timestamp
    package var castAt: Timestamp
    /// The first half of the voter key: all that the rules compare (`VoterKey`'s identity).
    package var voter: Key128
    /// The audit's seeded hash of its idempotency key (`KeyHash.hash`), nil when it has none.
    package var keyHash: UInt64?
    package var election: Int32
    package var nominee: Int32
    /// The channel's length in UTF-8 bytes: all the rules read of it (its bytes are checked
    /// as full decoding checks them).
    package var channelBytes: Int

    /// The vote stored as event `seq`, or nil when the record is not a vote or one of its
    /// texts cannot be coded (the caller then decodes it in full). Throws what decoding it in
    /// full would throw.
    package static func decode(_ bytes: UnsafeRawBufferPointer, seq: UInt64, codes: inout TextCodes,
                       keySeed: UInt64) throws(LedgerError) -> CodedVote? {
        if let vote = common(bytes, seq: seq, codes: &codes, keySeed: keySeed) { return vote }
        return try fieldByField(bytes, seq: seq, codes: &codes, keySeed: keySeed)
    }

    /// `decode` for what `common` leaves: the record read a field at a time.
    package static func fieldByField(_ bytes: UnsafeRawBufferPointer, seq: UInt64, codes: inout TextCodes,
                             keySeed: UInt64) throws(LedgerError) -> CodedVote? {
        try RecordCodec.reading(bytes, seq: seq) { r throws -> CodedVote? in
            let header = try RecordCodec.Header(&r, seq: seq)
            guard header.kind == .voteCast else { return nil }
            try header.key.checkUTF8()
            let fields = try VoteFields(&r)
            // The texts are checked before the end, in the order full decoding checks them,
            // so that a record with two faults is refused for the same one.
            guard let election = try codes.code(fields.election, identifier: true),
                  let nominee = try codes.code(fields.nominee, identifier: true) else { return nil }
            try fields.channel.checkUTF8()
            try header.checkEnd(r, seq: seq)
            let key = header.key.raw
            return CodedVote(seq: seq, timestamp: header.timestamp, castAt: fields.castAt, voter: Digest32(fields.voter).prefix,
                             keyHash: key.isEmpty ? nil : KeyHash.hash(key, seed: keySeed, in: Window(header.key)),
                             election: election, nominee: nominee, channelBytes: fields.channel.raw.count)
        }
    }
}

extension CodedVote {
    /// A vote as nearly every one is: well formed, its idempotency key ASCII and at most 32
    /// bytes, and each of its texts already coded (and checked). Read at the offsets the record
    /// layout gives, with no call per field; nil for anything else, which `decode` then reads
    /// field by field, for the same answer or the reason the record is refused. (Inlined into
    /// the segment checker's loop, which keeps the general path out of line.)
    @inlinable @inline(__always)
    package static func common(_ bytes: UnsafeRawBufferPointer, seq: UInt64, codes: inout TextCodes,
                       keySeed: UInt64) -> Self? {
        guard bytes.count >= 29 else { return nil }
        let r = InRecord(bytes), n = bytes.count
        guard r.u8(0) == RecordCodec.formatVersion, r.u8(1) == EventKind.voteCast.rawValue, r.u64(2) == seq,
              r.u8(18) < 64, validRoles & (1 << UInt64(r.u8(18))) != 0 else { return nil }
        // The idempotency key (25…): ASCII is valid UTF-8.
        let k = r.u16(23)
        guard k <= 32, 29 + k <= n else { return nil }
        let key = r.text(25, k)
        guard (key.words.0 | key.words.1 | key.words.2 | key.words.3) & 0x8080_8080_8080_8080 == 0 else { return nil }
        let keyHash = k == 0 ? nil : KeyHash.hash(key, seed: keySeed)
        // The payload: its length, then election id, nominee id, voter key, cast_at, channel,
        // each text looked up as soon as it is read.
        var at = 25 + k
        guard r.u32(at) == n - at - 4, at + 6 <= n else { return nil }
        let e = r.u16(at + 4)
        guard e <= 32, at + 6 + e + 2 <= n, let election = codes.known(r.text(at + 6, e), as: .election) else { return nil }
        at += 6 + e
        let m = r.u16(at)
        guard m <= 32, at + 2 + m + 32 + 8 + 2 <= n, let nominee = codes.known(r.text(at + 2, m), as: .nominee) else { return nil }
        at += 2 + m
        let voter = Key128(a: r.word(at, 8), b: r.word(at + 8, 8))
        let castAt = Timestamp(microseconds: Int64(bitPattern: r.u64(at + 32)))
        at += 40
        let c = r.u16(at)
        guard c <= 32, at + 2 + c == n else { return nil }
        let channel = r.text(at + 2, c)
        guard (channel.words.0 | channel.words.1 | channel.words.2 | channel.words.3) & 0x8080_8080_8080_8080 == 0 else { return nil }
        return Self(seq: seq, timestamp: Timestamp(microseconds: Int64(bitPattern: r.u64(10))), castAt: castAt, voter: voter,
                    keyHash: keyHash, election: election, nominee: nominee, channelBytes: c)
    }

    /// `common` over `stored[range]` in order, each vote appended to `votes`, up to the first
    /// record it leaves (or that does not follow the one before it); returns that record's
    /// position, or `range.upperBound`. The audit's segment checker calls this once per run of
    /// votes: `common` is inlined into this loop, so that a vote's fields go from registers
    /// into `votes` (returned through memory, they were read back before the stores had landed).
    package static func appendCommon(_ stored: [(seq: UInt64, bytes: UnsafeRawBufferPointer)], _ range: Range<Int>,
                                     to votes: inout [CodedVote], codes: inout TextCodes, keySeed: UInt64) -> Int {
        var i = range.lowerBound
        while i < range.upperBound {
            if i > range.lowerBound && stored[i].seq != stored[i - 1].seq &+ 1 { return i }
            guard let vote = common(stored[i].bytes, seq: stored[i].seq, codes: &codes, keySeed: keySeed) else { return i }
            votes.append(vote)
            i += 1
        }
        return i
    }

    /// Bit b set when b is an actor role's byte: `Actor.Role(rawValue:)` without a call per
    /// vote (a test checks it against the roles there are).
    package static let validRoles: UInt64 = 0b1_1111
}

/// Reads inside one record at offsets already checked against its length.
package struct InRecord {
    package let base: UnsafeRawPointer
    package let count: Int

    /// `bytes` must be at least 8 long.
    @inlinable @inline(__always)
    package init(_ bytes: UnsafeRawBufferPointer) {
        base = bytes.baseAddress!
        count = bytes.count
    }

    @inlinable @inline(__always)
    package func u8(_ at: Int) -> UInt8 { base.load(fromByteOffset: at, as: UInt8.self) }

    @inlinable @inline(__always)
    package func u32(_ at: Int) -> Int { Int(UInt32(bigEndian: base.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }

    @inlinable @inline(__always)
    package func u16(_ at: Int) -> Int { Int(UInt16(bigEndian: base.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }

    @inlinable @inline(__always)
    package func u64(_ at: Int) -> UInt64 { UInt64(bigEndian: base.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }

    /// `length` (at most 8) bytes from `at`, as `Window.word` gives them (little-endian,
    /// zero above), in one load that stays inside the record.
    @inlinable @inline(__always)
    package func word(_ at: Int, _ length: Int) -> UInt64 {
        if length <= 0 { return 0 }
        // (Wrapping arithmetic: the callers have checked the offsets against the length.)
        let w = at &+ 8 <= count ? base.loadUnaligned(fromByteOffset: at, as: UInt64.self)
            : base.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self) &>> UInt64(truncatingIfNeeded: 8 &* (at &+ 8 &- count))
        return length >= 8 ? w : w & ((1 &<< UInt64(truncatingIfNeeded: 8 &* length)) &- 1)
    }

    /// The text of `length` (at most 32) bytes at `at`, in words.
    @inlinable @inline(__always)
    package func text(_ at: Int, _ length: Int) -> TextCodes.Bytes {
        if length <= 8 { return TextCodes.Bytes(length: length, words: (word(at, length), 0, 0, 0)) }
        let first = base.loadUnaligned(fromByteOffset: at, as: UInt64.self)  // 8 bytes of the text itself
        if length <= 16 { return TextCodes.Bytes(length: length, words: (first, word(at &+ 8, length &- 8), 0, 0)) }
        return TextCodes.Bytes(length: length, words: (first, base.loadUnaligned(fromByteOffset: at &+ 8, as: UInt64.self),
                                                             word(at &+ 16, length &- 16), word(at &+ 24, length &- 24)))
    }
}

/// The distinct short texts of the votes met so far, numbered in the order met, each checked
/// (UTF-8, and identifier where one is wanted) the first time only. The checker hands
/// each new text over with the batch that first uses it (`takeNew`).
package struct TextCodes {
    package init() {}

    /// Longer texts, and texts past `limit`, are not coded: their votes travel decoded.
    package static let longest = 32
    package static let limit = 1 << 16

    package struct Bytes: Hashable {
        package var length: Int
        package var words: (UInt64, UInt64, UInt64, UInt64)

        package init(length: Int, words: (UInt64, UInt64, UInt64, UInt64)) {
            self.length = length
            self.words = words
        }

        /// `raw` is at most 32 bytes, read in whole words (`Window.word`) with no call and no
        /// byte loop: a vote has three texts to look up.
        @inline(__always)
        package init(_ raw: UnsafeRawBufferPointer, in window: Window = .none) {
            length = raw.count
            words = (window.word(raw, 0), window.word(raw, 8), window.word(raw, 16), window.word(raw, 24))
        }

        /// Where the text goes in `TextCodes.cache`.
        @inlinable
        package var slot: Int {
            let mixed = (words.0 ^ words.1 &* 0xA076_1D64_78BD_642F ^ UInt64(length)) &* 0x9E37_79B9_7F4A_7C15
            return Int(truncatingIfNeeded: mixed >> UInt64(64 - TextCodes.cacheBits))
        }

        @inlinable
        package static func == (a: Bytes, b: Bytes) -> Bool {
            a.length == b.length && a.words.0 == b.words.0 && a.words.1 == b.words.1
                && a.words.2 == b.words.2 && a.words.3 == b.words.3
        }

        package func hash(into h: inout Hasher) {
            h.combine(length)
            h.combine(words.0)
            h.combine(words.1)
            h.combine(words.2)
            h.combine(words.3)
        }
    }

    private var codes: [Bytes: Int32] = [:]
    @usableFromInline var isIdentifier: [Bool] = []
    /// In front of `codes`: each text's code in one of two slots picked by its bytes, so
    /// that a run of votes, which repeats a handful of texts, finds them without hashing.
    package static let cacheBits = 8
    @usableFromInline var cache = [(bytes: Bytes, code: Int32)](repeating: (Bytes(UnsafeRawBufferPointer(start: nil, count: 0)), -1),
                                                      count: 1 << cacheBits)
    private var new: [String] = []
    /// What `known` found last, for the election (0) and nominees (1…8): only codes that
    /// are identifiers.
    @usableFromInline var recent = [(bytes: Bytes, code: Int32)](repeating: (Bytes(length: -1, words: (0, 0, 0, 0)), -1), count: 9)

    /// The code of `text`, checking it first if it is new (or new as an identifier); nil
    /// when it is not to be coded.
    package mutating func code(_ text: ByteReader.Text, identifier: Bool) throws(ByteReader.Failure) -> Int32? {
        guard text.raw.count <= Self.longest else { return nil }
        let bytes = Bytes(text.raw, in: Window(text))
        var code: Int32
        if let cached = cached(bytes) {
            code = cached
        } else {
            let slot = bytes.slot & ~1
            cache[slot + 1] = cache[slot]
            if let known = codes[bytes] {
                code = known
            } else {
                guard isIdentifier.count < Self.limit else { return nil }
                if identifier { try text.checkIdentifier() }
                let string = try text.string()
                code = Int32(isIdentifier.count)
                codes[bytes] = code
                isIdentifier.append(identifier)
                new.append(string)
            }
            cache[slot] = (bytes, code)
        }
        if identifier && !isIdentifier[Int(code)] {
            try text.checkIdentifier()
            isIdentifier[Int(code)] = true
        }
        return code
    }

    /// The field of a vote a text is read for: what `known` remembers it by.
    package enum Field {
        case election, nominee
    }

    /// The code of a text already coded (and checked as an identifier, where `field` is
    /// one), when the last texts found for `field` or the cache in front of the codes hold
    /// it; else nil (`code` then looks further).
    @inlinable @inline(__always)
    package mutating func known(_ bytes: Bytes, as field: Field) -> Int32? {
        // Votes repeat a handful of ids: one election, a few nominees.
        let memo = field == .election ? 0 : 1 + Int(truncatingIfNeeded: (bytes.words.0 &* 0x9E37_79B9_7F4A_7C15) >> 61)
        if recent[memo].bytes == bytes { return recent[memo].code }
        guard let code = cached(bytes), isIdentifier[Int(code)] else { return nil }
        recent[memo] = (bytes, code)
        return code
    }

    /// The code of `bytes` if the cache in front of the codes holds it. Two ways: texts whose
    /// slots collide both stay, the one found last in front.
    @inlinable @inline(__always)
    mutating func cached(_ bytes: Bytes) -> Int32? {
        let slot = bytes.slot & ~1
        if cache[slot].code >= 0 && cache[slot].bytes == bytes { return cache[slot].code }
        guard cache[slot + 1].code >= 0 && cache[slot + 1].bytes == bytes else { return nil }
        cache.swapAt(slot, slot + 1)
        return cache[slot].code
    }

    /// The texts coded since the last call, in code order.
    package mutating func takeNew() -> [String] {
        defer { new.removeAll() }
        return new
    }
}

/// How much of the buffer around a short byte string may be read, so that its last, partial
/// word is one load: masked when a whole word can be read from where it starts, shifted
/// when one can be read that ends where it ends (a vote's texts lie inside its record), and
/// only otherwise assembled from 4-, 2- and 1-byte pieces. The word is the same either way.
package struct Window {
    /// Bytes readable from the string's start (itself and what follows it), and before it.
    package var after = 0
    package var before = 0

    package static let none = Window()

    package init() {}

    package init(_ text: ByteReader.Text) {
        after = text.readable
        before = text.at
    }

    /// `raw[i..<min(i + 8, raw.count)]` as a little-endian word, zero above.
    @inlinable @inline(__always)
    package func word(_ raw: UnsafeRawBufferPointer, _ i: Int) -> UInt64 {
        let n = raw.count, left = n - i
        if left >= 8 { return raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) }
        if left <= 0 { return 0 }
        let base = raw.baseAddress!
        if after - i >= 8 { return base.loadUnaligned(fromByteOffset: i, as: UInt64.self) & ((1 << UInt64(8 * left)) &- 1) }
        if before + n >= 8 { return base.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) >> UInt64(8 * (8 - left)) }
        var w: UInt64 = 0, at = i
        if left & 4 != 0 { w = UInt64(base.loadUnaligned(fromByteOffset: at, as: UInt32.self)); at += 4 }
        if left & 2 != 0 { w |= UInt64(base.loadUnaligned(fromByteOffset: at, as: UInt16.self)) << UInt64(8 * (at - i)); at += 2 }
        if left & 1 != 0 { w |= UInt64(raw[at]) << UInt64(8 * (at - i)) }
        return w
    }
}

/// The rule pass's side of `TextCodes`: each code's text, and what it resolves to in the
/// state. A resolution is kept once found: positions in the state never change.
package struct TextsSeen {
    package init() {}

    @usableFromInline var texts: [String] = []
    /// Per code: the election at that position in the state, or -1 (not yet found).
    @usableFromInline var elections: [Int32] = []
    /// Per code: the election and nominee positions it was last found at, or -1.
    @usableFromInline var nominees: [(election: Int32, nominee: Int32)] = []

    package mutating func learn(_ new: [String]) {
        for text in new {
            texts.append(text)
            elections.append(-1)
            nominees.append((-1, -1))
        }
    }

    /// The vote, in the election at position `election`, with its nominee found there by
    /// `find` (given the nominee's id; called when the code was last found in another
    /// election, or never); nil when it is not (the rules refuse the vote: the caller replays
    /// the record in full to say why).
    ///
    /// The state is reached through `find`, only on that slow path: a call that took the
    /// state itself copied it (144 bytes) for every vote.
    @inlinable @inline(__always)  // (returned through memory, its fields were read back before the stores had landed)
    package mutating func resolve(_ vote: CodedVote, inElection election: Int, find: (NomineeID) -> Int?) -> ResolvedVote? {
        let n = Int(vote.nominee)
        var nominee = Int(nominees[n].nominee)
        if nominees[n].election != Int32(election) {
            guard let found = find(NomineeID(unchecked: texts[n])) else { return nil }
            nominees[n] = (Int32(election), Int32(found))
            nominee = found
        }
        return ResolvedVote(election: election, nominee: nominee, voter: vote.voter, castAt: vote.castAt,
                            channelBytes: vote.channelBytes)
    }

    /// The position of the election coded `code`, found by `find` (given its id, called
    /// until it finds it), or nil when it is not defined (yet).
    @inlinable @inline(__always)
    package mutating func election(_ code: Int32, find: (ElectionID) -> Int?) -> Int? {
        let c = Int(code)
        if elections[c] >= 0 { return Int(elections[c]) }
        guard let found = find(ElectionID(unchecked: texts[c])) else { return nil }
        elections[c] = Int32(found)
        return found
    }
}
