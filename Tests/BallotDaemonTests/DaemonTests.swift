import Testing
import Foundation
import TestSupport

/// The real `ballotd` binary over its real socket.
@Suite(.serialized, .timeLimit(.minutes(2))) struct DaemonTests {
    /// The 2022 election's data file.
    static var election2022: ElectionSpec { .fixture("imdi-2022") }

    /// An election whose window is open now, so that its standings are sealed.
    static func liveElection(_ id: String, publicStandings: Bool = false) -> ElectionSpec {
        let now = Date()
        let f = ISO8601DateFormatter()
        return ElectionSpec([
            "id": .string(id), "title": .string("Live \(id)"),
            "voting_window": ["opens_at": .string(f.string(from: now.addingTimeInterval(-3600))), "closes_at": .string(f.string(from: now.addingTimeInterval(86_400)))],
            "criteria": [["id": "results", "title": "Results", "weight": 1.0]],
            "public_standings": .bool(publicStandings),
            "nominees": [["id": "kinn", "name": "Kinn", "goal_attainment_direct": 60, "goal_attainment_after_one_year": 60],
                         ["id": "bodo", "name": "Bodø", "goal_attainment_direct": 60, "goal_attainment_after_one_year": 60]],
        ])
    }

    func vote(_ client: BallotClient, _ voter: String, _ nominee: NomineeID = "kinn", election: ElectionID = "imdi-2022",
              castAt: String? = "2022-11-03T10:00:00Z", key: String? = nil) throws -> ReplyLine {
        try client.call(.vote(voter, nominee, election: election, castAt: castAt), idempotencyKey: key)
    }

    @Test func theWholeElectionOverTheSocket() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        let hello = try c.call(raw: ["id": 1, "op": "hello"])
        #expect(hello.id == 1)
        let greeting = try c.result(of: hello, as: HelloResult.self)
        #expect(greeting.role == "admin")
        #expect(greeting.protocolVersion == 1)

        let defined = try c.request(.electionDefine(Self.election2022), as: DefineResult.self)
        #expect(defined.events.count == 6)
        for juror: JurorID in ["jury-a", "jury-b"] {
            #expect(try c.call(.jurorAdd(election: "imdi-2022", juror: juror, name: juror.value, key: nil)).isOK)
        }
        var firstVote: UInt64 = 0
        for i in 0..<20 {
            let r = try c.result(of: vote(c, "voter-\(i)@example.no", i % 3 == 0 ? "bodo" : "kinn"), as: WriteReceipt.self)
            if i == 0 { firstVote = r.seq }
        }
        #expect(try c.call(.voteInvalidate(election: "imdi-2022", vote: firstVote, reason: "test")).isOK)
        for juror: JurorID in ["jury-a", "jury-b"] {
            for nominee: NomineeID in ["bodo", "haugesund", "kinn", "raelingen", "vennesla"] {
                for criterion: CriterionID in ["results", "settlement", "development", "differentiation"] {
                    let r = try c.call(.juryScore(election: "imdi-2022", juror: juror, nominee: nominee, criterion: criterion,
                                                  score: nominee == "kinn" ? 9 : 6, signed: nil))
                    #expect(r.isOK, "\(r)")
                }
            }
        }
        #expect(try c.call(.electionClose("imdi-2022")).isOK)
        #expect(try c.call(.juryClose("imdi-2022")).isOK)
        #expect(try c.call(.resultCertify("imdi-2022", justification: "")).isOK)

        let tally = try c.document(.tally("imdi-2022"))
        #expect(tally["valid_votes"]?.intValue == 19)
        let ranking = try c.document(.ranking("imdi-2022"))
        #expect(ranking["certified"]?["winner"]?.stringValue == "kinn")
        let info = try c.document(.electionGet("imdi-2022"))
        #expect(info["votes_cast"]?.intValue == 20)
        let events = try c.request(.events(from: 1, limit: 3), as: EventsResult.self)
        #expect(events.events.first?["type"]?.stringValue == "election.defined")
        let status = try c.request(.status, as: StatusResult.self)
        #expect(status.ledgerSize > 60)
        #expect(daemon.terminate() == 0)
    }

    @Test func everyRefusalHasItsCode() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        _ = try c.call(.electionDefine(Self.election2022))
        func code(_ op: Op) throws -> ErrorCode? { try c.call(op).errorCode }
        #expect(try c.call(raw: ["op": "vote.launch"]).errorCode == .unknownOp)
        #expect(try c.call(raw: ["op": "vote.cast", "election": "imdi-2022"]).errorCode == .badRequest)
        #expect(try code(.vote("v", election: "nope", castAt: nil)) == .unknownElection)
        #expect(try vote(c, "a@x.no", "oslo").errorCode == .unknownNominee)
        #expect(try code(.nomineeAdd("imdi-2022", Nomination(id: "tonsberg", name: "Tønsberg", goalAttainmentDirect: 45,
                                                               goalAttainmentAfterOneYear: 70))) == .notEligible)
        #expect(try vote(c, "b@x.no").isOK)
        #expect(try vote(c, "b@x.no", "bodo").errorCode == .duplicateVote)
        #expect(try vote(c, "c@x.no", castAt: "2022-10-01T00:00:00Z").errorCode == .outsideWindow)
        #expect(try vote(c, "d@x.no", key: "row-1").isOK)
        #expect(try vote(c, "d@x.no", key: "row-1").result?["repeated"]?.boolValue == true)
        #expect(try vote(c, "e@x.no", key: "row-1").errorCode == .conflict)
        _ = try c.call(.jurorAdd(election: "imdi-2022", juror: "jury-a", name: "A", key: nil))
        #expect(try code(.juryScore(election: "imdi-2022", juror: "jury-a", nominee: "kinn", criterion: "results", score: 11, signed: nil)) == .scoreOutOfRange)
        _ = try c.call(.electionDefine(Self.liveElection("live")))
        #expect(try code(.tally("live")) == .sealed)
        #expect(try code(.ranking("live")) == .sealed)
        // Turnout stays visible while the standings are sealed.
        #expect(try vote(c, "f@x.no", election: "live", castAt: nil).isOK)
        #expect(try c.document(.electionGet("live"))["votes_cast"]?.intValue == 1)
        _ = try c.call(.electionDefine(Self.liveElection("open-book", publicStandings: true)))
        #expect(try c.call(.tally("open-book")).isOK)
        // Opening explicitly is allowed before any vote, and only once.
        #expect(try c.call(.electionOpen("open-book")).isOK)
        #expect(try code(.electionOpen("open-book")) == .votingOpen)
        // Certified: sealed for good.
        _ = try c.call(.jurorAdd(election: "live", juror: "j", name: "J", key: nil))
        for n: NomineeID in ["kinn", "bodo"] {
            _ = try c.call(.juryScore(election: "live", juror: "j", nominee: n, criterion: "results", score: 5, signed: nil))
        }
        _ = try c.call(.electionClose("live"))
        _ = try c.call(.juryClose("live"))
        #expect(try c.call(.resultCertify("live", justification: "")).isOK)
        #expect(try vote(c, "g@x.no", election: "live", castAt: nil).errorCode == .electionSealed)
    }

    @Test func badLinesGetAnErrorAndTheConnectionGoesOn() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        try c.send("this is not json")
        #expect(try c.readReply()?.errorCode == .badRequest)
        try c.send("[1, 2, 3]")
        #expect(try c.readReply()?.errorCode == .badRequest)
        try c.send(#"{"id": 4}"#)
        #expect(try c.readReply()?.id == 4)
        try c.send(raw: [0x7B, 0x22, 0x6F, 0x70, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D, 0x0A])   // invalid UTF-8
        #expect(try c.readReply()?.errorCode == .badRequest)
        try c.send(raw: Array(repeating: UInt8(ascii: "x"), count: (1 << 20) + 10) + [0x0A])          // over 1 MiB
        let tooLong = try c.readReply()
        #expect(tooLong?.errorCode == .badRequest)
        #expect(tooLong?.refusal?.message.contains("at most 1048576") == true)
        #expect(try c.call(raw: ["id": 9, "op": "hello"]).isOK)
        // A client that sends half a line and leaves does not disturb anyone else.
        let half = try BallotClient(socketPath: daemon.socketPath)
        try half.send(raw: Array(#"{"op": "hel"#.utf8))
        #expect(try BallotClient(socketPath: daemon.socketPath).call(.status).isOK)
        #expect(daemon.terminate() == 0)
    }

    @Test func rolesComeFromThePeersUID() throws {
        let observer = try DaemonProcess(arguments: ["--observer-uid", "\(getuid())"])
        let o = try BallotClient(socketPath: observer.socketPath)
        #expect(try o.request(.hello, as: HelloResult.self).role == "observer")
        #expect(try o.call(.electionDefine(Self.election2022)).errorCode == .forbidden)
        #expect(try vote(o, "x@y.no").errorCode == .forbidden)
        #expect(try o.call(.status).isOK)
        observer.terminate()

        // The election is defined by the daemon's own uid first, then the importer may vote.
        let importerDir = TemporaryDirectory("ballotd")
        let setUp = try DaemonProcess(directory: importerDir)
        _ = try BallotClient(socketPath: setUp.socketPath).call(.electionDefine(Self.election2022))
        setUp.terminate()
        let importer = try DaemonProcess(directory: importerDir, arguments: ["--importer-uid", "\(getuid())"])
        let i = try BallotClient(socketPath: importer.socketPath)
        #expect(try i.request(.hello, as: HelloResult.self).role == "importer")
        #expect(try vote(i, "imported@y.no").isOK)
        #expect(try i.call(.voteInvalidate(election: "imdi-2022", vote: 7, reason: "x")).errorCode == .forbidden)
        #expect(try i.call(.juryScore(election: "imdi-2022", juror: "j", nominee: "kinn", criterion: "results", score: 5, signed: nil)).errorCode == .forbidden)
        #expect(try i.call(.tally("imdi-2022")).isOK)
        let actor = try i.request(.events(from: 7, limit: 1), as: EventsResult.self).events.first?["actor"]
        #expect(actor?["role"]?.stringValue == "importer")
        importer.terminate()

        let juror = try DaemonProcess(arguments: ["--juror", "\(getuid())=jury-a"])
        let j = try BallotClient(socketPath: juror.socketPath)
        #expect(try j.request(.hello, as: HelloResult.self).role == "juror")
        #expect(try j.call(.electionDefine(Self.election2022)).errorCode == .forbidden)
        #expect(try vote(j, "x@y.no").errorCode == .forbidden)
        let asOther = try j.call(.juryScore(election: "imdi-2022", juror: "jury-b", nominee: "kinn", criterion: "results", score: 5, signed: nil))
        #expect(asOther.errorCode == .forbidden)
        // Scoring as itself reaches the ledger (which knows no such election here).
        let asSelf = try j.call(.juryScore(election: "imdi-2022", juror: nil, nominee: "kinn", criterion: "results", score: 5, signed: nil))
        #expect(asSelf.errorCode == .unknownElection)
        juror.terminate()
    }

    @Test func aPeerWithNoRoleMayOnlySayHello() throws {
        // Needs root to act as another user, and a Python that user can run.
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { return }
        let daemon = try DaemonProcess(arguments: ["--socket-mode", "0666"])
        let script = """
        import socket, json, sys
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
        for op in ["hello", "status"]:
            f.write((json.dumps({"op": op}) + "\\n").encode()); f.flush(); print(f.readline().decode().strip())
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script, daemon.socketPath]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        p.waitUntilExit()
        let lines = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.contains("\"role\":null") == true)
        #expect(lines.last?.contains("\"forbidden\"") == true)
        daemon.terminate()
    }

    @Test func acknowledgedWritesSurviveAGracefulShutdown() throws {
        let dir = TemporaryDirectory("ballotd")
        var daemon = try DaemonProcess(directory: dir)
        var c = try BallotClient(socketPath: daemon.socketPath)
        _ = try c.call(.electionDefine(Self.election2022))
        var acked = 0
        for i in 0..<50 where try vote(c, "v\(i)@x.no").isOK { acked += 1 }
        #expect(daemon.terminate() == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
        #expect(daemon.log.contains("stopped"))

        daemon = try DaemonProcess(directory: dir)
        c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.document(.electionGet("imdi-2022"))["votes_cast"]?.intValue == Int64(acked))
        daemon.terminate()
    }

    @Test func oneDaemonPerDataDirectoryAndSocket() throws {
        let dir = TemporaryDirectory("ballotd")
        let first = try DaemonProcess(directory: dir)
        let second = try DaemonProcess.runToExit(
            ["--data-dir", first.dataDirectory, "--socket", dir.sub("other.sock"), "--secret-file", dir.sub("secret")], log: dir.sub("second.log"))
        #expect(second.status == 1)
        #expect(second.output.contains("another ballotd (pid \(first.process.processIdentifier))"))

        let other = TemporaryDirectory("ballotd")
        let third = try DaemonProcess.runToExit(
            ["--data-dir", other.sub("data"), "--socket", first.socketPath, "--secret-file", dir.sub("secret")], log: other.sub("third.log"))
        #expect(third.status == 1)
        #expect(third.output.contains("live daemon"))
        #expect(try BallotClient(socketPath: first.socketPath).call(.hello).isOK)
        first.terminate()
    }

    @Test func aCrashLeavesASocketFileThatARestartTakesOver() throws {
        let dir = TemporaryDirectory("ballotd")
        let crashed = try DaemonProcess(directory: dir)
        let c = try BallotClient(socketPath: crashed.socketPath)
        _ = try c.call(.electionDefine(Self.election2022))
        #expect(try vote(c, "kept@x.no").isOK)
        crashed.kill()
        #expect(FileManager.default.fileExists(atPath: crashed.socketPath))
        let restarted = try DaemonProcess(directory: dir)
        let again = try BallotClient(socketPath: restarted.socketPath)
        #expect(try vote(again, "kept@x.no").errorCode == .duplicateVote)
        restarted.terminate()
    }
}

/// Many clients, and clients that misbehave, do not stop the others.
@Suite(.serialized, .timeLimit(.minutes(3))) struct CrowdTests {
    @Test func aThousandClientsAtOnce() throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        guard limit.rlim_cur >= 1100 else { return }   // this process cannot hold a thousand sockets

        let daemon = try DaemonProcess()
        _ = try BallotClient(socketPath: daemon.socketPath).call(.electionDefine(DaemonTests.election2022))
        let clients = try (0..<1000).map { _ in try BallotClient(socketPath: daemon.socketPath) }
        for (i, c) in clients.enumerated() {
            try c.send(#"{"id": \#(i), "op": "vote.cast", "election": "imdi-2022", "nominee": "kinn", "voter": "crowd-\#(i)@x.no", "cast_at": "2022-11-03T10:00:00Z"}"#)
        }
        var ok = 0
        for (i, c) in clients.enumerated() {
            let reply = try c.readReply()
            if reply?.isOK == true && reply?.id == .int(i) { ok += 1 }
        }
        #expect(ok == 1000)
        #expect(try BallotClient(socketPath: daemon.socketPath).document(.electionGet("imdi-2022"))["votes_cast"]?.intValue == 1000)
        #expect(daemon.terminate() == 0)
    }

    @Test func aClientThatNeverReadsDoesNotStopOthers() throws {
        let daemon = try DaemonProcess()
        let greedy = try BallotClient(socketPath: daemon.socketPath)
        // 20,000 requests and not one reply read: the daemon stops reading from this client
        // once its replies back up, rather than buffering without bound.
        let request = Array(#"{"op":"status"}"#.utf8) + [0x0A]
        let flood = Thread {
            for _ in 0..<20_000 {
                guard (try? greedy.send(raw: request)) != nil else { return }
            }
        }
        flood.start()
        usleep(500_000)
        let other = try BallotClient(socketPath: daemon.socketPath)
        for _ in 0..<20 { #expect(try other.call(.hello).isOK) }
        let rss = Int((try? String(contentsOfFile: "/proc/\(daemon.process.processIdentifier)/status", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("VmRSS:") }?.split(separator: " ")[1] ?? "0") ?? 0
        #expect(rss < 200_000, "ballotd RSS \(rss) kB")
        // Shutdown does not wait for the client that stopped reading.
        let started = Date()
        #expect(daemon.terminate() == 0)
        #expect(Date().timeIntervalSince(started) < 20)
    }

    @Test func aClientThatClosesItsSendingSideStillGetsItsReplies() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        try c.send(#"{"id": 1, "op": "hello"}"#)
        try c.send(#"{"id": 2, "op": "status"}"#)
        c.finishSending()
        #expect(try c.readReply()?.id == 1)
        #expect(try c.readReply()?.id == 2)
        #expect(try c.readReply() == nil)   // then the daemon closes
        daemon.terminate()
    }

    @Test func anIdleHalfLineIsDisconnected() throws {
        let daemon = try DaemonProcess(environment: ["BALLOTD_IDLE_TIMEOUT": "1"])
        let c = try BallotClient(socketPath: daemon.socketPath, timeout: 10)
        try c.send(raw: Array(#"{"op": "hel"#.utf8))
        let started = Date()
        #expect(try c.readReply() == nil)
        #expect(Date().timeIntervalSince(started) < 8)
        daemon.terminate()
    }
}

/// Rules versions over the real socket (issue 17, item 4; issue 18, defect 9): a version-2
/// election takes every form of one identifier, live or imported, for one voter; a version-1
/// election keeps version 1's rule.
@Suite(.serialized, .timeLimit(.minutes(2))) struct RulesVersionDaemonTests {
    @Test func aVersion2ElectionTakesEveryFormOfAVoterForOneVoterAndAVersion1ElectionDoesNot() throws {
        let daemon = try DaemonProcess(arguments: ["--log-level", "warning"])
        let c = try BallotClient(socketPath: daemon.socketPath)
        var v2 = DaemonTests.election2022
        v2.id = "imdi-2026"
        var v1 = DaemonTests.election2022
        v1.rulesVersion = 1
        #expect(try c.call(.electionDefine(v2)).isOK)
        #expect(try c.call(.electionDefine(v1)).isOK)
        #expect(try c.document(.electionGet("imdi-2026"))["rules_version"]?.intValue == 2)
        #expect(try c.document(.electionGet("imdi-2022"))["rules_version"]?.intValue == 1)
        let refused = try c.call(raw: ["op": "election.define", "election": ["id": "x-2030", "rules_version": 9]])
        #expect(refused.errorCode == .badRequest)

        func vote(_ election: ElectionID, _ voter: String) throws -> ErrorCode? {
            let reply = try c.call(.vote(voter, election: election))
            return reply.isOK ? nil : reply.errorCode
        }
        for election: ElectionID in ["imdi-2026", "imdi-2022"] {
            #expect(try vote(election, "40000000") == nil)
            #expect(try vote(election, "bjo\u{0308}rn@example.no") == nil)
        }
        // Version 2: the same people again, in other forms.
        #expect(try vote("imdi-2026", "+47 400 00 000") == .duplicateVote)
        #expect(try vote("imdi-2026", "BJÖRN@example.no") == .duplicateVote)
        // Version 1: other voters.
        #expect(try vote("imdi-2022", "+47 400 00 000") == nil)
        #expect(try vote("imdi-2022", "BJÖRN@example.no") == nil)

        // An import into the version-2 election meets the same rule.
        let body = Array("vote_id,election,voter,nominee,cast_at,channel\nw1,imdi-2026,004740000000,kinn,2022-11-05T12:00:00Z,web\nw2,imdi-2026,ola@example.no,kinn,2022-11-05T12:00:00Z,web\n".utf8)
        let importer = try BallotClient(socketPath: daemon.socketPath)
        #expect(try importer.call(.importFile(ImportRequest(file: "v2.csv", size: UInt64(body.count)))).isOK)
        try importer.send(raw: body)
        var reply: ReplyLine?
        var refusedLines: [Int64] = []
        while let line = try importer.readReply() {
            if case .streamed(let value) = line, case .refused(let row)? = try ImportLine(value) { refusedLines.append(row.line) }
            if line.isReply { reply = line; break }
        }
        #expect(reply?.isOK == true, "\(String(describing: reply))")
        #expect(refusedLines == [2])
        #expect(try reply.map { try importer.result(of: $0, as: ImportSummary.self).accepted } == 1)
        #expect(daemon.terminate() == 0)
    }
}
