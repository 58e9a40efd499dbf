import CEpoll
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `ballot-bench socket --socket PATH [--clients 64] [--votes-per-client N] [--readers 8] [--reader-interval-ms 0] [--election ID]`
///
/// Load on a running `ballotd`: `clients` connections each send `vote.cast` and wait for the ack
/// before the next; meanwhile `readers` connections ask for `tally` in a loop until the votes are
/// done: back to back by default, or each at most once per `--reader-interval-ms` (a dashboard
/// polling). Every connection is driven from one thread with epoll(7), requests are pre-encoded and
/// replies only checked for `"ok":true` (a byte search), so the load generator costs little of
/// the two cores it shares with the daemon: a thread per client spent most of its time
/// switching threads, and poll(2) over 72 sockets spent its time registering and removing
/// wait-queue entries on every call. Prints one JSON line: acked votes/s and latency
/// percentiles for both.
enum SocketLoad {
    struct Options {
        var socket = ""
        var clients = 64
        var votesPerClient = 2000
        var readers = 8
        var readerIntervalMs = 0.0
        var election = "bench"
        var nominees = ["bodo", "haugesund", "kinn", "raelingen", "vennesla"]
    }

    static func run(_ args: [String]) throws {
        var o = Options()
        var it = args.makeIterator()
        while let a = it.next() {
            switch a {
            case "--socket": o.socket = it.next() ?? ""
            case "--clients": o.clients = Int(it.next() ?? "") ?? o.clients
            case "--votes-per-client": o.votesPerClient = Int(it.next() ?? "") ?? o.votesPerClient
            case "--readers": o.readers = Int(it.next() ?? "") ?? o.readers
            case "--reader-interval-ms": o.readerIntervalMs = Double(it.next() ?? "") ?? o.readerIntervalMs
            case "--election": o.election = it.next() ?? o.election
            default: throw Arguments.UsageError()
            }
        }
        let writers = (0..<o.clients).map { c in
            (0..<o.votesPerClient).map { i in
                Array(#"{"id":\#(i),"op":"vote.cast","election":"\#(o.election)","nominee":"\#(o.nominees[(c + i) % o.nominees.count])","voter":"load-\#(c)-\#(i)@example.no"}"#.utf8) + [0x0A]
            }
        }
        let tallyRequest = Array(#"{"id":1,"op":"tally","election":"\#(o.election)"}"#.utf8) + [0x0A]
        let (writeLatencies, readLatencies, failures, elapsed) = try EpollLoad(
            socket: o.socket, voters: writers, readers: o.readers, readerInterval: UInt64(o.readerIntervalMs * 1e6), tallyRequest: tallyRequest).run()
        let w = writeLatencies.sorted()
        let r = readLatencies.sorted()
        func ms(_ values: [UInt64], _ p: Double) -> Double {
            values.isEmpty ? 0 : Double(values[min(values.count - 1, Int(Double(values.count) * p))]) / 1e6
        }
        print("{\"impl\":\"ballotd\",\"clients\":\(o.clients),\"readers\":\(o.readers),\"reader_interval_ms\":\(o.readerIntervalMs),\"acked_votes\":\(w.count),\"failures\":\(failures),\"seconds\":\(elapsed),\"acked_votes_per_second\":\(Double(w.count) / elapsed),\"vote_p50_ms\":\(ms(w, 0.5)),\"vote_p99_ms\":\(ms(w, 0.99)),\"vote_p999_ms\":\(ms(w, 0.999)),\"tally_queries\":\(r.count),\"tally_p50_ms\":\(ms(r, 0.5)),\"tally_p99_ms\":\(ms(r, 0.99)),\"tally_p999_ms\":\(ms(r, 0.999))}")
    }
}

/// Drives every connection from one thread: each connection has one request outstanding; when its
/// reply line arrives the latency is recorded and the next request is sent at once.
struct EpollLoad {
    let socket: String
    let voters: [[[UInt8]]]
    let readers: Int
    /// Nanoseconds between a reader's requests; 0 sends the next as soon as the reply arrives.
    let readerInterval: UInt64
    let tallyRequest: [UInt8]

    private struct Connection {
        let fd: Int32
        let requests: [[UInt8]]?  // nil: a tally reader, repeating `tallyRequest`
        var next = 0
        var sentAt: UInt64 = 0
        var dueAt: UInt64?  // a paced reader's next send
        var pending: [UInt8] = []
    }

    private static let ok = Array(#""ok":true"#.utf8)

    func run() throws -> (votes: [UInt64], tallies: [UInt64], failures: Int, seconds: Double) {
        var connections = try voters.map { Connection(fd: try connect(socket), requests: $0) }
        connections += try (0..<readers).map { _ in Connection(fd: try connect(socket), requests: nil) }
        let epoll = epoll_create1(0)
        defer {
            for c in connections { close(c.fd) }
            if epoll >= 0 { close(epoll) }
        }
        guard epoll >= 0 else { throw Arguments.UsageError() }
        for i in connections.indices {
            var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: UInt64(i)))
            guard epoll_ctl(epoll, EPOLL_CTL_ADD, connections[i].fd, &event) == 0 else { throw Arguments.UsageError() }
        }
        var votes: [UInt64] = [], tallies: [UInt64] = [], failures = 0
        votes.reserveCapacity(voters.reduce(0) { $0 + $1.count })
        var votersLeft = connections.count - readers
        func send(_ i: Int) {
            let request = connections[i].requests.map { $0[connections[i].next] } ?? tallyRequest
            connections[i].sentAt = DispatchTime.now().uptimeNanoseconds
            let n = request.withUnsafeBytes { write(connections[i].fd, $0.baseAddress, $0.count) }
            precondition(n == request.count, "short write to the daemon")
        }
        let start = DispatchTime.now().uptimeNanoseconds
        for i in connections.indices where connections[i].requests?.isEmpty != true { send(i) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var events = [epoll_event](repeating: epoll_event(), count: connections.count)
        while votersLeft > 0 {
            var timeout: Int32 = 10_000
            if readerInterval > 0, let due = connections.lazy.compactMap(\.dueAt).min() {
                let now = DispatchTime.now().uptimeNanoseconds
                timeout = Int32(((due > now ? due - now : 0) + 999_999) / 1_000_000)  // rounded up: no spinning
                let woke = DispatchTime.now().uptimeNanoseconds
                for i in connections.indices where (connections[i].dueAt ?? .max) <= woke {
                    connections[i].dueAt = nil
                    send(i)
                }
            }
            let ready = epoll_wait(epoll, &events, Int32(events.count), timeout)
            if ready < 0 && errno == EINTR { continue }
            guard ready >= 0 else { throw Arguments.UsageError() }
            // 10 s without a reply, and no paced reader waiting to send: the daemon is stuck.
            guard ready > 0 || connections.contains(where: { $0.dueAt != nil }) else { throw Arguments.UsageError() }
            for e in events.prefix(Int(max(ready, 0))) {
                let i = Int(e.data.u64)
                let n = buffer.withUnsafeMutableBytes { read(connections[i].fd, $0.baseAddress, $0.count) }
                guard n > 0 else { throw Arguments.UsageError() }
                connections[i].pending += buffer[..<n]
                guard let newline = connections[i].pending.firstIndex(of: 0x0A) else { continue }
                let now = DispatchTime.now().uptimeNanoseconds
                let ok = connections[i].pending[..<newline].withUnsafeBufferPointer { line in
                    line.count >= Self.ok.count && (0...(line.count - Self.ok.count)).contains { at in
                        Self.ok.indices.allSatisfy { line[at + $0] == Self.ok[$0] }
                    }
                }
                connections[i].pending.removeSubrange(...newline)
                if !ok { failures += 1 }
                if let requests = connections[i].requests {
                    if ok { votes.append(now - connections[i].sentAt) }
                    connections[i].next += 1
                    if connections[i].next < requests.count { send(i) } else { votersLeft -= 1 }
                } else {
                    if ok { tallies.append(now - connections[i].sentAt) }
                    if readerInterval == 0 { send(i) } else { connections[i].dueAt = connections[i].sentAt + readerInterval }
                }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return (votes, tallies, failures, seconds)
    }
    private func connect(_ path: String) throws -> Int32 { try connectUnix(path) }
}
