import ArgumentParser
import BallotNATS
import Foundation

/// `ballotctl outcomes`: prints what became of the votes taken from JetStream (docs/intake.md),
/// from the start of the outcome stream: one JSON object a line, as ballotd published them.
struct Outcomes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the outcomes of the votes ballotd took from NATS JetStream, one JSON line each.",
        discussion: """
        Reads the outcome stream from its start (nothing is removed: any number of readers may \
        read it) and stops after --count outcomes, or once none has come for --idle seconds. \
        Exits 0, or 69 when JetStream cannot be reached.
        """)
    @Option(help: "The NATS server, nats://HOST:PORT.") var nats = "nats://127.0.0.1:4222"
    @Option(help: "The outcome stream.") var stream = "BALLOT_OUTCOMES"
    @Option(help: "The outcomes' subject prefix.") var subject = "ballot.outcomes"
    @Option(help: "Only this election's outcomes.") var election: String?
    @Option(help: "Stop after this many outcomes.") var count: Int?
    @Option(help: "Stop once no outcome has come for this many seconds.") var idle = 2.0

    func run() throws {
        let subscription: PullSubscription
        do {
            let js = try NATSConnection(url: nats, name: "ballotctl-outcomes", waitForServer: false).jetStream()
            subscription = try js.pullSubscribe(stream: stream, subject: "\(subject).\(election ?? "*").>", durable: nil,
                                                ackWaitSeconds: 30, maxAckPending: 1 << 20)
        } catch {
            FileHandle.standardError.write(Data("ballotctl: \(error)\n".utf8))
            throw ExitCode(Exit.unreachable)
        }
        var printed = 0
        var lastArrival = Date()
        var out = Data()
        while count.map({ printed < $0 }) ?? true, Date().timeIntervalSince(lastArrival) < idle {
            let messages: [NATSMessage]
            do {
                messages = try subscription.fetch(batch: min(4096, count.map { $0 - printed } ?? 4096), timeoutMilliseconds: 200)
            } catch {
                FileHandle.standardError.write(Data("ballotctl: \(error)\n".utf8))
                throw ExitCode(Exit.unreachable)
            }
            if !messages.isEmpty { lastArrival = Date() }
            for m in messages {
                out.append(contentsOf: m.data)
                out.append(UInt8(ascii: "\n"))
                try? m.ack()
                printed += 1
            }
            FileHandle.standardOutput.write(out)
            out.removeAll(keepingCapacity: true)
        }
    }
}
