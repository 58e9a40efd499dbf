import FoundationEssentials
public import BallotStore
public import BallotCollections
public import BallotDomain
public import BallotFormat
public import BallotAudit

/// A hot backup: a consistent, compacted copy of the ledger taken while it keeps serving
/// (`mdb_env_copy2`), and a manifest whose size and Merkle root are read back from the copy
/// itself, so that it describes exactly what an auditor is handed.
public struct BackupManifest: Sendable {
    public var directory: String
    public var size: UInt64
    public var root: MerkleHash
    public var bytes: Int
    public var formatVersion: UInt8

    /// The manifest as JSON (also written to `manifest.json` in the backup directory).
    public var json: [UInt8] {
        Array("""
        {"format_version":\(formatVersion),"ledger_size":\(size),"merkle_root":"\(root.hex)","bytes":\(bytes)}

        """.utf8)
    }
}

extension LedgerReader {
    /// Copies the ledger into `directory`, which must not exist yet or be empty.
    public func backup(to directory: String) throws -> BackupManifest {
        let fm = FileManager.default
        if fm.fileExists(atPath: directory) {
            guard (try? fm.contentsOfDirectory(atPath: directory))?.isEmpty == true else {
                throw LedgerError.outOfRange("backup directory \(directory) exists and is not empty")
            }
        } else {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        do {
            try env.copy(to: directory, compact: true)
        } catch let error as StoreError {
            throw LedgerError.store(error)
        }
        let copy = try Ledger(path: directory, options: Ledger.Options(environment: EnvironmentOptions(readOnly: true), check: .none))
        defer { copy.close() }
        let attributes = try fm.attributesOfItem(atPath: "\(directory)/data.mdb")
        let manifest = BackupManifest(directory: directory, size: copy.size, root: copy.root,
                                      bytes: (attributes[.size] as? Int) ?? 0, formatVersion: RecordCodec.formatVersion)
        try Data(manifest.json).write(to: URL(fileURLWithPath: "\(directory)/manifest.json"))
        return manifest
    }
}
