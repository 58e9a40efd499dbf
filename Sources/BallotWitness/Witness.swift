import FoundationEssentials
public import BallotDomain
public import BallotFormat

/// A log a witness cosigns for: its origin, and the key its checkpoints are signed with.
public struct WitnessedLog: Sendable, Equatable {
    public var origin: String
    public var publicKey: Digest32

    public init(origin: String, publicKey: Digest32) {
        self.origin = origin
        self.publicKey = publicKey
    }
}

/// What a witness answers an `add-checkpoint` request with (c2sp.org/tlog-witness): the HTTP
/// status, its content type, and the body (cosignature lines, the witness's size on a
/// conflict, or what was wrong).
public struct WitnessReply: Sendable, Equatable {
    public var status: Int
    public var contentType: String
    public var body: String

    static func refusal(_ status: Int, _ why: String) -> WitnessReply {
        WitnessReply(status: status, contentType: "text/plain; charset=utf-8", body: why + "\n")
    }
}

/// A transparency-log witness (c2sp.org/tlog-witness), the decisions without the HTTP: for
/// each log it knows, the latest checkpoint it cosigned, and it cosigns a new one only if it
/// is signed by the log's key and a consistency proof shows it extends that one. So a log
/// that is put back to an older copy (a rollback), or shows two views, is refused here, by a
/// party the log's operator does not control.
///
/// A value: `addCheckpoint` changes `state` only when it cosigns, and the caller must make
/// the new state durable before it sends the reply, one request at a time (the spec's race:
/// two requests checked against the same old size).
public struct Witness: Sendable {
    public let name: String
    let key: CheckpointKey
    public let logs: [String: Digest32]
    /// Set only by `addCheckpoint`, and put back by the server when it cannot keep a new one.
    public internal(set) var state: WitnessState

    /// The most consistency proof lines a request may carry (the spec's limit).
    public static let maxProofLines = 63

    public init(name: String, key: CheckpointKey, logs: [WitnessedLog], state: WitnessState) throws(WitnessError) {
        guard SignedNote.isKeyName(name) else { throw WitnessError("the witness name '\(name)' is not a key name: not empty, no spaces or plus signs") }
        var byOrigin: [String: Digest32] = [:]
        for log in logs {
            guard Checkpoint.isOrigin(log.origin) else { throw WitnessError("the log origin '\(log.origin)' is not an origin") }
            guard byOrigin.updateValue(log.publicKey, forKey: log.origin) == nil else { throw WitnessError("the log origin '\(log.origin)' is listed twice") }
        }
        self.name = name
        self.key = key
        self.logs = byOrigin
        self.state = state
    }

    public var publicKey: Digest32 { key.publicKey }

    /// The witness's verifier key in the vkey form of c2sp.org/signed-note: name, key ID, and
    /// base64 of the type byte (0x04) and the public key.
    public var verifierKey: VerifierKey { VerifierKey(name: name, type: SignedNote.cosignatureV1, publicKey: publicKey) }

    /// Decides one `add-checkpoint` request body, at `now` (seconds since 1970).
    public mutating func addCheckpoint(_ body: [UInt8], now: UInt64) -> WitnessReply {
        let request: AddCheckpoint
        do {
            request = try AddCheckpoint(parsing: body)
        } catch {
            return .refusal(400, "\(error)")
        }
        let checkpoint = request.checkpoint
        guard let logKey = logs[checkpoint.origin] else {
            return .refusal(404, "this witness does not know the log '\(checkpoint.origin)'")
        }
        guard request.note.verifies(name: checkpoint.origin, publicKey: logKey) == true else {
            return .refusal(403, "no signature on the checkpoint verifies with the key of '\(checkpoint.origin)'")
        }
        guard request.oldSize <= checkpoint.size else {
            return .refusal(400, "the old size \(request.oldSize) is past the checkpoint's size \(checkpoint.size)")
        }
        let latest = state.latest[checkpoint.origin]
        guard request.oldSize == (latest?.size ?? 0) else {
            // The client's view is not ours: it learns our size, and tries again with a proof from it.
            return WitnessReply(status: 409, contentType: "text/x.tlog.size", body: "\(latest?.size ?? 0)\n")
        }
        if let latest, latest.size == checkpoint.size, latest.root != checkpoint.root {
            return .refusal(409, "a checkpoint of size \(checkpoint.size) with another root was cosigned before: the log shows two views")
        }
        if let latest, request.oldSize > 0 {
            guard MerkleTree.verifyConsistency(oldSize: latest.size, newSize: checkpoint.size, oldRoot: latest.root,
                                               newRoot: checkpoint.root, proof: request.proof) else {
                return .refusal(422, "the consistency proof from size \(latest.size) to \(checkpoint.size) does not verify")
            }
        } else if !request.proof.isEmpty {
            return .refusal(422, "a proof from size 0 is empty, and this one has \(request.proof.count) lines")
        }
        state.latest[checkpoint.origin] = WitnessState.Head(size: checkpoint.size, root: checkpoint.root)
        let line = SignedNote.cosign(request.note.text, name: name, key: key, timestamp: now)
        return WitnessReply(status: 200, contentType: "text/plain; charset=utf-8", body: line.line)
    }
}

/// A request body of `add-checkpoint`: "old N", the consistency proof (a base64 hash a line), an
/// empty line, then the checkpoint note.
struct AddCheckpoint {
    let oldSize: UInt64
    let proof: [MerkleHash]
    let note: SignedNote
    let checkpoint: CheckpointNote

    init(parsing body: [UInt8]) throws(WitnessError) {
        guard body.count <= SignedNote.maxBytes + 64 * Witness.maxProofLines else {
            throw WitnessError("the request is \(body.count) bytes, more than any checkpoint with its proof")
        }
        guard let blank = (0..<max(body.count - 1, 0)).first(where: { body[$0] == 0x0A && body[$0 + 1] == 0x0A }) else {
            throw WitnessError("the request has no empty line between its proof and its checkpoint")
        }
        let lines = body[...blank].split(separator: 0x0A).map { String(decoding: $0, as: UTF8.self) }
        guard let first = lines.first, first.hasPrefix("old "), let old = UInt64(first.dropFirst(4)), String(old) == first.dropFirst(4) else {
            throw WitnessError("the first line is not \"old <size>\" (a decimal number without leading zeros)")
        }
        guard lines.count - 1 <= Witness.maxProofLines else {
            throw WitnessError("the proof has \(lines.count - 1) lines; at most \(Witness.maxProofLines)")
        }
        var proof: [MerkleHash] = []
        for (i, line) in lines.dropFirst().enumerated() {
            guard let hash = Data(base64Encoded: line), hash.count == 32 else { throw WitnessError("proof line \(i + 1) is not the base64 of 32 bytes") }
            proof.append(hash.withUnsafeBytes { MerkleHash($0) })
        }
        do {
            note = try SignedNote(parsing: Array(body[(blank + 2)...]))
            checkpoint = try CheckpointNote(text: note.text)
        } catch {
            throw WitnessError("the checkpoint: \(error)")
        }
        oldSize = old
        self.proof = proof
    }
}

public struct WitnessError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
