import Testing
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
#if canImport(Glibc)
import Glibc
#endif

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

    /// Hashing many at a time (16 with AVX-512, 2 with the x86 SHA extensions) must agree with
    /// OpenSSL one at a time on every message length around the block boundaries, in groups of
    /// equal and of different lengths, with a remainder that does not fill a group. Every way
    /// this processor has is run, whichever `leaves` picks.
    @Test func manyAtATimeAgreeWithOneAtATime() {
        var rng = SystemRandomNumberGenerator()
        let records: [[UInt8]] = (0..<300).map { n in (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        let alike = [[UInt8]](repeating: records[97], count: 32)
        let all = records + records.shuffled() + alike + [records[200]]   // 633: the last 9 fill no group of 16
        let oneAtATime = all.map { record in record.withUnsafeBytes { MerkleHash.leaf($0) } }
        let ways = [MerkleHash.lanes == 16 ? 16 : nil, MerkleHash.hasPairs ? 2 : nil, 1].compactMap { $0 }
        for lanes in ways {
            let hashed = withBuffers(all) { MerkleHash.leaves($0, lanes: lanes) }
            for i in all.indices {
                #expect(hashed[i] == oneAtATime[i], "\(lanes) at a time: record of \(all[i].count) bytes, at \(i)")
            }
            let parents = MerkleHash.parents(of: Array(hashed.prefix(hashed.count & ~1)), lanes: lanes)
            for i in parents.indices {
                #expect(parents[i] == MerkleHash.node(hashed[2 * i], hashed[2 * i + 1]), "\(lanes) at a time: pair \(i)")
            }
        }
        #expect(MerkleHash.leaves([]).isEmpty)
        print("SHA-256 ways run: \(ways.map { "\($0) at a time" }.joined(separator: ", "))")
    }

    /// No way of hashing reads a byte outside a message: each message lies against a page that
    /// cannot be read, ending just before one or starting just after one (a read past either
    /// edge would crash the test), and an empty message has no address at all.
    @Test func noWayReadsOutsideAMessage() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var regions: [UnsafeMutableRawPointer] = []
        defer { for r in regions { munmap(r, 3 * page) } }
        var messages: [UnsafeRawBufferPointer] = []
        var rng = SystemRandomNumberGenerator()
        for n in Array(0...130) + [200, 300] {
            // Three pages, the outer two unreadable; the message ends at the second's end, or
            // (odd lengths) starts at its start.
            guard let region = mmap(nil, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  region != MAP_FAILED else { Issue.record("mmap failed"); return }
            regions.append(region)
            let start = n % 2 == 0 ? region + 2 * page - n : region + page
            for i in 0..<n { start.storeBytes(of: UInt8.random(in: 0...255, using: &rng), toByteOffset: i, as: UInt8.self) }
            #expect(mprotect(region, page, PROT_NONE) == 0 && mprotect(region + 2 * page, page, PROT_NONE) == 0)
            messages.append(UnsafeRawBufferPointer(start: start, count: n))
        }
        messages += Array(repeating: UnsafeRawBufferPointer(start: nil, count: 0), count: 17)
        let oneAtATime = messages.map { MerkleHash.leaf($0) }
        for lanes in [MerkleHash.lanes == 16 ? 16 : nil, MerkleHash.hasPairs ? 2 : nil, 1].compactMap({ $0 }) {
            let hashed = MerkleHash.leaves(messages, lanes: lanes)
            for i in messages.indices { #expect(hashed[i] == oneAtATime[i], "\(lanes) at a time: \(messages[i].count) bytes") }
        }
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
