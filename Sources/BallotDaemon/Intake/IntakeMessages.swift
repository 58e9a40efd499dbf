import BallotDomain
import BallotFormat
import BallotImport
import BallotLedger
import BallotProtocol

/// One vote message as JetStream delivered it: what deciding it needs, without the client's
/// handle (docs/intake.md).
struct IntakeMessage: Sendable {
    /// `<votes prefix>.<election>`.
    var subject: String
    /// The `Nats-Msg-Id` header: the row's `vote_id`. nil when the message has none.
    var messageID: String?
    /// One NDJSON row of docs/import.md.
    var body: [UInt8]
    /// The message's place in the votes stream: what its outcome names, and what tells a
    /// redelivery of it from another message with the same `vote_id`.
    var streamSequence: UInt64
    /// 1 on first delivery.
    var delivered: UInt64
}

/// What became of one vote message, as published on `<outcomes prefix>.<election>.<vote>`.
struct IntakeOutcome: Sendable, Equatable {
    enum Decision: Sendable, Equatable {
        /// In the ledger at `seq`. `alreadyPresent`: by an earlier delivery or another path
        /// (an import with the same `vote_id`), so this message added nothing.
        case accepted(seq: UInt64, leafHash: MerkleHash, alreadyPresent: Bool)
        /// Refused for good, with the code of the rules or of the import (docs/import.md).
        case refused(code: String, message: String)
    }

    /// The election its subject names, or `_invalid` when that is not an election id.
    let election: String
    /// The message's `vote_id`, cut to 256 bytes (a hostile one must not make the outcome too
    /// large to publish).
    let voteID: String
    let streamSequence: UInt64
    let decision: Decision
    /// `voteToken(voteID)`, hashed once for the subject and the message id.
    let voteToken: String

    init(election: String, voteID: String, streamSequence: UInt64, decision: Decision) {
        self.election = election
        self.voteID = Self.cut(voteID)
        self.streamSequence = streamSequence
        self.decision = decision
        voteToken = Self.voteToken(self.voteID)
    }

    /// A `vote_id` as an outcome names it: cut to 256 bytes.
    static func cut(_ voteID: String) -> String { voteID.prefix(utf8Bytes: RecordCodec.maxIdempotencyKeyBytes) }

    /// The outcome's subject (see `subject(prefix:election:voteID:streamSequence:)`).
    func subject(prefix: String) -> String { Self.subject(prefix: prefix, election: election, voteToken: voteToken, streamSequence: streamSequence) }

    /// `<prefix>.<election>.<vote>.<stream_seq>`: `<vote>` is the first 32 hex digits of SHA-256
    /// of the `vote_id` (which may hold characters a subject cannot), so that a front end reads
    /// one vote's outcomes on `<prefix>.<election>.<vote>.*`, and each message's outcome has a
    /// subject of its own, which a redelivery of that message looks up (with the `vote_id` cut
    /// as the outcome cut it).
    static func subject(prefix: String, election: String, voteID: String, streamSequence: UInt64) -> String {
        subject(prefix: prefix, election: election, voteToken: voteToken(cut(voteID)), streamSequence: streamSequence)
    }

    private static func subject(prefix: String, election: String, voteToken: String, streamSequence: UInt64) -> String {
        "\(prefix).\(election).\(voteToken).\(streamSequence)"
    }

    /// JetStream drops a second outcome of the same vote message (within its duplicate
    /// window): the vote's token and the message's place, so that a votes stream made again,
    /// whose sequence numbers start again, does not collide with outcomes of other votes.
    var messageID: String { "\(voteToken).\(streamSequence)" }

    static func voteToken(_ voteID: String) -> String {
        var d = SHA256Digester()
        var id = voteID
        id.withUTF8 { d.update(UnsafeRawBufferPointer($0)) }
        return d.finalize().withBytes { hexString(UnsafeRawBufferPointer(rebasing: $0.prefix(16))) }
    }

    /// The published document: one JSON object.
    var document: [UInt8] {
        var fields: [(String, JSONValue)] = [("vote_id", .string(voteID)), ("election", .string(election)),
                                             ("stream_seq", .uint(streamSequence))]
        switch decision {
        case .accepted(let seq, let leafHash, let alreadyPresent):
            fields += [("outcome", .string("accepted")), ("seq", .uint(seq)), ("leaf_hash", .string(leafHash.hex))]
            if alreadyPresent { fields.append(("already_present", .bool(true))) }
        case .refused(let code, let message):
            fields += [("outcome", .string("refused")), ("code", .string(code)), ("message", .string(message))]
        }
        return JSONValue.object(fields).serialized()
    }

    /// The stream sequence an outcome document names, read back when a redelivered message
    /// looks for the outcome of an earlier delivery.
    static func streamSequence(ofDocument bytes: [UInt8]) -> UInt64? {
        guard let value = try? bytes.withUnsafeBytes({ try JSONParser.parse($0) }), case .int(let n)? = value["stream_seq"], n > 0 else { return nil }
        return UInt64(n)
    }
}

