public import BallotDomain
public import BallotConfig

/// What a request asks for, with its parameters checked and typed. docs/protocol.md lists
/// every op with an example.
public enum Op: Sendable {
    case hello
    case status
    case electionDefine(ElectionSpec)
    case electionGet(ElectionID)
    case electionOpen(ElectionID)
    case electionClose(ElectionID)
    case nomineeAdd(ElectionID, Nomination)
    /// `voter` is the raw identifier; the daemon hashes it and drops it.
    case voteCast(election: ElectionID, nominee: NomineeID, voter: String, castAt: Timestamp?, channel: String)
    case voteInvalidate(election: ElectionID, vote: UInt64, reason: String)
    /// `key`: the juror's own verifier key in the vkey form (c2sp.org/signed-note), which the
    /// daemon reads (the codec has no signed-note code).
    case jurorAdd(election: ElectionID, juror: JurorID, name: String, key: String?)
    /// `juror` may be omitted by a juror, who scores as the juror their uid is mapped to.
    /// `signed`: the juror's signature of the score's statement (docs/protocol.md).
    case juryScore(election: ElectionID, juror: JurorID?, nominee: NomineeID, criterion: CriterionID, score: Int32, signed: SignedScore?)
    case juryClose(ElectionID)
    /// The jury's table: scores, and in an election with signatures the event of each.
    case jury(ElectionID)
    case resultCertify(ElectionID, justification: String)
    /// A juror's co-signature of the result put to the jury (`juror` as for `jury.score`).
    case resultSign(election: ElectionID, juror: JurorID?, signature: SentSignature)
    case tally(ElectionID)
    case ranking(ElectionID)
    case events(from: UInt64, limit: Int)
    /// Streams events from `from` (catching up first), then live as they are committed.
    case subscribe(from: UInt64)
    /// Streams the records from `from` exactly as stored, then live as they are committed: what
    /// a follower verifies and stores (docs/protocol.md, "replicate").
    case replicate(from: UInt64)
    /// Signs and records a new checkpoint; with `latest`, only returns the last one recorded.
    case checkpoint(latest: Bool)
    /// An inclusion proof of event `seq` in the tree of `size` events, or of the checkpoint
    /// recorded at event `checkpoint` (the whole ledger if neither is given).
    case inclusionProof(seq: UInt64, size: UInt64?, checkpoint: UInt64?)
    /// A consistency proof between two tree sizes (the new one the whole ledger if nil).
    case consistencyProof(oldSize: UInt64, newSize: UInt64?)
    /// A receipt of event `seq` as a c2sp.org/tlog-proof: its record, its inclusion proof and
    /// a checkpoint covering it (witnessed, with a witness policy), waiting up to `wait`
    /// seconds for one.
    case receipt(seq: UInt64, wait: Int)
    /// A hot, compacted copy of the ledger into `directory` (on the daemon's machine).
    case backup(directory: String)
    /// The daemon's metrics, in the Prometheus text format.
    case metrics
    /// A vote file follows the request line as `size` raw bytes (docs/protocol.md, "import").
    case importFile(ImportRequest)

    /// Whether the op appends to the ledger: what a follower refuses (`read_only`). Listed
    /// whole, so that a new op must be placed on one side.
    public var isWrite: Bool {
        switch self {
        case .electionDefine, .electionOpen, .electionClose, .nomineeAdd, .voteCast, .voteInvalidate, .jurorAdd, .juryScore, .juryClose,
             .resultCertify, .resultSign, .checkpoint(latest: false), .importFile:
            true
        case .hello, .status, .electionGet, .jury, .tally, .ranking, .events, .subscribe, .replicate, .checkpoint(latest: true),
             .inclusionProof, .consistencyProof, .receipt, .backup, .metrics:
            false
        }
    }

    /// Whether `request` asks for an import, whatever else is wrong with it: the bytes after its
    /// line are then a file, not requests.
    public static func isImport(_ request: Request) -> Bool { request.op == OpName.importFile.rawValue }

