/// An election's counts: valid votes per nominee, and the votes-over-time series (valid votes
/// per bucket of `cast_at` and nominee). A value held by `ElectionState`'s storage and
/// changed in place, one access per vote (or, in a replay, taken out for a whole run), so
/// that counting needs no exclusivity checks per field and no opt-out of them.
///
/// The series: the buckets numbered 0..<hasRow.count from the origin, nearly every vote's, are
/// rows of `dense` (bucket n's count for nominee i at n * rowStride + i), which a vote finds by
/// its number with no hashing and no array of its own; `hasRow[n]` says whether bucket n has
/// one. Every other bucket's row is in `sparse`. The dense range grows (doubling) to take a
/// bucket past it only while the rows fill about half of it, and to at most 2^20 counts
/// (8 MB), so that a few far buckets (a ledger can hold votes cast at any time, counted all the
/// same) stay in the dictionary instead of making megabytes of empty rows.
struct ElectionCounts: Sendable {
    /// Valid votes per nominee ordinal.
    var votes: [Int] = []
    /// Every vote accepted, valid or since invalidated: the turnout.
    var votesCast = 0
    /// How many nominees there are (a row's length).
    private(set) var nominees = 0
    let bucketOrigin: Timestamp
    /// In microseconds.
    let bucketWidth: Int64
    var dense: [Int] = []
    var hasRow: [Bool] = []
    /// How many of `hasRow` are set.
    var denseRowCount = 0
    var sparse: [Int64: [Int]] = [:]
    /// Room for counts in a dense row: at least `nominees`, doubled when a nomination needs
    /// more, so that nominations after votes lay the rows out again only a few times.
    var rowStride = 0
    /// How many buckets the dense rows may cover, with `rowStride` counts each.
    var denseBuckets: Int64 = 1 << 20

    init(bucketOrigin: Timestamp, bucketWidth: Int64) {
        self.bucketOrigin = bucketOrigin
        self.bucketWidth = bucketWidth
    }

    /// A vote for nominee `i`, counted in the tally and its series bucket, and in the turnout
    /// unless its voter had voted (a replay of what the rules refuse).
    @inline(__always)
    mutating func vote(nominee i: Int, castAt: Timestamp, newVoter: Bool) {
        if newVoter { votesCast += 1 }
        count(nominee: i, castAt: castAt)
    }

    /// A nominee more: a count of its own, and room in every row.
    mutating func addNominee() {
        nominees += 1
        votes.append(0)
        if nominees > rowStride { widenDense(to: max(2 * rowStride, 8)) }
    }

    /// Counts a valid vote for nominee `i`, in the tally and in its series bucket.
    @inline(__always)
    mutating func count(nominee i: Int, castAt: Timestamp) {
        votes[i] += 1
        count(castAt, nominee: i, by: 1)
    }

    mutating func count(_ castAt: Timestamp, nominee i: Int, by delta: Int) {
        let (number, bucket) = ElectionDefinition.bucket(of: castAt, origin: bucketOrigin, width: bucketWidth)
        if number >= Int64(hasRow.count) && number < denseBuckets && number < 2 * Int64(denseRowCount + sparse.count) + 64 {
            growDense(toHold: Int(number))
        }
        if number >= 0 && number < Int64(hasRow.count) {
            let n = Int(number)
            if !hasRow[n] {  // (a read, where a write checks the array is unshared)
                hasRow[n] = true
                denseRowCount += 1
            }
            dense[n * rowStride + i] += delta
        } else if let row = sparse.index(forKey: bucket) {
            pad(&sparse.values[row])
            sparse.values[row][i] += delta
        } else {
            var row = Array(repeating: 0, count: nominees)
            row[i] = delta
            sparse[bucket] = row
        }
    }

    /// Extends the dense rows to take bucket `n` (below `denseBuckets`), doubling, and moves
    /// there the rows of `sparse` that the new range covers.
    private mutating func growDense(toHold n: Int) {
        let old = hasRow.count
        let rows = min(max(n + 1, 2 * old, 64), Int(denseBuckets))
        hasRow += Array(repeating: false, count: rows - old)
        dense += Array(repeating: 0, count: rows * rowStride - dense.count)
        let covered = sparse.keys.compactMap { bucket in number(ofBucket: bucket).map { (bucket, $0) } }.filter { $0.1 >= old && $0.1 < rows }
        for (bucket, m) in covered {
            let row = padded(sparse.removeValue(forKey: bucket)!)
            dense.replaceSubrange(m * rowStride..<m * rowStride + row.count, with: row)
            hasRow[m] = true
            denseRowCount += 1
        }
    }

    /// Lays the dense rows out again with room for `stride` counts each; a row past the
    /// buckets that leaves room for moves to `sparse`.
    private mutating func widenDense(to stride: Int) {
        let old = rowStride, oldRows = hasRow, oldDense = dense
        rowStride = stride
        denseBuckets = Int64((1 << 20) / stride)
        let kept = min(oldRows.count, Int(denseBuckets))
        hasRow = Array(repeating: false, count: kept)
        dense = Array(repeating: 0, count: kept * stride)
        denseRowCount = 0
        for n in oldRows.indices where oldRows[n] {
            let row = oldDense[n * old..<(n + 1) * old]
            if n < kept {
                hasRow[n] = true
                denseRowCount += 1
                dense.replaceSubrange(n * stride..<n * stride + old, with: row)
            } else {
                sparse[start(ofBucket: n)] = Array(row)
            }
        }
    }

    private func start(ofBucket n: Int) -> Int64 { bucketOrigin.microseconds + Int64(n) * bucketWidth }

    /// The number of the bucket starting at `bucket`, if that is a bucket start at or after
    /// the origin. (A bucket so far from the origin that the difference overflows, which only a
    /// damaged or hostile ledger holds, is one of `sparse`'s: fuzzing found the trap.)
    private func number(ofBucket bucket: Int64) -> Int? {
        let (offset, overflow) = bucket.subtractingReportingOverflow(bucketOrigin.microseconds)
        guard !overflow, offset >= 0 && offset % bucketWidth == 0 else { return nil }
        return Int(exactly: offset / bucketWidth)
    }

    /// A row as long as `nominees` (a row of `sparse` made before a late nomination is short).
    private func pad(_ row: inout [Int]) {
        if row.count < nominees { row += Array(repeating: 0, count: nominees - row.count) }
    }

    private func padded(_ row: [Int]) -> [Int] {
        var row = row
        pad(&row)
        return row
    }

    /// The dense row of bucket `n`, if it has one.
    private func denseRow(_ n: Int) -> [Int]? {
        guard n < hasRow.count, hasRow[n] else { return nil }
        return Array(dense[n * rowStride..<n * rowStride + nominees])
    }

    var seriesBuckets: [Int64] {
        Array(sparse.keys) + hasRow.indices.filter { hasRow[$0] }.map(start(ofBucket:))
    }

    var series: [Int64: [Int]] {
        var all = sparse.mapValues(padded)
        for n in hasRow.indices { if let row = denseRow(n) { all[start(ofBucket: n)] = row } }
        return all
    }

    func seriesRow(_ bucket: Int64) -> [Int]? {
        if let n = number(ofBucket: bucket), n < hasRow.count { return denseRow(n) }
        return sparse[bucket].map(padded)
    }
}
