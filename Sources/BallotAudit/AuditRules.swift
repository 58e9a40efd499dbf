public import BallotDomain
public import BallotCollections
public import BallotStore
public import BallotFormat

// The part of `Audit.verify` that must go in order: the segments' records through the domain
// rules from the state it starts from (`AuditStart`), the Merkle tree above the segments,
// checkpoints, idempotency keys,
// and the order of events across segment boundaries (AuditSegments.swift has the rest).

extension Audit {
    /// Takes the checked segments in order: replays their events through the domain rules from
    /// its start (every event must be one the rules accept against the state before it),
    /// builds the Merkle tree above them and compares the stored nodes there, checks every
    /// checkpoint, that no idempotency key repeats and that events follow one another across
    /// segments; at the end every stored projection must be what the replay gives.
    struct RulePass {
        let pinnedKey: Digest32?
        /// The ledger's id, which jurors' statements name.
        let ledgerID: [UInt8]
        let maxFindings: Int
        var state: LedgerState
        var keys: KeyCheck
        /// Per segment checker: what its text codes stand for.
        var texts: [TextsSeen] = []
        var frontier: MerkleFrontier
        var nodes = NodeCheck()
        /// What the records themselves show (they do not decode, are missing, or go back in
        /// time), and what the rules and hashes show: each is kept to `maxFindings`.
        var recordFindings: [AuditFinding] = []
        var findings: [AuditFinding] = []
        var checkpoints: [(seq: UInt64, checkpoint: Checkpoint, holds: Bool)] = []
        /// The sequence number expected next, and the latest timestamp so far.
        var next: UInt64
        var lastTime: Timestamp
        /// The run of votes being gathered for the rules (kept to keep its storage).
        private var run: [RecordedVote] = []
        /// A follower's pass (`Audit.ChunkCheck`): what it changes is noted here, so that its
        /// store can be taken back; nil for an audit.
        var journal: LedgerState.Journal?
        /// A follower's pass keeps the Merkle nodes its leaves complete, to store them, where an
        /// audit compares them with the stored ones.
        var keepsNodes = false
        var completedNodes: [(level: Int, index: UInt64, hash: MerkleHash)] = []
        /// A follower's pass: the keys it added to `keys` (to take them back; nil for an audit),
        /// and the elections its events changed, each with the votes-over-time buckets (their
        /// starts) they fell in.
        var keysAdded: [(key: Key128, seq: UInt64)]?
        var changed: [(election: Int, buckets: BucketSet)] = []

        init(_ start: AuditStart, pinnedKey: Digest32?, maxFindings: Int, ledgerID: [UInt8]) {
            self.pinnedKey = pinnedKey
            self.ledgerID = ledgerID
            self.maxFindings = maxFindings
            state = start.state
            frontier = start.frontier
            next = start.state.lastSeq + 1
            lastTime = start.state.lastSeq == 0 ? Timestamp(microseconds: .min) : start.lastTimestamp
            keys = KeyCheck(index: start.keyIndex, seed: start.keySeed)
        }

        /// Before a run of segments checked by `checkers` fresh segment checkers (whose codes
        /// start again).
        mutating func start(checkers: Int) {
            texts = Array(repeating: TextsSeen(), count: checkers)
        }

        /// The position of the election coded `code` in the state, nil when it is not defined (yet).
        @inline(__always)
        func position(ofElection code: Int32, in seen: inout TextsSeen) -> Int? {
            seen.election(code, find: { state.ordinal(ofElection: $0) })
        }

        var full: Bool { findings.count >= maxFindings || recordFindings.count >= maxFindings }

        mutating func note(_ severity: AuditFinding.Severity, _ events: ClosedRange<UInt64>, _ what: String) {
            findings.append(AuditFinding(severity: severity, events: events, what: what))
        }

        /// Takes the next segment: where it starts (nothing may be missing before it), its keys
        /// (no idempotency key may be used twice), then its events in sequence order, then its
        /// leaves into the Merkle tree (up to each checkpoint first, to take the root that the
        /// checkpoint signs). What stopped its read is thrown after its records.
        mutating func replay(_ batch: Batch, _ reader: LedgerReader) throws {
            try replay(batch, record: reader.record) { try reader.storedNodes(lastLeaves: $0, into: &$1) }
        }

