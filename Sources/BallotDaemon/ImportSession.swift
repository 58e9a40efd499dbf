import BallotDomain
import BallotImport
import BallotLedger
import BallotFormat
import BallotAudit
import BallotProtocol
import NIOCore

/// One `import` on one connection (docs/protocol.md, "import"). The file's bytes arrive after
/// the request line; they are hashed and read into votes on the event loop, and every
/// `batchRows` votes go to the writer as one job: one transaction, one fsync. At most two jobs
/// are in flight; beyond that the connection stops reading, so memory stays flat however
/// large the file. Refused rows and progress are sent back as they are known; the last line is
/// the summary, after the `import.recorded` event is durable.
///
/// A dropped connection leaves what was committed committed: running the same import again
/// finds those rows already present (their `vote_id` is the idempotency key) and adds the rest.
final class ImportSession {
    static let batchRows = 8192
    static let maxInFlight = 2

    let id: JSONValue
    let request: ImportRequest
    private let peer: Peer
    private let writer: GroupCommitWriter
    private var reader: VoteFileReader
    private var digest = SHA256Digester()
    private var received: UInt64 = 0
    private var batch: [Submission] = []
    private var lines: [Int] = []
    private var inFlight = 0
    /// The first problem that stops the whole file; the rest of its bytes are still received.
    private var failure: ProtocolError?
    private let trialBox: GroupCommitWriter.TrialBox?

    // What became of the rows.
    private var rows: UInt64 = 0
    private var accepted: UInt64 = 0
    private var alreadyPresent: UInt64 = 0
    private var refused: [String: UInt64] = [:]
    private var firstSeq: UInt64 = 0
    private var lastSeq: UInt64 = 0

    /// Sends one line to the client.
    private let send: ([UInt8]) -> Void

    init(id: JSONValue, request: ImportRequest, peer: Peer, writer: GroupCommitWriter, hasher: VoterHasher,
         send: @escaping ([UInt8]) -> Void) {
        self.id = id
        self.request = request
        self.peer = peer
        self.writer = writer
        self.send = send
        let format = request.format.flatMap(VoteFileFormat.init(rawValue:)) ?? VoteFileFormat.guess(fromName: request.file)
        reader = VoteFileReader(format: format, election: request.election, identity: VoterIdentity(hasher: hasher),
                                definitions: { [writer] in writer.status($0)?.definition }, actor: peer.actor)
        trialBox = request.dryRun ? GroupCommitWriter.TrialBox() : nil
        batch.reserveCapacity(Self.batchRows)
    }

    /// The go-ahead line: the client may now send the file's bytes.
    var goAhead: [UInt8] {
        Reply.ok(id: id, result: ImportGoAhead(send: request.size, format: reader.format.rawValue, dryRun: request.dryRun).json)
    }

    var allReceived: Bool { received == request.size }
    /// Whether the connection should stop reading until a batch comes back.
    var wantsPause: Bool { inFlight >= Self.maxInFlight }
    var finished: Bool { (allReceived || cutShort) && inFlight == 0 && batch.isEmpty }
    /// The file stopped arriving before `request.size` bytes (see `stopReceiving(because:)`).
    private(set) var cutShort = false

    /// The client will send no more of the file (it closed its sending side, or sent nothing
    /// for the idle timeout): the rows not yet sent to the writer are dropped, no import is
    /// recorded, and the reply is an error naming the bytes received. Batches already committed
    /// stay; running the import again finds them already present and adds the rest.
    func stopReceiving(because why: String) {
        guard !allReceived, !cutShort else { return }
        cutShort = true
        fail(ProtocolError(.badRequest, "import: \(request.file): \(why) after \(received) of the \(request.size) bytes announced; the import was not recorded, and run again it adds what is missing"))
    }

    /// Ends the import with `error` (the first failure wins): the rows gathered but not yet
    /// sent to the writer are dropped, so that once the batches in flight are back the import
    /// is finished and its reply is the failure. The rest of the file is read and dropped.
    private func fail(_ error: ProtocolError) {
        batch.removeAll()
        lines.removeAll()
        if failure == nil { failure = error }
    }

    /// Takes the next bytes of the file. `loop` and `done` are for the writer's answers.
    func receive(_ buffer: ByteBuffer, on loop: any EventLoop, done: @escaping @Sendable () -> Void) {
        buffer.withUnsafeReadableBytes { raw in
            digest.update(raw)
            received += UInt64(raw.count)
            writer.metrics.importBytes.increment(by: raw.count)
            guard failure == nil else { return }
            do {
                try reader.feed(raw) { take($0) }
                if allReceived { try reader.finish { take($0) } }
            } catch {
                fail(ProtocolError(.badRequest, "import: \(request.file): \(error)"))
            }
        }
        flush(on: loop, force: allReceived, done: done)
    }

    private func take(_ row: VoteFileRow) {
        rows += 1
        switch row {
        case .vote(let line, let submission):
            batch.append(submission)
            lines.append(line)
        case .refused(let line, let voteID, let refusal):
            refuse(line: line, voteID: voteID, refusal)
        }
    }

    private func refuse(line: Int, voteID: String, _ refusal: ImportRefusal) {
        refused[refusal.reason, default: 0] += 1
        if trialBox == nil { writer.metrics.importRows(.refused) }
        send(ImportLine.refused(ImportRefusedRow(line: Int64(line), voteID: voteID, reason: refusal.reason, message: refusal.message)).bytes(id: id))
    }

