import Testing
import TestSupport
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit

@Suite struct VoterHasherTests {
    @Test func normalisesWhitespaceAndASCIICase() throws {
        let h = Fixtures.hasher
        #expect(h.key(for: "  Ola.Nordmann@Example.NO\n") == h.key(for: "ola.nordmann@example.no"))
        #expect(h.key(for: "+47 912 34 567") != h.key(for: "+4791234567"))
        #expect(VoterHasher.normalize("  ÅSE@X.no ") == "Åse@x.no")   // ASCII letters only
        let other = try VoterHasher(secret: Array("another secret of enough bytes".utf8))
        #expect(other.key(for: "ola") != h.key(for: "ola"))
        #expect(throws: LedgerError.self) { try VoterHasher(secret: [1, 2, 3]) }
    }

    @Test func isHMACSHA256OfTheNormalisedIdentifier() throws {
        // Expected value from Python's hmac module: HMAC-SHA256(0x0b × 20, "hi there").
        let h = try VoterHasher(secret: [UInt8](repeating: 0x0b, count: 20))
        #expect(h.key(for: " Hi There ").hex == "457dcb1b1c1bf655d15da1b98306f5aa511e19bd15debdc85c3134592039578e")
    }
}
