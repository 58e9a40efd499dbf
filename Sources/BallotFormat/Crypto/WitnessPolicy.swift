/// A transparency-log policy (c2sp.org/tlog-policy): the logs trusted, the witnesses known,
/// and the quorum of them whose cosignatures make a checkpoint count as witnessed. `ballotd`
/// reads one to know whom to ask (the witnesses with a URL) and when a checkpoint is witnessed;
/// the auditor's tools read the same file to check a cosigned checkpoint offline.
public struct WitnessPolicy: Sendable, Equatable {
    public struct Witness: Sendable, Equatable {
        /// The policy's name for it (not necessarily its key's name).
        public var name: String
        public var key: VerifierKey
        /// Its submission prefix (c2sp.org/tlog-witness): requests go to `<url>/add-checkpoint`.
        public var url: String?
    }

    /// Who must have cosigned: one witness, or at least `threshold` of a group's members.
    public indirect enum Quorum: Sendable, Equatable {
        case none
        case witness(String)
        case group(name: String, threshold: Int, members: [Quorum])
    }

    public var logs: [VerifierKey]
    public var witnesses: [Witness]
    public var quorum: Quorum

    public struct Malformed: Error, Sendable, CustomStringConvertible {
        public let line: Int
        public let reason: String
        public var description: String { "line \(line) of the policy: \(reason)" }
    }

    /// Reads a policy; every mistake is refused with its line.
    public init(parsing text: String) throws(Malformed) {
        logs = []
        witnesses = []
        var quorum: Quorum?
        // Witnesses and groups share one namespace; "none" is predefined.
        var defined: [String: Quorum] = [:]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = i + 1
            func bad(_ reason: String) -> Malformed { Malformed(line: number, reason: reason) }
            if let control = raw.utf8.first(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) {
                throw bad("the control character 0x\(String(control, radix: 16)) is not allowed")
            }
            let words = raw.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let keyword = words.first, !keyword.hasPrefix("#") else { continue }
            func key(_ text: String, type: UInt8, of what: String) throws(Malformed) -> VerifierKey {
                let key: VerifierKey
                do { key = try VerifierKey(parsing: text) } catch { throw bad("the \(what)'s key: \(error)") }
                guard key.type == type else { throw bad("the \(what)'s key has type 0x0\(key.type); a \(what) signs with type 0x0\(type)") }
                return key
            }
            switch keyword {
            case "log":
                guard (2...3).contains(words.count) else { throw bad("a log line is 'log <vkey> [<url>]'") }
                let log = try key(words[1], type: SignedNote.ed25519, of: "log")
                guard !logs.contains(where: { $0.publicKey == log.publicKey }) else { throw bad("the log \(log.name) is listed twice") }
                logs.append(log)
            case "witness":
                guard (3...4).contains(words.count) else { throw bad("a witness line is 'witness <name> <vkey> [<url>]'") }
                let name = words[1]
                let witness = Witness(name: name, key: try key(words[2], type: SignedNote.cosignatureV1, of: "witness"),
                                      url: words.count == 4 ? words[3] : nil)
                guard name != "none", defined[name] == nil else { throw bad("the name '\(name)' is already defined") }
                guard !witnesses.contains(where: { $0.key.publicKey == witness.key.publicKey }) else {
                    throw bad("the witness \(name) has the key of another witness")
                }
                witnesses.append(witness)
                defined[name] = .witness(name)
            case "group":
                guard words.count >= 4 else { throw bad("a group line is 'group <name> all|any|<k> <name>...'") }
                let name = words[1]
                guard name != "none", defined[name] == nil else { throw bad("the name '\(name)' is already defined") }
                let names = Array(words[3...])
                guard Set(names).count == names.count else { throw bad("the group \(name) lists a member twice") }
                var members: [Quorum] = []
                for member in names {
                    guard let q = defined[member] else { throw bad("the group \(name) names '\(member)', which no line before defines") }
                    members.append(q)
                }
                let threshold: Int
                switch words[2] {
                case "all": threshold = members.count
                case "any": threshold = 1
                default:
                    guard let k = Int(words[2]), String(k) == words[2], (1...members.count).contains(k) else {
                        throw bad("the threshold of \(name) is '\(words[2])': all, any, or a number from 1 to \(members.count)")
                    }
                    threshold = k
                }
                defined[name] = .group(name: name, threshold: threshold, members: members)
            case "quorum":
                guard words.count == 2 else { throw bad("a quorum line is 'quorum <name>'") }
                guard quorum == nil else { throw bad("a policy has one quorum line, and this is the second") }
                if words[1] == "none" {
                    quorum = Quorum.none
                } else {
                    guard let q = defined[words[1]] else { throw bad("the quorum names '\(words[1])', which no line before defines") }
                    quorum = q
                }
            default:
                throw bad("'\(keyword.prefix(40))' is not log, witness, group or quorum")
            }
        }
        guard let quorum else { throw Malformed(line: 0, reason: "it has no quorum line") }
        self.quorum = quorum
    }

    public func witness(named name: String) -> Witness? { witnesses.first { $0.name == name } }

    /// Whether the witnesses named (by the policy's names) make up the quorum.
    public func isSatisfied(by cosigners: Set<String>) -> Bool { Self.holds(quorum, cosigners) }

    private static func holds(_ q: Quorum, _ cosigners: Set<String>) -> Bool {
        switch q {
        case .none: true
        case .witness(let name): cosigners.contains(name)
        case .group(_, let threshold, let members): members.lazy.filter { holds($0, cosigners) }.count >= threshold
        }
    }

    /// The policy's names of the witnesses whose cosignature on `note` verifies, and what was
    /// wrong with those that are there and do not (cosignatures of keys the policy does not
    /// list are ignored, as c2sp.org/signed-note says).
    public func cosigners(of note: SignedNote) -> (verified: Set<String>, failures: [SignedNote.CosignatureFailure]) {
        var verified = Set<String>()
        var failures: [SignedNote.CosignatureFailure] = []
        for w in witnesses {
            switch note.cosignature(name: w.key.name, publicKey: w.key.publicKey) {
            case .success?: verified.insert(w.name)
            case .failure(let f)?: failures.append(f)
            case nil: break
            }
        }
        return (verified, failures)
    }
}
