import BallotDomain

// The two halves of `Audit.verify`. Each owns its state while they run, so that each can have a
// core: the record pass reads the raw records (leaf hashes, decoding, order) and the stored
// Merkle nodes they complete; the rule pass builds the Merkle tree from the leaves and compares
// the stored nodes, checks idempotency keys, replays what decodes through the domain rules and
// checks the checkpoints. The split keeps their CPU time about even.
// Each pass keeps its own findings; `verify` merges them in event order.

extension Audit {
    /// Reads the stored records themselves: no gaps, each decodes, timestamps never go back; and
    /// hashes each into its Merkle leaf.
    struct RecordPass {
        /// What one snapshot's records give: every record's leaf, those that decoded (votes
        /// coded, the rest in full), the texts first coded in it, and the stored Merkle nodes
        /// that its leaves complete.
        struct Batch: Sendable {
            var leaves: [MerkleHash] = []
            var votes: [CodedVote] = []
            var records: [RecordedEvent] = []
            var texts: [String] = []
            /// For each checkpoint among the records, how many of `leaves` come before it.
            var leavesBefore: [UInt64: Int] = [:]
            /// In order of level, then index: the order in which `MerkleFrontier` completes them.
            var storedNodes: [StoredNode] = []
        }

        /// A stored Merkle node, as read in the batch's snapshot.
        struct StoredNode: Sendable {
            enum Found: Sendable {
                case hash(MerkleHash)
                case missing
                case notAHash
                case unreadable(String)
            }

            let level: Int
            let index: UInt64
            let found: Found
        }

        let maxFindings: Int
        /// `KeyCheck`'s seed, to hash each vote's idempotency key as it is decoded.
        let keySeed: UInt64
        var codes = TextCodes()
        /// How many leaves earlier batches had.
        var leaves: UInt64 = 0
        var lastTime = Timestamp(microseconds: .min)
        /// The sequence number expected next.
        var next: UInt64 = 1
        var findings: [AuditFinding] = []

        init(maxFindings: Int, keySeed: UInt64) {
            self.maxFindings = maxFindings
            self.keySeed = keySeed
        }

        var full: Bool { findings.count >= maxFindings }

        mutating func note(_ severity: AuditFinding.Severity, _ events: ClosedRange<UInt64>, _ what: String) {
            findings.append(AuditFinding(severity: severity, events: events, what: what))
        }

        /// Checks every record from `start`, handing what it gives to `handoff` in batches,
        /// until the end, `maxFindings`, or the consumer stops taking them.
        mutating func scan(_ reader: LedgerReader, from start: UInt64, into handoff: Handoff<Batch>) throws {
            var taken = true
            try reader.scanBatches(from: start) { stored, storedNode in
                var batch = Batch()
                batch.votes.reserveCapacity(stored.count)
                check(stored, storedNode, into: &batch)
                taken = handoff.put(batch)
                return taken && !full
            }
        }

        /// Checks a batch of stored records read in one snapshot (`storedNode` reads from it).
        mutating func check(_ stored: [(seq: UInt64, bytes: UnsafeRawBufferPointer)],
                            _ storedNode: (Int, UInt64) throws -> MerkleHash??, into batch: inout Batch) {
            // A slice at a time, hashed then decoded, so that decoding finds the records still in
            // the nearest cache (hashing the whole batch first left them in the next one).
            batch.leaves.reserveCapacity(stored.count)
            for slice in stride(from: 0, to: stored.count, by: Self.slice) {
                let end = min(slice + Self.slice, stored.count)
                batch.leaves += MerkleHash.leaves(stored[slice..<end].map(\.bytes))
                for i in slice..<end { check(stored[i], at: i, into: &batch) }
            }
            batch.texts = codes.takeNew()
            readStoredNodes(completedBy: stored.count, storedNode, into: &batch)
        }

        /// Records hashed and decoded together: a multiple of the 16 that are hashed at a time.
        static let slice = 128

