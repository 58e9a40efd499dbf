// Follower lag (issue 21, scripts/bench-cluster): live votes are sent to a primary at a set
// rate, and two subscriptions, one on the primary and one on its follower, note when each event
// arrives. A vote's lag is its arrival on the follower minus its arrival on the primary: what
// following adds to what the primary's own readers see, measured on one clock.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum FollowBench {
    static let usage = """
        usage: ballot-bench follow lag --primary SOCKET --follower SOCKET --election ID --nominees A,B,... --votes N --rate R [--connections C] [--via live|import]
          live: vote.cast on C connections (each waits for its answers in order); import: one import whose rows are sent at the rate
        """

    struct Options {
        var primary = "", follower = "", election = "", nominees: [String] = []
        var votes = 100_000, rate = 50_000, connections = 64
        var viaImport = false
    }

    static func run(_ args: [String]) throws {
        guard args.first == "lag" else { throw Arguments.UsageError() }
        var o = Options()
        var it = args.dropFirst().makeIterator()
        while let flag = it.next() {
            switch flag {
            case "--primary": o.primary = try Arguments.text(it.next())
            case "--follower": o.follower = try Arguments.text(it.next())
            case "--election": o.election = try Arguments.text(it.next())
            case "--nominees": o.nominees = try Arguments.text(it.next()).split(separator: ",").map(String.init)
            case "--votes": o.votes = try Arguments.number(it.next())
            case "--rate": o.rate = try Arguments.number(it.next())
            case "--connections": o.connections = try Arguments.number(it.next())
            case "--via":
                switch it.next() {
                case "live": o.viaImport = false
                case "import": o.viaImport = true
                default: throw Arguments.UsageError()
                }
            default: throw Arguments.UsageError()
            }
        }
        guard !o.primary.isEmpty, !o.follower.isEmpty, !o.election.isEmpty, !o.nominees.isEmpty, o.votes > 0, o.rate > 0, o.connections > 0 else {
            throw Arguments.UsageError()
        }
        try lag(o)
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// A subscription that notes when each `vote.cast` event arrives, by its sequence number.
    final class Watcher: @unchecked Sendable {
        let fd: Int32
        let first: UInt64
        var arrivals: [UInt64]
        var seen = 0
        let done = DispatchSemaphore(value: 0)

        init(socket: String, from first: UInt64, votes: Int) throws {
            fd = try connectUnix(socket)
            self.first = first
            // Room for the votes and the checkpoints among them.
            arrivals = [UInt64](repeating: 0, count: votes * 2 + 1024)
            try sendAll(fd, Array("{\"op\":\"subscribe\",\"from\":\(first)}\n".utf8))
        }

        func watch(votes: Int) {
            Thread { [self] in
                var pending: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                var skippedReply = false
                while seen < votes {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    guard n > 0 else { break }
                    let at = now()
                    pending += buffer[..<n]
                    var start = 0
                    while let newline = pending[start...].firstIndex(of: 0x0A) {
                        let line = pending[start..<newline]
                        start = newline + 1
                        if !skippedReply { skippedReply = true; continue }   // the subscribe's reply
                        guard contains(line, Self.voteType), let seq = number(after: Self.seqKey, in: line), seq >= first else { continue }
                        let i = Int(seq - first)
                        if i < arrivals.count { arrivals[i] = at }
                        seen += 1
                    }
                    pending.removeSubrange(..<start)
                }
                done.signal()
            }.start()
        }

        static let voteType = Array(#""type":"vote.cast""#.utf8)
        static let seqKey = Array(#""seq":"#.utf8)
    }

    static func lag(_ o: Options) throws {
        func size(_ socket: String) throws -> UInt64 {
            let fd = try connectUnix(socket)
            defer { close(fd) }
            try sendAll(fd, Array("{\"op\":\"status\"}\n".utf8))
            let line = try readLine(fd)
            guard let n = number(after: Array(#""ledger_size":"#.utf8), in: line[...]) else { throw Arguments.UsageError() }
            return n
        }
        let first = try size(o.primary) + 1
        let onPrimary = try Watcher(socket: o.primary, from: first, votes: o.votes)
        let onFollower = try Watcher(socket: o.follower, from: first, votes: o.votes)
        onPrimary.watch(votes: o.votes)
        onFollower.watch(votes: o.votes)

        let started = now()
        let failures = Counter()
        if o.viaImport {
            try sendImport(o, started: started, failures: failures)
        } else {
            try sendLive(o, started: started, failures: failures)
        }
        let sentSeconds = Double(now() - started) / 1e9
        let waited = DispatchTime.now() + 60
        _ = onPrimary.done.wait(timeout: waited)
        _ = onFollower.done.wait(timeout: waited)
        var lags: [Double] = []
        for (p, f) in zip(onPrimary.arrivals, onFollower.arrivals) where p > 0 && f > 0 {
            lags.append(f >= p ? Double(f - p) / 1e6 : -Double(p - f) / 1e6)
        }
        lags.sort()
        func quantile(_ q: Double) -> Double { lags.isEmpty ? .nan : lags[min(lags.count - 1, Int(q * Double(lags.count)))] }
        let result: [String: Any] = [
            "votes": o.votes, "rate": o.rate, "via": o.viaImport ? "import" : "live", "achieved_rate": Double(o.votes) / sentSeconds, "failures": failures.value,
            "seen_on_primary": onPrimary.seen, "seen_on_follower": onFollower.seen, "compared": lags.count,
            "lag_p50_ms": quantile(0.5), "lag_p99_ms": quantile(0.99), "lag_max_ms": quantile(1.0),
        ]
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// Live votes: each connection sends its share in ticks of 5 ms, a thread reading its replies.
    static func sendLive(_ o: Options, started: UInt64, failures: Counter) throws {
        let perConnection = (o.votes + o.connections - 1) / o.connections
        let group = DispatchGroup()
        for c in 0..<o.connections {
            let fd = try connectUnix(o.primary)
            let mine = min(perConnection, o.votes - c * perConnection)
            guard mine > 0 else { close(fd); continue }
            group.enter()
            Thread {
                var replies = 0
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                while replies < mine {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    guard n > 0 else { break }
                    for b in buffer[..<n] where b == 0x0A { replies += 1 }
                    if contains(buffer[..<n], Array(#""ok":false"#.utf8)) { failures.add(1) }
                }
                close(fd)
                group.leave()
            }.start()
            Thread {
                let share = Double(o.rate) / Double(o.connections)   // votes a second on this connection
                var sent = 0
                while sent < mine {
                    let due = min(mine, Int(Double(now() - started) / 1e9 * share) + 1)
                    var lines: [UInt8] = []
                    while sent < due {
                        let i = c * perConnection + sent
                        lines += Array("{\"op\":\"vote.cast\",\"election\":\"\(o.election)\",\"nominee\":\"\(o.nominees[i % o.nominees.count])\",\"voter\":\"lag-\(started)-\(i)@bench\"}\n".utf8)
                        sent += 1
                    }
                    if !lines.isEmpty { try? sendAll(fd, lines) }
                    usleep(5_000)
                }
            }.start()
        }
        group.wait()
    }

    /// One import whose rows (NDJSON) are sent at the rate, as a gateway streams its votes; the
    /// daemon commits them in batches as they arrive.
    static func sendImport(_ o: Options, started: UInt64, failures: Counter) throws {
        let castAt = Date(timeIntervalSinceNow: -60).ISO8601Format()
        let rows = (0..<o.votes).map { i in
            Array("{\"vote_id\":\"lag-\(started)-\(i)\",\"election\":\"\(o.election)\",\"nominee\":\"\(o.nominees[i % o.nominees.count])\",\"voter\":\"lag-\(started)-\(i)@bench\",\"cast_at\":\"\(castAt)\"}\n".utf8)
        }
        let size = rows.reduce(0) { $0 + $1.count }
        let fd = try connectUnix(o.primary)
        defer { close(fd) }
        try sendAll(fd, Array("{\"op\":\"import\",\"file\":\"lag.ndjson\",\"format\":\"ndjson\",\"size\":\(size),\"election\":\"\(o.election)\"}\n".utf8))
        let goAhead = try readLine(fd)
        guard contains(goAhead[...], Array(#""ok":true"#.utf8)) else { throw Arguments.UsageError() }
        let done = DispatchSemaphore(value: 0)
        Thread {
            // Interim lines (refusals, progress), then the reply.
            while let line = try? readLine(fd) {
                if contains(line[...], Array(#""refused":{"line""#.utf8)) { failures.add(1) }
                if contains(line[...], Array(#""ok":"#.utf8)) { break }
            }
            done.signal()
        }.start()
        let begin = now()
        var sent = 0
        while sent < rows.count {
            let due = min(rows.count, Int(Double(now() - begin) / 1e9 * Double(o.rate)) + 1)
            var bytes: [UInt8] = []
            while sent < due {
                bytes += rows[sent]
                sent += 1
            }
            if !bytes.isEmpty { try sendAll(fd, bytes) }
            usleep(5_000)
        }
        done.wait()
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func add(_ n: Int) { lock.withLock { count += n } }
        var value: Int { lock.withLock { count } }
    }
}

// Small socket helpers.

/// A connected Unix socket (shared with `SocketLoad`).
func connectUnix(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let ok = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard fd >= 0, ok == 0 else { throw Arguments.UsageError() }
    return fd
}

private func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n > 0 else { throw Arguments.UsageError() }
        offset += n
    }
}

private func readLine(_ fd: Int32) throws -> [UInt8] {
    var line: [UInt8] = []
    var byte: UInt8 = 0
    while read(fd, &byte, 1) == 1 {
        if byte == 0x0A { return line }
        line.append(byte)
    }
    throw Arguments.UsageError()
}

private func contains<C: Collection>(_ haystack: C, _ needle: [UInt8]) -> Bool where C.Element == UInt8, C.Index == Int {
    guard haystack.count >= needle.count else { return false }
    var i = haystack.startIndex
    while i <= haystack.endIndex - needle.count {
        if haystack[i] == needle[0] && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
        i += 1
    }
    return false
}

/// The decimal number after `key` in `line`.
private func number(after key: [UInt8], in line: ArraySlice<UInt8>) -> UInt64? {
    var i = line.startIndex
    while i <= line.endIndex - key.count {
        if line[i..<(i + key.count)].elementsEqual(key) {
            var j = i + key.count
            var n: UInt64 = 0
            var digits = 0
            while j < line.endIndex, line[j] >= 0x30, line[j] <= 0x39 {
                n = n * 10 + UInt64(line[j] - 0x30)
                j += 1
                digits += 1
            }
            return digits > 0 ? n : nil
        }
        i += 1
    }
    return nil
}
