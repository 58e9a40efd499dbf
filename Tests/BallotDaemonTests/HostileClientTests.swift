import Testing
import Foundation
import TestSupport
import BallotClient
#if canImport(Glibc)
import Glibc
#endif

/// Issue 18, method 6: hostile clients over the real socket. The daemon must answer everyone
/// else throughout, lose nothing, keep its memory bounded, and stop cleanly afterwards.
/// Whether this process may raise its limit of open files far enough for `count` of them.
func mayOpen(files count: UInt) -> Bool {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    return limit.rlim_max >= count
}

@Suite(.serialized, .timeLimit(.minutes(5)),
       .enabled(if: mayOpen(files: 2300), "skipped: this process may not hold 2,300 files (RLIMIT_NOFILE)"))
struct HostileClientTests {
    /// The sanitizer the tests were built with (`scripts/test --sanitize` says), whose own
    /// memory (AddressSanitizer's quarantine, ThreadSanitizer's shadow) the bound cannot cover.
    static let sanitizer = ProcessInfo.processInfo.environment["BALLOT_SANITIZER"]

    /// Rounds of the hostile mix: `BALLOT_HOSTILE_ROUNDS` sets it for a long run.
    static let rounds = Int(ProcessInfo.processInfo.environment["BALLOT_HOSTILE_ROUNDS"] ?? "") ?? 1