        /// `replay(_:_:)`, reading earlier events with `record` (the rare rule that looks back
        /// at one, and a repeated key's first use) and the stored Merkle nodes over some leaves
        /// with `storedNodes` (not called by a pass that keeps its nodes).
        mutating func replay(_ batch: Batch, record: RecordLookup,
                             storedNodes: (Range<UInt64>, inout [(lastLeaf: UInt64, level: Int, hash: MerkleHash?)]) throws -> Void) throws {
            // The tables' room for the segment first: the one step that can fail (a table in a
            // file whose disk is full), before anything of the segment is applied.
            let events = batch.votes.count + batch.records.count
            do {
                try state.reserveVoters(events)
                try keys.keyIndex.reserve(events)
            } catch {
                throw LedgerError.tables(error)
            }
            // The texts of the checker that coded the segment's votes, out of the array while in use.
            var seen = TextsSeen()
            swap(&seen, &texts[batch.worker])
            defer { swap(&seen, &texts[batch.worker]) }
            seen.learn(batch.texts)
            if let seqs = batch.seqs {
                if seqs.lowerBound != next {
                    recordFindings.append(AuditFinding(severity: .tampered, events: next...next,
                                                       what: "event \(next) is missing: the next stored event is \(seqs.lowerBound)"))
                }
                next = seqs.upperBound + 1
            }
            recordFindings += batch.findings
            for (seq, what) in keys.repeats(in: batch, record, added: &keysAdded) {
                note(.tampered, seq...seq, what)
            }
            // The stored nodes the segment's leaves complete were read assuming nothing before it
            // is missing; if something is, they sit elsewhere in the tree: read those instead.
            let aligned = frontier.size == batch.first - 1
            let stored = aligned || keepsNodes ? batch.storedNodes
                : StoredNodes.over(batch.leaves.count, after: frontier.size, storedNodes)
            var inTree = 0  // how many of the batch's leaves the frontier holds
            var r = 0
            let records = batch.records
            // Votes go to the rules a run at a time: those of one election with no other event
            // between them (nearly always the whole segment).
            run.removeAll(keepingCapacity: true)
            var runElection = -1
            for vote in batch.votes {
                while r < records.count && records[r].seq < vote.seq {
                    replayRun(inElection: runElection, record)
                    replay(records[r], of: batch, stored, inTree: &inTree, record)
                    r += 1
                }
                checkTime(vote.timestamp, vote.seq)
                guard let election = position(ofElection: vote.election, in: &seen),
                      let resolved = seen.resolve(vote, inElection: election, find: { state.ordinal(ofNominee: $0, inElection: election) }) else {
                    replayRun(inElection: runElection, record)
                    replayInFull(vote, record)
                    continue
                }
                if election != runElection {
                    replayRun(inElection: runElection, record)
                    runElection = election
                }
                run.append(RecordedVote(resolved, seq: vote.seq, recordedAt: vote.timestamp))
            }
            replayRun(inElection: runElection, record)
            for event in records[r...] { replay(event, of: batch, stored, inTree: &inTree, record) }
            if aligned, !keepsNodes, let subtree = batch.subtree {
                findings += batch.nodeFindings
                nodes.spans += batch.nodeSpans
                var completed: [(level: Int, index: UInt64, hash: MerkleHash)] = []
                frontier.append(subtree: subtree.hash, level: subtree.level) { level, index, hash in
                    if level >= LedgerKeys.firstStoredLevel { completed.append((level, index, hash)) }
                }
                findings += nodes.compare(completed, with: stored)
            } else {
                appendLeaves(batch.leaves[inTree...], stored)
            }
            if let error = batch.error { throw error }
        }

        /// Timestamps never go back.
        @inline(__always)
        private mutating func checkTime(_ timestamp: Timestamp, _ seq: UInt64) {
            if timestamp < lastTime { noteTimeGoesBack(timestamp, seq) }
            lastTime = max(lastTime, timestamp)
        }

        @inline(never)
        private mutating func noteTimeGoesBack(_ timestamp: Timestamp, _ seq: UInt64) {
            recordFindings.append(AuditFinding(severity: .tampered, events: seq...seq,
                                               what: "its timestamp \(timestamp) is earlier than the event before it (\(lastTime))"))
        }

        /// A record of `batch`; a checkpoint first brings the tree up to the events before it.
        private mutating func replay(_ record: RecordedEvent, of batch: Batch, _ stored: StoredNodes, inTree: inout Int,
                                     _ lookup: RecordLookup) {
            checkTime(record.timestamp, record.seq)
            var rootBefore: MerkleHash?
            if let before = batch.leavesBefore[record.seq] {
                appendLeaves(batch.leaves[inTree..<before], stored)
                inTree = before
                rootBefore = frontier.root
            }
            replay(record, rootBefore: rootBefore, lookup)
        }

