// The JetStream intake's benchmarks (scripts/bench-cluster runs them; docs/intake.md):
//   drain    the baseline: a bare JetStream consumer that fetches and acknowledges `count`
//            messages of the votes stream, deciding nothing.
//   watch    waits for `count` outcomes on the outcome stream, as a front end would.
//   latency  publishes votes at a set rate and times each from its publish to its outcome.
// Each prints one JSON line; the first and last moments are wall-clock seconds, so that the
// script can measure from the moment its publishers started.
import BallotNATS
import Foundation

enum JetStreamBench {
    static let usage = """
        usage: ballot-bench jetstream drain --nats URL --count N [--stream BALLOT_VOTES] [--subject ballot.votes.*]
               ballot-bench jetstream watch --nats URL --count N [--prefix run-id]
               ballot-bench jetstream latency --nats URL --election ID --nominees A,B,... --votes N --rate R [--prefix run-id]
        """

    struct Options {
        var mode = ""
        var nats = "nats://127.0.0.1:4222"
        var count = 0
        var stream = "BALLOT_VOTES"
        var subject = "ballot.votes.*"
        var election = ""
        var nominees: [String] = []
        var votes = 0
        var rate = 1000
        var prefix = ""

        init(_ args: [String]) throws {
            guard let mode = args.first, ["drain", "watch", "latency"].contains(mode) else { throw Arguments.UsageError() }
            self.mode = mode
            var it = args.dropFirst().makeIterator()
            while let a = it.next() {
                switch a {
                case "--nats": nats = it.next() ?? nats
                case "--count": count = try Arguments.number(it.next())
                case "--stream": stream = it.next() ?? stream
                case "--subject": subject = it.next() ?? subject
                case "--election": election = it.next() ?? ""
                case "--nominees": nominees = (it.next() ?? "").split(separator: ",").map(String.init)
                case "--votes": votes = try Arguments.number(it.next())
                case "--rate": rate = try Arguments.number(it.next())
                case "--prefix": prefix = it.next() ?? ""
                default: throw Arguments.UsageError()
                }
            }
        }
    }

    static func run(_ args: [String]) throws {
        let o = try Options(args)
        switch o.mode {
        case "drain": try drain(o)
        case "watch": try watch(o)
        default: try latency(o)
        }
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    static func emit(_ fields: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// The baseline: fetch and acknowledge, in batches as large as ballotd's, nothing more.
    static func drain(_ o: Options) throws {
        let js = try NATSConnection(url: o.nats, name: "bench-drain", waitForServer: false).jetStream()
        // The stream as ballotd makes it (docs/intake.md), in case the publishers come first.
        try js.ensureStream(o.stream, subjects: [o.subject], retention: .workQueue, duplicateWindowSeconds: 600)
        let sub = try js.pullSubscribe(stream: o.stream, subject: o.subject, durable: "bench-drain", ackWaitSeconds: 30, maxAckPending: 1 << 20)
        var taken = 0
        var first: Double?
        while taken < o.count {
            let messages = try sub.fetch(batch: 4096, timeoutMilliseconds: 1000)
            if first == nil, !messages.isEmpty { first = now() }
            for m in messages { try m.ack() }
            taken += messages.count
        }
        try js.connection.flush(timeoutMilliseconds: 10_000)
        emit(["messages": taken, "first": first ?? 0, "last": now()])
    }

    /// Outcomes as a front end reads them: from the outcome stream, until `count` (of this
    /// run's votes, when `prefix` is given) have come.
    static func watch(_ o: Options) throws {
        let js = try NATSConnection(url: o.nats, name: "bench-watch", waitForServer: false).jetStream()
        let sub = try js.pullSubscribe(stream: "BALLOT_OUTCOMES", subject: "ballot.outcomes.>", durable: nil, ackWaitSeconds: 30, maxAckPending: 1 << 20)
        var seen = 0
        var first: Double?
        let marker = Array("\"vote_id\":\"\(o.prefix)".utf8)
        while seen < o.count {
            let messages = try sub.fetch(batch: 4096, timeoutMilliseconds: 1000)
            for m in messages {
                if o.prefix.isEmpty || m.data.firstRange(of: marker) != nil {
                    seen += 1
                    if first == nil { first = now() }
                }
                try m.ack()
            }
        }
        emit(["outcomes": seen, "first": first ?? 0, "last": now()])
    }

    /// Votes published at `rate` a second, each timed from its publish to its outcome.
    static func latency(_ o: Options) throws {
        guard !o.election.isEmpty, !o.nominees.isEmpty, o.votes > 0 else { throw Arguments.UsageError() }
        let connection = try NATSConnection(url: o.nats, name: "bench-latency", waitForServer: false)
        let publisher = try connection.jetStream()
        let reader = try NATSConnection(url: o.nats, name: "bench-latency-reader", waitForServer: false).jetStream()
        let sub = try reader.pullSubscribe(stream: "BALLOT_OUTCOMES", subject: "ballot.outcomes.\(o.election).>", durable: nil,
                                           ackWaitSeconds: 30, maxAckPending: 1 << 20)
        // Written by the sender before each publish, read here once its outcome is in.
        nonisolated(unsafe) let sent = UnsafeMutableBufferPointer<Double>.allocate(capacity: o.votes)
        sent.initialize(repeating: 0)
        defer { sent.deallocate() }
        let castAt = ISO8601DateFormatter().string(from: Date())
        let prefix = o.prefix.isEmpty ? "lat-\(Int(now()))" : o.prefix
        let sender = Thread {
            let start = now()
            var i = 0
            while i < o.votes {
                let due = start + Double(i) / Double(o.rate)
                let wait = due - now()
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
                // A group of the votes due by now, then their acknowledgements.
                let upTo = min(o.votes, Int((now() - start) * Double(o.rate)) + 1)
                while i < upTo {
                    let id = "\(prefix)-\(i)"
                    let row = #"{"vote_id":"\#(id)","voter":"\#(id)@bench.example","nominee":"\#(o.nominees[i % o.nominees.count])","cast_at":"\#(castAt)","channel":"web"}"#
                    sent[i] = now()
                    try? publisher.publishAsync(subject: "ballot.votes.\(o.election)", data: Array(row.utf8), messageID: id)
                    i += 1
                }
                _ = try? publisher.publishAsyncComplete(timeoutMilliseconds: 5000)
            }
        }
        sender.start()
        var latencies: [Double] = []
        latencies.reserveCapacity(o.votes)
        let idMarker = Array("\"vote_id\":\"\(prefix)-".utf8)
        let deadline = now() + Double(o.votes) / Double(o.rate) + 60
        while latencies.count < o.votes && now() < deadline {
            for m in try sub.fetch(batch: 4096, timeoutMilliseconds: 200) {
                let arrived = now()
                let data = m.data
                if let r = data.firstRange(of: idMarker) {
                    var n = 0
                    var k = r.upperBound
                    while k < data.count, data[k] >= 48, data[k] <= 57 { n = n * 10 + Int(data[k] - 48); k += 1 }
                    if n < o.votes, sent[n] > 0 { latencies.append(arrived - sent[n]) }
                }
                try m.ack()
            }
        }
        latencies.sort()
        func quantile(_ q: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * q))] * 1000 }
        emit(["votes": o.votes, "outcomes": latencies.count, "rate": o.rate, "p50_ms": quantile(0.5), "p99_ms": quantile(0.99), "max_ms": quantile(1.0)])
    }
}
