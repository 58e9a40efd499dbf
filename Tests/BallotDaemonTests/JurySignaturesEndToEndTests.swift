import Testing
import Foundation
import TestSupport
import BallotStore
import BallotFormat
import BallotClient

/// The jury's own signatures through the real daemon, `ballotctl` and `ballot-replay` (issue
/// 22): keys made by `ballotctl jury keygen`, signed scores taken, unsigned and forged ones
/// refused, a result certified only at the jury's quorum, and a signature altered in a copy
/// of the ledger found by both verifiers at its event.
@Suite(.serialized, .timeLimit(.minutes(3))) struct JurySignaturesEndToEndTests {
    @Test func theSignedFlowAndATamperedSignature() throws {
        let daemon = try DaemonProcess()
        let env = ["BALLOTD_SOCKET": daemon.socketPath]
        func ctl(_ args: String...) throws -> (status: Int32, stdout: String, stderr: String) { try runTool("ballotctl", args, environment: env) }
        let election = "imdi-2023", nominees = ["tonsberg", "nominee-b", "nominee-c", "nominee-d"]
        let criteria = ["results", "settlement", "development", "differentiation"]

        #expect(try ctl("election", "define", Fixtures.electionFile(election)).status == 0)
        var keyFile: [String: String] = [:]
        for juror in ["jury-a", "jury-b", "jury-c"] {
            keyFile[juror] = daemon.directory.sub("\(juror).key")
            let made = try ctl("jury", "keygen", "--out", keyFile[juror]!)
            #expect(made.status == 0 && made.stdout.hasPrefix("\(juror)+"), "\(made)")
            #expect(try ctl("jury", "keygen", "--out", keyFile[juror]!).status == 64, "a key is never overwritten")
            let vkey = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try ctl("juror", "add", election, juror, "--name", juror.uppercased(), "--key", vkey).status == 0)
        }
        let nokey = try ctl("juror", "add", election, "jury-d", "--name", "D")
        #expect(nokey.status == 1 && nokey.stderr.contains("juror_signature") && nokey.stderr.contains("'jury-d'"))
        let badKey = try ctl("juror", "add", election, "jury-d", "--name", "D", "--key", "jury-d+00000000+AAAA")
        #expect(badKey.status == 64, "\(badKey)")
        // Malformed keys and signatures, sent as they are (not through ballotctl, which checks
        // them first): each refused with what was wrong, nothing written.
        let client = try BallotClient(socketPath: daemon.socketPath)
        func refusal(_ request: JSONValue) throws -> (code: ErrorCode?, message: String) {
            let reply = try client.call(raw: request)
            return (reply.errorCode, reply.refusal?.message ?? "")
        }
        let sizeBefore = try client.request(.status, as: StatusResult.self).ledgerSize
        let e = JSONValue.string(election)
        for (request, field) in [
            (["id": 1, "op": "juror.add", "election": e, "juror": "jury-x", "name": "X", "key": "not a key"], "field 'key'"),
            (["id": 1, "op": "juror.add", "election": e, "juror": "jury-x", "name": "X", "key": "jury-x+00000000+AAAA"], "field 'key'"),
            (["id": 1, "op": "jury.score", "election": e, "juror": "jury-a", "nominee": "tonsberg", "criterion": "results", "score": 5, "signature": "AAAA"], "field 'signature'"),
            (["id": 1, "op": "jury.score", "election": e, "juror": "jury-a", "nominee": "tonsberg", "criterion": "results", "score": 5, "supersedes": 3], "field 'supersedes'"),
            (["id": 1, "op": "result.sign", "election": e, "juror": "jury-a"], "field 'signature'"),
        ] as [(JSONValue, String)] {
            let (code, message) = try refusal(request)
            #expect(code == .badRequest && message.contains(field), "\(request.text): \(String(describing: code)) \(message)")
        }
        #expect(try client.request(.status, as: StatusResult.self).ledgerSize == sizeBefore)

        #expect(try ctl("vote", "cast", election, "tonsberg", "--voter", "kari@example.no", "--cast-at", "2023-11-03T10:00:00Z").status == 0)

        // Juror a scores everything, b one cell; signed, they are taken.
        for (n, nominee) in nominees.enumerated() {
            for criterion in criteria {
                let scored = try ctl("jury", "score", election, nominee, criterion, String(9 - n), "--juror", "jury-a", "--key", keyFile["jury-a"]!)
                #expect(scored.status == 0, "\(scored)")
            }
        }
        #expect(try ctl("jury", "score", election, "tonsberg", "results", "8", "--juror", "jury-b", "--key", keyFile["jury-b"]!).status == 0)
        // An amendment asks the daemon what it supersedes, and signs that.
        #expect(try ctl("jury", "score", election, "tonsberg", "results", "9", "--juror", "jury-b", "--key", keyFile["jury-b"]!).status == 0)
        let unsigned = try ctl("jury", "score", election, "tonsberg", "settlement", "7", "--juror", "jury-b")
        #expect(unsigned.status == 1 && unsigned.stderr.contains("juror_signature") && unsigned.stderr.contains("'jury-b'"), "\(unsigned)")
        let forged = try ctl("jury", "score", election, "tonsberg", "settlement", "7", "--juror", "jury-b", "--key", keyFile["jury-c"]!)
        #expect(forged.status == 1 && forged.stderr.contains("juror_signature") && forged.stderr.contains("another key"), "\(forged)")
        let stale = try ctl("jury", "score", election, "tonsberg", "results", "3", "--juror", "jury-b", "--key", keyFile["jury-b"]!, "--supersedes", "0")
        #expect(stale.status == 1 && stale.stderr.contains("would supersede event"), "\(stale)")

        #expect(try ctl("election", "close", election).status == 0)
        #expect(try ctl("jury", "close", election).status == 0)
        let justification = Fixtures.repositoryRoot + "/config/elections/imdi-2023.justification.txt"
        #expect(try ctl("result", "certify", election).stderr.contains("justification"))
        #expect(try ctl("result", "certify", election, "--justification", justification).status == 0)
        let first = try ctl("result", "sign", election, "--juror", "jury-a", "--key", keyFile["jury-a"]!)
        #expect(first.status == 0 && first.stderr.contains("winner tonsberg") && first.stderr.contains("Juryen mener"), "\(first)")
        let waiting = try ctl("result", "certify", election, "--justification", justification)
        #expect(waiting.status == 1 && waiting.stderr.contains("jury_quorum") && waiting.stderr.contains("1 of 2 (jury-a)"), "\(waiting)")
        #expect(try ctl("--json", "ranking", election).stdout.contains("\"certified\":null"))
        #expect(try ctl("result", "sign", election, "--juror", "jury-b", "--key", keyFile["jury-c"]!).stderr.contains("another key"))
        #expect(try ctl("result", "sign", election, "--juror", "jury-c", "--key", keyFile["jury-c"]!).status == 0)
        let ranking = try JSONSerialization.jsonObject(with: Data(try ctl("--json", "ranking", election).stdout.utf8)) as? [String: Any]
        let certified = ranking?["certified"] as? [String: Any]
        #expect(certified?["winner"] as? String == "tonsberg")
        #expect(certified?["cosigned_by"] as? [String] == ["jury-a", "jury-c"])
        #expect((certified?["justification"] as? String)?.hasPrefix("Juryen mener") == true)
        #expect(daemon.terminate() == 0)

        // Both verifiers check every signature and pass the ledger.
        let ledger = daemon.dataDirectory + "/ledger"
        let verified = try runTool("ballot-replay", ["verify", "--ledger", ledger])
        #expect(verified.status == 0, "\(verified)")
        #expect(try runPythonVerifier([ledger]).status == 0)

        // The report, as Chromium lays it out: the justification, who co-signed, and each
        // juror's scores marked signed.
        let page = daemon.directory.sub("report.html")
        #expect(try runTool("ballot-replay", ["report", "--ledger", ledger, "--election", election, "--out", page]).status == 0)
        let seen = try probeInChromium(page, probe: """
            function () {
              const justification = document.getElementById('justification');
              return {
                result: document.getElementById('result').innerText,
                justification: justification.innerText, justificationHeight: justification.getBoundingClientRect().height,
                paragraphs: justification.querySelectorAll('p').length,
                cosigners: [...document.querySelectorAll('#cosigners li')].map(li => li.dataset.juror),
                signedRows: document.querySelectorAll('#jury-signed tr[data-signed="true"]').length,
                unsignedRows: document.querySelectorAll('#jury-signed tr[data-signed="false"]').length,
                jurorsScoring: [...new Set([...document.querySelectorAll('#jury-signed tr[data-juror]')].map(r => r.dataset.juror))]
              };
            }
            """, directory: daemon.directory)
        #expect((seen["result"] as? String)?.contains("Certified winner: Tønsberg") == true, "\(seen)")
        #expect((seen["justification"] as? String)?.hasPrefix("Juryen mener at årets vinner") == true && (seen["justificationHeight"] as? Double ?? 0) > 0)
        #expect(seen["paragraphs"] as? Int == 4)
        #expect(seen["cosigners"] as? [String] == ["jury-a", "jury-c"])
        #expect(seen["signedRows"] as? Int == 17 && seen["unsignedRows"] as? Int == 0, "\(seen)")
        #expect(seen["jurorsScoring"] as? [String] == ["jury-a", "jury-b"])

        // A copy whose last signed score has one signature byte changed: both name its event.
        let copy = daemon.directory.sub("tampered")
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: ledger + "/data.mdb", toPath: copy + "/data.mdb")
        let tampered = try Self.flipLastScoreSignature(in: copy)
        let report = try runTool("ballot-replay", ["verify", "--ledger", copy, "--json"])
        #expect(report.status == 2, "\(report.stdout)")
        let verdict = try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any]
        let findings = verdict?["findings"] as? [[String: Any]] ?? []
        #expect(findings.contains { $0["first_seq"] as? Int == Int(tampered) && ($0["what"] as? String ?? "").contains("does not verify with their key") },
                "\(findings)")
        let python = try runPythonVerifier([copy])
        #expect(python.status == 2 && python.stdout.contains("\(tampered)"), "\(python)")
    }

    /// Flips a byte of the signature (the record's last 64 bytes) of the last signed score.
    static func flipLastScoreSignature(in path: String) throws -> UInt64 {
        let env = try Environment(path: path, options: EnvironmentOptions(mapSize: 64 << 20))
        defer { env.close() }
        let db = try env.openDatabase(LedgerKeys.events, create: false)
        var last: (key: [UInt8], value: [UInt8])?
        try env.read { txn in
            try txn.forEach(in: db) { key, value in
                // type 8 (jury.scored), and signed: its payload ends in 64 signature bytes.
                if value[1] == 8 && value.count > 29 + 64 + 40 { last = (Array(key), Array(value)) }
                return true
            }
        }
        guard var (key, value) = last else { throw DaemonTestError("no signed score in the ledger") }
        value[value.count - 10] ^= 0x01
        try env.write { txn in try txn.put(key, value, in: db) }
        return key.reduce(0) { $0 << 8 | UInt64($1) }
    }
}