        /// The record at position `i` of its batch: in sequence, decoded, in time.
        private mutating func check(_ stored: (seq: UInt64, bytes: UnsafeRawBufferPointer), at i: Int, into batch: inout Batch) {
            let (seq, bytes) = stored
            if seq != next {
                note(.tampered, next...next, "event \(next) is missing: the next stored event is \(seq)")
            }
            next = seq + 1
            do {
                if let vote = try CodedVote.decode(bytes, seq: seq, codes: &codes, keySeed: keySeed) {
                    checkTime(vote.timestamp, seq)
                    batch.votes.append(vote)
                    return
                }
                let record = try RecordCodec.decode(bytes, seq: seq)
                checkTime(record.timestamp, seq)
                if case .checkpointSigned = record.event { batch.leavesBefore[seq] = i }
                batch.records.append(record)
            } catch {
                if case .corruptRecord(_, let reason) = error { note(.tampered, seq...seq, reason) } else { note(.tampered, seq...seq, "\(error)") }
            }
        }

        /// Timestamps never go back.
        private mutating func checkTime(_ timestamp: Timestamp, _ seq: UInt64) {
            if timestamp < lastTime {
                note(.tampered, seq...seq, "its timestamp \(timestamp) is earlier than the event before it (\(lastTime))")
            }
            lastTime = max(lastTime, timestamp)
        }

        /// The stored nodes (from `LedgerKeys.firstStoredLevel` up) that `count` more leaves
        /// complete: at each level, those whose last leaf is among them.
        mutating func readStoredNodes(completedBy count: Int, _ storedNode: (Int, UInt64) throws -> MerkleHash??,
                                      into batch: inout Batch) {
            let before = leaves
            leaves += UInt64(count)
            var level = LedgerKeys.firstStoredLevel
            while level < 64 && leaves >> UInt64(level) > before >> UInt64(level) {
                for index in (before >> UInt64(level))..<(leaves >> UInt64(level)) {
                    let found: StoredNode.Found
                    do {
                        switch try storedNode(level, index) {
                        case nil: found = .missing
                        case .some(nil): found = .notAHash
                        case .some(let hash?): found = .hash(hash)
                        }
                    } catch {
                        found = .unreadable("\(error)")
                    }
                    batch.storedNodes.append(StoredNode(level: level, index: index, found: found))
                }
                level += 1
            }
        }
    }

    /// Builds the Merkle tree from the record pass's leaves and compares the stored nodes, and
    /// replays the decoded events through the domain rules from an empty state: every event
    /// must be one the rules accept against the state before it, every checkpoint must hold,
    /// and at the end every stored projection must be what the replay gives.
    struct RulePass {
        let pinnedKey: Digest32?
        let maxFindings: Int
        var state = LedgerState()
        var keys: KeyCheck
        var texts = TextsSeen()
        var frontier = MerkleFrontier()
        /// The spans of the Merkle nodes found to disagree.
        var nodeSpans: [ClosedRange<UInt64>] = []
        var findings: [AuditFinding] = []
        var checkpoints: [(seq: UInt64, checkpoint: Checkpoint, holds: Bool)] = []
        let events: UInt64
        /// Whether the ledger holds one election, as far as its stored projections say: a hint
        /// for sizing its voter table, nothing more (see `position(ofElection:)`).
        let oneElection: Bool
        /// Whether the voter table has been sized.
        var votersSized = false

        /// `events`, the ledger's size when the audit starts, sizes the key table once.
        init(pinnedKey: Digest32?, maxFindings: Int, events: UInt64, oneElection: Bool) {
            self.pinnedKey = pinnedKey
            self.maxFindings = maxFindings
            self.events = events
            self.oneElection = oneElection
            keys = KeyCheck(events: events)
        }

        /// The position of the election coded `code` in the state, nil when it is not defined
        /// (yet). In a ledger of one election (the usual case), when its first vote is met, its
        /// voter table is sized for the rest of the ledger, so that it never grows on the way.
        /// (If the hint is wrong, the table is only larger than it need be, or grows.)
        mutating func position(ofElection code: Int32) -> Int? {
            guard let found = texts.election(code, in: state) else { return nil }
            if !votersSized {
                votersSized = true
                if oneElection && state.elections.count == 1 && events > state.lastSeq {
                    state.reserveVoters(Int(min(events - state.lastSeq, 1 << 26)), inElection: found)
                }
            }
            return found
        }

