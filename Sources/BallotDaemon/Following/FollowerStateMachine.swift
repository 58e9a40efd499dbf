import BallotDomain
import BallotFormat
import BallotProtocol

/// A follower's side of `replicate`, as a value: `Follower` tells it what happened (connected,
/// the primary's reply, a chunk, a chunk stored or refused, the connection lost, a timer) and
/// performs the actions it returns. Tested without sockets (`FollowerStateMachineTests`).
///
/// The follower asks for the records after those it has stored, and first checks that the
/// primary's root over those events is its own (else the primary's history is not the one it
/// stored: it stops). It hands the chunks to the writer one store at a time, in order (the
/// writer verifies each record against the state before it), the chunks that waited meanwhile
/// in one store, and stops reading while `maxWaiting` chunks or `maxWaitingBytes` wait, so that
/// a fast primary cannot make it buffer without bound. A lost connection is taken again after a
/// back-off (100 ms doubling to 5 s), once the store in hand is done, from whatever the follower
/// then holds. A record that does not verify stops replication for good: the follower keeps
/// serving what it stored, and an operator must look (docs/operations.md, "Followers").
struct FollowerStateMachine {
    enum State: Equatable, CustomStringConvertible {
        /// Waiting to connect (after a back-off, or for the chunk being stored).
        case disconnected
        case connecting
        /// Connected and asked for the records after those stored; no reply yet.
        case asking
        /// Receiving chunks.
        case streaming
        /// A record did not verify, or the primary is another ledger: nothing more is taken.
        case stopped(String)
        case shutDown

        var description: String {
            switch self {
            case .disconnected: "disconnected"
            case .connecting: "connecting"
            case .asking: "asking"
            case .streaming: "streaming"
            case .stopped: "stopped"
            case .shutDown: "shut_down"
            }
        }
    }

    enum Action: Equatable {
        /// Open a connection to the primary.
        case connect
        /// Ask for the records from this event on (`replicate`).
        case ask(from: UInt64)
        /// Hand this chunk, from the ledger the primary named, to the writer (`stored` or
        /// `storeFailed` when it is done); the primary holds `primarySize` events.
        case store(RecordChunk, ledgerID: [UInt8], primarySize: UInt64)
        case pauseReading
        case resumeReading
        /// Close the connection (nothing more is read from it).
        case disconnect
        /// Call `reconnectDue` after this long.
        case reconnect(after: Duration)
        /// Replication stops for good: say so loudly, and why.
        case halt(String)
    }

    /// Chunks (or bytes) received and waiting for the writer, past which reading pauses.
    static let maxWaiting = 8
    static let maxWaitingBytes = 16 << 20
    static let firstBackoff = Duration.milliseconds(100)
    static let maxBackoff = Duration.seconds(5)

    private(set) var state = State.disconnected
    /// The events the follower's ledger holds (stored and committed).
    private(set) var stored: UInt64
    /// The event the stream should bring next.
    private var expected: UInt64
    /// What the primary said it holds, in its last chunk or heartbeat.
    private(set) var primarySize: UInt64?
    /// Why the last connection or chunk failed, for `status`, until a chunk is stored again.
    private(set) var lastError: String?
    /// The primary's ledger id, from its reply.
    private var ledgerID: [UInt8] = []
    /// The follower's root over what it stored, when it asked: the primary's must be the same.
    private var rootAsked: Digest32?
    private var waiting: [RecordChunk] = []
    private var waitingBytes = 0
    private var storing = false
    private var reading = true
    private var backoff = FollowerStateMachine.firstBackoff
    /// A reconnection fell due while a chunk was being stored: connect once it is.
    private var connectWhenStored = false

    init(stored: UInt64) {
        self.stored = stored
        expected = stored + 1
    }

    /// The primary's events not yet stored here, as far as the follower knows.
    var lag: UInt64? { primarySize.map { $0 > stored ? $0 - stored : 0 } }

    mutating func start() -> [Action] {
        guard state == .disconnected else { return [] }
        state = .connecting
        return [.connect]
    }

    /// Whether the connection is being read (not paused while chunks wait for the writer).
    var isReading: Bool { reading }

    /// Connected; the follower holds `stored` events, whose Merkle root is `root` (the
    /// writer's word, which a store that failed part way, keeping the slices before the
    /// failure, may have moved past what this machine was told).
    mutating func connected(stored: UInt64, root: Digest32) -> [Action] {
        guard state == .connecting else { return [.disconnect] }
        state = .asking
        reading = true
        self.stored = stored
        expected = stored + 1
        rootAsked = root
        return [.ask(from: expected)]
    }

