import ArgumentParser
import Dispatch
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import BallotDomain
import BallotFormat
import BallotHTTP

/// `ballot-replay monitor`: watches a log's published tiles (c2sp.org/tlog-tiles) from outside.
/// It remembers the last checkpoint it checked and checks that the next one extends it, with a
/// consistency proof computed from the tiles: a log that goes back (a rollback) or shows another
/// tree (a split view) is caught, and both checkpoints are named.
struct MonitorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Check that a log's published checkpoint extends the one seen before (c2sp.org/tlog-tiles over HTTP).",
        discussion: """
            Exit codes: 0 consistent (or the first checkpoint seen, now remembered); 1 the \\
            publication is broken (tiles that do not hash to the signed root, a missing tile or \\
            cosignature, no answer); 2 a rollback or a split view: the log's checkpoint does not \\
            extend the one remembered (both are printed, the state file keeps the old one); 64 usage.
            """)
    @Option(help: "The tiles' URL prefix (http://HOST:PORT/PATH), where <prefix>/checkpoint is served.") var tiles: String
    @Option(help: "The file that remembers the last checkpoint checked (made if missing).") var state: String
    @Option(help: "The log's checkpoint public key file.") var pubkey: String
    @Option(name: .customLong("witness-key"), help: ArgumentHelp("A witness whose cosignature each checkpoint must carry (repeatable).", valueName: "VKEY"))
    var witnessKeys: [String] = []
    @Option(help: "A witness policy (c2sp.org/tlog-policy) whose quorum must have cosigned.") var policy: String?
    @Option(help: "Check again every SECONDS until a rollback or split view (default: once).") var every: Int?

    func run() throws {
        guard let url = HTTPURL(tiles) else { fail(64, "--tiles \(tiles): write http://HOST:PORT[/PATH]") }
        guard let logKey = readPublicKey(pubkey) else { fail(64, "give --pubkey") }
        let trust = Trust(logKey: logKey, witnessKeys: witnessKeys, policy: policy)
        while true {
            do {
                try check(url, trust)
            } catch {
                // A broken publication (or no answer) ends a single check with 1; a watch goes
                // on, since the next fetch may find it mended: only a rollback or a split view ends it.
                guard every != nil else { fail(1, error.description) }
                warn(error.description)
            }
            guard let every else { return }
            sleep(UInt32(max(every, 1)))
        }
    }

    func check(_ url: HTTPURL, _ trust: Trust) throws(PublicationProblem) {
        let published = try trust.fetchCheckpoint(url)
        let nodes = TileNodes(size: published.text.size) { path in try fetchTile(url, path) }
        func tileProblem(_ error: any Error) -> PublicationProblem { PublicationProblem("\(url)/tile: \(error)") }
        do {
            guard try MerkleTree.root(size: published.text.size, nodes.node) == published.text.root else {
                throw PublicationProblem("the tiles at \(url) do not hash to the root of its checkpoint (size \(published.text.size))")
            }
        } catch let problem as PublicationProblem { throw problem } catch { throw tileProblem(error) }
        let seen: (note: SignedNote, text: CheckpointNote)? = {
            let stored: [UInt8]?
            do { stored = try ReplacedFile.read(state) } catch { fail(66, "cannot read the state file \(state): \(error)") }
            guard let bytes = stored else { return nil }
            guard let note = try? SignedNote(parsing: bytes), let text = try? CheckpointNote(text: note.text) else {
                fail(66, "the state file \(state) does not hold a checkpoint note")
            }
            return (note, text)
        }()
        if let (_, old) = seen {
            func conflict(_ what: String) -> Never {
                fail(2, "\(what)\n  seen before: \(describe(old))\n  published now at \(url): \(describe(published.text))")
            }
            guard old.origin == published.text.origin else { conflict("the log at \(url) is another log") }
            guard published.text.size >= old.size else { conflict("rollback: the log now shows fewer events than it did") }
            if published.text.size == old.size {
                guard published.text.root == old.root else { conflict("split view: the log shows another tree of the same size") }
            } else {
                // The tree the tiles give at the old size, linked to the signed new root by a
                // consistency proof from the same tiles: tiles that fail to link are a broken
                // publication (1); linked, another old root is a split view (2).
                do {
                    let derived = try MerkleTree.root(size: old.size, nodes.node)
                    let proof = try MerkleTree.consistencyProof(oldSize: old.size, newSize: published.text.size, nodes.node)
                    guard MerkleTree.verifyConsistency(oldSize: old.size, newSize: published.text.size, oldRoot: derived,
                                                       newRoot: published.text.root, proof: proof) else {
                        throw PublicationProblem("the tiles at \(url) do not give a consistency proof to its signed root")
                    }
                    guard derived == old.root else { conflict("split view: the published tree does not extend the one seen before") }
                } catch let problem as PublicationProblem { throw problem } catch { throw tileProblem(error) }
            }
        }
        try trust.requireCosigned(published.note, published.text, at: url)
        do {
            try ReplacedFile.replace(state, with: Array(published.note.serialized.utf8), durable: true, mode: 0o644)
        } catch {
            fail(73, "cannot write the state file \(state): \(error)")
        }
        let what = seen.map { $0.text.size == published.text.size ? "unchanged at" : "extends \($0.text.size) to" } ?? "first seen:"
        print("\(published.text.origin): \(what) \(published.text.size) events, root \(published.text.root.hex)\(trust.cosigned(published.note))")
    }

    func describe(_ c: CheckpointNote) -> String { "\(c.origin), \(c.size) events, root \(c.root.withBytes { Data($0).base64EncodedString() })" }
}

