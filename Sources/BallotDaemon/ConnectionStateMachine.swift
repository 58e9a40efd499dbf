import BallotProtocol
import NIOCore

/// What one connection is doing, as a value: `ConnectionHandler` tells it what happened (a line
/// arrived, a request finished, the client closed its side, a chunk of events was sent) and
/// performs the action it returns. Tested without a channel (`ConnectionStateMachineTests`).
///
/// A connection answers one request at a time, in order. While one is in flight, lines queue
/// (reading pauses past `maxPending`); a subscription turns the connection into a stream that
/// only sends; an import takes the bytes after its request line as a file.
struct ConnectionStateMachine {
    enum State: Equatable {
        /// Waiting for request lines, or answering the queued ones that need no I/O.
        case idle
        /// One request is being carried out off the event loop (the read pool or the writer).
        case answering
        /// An import's file is arriving or its batches are committing; `completing` once its
        /// end is under way.
        case importing(completing: Bool)
        /// Subscribed: `next` is the next event to send; `sending` while a chunk is being read
        /// or written, so that a writability change in between cannot send it twice.
        case streaming(Stream, next: UInt64, sending: Bool)
        case closed
    }

    /// What a stream sends: events as JSON lines (`subscribe`), or the records as stored, to a
    /// follower (`replicate`).
    enum Stream: Equatable { case events, records }

    enum Action: Equatable {
        case none
        /// Carry out this request (and then tell the machine how: `started…`, or nothing when
        /// it was answered at once).
        case handle(LineFrameDecoder.Frame)
        case pauseReading
        case resumeReading
        /// Read the events from this one on and send them (`chunkRead`, then `chunkWritten`).
        case send(Stream, from: UInt64)
        /// End the import in hand, whose file stops arriving, for this reason.
        case cutImport(String)
        case close
    }

    static let maxPending = 32

    private(set) var state = State.idle
    private var pending = CircularBuffer<LineFrameDecoder.Frame>()
    /// Whether the channel reads (autoRead): off while lines pile up, while the client is not
    /// reading its answers, while an import's batches are in flight, and once shutting down.
    private(set) var reading = true
    /// The client has shut its sending side: answer what it sent, then close.
    private var inputClosed = false
    /// Graceful shutdown: finish what is in hand, start nothing new, close.
    private var stopping = false

    var isSubscribed: Bool { if case .streaming = state { true } else { false } }
    var isImporting: Bool { if case .importing = state { true } else { false } }

    // MARK: Requests

    /// A request line (or a line too long) arrived. Lines of a stream, or after shutdown, are
    /// dropped (a subscribed connection only listens).
    mutating func lineArrived(_ frame: LineFrameDecoder.Frame) -> Action {
        guard !stopping else { return .none }
        switch state {
        case .streaming, .closed: return .none
        case .idle, .answering, .importing: break
        }
        pending.append(frame)
        if pending.count >= Self.maxPending && reading {
            reading = false
            return .pauseReading
        }
        return .none
    }

    /// What to do next while nothing is in flight: the next queued request (once the client
    /// reads its answers), closing (after shutdown or the client's half-close), or reading
    /// again. Called in a loop until it says `.none`.
    mutating func next(writable: Bool) -> Action {
        guard case .idle = state else { return .none }
        if let frame = pending.first {
            guard writable else { return .none }
            pending.removeFirst()
            return .handle(frame)
        }
        if stopping || inputClosed {
            state = .closed
            return .close
        }
        if !reading {
            reading = true
            return .resumeReading
        }
        return .none
    }

    /// The request just handed out goes on off the event loop.
    mutating func startedAnswering() {
        guard case .idle = state else { return }
        state = .answering
    }

    /// The request in flight has been answered.
    mutating func finishedAnswering() {
        guard case .answering = state else { return }
        state = .idle
    }

    // MARK: Subscription

    /// The request just handed out subscribed from event `from` (or, a follower, asked for the
    /// records from it): the connection only sends now.
    mutating func subscribed(_ stream: Stream, from: UInt64) {
        guard case .idle = state else { return }
        pending.removeAll()
        state = .streaming(stream, next: from, sending: false)
    }