    /// The primary answered `replicate`.
    mutating func replied(_ start: ReplicationStart) -> [Action] {
        guard state == .asking else { return [] }
        guard start.from == expected else {
            return lost("the primary answered for events from \(start.from); asked from \(expected)")
        }
        if let rootAsked, start.rootBefore != rootAsked {
            return halt("the primary's events 1…\(stored) hash to \(start.rootBefore.hex), and the \(stored) this follower stored to \(rootAsked.hex): the primary's history is not the one this follower verified (was it restored from an older copy?)")
        }
        state = .streaming
        ledgerID = start.ledgerID
        primarySize = start.ledgerSize
        return []
    }

    /// The primary refused `replicate`, or ended the stream with an error line. `conflict`: it
    /// holds fewer events than the follower, which stops; anything else (a role the primary
    /// does not grant yet, say) is tried again after the back-off.
    mutating func refused(_ code: String, _ message: String) -> [Action] {
        if code == ErrorCode.conflict.rawValue, state == .asking {
            return halt("the primary refused: \(code): \(message)")
        }
        return lost("the primary refused: \(code): \(message)")
    }

    mutating func chunkArrived(_ header: ChunkHeader, _ chunk: RecordChunk) -> [Action] {
        guard state == .streaming else { return [] }
        primarySize = max(primarySize ?? 0, header.ledgerSize)
        guard chunk.count > 0 else { return [] }   // a heartbeat
        guard chunk.first == expected else {
            return lost("the primary sent events from \(chunk.first); the next the follower needs is \(expected)")
        }
        expected = chunk.end
        waiting.append(chunk)
        waitingBytes += chunk.wire.count
        var actions: [Action] = []
        if !storing { actions += storeNext() }
        if (waiting.count >= Self.maxWaiting || waitingBytes >= Self.maxWaitingBytes) && reading {
            reading = false
            actions.append(.pauseReading)
        }
        return actions
    }

    /// The writer stored the chunk in hand: the follower holds up to `end - 1`.
    mutating func stored(through end: UInt64) -> [Action] {
        storing = false
        stored = end - 1
        backoff = Self.firstBackoff
        // The last failure stays on show until replication makes progress again.
        lastError = nil
        if !waiting.isEmpty { return storeNext() }
        if connectWhenStored, state == .disconnected {
            connectWhenStored = false
            state = .connecting
            return [.connect]
        }
        if !reading && state == .streaming {
            reading = true
            return [.resumeReading]
        }
        return []
    }

    /// The writer refused the chunk in hand. `unverified`: a record did not verify (or the
    /// primary is another ledger), and replication stops; otherwise (a full disk, say) the
    /// connection is dropped and taken again after a back-off.
    mutating func storeFailed(_ reason: String, unverified: Bool) -> [Action] {
        storing = false
        waiting.removeAll()
        waitingBytes = 0
        guard unverified else {
            // Lost already, its reconnection waiting for this store: connect now.
            if state == .disconnected && connectWhenStored {
                connectWhenStored = false
                lastError = reason
                state = .connecting
                return [.connect]
            }
            return lost(reason)
        }
        return halt(reason)
    }

    /// The connection failed, closed, or went silent.
    mutating func connectionLost(_ reason: String) -> [Action] {
        lost(reason)
    }

    /// A back-off ended.
    mutating func reconnectDue() -> [Action] {
        guard state == .disconnected else { return [] }
        if storing {
            connectWhenStored = true
            return []
        }
        state = .connecting
        return [.connect]
    }

    /// The daemon stops: no more connections.
    mutating func shutdown() -> [Action] {
        state = .shutDown
        waiting.removeAll()
        waitingBytes = 0
        return [.disconnect]
    }

    /// Every chunk waiting, as one store: what arrived while the last store ran, written in
    /// slices (`Ledger.replicate`) rather than a transaction a chunk.
    private mutating func storeNext() -> [Action] {
        storing = true
        var chunk = waiting.removeFirst()
        for next in waiting { chunk.append(contentsOf: next) }
        waiting.removeAll()
        waitingBytes = 0
        return [.store(chunk, ledgerID: ledgerID, primarySize: primarySize ?? 0)]
    }

    /// Replication stops for good.
    private mutating func halt(_ reason: String) -> [Action] {
        switch state {
        case .stopped, .shutDown: return []
        case .disconnected, .connecting, .asking, .streaming: break
        }
        lastError = reason
        waiting.removeAll()
        waitingBytes = 0
        state = .stopped(reason)
        return [.halt(reason), .disconnect]
    }

    /// Drops the connection and what it brought that is not being stored, and connects again
    /// after the back-off.
    private mutating func lost(_ reason: String) -> [Action] {
        switch state {
        case .stopped, .shutDown: return []
        case .disconnected: return []
        case .connecting, .asking, .streaming: break
        }
        state = .disconnected
        lastError = reason
        waiting.removeAll()
        waitingBytes = 0
        let delay = backoff
        backoff = min(backoff * 2, Self.maxBackoff)
        return [.disconnect, .reconnect(after: delay)]
    }
}
