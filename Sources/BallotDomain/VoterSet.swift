/// The voters who have voted in one election, by the first 128 bits of their key.
///
/// An open-addressing table with linear probing, kept at most half full. Voter keys are HMAC
/// output, already uniformly distributed, so the first word is the hash: no SipHash and no
/// per-entry allocation, 16 bytes a slot. (A `Set` of the same keys spent a tenth of the vote
/// path hashing and rehashing; see docs/performance.md.)
struct VoterSet: Sendable {
    /// Pairs of words, slot i at 2i and 2i+1; (0, 0) marks an empty slot.
    private var slots: [UInt64]
    private var mask: Int
    private(set) var count = 0
    /// The all-zero key cannot be stored in a slot; it is remembered here.
    private var hasZero = false

    init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [UInt64](repeating: 0, count: size * 2)
        mask = size - 1
    }

    func contains(_ key: VoterKey.Prefix) -> Bool {
        if key.a == 0 && key.b == 0 { return hasZero }
        return slots.withUnsafeBufferPointer { s in
            var i = Int(truncatingIfNeeded: key.a) & mask
            while true {
                let a = s[2 * i], b = s[2 * i + 1]
                if a == key.a && b == key.b { return true }
                if a == 0 && b == 0 { return false }
                i = (i + 1) & mask
            }
        }
    }

    /// Adds `key`; returns false if it was already there.
    @discardableResult
    mutating func insert(_ key: VoterKey.Prefix) -> Bool {
        if key.a == 0 && key.b == 0 {
            defer { hasZero = true }
            if !hasZero { count += 1 }
            return !hasZero
        }
        if (count + 1) * 2 > mask + 1 { grow() }
        let inserted = Self.place(key.a, key.b, in: &slots, mask: mask)
        if inserted { count += 1 }
        return inserted
    }

    private static func place(_ ka: UInt64, _ kb: UInt64, in slots: inout [UInt64], mask: Int) -> Bool {
        slots.withUnsafeMutableBufferPointer { s in
            var i = Int(truncatingIfNeeded: ka) & mask
            while true {
                let a = s[2 * i], b = s[2 * i + 1]
                if a == ka && b == kb { return false }
                if a == 0 && b == 0 {
                    s[2 * i] = ka
                    s[2 * i + 1] = kb
                    return true
                }
                i = (i + 1) & mask
            }
        }
    }

    private mutating func grow() {
        let newMask = (mask + 1) * 2 - 1
        var bigger = [UInt64](repeating: 0, count: (newMask + 1) * 2)
        for i in 0...mask {
            let a = slots[2 * i], b = slots[2 * i + 1]
            if a != 0 || b != 0 { _ = Self.place(a, b, in: &bigger, mask: newMask) }
        }
        slots = bigger
        mask = newMask
    }
}