    /// Whether to send the next chunk: only when subscribed, not already sending, and the client
    /// reads. After shutdown the stream ends.
    mutating func streamCanSend(writable: Bool) -> Action {
        guard case .streaming(let stream, let next, sending: false) = state else { return .none }
        if stopping {
            state = .closed
            return .close
        }
        guard writable else { return .none }
        state = .streaming(stream, next: next, sending: true)
        return .send(stream, from: next)
    }

    /// `count` events from the chunk's start are being written: the position moves now, and the
    /// stream stays `sending` until `chunkWritten`, so that a flush that turns the channel
    /// writable again cannot start the same chunk a second time.
    mutating func chunkRead(count: Int) {
        guard case .streaming(let stream, let next, sending: true) = state else { return }
        state = .streaming(stream, next: next + UInt64(count), sending: true)
    }

    mutating func chunkWritten() {
        guard case .streaming(let stream, let next, sending: true) = state else { return }
        state = .streaming(stream, next: next, sending: false)
    }

    /// The next event to send, while subscribed.
    var streamPosition: UInt64? { if case .streaming(_, let next, _) = state { next } else { nil } }

    /// Whether a stream waits for the next commit with nothing in hand: what a heartbeat may
    /// be sent in (a follower's stream says it is alive while the ledger is idle).
    var streamIsIdle: Bool { if case .streaming(_, _, sending: false) = state { true } else { false } }

    // MARK: Import

    /// The import just handed out was refused (its role, its parameters): the bytes after its
    /// line are a file, which must not be read as requests and cannot be told apart from them,
    /// so the connection closes once the refusal is sent.
    mutating func importRefused() -> Action {
        guard case .idle = state else { return .none }
        pending.removeAll()
        state = .closed
        return .close
    }

    /// The request just handed out is an import: the bytes after it are its file.
    mutating func startedImport() {
        guard case .idle = state else { return }
        state = .importing(completing: false)
    }

    /// Where the import stands: reading pauses while its batches are in flight (`wantsPause`)
    /// or the client is not reading its refusals, and goes on otherwise until the whole file
    /// is in.
    mutating func importFlow(wantsPause: Bool, writable: Bool, allReceived: Bool) -> Action {
        guard isImporting else { return .none }
        let pause = wantsPause || !writable
        if pause && reading {
            reading = false
            return .pauseReading
        }
        if !pause && !reading && !allReceived && !stopping {
            reading = true
            return .resumeReading
        }
        return .none
    }

    /// Whether to complete the import now that it is `finished`: once only.
    mutating func importCanComplete(finished: Bool) -> Bool {
        guard finished, case .importing(completing: false) = state else { return false }
        state = .importing(completing: true)
        return true
    }

    /// The import's reply is sent. One cut short closes the connection: the rest of its file
    /// may still arrive and must not be read as requests.
    mutating func importEnded(cutShort: Bool) -> Action {
        guard isImporting else { return .none }
        if cutShort {
            state = .closed
            return .close
        }
        state = .idle
        return .none
    }

    // MARK: The connection

    /// The client shut its sending side. An import still waiting for bytes is cut short;
    /// otherwise what it sent is answered (`next`), then the connection closes.
    mutating func inputWasClosed(importWaitsForBytes: Bool) -> Action {
        inputClosed = true
        return isImporting && importWaitsForBytes ? .cutImport("the client closed its sending side") : .none
    }

    /// Nothing arrived for the idle timeout. An idle connection closes (a half-sent line, a
    /// forgotten client); an import whose file stopped while the daemon was reading is cut
    /// short (not one the daemon paused itself). Streams and answers in flight go on.
    mutating func idleTimedOut(importWaitsForBytes: Bool) -> Action {
        switch state {
        case .idle where pending.isEmpty:
            state = .closed
            return .close
        case .importing where importWaitsForBytes && reading:
            return .cutImport("nothing arrived for the idle timeout")
        default:
            return .none
        }
    }

    /// Graceful shutdown: queued requests are dropped unanswered, reading stops; an idle
    /// connection, a stream or an import (what it committed stays) closes now, a request in
    /// flight is answered first.
    mutating func shutdownRequested() -> [Action] {
        stopping = true
        pending.removeAll()
        var actions: [Action] = []
        if reading {
            reading = false
            actions.append(.pauseReading)
        }
        switch state {
        case .answering, .closed: break
        case .idle, .streaming, .importing:
            state = .closed
            actions.append(.close)
        }
        return actions
    }

    mutating func channelClosed() {
        state = .closed
        pending.removeAll()
    }
}
