import Testing
import Foundation
import TestSupport
import BallotDomain
import BallotFormat

/// The daemon's checkpoints read by tools nobody here wrote: Go's `golang.org/x/mod/sumdb/note`
/// (scripts/interop/opennote.go), built offline from Debian's golang-golang-x-mod-dev, which
/// scripts/setup installs.
@Suite(.serialized, .timeLimit(.minutes(3))) struct InteropTests {
    static let goModules = "/usr/share/gocode/src/golang.org/x/mod/sumdb/note"
    static let hasGo = FileManager.default.isExecutableFile(atPath: "/usr/bin/go") && FileManager.default.fileExists(atPath: goModules)

    /// `go run scripts/interop/NAME.go ARGS…`, offline, with `input` on its standard input.
    func go(_ program: String, _ arguments: [String], input: String = "") throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/go")
        p.arguments = ["run", "\(Fixtures.repositoryRoot)/scripts/interop/\(program).go"] + arguments
        var environment = ProcessInfo.processInfo.environment.merging(["GOPATH": "/usr/share/gocode", "GO111MODULE": "off"]) { _, new in new }
        // Without a home, Go has no build cache and `go run` refuses to build.
        if environment["HOME"] == nil && environment["GOCACHE"] == nil { environment["GOCACHE"] = NSTemporaryDirectory() + "ballot-go-cache" }
        p.environment = environment
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        inp.fileHandleForWriting.write(Data(input.utf8))
        try inp.fileHandleForWriting.close()
        let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    @Test(.enabled(if: hasGo, "needs Go and golang-golang-x-mod-dev: scripts/setup installs them"))
    func goOpensTheDaemonsCheckpointNotes() throws {
        let daemon = try DaemonProcess(environment: ["BALLOTD_CHECKPOINT_ORIGIN": "example.org/interop-test"])
        defer { _ = daemon.terminate() }
        let env = ["BALLOTD_SOCKET": daemon.socketPath]
        func ctl(_ args: String...) throws -> (status: Int32, stdout: String, stderr: String) { try runTool("ballotctl", args, environment: env) }
        #expect(try ctl("election", "define", Fixtures.electionFile("imdi-2022")).status == 0)
        #expect(try ctl("vote", "cast", "imdi-2022", "kinn", "--voter", "ola@example.no", "--cast-at", "2022-11-03T10:00:00Z").status == 0)
        let notePath = daemon.directory.sub("checkpoint.note")
        let taken = try ctl("--json", "checkpoint", "--note", notePath)
        #expect(taken.status == 0, "\(taken.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(taken.stdout.utf8)) as? [String: Any])
        let checkpoint = try #require(result["checkpoint"] as? [String: Any])
        let origin = try #require(checkpoint["origin"] as? String), publicKey = try #require(checkpoint["public_key"] as? String)
        #expect(origin == "example.org/interop-test")
        let note = try String(contentsOfFile: notePath, encoding: .utf8)

        let opened = try go("opennote", [origin, publicKey, notePath])
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(opened.stdout.hasPrefix("example.org/interop-test\n\(checkpoint["size"] as? Int ?? -1)\n"))
        #expect(opened.stdout.contains("verified example.org/interop-test "))

        // What Go refuses: the size changed under the signature, or a key it was not given.
        let forged = daemon.directory.sub("forged.note")
        try note.replacingOccurrences(of: "\n\(checkpoint["size"] as? Int ?? -1)\n", with: "\n999\n").write(toFile: forged, atomically: true, encoding: .utf8)
        let refused = try go("opennote", [origin, publicKey, forged])
        #expect(refused.status == 1 && refused.stderr.contains("invalid signature"), "\(refused)")
        let otherKey = String(repeating: "ab", count: 32)
        let unknown = try go("opennote", [origin, otherKey, notePath])
        #expect(unknown.status == 1 && unknown.stderr.contains("verif"), "\(unknown)")
    }

    /// A juror's signed score, as `ballotctl jury keygen`'s key signs it (ledger-format §3.2),
    /// is a signed note Go's `sumdb/note` opens with the juror's key, and refuses once altered.
    @Test(.enabled(if: hasGo, "needs Go and golang-golang-x-mod-dev: scripts/setup installs them"))
    func goOpensAJurorsSignedScore() throws {
        let dir = TemporaryDirectory("juror-note")
        let made = try runTool("ballotctl", ["jury", "keygen", "--out", dir.sub("anne.key"), "--name", "anne-2023"])
        #expect(made.status == 0)
        let signer = try SignerKey(parsing: try String(contentsOfFile: dir.sub("anne.key"), encoding: .utf8))
        #expect(signer.verifierKey.description == made.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let score = JuryScore(election: try Slug("imdi-2023", what: "election"), juror: try Slug("anne", what: "juror"),
                              nominee: try Slug("tonsberg", what: "nominee"), criterion: try Slug("results", what: "criterion"),
                              score: 9, supersedes: 41)
        let statement = JuryStatement.score(score, ledger: Array(repeating: 7, count: 16))
        let note = statement + "\n" + signer.sign(statement).line
        try note.write(toFile: dir.sub("score.note"), atomically: true, encoding: .utf8)
        let publicKey = signer.key.publicKey.hex
        let opened = try go("opennote", ["anne-2023", publicKey, dir.sub("score.note")])
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(opened.stdout.hasPrefix(statement) && opened.stdout.contains("verified anne-2023 "))
        try note.replacingOccurrences(of: "score 9\n", with: "score 10\n").write(toFile: dir.sub("altered.note"), atomically: true, encoding: .utf8)
        let refused = try go("opennote", ["anne-2023", publicKey, dir.sub("altered.note")])
        #expect(refused.status == 1 && refused.stderr.contains("invalid signature"), "\(refused)")
    }

    /// A witness process cosigns the daemon's checkpoint over HTTP, and Go's `sumdb/note` opens
    /// the cosigned note with the log's key and, through a verifier written in Go from
    /// c2sp.org/tlog-cosignature, the witness's.
    @Test(.enabled(if: hasGo, "needs Go and golang-golang-x-mod-dev: scripts/setup installs them"))
    func goVerifiesAWitnessCosignature() throws {
        let daemon = try DaemonProcess(environment: ["BALLOTD_CHECKPOINT_ORIGIN": "example.org/interop-test"])
        defer { _ = daemon.terminate() }
        let env = ["BALLOTD_SOCKET": daemon.socketPath]
        #expect(try runTool("ballotctl", ["election", "define", Fixtures.electionFile("imdi-2022")], environment: env).status == 0)
        let notePath = daemon.directory.sub("checkpoint.note")
        let taken = try runTool("ballotctl", ["--json", "checkpoint", "--note", notePath], environment: env)
        let checkpoint = try #require((try JSONSerialization.jsonObject(with: Data(taken.stdout.utf8)) as? [String: Any])?["checkpoint"] as? [String: Any])
        let publicKey = try #require(checkpoint["public_key"] as? String)

        let keygen = try runTool("ballot-witness", ["keygen", "--out", daemon.directory.sub("witness.key"), "--name", "witness.example/w1"])
        let witnessKey = try #require(keygen.stdout.split(separator: "\n").first { $0.hasPrefix("public_key: ") }?.dropFirst(12))
        let witness = Process()
        witness.executableURL = URL(fileURLWithPath: DaemonProcess.binaryDirectory + "/ballot-witness")
        witness.arguments = ["serve", "--name", "witness.example/w1", "--key", daemon.directory.sub("witness.key"),
                             "--state", daemon.directory.sub("witness.state"), "--log", "example.org/interop-test=\(publicKey)"]
        let out = Pipe()
        witness.standardOutput = out
        try witness.run()
        defer { witness.terminate(); witness.waitUntilExit() }
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        let port = try #require(line.split(separator: " ").dropFirst(2).first?.split(separator: ":").last.map(String.init))

        let body = daemon.directory.sub("add-checkpoint")
        try ("old 0\n\n" + (try String(contentsOfFile: notePath, encoding: .utf8))).write(toFile: body, atomically: true, encoding: .utf8)
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-s", "--fail", "--data-binary", "@\(body)", "http://127.0.0.1:\(port)/add-checkpoint"]
        let reply = Pipe()
        curl.standardOutput = reply
        try curl.run()
        let cosignature = String(decoding: reply.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        curl.waitUntilExit()
        #expect(curl.terminationStatus == 0 && cosignature.hasPrefix("— witness.example/w1 "), "\(cosignature)")
        let cosigned = daemon.directory.sub("cosigned.note")
        try ((try String(contentsOfFile: notePath, encoding: .utf8)) + cosignature).write(toFile: cosigned, atomically: true, encoding: .utf8)

        let opened = try go("opennote", ["example.org/interop-test", publicKey, cosigned, "witness.example/w1=\(witnessKey)"])
        #expect(opened.status == 0 && opened.stdout.contains("verified witness.example/w1 "), "\(opened)")
        // Another key for the witness: Go finds no valid cosignature by it.
        let wrong = try go("opennote", ["example.org/interop-test", publicKey, cosigned, "witness.example/w1=\(publicKey)"])
        #expect(wrong.status == 1, "\(wrong)")
    }

    /// Go's `sumdb/tlog` checks the daemon's inclusion and consistency proofs (RFC 6962), and
    /// refuses one with a hash changed.
    @Test(.enabled(if: hasGo, "needs Go and golang-golang-x-mod-dev: scripts/setup installs them"))
    func goChecksTheDaemonsProofs() throws {
        let daemon = try DaemonProcess()
        defer { _ = daemon.terminate() }
        let env = ["BALLOTD_SOCKET": daemon.socketPath]
        func ctl(_ args: String...) throws -> String { try runTool("ballotctl", args, environment: env).stdout }
        _ = try ctl("election", "define", Fixtures.electionFile("imdi-2022"))
        for i in 0..<13 {
            _ = try ctl("vote", "cast", "imdi-2022", "kinn", "--voter", "voter\(i)@example.no", "--cast-at", "2022-11-03T10:00:00Z")
        }
        for seq in [1, 6, 7, 12, 19] {
            let proof = try ctl("--json", "proof", "--seq", "\(seq)")
            let checked = try go("checkproof", [], input: proof)
            #expect(checked.status == 0 && checked.stdout == "inclusion ok\n", "seq \(seq): \(checked) for \(proof)")
        }
        for old in [1, 4, 7, 16] {
            let proof = try ctl("--json", "proof", "--old-size", "\(old)")
            let checked = try go("checkproof", [], input: proof)
            #expect(checked.status == 0 && checked.stdout == "consistency ok\n", "old size \(old): \(checked) for \(proof)")
        }
        var tampered = try #require(try JSONSerialization.jsonObject(with: Data(try ctl("--json", "proof", "--seq", "6").utf8)) as? [String: Any])
        var path = try #require(tampered["path"] as? [String])
        path[0] = String(repeating: "0", count: 64)
        tampered["path"] = path
        let refused = try go("checkproof", [], input: String(decoding: try JSONSerialization.data(withJSONObject: tampered), as: UTF8.self))
        #expect(refused.status == 1, "\(refused)")
    }

    /// The daemon publishes its ledger as tiles (c2sp.org/tlog-tiles) in `tiles_dir`, and Go's
    /// `sumdb/tlog` reads them: every entry hashes to its leaf, the tiles hash to the
    /// checkpoint's root (70,000 events: three levels), and the larger tree of the next
    /// checkpoint extends the first. `ballot-replay tiles` writes the same files from the
    /// ledger, and an altered bundle or a cut tile is refused.
    @Test(.enabled(if: hasGo, "needs Go and golang-golang-x-mod-dev: scripts/setup installs them"))
    func goReadsTheDaemonsTiles() throws {
        let origin = "example.org/tiles-test"
        let dir = TemporaryDirectory("ballotd")
        let tiles = dir.sub("tiles")
        let daemon = try DaemonProcess(directory: dir, environment: ["BALLOTD_CHECKPOINT_ORIGIN": origin, "BALLOTD_TILES_DIR": tiles,
                                                                     "BALLOTD_CHECKPOINT_INTERVAL": "0"])
        defer { _ = daemon.terminate() }
        let env = ["BALLOTD_SOCKET": daemon.socketPath]
        func ctl(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) { try runTool("ballotctl", args, environment: env) }
        #expect(try ctl(["election", "define", Fixtures.electionFile("imdi-2022")]).status == 0)
        let votes = dir.sub("votes.csv")
        #expect(try runTool("ballotctl", ["generate", "--election-file", Fixtures.electionFile("imdi-2022"), "--rows", "70000",
                                          "--duplicates", "0", "--malformed", "0", "--out", votes]).status == 0)
        let imported = try ctl(["import", votes])
        #expect(imported.status == 0, "\(imported.stderr)")

        /// Takes a checkpoint and waits until the tiles directory publishes it: its size and root.
        func published() throws -> (size: Int, root: String, publicKey: String) {
            let taken = try ctl(["--json", "checkpoint"])
            let checkpoint = try #require((try JSONSerialization.jsonObject(with: Data(taken.stdout.utf8)) as? [String: Any])?["checkpoint"] as? [String: Any])
            let size = try #require(checkpoint["size"] as? Int)
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                let text = (try? String(contentsOfFile: tiles + "/checkpoint", encoding: .utf8)) ?? ""
                let lines = text.split(separator: "\n")
                if lines.count > 2, lines[1] == "\(size)" { return (size, String(lines[2]), try #require(checkpoint["public_key"] as? String)) }
                usleep(50_000)
            }
            throw DaemonTestError("the tiles directory did not publish size \(size)")
        }
        let first = try published()
        #expect(first.size > 70_000)
        let checked = try go("checktiles", [tiles, origin, first.publicKey])
        #expect(checked.status == 0 && checked.stdout == "ok: \(first.size) entries\n", "\(checked)")
        #expect(FileManager.default.fileExists(atPath: tiles + "/tile/2/000.p/1"))
        // The Python verifier, written from docs/ledger-format.md §9, reads them too.
        let python = try runPythonVerifier(["--tiles", tiles, "--pubkey", first.publicKey])
        #expect(python.status == 0 && python.stdout.contains("\(first.size) events in the tiles hash to the signed root; \(first.size) records"), "\(python)")

        let client = try BallotClient(socketPath: daemon.socketPath)
        for i in 0..<300 {
            _ = try client.call(.vote("late\(i)@example.no", "kinn", election: "imdi-2022", castAt: "2022-11-03T10:00:00Z"))
        }
        let second = try published()
        let extended = try go("checktiles", [tiles, origin, second.publicKey, "\(first.size)", first.root])
        #expect(extended.status == 0, "\(extended)")
        let wrongRoot = try go("checktiles", [tiles, origin, second.publicKey, "\(first.size)", second.root])
        #expect(wrongRoot.status == 1, "\(wrongRoot)")

        // The auditor's tool writes the same files from the ledger alone, then only what is new.
        let copy = dir.sub("replayed")
        let replayed = try runTool("ballot-replay", ["tiles", "--ledger", daemon.dataDirectory + "/ledger", "--out", copy])
        #expect(replayed.status == 0, "\(replayed.stderr)")
        let written = try #require(FileManager.default.enumerator(atPath: copy)?.allObjects as? [String])
        var files = 0
        for path in written where path != "checkpoint" {
            guard (try? FileManager.default.attributesOfItem(atPath: copy + "/" + path)[.type] as? FileAttributeType) == .typeRegular else { continue }
            files += 1
            #expect(FileManager.default.contents(atPath: copy + "/" + path) == FileManager.default.contents(atPath: tiles + "/" + path), "\(path)")
        }
        #expect(files > 500)
        let again = try runTool("ballot-replay", ["tiles", "--ledger", daemon.dataDirectory + "/ledger", "--out", copy])
        #expect(again.status == 0 && again.stdout.contains(": 0 files written"), "\(again)")

        // An altered entry, or a cut tile: Go refuses them.
        let bundle = tiles + "/tile/entries/000"
        var bytes = try #require(FileManager.default.contents(atPath: bundle))
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: URL(fileURLWithPath: bundle))
        let altered = try go("checktiles", [tiles, origin, second.publicKey])
        #expect(altered.status == 1 && altered.stderr.contains("entry 255"), "\(altered)")
        let pythonAltered = try runPythonVerifier(["--tiles", tiles, "--pubkey", second.publicKey])
        #expect(pythonAltered.status == 2 && pythonAltered.stdout.contains("record 256"), "\(pythonAltered)")
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: URL(fileURLWithPath: bundle))
        let tile = tiles + "/tile/1/000"
        let whole = try #require(FileManager.default.contents(atPath: tile))
        try whole.prefix(8000).write(to: URL(fileURLWithPath: tile))
        let cut = try go("checktiles", [tiles, origin, second.publicKey])
        #expect(cut.status == 1, "\(cut)")
    }
}
