import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `ballot-bench socket --socket PATH [--clients 64] [--votes-per-client N] [--readers 8] [--election ID]`
///
/// Load on a running `ballotd`: `clients` connections each send `vote.cast` and wait for the ack
/// before the next; meanwhile `readers` connections ask for `tally` in a loop. Requests are
/// pre-encoded and replies only checked for `"ok":true`, so the load generator costs little of
/// the machine it shares with the daemon. Prints one JSON line: acked votes/s and latency
/// percentiles for both.
enum SocketLoad {
    struct Options {
        var socket = ""
        var clients = 64
        var votesPerClient = 2000
        var readers = 8
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
        let writeLatencies = Latencies()
        let readLatencies = Latencies()
        let failures = Latencies()
        let stopReaders = Flag()
        let start = DispatchTime.now()
        let group = DispatchGroup()
        for requests in writers {
            let connection = try LineSocket(path: o.socket)
            group.enter()
            Thread {
                for request in requests {
                    let t = DispatchTime.now()
                    guard let reply = try? connection.roundTrip(request), reply.contains(#""ok":true"#) else { failures.add(0); continue }
                    writeLatencies.add(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds)
                }
                group.leave()
            }.start()
        }
        let readersDone = DispatchGroup()
        for _ in 0..<o.readers {
            let connection = try LineSocket(path: o.socket)
            readersDone.enter()
            Thread {
                while !stopReaders.isSet {
                    let t = DispatchTime.now()
                    guard let reply = try? connection.roundTrip(tallyRequest), reply.contains(#""ok":true"#) else { failures.add(0); continue }
                    readLatencies.add(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds)
                }
                readersDone.leave()
            }.start()
        }
        group.wait()
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        stopReaders.set()
        readersDone.wait()
        let w = writeLatencies.sorted()
        let r = readLatencies.sorted()
        func ms(_ values: [UInt64], _ p: Double) -> Double {
            values.isEmpty ? 0 : Double(values[min(values.count - 1, Int(Double(values.count) * p))]) / 1e6
        }
        print("{\"impl\":\"ballotd\",\"clients\":\(o.clients),\"readers\":\(o.readers),\"acked_votes\":\(w.count),\"failures\":\(failures.count),\"seconds\":\(elapsed),\"acked_votes_per_second\":\(Double(w.count) / elapsed),\"vote_p50_ms\":\(ms(w, 0.5)),\"vote_p99_ms\":\(ms(w, 0.99)),\"tally_queries\":\(r.count),\"tally_p50_ms\":\(ms(r, 0.5)),\"tally_p99_ms\":\(ms(r, 0.99))}")
    }
}

/// A blocking Unix-socket connection that sends a line and reads one line back.
final class LineSocket: @unchecked Sendable {
    private let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var pending: [UInt8] = []

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
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
        guard ok == 0 else { throw Arguments.UsageError() }
    }

    deinit { close(fd) }

    func roundTrip(_ request: [UInt8]) throws -> String {
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        while true {
            if let newline = pending.firstIndex(of: 0x0A) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeFirst(newline + 1)
                return line
            }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw Arguments.UsageError() }
            pending += buffer[..<n]
        }
    }
}

final class Latencies: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [UInt64] = []
    func add(_ v: UInt64) { lock.withLock { values.append(v) } }
    var count: Int { lock.withLock { values.count } }
    func sorted() -> [UInt64] { lock.withLock { values.sorted() } }
}

final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