        var full: Bool { findings.count >= maxFindings }

        mutating func note(_ severity: AuditFinding.Severity, _ events: ClosedRange<UInt64>, _ what: String) {
            findings.append(AuditFinding(severity: severity, events: events, what: what))
        }

        /// Replays a batch from the record pass: its keys first (no idempotency key may be used
        /// twice), then its events in sequence order, adding its leaves to the Merkle tree (up
        /// to each checkpoint, to take the root that the checkpoint signs).
        mutating func replay(_ batch: RecordPass.Batch, _ reader: LedgerReader) {
            texts.learn(batch.texts)
            for (seq, what) in keys.repeats(in: batch, reader) { note(.tampered, seq...seq, what) }
            prefetchVoters(of: batch.votes)
            var inTree = 0  // how many of the batch's leaves the frontier holds
            var r = 0
            let records = batch.records
            for vote in batch.votes {
                while r < records.count && records[r].seq < vote.seq {
                    replay(records[r], of: batch, inTree: &inTree, reader)
                    r += 1
                }
                replay(vote, reader)
            }
            for record in records[r...] { replay(record, of: batch, inTree: &inTree, reader) }
            appendLeaves(batch.leaves[inTree...], batch.storedNodes)
        }

        /// A record of `batch`; a checkpoint first brings the tree up to the events before it.
        private mutating func replay(_ record: RecordedEvent, of batch: RecordPass.Batch, inTree: inout Int, _ reader: LedgerReader) {
            var rootBefore: MerkleHash?
            if let before = batch.leavesBefore[record.seq] {
                appendLeaves(batch.leaves[inTree..<before], batch.storedNodes)
                inTree = before
                rootBefore = frontier.root
            }
            replay(record, rootBefore: rootBefore, reader)
        }

        /// Adds the leaves and compares each node they complete with the stored one that the
        /// record pass read (`stored`, in order of level and index). A node over a span that
        /// already holds a disagreeing node adds nothing: every node above an altered record
        /// disagrees, and the lowest one says the most.
        mutating func appendLeaves(_ leaves: ArraySlice<MerkleHash>, _ stored: [RecordPass.StoredNode]) {
            var completed: [(level: Int, index: UInt64, hash: MerkleHash)] = []
            frontier.append(leaves: Array(leaves), storingFrom: LedgerKeys.firstStoredLevel) { level, index, hash in
                completed.append((level, index, hash))
            }
            for node in completed {
                let span = ((node.index << UInt64(node.level)) + 1)...((node.index + 1) << UInt64(node.level))
                if nodeSpans.contains(where: { span.contains($0.lowerBound) && span.contains($0.upperBound) }) { continue }
                var lower = 0, upper = stored.count
                while lower < upper {
                    let mid = (lower + upper) / 2
                    if (stored[mid].level, stored[mid].index) < (node.level, node.index) { lower = mid + 1 } else { upper = mid }
                }
                guard lower < stored.count, stored[lower].level == node.level, stored[lower].index == node.index else {
                    preconditionFailure("the record pass did not read the node at level \(node.level), index \(node.index)")
                }
                let what: String
                switch stored[lower].found {
                case .hash(let hash) where hash == node.hash: continue
                case .hash: what = "they do not hash to their stored Merkle node (level \(node.level)): one of them, or the node, was altered"
                case .missing: what = "their Merkle node (level \(node.level)) is missing from 'merkle'"
                case .notAHash: what = "their stored Merkle node (level \(node.level)) is not 32 bytes"
                case .unreadable(let error): what = "the Merkle node (level \(node.level)) over them cannot be read: \(error)"
                }
                note(.tampered, span, what)
                nodeSpans.append(span)
            }
        }

        /// A node stored past the last event means events were cut off the end.
        mutating func checkTrailingNodes(_ reader: LedgerReader) throws {
            guard let last = try reader.lastStoredNode() else { return }
            let leaves = frontier.size
            if last.level < 0 || last.lastLeaf >= leaves {
                let seq = leaves + 1
                note(.tampered, seq...seq, "the 'merkle' database holds a node over events up to \(last.lastLeaf &+ 1), past the last event (\(leaves)): events were removed from the end")
            }
        }