        /// Adds the leaves and compares each node they complete with the stored one (`stored`,
        /// in order of level and index).
        mutating func appendLeaves(_ leaves: ArraySlice<MerkleHash>, _ stored: StoredNodes) {
            var completed: [(level: Int, index: UInt64, hash: MerkleHash)] = []
            frontier.append(leaves: Array(leaves), storingFrom: LedgerKeys.firstStoredLevel) { level, index, hash in
                completed.append((level, index, hash))
            }
            if keepsNodes {
                completedNodes += completed
            } else {
                findings += nodes.compare(completed, with: stored)
            }
        }

        /// A node stored past the last event means events were cut off the end.
        /// `last` is the key of the last stored node, read with the ledger's end.
        mutating func checkTrailingNodes(_ last: (lastLeaf: UInt64, level: Int)?) {
            guard let last else { return }
            let leaves = frontier.size
            if last.level < 0 || last.lastLeaf >= leaves {
                let seq = leaves + 1
                note(.tampered, seq...seq, "the 'merkle' database holds a node over events up to \(last.lastLeaf &+ 1), past the last event (\(leaves)): events were removed from the end")
            }
        }

        /// Checks and counts the votes in `run` (all of the election at `election`) by the same
        /// rule as any vote, and empties it.
        private mutating func replayRun(inElection election: Int, _ record: RecordLookup) {
            guard !run.isEmpty else { return }
            var refused: [(seq: UInt64, refusal: DomainError)] = []
            state.replay(run, inElection: election, journal: &journal, lookupVote: { seq in
                guard case .voteCast(let v)? = try record(seq)?.event else { return nil }
                return v
            }) { i, refusal in refused.append((run[i].seq, refusal)) }
            if journal != nil { noteChanged(election, buckets: run.lazy.map(\.vote.castAt)) }
            for (seq, refusal) in refused {
                note(.tampered, seq...seq, "the rules refuse this \(EventKind.voteCast) event: \(refusal.message)")
            }
            run.removeAll(keepingCapacity: true)
        }

        /// A coded vote whose election or nominee the state does not know: read again and
        /// replayed in full, so that the finding says what `check` says of it.
        private mutating func replayInFull(_ vote: CodedVote, _ lookup: RecordLookup) {
            do {
                guard let record = try lookup(vote.seq) else {
                    throw LedgerError.corruptRecord(seq: vote.seq, reason: "it is no longer there")
                }
                replay(record, rootBefore: nil, lookup)
            } catch {
                note(.tampered, vote.seq...vote.seq, "the event cannot be read again: \(error)")
            }
        }

        /// `lookup` serves the rare rule that looks back at an earlier vote (an invalidation).
        /// `rootBefore` is the Merkle root of the events before a checkpoint.
        mutating func replay(_ record: RecordedEvent, rootBefore: MerkleHash?, _ lookup: RecordLookup) {
            let seq = record.seq
            var refusal: DomainError?
            do {
                refusal = try Audit.ruleRefusal(record, after: state, ledgerID: ledgerID, lookupVote: { vote in
                    // Only an event before this one: the rules judge it as the ledger stood
                    // (an invalidation of a later vote names no vote, as when it was decided).
                    guard vote < seq, case .voteCast(let v)? = try lookup(vote)?.event else { return nil }
                    return v
                })
                if let refusal {
                    note(.tampered, seq...seq, "the rules refuse this \(record.event.kind) event: \(refusal.message)")
                }
            } catch {
                note(.tampered, seq...seq, "the event it refers to cannot be read: \(error)")
            }
            if case .checkpointSigned(let checkpoint) = record.event, let root = rootBefore {
                // Unpinned, the first checkpoint's key stands for the ledger's signer: the first
                // this pass met, else (a pass from a kept state, or a follower's) the last one
                // before it began.
                let earlierKey = checkpoints.first?.checkpoint.publicKey ?? state.lastCheckpoint?.checkpoint.publicKey
                let check = Audit.checkpoint(checkpoint, at: seq, rootBefore: root, state: state, ledgerID: ledgerID,
                                             pinnedKey: pinnedKey, earlierKey: earlierKey)
                // A follower refuses records, not spans: a root the events before it do not
                // give is the checkpoint's finding.
                findings += journal == nil ? check.findings
                    : check.findings.map { AuditFinding(severity: $0.severity, events: seq...seq, what: $0.what) }
                checkpoints.append((seq, checkpoint, check.holds))
            }
            if journal != nil {
                // A follower keeps nothing of a pass that found anything (its journal takes it
                // all back), so a refused event applied here is never kept.
                state.apply(record, journal: &journal!)
                noteChanged(record.event)
            } else {
                state.apply(record, checked: refusal)
            }
        }

