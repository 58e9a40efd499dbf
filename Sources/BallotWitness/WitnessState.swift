import FoundationEssentials
public import BallotDomain
public import BallotFormat

/// The latest checkpoint a witness cosigned for each origin: what it must never go back from,
/// kept in a file of its own. One line per origin, sorted: the origin, the size in decimal and
/// the root in base64, separated by single spaces (an origin holds no spaces).
public struct WitnessState: Sendable, Equatable {
    public struct Head: Sendable, Equatable {
        public var size: UInt64
        public var root: Digest32

        public init(size: UInt64, root: Digest32) {
            self.size = size
            self.root = root
        }
    }

    public var latest: [String: Head]

    public init(latest: [String: Head] = [:]) { self.latest = latest }

    public var serialized: String {
        latest.keys.sorted().map { origin in
            let head = latest[origin]!
            return "\(origin) \(head.size) \(head.root.withBytes { Data($0).base64EncodedString() })\n"
        }.joined()
    }

    /// Reads a state file; a line that is not "origin size root" is refused with its number.
    public init(parsing text: String) throws(WitnessError) {
        latest = [:]
        for (i, line) in text.split(separator: "\n").enumerated() {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 3, let size = UInt64(parts[1]), let root = Data(base64Encoded: String(parts[2])), root.count == 32,
                  Checkpoint.isOrigin(String(parts[0])) else {
                throw WitnessError("line \(i + 1) of the witness state is not \"<origin> <size> <base64 root>\"")
            }
            guard latest.updateValue(Head(size: size, root: root.withUnsafeBytes { Digest32($0) }), forKey: String(parts[0])) == nil else {
                throw WitnessError("line \(i + 1) of the witness state repeats the origin '\(parts[0])'")
            }
        }
    }
}
