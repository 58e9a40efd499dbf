import Testing
import NIOCore
import BallotProtocol
@testable import BallotDaemon

/// The connection's states and what each event makes of them, without a channel.
@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine
    func line(_ text: String) -> LineFrameDecoder.Frame { .line(ByteBuffer(string: text)) }

    /// Runs `next` until it has nothing more to say, as the handler's drain does.
    func drain(_ m: inout Machine, writable: Bool = true) -> [Machine.Action] {
        var actions: [Machine.Action] = []
        while true {
            let action = m.next(writable: writable)
            if action == .none { return actions }
            actions.append(action)
        }
    }

    @Test func requestsAreAnsweredOneAtATimeInOrder() {
        var m = Machine()
        do { let got = m.lineArrived(line("a")); #expect(got == .none) }
        do { let got = m.lineArrived(line("b")); #expect(got == .none) }
        do { let got = m.next(writable: true); #expect(got == .handle(line("a"))) }
        m.startedAnswering()
        // b waits for a
        do { let got = m.next(writable: true); #expect(got == .none) }
        m.finishedAnswering()
        // and for the client to read a's answer
        do { let got = m.next(writable: false); #expect(got == .none) }
        // answered at once (no started…)
        do { let got = drain(&m); #expect(got == [.handle(line("b"))]) }
        #expect(m.state == .idle)
    }

    @Test func aFullQueuePausesReadingUntilItIsDrained() {
        var m = Machine()
        m.startedAnswering()   // something in flight, so lines queue
        var actions: [Machine.Action] = []
        for i in 0..<Machine.maxPending { actions.append(m.lineArrived(line("\(i)"))) }
        #expect(actions.filter { $0 == .pauseReading }.count == 1)
        #expect(m.reading == false)
        m.finishedAnswering()
        let drained = drain(&m)
        #expect(drained.count == Machine.maxPending + 1)
        #expect(drained.last == .resumeReading)
        #expect(m.reading)
    }

    @Test func aHalfCloseIsAnsweredThenClosed() {
        var m = Machine()
        _ = m.lineArrived(line("a"))
        do { let got = m.inputWasClosed(importWaitsForBytes: false); #expect(got == .none) }
        do { let got = drain(&m); #expect(got == [.handle(line("a")), .close]) }
        #expect(m.state == .closed)
    }

    @Test func shutdownAnswersTheRequestInHandAndDropsTheQueue() {
        var idle = Machine()
        do { let got = idle.shutdownRequested(); #expect(got == [.pauseReading, .close]) }

        var busy = Machine()
        _ = busy.lineArrived(line("a"))
        _ = busy.lineArrived(line("b"))
        do { let got = busy.next(writable: true); #expect(got == .handle(line("a"))) }
        busy.startedAnswering()
        do { let got = busy.shutdownRequested(); #expect(got == [.pauseReading]) }
        do { let got = busy.lineArrived(line("c")); #expect(got == .none) }
        busy.finishedAnswering()
        // b and c were dropped unanswered
        do { let got = drain(&busy); #expect(got == [.close]) }
    }

    /// The defect this machine was made for: a flush that made the channel writable again
    /// re-entered the stream while the chunk was going out, and the chunk was sent twice.
    @Test func aStreamSendsEachChunkOnceWhateverWritabilityDoes() {
        var m = Machine()
        m.subscribed(.events, from: 1)
        do { let got = m.streamCanSend(writable: true); #expect(got == .send(.events, from: 1)) }
        // a writability change while reading
        do { let got = m.streamCanSend(writable: true); #expect(got == .none) }
        m.chunkRead(count: 256)
        // ... and while writing
        do { let got = m.streamCanSend(writable: true); #expect(got == .none) }
        m.chunkWritten()
        #expect(m.streamPosition == 257)
        // a client that does not read
        do { let got = m.streamCanSend(writable: false); #expect(got == .none) }
        do { let got = m.streamCanSend(writable: true); #expect(got == .send(.events, from: 257)) }
        // A subscribed connection only listens.
        do { let got = m.lineArrived(line("x")); #expect(got == .none) }
        do { let got = drain(&m).isEmpty; #expect(got) }
        // Shutdown ends the stream.
        m.chunkRead(count: 0)
        m.chunkWritten()
        do { let got = m.shutdownRequested().contains(.close); #expect(got) }
    }

    @Test func anImportPausesForItsBatchesAndCompletesOnce() {
        var m = Machine()
        m.startedImport()
        do { let got = m.importFlow(wantsPause: true, writable: true, allReceived: false); #expect(got == .pauseReading) }
        do { let got = m.importFlow(wantsPause: true, writable: true, allReceived: false); #expect(got == .none) }
        // the client reads no refusals
        do { let got = m.importFlow(wantsPause: false, writable: false, allReceived: false); #expect(got == .none) }
        do { let got = m.importFlow(wantsPause: false, writable: true, allReceived: false); #expect(got == .resumeReading) }
        do { let got = m.importCanComplete(finished: false); #expect(got == false) }
        do { let got = m.importCanComplete(finished: true); #expect(got) }
        do { let got = m.importCanComplete(finished: true); #expect(got == false) }
        do { let got = m.importEnded(cutShort: false); #expect(got == .none) }
        #expect(m.state == .idle)
    }

    @Test func anImportCutShortEndsTheConnection() {
        var halfClosed = Machine()
        halfClosed.startedImport()
        do { let got = halfClosed.inputWasClosed(importWaitsForBytes: true); #expect(got == .cutImport("the client closed its sending side")) }
        do { let got = halfClosed.importCanComplete(finished: true); #expect(got) }
        do { let got = halfClosed.importEnded(cutShort: true); #expect(got == .close) }

        // Idle: cut only while the daemon itself was reading.
        var paused = Machine()
        paused.startedImport()
        _ = paused.importFlow(wantsPause: true, writable: true, allReceived: false)
        do { let got = paused.idleTimedOut(importWaitsForBytes: true); #expect(got == .none) }
        _ = paused.importFlow(wantsPause: false, writable: true, allReceived: false)
        do { let got = paused.idleTimedOut(importWaitsForBytes: true); #expect(got == .cutImport("nothing arrived for the idle timeout")) }
    }

    @Test func aRefusedImportClosesTheConnectionAndDropsWhatFollowed() {
        var m = Machine()
        _ = m.lineArrived(line("import"))
        _ = m.lineArrived(line("a line of its file"))
        do { let got = m.next(writable: true); #expect(got == .handle(line("import"))) }
        do { let got = m.importRefused(); #expect(got == .close) }
        #expect(m.state == .closed)
        do { let got = drain(&m); #expect(got == []) }
    }

    @Test func anIdleTimeoutClosesOnlyAnIdleConnection() {
        var idle = Machine()
        do { let got = idle.idleTimedOut(importWaitsForBytes: false); #expect(got == .close) }
        var answering = Machine()
        answering.startedAnswering()
        do { let got = answering.idleTimedOut(importWaitsForBytes: false); #expect(got == .none) }
        var streaming = Machine()
        streaming.subscribed(.records, from: 1)
        do { let got = streaming.idleTimedOut(importWaitsForBytes: false); #expect(got == .none) }
    }
}

