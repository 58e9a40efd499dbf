import Testing
@testable import BallotDomain

@Suite struct VoterSetTests {
    func key(_ a: UInt64, _ b: UInt64) -> VoterKey.Prefix { VoterKey.Prefix(a: a, b: b) }

    @Test func growsAndRemembersEveryKey() {
        var set = VoterSet(capacity: 4)
        var x: UInt64 = 0x1234_5678
        var keys: [VoterKey.Prefix] = []
        for _ in 0..<50_000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            keys.append(key(x, x >> 7))
        }
        for k in keys {
            let inserted = set.insert(k)
            #expect(inserted)
        }
        #expect(set.count == 50_000)
        #expect(keys.allSatisfy { set.contains($0) })
        let again = set.insert(keys[123])
        #expect(!again)
        #expect(!set.contains(key(1, 2)))
    }

    @Test func collidingFirstWordsAndTheZeroKey() {
        var set = VoterSet()
        let first = set.insert(key(7, 1))
        let second = set.insert(key(7, 2))   // same slot, different key
        #expect(first && second)
        #expect(set.contains(key(7, 1)) && set.contains(key(7, 2)) && !set.contains(key(7, 3)))
        #expect(!set.contains(key(0, 0)))
        let zero = set.insert(key(0, 0))
        let zeroAgain = set.insert(key(0, 0))
        #expect(zero && !zeroAgain)
        #expect(set.contains(key(0, 0)))
        #expect(set.count == 3)
    }
}