    public init(_ request: Request) throws(ProtocolError) {
        let f = Fields(request)
        guard let name = OpName(rawValue: request.op) else {
            throw ProtocolError(.unknownOp, "unknown op '\(request.op)'; known ops: \(OpName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        switch name {
        case .hello: self = .hello
        case .status: self = .status
        case .electionDefine:
            let spec = try f.object("election")
            do {
                self = .electionDefine(try ElectionSpec.decode(spec.serialized(), source: "election.define: field 'election'"))
            } catch let error as ConfigError {
                throw ProtocolError(.badRequest, error.description)
            } catch {
                throw ProtocolError(.badRequest, "election.define: \(error)")
            }
        case .electionGet: self = .electionGet(try f.slug("election"))
        case .electionOpen: self = .electionOpen(try f.slug("election"))
        case .electionClose: self = .electionClose(try f.slug("election"))
        case .nomineeAdd:
            self = .nomineeAdd(try f.slug("election"), Nomination(
                id: try f.slug("nominee"), name: try f.string("name"),
                goalAttainmentDirect: try f.number("goal_attainment_direct"),
                goalAttainmentAfterOneYear: try f.number("goal_attainment_after_one_year")))
        case .voteCast:
            self = .voteCast(election: try f.slug("election"), nominee: try f.slug("nominee"), voter: try f.string("voter"),
                             castAt: try f.time("cast_at"), channel: try f.optionalString("channel") ?? "")
        case .voteInvalidate:
            self = .voteInvalidate(election: try f.slug("election"), vote: try f.sequence("vote"), reason: try f.string("reason"))
        case .jurorAdd:
            self = .jurorAdd(election: try f.slug("election"), juror: try f.slug("juror"), name: try f.string("name"),
                             key: try f.optionalString("key"))
        case .juryScore:
            let score = try f.int("score")
            guard let score32 = Int32(exactly: score) else { throw f.bad("field 'score' (\(score)) is out of range") }
            var signed: SignedScore?
            if f.has("signature") {
                let supersedes = try f.optionalInt("supersedes") ?? 0
                guard supersedes >= 0 else { throw f.bad("field 'supersedes' must be a sequence number, or 0 for a first score") }
                signed = SignedScore(supersedes: supersedes == 0 ? nil : UInt64(supersedes), signature: try f.noteSignature("signature"))
            } else if f.has("supersedes") {
                throw f.bad("field 'supersedes' belongs to a signed score: it is what the signature says the score supersedes")
            }
            self = .juryScore(election: try f.slug("election"), juror: f.has("juror") ? try f.slug("juror") : nil,
                              nominee: try f.slug("nominee"), criterion: try f.slug("criterion"), score: score32, signed: signed)
        case .juryClose: self = .juryClose(try f.slug("election"))
        case .jury: self = .jury(try f.slug("election"))
        case .resultCertify: self = .resultCertify(try f.slug("election"), justification: try f.optionalString("justification") ?? "")
        case .resultSign:
            self = .resultSign(election: try f.slug("election"), juror: f.has("juror") ? try f.slug("juror") : nil,
                               signature: try f.noteSignature("signature"))
        case .tally: self = .tally(try f.slug("election"))
        case .ranking: self = .ranking(try f.slug("election"))
        case .events:
            let from = try f.optionalInt("from") ?? 1
            let limit = try f.optionalInt("limit") ?? 1000
            guard from >= 1, (1...10_000).contains(limit) else { throw f.bad("'from' must be 1 or more and 'limit' from 1 to 10000") }
            self = .events(from: UInt64(from), limit: Int(limit))
        case .subscribe:
            let from = try f.optionalInt("from") ?? 1
            guard from >= 1 else { throw f.bad("'from' must be 1 or more") }
            self = .subscribe(from: UInt64(from))
        case .replicate:
            let from = try f.optionalInt("from") ?? 1
            guard from >= 1 else { throw f.bad("'from' must be 1 or more") }
            self = .replicate(from: UInt64(from))
        case .checkpoint: self = .checkpoint(latest: try f.optionalBool("latest") ?? false)
        case .metrics: self = .metrics
        case .proof:
            if f.has("seq") {
                guard !(f.has("size") && f.has("checkpoint")) else { throw f.bad("give 'size' or 'checkpoint', not both") }
                self = .inclusionProof(seq: try f.sequence("seq"), size: f.has("size") ? try f.sequence("size") : nil,
                                       checkpoint: f.has("checkpoint") ? try f.sequence("checkpoint") : nil)
            } else if f.has("old_size") {
                let old = try f.int("old_size")
                guard old >= 0 else { throw f.bad("'old_size' must not be negative") }
                self = .consistencyProof(oldSize: UInt64(old), newSize: f.has("new_size") ? try f.sequence("new_size") : nil)
            } else {
                throw f.bad("give 'seq' (and optionally 'size') for an inclusion proof, or 'old_size' (and optionally 'new_size') for a consistency proof")
            }
        case .receipt:
            let wait = try f.optionalInt("wait") ?? 0
            guard (0...3600).contains(wait) else { throw f.bad("'wait' is seconds, from 0 to 3600") }
            self = .receipt(seq: try f.sequence("seq"), wait: Int(wait))
        case .importFile:
            let size = try f.size("size")
            let name = try f.string("file")
            guard !name.isEmpty else { throw f.bad("'file' must name the file") }
            guard !name.utf8.contains(0) else { throw f.bad("'file' holds a NUL character, which no file name can contain") }
            let format: String? = try f.optionalString("format")
            guard format == nil || ["csv", "ndjson"].contains(format!) else { throw f.bad("'format' must be \"csv\" or \"ndjson\"") }
            self = .importFile(ImportRequest(file: name, size: size, format: format, election: f.has("election") ? try f.slug("election") : nil,
                                             dryRun: try f.optionalBool("dry_run") ?? false))
        case .backup:
            let directory = try f.string("directory")
            guard directory.hasPrefix("/") else { throw f.bad("'directory' must be an absolute path on the daemon's machine") }
            // A path is a C string to the file system: a NUL would cut it short, and the copy
            // would land, unmanifested, at the part before it.
            guard !directory.utf8.contains(0) else { throw f.bad("'directory' holds a NUL character, which no path can contain") }
            self = .backup(directory: directory)
        }
    }
}

/// The parameters of `import`.
public struct ImportRequest: Sendable, Equatable {
    /// The file's name, for the record and for messages.
    public var file: String
    /// How many bytes of the file follow the request line.
    public var size: UInt64
    /// "csv" or "ndjson"; nil: guessed from the name.
    public var format: String?
    /// nil: taken from the rows.
    public var election: ElectionID?
    /// Decide every row, append nothing.
    public var dryRun: Bool

    public init(file: String, size: UInt64, format: String? = nil, election: ElectionID? = nil, dryRun: Bool = false) {
        self.file = file
        self.size = size
        self.format = format
        self.election = election
        self.dryRun = dryRun
    }
}
