public import BallotDomain

/// Why a row of a vote file was not imported. The codes are stable: they appear in reject
/// files, in `import.recorded` events and in scripts. Refusals by the rules keep the rules' own
/// codes (`unknown_nominee`, `duplicate_vote`, `outside_window`, `conflict`, …).
public struct ImportRefusal: Error, Sendable, Equatable {
    public var reason: String
    public var message: String

    public init(_ reason: String, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public init(_ error: DomainError) {
        self.init(error.code.rawValue, error.message)
    }

    /// Broken CSV quoting.
    public static let badCSV = "bad_csv"
    /// A line of an NDJSON file that is not a JSON object.
    public static let badJSON = "bad_json"
    /// Fewer fields than the header names.
    public static let missingColumn = "missing_column"
    /// More fields than the header names.
    public static let extraColumn = "extra_column"
    /// A required field is empty.
    public static let missingValue = "missing_value"
    public static let badTimestamp = "bad_timestamp"
    /// Bytes that are not UTF-8.
    public static let badEncoding = "bad_encoding"
    public static let rowTooLong = "row_too_long"
    /// The row names another election than the import's.
    public static let wrongElection = "wrong_election"
}