        /// A follower's pass: notes that the votes of a run changed the election at `election`,
        /// and the votes-over-time buckets their `cast_at` times fall in (which change in runs:
        /// votes come nearly in time order).
        private mutating func noteChanged(_ election: Int, buckets castAt: some Sequence<Timestamp>) {
            let definition = state.elections[election].definition
            let entry = changedEntry(election)
            for time in castAt { changed[entry].buckets.insert(definition.bucket(of: time), width: definition.bucketMicroseconds) }
        }

        /// A follower's pass: notes what `event`, just applied, changed (see `noteChanged(_:buckets:)`).
        private mutating func noteChanged(_ event: Event) {
            guard let id = event.election, let election = state.ordinal(ofElection: id) else { return }
            if let time = event.seriesTime {
                noteChanged(election, buckets: CollectionOfOne(time))
            } else {
                _ = changedEntry(election)
            }
        }

        private mutating func changedEntry(_ election: Int) -> Int {
            if let last = changed.indices.last, changed[last].election == election { return last }
            if let i = changed.firstIndex(where: { $0.election == election }) { return i }
            changed.append((election, BucketSet()))
            return changed.count - 1
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
    /// Finds idempotency keys used twice. Each key is hashed with a fast hash, seeded (afresh for
    /// every auditor's process, `IdempotencySlot.seed`; the daemon's kept seed for its own
    /// tables) into a `SequenceIndex` (8 bytes a key); a
    /// candidate, an earlier event whose key shares the index's 32 bits, is read back and its
    /// key compared. A key used twice is always found (or, if the earlier event cannot be read,
    /// that is a finding); a candidate that is not one costs a read, once in 2,000 keys at a
    /// million. The index it ends with is the writer's, when a writer opens the ledger.
    struct KeyCheck {
        let keyIndex: SequenceIndex
        let seed: UInt64

        init(index: SequenceIndex, seed: UInt64) {
            keyIndex = index
            self.seed = seed
        }

        /// Checks the keys of `batch` against every key before them and returns each repeat;
        /// `added`, when not nil, gets the keys added to the index.
        func repeats(in batch: Batch, _ record: RecordLookup, added: inout [(key: Key128, seq: UInt64)]?) -> [(seq: UInt64, what: String)] {
            // Written in place: an append checks the array is unshared, for every key. (None is
            // []: see `MerkleHash.hashed` on the shared empty array.)
            var keyed = batch.votes.isEmpty ? [] : [(key: Key128, seq: UInt64)](unsafeUninitializedCapacity: batch.votes.count) { keys, made in
                for vote in batch.votes {
                    guard let hash = vote.keyHash else { continue }
                    (keys.baseAddress! + made).initialize(to: (Key128(a: hash, b: 0), vote.seq))
                    made += 1
                }
            }
            if batch.records.contains(where: { !$0.idempotencyKey.isEmpty }) {
                // Events decoded in full with keys (rare): other kinds, whose keys are hashed
                // after their scope's name (`IdempotencyScope`: another kind's key is another
                // key), and votes the coded path could not take (a long election or nominee id),
                // whose keys share the votes' space. Every key in sequence order.
                for record in batch.records where !record.idempotencyKey.isEmpty {
                    keyed.append((IdempotencyScope(record.event).slot(record.idempotencyKey, seed: seed), record.seq))
                }
                keyed.sort { $0.seq < $1.seq }
            }
            // A candidate shares the index's bits: the keys themselves, and their scopes, are
            // compared, read again.
            var repeats: [(seq: UInt64, what: String)] = []
            var read: [Int: (key: String, scope: IdempotencyScope)] = [:]  // read back, by position in `keyed`
            let held = keyIndex.insert(keyed) { i, candidate in
                do {
                    guard let this = try read[i] ?? record(keyed[i].seq).map({ ($0.idempotencyKey, IdempotencyScope($0.event)) }) else { return false }
                    read[i] = this
                    guard let other = try record(candidate) else { return false }
                    return other.idempotencyKey == this.key && IdempotencyScope(other.event) == this.scope
                } catch {
                    repeats.append((keyed[i].seq, "cannot tell whether its idempotency key repeats event \(candidate)'s: one of them cannot be read (\(error))"))
                    return false
                }
            }
            for (i, earlier) in held {
                repeats.append((keyed[i].seq, "idempotency key '\(read[i]?.key ?? "")' was already used by event \(earlier)"))
            }
            // Those held were not added, nor those already there for the same event: taking
            // either back removes nothing that the index held for an event before the batch.
            added?.append(contentsOf: keyed)
            return repeats.sorted { $0.seq < $1.seq }
        }
    }
}
