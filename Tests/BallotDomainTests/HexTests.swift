import Foundation
import Testing
import BallotDomain

/// Hex is how hashes, keys and vote tokens are spelled in every document and subject: two
/// lower-case digits a byte, as `%02x` prints them, read back by `hexBytes`.
@Suite struct HexTests {
    @Test func everyByteIsTwoLowerCaseDigitsAndReadsBack() {
        let all = (0...255).map { UInt8($0) }
        let hex = all.withUnsafeBytes { hexString($0) }
        #expect(hex == all.map { String(format: "%02x", $0) }.joined())
        #expect(hexBytes(hex) == all)
        #expect(hexBytes(hex.uppercased()) == all)
        #expect([UInt8]().withUnsafeBytes { hexString($0) } == "")
        // Short enough to be held inline by String, and long enough not to be.
        for count in [1, 7, 8, 16, 33] {
            let bytes = Array(all.prefix(count))
            #expect(hexBytes(bytes.withUnsafeBytes { hexString($0) }) == bytes)
        }
    }
}
