// Live votes over one transport (scripts/bench-cluster's `tls` line): C clients, each on a
// `BallotClient` of its own, cast votes one at a time (each waits for its durable reply), over
// the Unix socket or over the TLS listener; the same code either way, so the two rates compare
// the transports.
import BallotClient
import BallotDomain
import BallotProtocol
import Foundation

enum TransportBench {
    static let usage = """
        usage: ballot-bench transport (--socket PATH | --connect tls://HOST:PORT --cert FILE --key FILE --ca FILE) --election ID --nominees A,B,... [--clients 32] [--votes-per-client 500]
        """

    static func run(_ args: [String]) throws {
        var socket: String?, connect: String?, cert = "", key = "", ca = "", election = "", nominees: [String] = []
        var clients = 32, perClient = 500
        var it = args.makeIterator()
        while let flag = it.next() {
            switch flag {
            case "--socket": socket = try Arguments.text(it.next())
            case "--connect": connect = try Arguments.text(it.next())
            case "--cert": cert = try Arguments.text(it.next())
            case "--key": key = try Arguments.text(it.next())
            case "--ca": ca = try Arguments.text(it.next())
            case "--election": election = try Arguments.text(it.next())
            case "--nominees": nominees = try Arguments.text(it.next()).split(separator: ",").map(String.init)
            case "--clients": clients = try Arguments.number(it.next())
            case "--votes-per-client": perClient = try Arguments.number(it.next())
            default: throw Arguments.UsageError()
            }
        }
        guard (socket == nil) != (connect == nil), !election.isEmpty, !nominees.isEmpty else { throw Arguments.UsageError() }
        func client() throws -> BallotClient {
            if let socket { return try BallotClient(socketPath: socket) }
            guard let (host, port) = TLSEndpoint.address(connect ?? "") else { throw Arguments.UsageError() }
            return try BallotClient(tls: TLSEndpoint(host: host, port: port, certificateFile: cert, privateKeyFile: key, caFile: ca))
        }
        // Connected before the clock starts: the rate is of votes, not of handshakes.
        let connections = try (0..<clients).map { _ in try client() }
        let run = UInt64(Date().timeIntervalSince1970 * 1e6)
        let failures = FollowBench.Counter()
        let group = DispatchGroup()
        let started = DispatchTime.now().uptimeNanoseconds
        let (votesEach, electionID, names) = (perClient, try Slug(election, what: "--election"), try nominees.map { try Slug($0, what: "--nominees") })
        for (c, connection) in connections.enumerated() {
            group.enter()
            Thread {
                for i in 0..<votesEach {
                    let vote = Op.voteCast(election: electionID, nominee: names[i % names.count], voter: "transport-\(run)-\(c)-\(i)@bench",
                                           castAt: nil, channel: "")
                    guard let reply = try? connection.call(vote), reply.isOK else {
                        failures.add(1)
                        continue
                    }
                }
                group.leave()
            }.start()
        }
        group.wait()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let votes = clients * perClient
        let result: [String: Any] = ["transport": socket == nil ? "tls" : "unix", "clients": clients, "votes": votes, "failures": failures.value,
                                     "seconds": seconds, "votes_per_second": Double(votes) / seconds]
        print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
    }
}