    /// How many more rows the file holds, as the rows so far tell (their bytes a row, and the
    /// bytes announced), so that the writer's tables grow for them in few steps rather than
    /// doubling batch by batch; told with every batch. The bytes announced are the client's
    /// word, so the estimate is never more than `aheadFactor` times the rows already read: a
    /// client that announces a huge file and sends one batch of 8,192 rows makes the tables grow
    /// for about a million keys (48 MB of file), not to their cap. A file of a million rows
    /// grows them once, at its first batch; one of ten million, twice.
    private var rowsExpected: Int {
        guard received > 0, received < request.size, rows > 0 else { return 0 }
        let estimate = Double(request.size - received) / Double(received) * Double(rows)
        return Int(min(estimate, Double(rows) * Double(Self.aheadFactor)))
    }
    static let aheadFactor = 128

    /// Hands the batch to the writer once it is full, or whatever is left at the end.
    private func flush(on loop: any EventLoop, force: Bool, done: @escaping @Sendable () -> Void) {
        guard failure == nil, batch.count >= Self.batchRows || (force && !batch.isEmpty) else { return }
        let expecting = rowsExpected
        let submissions = batch
        let lineNumbers = zip(lines, batch).map { ($0, $1.idempotencyKey) }
        batch.removeAll(keepingCapacity: true)
        lines.removeAll(keepingCapacity: true)
        inFlight += 1
        let bound = NIOLoopBound(self, eventLoop: loop)
        let completion: @Sendable (Result<[Outcome], any Error>) -> Void = { result in
            bound.value.settle(result, lineNumbers)
            done()
        }
        if let trialBox {
            writer.trial(submissions, in: trialBox, on: loop, completion: completion)
        } else {
            writer.submit(submissions, expecting: expecting, on: loop, completion: completion)
        }
    }

    private func settle(_ result: Result<[Outcome], any Error>, _ rowsSent: [(line: Int, voteID: String)]) {
        inFlight -= 1
        switch result {
        case .failure(let error):
            if failure == nil {
                let code: ErrorCode = (error as? LedgerError)?.storageCode ?? .internal
                writer.metrics.refused(code.rawValue)   // a failed write is counted where it is answered
                fail(ProtocolError(code, "import: \(request.file): stopped after \(accepted) accepted rows: \(error); run the import again to add the rest"))
            }
        case .success(let outcomes):
            let before = (accepted, alreadyPresent)
            defer {
                if trialBox == nil {
                    writer.metrics.importRows(.accepted, Int(accepted - before.0))
                    writer.metrics.importRows(.alreadyPresent, Int(alreadyPresent - before.1))
                }
            }
            for (outcome, row) in zip(outcomes, rowsSent) {
                switch outcome {
                case .appended(let receipt):
                    accepted += 1
                    if firstSeq == 0 { firstSeq = receipt.seq }
                    lastSeq = receipt.seq
                case .repeated:
                    alreadyPresent += 1
                case .refused(let error):
                    refuse(line: row.line, voteID: row.voteID, ImportRefusal(error))
                }
            }
        }
        sendProgress()
    }

    private func sendProgress() {
        send(ImportLine.progress(ImportProgress(bytes: received, size: request.size, rows: rows, accepted: accepted,
                                                alreadyPresent: alreadyPresent, refused: refused.values.reduce(0, +))).bytes(id: id))
    }

    // MARK: The end

    /// Once every byte is in and every batch decided: puts the import on the record (unless it
    /// is a dry run or the file could not be read) and sends the summary as the reply.
    func complete(on loop: any EventLoop, done: @escaping @Sendable () -> Void) {
        if let failure {
            send(Reply.error(id: id, failure))
            return done()
        }
        let sha256 = { let d = digest; return d.finalize() }()  // finalize consumes; the session keeps its digest
        let reasons = refused.sorted { $0.key < $1.key }.map { ImportRecord.ReasonCount(reason: $0.key, count: $0.value) }
        guard !request.dryRun, let election = reader.election else {
            send(Reply.ok(id: id, result: summary(sha256, record: nil)))
            return done()
        }
        let name = request.file.split(separator: "/").last.map(String.init) ?? request.file
        let record = ImportRecord(file: String(name.prefix(Limits.name)), election: election, bytes: received, sha256: sha256,
                                  rows: rows, accepted: accepted, alreadyPresent: alreadyPresent, refused: reasons,
                                  firstSeq: firstSeq, lastSeq: lastSeq)
        let bound = NIOLoopBound(self, eventLoop: loop)
        writer.submit([Submission(.recordImport(record), by: peer.actor)], on: loop) { result in
            let session = bound.value
            switch result {
            case .success(let outcomes):
                if case .refused(let error) = outcomes[0] {
                    session.send(Reply.error(id: session.id, ProtocolError(error.code, "import: \(session.request.file): the rows are in, but the import could not be recorded: \(error.message)")))
                } else {
                    session.send(Reply.ok(id: session.id, result: session.summary(sha256, record: outcomes[0].receipt)))
                }
            case .failure(let error):
                session.send(Reply.error(id: session.id, ProtocolError(.internal, "import: \(session.request.file): the rows are in, but the import could not be recorded: \(error)")))
            }
            done()
        }
    }

    private func summary(_ sha256: Digest32, record: Receipt?) -> JSONValue {
        // The import.recorded event; the same receipt comes back when it was recorded before.
        ImportSummary(file: request.file, election: reader.election?.value, dryRun: request.dryRun, bytes: received, rows: rows,
                      accepted: accepted, alreadyPresent: alreadyPresent, refused: refused, firstSeq: firstSeq, lastSeq: lastSeq,
                      sha256: sha256, importSeq: record?.seq, leafHash: record?.leafHash).json
    }
}
