import Testing
@testable import BallotDomain

@Suite struct TimestampTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("2022-11-11T23:00:00Z", Int64(1_668_207_600_000_000)),
        ("2022-11-12T00:00:00+01:00", Int64(1_668_207_600_000_000)),
        ("2022-11-11T18:00:00-05:00", Int64(1_668_207_600_000_000)),
        ("2022-11-11t23:00:00z", Int64(1_668_207_600_000_000)),
        ("2022-11-11 23:00:00Z", Int64(1_668_207_600_000_000)),
        ("2024-02-29T12:00:00.5Z", Int64(1_709_208_000_500_000)),
        ("2024-02-29T12:00:00.123456789Z", Int64(1_709_208_000_123_456)),
        ("1969-12-31T23:59:59Z", Int64(-1_000_000)),
    ])
    func parses(text: String, micros: Int64) {
        #expect(Timestamp(rfc3339: text)?.microseconds == micros)
    }

    @Test(arguments: [
        "", "2022-11-11", "2022-11-11T23:00:00", "2022-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
        "2022-11-31T00:00:00Z", "2022-11-11T24:00:00Z", "2022-11-11T23:00:00.Z", "2022-11-11T23:00:00+0100",
        "2022-11-11T23:00:00Zjunk", "two thousand", "2022-11-11T23:60:00Z",
    ])
    func refusesMalformed(text: String) {
        #expect(Timestamp(rfc3339: text) == nil)
    }

    @Test func printsUTCAndRoundTrips() {
        #expect(Timestamp(microseconds: 0).rfc3339 == "1970-01-01T00:00:00Z")
        #expect(Timestamp(microseconds: 1_709_208_000_500_000).rfc3339 == "2024-02-29T12:00:00.5Z")
        #expect(Timestamp(microseconds: -1).rfc3339 == "1969-12-31T23:59:59.999999Z")
        // Before year 0 (a weekly series bucket of a window opening on 0000-01-01): a sign, not "00-1".
        let yearZero = Timestamp(rfc3339: "0000-01-01T00:00:00Z")!
        #expect(yearZero.rfc3339 == "0000-01-01T00:00:00Z")
        #expect(Timestamp(microseconds: yearZero.microseconds - 86_400_000_000).rfc3339 == "-0001-12-31T00:00:00Z")
        var x: Int64 = 12_345
        for _ in 0..<2000 {
            x = (x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407) % 8_000_000_000_000_000
            let t = Timestamp(microseconds: x - 2_000_000_000_000_000)
            #expect(Timestamp(rfc3339: t.rfc3339) == t)
        }
    }
}

@Suite struct SlugTests {
    @Test func validatesIdentifiers() throws {
        #expect(Slug.isValid("imdi-2022"))
        #expect(Slug.isValid("a.b_c-9"))
        #expect(!Slug.isValid(""))
        #expect(!Slug.isValid("-leading"))
        #expect(!Slug.isValid("Upper"))
        #expect(!Slug.isValid("bodø"))
        #expect(!Slug.isValid(String(repeating: "a", count: 65)))
        let error = #expect(throws: DomainError.self) { try Slug("Bad Id", what: "nominee id") }
        #expect(error?.code == .badRequest)
        #expect(error?.message.contains("nominee id 'Bad Id'") == true)
    }
}
