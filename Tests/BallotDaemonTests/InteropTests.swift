import Testing
import Foundation
import TestSupport

/// The daemon's checkpoints read by tools nobody here wrote: Go's `golang.org/x/mod/sumdb/note`
/// (scripts/interop/opennote.go), built offline from Debian's golang-golang-x-mod-dev, which
/// scripts/setup installs.
@Suite(.serialized, .timeLimit(.minutes(3))) struct InteropTests {
    static let goModules = "/usr/share/gocode/src/golang.org/x/mod/sumdb/note"
    static let hasGo = FileManager.default.isExecutableFile(atPath: "/usr/bin/go") && FileManager.default.fileExists(atPath: goModules)

    /// `go run scripts/interop/NAME.go ARGS…`, offline.
    func go(_ program: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/go")
        p.arguments = ["run", "\(Fixtures.repositoryRoot)/scripts/interop/\(program).go"] + arguments
        p.environment = ProcessInfo.processInfo.environment.merging(["GOPATH": "/usr/share/gocode", "GO111MODULE": "off"]) { _, new in new }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
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
}
