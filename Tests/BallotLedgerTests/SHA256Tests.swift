import Testing
@testable import BallotLedger

/// Known answers: FIPS 180-4 examples and RFC 4231 (HMAC-SHA256) test cases 2 and 6.
@Suite struct SHA256Tests {
    func sha(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { SHA256Digester.hash($0).hex } }

    @Test func digests() {
        #expect(sha([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(sha(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(sha([UInt8](repeating: 0x61, count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        var split = SHA256Digester()
        Array("ab".utf8).withUnsafeBytes { split.update($0) }
        split.update(0x63)
        #expect(split.finalize().hex == sha(Array("abc".utf8)))
    }

    @Test func hmac() {
        let short = HMACSHA256(key: [UInt8](repeating: 0x0b, count: 20))
        #expect(Array("Hi There".utf8).withUnsafeBytes { short.authenticate($0) }.hex
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        let long = HMACSHA256(key: [UInt8](repeating: 0xaa, count: 131))
        #expect(Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8).withUnsafeBytes { long.authenticate($0) }.hex
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    /// The two-at-a-time hashing (x86 SHA extensions) must agree with OpenSSL on every message
    /// length around the block boundaries, for pairs of equal and of different lengths, and
    /// for a message hashed alone. (Without the extensions both sides are OpenSSL.)
    @Test func pairsAgreeWithOneAtATime() {
        var rng = SystemRandomNumberGenerator()
        let records: [[UInt8]] = (0..<300).map { n in (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        let shuffled = records.shuffled()
        let all = records + shuffled + [records[97]]   // an odd count: the last is hashed alone
        let hashed = withBuffers(all) { MerkleHash.leaves($0) }
        for (i, record) in all.enumerated() {
            #expect(hashed[i] == record.withUnsafeBytes { MerkleHash.leaf($0) }, "record of \(record.count) bytes, at \(i)")
        }
        let parents = MerkleHash.parents(of: Array(hashed.prefix(hashed.count & ~1)))
        for i in parents.indices {
            #expect(parents[i] == MerkleHash.node(hashed[2 * i], hashed[2 * i + 1]), "pair \(i)")
        }
        #expect(MerkleHash.leaves([]).isEmpty)
        print("SHA-256 two at a time: \(MerkleHash.hashesInPairs ? "SHA extensions" : "not available, OpenSSL one at a time")")
    }

    /// Buffers over each array, valid while `body` runs.
    func withBuffers<R>(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
        let storage = arrays.map { bytes -> UnsafeMutableRawBufferPointer in
            let p = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
            p.copyMemory(from: bytes.withUnsafeBytes { $0 })
            return p
        }
        defer { storage.forEach { $0.deallocate() } }
        return body(storage.map { UnsafeRawBufferPointer($0) })
    }
}