/// What a published checkpoint must carry: the log's signature, and the cosignatures asked for.
struct Trust {
    let logKey: Digest32
    let witnesses: [VerifierKey]
    let policy: WitnessPolicy?

    init(logKey: Digest32, witnessKeys: [String], policy path: String?) {
        self.logKey = logKey
        witnesses = witnessKeys.map { text in
            do { return try VerifierKey(parsing: text) } catch { fail(64, "--witness-key \(text.prefix(80)): \(error)") }
        }
        policy = path.map { file in
            guard let data = FileManager.default.contents(atPath: file) else { fail(Exit.unreadable, "cannot read the policy \(file)") }
            do { return try WitnessPolicy(parsing: String(decoding: data, as: UTF8.self)) } catch { fail(64, "\(file): \(error)") }
        }
    }

    /// Fetches `<url>/checkpoint` and checks the log's signature.
    func fetchCheckpoint(_ url: HTTPURL) throws(PublicationProblem) -> (note: SignedNote, text: CheckpointNote) {
        let bytes: [UInt8]
        do { bytes = try fetchTile(url, "checkpoint", maxBytes: SignedNote.maxBytes) } catch { throw PublicationProblem("\(error)") }
        let note: SignedNote
        let text: CheckpointNote
        do {
            note = try SignedNote(parsing: bytes)
            text = try CheckpointNote(text: note.text)
        } catch {
            throw PublicationProblem("\(url)/checkpoint: \(error)")
        }
        guard note.verifies(name: text.origin, publicKey: logKey) == true else {
            throw PublicationProblem("\(url)/checkpoint: no signature of the log's key (\(text.origin)) verifies on it")
        }
        return (note, text)
    }

    /// Whether the checkpoint carries the cosignatures asked for. Checked after the
    /// consistency: a log that signed two views is caught whether or not witnesses cosigned.
    func requireCosigned(_ note: SignedNote, _ text: CheckpointNote, at url: HTTPURL) throws(PublicationProblem) {
        for w in witnesses {
            guard case .success? = note.cosignature(name: w.name, publicKey: w.publicKey) else {
                throw PublicationProblem("\(url)/checkpoint (size \(text.size)): no valid cosignature of the witness \(w.name) (yet)")
            }
        }
        if let policy, !policy.isSatisfied(by: policy.cosigners(of: note).verified) {
            throw PublicationProblem("\(url)/checkpoint (size \(text.size)): its cosignatures do not meet the policy's quorum (yet)")
        }
    }

    func cosigned(_ note: SignedNote) -> String {
        let names = witnesses.map(\.name) + (policy.map { $0.cosigners(of: note).verified.sorted() } ?? [])
        return names.isEmpty ? "" : "; cosigned by \(names.joined(separator: ", "))"
    }
}

/// A published log that cannot be checked now: no answer, a tile missing or of the wrong
/// length, tiles that do not hash to the signed root, cosignatures not there (yet).
struct PublicationProblem: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// GETs `<url>/<path>` (a hash tile is at most 8 KB), blocking this thread:
/// ballot-replay is a command-line tool, and its checks are synchronous.
func fetchTile(_ url: HTTPURL, _ path: String, maxBytes: Int = TileLayout.hashBytes * Int(TileLayout.width)) throws -> [UInt8] {
    final class Box: @unchecked Sendable { var result: Result<HTTPReply, any Error>? }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await HTTPClient.request(.get, url, path: "/" + path, timeout: .seconds(30), maxBytes: maxBytes)) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    let reply: HTTPReply
    do { reply = try box.result!.get() } catch { throw TileError("GET \(url)/\(path): \(error)") }
    guard reply.status == 200 else { throw TileError("GET \(url)/\(path): HTTP \(reply.status)") }
    return reply.body
}