        /// Brings into cache the voter slots the votes will look up, so that their misses
        /// overlap (see `Key128Map.prefetch`); a run of votes for one election at a time.
        mutating func prefetchVoters(of votes: [CodedVote]) {
            var start = 0
            while start < votes.count {
                let code = votes[start].election
                var end = start + 1
                while end < votes.count && votes[end].election == code { end += 1 }
                if let election = position(ofElection: code) {
                    state.prefetchVoters(votes[start..<end].map(\.voter), inElection: election)
                }
                start = end
            }
        }

        /// A coded vote: checked and counted by the same rule as any vote, its election and
        /// nominee found by code. One the state does not know is read again and replayed in
        /// full, so that the finding says what `check` says of it.
        mutating func replay(_ vote: CodedVote, _ reader: LedgerReader) {
            guard let election = position(ofElection: vote.election), let resolved = texts.resolve(vote, inElection: election, of: state) else {
                do {
                    guard let record = try reader.record(vote.seq) else {
                        throw LedgerError.corruptRecord(seq: vote.seq, reason: "it is no longer there")
                    }
                    replay(record, rootBefore: nil, reader)
                } catch {
                    note(.tampered, vote.seq...vote.seq, "the event cannot be read again: \(error)")
                }
                return
            }
            if let refusal = state.replay(resolved, seq: vote.seq, at: vote.timestamp) {
                note(.tampered, vote.seq...vote.seq, "the rules refuse this \(EventKind.voteCast) event: \(refusal.message)")
            }
        }

        /// `reader` serves the rare rule that looks back at an earlier vote (an invalidation).
        /// `rootBefore` is the Merkle root of the events before a checkpoint.
        mutating func replay(_ record: RecordedEvent, rootBefore: MerkleHash?, _ reader: LedgerReader) {
            let seq = record.seq
            do {
                if let refusal = try state.check(record, lookupVote: { vote in
                    guard case .voteCast(let v)? = try reader.record(vote)?.event else { return nil }
                    return v
                }) {
                    note(.tampered, seq...seq, "the rules refuse this \(record.event.kind) event: \(refusal.message)")
                }
            } catch {
                note(.tampered, seq...seq, "the event it refers to cannot be read: \(error)")
            }
            if case .checkpointSigned(let checkpoint) = record.event, let root = rootBefore {
                let finding = checkpoint.finding(root: root, state: state, pinnedKey: pinnedKey)
                switch finding {
                case .badSignature(let what)?: note(.tampered, seq...seq, "checkpoint: \(what)")
                case .wrongRoot(let what)?: note(.tampered, 1...max(checkpoint.size, 1), "checkpoint at event \(seq): \(what)")
                case .disagrees(let what)?: note(.disagrees, seq...seq, "checkpoint: \(what)")
                case nil: break
                }
                checkpoints.append((seq, checkpoint, finding == nil))
            }
            state.apply(record)
        }

        /// Every stored projection must be the one the replay of events 1…`last` gives, and no
        /// other may be there.
        mutating func compare(_ stored: [String: [[UInt8]: [UInt8]]], through last: UInt64) {
            let expected = LedgerReader.expectedProjections(of: state)
            for db in [LedgerKeys.projections, LedgerKeys.series] {
                let have = stored[db] ?? [:], want = expected[db] ?? [:]
                for key in Set(have.keys).union(want.keys).sorted(by: { $0.lexicographicallyPrecedes($1) }) where have[key] != want[key] {
                    let name = Self.describe(key, in: db)
                    let election = state.elections.first { name.hasPrefix("'\($0.id)'") }
                    let at = election?.lastSeq ?? max(last, 1)
                    let what = want[key] == nil ? "is stored but the replay gives no such document"
                        : have[key] == nil ? "is missing" : "differs from the replay of events 1…\(last)"
                    note(.disagrees, at...at, "the stored \(name) \(what)")
                }
            }
        }

