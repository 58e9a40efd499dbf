import BallotDomain

// The part of `Audit.verify` that can run on every core at once: reading a segment of the ledger
// (its records in one read snapshot), hashing its leaves, building the Merkle subtree it forms
// and comparing the stored nodes inside it, and decoding its records. Nothing here depends on
// the segments before: what does (the rules, the tree above the segment, order across segment
// boundaries) is the rule pass's, which takes the segments in order (AuditRules.swift).

extension Audit {
    /// How a run of the audit cuts the ledger from `start`: segment i holds the keys from that
    /// of `first(i)` to that of `first(i + 1)`, the last one every key after. Inside the first,
    /// the bounds are multiples of `size` (plus one), so that an intact ledger's full segment
    /// is one whole Merkle subtree.
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
        /// The stored Merkle nodes that its leaves complete, read in its snapshot, in order of
        /// level, then index: the order in which `MerkleFrontier` completes them.
        var storedNodes: [StoredNode] = []
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
    }

    /// A stored Merkle node, as read in a segment's snapshot.
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

        /// The stored nodes (from `LedgerKeys.firstStoredLevel` up) that `count` leaves after the
        /// first `before` complete: at each level, those whose last leaf is among them.
        static func completed(by count: Int, after before: UInt64,
                              _ storedNode: (Int, UInt64) throws -> MerkleHash??) -> [StoredNode] {
            var nodes: [StoredNode] = []
            let after = before + UInt64(count)
            var level = LedgerKeys.firstStoredLevel
            while level < 64 && after >> UInt64(level) > before >> UInt64(level) {
                for index in (before >> UInt64(level))..<(after >> UInt64(level)) {
                    let found: Found
                    do {
                        switch try storedNode(level, index) {
                        case nil: found = .missing
                        case .some(nil): found = .notAHash
                        case .some(let hash?): found = .hash(hash)
                        }
                    } catch {
                        found = .unreadable("\(error)")
                    }
                    nodes.append(StoredNode(level: level, index: index, found: found))
                }
                level += 1
            }
            return nodes
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

        /// Reads segment `i` in one snapshot and checks it.
        mutating func check(_ i: Int, _ reader: LedgerReader) -> Batch {
            var batch = Batch(worker: worker, first: layout.first(i))
            do {
                try reader.readSegment(from: layout.first(i), to: layout.end(i)) { stored, storedNode in
                    check(stored, storedNode, into: &batch)
                }
            } catch {
                batch.error = error
            }
            return batch
        }

        /// Checks a segment's records (`storedNode` reads from their snapshot).
        mutating func check(_ stored: [(seq: UInt64, bytes: UnsafeRawBufferPointer)],
                            _ storedNode: (Int, UInt64) throws -> MerkleHash??, into batch: inout Batch) {
            guard let firstSeq = stored.first?.seq, let lastSeq = stored.last?.seq else { return }
            batch.seqs = firstSeq...lastSeq
            batch.votes.reserveCapacity(stored.count)
            batch.leaves.reserveCapacity(stored.count)
            // A slice at a time, hashed then decoded, so that decoding finds the records still in
            // the nearest cache (hashing the whole segment first left them in the next one).
            for slice in stride(from: 0, to: stored.count, by: Self.slice) {
                let end = min(slice + Self.slice, stored.count)
                batch.leaves += MerkleHash.leaves(count: end - slice) { stored[slice + $0].bytes }
                for i in slice..<end {
                    if i > 0 && stored[i].seq != stored[i - 1].seq + 1 {
                        let missing = stored[i - 1].seq + 1
                        batch.findings.append(AuditFinding(severity: .tampered, events: missing...missing,
                                                           what: "event \(missing) is missing: the next stored event is \(stored[i].seq)"))
                    }
                    decode(stored[i], at: i, into: &batch)
                }
            }
            batch.texts = codes.takeNew()
            batch.storedNodes = StoredNode.completed(by: stored.count, after: batch.first - 1, storedNode)
            buildSubtree(of: &batch)
        }

        /// Records hashed and decoded together: a multiple of the 16 that are hashed at a time.
        static let slice = 128

        /// The record at position `i` of its segment, decoded: a vote with its texts coded, any
        /// other event in full.
        private mutating func decode(_ stored: (seq: UInt64, bytes: UnsafeRawBufferPointer), at i: Int, into batch: inout Batch) {
            let (seq, bytes) = stored
            do {
                if let vote = try CodedVote.decode(bytes, seq: seq, codes: &codes, keySeed: keySeed) {
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
        /// `stored` (in order of level and index, holding every one of them).
        mutating func compare(_ completed: [(level: Int, index: UInt64, hash: MerkleHash)],
                              with stored: [StoredNode]) -> [AuditFinding] {
            var findings: [AuditFinding] = []
            for node in completed {
                let span = ((node.index << UInt64(node.level)) + 1)...((node.index + 1) << UInt64(node.level))
                if spans.contains(where: { span.contains($0.lowerBound) && span.contains($0.upperBound) }) { continue }
                var lower = 0, upper = stored.count
                while lower < upper {
                    let mid = (lower + upper) / 2
                    if (stored[mid].level, stored[mid].index) < (node.level, node.index) { lower = mid + 1 } else { upper = mid }
                }
                guard lower < stored.count, stored[lower].level == node.level, stored[lower].index == node.index else {
                    preconditionFailure("the stored node at level \(node.level), index \(node.index) was not read")
                }
                let what: String
                switch stored[lower].found {
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
