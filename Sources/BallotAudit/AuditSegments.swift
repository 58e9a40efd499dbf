public import BallotDomain
public import BallotCollections
public import BallotStore
public import BallotFormat

// The part of `Audit.verify` that can run on every core at once: reading a segment of the ledger
// (its records in one read snapshot), hashing its leaves, building the Merkle subtree it forms
// and comparing the stored nodes inside it, and decoding its records. Nothing here depends on
// the segments before: what does (the rules, the tree above the segment, order across segment
// boundaries) is the rule pass's, which takes the segments in order (AuditRules.swift).

extension Audit {
    /// How a run of the audit cuts the ledger from `start`: segment i holds the keys from that
    /// of `first(i)` to that of `first(i + 1)`, the last one every key after (and the first of
    /// a run from event 1 every key before). After the first, the bounds are multiples of
    /// `size` (plus one), so that an intact ledger's full segment is one whole Merkle subtree.
    struct SegmentLayout: Sendable {
        let start: UInt64
        /// A power of two: the records of a full segment.
        let size: UInt64
        let count: Int

        /// Segments from `start` to the ledger's last event as it stands (`last`); records
        /// appended meanwhile fall in the last segment.
        init(start: UInt64, last: UInt64, size: Int) {
            precondition(size > 0 && size & (size - 1) == 0, "a segment of \(size) records")
            self.start = start
            self.size = UInt64(size)
            count = last < start ? 1 : Int((last - 1) / self.size - (start - 1) / self.size) + 1
        }

        /// The sequence number segment `i` starts at.
        func first(_ i: Int) -> UInt64 { i == 0 ? start : ((start - 1) / size + UInt64(i)) * size + 1 }
        /// Where segment `i` ends (the first sequence number of the next), nil for the last.
        func end(_ i: Int) -> UInt64? { i == count - 1 ? nil : first(i + 1) }

        /// Whether segment `i` starts at the very first key: the first of a run from event 1,
        /// so that a key sorting before event 1's is met too.
        func fromTheFirstKey(_ i: Int) -> Bool { i == 0 && start == 1 }
    }

    /// What checking one segment gives the rule pass.
    struct Batch: Sendable {
        /// Which `SegmentChecker` made it: the codes of `votes` are that checker's.
        var worker: Int
        /// The sequence number the segment starts at: its first record is leaf `first - 1` when
        /// no record before it is missing, which is what `storedNodes` and `subtree` assume.
        var first: UInt64
        /// The sequence numbers of its first and last records; nil when it has none.
        var seqs: ClosedRange<UInt64>?
        var leaves: [MerkleHash] = []
        var votes: [CodedVote] = []
        var records: [RecordedEvent] = []
        /// The texts first coded in it, in code order.
        var texts: [String] = []
        /// For each checkpoint among the records, how many of `leaves` come before it.
        var leavesBefore: [UInt64: Int] = [:]
        /// The stored Merkle nodes that its leaves complete, read in its snapshot.
        var storedNodes = StoredNodes()
        /// When its leaves are a whole aligned subtree (a full segment, nothing missing, no
        /// checkpoint among them): the subtree's root, its nodes already compared with the
        /// stored ones (`nodeFindings`, over `nodeSpans`).
        var subtree: (level: Int, hash: MerkleHash)?
        var nodeFindings: [AuditFinding] = []
        var nodeSpans: [ClosedRange<UInt64>] = []
        /// Records that do not decode, and events missing between its records.
        var findings: [AuditFinding] = []
        /// What stopped the read (a key that is not 8 bytes, a failing LMDB call), after the
        /// records before it.
        var error: (any Error)?

        init(worker: Int, first: UInt64) {
            self.worker = worker
            self.first = first
        }

        /// Emptied for another segment, keeping the storage of its larger parts.
        mutating func reset(worker: Int, first: UInt64) {
            self.worker = worker
            self.first = first
            seqs = nil
            leaves.removeAll(keepingCapacity: true)
            votes.removeAll(keepingCapacity: true)
            storedNodes.nodes.removeAll(keepingCapacity: true)
            storedNodes.unreadable = nil
            records = []
            texts = []
            leavesBefore = [:]
            subtree = nil
            nodeFindings = []
            nodeSpans = []
            findings = []
            error = nil
        }
    }