/// Turns vote messages into `vote.cast` submissions with the import's reader, one reader per
/// election named by a subject, so that a message is read exactly as an NDJSON file's line is.
struct IntakeRows {
    let identity: VoterIdentity
    let definitions: (ElectionID) -> ElectionDefinition?
    let actor: Actor
    private var readers: [ElectionID: VoteFileReader] = [:]
    let subjectPrefix: String

    init(subjectPrefix: String, identity: VoterIdentity, definitions: @escaping (ElectionID) -> ElectionDefinition?, actor: Actor) {
        self.subjectPrefix = subjectPrefix
        self.identity = identity
        self.definitions = definitions
        self.actor = actor
    }

    /// What an outcome's subject says for an election that is not an election id.
    static let invalidElection = "_invalid"

    /// The last subject read and the election it names: a batch's messages mostly share one.
    private var lastSubject: (subject: String, election: ElectionID?)?

    /// The election a vote subject (`<prefix>.<election>`) names, or nil when its last token
    /// is not an election id.
    mutating func election(of subject: String) -> ElectionID? {
        if let last = lastSubject, last.subject == subject { return last.election }
        var election: ElectionID?
        if subject.hasPrefix(subjectPrefix + "."), let token = String(subject.utf8.dropFirst(subjectPrefix.utf8.count + 1)) {
            election = try? Slug(token, what: "election")
        }
        lastSubject = (subject, election)
        return election
    }

    /// The election token of the message's outcome.
    mutating func outcomeElection(of message: IntakeMessage) -> String {
        election(of: message.subject).map { "\($0)" } ?? Self.invalidElection
    }

    /// Forgets each election's voter rule: a batch reads by the definitions as they stand when
    /// it begins, never by a rule kept from before an election was defined.
    mutating func startBatch() {
        readers.removeAll(keepingCapacity: true)
        defined.removeAll(keepingCapacity: true)
    }

    /// Whether each election the batch names is defined, asked once a batch.
    private var defined: [ElectionID: Bool] = [:]

    /// The message's submission, or the refusal that decides it before the rules see it.
    mutating func read(_ message: IntakeMessage) -> Result<Submission, ImportRefusal> {
        guard let election = election(of: message.subject) else {
            return .failure(ImportRefusal(ImportRefusal.wrongElection, "the subject \(message.subject.prefix(utf8Bytes: 128)) does not end in an election id"))
        }
        // No voter rule is made for an election not (yet) defined: its votes are refused here,
        // as the rules would refuse them, and not read by a rule its definition may change.
        let isDefined = defined[election] ?? (definitions(election) != nil)
        defined[election] = isDefined
        guard isDefined else {
            return .failure(ImportRefusal(ErrorCode.unknownElection.rawValue, "no election '\(election)' is defined"))
        }
        guard let messageID = message.messageID, !messageID.isEmpty else {
            return .failure(ImportRefusal(ErrorCode.badRequest.rawValue, "the message has no Nats-Msg-Id header; it must be the row's vote_id"))
        }
        var body = message.body[...]
        if body.last == UInt8(ascii: "\n") { body = body.dropLast() }
        if body.last == UInt8(ascii: "\r") { body = body.dropLast() }
        guard !body.contains(UInt8(ascii: "\n")) else {
            return .failure(ImportRefusal(ErrorCode.badRequest.rawValue, "the message holds more than one line; a message is one vote, one NDJSON row"))
        }
        var reader = readers[election] ?? VoteFileReader(format: .ndjson, election: election, identity: identity,
                                                         definitions: definitions, actor: actor)
        var row: VoteFileRow?
        let line = Array(body) + [UInt8(ascii: "\n")]
        do {
            try line.withUnsafeBytes { raw in try reader.feed(raw) { row = $0 } }
        } catch {
            return .failure(ImportRefusal(ImportRefusal.badJSON, "\(error)"))
        }
        readers[election] = reader
        switch row {
        case nil:
            return .failure(ImportRefusal(ImportRefusal.missingValue, "the message is empty"))
        case .refused(_, _, let refusal)?:
            return .failure(refusal)
        case .vote(_, let submission)?:
            guard submission.idempotencyKey == messageID else {
                return .failure(ImportRefusal(ErrorCode.badRequest.rawValue, "the Nats-Msg-Id header '\(messageID.prefix(utf8Bytes: 64))' is not the row's vote_id '\(submission.idempotencyKey.prefix(utf8Bytes: 64))'"))
            }
            return .success(submission)
        }
    }

    /// The `vote_id` a message's outcome names: its header, or else its row's.
    func voteID(of message: IntakeMessage) -> String {
        if let id = message.messageID, !id.isEmpty { return id }
        guard let value = try? message.body.withUnsafeBytes({ try JSONParser.parse($0) }), case .string(let id)? = value["vote_id"] else { return "" }
        return id
    }
}

extension String {
    /// The longest prefix of whole Unicode scalars that is at most `limit` bytes of UTF-8.
    func prefix(utf8Bytes limit: Int) -> String {
        guard utf8.count > limit else { return self }
        var bytes = 0
        var kept = String.UnicodeScalarView()
        for scalar in unicodeScalars {
            bytes += scalar.utf8.count
            if bytes > limit { break }
            kept.append(scalar)
        }
        return String(kept)
    }
}
