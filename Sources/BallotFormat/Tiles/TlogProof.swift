import FoundationEssentials
public import BallotDomain

/// A receipt in the form of c2sp.org/tlog-proof: an offline-verifiable proof that an event is
/// in the ledger, as a checkpoint (with its witnesses' cosignatures) saw it. The spec's `extra`
/// carries the event's record as stored (docs/ledger-format.md), from which the leaf hash is
/// computed, so the receipt says what was recorded and not only that something was.
///
///     c2sp.org/tlog-proof@v1
///     extra <base64 of the record>
///     index <the event's sequence number − 1>
///     <the inclusion proof, a base64 hash a line>
///
///     <the checkpoint note>
public struct TlogProof: Sendable, Equatable {
    public static let header = "c2sp.org/tlog-proof@v1"

    public var record: [UInt8]?
    public var index: UInt64
    public var proof: [MerkleHash]
    public var checkpoint: SignedNote

    public init(record: [UInt8]?, index: UInt64, proof: [MerkleHash], checkpoint: SignedNote) {
        self.record = record
        self.index = index
        self.proof = proof
        self.checkpoint = checkpoint
    }

    public var serialized: String {
        var text = Self.header + "\n"
        if let record { text += "extra \(Data(record).base64EncodedString())\n" }
        text += "index \(index)\n"
        for hash in proof { text += hash.withBytes { Data($0).base64EncodedString() } + "\n" }
        return text + "\n" + checkpoint.serialized
    }

    public struct Malformed: Error, Sendable, CustomStringConvertible {
        public let line: Int
        public let reason: String
        public var description: String { line > 0 ? "line \(line) of the proof: \(reason)" : "the proof: \(reason)" }
    }

    public init(parsing bytes: [UInt8]) throws(Malformed) {
        guard bytes.count <= SignedNote.maxBytes + 1 << 17 else { throw Malformed(line: 0, reason: "it is \(bytes.count) bytes, more than any receipt") }
        guard let blank = (0..<max(bytes.count - 1, 0)).first(where: { bytes[$0] == 0x0A && bytes[$0 + 1] == 0x0A }) else {
            throw Malformed(line: 0, reason: "it has no empty line before the checkpoint")
        }
        let lines = bytes[...blank].split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
        guard lines.first == Self.header else { throw Malformed(line: 1, reason: "the first line is not \(Self.header)") }
        var at = 1
        if at < lines.count, lines[at].hasPrefix("extra ") {
            guard let data = Data(base64Encoded: String(lines[at].dropFirst(6))) else { throw Malformed(line: at + 1, reason: "the extra data is not base64") }
            record = Array(data)
            at += 1
        }
        guard at < lines.count, lines[at].hasPrefix("index "), let index = UInt64(lines[at].dropFirst(6)), String(index) == lines[at].dropFirst(6) else {
            throw Malformed(line: at + 1, reason: "it is not \"index <n>\" (a decimal without leading zeros)")
        }
        self.index = index
        proof = []
        for (i, line) in lines[(at + 1)...].enumerated() {
            guard let hash = Data(base64Encoded: line), hash.count == 32 else { throw Malformed(line: at + 2 + i, reason: "it is not the base64 of a 32-byte hash") }
            guard proof.count < 64 else { throw Malformed(line: at + 2 + i, reason: "an inclusion proof has at most 64 hashes") }
            proof.append(hash.withUnsafeBytes { MerkleHash($0) })
        }
        do {
            checkpoint = try SignedNote(parsing: Array(bytes[(blank + 2)...]))
        } catch {
            throw Malformed(line: 0, reason: "the checkpoint: \(error)")
        }
    }

    /// What a check found: the checkpoint it holds, and the cosigners that verified.
    public struct Checked: Sendable {
        public var checkpoint: CheckpointNote
        public var leaf: MerkleHash
        public var cosigners: [String]
    }

    /// Checks the receipt on its own: the log's signature on the checkpoint (key name = its
    /// origin), the cosignatures of every key in `witnesses` (or the quorum of `policy`), and
    /// that the record hashes to a leaf the inclusion proof puts at `index` under the root.
    /// Each failure names what was wrong.
    public func check(logKey: Digest32, witnesses: [VerifierKey] = [], policy: WitnessPolicy? = nil) throws(ReceiptRefusal) -> Checked {
        let text: CheckpointNote
        do { text = try CheckpointNote(text: checkpoint.text) } catch { throw ReceiptRefusal("the checkpoint: \(error)") }
        guard checkpoint.verifies(name: text.origin, publicKey: logKey) == true else {
            throw ReceiptRefusal("no signature of the log's key (\(text.origin)) verifies on the checkpoint")
        }
        var cosigners: [String] = []
        for witness in witnesses {
            switch checkpoint.cosignature(name: witness.name, publicKey: witness.publicKey) {
            case .success?: cosigners.append(witness.name)
            case .failure(let failure)?: throw ReceiptRefusal("\(failure)")
            case nil: throw ReceiptRefusal("the checkpoint has no cosignature of the witness \(witness.name)")
            }
        }
        if let policy {
            let found = policy.cosigners(of: checkpoint)
            if let failure = found.failures.first { throw ReceiptRefusal("\(failure)") }
            guard policy.isSatisfied(by: found.verified) else {
                throw ReceiptRefusal("the cosignatures (\(found.verified.sorted().joined(separator: ", ")), none if empty) do not meet the policy's quorum")
            }
            cosigners += found.verified.sorted()
        }
        guard let record else { throw ReceiptRefusal("the receipt carries no record (no extra line) to hash") }
        guard index < text.size else { throw ReceiptRefusal("the index \(index) is not in a tree of \(text.size) events") }
        let leaf = record.withUnsafeBytes { MerkleHash.leaf($0) }
        guard MerkleTree.verifyInclusion(leaf: leaf, index: index, size: text.size, proof: proof, root: text.root) else {
            throw ReceiptRefusal("the inclusion proof does not put the record's leaf \(leaf.hex) at index \(index) under the checkpoint's root")
        }
        return Checked(checkpoint: text, leaf: leaf, cosigners: cosigners)
    }
}

public struct ReceiptRefusal: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