    /// The stored Merkle nodes over some leaves, as read in one snapshot: those whose last leaf
    /// is among them, which are the nodes those leaves complete, and lie together in 'merkle'.
    struct StoredNodes: Sendable {
        /// In key order: last leaf, then level. The hash is nil when the value is not 32 bytes.
        var nodes: [(lastLeaf: UInt64, level: Int, hash: MerkleHash?)] = []
        /// Why they could not be read, if they could not.
        var unreadable: String?

        enum Found {
            case hash(MerkleHash)
            case missing
            case notAHash
            case unreadable(String)
        }

        /// The nodes over the `count` leaves after the first `before`, by `read` (which gives
        /// those whose last leaf is in a range, in key order, appending them to its array).
        static func over(_ count: Int, after before: UInt64,
                         _ read: (Range<UInt64>, inout [(lastLeaf: UInt64, level: Int, hash: MerkleHash?)]) throws -> Void) -> StoredNodes {
            var nodes = StoredNodes()
            nodes.read(over: count, after: before, read)
            return nodes
        }

        /// `over(_:after:_:)`, into these (emptied first).
        mutating func read(over count: Int, after before: UInt64,
                           _ read: (Range<UInt64>, inout [(lastLeaf: UInt64, level: Int, hash: MerkleHash?)]) throws -> Void) {
            nodes.removeAll(keepingCapacity: true)
            unreadable = nil
            do {
                try read(before..<(before + UInt64(count)), &nodes)
            } catch {
                nodes.removeAll()
                unreadable = "\(error)"
            }
        }

        /// What is stored for node (`level`, `index`), which must be one of those covered.
        func find(level: Int, index: UInt64) -> Found {
            if let unreadable { return .unreadable(unreadable) }
            let lastLeaf = ((index + 1) << UInt64(level)) &- 1
            var lower = 0, upper = nodes.count
            while lower < upper {
                let mid = (lower + upper) / 2
                if (nodes[mid].lastLeaf, nodes[mid].level) < (lastLeaf, level) { lower = mid + 1 } else { upper = mid }
            }
            guard lower < nodes.count, nodes[lower].lastLeaf == lastLeaf, nodes[lower].level == level else { return .missing }
            return nodes[lower].hash.map { .hash($0) } ?? .notAHash
        }
    }

    /// Checks segments, on whichever thread runs it: one per thread, each with its own text codes.
    struct SegmentChecker {
        let worker: Int
        let layout: SegmentLayout
        /// `KeyCheck`'s seed, to hash each vote's idempotency key as it is decoded.
        let keySeed: UInt64
        var codes = TextCodes()

        init(worker: Int, layout: SegmentLayout, keySeed: UInt64) {
            self.worker = worker
            self.layout = layout
            self.keySeed = keySeed
        }

        /// Reads segment `i` in one snapshot and checks it, into `reuse` when given.
        mutating func check(_ i: Int, _ reader: LedgerReader, reusing reuse: Batch? = nil) -> Batch {
            var batch = reuse ?? Batch(worker: worker, first: layout.first(i))
            batch.reset(worker: worker, first: layout.first(i))
            do {
                try reader.readSegment(from: layout.first(i), to: layout.end(i), fromTheFirstKey: layout.fromTheFirstKey(i)) { stored, storedNodes in
                    check(stored, storedNodes, into: &batch)
                }
            } catch {
                batch.error = error
            }
            return batch
        }

        /// Checks a segment's records (`storedNodes` reads from their snapshot).
        mutating func check(_ stored: [(seq: UInt64, bytes: UnsafeRawBufferPointer)],
                            _ storedNodes: (Range<UInt64>, inout [(lastLeaf: UInt64, level: Int, hash: MerkleHash?)]) throws -> Void,
                            into batch: inout Batch) {
            guard let firstSeq = stored.first?.seq, let lastSeq = stored.last?.seq else { return }
            batch.seqs = firstSeq...lastSeq
            batch.votes.reserveCapacity(stored.count)
            batch.leaves.reserveCapacity(stored.count)
            // A slice at a time, hashed then decoded, so that decoding finds the records still in
            // the nearest cache (hashing the whole segment first left them in the next one).
            for slice in stride(from: 0, to: stored.count, by: Self.slice) {
                let end = min(slice + Self.slice, stored.count)
                MerkleHash.appendLeaves(count: end - slice, to: &batch.leaves) { stored[slice + $0].bytes }
                var i = slice
                while i < end {
                    if i > 0 && stored[i].seq != stored[i - 1].seq + 1 {
                        let missing = stored[i - 1].seq + 1
                        batch.findings.append(AuditFinding(severity: .tampered, events: missing...missing,
                                                           what: "event \(missing) is missing: the next stored event is \(stored[i].seq)"))
                    }
                    // Nearly every record: a vote read at fixed offsets, a run of them at a time.
                    let next = CodedVote.appendCommon(stored, i..<end, to: &batch.votes, codes: &codes, keySeed: keySeed)
                    if next > i {
                        i = next
                    } else {
                        decodeInFull(stored[i], at: i, into: &batch)
                        i += 1
                    }
                }
            }
            batch.texts = codes.takeNew()
            batch.storedNodes.read(over: stored.count, after: batch.first - 1, storedNodes)
            buildSubtree(of: &batch)
        }

