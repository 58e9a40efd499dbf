import Testing
import Foundation
import TestSupport
import BallotLedger
import BallotDomain
@testable import BallotFormat
@testable import BallotWitness

/// `ballot-witness` as an independent party runs it: its own key and state file, the HTTP API
/// of c2sp.org/tlog-witness on loopback, spoken to by curl. Its cosignature verifies, and a
/// witness restarted from its state file still refuses to go back.
@Suite(.serialized, .timeLimit(.minutes(2))) struct WitnessServerTests {
    let logKey = try! CheckpointKey(seed: Array(repeating: 7, count: 32))
    static let origin = "example.org/witness-test"

    final class Running {
        let process: Process
        let port: Int
        init(_ arguments: [String]) throws {
            let (process, text) = try launchReadingFirstLine(DaemonProcess.binaryDirectory + "/ballot-witness", arguments)
            self.process = process
            guard let portText = text.split(separator: " ").dropFirst(2).first?.split(separator: ":").last, let port = Int(portText) else {
                process.terminate()
                throw WitnessError("ballot-witness said: \(text)")
            }
            self.port = port
        }
        func stop() {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// POSTs `body` with curl; the status, the content type and the body.
    func post(_ body: String, port: Int, dir: TemporaryDirectory) throws -> (status: Int, type: String, body: String) {
        let file = dir.sub("body-\(UUID().uuidString)")
        try body.write(toFile: file, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-s", "-D", "-", "--data-binary", "@\(file)", "http://127.0.0.1:\(port)/add-checkpoint"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        let headers = parts.first ?? ""
        let status = Int(headers.split(separator: " ").dropFirst().first ?? "") ?? -1
        let type = headers.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("content-type:") }?.dropFirst(13).trimmingCharacters(in: .whitespaces) ?? ""
        return (status, type, parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    @Test func aWitnessProcessCosignsOverHTTPAndKeepsItsStateAcrossARestart() throws {
        let dir = TemporaryDirectory()
        var options = Fixtures.options()
        options.checkpointOrigin = Self.origin
        let ledger = try Ledger(path: dir.sub("ledger"), options: options, clock: ManualClock(Fixtures.now), checkpointKey: logKey)
        _ = try ledger.submit(Fixtures.setUpCommands().map { Submission($0, by: Fixtures.admin) })
        let receipt = try #require(try ledger.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin)).receipt)
        guard case .checkpointSigned(let c)? = try ledger.reader.record(receipt.seq)?.event, let note = c.note else { throw WitnessError("no note") }

        let keygen = try runTool("ballot-witness", ["keygen", "--out", dir.sub("witness.key"), "--name", "witness.example/w1"])
        #expect(keygen.status == 0, "\(keygen.stderr)")
        let publicKey = try #require(keygen.stdout.split(separator: "\n").first { $0.hasPrefix("public_key: ") }.flatMap { Digest32(hex: String($0.dropFirst(12))) })
        let arguments = ["serve", "--name", "witness.example/w1", "--key", dir.sub("witness.key"), "--state", dir.sub("witness.state"),
                         "--log", "\(Self.origin)=\(logKey.publicKey.hex)"]
        var witness = try Running(arguments)
        let body = "old 0\n\n" + note.serialized
        let first = try post(body, port: witness.port, dir: dir)
        #expect(first.status == 200, "\(first)")
        let cosigned = try SignedNote(parsing: Array((note.serialized + first.body).utf8))
        guard case .success = cosigned.cosignature(name: "witness.example/w1", publicKey: publicKey) else {
            Issue.record("the cosignature does not verify: \(first.body)")
            return
        }
        witness.stop()

        // Restarted from its state file, it remembers what it cosigned.
        witness = try Running(arguments)
        defer { witness.stop() }
        let again = try post(body, port: witness.port, dir: dir)
        #expect(again.status == 409 && again.type == "text/x.tlog.size" && again.body == "\(c.size)\n", "\(again)")
        let unknown = try post("old 0\n\n" + note.serialized.replacingOccurrences(of: Self.origin, with: "example.org/other"), port: witness.port, dir: dir)
        #expect(unknown.status == 404, "\(unknown)")
        let garbage = try post("hello\n", port: witness.port, dir: dir)
        #expect(garbage.status == 400 && garbage.body.contains("empty line"), "\(garbage)")
    }
}