        /// `'imdi-2022' tally` or `'imdi-2022' series bucket 2022-11-03T00:00:00Z`.
        static func describe(_ key: [UInt8], in db: String) -> String {
            guard let zero = key.firstIndex(of: 0) else { return "\(db) entry \(key)" }
            let election = String(decoding: key[..<zero], as: UTF8.self)
            let rest = Array(key[(zero + 1)...])
            if db == LedgerKeys.series, rest.count == 8 {
                let start = Int64(bitPattern: rest.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) } ^ (1 << 63))
                return "'\(election)' series bucket \(Timestamp(microseconds: start).rfc3339)"
            }
            return "'\(election)' \(String(decoding: rest, as: UTF8.self))"
        }
    }
}

extension Audit {
    /// Finds idempotency keys used twice. Each key is hashed with a fast hash, seeded afresh for
    /// every audit, into a `SequenceIndex` (8 bytes a key); a candidate, an earlier event whose
    /// key shares the index's 32 bits, is read back and its key compared. A key used twice is
    /// always found (or, if the earlier event cannot be read, that is a finding); a candidate
    /// that is not one costs a read, once in 2,000 keys at a million.
    struct KeyCheck {
        private var keyIndex: SequenceIndex
        let seed = UInt64.random(in: 1...UInt64.max)

        /// `events` sizes the index once, up to 2^26 keys; past that it doubles as it fills.
        init(events: UInt64) {
            keyIndex = SequenceIndex(capacity: Int(clamping: min(events, 1 << 26)))
        }

        /// Checks the keys of `batch` against every key before them and returns each repeat.
        /// A batch at a time, so that the index's cache misses overlap (`SequenceIndex.prefetch`).
        mutating func repeats(in batch: RecordPass.Batch, _ reader: LedgerReader) -> [(seq: UInt64, what: String)] {
            var keyed: [(seq: UInt64, slot: Key128)] = []
            keyed.reserveCapacity(batch.votes.count + batch.records.count)
            for vote in batch.votes { if let h = vote.keyHash { keyed.append((vote.seq, Key128(a: h, b: 0))) } }
            for record in batch.records where !record.idempotencyKey.isEmpty {
                var key = record.idempotencyKey
                let h = key.withUTF8 { Self.hash(UnsafeRawBufferPointer($0), seed: seed) }
                keyed.append((record.seq, Key128(a: h, b: 0)))
            }
            if !batch.records.isEmpty { keyed.sort { $0.seq < $1.seq } }
            keyIndex.prefetch(keyed.map(\.slot))
            var repeats: [(seq: UInt64, what: String)] = []
            for k in keyed {
                // A candidate shares the index's bits: compare the keys themselves, read again.
                var key: String?
                let earlier = keyIndex.firstEvent(holding: k.slot, lastSeq: k.seq - 1) { candidate in
                    do {
                        if key == nil { key = try reader.record(k.seq)?.idempotencyKey }
                        return try key != nil && reader.record(candidate)?.idempotencyKey == key
                    } catch {
                        repeats.append((k.seq, "cannot tell whether its idempotency key repeats event \(candidate)'s: one of them cannot be read (\(error))"))
                        return false
                    }
                }
                if let earlier, let key {
                    repeats.append((k.seq, "idempotency key '\(key)' was already used by event \(earlier)"))
                } else {
                    keyIndex.insert(k.slot, seq: k.seq)
                }
            }
            return repeats
        }

        /// A seeded 64-bit hash of a short byte string (multiply-and-fold mixing over 8-byte
        /// words): a few nanoseconds, where SHA-256 takes a hundred. Only for spreading keys
        /// over the index: a repeat is confirmed by comparing the keys themselves.
        /// `window` says what may be read around `bytes`, for reading their tail in one load; the
        /// hash does not depend on it.
        static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64, in window: Window = .none) -> UInt64 {
            func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
                let product = a.multipliedFullWidth(by: b)
                return product.high ^ product.low
            }
            var h = seed ^ (UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15)
            var i = 0
            while i + 8 <= bytes.count {
                h = fold(h ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self), 0xA076_1D64_78BD_642F)
                i += 8
            }
            h = fold(h ^ window.word(bytes, i), 0xE703_7ED1_A0B4_28DB)
            return fold(h, 0x8EBC_6AF0_9C88_C6E3)
        }
    }
}