        /// Records hashed and decoded together: a multiple of the 16 that are hashed at a time.
        static let slice = 128

        /// A record `CodedVote.appendCommon` leaves: anything but a vote as nearly every one is.
        @inline(never)
        private mutating func decodeInFull(_ stored: (seq: UInt64, bytes: UnsafeRawBufferPointer), at i: Int, into batch: inout Batch) {
            let (seq, bytes) = stored
            do {
                if let vote = try CodedVote.fieldByField(bytes, seq: seq, codes: &codes, keySeed: keySeed) {
                    batch.votes.append(vote)
                    return
                }
                let record = try RecordCodec.decode(bytes, seq: seq)
                if case .checkpointSigned = record.event { batch.leavesBefore[seq] = i }
                batch.records.append(record)
            } catch {
                let reason: String
                if case .corruptRecord(_, let why) = error { reason = why } else { reason = "\(error)" }
                batch.findings.append(AuditFinding(severity: .tampered, events: seq...seq, what: reason))
            }
        }

        /// When the segment is full, nothing in it is missing, it starts on a multiple of its size
        /// and holds no checkpoint (whose root would be wanted part way), its leaves are one
        /// whole subtree of the Merkle tree: builds it, and compares its nodes with the stored ones.
        private func buildSubtree(of batch: inout Batch) {
            let size = layout.size
            guard UInt64(batch.leaves.count) == size, batch.seqs == batch.first...(batch.first + size - 1),
                  (batch.first - 1) % size == 0, batch.leavesBefore.isEmpty else { return }
            var tree = MerkleFrontier(emptyAt: batch.first - 1)
            var nodes = NodeCheck()
            var completed: [(level: Int, index: UInt64, hash: MerkleHash)] = []
            tree.append(leaves: batch.leaves, storingFrom: LedgerKeys.firstStoredLevel) { completed.append(($0, $1, $2)) }
            batch.nodeFindings = nodes.compare(completed, with: batch.storedNodes)
            batch.nodeSpans = nodes.spans
            batch.subtree = (size.trailingZeroBitCount, tree.root)
        }
    }

    /// Compares the Merkle nodes a replay computes with the stored ones. A node over a span that
    /// already holds a disagreeing node adds nothing: every node above an altered record
    /// disagrees, and the lowest one says the most.
    struct NodeCheck {
        /// The spans of the nodes found to disagree.
        var spans: [ClosedRange<UInt64>] = []

        /// The findings for `completed` (as `MerkleFrontier` completes them), each looked up in
        /// `stored`, which covers them.
        mutating func compare(_ completed: [(level: Int, index: UInt64, hash: MerkleHash)],
                              with stored: StoredNodes) -> [AuditFinding] {
            var findings: [AuditFinding] = []
            for node in completed {
                let span = ((node.index << UInt64(node.level)) + 1)...((node.index + 1) << UInt64(node.level))
                if spans.contains(where: { span.contains($0.lowerBound) && span.contains($0.upperBound) }) { continue }
                let what: String
                switch stored.find(level: node.level, index: node.index) {
                case .hash(let hash) where hash == node.hash: continue
                case .hash: what = "they do not hash to their stored Merkle node (level \(node.level)): one of them, or the node, was altered"
                case .missing: what = "their Merkle node (level \(node.level)) is missing from 'merkle'"
                case .notAHash: what = "their stored Merkle node (level \(node.level)) is not 32 bytes"
                case .unreadable(let error): what = "the Merkle node (level \(node.level)) over them cannot be read: \(error)"
                }
                findings.append(AuditFinding(severity: .tampered, events: span, what: what))
                spans.append(span)
            }
            return findings
        }
    }
}
