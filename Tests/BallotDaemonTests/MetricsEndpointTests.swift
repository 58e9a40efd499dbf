import Testing
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport

/// `metrics_listen`: ballotd's `/metrics` over HTTP, scraped by a real Prometheus, and the
/// Grafana dashboard's queries run against it.
@Suite(.serialized, .timeLimit(.minutes(3))) struct MetricsEndpointTests {
    static let prometheus = "/usr/bin/prometheus"

    @Test func metricsAreServedOverHTTP() throws {
        let port = try freeTCPPort()
        let daemon = try DaemonProcess(arguments: ["--metrics-listen", "127.0.0.1:\(port)"])
        let c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.call(.electionDefine(DaemonTests.liveElection("live", publicStandings: true))).isOK)
        for i in 0..<7 {
            #expect(try c.call(.vote("v\(i)@example.no", "kinn", election: "live", castAt: nil)).isOK)
        }
        #expect(try c.call(.vote("v0@example.no", "kinn", election: "live", castAt: nil))
            .errorCode == .duplicateVote)

        let scrape = try httpGet("http://127.0.0.1:\(port)/metrics")
        #expect(scrape.status == 200)
        #expect(scrape.contentType.hasPrefix("text/plain; version=0.0.4"))
        let samples = Self.samples(scrape.body)
        #expect(samples["ballotd_votes_accepted_total"] == 7)
        #expect(samples["ballotd_refusals_total{code=\"duplicate_vote\"}"] == 1)
        #expect((samples["ballotd_ledger_events"] ?? 0) >= 8)
        #expect((samples["ballotd_sync_duration_seconds_count"] ?? 0) >= 8)
        #expect(samples["ballotd_connections"] == 1)
        // The same text as the socket's `metrics` op.
        #expect(try c.request(.metrics, as: MetricsResult.self).text.contains("ballotd_votes_accepted_total 7"))

        #expect(try httpGet("http://127.0.0.1:\(port)/").status == 404)
        #expect(try httpGet("http://127.0.0.1:\(port)/metrics", method: "POST").status == 405)
        #expect(daemon.terminate() == 0)
    }

    @Test func anAddressInUseStopsTheStartWithItsName() throws {
        let taken = try ListeningSocket()
        let dir = TemporaryDirectory("ballotd-metrics")
        try Data((0..<32).map { UInt8($0) }).write(to: URL(fileURLWithPath: dir.sub("secret")))
        let result = try DaemonProcess.runToExit(["--data-dir", dir.sub("data"), "--socket", dir.sub("s.sock"), "--secret-file", dir.sub("secret"),
                                                  "--metrics-listen", "127.0.0.1:\(taken.port)"], log: dir.sub("out.log"))
        #expect(result.status != 0)
        #expect(result.output.contains("cannot listen for metrics on 127.0.0.1:\(taken.port)"))
        #expect(!FileManager.default.fileExists(atPath: dir.sub("s.sock")))
        let bad = try DaemonProcess.runToExit(["--data-dir", dir.sub("data"), "--metrics-listen", "localhost"], log: dir.sub("bad.log"))
        #expect(bad.status == 64)
        #expect(bad.output.contains("metrics_listen"))
    }

    /// Debian's Prometheus scrapes a real ballotd on loopback; its HTTP API then reports the votes
    /// cast, and accepts every query of config/grafana/ballotledger.json.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: prometheus),
                   "skipped: \(prometheus) is not installed (scripts/setup installs Debian's prometheus package)"))
    func prometheusScrapesTheDaemon() throws {
        let metricsPort = try freeTCPPort()
        let daemon = try DaemonProcess(arguments: ["--metrics-listen", "127.0.0.1:\(metricsPort)"])
        let c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.call(.electionDefine(DaemonTests.liveElection("live", publicStandings: true))).isOK)
        let votes = 23
        for i in 0..<votes {
            let nominee: NomineeID = i % 3 == 0 ? "bodo" : "kinn"
            #expect(try c.call(.vote("v\(i)@example.no", nominee, election: "live", castAt: nil)).isOK)
        }
        #expect(try c.call(.vote("x@example.no", "nobody", election: "live", castAt: nil)).errorCode == .unknownNominee)

        let dir = daemon.directory
        let apiPort = try freeTCPPort()
        try """
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: ballotd
            static_configs:
              - targets: ["127.0.0.1:\(metricsPort)"]
        """.write(toFile: dir.sub("prometheus.yml"), atomically: true, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: Self.prometheus)
        server.arguments = ["--config.file=\(dir.sub("prometheus.yml"))", "--storage.tsdb.path=\(dir.sub("tsdb"))",
                            "--web.listen-address=127.0.0.1:\(apiPort)", "--log.level=warn"]
        let log = dir.sub("prometheus.log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        server.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        server.standardError = server.standardOutput
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }

        // Wait for a scrape that saw every vote.
        let api = "http://127.0.0.1:\(apiPort)/api/v1/query"
        var counted: Double?
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let answer = try? query(api, "ballotd_votes_accepted_total{job=\"ballotd\"}"), let value = answer.values.first {
                counted = value
                if value == Double(votes) { break }
            }
            usleep(250_000)
        }
        #expect(counted == Double(votes), "Prometheus's log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        #expect(try query(api, "ballotd_refusals_total{code=\"unknown_nominee\"}").values == [1])
        #expect(try query(api, "up{job=\"ballotd\"}").values == [1])

        // Every panel's query is valid PromQL over series the daemon exports.
        let exported = Set(Self.samples(try httpGet("http://127.0.0.1:\(metricsPort)/metrics").body).keys.map { String($0.split(separator: "{")[0]) })
        for expression in try Self.dashboardQueries() {
            let concrete = expression.replacingOccurrences(of: "$__rate_interval", with: "1m").replacingOccurrences(of: "$__range", with: "5m")
            let answer = try query(api, concrete)
            #expect(answer.status == "success", "the dashboard's query \(expression): \(answer.error ?? "")")
            for name in Self.metricNames(in: expression) {
                #expect(exported.contains(name),
                        "the dashboard reads \(name), which ballotd does not export")
            }
        }
        #expect(daemon.terminate() == 0)
    }

    // MARK: Helpers

    /// Every sample of a Prometheus text page, by name and labels as written.
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    static func dashboardQueries() throws -> [String] {
        let url = URL(fileURLWithPath: "\(Fixtures.repositoryRoot)/config/grafana/ballotledger.json")
        let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        let panels = dashboard?["panels"] as? [[String: Any]] ?? []
        #expect(!panels.isEmpty)
        return panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
    }

    /// The `ballotd_…` series a query names.
    static func metricNames(in expression: String) -> [String] {
        expression.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).map(String.init).filter { $0.hasPrefix("ballotd_") }
    }

    struct Answer { var status: String; var values: [Double]; var error: String? }

    func query(_ api: String, _ promql: String) throws -> Answer {
        var components = URLComponents(string: api)!
        components.queryItems = [URLQueryItem(name: "query", value: promql)]
        let reply = try httpGet(components.url!.absoluteString)
        guard let object = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any] else {
            throw DaemonTestError("Prometheus answered \(reply.status): \(reply.body)")
        }
        let results = (object["data"] as? [String: Any])?["result"] as? [[String: Any]] ?? []
        let values = results.compactMap { ($0["value"] as? [Any])?.last as? String }.compactMap(Double.init)
        return Answer(status: object["status"] as? String ?? "", values: values, error: object["error"] as? String)
    }
}

/// A TCP port on loopback that nothing listens on (bound, read, released).
func freeTCPPort() throws -> Int {
    let socket = try ListeningSocket()
    return socket.port
}

/// A socket bound to a free loopback port and listening, until it is released.
final class ListeningSocket {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard fd >= 0, bound == 0, listen(fd, 1) == 0 else {
            if fd >= 0 { close(fd) }
            throw DaemonTestError("cannot bind a loopback port: \(String(cString: strerror(errno)))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }
}

/// One HTTP request, waited for.
func httpGet(_ url: String, method: String = "GET") throws -> (status: Int, contentType: String, body: String) {
    final class Box: @unchecked Sendable { var result: Result<(Int, String, String), any Error>? }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.timeoutInterval = 10
    URLSession.shared.dataTask(with: request) { data, response, error in
        if let error {
            box.result = .failure(error)
        } else {
            let http = response as? HTTPURLResponse
            box.result = .success((http?.statusCode ?? 0, http?.value(forHTTPHeaderField: "Content-Type") ?? "",
                                   String(decoding: data ?? Data(), as: UTF8.self)))
        }
        done.signal()
    }.resume()
    done.wait()
    let (status, type, body) = try box.result!.get()
    return (status, type, body)
}
