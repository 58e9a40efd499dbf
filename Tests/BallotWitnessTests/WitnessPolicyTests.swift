import Testing
import Foundation
import BallotDomain
@testable import BallotFormat

/// c2sp.org/tlog-policy as `ballotd` and the auditor's tools read it, and vkeys.
@Suite struct WitnessPolicyTests {
    let logKey = try! CheckpointKey(seed: Array(repeating: 1, count: 32))
    let keys = (2...5).map { try! CheckpointKey(seed: Array(repeating: UInt8($0), count: 32)) }

    func vkey(_ name: String, _ key: CheckpointKey, type: UInt8 = SignedNote.cosignatureV1) -> String {
        VerifierKey(name: name, type: type, publicKey: key.publicKey).description
    }

    @Test func aVerifierKeyReadsBackAndItsIDIsChecked() throws {
        let text = vkey("witness.example/w1", keys[0])
        let key = try VerifierKey(parsing: text)
        #expect(key.name == "witness.example/w1" && key.type == SignedNote.cosignatureV1 && key.publicKey == keys[0].publicKey)
        #expect(key.description == text)
        // Another key ID, a key of 31 bytes, an unknown type, no name: each refused, saying why.
        let parts = text.split(separator: "+", maxSplits: 2).map(String.init)
        let cases: [(String, String)] = [
            ("\(parts[0])+00000000+\(parts[2])", "key ID"),
            ("\(parts[0])+\(parts[1])+\(Data(repeating: 4, count: 32).base64EncodedString())", "type byte"),
            ("\(parts[0])+\(parts[1])+\(Data([9] + Array(repeating: 1, count: 32)).base64EncodedString())", "type 0x9"),
            ("+\(parts[1])+\(parts[2])", "key name"),
            ("no-plus-signs", "<name>+<key ID>"),
        ]
        for (bad, why) in cases {
            #expect(throws: VerifierKey.Malformed.self, "\(why)") { try VerifierKey(parsing: bad) }
            do { _ = try VerifierKey(parsing: bad) } catch { #expect(error.description.contains(why), "\(error)") }
        }
    }

    @Test func groupsAndThresholdsDecideTheQuorum() throws {
        let text = """
        # two organisations
        log \(vkey("example.org/log", logKey, type: SignedNote.ed25519))

        witness X1 \(vkey("x.example/1", keys[0])) http://127.0.0.1:1
        witness X2 \(vkey("x.example/2", keys[1]))
        witness X3 \(vkey("x.example/3", keys[2]))
        group X-witnesses 2 X1 X2 X3
        witness Y1 \(vkey("y.example/1", keys[3]))\t
        group Y-witnesses any Y1
        group X-and-Y all X-witnesses Y-witnesses
        quorum X-and-Y
        """
        let policy = try WitnessPolicy(parsing: text)
        #expect(policy.logs.map(\.name) == ["example.org/log"])
        #expect(policy.witnesses.map(\.name) == ["X1", "X2", "X3", "Y1"])
        #expect(policy.witness(named: "X1")?.url == "http://127.0.0.1:1")
        #expect(policy.isSatisfied(by: ["X1", "X3", "Y1"]))
        #expect(!policy.isSatisfied(by: ["X1", "X2", "X3"]))
        #expect(!policy.isSatisfied(by: ["X1", "Y1"]))
        #expect(try WitnessPolicy(parsing: "quorum none\n").isSatisfied(by: []))
    }

    @Test func aMistakeIsRefusedWithItsLine() throws {
        let w = vkey("w.example/1", keys[0])
        let cases: [(String, String)] = [
            ("witness A \(w)\n", "no quorum line"),
            ("quorum A\n", "line 1"),
            ("witness A \(w)\nwitness B \(w)\nquorum A\n", "line 2"),
            ("witness A \(w)\nwitness A \(vkey("w.example/2", keys[1]))\nquorum A\n", "already defined"),
            ("witness A \(w)\ngroup G 2 A\nquorum G\n", "from 1 to 1"),
            ("witness A \(w)\ngroup G any A A\nquorum G\n", "twice"),
            ("witness A \(w)\nquorum A\nquorum A\n", "second"),
            ("log \(w)\nquorum none\n", "type 0x04"),
            ("witnes A \(w)\nquorum A\n", "not log, witness"),
            ("witness A \(w)\u{1}\nquorum A\n", "control character"),
        ]
        for (text, why) in cases {
            do {
                _ = try WitnessPolicy(parsing: text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.description.contains(why), "\(error) for \(text)")
            }
        }
    }

    @Test func cosignersAreTheWitnessesWhoseCosignatureVerifies() throws {
        let text = "witness A \(vkey("a.example", keys[0]))\nwitness B \(vkey("b.example", keys[1]))\ngroup G all A B\nquorum G\n"
        let policy = try WitnessPolicy(parsing: text)
        let checkpoint = CheckpointNote(origin: "example.org/log", size: 5, root: Array(repeating: UInt8(3), count: 32).withUnsafeBytes { Digest32($0) })
        let signed = SignedNote(text: checkpoint.text, signatures: [SignedNote.sign(checkpoint.text, name: "example.org/log", key: logKey)])
        let a = SignedNote.cosign(signed.text, name: "a.example", key: keys[0], timestamp: 1_700_000_000)
        // B's line made with another key under B's name: not B's key ID, so not B's.
        let forged = SignedNote.cosign(signed.text, name: "b.example", key: keys[3], timestamp: 1_700_000_000)
        let note = SignedNote(text: signed.text, signatures: signed.signatures + [a, forged])
        #expect(policy.cosigners(of: note).verified == ["A"])
        #expect(!policy.isSatisfied(by: policy.cosigners(of: note).verified))
        // B's key ID with bytes that do not verify: a failure, named.
        var broken = SignedNote.cosign(signed.text, name: "b.example", key: keys[1], timestamp: 1_700_000_000)
        broken.bytes[20] ^= 1
        let failures = policy.cosigners(of: SignedNote(text: signed.text, signatures: [a, broken])).failures
        #expect(failures.map(\.name) == ["b.example"])
    }
}
