/// A 128-bit key, such as the first half of an HMAC or SHA-256 value.
public struct Key128: Hashable, Sendable {
    public let a: UInt64
    public let b: UInt64
    public init(a: UInt64, b: UInt64) {
        self.a = a
        self.b = b
    }
}

/// A map from 128-bit keys that are already uniformly random (HMAC or SHA-256 output) to small
/// values: open addressing with linear probing, at most half full. The first word of a key is
/// its hash, so there is no hashing, and a slot is 16 bytes plus the value, with no allocation
/// per entry. Used for the voters who have voted (Value = Void, which takes no space) and for
/// idempotency keys (Value = sequence number). Swift's `Set` and `Dictionary` of the same keys
/// spent about a tenth of the vote path hashing and rehashing; see docs/performance.md.
public struct Key128Map<Value: Sendable>: Sendable {
    /// Pairs of words, slot i at 2i and 2i+1; (0, 0) marks an empty slot.
    private var slots: [UInt64]
    private var values: [Value?]
    private var mask: Int
    public private(set) var count = 0
    /// The all-zero key cannot be stored in a slot; its value is kept here.
    private var zeroValue: Value?

    public init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [UInt64](repeating: 0, count: size * 2)
        values = [Value?](repeating: nil, count: size)
        mask = size - 1
    }

    public subscript(key: Key128) -> Value? {
        if key.a == 0 && key.b == 0 { return zeroValue }
        let i = find(key)
        return slots[2 * i] == 0 && slots[2 * i + 1] == 0 ? nil : values[i]
    }

    public func contains(_ key: Key128) -> Bool {
        if key.a == 0 && key.b == 0 { return zeroValue != nil }
        let i = find(key)
        return slots[2 * i] != 0 || slots[2 * i + 1] != 0
    }

    /// Adds `key` with `value`; returns false (and changes nothing) if it was already there.
    @discardableResult
    public mutating func insert(_ key: Key128, _ value: Value) -> Bool {
        if key.a == 0 && key.b == 0 {
            guard zeroValue == nil else { return false }
            zeroValue = value
            count += 1
            return true
        }
        if (count + 1) * 2 > mask + 1 { grow() }
        let i = find(key)
        guard slots[2 * i] == 0 && slots[2 * i + 1] == 0 else { return false }
        slots[2 * i] = key.a
        slots[2 * i + 1] = key.b
        values[i] = value
        count += 1
        return true
    }

    /// The slot holding `key`, or the empty slot where it would go.
    private func find(_ key: Key128) -> Int {
        slots.withUnsafeBufferPointer { s in
            var i = Int(truncatingIfNeeded: key.a) & mask
            while true {
                let a = s[2 * i], b = s[2 * i + 1]
                if (a == key.a && b == key.b) || (a == 0 && b == 0) { return i }
                i = (i + 1) & mask
            }
        }
    }

    private mutating func grow() {
        var bigger = Key128Map(capacity: mask + 1)
        for i in 0...mask where slots[2 * i] != 0 || slots[2 * i + 1] != 0 {
            bigger.insert(Key128(a: slots[2 * i], b: slots[2 * i + 1]), values[i]!)
        }
        bigger.zeroValue = zeroValue
        bigger.count = count
        self = bigger
    }
}
