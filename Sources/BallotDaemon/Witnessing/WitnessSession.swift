import Foundation
import BallotDomain
import BallotFormat

/// What the daemon knows of one witness, and what to do next for a checkpoint: a value the
/// cosigner drives with what happened (a checkpoint to send, a reply, a failure to reach the
/// witness) and that answers with an action, tested without sockets.
///
/// c2sp.org/tlog-witness: a request carries the size the client believes the witness last
/// cosigned ("old") and a consistency proof from it. A witness whose size differs answers 409
/// with its own; the client tries once more from that size. A witness that has cosigned a
/// larger tree of this log than the checkpoint, or whose tree is not a prefix of ours, shows
/// that this ledger was rolled back or forked: a conflict, which the daemon reports loudly.
struct WitnessSession: Sendable {
    enum Action: Sendable, Equatable {
        /// POST `add-checkpoint` with a consistency proof from `oldSize` to the checkpoint.
        case send(oldSize: UInt64)
        /// The witness cosigned: its cosignature line, verified over the checkpoint's text.
        case cosigned(SignedNote.Signature)
        /// It did not cosign, for a reason that says nothing about the ledger (down, slow,
        /// misconfigured, garbage).
        case failed(String)
        /// It refused because its view of the log is not ours: a rollback or a fork.
        case conflict(String)
    }

    /// What `status` shows of a witness.
    enum Outcome: Sendable, Equatable {
        case notAsked
        case cosigned(size: UInt64, timestamp: UInt64)
        case failed(String)
        case conflict(String)
    }

    let witness: WitnessPolicy.Witness
    /// The size the witness last cosigned for this log, as far as the daemon knows: 0 until it
    /// says otherwise (a 409) or cosigns.
    private(set) var knownSize: UInt64 = 0
    private(set) var last: Outcome = .notAsked
    /// The checkpoint being asked about, and whether the one retry a 409 allows is spent.
    private var asking: CheckpointNote?
    private var retried = false

    init(witness: WitnessPolicy.Witness) { self.witness = witness }

    /// A new checkpoint is to be cosigned. A witness known to be past it is asked from size 0,
    /// so that it says its size again (one wrong answer does not silence it for good).
    mutating func ask(_ checkpoint: CheckpointNote) -> Action {
        asking = checkpoint
        retried = false
        return .send(oldSize: knownSize <= checkpoint.size ? knownSize : 0)
    }

    /// The witness answered `status` with `body` to the request for `note`.
    mutating func replied(status: Int, contentType: String?, body: [UInt8], for note: SignedNote) -> Action {
        guard let checkpoint = asking else { return failed("it answered when nothing was asked") }
        let text = String(decoding: body.prefix(200), as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        switch status {
        case 200:
            // The body is one or more cosignature lines; the one of the witness's key counts.
            let cosigned: SignedNote
            do {
                cosigned = try SignedNote(parsing: Array(note.text.utf8) + [0x0A] + body)
            } catch {
                return failed("it answered 200 with no cosignature lines: \(error)")
            }
            // A blank line in the body would make it part of the text the cosignature is
            // checked over: only signature lines may follow.
            guard cosigned.text.utf8.elementsEqual(note.text.utf8) else {
                return failed("it answered 200 with more than signature lines (a blank line in its body)")
            }
            switch cosigned.cosignature(name: witness.key.name, publicKey: witness.key.publicKey) {
            case .success(let timestamp)?:
                let id = witness.key.keyID
                let line = cosigned.signatures.first { $0.name.utf8.elementsEqual(witness.key.name.utf8) && $0.keyID == id }!
                knownSize = checkpoint.size
                last = .cosigned(size: checkpoint.size, timestamp: timestamp)
                asking = nil
                return .cosigned(line)
            case .failure(let failure)?:
                return failed("it answered 200 with a bad cosignature: \(failure.reason)")
            case nil:
                return failed("it answered 200 without a cosignature of its key \(witness.key.name)")
            }
        case 409 where contentType?.hasPrefix("text/x.tlog.size") == true:
            let digits = text.trimmingCharacters(in: .whitespaces)
            guard let size = UInt64(digits), String(size) == digits else {
                return failed("it answered 409 with '\(text.prefix(40))', not a tree size")
            }
            guard size <= checkpoint.size else {
                knownSize = size
                return conflict("it has cosigned size \(size) of this log, past this checkpoint's \(checkpoint.size): the ledger was rolled back, or shows two views")
            }
            guard !retried, size != knownSize else {
                // Asked from its own size, it still refuses: at the checkpoint's size that is
                // another tree of the same size (two views).
                if size == checkpoint.size {
                    return conflict("it has cosigned another tree of size \(size) (409 to a request from that size): the log shows two views")
                }
                return failed("it answered 409 with size \(size) again, after a request from that size")
            }
            knownSize = size
            retried = true
            return .send(oldSize: size)
        case 409:
            return conflict("it refused (409): \(text)")
        case 422:
            return conflict("the consistency proof from its size \(knownSize) does not verify against the tree it cosigned (422): the ledger was rolled back, or shows two views")
        default:
            return failed("it answered \(status): \(text)")
        }
    }

    /// The request could not be made or was not answered in time.
    mutating func unreachable(_ reason: String) -> Action { failed(reason) }

    private mutating func failed(_ reason: String) -> Action {
        asking = nil
        last = .failed(reason)
        return .failed(reason)
    }

    private mutating func conflict(_ reason: String) -> Action {
        asking = nil
        last = .conflict(reason)
        return .conflict(reason)
    }
}
