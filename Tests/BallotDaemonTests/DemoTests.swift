import Testing
import Foundation
import TestSupport

/// `scripts/demo` end to end, on the binaries already built and a temporary data directory:
/// the story a user sees on a fresh clone must run, and end the same way, every time.
@Suite(.serialized, .timeLimit(.minutes(5))) struct DemoTests {
    /// Runs the demo, its standard output and error in one stream, in the order written.
    func runDemo(data: String) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["\(Fixtures.repositoryRoot)/scripts/demo"]
        p.environment = ProcessInfo.processInfo.environment.merging(
            ["BALLOT_BIN": DaemonProcess.binaryDirectory, "DEMO_DATA": data]) { _, new in new }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// The import summary rows for `file` (ballotctl import's table), as numbers:
    /// rows, accepted, already present, refused.
    func importRows(_ output: String, file: String) -> [[Int]] {
        output.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 6, fields[0] == file else { return nil }
            return fields[1...4].compactMap { Int($0.filter(\.isNumber)) }
        }
    }

    @Test func theDemoRunsEndToEnd() throws {
        let dir = TemporaryDirectory("demo")
        let data = dir.sub("data")
        let (status, output) = try runDemo(data: data)
        #expect(status == 0, "\(output)")
        #expect(!output.split(separator: "\n").contains { $0.hasPrefix("demo: ") }, "the demo reported a failure")

        // The story's steps, and the refusals it means to show.
        #expect(output.contains("ballotd init: made"))
        #expect(output.contains("\(data)/voter-secret  (32 random bytes, mode 0600)"), "\(output)")
        #expect(output.contains("not_eligible: Eksempel"))
        #expect(output.contains("ballotctl: duplicate_vote: this voter has already voted"))
        #expect(output.contains("certified winner: kinn"))
        #expect(output.contains("   stopped cleanly; ledger left in \(data)/ledger"))
        #expect(output.contains("VERIFIED: 3541 events intact"))

        // The 2023 award: signed scores, an unsigned one refused, certified at the jury's quorum.
        #expect(output.contains("ballotctl: juror_signature: the score of juror 'jury-chair' for 'tonsberg' on 'results' is not signed"))
        #expect(output.contains("   48 signed scores recorded"))
        #expect(output.contains("awaits its co-signatures: 1 of 2 (jury-chair)"))
        #expect(output.contains("certified winner: tonsberg\nco-signed by the jurors: jury-chair, jury-research"))
        #expect(output.contains("(result_certified)"))
        let report2023 = try String(contentsOfFile: "\(data)/report-2023.html", encoding: .utf8)
        #expect(report2023.contains("<blockquote id=\"justification\"><p>Juryen mener at årets vinner"))
        #expect(report2023.contains("<li data-juror=\"jury-chair\">") && report2023.contains("<li data-juror=\"jury-research\">"))
        #expect(report2023.components(separatedBy: "data-signed=\"true\"").count == 49)

        // First import: all but the three bad rows; second: nothing new, the same three refused.
        let imports = importRows(output, file: "sms-export.csv")
        #expect(imports == [[3000, 2997, 0, 3], [3000, 0, 2997, 3]], "\(output)")
        #expect(output.components(separatedBy: "refused by reason: duplicate_vote 1, outside_window 1, unknown_nominee 1").count == 3)
        #expect(output.contains("sms-export.csv:701: sms-000700: outside_window"))

        // The rejects file: the export's header and its three bad rows, with line and reason.
        let rejects = try String(contentsOfFile: "\(data)/rejects.csv", encoding: .utf8).split(separator: "\n")
        #expect(rejects.count == 4)
        #expect(rejects.first == "vote_id,election,voter,nominee,cast_at,channel,reject_line,reject_reason,reject_message")
        #expect(rejects.dropFirst().map { $0.split(separator: ",")[0] } == ["sms-000700", "sms-001401", "sms-002102"])
        #expect(rejects.dropFirst().map { $0.split(separator: ",")[6...7].joined(separator: ",") }
                == ["701,outside_window", "1402,unknown_nominee", "2103,duplicate_vote"])
        #expect(output.contains("   sms-001401,imdi-2022,+47 40001401,oslo,"), "the demo prints the rejects file")

        // The report's import provenance lists both imports, from their import.recorded events.
        let html = try String(contentsOfFile: "\(data)/report.html", encoding: .utf8)
        let start = try #require(html.range(of: "<table id=\"imports\">"), "the report has no import table")
        let table = String(html[start.lowerBound...].prefix { $0 != "\n" })
        #expect(table.components(separatedBy: "<td>sms-export.csv</td>").count == 3)
        #expect(table.contains("<td class=\"n\">3000</td><td class=\"n\">2997</td><td class=\"n\">0</td><td>duplicate_vote 1, outside_window 1, unknown_nominee 1</td>"))
        #expect(table.contains("<td class=\"n\">3000</td><td class=\"n\">0</td><td class=\"n\">2997</td>"))
        #expect(output.contains("== The report's import provenance"))
        #expect(output.contains("3000 rows: 0 accepted, 2997 already present"))
    }
}
