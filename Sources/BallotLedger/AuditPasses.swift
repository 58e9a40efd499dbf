import BallotDomain

// The two halves of `Audit.verify`. Each owns its state while they run, so that each can have a
// core: the record pass reads the raw records (hashes, Merkle tree, decoding, order); the rule
// pass checks idempotency keys and replays what decodes through the domain rules and checks the
// checkpoints' numbers. The split keeps their CPU time about even.
// Each pass keeps its own findings; `verify` merges them in event order.

extension Audit {
    /// Reads the stored records themselves: no gaps, each decodes, timestamps never go back, and
    /// every stored Merkle node is the one the records give.
    struct RecordPass {
        /// Records that decoded, in order, and for each checkpoint among them the Merkle root of
        /// the events before it.
        struct Batch: Sendable {
            var records: [RecordedEvent] = []
            var rootsBefore: [UInt64: MerkleHash] = [:]
        }

        let maxFindings: Int
        var interner = TextInterner()
        var frontier = MerkleFrontier()
        var lastTime = Timestamp(microseconds: .min)
        /// The sequence number expected next.
        var next: UInt64 = 1
        var findings: [AuditFinding] = []

        init(maxFindings: Int) {
            self.maxFindings = maxFindings
        }

        var full: Bool { findings.count >= maxFindings }

        mutating func note(_ severity: AuditFinding.Severity, _ events: ClosedRange<UInt64>, _ what: String) {
            findings.append(AuditFinding(severity: severity, events: events, what: what))
        }

        /// Checks every record from `start`, handing those that decode to `handoff` in batches,
        /// until the end, `maxFindings`, or the consumer stops taking them.
        mutating func scan(_ reader: LedgerReader, from start: UInt64, into handoff: Handoff<Batch>) throws {
            var taken = true
            try reader.scanBatches(from: start) { stored, storedNode in
                var batch = Batch()
                batch.records.reserveCapacity(stored.count)
                check(stored, storedNode, into: &batch)
                taken = handoff.put(batch)
                return taken && !full
            }
        }

        /// Checks a batch of stored records read in one snapshot (`storedNode` reads from it).
        mutating func check(_ stored: [(seq: UInt64, bytes: UnsafeRawBufferPointer)],
                            _ storedNode: (Int, UInt64) throws -> MerkleHash??, into batch: inout Batch) {
            let leaves = MerkleHash.leaves(stored.map(\.bytes))
            var inTree = 0  // how many of `leaves` the frontier holds
            for (i, (seq, bytes)) in stored.enumerated() {
                if seq != next {
                    note(.tampered, next...next, "event \(next) is missing: the next stored event is \(seq)")
                }
                next = seq + 1
                let record: RecordedEvent
                do {
                    record = try RecordCodec.decode(bytes, seq: seq, interner: &interner)
                } catch {
                    if case .corruptRecord(_, let reason) = error { note(.tampered, seq...seq, reason) } else { note(.tampered, seq...seq, "\(error)") }
                    continue
                }
                if record.timestamp < lastTime {
                    note(.tampered, seq...seq, "its timestamp \(record.timestamp) is earlier than the event before it (\(lastTime))")
                }
                lastTime = max(lastTime, record.timestamp)
                if case .checkpointSigned = record.event {
                    appendLeaves(leaves[inTree..<i], storedNode)
                    inTree = i
                    batch.rootsBefore[seq] = frontier.root
                }
                batch.records.append(record)
            }
            appendLeaves(leaves[inTree...], storedNode)
        }

