import FoundationEssentials
public import BallotDomain
import BallotConfig

/// The client's side of `Op`: the request line that the daemon's `Op.init` decodes back to the
/// same op, for every op it accepts (a property test holds the two to each other). An op it
/// refuses (a `from` of 0, a relative backup path) is encoded as it is and refused by name.
extension Op {
    /// The request's parameters, as `Op.init` reads them; a default is left out.
    public var fields: [(String, JSONValue)] {
        switch self {
        case .hello, .status, .metrics:
            return []
        case .electionDefine(let spec):
            // A spec JSON cannot hold (a non-finite weight) goes as null, which the daemon refuses.
            let json = (try? spec.encoded())?.withUnsafeBytes { try? JSONParser.parse($0) }
            return [("election", json ?? .null)]
        case .electionGet(let e), .electionOpen(let e), .electionClose(let e), .juryClose(let e), .jury(let e), .tally(let e), .ranking(let e):
            return [("election", .slug(e))]
        case .nomineeAdd(let e, let n):
            return [("election", .slug(e)), ("nominee", .slug(n.id)), ("name", .string(n.name)),
                    ("goal_attainment_direct", .number(n.goalAttainmentDirect)),
                    ("goal_attainment_after_one_year", .number(n.goalAttainmentAfterOneYear))]
        case .voteCast(let e, let n, let voter, let castAt, let channel):
            var fields: [(String, JSONValue)] = [("election", .slug(e)), ("nominee", .slug(n)), ("voter", .string(voter))]
            if let castAt { fields.append(("cast_at", .string(castAt.rfc3339))) }
            if !channel.isEmpty { fields.append(("channel", .string(channel))) }
            return fields
        case .voteInvalidate(let e, let vote, let reason):
            return [("election", .slug(e)), ("vote", .uint(vote)), ("reason", .string(reason))]
        case .jurorAdd(let e, let j, let name, let key):
            var fields: [(String, JSONValue)] = [("election", .slug(e)), ("juror", .slug(j)), ("name", .string(name))]
            if let key { fields.append(("key", .string(key))) }
            return fields
        case .juryScore(let e, let j, let n, let c, let score, let signed):
            var fields: [(String, JSONValue)] = [("election", .slug(e))]
            if let j { fields.append(("juror", .slug(j))) }
            fields += [("nominee", .slug(n)), ("criterion", .slug(c)), ("score", .int(Int64(score)))]
            if let signed {
                fields.append(("signature", .string(signed.signature.noteSignature)))
                if let supersedes = signed.supersedes { fields.append(("supersedes", .uint(supersedes))) }
            }
            return fields
        case .resultCertify(let e, let justification):
            return [("election", .slug(e))] + (justification.isEmpty ? [] : [("justification", .string(justification))])
        case .resultSign(let e, let j, let signature):
            return [("election", .slug(e))] + (j.map { [("juror", .slug($0))] } ?? []) + [("signature", .string(signature.noteSignature))]
        case .events(let from, let limit):
            return [("from", .uint(from)), ("limit", .int(limit))]
        case .subscribe(let from), .replicate(let from):
            return [("from", .uint(from))]
        case .checkpoint(let latest):
            return latest ? [("latest", .bool(true))] : []
        case .inclusionProof(let seq, let size, let checkpoint):
            return [("seq", .uint(seq))] + (size.map { [("size", .uint($0))] } ?? []) + (checkpoint.map { [("checkpoint", .uint($0))] } ?? [])
        case .consistencyProof(let old, let new):
            return [("old_size", .uint(old))] + (new.map { [("new_size", .uint($0))] } ?? [])
        case .receipt(let seq, let wait):
            return [("seq", .uint(seq)), ("wait", .int(wait))]
        case .backup(let directory):
            return [("directory", .string(directory))]
        case .importFile(let r):
            var fields: [(String, JSONValue)] = [("file", .string(r.file)), ("size", .uint(r.size))]
            if let format = r.format { fields.append(("format", .string(format))) }
            if let election = r.election { fields.append(("election", .slug(election))) }
            if r.dryRun { fields.append(("dry_run", .bool(true))) }
            return fields
        }
    }
}

extension Op {
    /// The request line carrying this op, newline included: what a client sends.
    /// `idempotencyKey` makes a write safe to send again (docs/protocol.md).
    public func requestLine(id: JSONValue, idempotencyKey: String? = nil) -> [UInt8] {
        var members: [(String, JSONValue)] = [("id", id), ("op", .string(name.rawValue))] + fields
        if let idempotencyKey { members.append(("idempotency_key", .string(idempotencyKey))) }
        var out = JSONValue.object(members).serialized()
        out.append(UInt8(ascii: "\n"))
        return out
    }
}

extension SentSignature {
    /// As a signed note's signature line carries it: base64 of the key ID and the signature.
    public var noteSignature: String {
        let id = keyID ?? 0
        return Data([UInt8(id >> 24), UInt8(id >> 16 & 0xFF), UInt8(id >> 8 & 0xFF), UInt8(id & 0xFF)] + bytes).base64EncodedString()
    }
}

extension JSONValue {
    static func slug(_ s: Slug) -> JSONValue { .string(s.value) }
    /// A number JSON cannot hold (NaN, infinity) goes as null, which the daemon refuses by name.
    static func number(_ d: Double) -> JSONValue { d.isFinite ? .double(d) : .null }
}
