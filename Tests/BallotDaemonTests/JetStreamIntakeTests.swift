import Testing
import Foundation
import BallotNATS
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The real `ballotd` taking votes from a real `nats-server -js` on loopback (docs/intake.md):
/// front ends' messages in, one outcome per message out, nothing lost or counted twice when
/// either process is killed.
@Suite(.serialized, .timeLimit(.minutes(4))) struct JetStreamIntakeTests {
    struct Setup {
        let nats: NATSServerProcess
        var daemon: DaemonProcess
        var env: [String: String] { ["BALLOTD_SOCKET": daemon.socketPath] }
        func ctl(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) { try runTool("ballotctl", args, environment: env) }
        func json(_ args: [String]) throws -> [String: Any] {
            let r = try ctl(["--json"] + args)
            return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? ["status": r.status, "stderr": r.stderr]
        }
    }

    /// `environment` adds to, or overrides, the intake's settings.
    static func startDaemon(_ dir: TemporaryDirectory, nats: NATSServerProcess, environment: [String: String] = [:]) throws -> DaemonProcess {
        // A killed daemon's batch in flight comes back once JetStream's ack wait has passed: 2 s here.
        try DaemonProcess(directory: dir, arguments: ["--log-level", "info"],
                          environment: ["BALLOTD_INTAKE_NATS_URL": nats.url, "BALLOTD_INTAKE_ACK_WAIT": "2"].merging(environment) { $1 })
    }

    func start(environment: [String: String] = [:]) throws -> Setup {
        let nats = try NATSServerProcess()
        let s = Setup(nats: nats, daemon: try Self.startDaemon(TemporaryDirectory("intake"), nats: nats, environment: environment))
        #expect(try s.ctl(["election", "define", Fixtures.electionFile("imdi-2022")]).status == 0)
        return s
    }

    /// Reads the outcome stream from the start until `count` outcomes are in (or `seconds` pass).
    final class OutcomeReader {
        let subscription: PullSubscription
        var documents: [[String: Any]] = []

        init(_ url: String, name: String = "test-reader") throws {
            let js = try NATSConnection(url: url, name: name, waitForServer: false).jetStream()
            // ballotd makes the stream; wait for it.
            var made: PullSubscription?
            for _ in 0..<200 where made == nil {
                made = try? js.pullSubscribe(stream: "BALLOT_OUTCOMES", subject: "ballot.outcomes.>", durable: name, ackWaitSeconds: 30, maxAckPending: 1 << 20)
                if made == nil { usleep(50_000) }
            }
            subscription = try #require(made)
        }

        func read(until count: Int, seconds: Double) -> [[String: Any]] {
            let deadline = Date().addingTimeInterval(seconds)
            while documents.count < count && Date() < deadline {
                for m in (try? subscription.fetch(batch: 4096, timeoutMilliseconds: 200)) ?? [] {
                    if let d = try? JSONSerialization.jsonObject(with: Data(m.data)) as? [String: Any] { documents.append(d) }
                    try? m.ack()
                }
            }
            return documents
        }
    }

    func generate(_ s: Setup, rows: Int, seed: Int, duplicates: Double = 0.02, malformed: Double = 0.01) throws -> (String, [String: Any]) {
        let file = s.daemon.directory.sub("votes-\(seed).ndjson")
        let expect = s.daemon.directory.sub("votes-\(seed).expect.json")
        let r = try s.ctl(["generate", "--election-file", Fixtures.electionFile("imdi-2022"), "--rows", "\(rows)", "--seed", "\(seed)",
                           "--duplicates", "\(duplicates)", "--malformed", "\(malformed)", "--format", "ndjson", "--out", file, "--expect", expect])
        #expect(r.status == 0, "\(r.stderr)")
        return (file, try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: expect))) as! [String: Any])
    }

    func votes(_ s: Setup) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for n in try s.json(["tally", "imdi-2022"])["nominees"] as? [[String: Any]] ?? [] where (n["votes"] as? Int ?? 0) > 0 {
            out[n["nominee"] as! String] = n["votes"] as? Int
        }
        return out
    }

    @Test func everyPublishedVoteIsDecidedOnceAndItsOutcomePublished() throws {
        var s = try start()
        let reader = try OutcomeReader(s.nats.url)
        let (file, expected) = try generate(s, rows: 3000, seed: 21)
        let published = try s.ctl(["publish", file, "--nats", s.nats.url])
        #expect(published.status == 0, "\(published.stderr)")
        #expect(published.stdout.contains("published 3000 votes"))

        let outcomes = reader.read(until: 3000, seconds: 60)
        #expect(outcomes.count == 3000)
        #expect(Set(outcomes.compactMap { $0["stream_seq"] as? Int }).count == 3000, "one outcome per message")
        let accepted = outcomes.filter { $0["outcome"] as? String == "accepted" }
        #expect(accepted.count == expected["accepted"] as? Int)
        #expect(Set(accepted.compactMap { $0["seq"] as? Int }).count == accepted.count, "each accepted vote is its own event")
        #expect(accepted.allSatisfy { ($0["leaf_hash"] as? String)?.count == 64 })
        var refused: [String: Int] = [:]
        for o in outcomes where o["outcome"] as? String == "refused" { refused[o["code"] as! String, default: 0] += 1 }
        #expect(refused == expected["refused"] as? [String: Int])
        #expect(try votes(s) == expected["votes"] as? [String: Int])
        // An accepted outcome names the vote's event: its seq holds that vote.
        let first = try #require(accepted.first)
        let event = try #require((try s.json(["events", "--from", "\(first["seq"] as! Int)", "--limit", "1"])["events"] as? [[String: Any]])?.first)
        #expect(event["type"] as? String == "vote.cast")
        #expect(event["idempotency_key"] as? String == first["vote_id"] as? String)
        #expect(event["leaf_hash"] as? String == first["leaf_hash"] as? String)

        // Restarted, the daemon takes up where it was; the same file published again is dropped
        // by JetStream (the vote_ids are its message ids) and decides nothing new.
        #expect(s.daemon.terminate() == 0)
        s.daemon = try Self.startDaemon(s.daemon.directory, nats: s.nats)
        #expect(try s.ctl(["publish", file, "--nats", s.nats.url]).status == 0)
        #expect(reader.read(until: 3001, seconds: 3).count == 3000)
        #expect(try votes(s) == expected["votes"] as? [String: Int])
        #expect(s.daemon.log.contains("intake: taking votes from JetStream"))
        #expect(s.daemon.terminate() == 0)
    }

    @Test func aMessageThatIsNotOneGoodVoteIsRefusedByNameAndWritesNothing() throws {
        let s = try start()
        let reader = try OutcomeReader(s.nats.url)
        let size = try s.json(["status"])["ledger_size"] as? Int
        // A list of servers, the first of which is not there: the client finds the other.
        let js = try NATSConnection(url: "nats://127.0.0.1:1, \(s.nats.url)", name: "test-front-end", waitForServer: false).jetStream()
        func row(_ id: String) -> [UInt8] {
            Array(#"{"vote_id":"\#(id)","voter":"x@example.no","nominee":"kinn","cast_at":"2023-11-03T10:00:00Z"}"#.utf8)
        }
        try js.publish(subject: "ballot.votes.imdi-2022", data: row("m-1"), messageID: "")
        try js.publish(subject: "ballot.votes.imdi-2022", data: row("m-2"), messageID: "m-22")
        try js.publish(subject: "ballot.votes.imdi-2022", data: row("m-3") + [10] + row("m-4"), messageID: "m-3")
        try js.publish(subject: "ballot.votes.no-such-election", data: row("m-5"), messageID: "m-5")
        try js.publish(subject: "ballot.votes.Not_An_Id", data: row("m-6"), messageID: "m-6")
        try js.publish(subject: "ballot.votes.imdi-2022", data: Array("{\"vote_id\":\"m-7\"".utf8), messageID: "m-7")
        let outcomes = reader.read(until: 6, seconds: 30)
        let byVote = Dictionary(outcomes.map { ($0["vote_id"] as? String ?? "", $0) }) { a, _ in a }
        func refusal(_ id: String) -> (String, String)? {
            guard let o = byVote[id], o["outcome"] as? String == "refused" else { return nil }
            return (o["code"] as? String ?? "", o["message"] as? String ?? "")
        }
        #expect(refusal("m-1")?.0 == "bad_request" && refusal("m-1")?.1.contains("Nats-Msg-Id") == true)
        #expect(refusal("m-22")?.0 == "bad_request" && refusal("m-22")?.1.contains("not the row's vote_id 'm-2'") == true)
        #expect(refusal("m-3")?.0 == "bad_request" && refusal("m-3")?.1.contains("more than one line") == true)
        #expect(refusal("m-5")?.0 == "unknown_election")
        #expect(refusal("m-6")?.0 == "wrong_election")
        #expect(refusal("m-7")?.0 == "bad_json")
        #expect(outcomes.count == 6)
        #expect(try s.json(["status"])["ledger_size"] as? Int == size, "nothing was written")
        #expect(s.daemon.terminate() == 0)
    }

    /// A vote JetStream stores a second time (published again after its duplicate window, as a
    /// front end's retry after a nats-server restart is) is one event: its second message gets
    /// the same decision, the same event, `already_present` (docs/intake.md, "Limits"). A vote
    /// the ledger took by another road (an import) gets its `already_present` outcome.
    @Test func aVoteStoredTwiceIsOneEventWithTheSameDecisionTwice() throws {
        let s = try start(environment: ["BALLOTD_INTAKE_ACK_WAIT": "1", "BALLOTD_INTAKE_DUPLICATE_WINDOW": "4"])
        let dir = s.daemon.directory
        let reader = try OutcomeReader(s.nats.url)
        func row(_ id: String, _ voter: String) -> [UInt8] {
            Array(#"{"vote_id":"\#(id)","voter":"\#(voter)","nominee":"kinn","cast_at":"2022-11-03T10:00:00Z"}"#.utf8)
        }
        let imported = dir.sub("imported.ndjson")
        try Data(row("t-imported", "i@example.no") + [10]).write(to: URL(fileURLWithPath: imported))
        #expect(try s.ctl(["import", "--election", "imdi-2022", "--format", "ndjson", imported]).status == 0)

        let js = try NATSConnection(url: s.nats.url, name: "test-front-end", waitForServer: false).jetStream()
        #expect(try js.publish(subject: "ballot.votes.imdi-2022", data: row("t-1", "a@example.no"), messageID: "t-1").duplicate == false)
        let first = reader.read(until: 1, seconds: 30)
        #expect(first.count == 1 && first.first?["outcome"] as? String == "accepted")
        sleep(5)   // past the duplicate window: JetStream stores the same message id again
        #expect(try js.publish(subject: "ballot.votes.imdi-2022", data: row("t-1", "a@example.no"), messageID: "t-1").duplicate == false)
        try js.publish(subject: "ballot.votes.imdi-2022", data: row("t-imported", "i@example.no"), messageID: "t-imported")
        try js.publish(subject: "ballot.votes.imdi-2022", data: row("t-2", "b@example.no"), messageID: "t-2")
        let outcomes = reader.read(until: 4, seconds: 30)
        let t2 = outcomes.filter { $0["vote_id"] as? String == "t-2" }
        #expect(t2.count == 1 && t2.first?["outcome"] as? String == "accepted")
        let t1 = outcomes.filter { $0["vote_id"] as? String == "t-1" }
        #expect(t1.count == 2 && Set(t1.compactMap { $0["stream_seq"] as? Int }).count == 2, "one outcome per message")
        #expect(Set(t1.compactMap { $0["seq"] as? Int }).count == 1 && t1.allSatisfy { $0["outcome"] as? String == "accepted" })
        #expect(t1.filter { $0["already_present"] as? Bool == true }.count == 1)
        #expect(try votes(s) == ["kinn": 3], "t-imported, t-1 and t-2, each once")
        let byImport = outcomes.filter { $0["vote_id"] as? String == "t-imported" }
        #expect(byImport.count == 1 && byImport.first?["already_present"] as? Bool == true)
        #expect(s.daemon.terminate() == 0)
    }

    /// A nats-server started again on an empty store (its disk replaced, say) has neither the
    /// streams nor the consumer: the intake makes them again and takes the votes published since.
    @Test func aServerStartedOnAnEmptyStoreIsSetUpAgain() throws {
        let s = try start()
        let (file, _) = try generate(s, rows: 200, seed: 41, duplicates: 0, malformed: 0)
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
        let (first, second) = (s.daemon.directory.sub("first.ndjson"), s.daemon.directory.sub("second.ndjson"))
        try lines.prefix(100).map { $0 + "\n" }.joined().write(toFile: first, atomically: true, encoding: .utf8)
        try lines.dropFirst(100).map { $0 + "\n" }.joined().write(toFile: second, atomically: true, encoding: .utf8)
        #expect(try s.ctl(["publish", first, "--nats", s.nats.url]).status == 0)
        #expect(try OutcomeReader(s.nats.url).read(until: 100, seconds: 30).count == 100)
        s.nats.stop()
        try FileManager.default.removeItem(atPath: s.nats.directory.sub("store"))
        try s.nats.start()
        // The streams come back once the intake has set them up again.
        var published = try s.ctl(["publish", second, "--nats", s.nats.url, "--timeout", "2"])
        for _ in 0..<15 where published.status != 0 {
            published = try s.ctl(["publish", second, "--nats", s.nats.url, "--timeout", "2"])
        }
        #expect(published.status == 0, "\(published.stderr)")
        #expect(try OutcomeReader(s.nats.url, name: "after-wipe").read(until: 100, seconds: 30).count == 100)
        #expect(try votes(s).values.reduce(0, +) == 200)
        #expect(s.daemon.terminate() == 0)
    }

    /// Issue 21's fault test, short: 8 front ends publish while ballotd and, separately,
    /// nats-server are killed (SIGKILL) at random moments. Once both run again, every vote
    /// JetStream acknowledged to a publisher has exactly one outcome, and the ledger holds each
    /// accepted vote once. `scripts/crash-test --intake` is the long run.
    @Test func killedDaemonsAndServersLoseNoVoteAndDecideNoneTwice() throws {
        var s = try start()
        let dir = s.daemon.directory
        let (whole, expected) = try generate(s, rows: 16_000, seed: 31)
        // Eight front ends, each with every eighth row.
        let lines = try String(contentsOfFile: whole, encoding: .utf8).split(separator: "\n")
        var publishers: [Process] = []
        for p in 0..<8 {
            let part = dir.sub("front-end-\(p).ndjson")
            try lines.enumerated().filter { $0.offset % 8 == p }.map { $0.element + "\n" }.joined().write(toFile: part, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: DaemonProcess.binaryDirectory + "/ballotctl")
            process.arguments = ["publish", part, "--nats", s.nats.url, "--published", dir.sub("published-\(p)"), "--timeout", "60", "--rate", "400", "--quiet"]
            FileManager.default.createFile(atPath: dir.sub("publisher-\(p).log"), contents: nil)
            process.standardError = FileHandle(forWritingAtPath: dir.sub("publisher-\(p).log"))
            try process.run()
            publishers.append(process)
        }
        var random = SplitMix64(seed: 31)
        var killsWhilePublishing = 0
        for round in 0..<4 {
            usleep(UInt32(100_000 + random.next() % 400_000))
            if publishers.contains(where: \.isRunning) { killsWhilePublishing += 1 }
            if round == 2 {
                s.nats.kill()
                usleep(UInt32(random.next() % 300_000))
                try s.nats.start()
            } else {
                s.daemon.kill()
                s.daemon = try Self.startDaemon(dir, nats: s.nats)
            }
        }
        for p in publishers { p.waitUntilExit() }
        // Paced to publish for about 5 s; a slow machine's restarts may push the last kills past it.
        #expect(killsWhilePublishing >= 2, "the kills came while the front ends were publishing")
        for (p, process) in publishers.enumerated() where process.terminationStatus != 0 {
            Issue.record("front end \(p) exited \(process.terminationStatus): \((try? String(contentsOfFile: dir.sub("publisher-\(p).log"), encoding: .utf8)) ?? "")")
        }
        var stored = Set<String>()
        for p in 0..<8 { stored.formUnion(try String(contentsOfFile: dir.sub("published-\(p)"), encoding: .utf8).split(separator: "\n").map(String.init)) }
        #expect(stored.count == 16_000, "every row reached JetStream")
        #expect(stored.count == lines.count)

        let outcomes = try OutcomeReader(s.nats.url, name: "fault-reader").read(until: stored.count + 1, seconds: 15)
        var perVote: [String: Int] = [:]
        for o in outcomes { perVote[o["vote_id"] as? String ?? "", default: 0] += 1 }
        let missing = stored.subtracting(perVote.keys)
        #expect(missing.isEmpty, "each stored vote has an outcome; \(missing.count) have none, such as \(Array(missing.prefix(5)))")
        #expect(perVote.values.allSatisfy { $0 == 1 }, "and only one: \(perVote.filter { $0.value > 1 }.prefix(5))")
        let accepted = outcomes.filter { $0["outcome"] as? String == "accepted" }
        #expect(accepted.count == expected["accepted"] as? Int)
        print("intake fault test: \(outcomes.count) outcomes, \(accepted.filter { $0["already_present"] as? Bool == true }.count) of them for votes a killed daemon had committed")
        #expect(try votes(s).values.reduce(0, +) == accepted.count, "the ledger holds each accepted vote once")
        #expect(s.daemon.terminate() == 0)
        let verify = try runTool("ballot-replay", ["verify", "--ledger", s.daemon.dataDirectory + "/ledger"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
    }
}