        /// Adds the leaves and compares each stored node they complete. A node over a span that
        /// already holds a disagreeing node adds nothing: every node above an altered record
        /// disagrees, and the lowest one says the most.
        mutating func appendLeaves(_ leaves: ArraySlice<MerkleHash>, _ storedNode: (Int, UInt64) throws -> MerkleHash??) {
            var completed: [(level: Int, index: UInt64, hash: MerkleHash)] = []
            frontier.append(leaves: Array(leaves), storingFrom: LedgerKeys.firstStoredLevel) { level, index, hash in
                completed.append((level, index, hash))
            }
            for node in completed {
                let span = ((node.index << UInt64(node.level)) + 1)...((node.index + 1) << UInt64(node.level))
                let stored: MerkleHash??
                do {
                    stored = try storedNode(node.level, node.index)
                } catch {
                    note(.tampered, span, "the Merkle node (level \(node.level)) over them cannot be read: \(error)")
                    continue
                }
                if findings.contains(where: { $0.events.count > 1 && span.contains($0.events.lowerBound) && span.contains($0.events.upperBound) }) { continue }
                switch stored {
                case nil: note(.tampered, span, "their Merkle node (level \(node.level)) is missing from 'merkle'")
                case .some(nil): note(.tampered, span, "their stored Merkle node (level \(node.level)) is not 32 bytes")
                case .some(let hash?) where hash != node.hash:
                    note(.tampered, span, "they do not hash to their stored Merkle node (level \(node.level)): one of them, or the node, was altered")
                default: break
                }
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
    }

    /// Replays the decoded events through the domain rules from an empty state: every event must
    /// be one the rules accept against the state before it, every checkpoint must hold, and at
    /// the end every stored projection must be what the replay gives.
    struct RulePass {
        let pinnedKey: Digest32?
        let maxFindings: Int
        var state = LedgerState()
        var keys: KeyCheck
        var findings: [AuditFinding] = []
        var checkpoints: [(seq: UInt64, checkpoint: Checkpoint, holds: Bool)] = []

        /// `events`, the ledger's size when the audit starts, sizes the key table once.
        init(pinnedKey: Digest32?, maxFindings: Int, events: UInt64) {
            self.pinnedKey = pinnedKey
            self.maxFindings = maxFindings
            keys = KeyCheck(events: events)
        }

        /// No idempotency key may be used twice.
        mutating func checkKeys(_ batch: [RecordedEvent], _ reader: LedgerReader) {
            for (seq, what) in keys.repeats(in: batch, reader) { note(.tampered, seq...seq, what) }
        }

        var full: Bool { findings.count >= maxFindings }

        mutating func note(_ severity: AuditFinding.Severity, _ events: ClosedRange<UInt64>, _ what: String) {
            findings.append(AuditFinding(severity: severity, events: events, what: what))
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
        private let seed = UInt64.random(in: 1...UInt64.max)

        /// `events` sizes the index once, up to 2^26 keys; past that it doubles as it fills.
        init(events: UInt64) {
            keyIndex = SequenceIndex(capacity: Int(clamping: min(events, 1 << 26)))
        }

        /// Checks the keys of `batch` against every key before them and returns each repeat.
        /// A batch at a time, so that the index's cache misses overlap (`SequenceIndex.prefetch`).
        mutating func repeats(in batch: [RecordedEvent], _ reader: LedgerReader) -> [(seq: UInt64, what: String)] {
            var keyed: [(seq: UInt64, key: String, slot: Key128)] = []
            keyed.reserveCapacity(batch.count)
            for record in batch where !record.idempotencyKey.isEmpty {
                var key = record.idempotencyKey
                let h = key.withUTF8 { Self.hash(UnsafeRawBufferPointer($0), seed: seed) }
                keyed.append((record.seq, key, Key128(a: h, b: 0)))
            }
            keyIndex.prefetch(keyed.map(\.slot))
            var repeats: [(seq: UInt64, what: String)] = []
            for k in keyed {
                let earlier = keyIndex.firstEvent(holding: k.slot, lastSeq: k.seq - 1) { candidate in
                    do {
                        return try reader.record(candidate)?.idempotencyKey == k.key
                    } catch {
                        repeats.append((k.seq, "cannot tell whether its idempotency key '\(k.key)' repeats event \(candidate)'s: that event cannot be read (\(error))"))
                        return false
                    }
                }
                if let earlier {
                    repeats.append((k.seq, "idempotency key '\(k.key)' was already used by event \(earlier)"))
                } else {
                    keyIndex.insert(k.slot, seq: k.seq)
                }
            }
            return repeats
        }

        /// A seeded 64-bit hash of a short byte string (multiply-and-fold mixing over 8-byte
        /// words): a few nanoseconds, where SHA-256 takes a hundred. Only for spreading keys
        /// over the index: a repeat is confirmed by comparing the keys themselves.
        static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
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
            var tail: UInt64 = 0
            for j in i..<bytes.count { tail |= UInt64(bytes[j]) << (8 * UInt64(j - i)) }
            h = fold(h ^ tail, 0xE703_7ED1_A0B4_28DB)
            return fold(h, 0x8EBC_6AF0_9C88_C6E3)
        }
    }
}
