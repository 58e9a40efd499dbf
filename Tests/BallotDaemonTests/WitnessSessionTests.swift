import Testing
import Foundation
import BallotDomain
@testable import BallotFormat
@testable import BallotDaemon

/// The daemon's side of c2sp.org/tlog-witness for one witness, without sockets: what it sends
/// and what it makes of each answer.
@Suite struct WitnessSessionTests {
    let logKey = try! CheckpointKey(seed: Array(repeating: 1, count: 32))
    let witnessKey = try! CheckpointKey(seed: Array(repeating: 2, count: 32))
    var witness: WitnessPolicy.Witness {
        WitnessPolicy.Witness(name: "w1", key: VerifierKey(name: "witness.example/w1", type: SignedNote.cosignatureV1, publicKey: witnessKey.publicKey),
                              url: "http://127.0.0.1:1")
    }

    func checkpoint(_ size: UInt64) -> (CheckpointNote, SignedNote) {
        let c = CheckpointNote(origin: "example.org/log", size: size, root: Array(repeating: UInt8(size), count: 32).withUnsafeBytes { Digest32($0) })
        return (c, SignedNote(text: c.text, signatures: [SignedNote.sign(c.text, name: c.origin, key: logKey)]))
    }

    func cosignature(_ note: SignedNote, key: CheckpointKey? = nil) -> [UInt8] {
        Array(SignedNote.cosign(note.text, name: "witness.example/w1", key: key ?? witnessKey, timestamp: 1_700_000_000).line.utf8)
    }

    @Test func aCosignatureIsKeptAndTheNextRequestStartsFromItsSize() {
        var session = WitnessSession(witness: witness)
        let (c, note) = checkpoint(10)
        #expect(session.ask(c) == .send(oldSize: 0))
        guard case .cosigned(let line) = session.replied(status: 200, contentType: "text/plain", body: cosignature(note), for: note) else {
            Issue.record("not cosigned")
            return
        }
        #expect(line.name == "witness.example/w1")
        #expect(session.knownSize == 10)
        #expect(session.last == .cosigned(size: 10, timestamp: 1_700_000_000))
        #expect(session.ask(checkpoint(20).0) == .send(oldSize: 10))
    }

    @Test func a409WithASmallerSizeIsRetriedOnceFromIt() {
        var session = WitnessSession(witness: witness)
        let (c, note) = checkpoint(30)
        #expect(session.ask(c) == .send(oldSize: 0))
        #expect(session.replied(status: 409, contentType: "text/x.tlog.size", body: Array("12\n".utf8), for: note) == .send(oldSize: 12))
        // The witness's size moved again: no second retry.
        guard case .failed(let why) = session.replied(status: 409, contentType: "text/x.tlog.size", body: Array("13\n".utf8), for: note) else {
            Issue.record("retried twice")
            return
        }
        #expect(why.contains("409"))
    }

    @Test func aWitnessThatHasSeenMoreShowsARollback() {
        var session = WitnessSession(witness: witness)
        let (c, note) = checkpoint(30)
        _ = session.ask(c)
        guard case .conflict(let why) = session.replied(status: 409, contentType: "text/x.tlog.size", body: Array("40\n".utf8), for: note) else {
            Issue.record("no conflict")
            return
        }
        #expect(why.contains("40") && why.contains("rolled back"))
        // The next, smaller than what it has seen, is asked from 0, so that it says its size again.
        let (c35, note35) = checkpoint(35)
        #expect(session.ask(c35) == .send(oldSize: 0))
        guard case .conflict = session.replied(status: 409, contentType: "text/x.tlog.size", body: Array("40\n".utf8), for: note35) else {
            Issue.record("no conflict the second time")
            return
        }
        // A larger one is asked from its size; a proof that does not verify is a conflict too.
        let (c50, note50) = checkpoint(50)
        #expect(session.ask(c50) == .send(oldSize: 40))
        guard case .conflict = session.replied(status: 422, contentType: "text/plain", body: Array("no\n".utf8), for: note50) else {
            Issue.record("422 not a conflict")
            return
        }
    }

    @Test func aWitnessWithAnotherTreeOfTheSameSizeShowsTwoViews() {
        var session = WitnessSession(witness: witness)
        let (c, note) = checkpoint(30)
        _ = session.ask(c)
        #expect(session.replied(status: 409, contentType: "text/x.tlog.size", body: Array("30\n".utf8), for: note) == .send(oldSize: 30))
        guard case .conflict(let why) = session.replied(status: 409, contentType: "text/x.tlog.size", body: Array("30\n".utf8), for: note) else {
            Issue.record("a second 409 at the checkpoint's size is not a conflict")
            return
        }
        #expect(why.contains("two views"))
        // A 409 that is not a size (this project's witness says why in text) is a conflict too.
        var other = WitnessSession(witness: witness)
        _ = other.ask(c)
        guard case .conflict = other.replied(status: 409, contentType: "text/plain", body: Array("two views\n".utf8), for: note) else {
            Issue.record("a text 409 is not a conflict")
            return
        }
        // A witness behind the size the session believed is asked again from its size.
        var behind = WitnessSession(witness: witness)
        _ = behind.ask(c)
        _ = behind.replied(status: 200, contentType: "text/plain", body: cosignature(note), for: note)
        let (c40, note40) = checkpoint(40)
        #expect(behind.ask(c40) == .send(oldSize: 30))
        #expect(behind.replied(status: 409, contentType: "text/x.tlog.size", body: Array("20\n".utf8), for: note40) == .send(oldSize: 20))
    }

    @Test func garbageAndForgeriesAreFailuresThatSayWhat() {
        let (c, note) = checkpoint(10)
        let cases: [(Int, String?, [UInt8], String)] = [
            (200, "text/plain", Array("hello\n".utf8), "no cosignature lines"),
            (200, "text/plain", cosignature(note, key: logKey), "without a cosignature of its key"),
            // A blank line would make what follows part of the text the cosignature is checked over.
            (200, "text/plain", Array("extension\n\n".utf8) + cosignature(SignedNote(text: note.text + "\nextension\n", signatures: [])), "more than signature lines"),
            (409, "text/x.tlog.size", Array("ten\n".utf8), "not a tree size"),
            (500, "text/plain", Array("disk full\n".utf8), "500: disk full"),
            (403, "text/plain", Array("bad signature\n".utf8), "403"),
        ]
        for (status, type, body, why) in cases {
            var session = WitnessSession(witness: witness)
            _ = session.ask(c)
            guard case .failed(let reason) = session.replied(status: status, contentType: type, body: body, for: note) else {
                Issue.record("not a failure: \(status) \(why)")
                continue
            }
            #expect(reason.contains(why), "\(reason)")
            #expect(session.knownSize == 0)
        }
        // A cosignature line of the witness's key ID whose bytes do not verify.
        var broken = SignedNote.cosign(note.text, name: "witness.example/w1", key: witnessKey, timestamp: 1)
        broken.bytes[30] ^= 1
        var session = WitnessSession(witness: witness)
        _ = session.ask(c)
        guard case .failed(let reason) = session.replied(status: 200, contentType: "text/plain", body: Array(broken.line.utf8), for: note) else {
            Issue.record("a bad cosignature was taken")
            return
        }
        #expect(reason.contains("does not verify"))
        #expect(session.unreachable("connection refused") == .failed("connection refused"))
    }
}