    /// The daemon's peak resident memory so far (VmHWM), in kB.
    static func peakKB(_ daemon: DaemonProcess) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(daemon.process.processIdentifier)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// A connection that goes away at once, now and then with half a request sent first.
    static func connectAndDrop(_ path: String, halfLine: Bool) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0, halfLine else { return }
        _ = #"{"op": "vote.ca"#.withCString { send(fd, $0, 15, Int32(MSG_NOSIGNAL)) }
    }

    @Test func twoThousandConnectionsAndEveryKindOfHostileClientLeaveTheDaemonWhole() throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        #expect(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
        let daemon = try DaemonProcess(arguments: ["--log-level", "warning"])
        let admin = try BallotClient(socketPath: daemon.socketPath)
        #expect(try admin.call(.electionDefine(DaemonTests.election2022)).isOK)
        let startKB = Self.peakKB(daemon)
        var handled = 0

        // 2,000 connections held open at once, each casting one vote. (Written out by hand, so
        // that each connection's id is its own: a reply sent to another connection is caught.)
        let crowd = try (0..<2000).map { _ in try BallotClient(socketPath: daemon.socketPath) }
        for (i, c) in crowd.enumerated() {
            try c.send(#"{"id": \#(i), "op": "vote.cast", "election": "imdi-2022", "nominee": "kinn", "voter": "crowd-\#(i)@x.no", "cast_at": "2022-11-03T10:00:00Z"}"#)
        }
        var acknowledged = 0
        for (i, c) in crowd.enumerated() where try c.readReply()?.id == JSONValue.int(Int64(i)) { acknowledged += 1 }
        #expect(acknowledged == 2000)
        handled += crowd.count

        var random = SplitMix64(seed: 18_6)
        var stalled: [BallotClient] = []
        for _ in 0..<Self.rounds {
            // Random bytes, never read: each line of them is refused, the rest goes on.
            for _ in 0..<50 {
                let c = try BallotClient(socketPath: daemon.socketPath, timeout: 20)
                try c.send(raw: (0..<16_384).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            }
            // Lines larger than the daemon takes (1 MiB), then a good request on the same connection.
            for _ in 0..<4 {
                let c = try BallotClient(socketPath: daemon.socketPath, timeout: 20)
                try c.send(raw: Array(repeating: UInt8(ascii: "x"), count: 3 << 20) + [0x0A])
                #expect(try c.readReply()?.errorCode == .badRequest)
                #expect(try c.call(.hello).isOK)
            }
            // Deep nesting, which a recursive parser would overflow its stack on.
            for depth in [1_000, 100_000, 500_000] {
                let c = try BallotClient(socketPath: daemon.socketPath, timeout: 20)
                try c.send(#"{"op": "hello", "x": "# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}")
                #expect(try c.readReply()?.errorCode == .badRequest)
                try c.send(String(repeating: "{\"a\":", count: depth))
                #expect(try c.readReply()?.errorCode == .badRequest)
                #expect(try c.call(.hello).isOK)
            }
            // Clients that stall mid-line (held open to the end: the idle timeout, which closes
            // them, has its own test in CrowdTests), and a flood that never reads.
            stalled += try (0..<20).map { _ in try BallotClient(socketPath: daemon.socketPath, timeout: 20) }
            for c in stalled.suffix(20) { try c.send(raw: Array(#"{"op": "sta"#.utf8)) }
            let greedy = try BallotClient(socketPath: daemon.socketPath, timeout: 5)
            for _ in 0..<5_000 { guard (try? greedy.send(#"{"op":"status"}"#)) != nil else { break } }
            // Rapid connect and disconnect.
            for i in 0..<3_000 { Self.connectAndDrop(daemon.socketPath, halfLine: i % 3 == 0) }
            handled += 50 + 4 + 3 + 20 + 1 + 3_000
        }

        // Everyone held open is still answered, and nothing was lost or added.
        var answered = 0
        for c in crowd where try c.call(.hello).isOK { answered += 1 }
        #expect(answered == 2000)
        let election = try BallotClient(socketPath: daemon.socketPath).call(.electionGet("imdi-2022"))
        #expect(election.result?["votes_cast"]?.intValue == 2000)
        let peak = Self.peakKB(daemon)
        print("HostileClientTests: \(handled) connections in \(Self.rounds) round(s); ballotd peak RSS \(peak / 1024) MB (\(startKB / 1024) MB at start)")
        if Self.sanitizer == nil { #expect(peak < 256 * 1024, "ballotd's peak RSS was \(peak) kB") }
        #expect(daemon.terminate() == 0)
    }
}

/// Issue 18, method 6, access: a second system user (`nobody`, through `setpriv`) meets every
/// op's role rule as docs/protocol.md states it, and the socket's mode decides who connects.
@Suite(.serialized, .timeLimit(.minutes(5)),
       .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
                "skipped: acting as a second system user needs root and setpriv"))
struct SecondUserAccessTests {
    static let nobody: UInt32 = 65534

    /// One request of every op, each well formed, so that its role is the only thing that can
    /// refuse it (`import` sends a one-row file once it may). The switch is over every op name,
    /// so a new op cannot be left out.
    static var requests: [(op: String, line: String)] {
        let e: ElectionID = "imdi-2022"
        let other = ElectionSpec([
            "id": "other", "title": "Other", "voting_window": ["opens_at": "2022-11-01T00:00:00Z", "closes_at": "2022-11-11T00:00:00Z"],
            "criteria": [["id": "results", "title": "Results", "weight": 1]],
        ])
        return OpName.allCases.flatMap { name -> [(String, Op)] in
            switch name {
            case .hello: [("hello", .hello)]
            case .status: [("status", .status)]
            case .electionDefine: [("election.define", .electionDefine(other))]
            case .electionGet: [("election.get", .electionGet(e))]
            case .electionOpen: [("election.open", .electionOpen(e))]
            case .electionClose: [("election.close", .electionClose(e))]
            case .nomineeAdd: [("nominee.add", .nomineeAdd(e, Nomination(id: "newcomer", name: "Newcomer", goalAttainmentDirect: 60, goalAttainmentAfterOneYear: 60)))]
            case .voteCast: [("vote.cast", .vote("second-user@x.no"))]
            case .voteInvalidate: [("vote.invalidate", .voteInvalidate(election: e, vote: 999, reason: "test"))]
            case .jurorAdd: [("juror.add", .jurorAdd(election: e, juror: "jury-z", name: "Z", key: nil))]
            case .juryScore: [("jury.score", .juryScore(election: e, juror: nil, nominee: "kinn", criterion: "results", score: 5, signed: nil))]
            case .juryClose: [("jury.close", .juryClose(e))]
            case .jury: [("jury", .jury(e))]
            case .resultCertify: [("result.certify", .resultCertify(e, justification: ""))]
            case .resultSign: [("result.sign", .resultSign(election: e, juror: nil, signature: SentSignature(keyID: 1, bytes: Array(repeating: 7, count: 64))))]
            case .tally: [("tally", .tally(e))]
            case .ranking: [("ranking", .ranking(e))]
            case .events: [("events", .events(from: 1, limit: 5))]
            case .subscribe: [("subscribe", .subscribe(from: 1))]
            case .replicate: [("replicate", .replicate(from: 1))]
            case .checkpoint: [("checkpoint", .checkpoint(latest: false)), ("checkpoint latest", .checkpoint(latest: true))]
            case .proof: [("proof", .inclusionProof(seq: 1, size: nil, checkpoint: nil))]
            case .receipt: [("receipt", .receipt(seq: 1, wait: 0))]
            case .backup: [("backup", .backup(directory: "/tmp/ballot-second-user-backup"))]
            case .metrics: [("metrics", .metrics)]
            case .importFile: [("import", .importFile(ImportRequest(file: "one.csv", size: UInt64(Self.importFile.utf8.count))))]
            }
        }.map { ($0.0, String(decoding: $0.1.requestLine(id: 1).dropLast(), as: UTF8.self)) }
    }
    static let importFile = "vote_id,election,voter,nominee,cast_at,channel\nsu-1,imdi-2022,imported-by-second-user@x.no,kinn,2022-11-05T12:00:00Z,web\n"

    /// What each role may do, from docs/protocol.md ("Who may do what"); everything else is `forbidden`.
    static let reads: Set<String> = ["hello", "status", "election.get", "tally", "ranking", "events", "subscribe", "checkpoint latest", "proof", "metrics"]
    static let allowed: [String: Set<String>] = [
        "none": ["hello"],
        "observer": reads,
        "importer": reads.union(["vote.cast", "import", "receipt"]),
        "juror": reads.union(["jury.score", "jury", "result.sign"]),
    ]

    /// Sends each request on a connection of its own as `nobody`; the first line of each reply,
    /// or "connect: ERROR" when the socket refuses the user.
    func asNobody(_ socket: String) throws -> [String] {
        let script = """
        import socket, sys, json
        path, body = sys.argv[1], sys.argv[2].encode()
        for line in sys.stdin.read().splitlines():
            line = line.replace("SIZE", str(len(body)))
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
            except OSError as e:
                print("connect: " + e.__class__.__name__); sys.stdout.flush(); continue
            f = s.makefile("rwb")
            f.write((line + "\\n").encode()); f.flush()
            reply = f.readline().decode().strip()
            if '"send"' in reply:
                f.write(body); f.flush()
                while True:
                    last = f.readline().decode().strip()
                    if not last or '"ok"' in last: break
                reply = last
            print(reply); sys.stdout.flush()
            s.close()
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups", "/usr/bin/python3", "-c", script, socket, Self.importFile]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(Data(Self.requests.map(\.line).joined(separator: "\n").utf8))
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return text.split(separator: "\n").map(String.init)
    }

    @Test(arguments: ["none", "observer", "importer", "juror"])
    func everyOpKeepsItsRoleRule(role: String) throws {
        let dir = TemporaryDirectory("second-user")
        chmod(dir.path, 0o755)
        let setUp = try DaemonProcess(directory: dir, arguments: ["--log-level", "warning"])
        #expect(try BallotClient(socketPath: setUp.socketPath).call(.electionDefine(DaemonTests.election2022)).isOK)
        #expect(setUp.terminate() == 0)
        let roleArguments: [String: [String]] = [
            "none": [], "observer": ["--observer-uid", "\(Self.nobody)"],
            "importer": ["--importer-uid", "\(Self.nobody)"], "juror": ["--juror", "\(Self.nobody)=jury-a"],
        ]
        let daemon = try DaemonProcess(directory: dir, arguments: ["--log-level", "warning", "--socket-mode", "0666"] + roleArguments[role]!)
        let replies = try asNobody(daemon.socketPath)
        #expect(replies.count == Self.requests.count, "\(replies)")
        for ((op, _), reply) in zip(Self.requests, replies) {
            let forbidden = reply.contains(#""code":"forbidden""#)
            if Self.allowed[role]!.contains(op) {
                #expect(!forbidden && !reply.hasPrefix("connect:"), "\(op) as \(role): \(reply)")
            } else {
                #expect(forbidden, "\(op) as \(role) was not refused as forbidden: \(reply)")
            }
        }
        if role == "juror" {
            // As another juror: refused, though scoring as itself is not.
            let asOther = try asNobodyOne(daemon.socketPath, #"{"op":"jury.score","election":"imdi-2022","juror":"jury-b","nominee":"kinn","criterion":"results","score":5}"#)
            #expect(asOther.contains(#""code":"forbidden""#), "\(asOther)")
        }
        #expect(daemon.terminate() == 0)
    }

    func asNobodyOne(_ socket: String, _ line: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups", "/usr/bin/python3", "-c",
                       "import socket,sys\ns=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);f=s.makefile('rwb');f.write((sys.argv[2]+'\\n').encode());f.flush();print(f.readline().decode().strip())",
                       socket, line]
        let output = Pipe()
        p.standardOutput = output
        try p.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return text
    }

    /// The socket's mode is what decides who may connect at all: by default (0660, the daemon's
    /// group) a user outside it cannot, even one the access rules name.
    @Test func theSocketsModeKeepsOutUsersOutsideItsGroup() throws {
        let dir = TemporaryDirectory("second-user")
        chmod(dir.path, 0o755)
        let daemon = try DaemonProcess(directory: dir, arguments: ["--log-level", "warning", "--observer-uid", "\(Self.nobody)"])
        var info = stat()
        #expect(stat(daemon.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o660)
        let reply = try asNobodyOne(daemon.socketPath, #"{"op":"hello"}"#)
        #expect(reply.isEmpty, "nobody connected to a 0660 socket: \(reply)")
        #expect(daemon.terminate() == 0)

        let open = try DaemonProcess(directory: dir, arguments: ["--log-level", "warning", "--observer-uid", "\(Self.nobody)", "--socket-mode", "0666"])
        #expect(stat(open.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o666)
        #expect(try asNobodyOne(open.socketPath, #"{"op":"hello"}"#).contains(#""role":"observer""#))
        #expect(open.terminate() == 0)
    }
}
