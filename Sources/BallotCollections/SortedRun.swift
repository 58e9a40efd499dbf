#if canImport(Glibc)
import Glibc
#endif

/// An immutable file of a table's entries sorted by their first word, with a bucket index: the
/// layer a table in files keeps what it no longer changes in (`TableLayers`). Written once,
/// sequentially, by `build`, then only read, so that its pages are clean page cache: a
/// table of 100 million keys changed in place dirties pages faster than a disk writes them
/// back, and a run does not (docs/architecture.md, "What is kept between starts").
///
/// An entry is one or two words, as the table's slot is (`LayeredTable.slotWords`). The first
/// word is uniformly random in its top bits (a hash), so bucket `b` (the top `bucketBits` bits,
/// about four entries a bucket) is found by a shift, and its entries by the bucket index: a
/// lookup reads two cache lines, with no search.
///
/// The file (docs/ledger-format.md, "Kept state"):
///
///     page 0     "BLRUN001", words an entry (u64), entries (u64), bucket bits (u64)
///     page 1…    the bucket index: 2^bits + 1 u32, where bucket b's entries begin; the last is
///                the count
///     then       the entries, from the next page, sorted by their first word
///
/// Nothing in a run is trusted to be well formed beyond its header and size (a file can be
/// damaged): every index read is clamped to the entries, so a damaged run gives wrong answers,
/// never a crash. What the answers are worth is the open check's business (`OpenCheck`).
public final class SortedRun: @unchecked Sendable {
    public let path: String
    public let count: Int
    public let wordsPerEntry: Int
    let bucketBits: Int
    private let base: UnsafeMutableRawPointer
    private let bytes: Int
    @usableFromInline let buckets: UnsafePointer<UInt32>
    @usableFromInline let entries: UnsafePointer<UInt64>
    @usableFromInline let bucketShift: UInt64
    @usableFromInline let lastBucket: Int

    static let magic = Array("BLRUN001".utf8)

    /// The run in the file at `path`, mapped read-only; one whose header or size is not that of a
    /// run of `wordsPerEntry`-word entries is refused.
    public init(path: String, wordsPerEntry: Int, count expected: Int) throws(TableError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TableError(call: "open", what: "of \(path)", errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw TableError(call: "fstat", what: "of \(path)", errno: errno) }
        let size = Int(st.st_size)
        guard size >= TableBlock.pageBytes else {
            throw TableError(call: "mapping", what: "of \(path): \(size) bytes is not a run", errno: EINVAL)
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw TableError(call: "mmap", what: "of \(size) bytes of \(path)", errno: errno)
        }
        let header = UnsafeRawPointer(p)
        let words = Int(truncatingIfNeeded: header.load(fromByteOffset: 8, as: UInt64.self))
        let count = Int(truncatingIfNeeded: header.load(fromByteOffset: 16, as: UInt64.self))
        let bits = Int(truncatingIfNeeded: header.load(fromByteOffset: 24, as: UInt64.self))
        let layout = (0...Self.maximumBucketBits).contains(bits) && count >= 0 && count <= Self.maximumEntries
            ? Self.layout(count: count, wordsPerEntry: wordsPerEntry, bucketBits: bits) : nil
        guard Self.magic.withUnsafeBytes({ memcmp(header, $0.baseAddress!, 8) == 0 }), words == wordsPerEntry,
              count == expected, let layout, layout.fileBytes == size else {
            munmap(p, size)
            throw TableError(call: "mapping", what: "of \(path): it is not a run of \(expected) entries of \(wordsPerEntry) words (its header or its size of \(size) bytes is not one)", errno: EINVAL)
        }
        _ = madvise(p, size, MADV_RANDOM)   // a lookup reads one line of a page: no read-ahead
        self.path = path
        self.count = count
        self.wordsPerEntry = wordsPerEntry
        bucketBits = bits
        base = p
        bytes = size
        buckets = UnsafePointer((p + TableBlock.pageBytes).bindMemory(to: UInt32.self, capacity: (1 << bits) + 1))
        entries = UnsafePointer((p + layout.entriesOffset).bindMemory(to: UInt64.self, capacity: count * wordsPerEntry))
        bucketShift = UInt64(64 - bits)
        lastBucket = 1 << bits
    }

    deinit { munmap(base, bytes) }

    /// At most 2^30 entries (a ledger's events: `Limits.events`), so a bucket index entry is a u32.
    static let maximumEntries = 1 << 31
    static let maximumBucketBits = 29

    /// Where a run of `count` entries puts its entries, and its size.
    static func layout(count: Int, wordsPerEntry: Int, bucketBits: Int) -> (entriesOffset: Int, fileBytes: Int) {
        let page = TableBlock.pageBytes
        let index = page + ((1 << bucketBits) + 1) * 4
        let entriesOffset = (index + page - 1) / page * page
        return (entriesOffset, entriesOffset + count * wordsPerEntry * 8)
    }

    /// Bucket bits for `count` entries: about four a bucket.
    static func bucketBits(for count: Int) -> Int {
        var bits = 0
        while bits < maximumBucketBits && (1 << bits) * 4 < count { bits += 1 }
        return bits
    }

    /// The entries whose first word may be `first`: those of its bucket (entry i's words begin at
    /// `entries + i * wordsPerEntry`), sorted by first word.
    @inlinable
    public func bucket(of first: UInt64) -> Range<Int> {
        let b = Int(truncatingIfNeeded: first >> bucketShift) & (lastBucket - 1)
        let end = min(Int(buckets[b + 1]), count)
        return min(Int(buckets[b]), end)..<end
    }

    /// Word `w` of entry `i` (in `bucket(of:)`).
    @inlinable
    public func word(_ i: Int, _ w: Int) -> UInt64 { entries[i * wordsPerEntry + w] }

    // MARK: Building

    /// The words of a layer a run is built from: the slots of a hash table (empty ones all zero,
    /// skipped) or the entries of a run.
    public struct Source: @unchecked Sendable {
        let words: UnsafePointer<UInt64>
        let entries: Int
        let keep: AnyObject   // what owns `words`, held while the build reads them
        /// Whether slot i is one a lookup can find (nil: every slot in use is).
        let isVisible: (@Sendable (Int) -> Bool)?

        public init(table words: UnsafePointer<UInt64>, slots: Int, owner: AnyObject, isVisible: (@Sendable (Int) -> Bool)? = nil) {
            self.words = words
            entries = slots
            keep = owner
            self.isVisible = isVisible
        }

        public init(run: SortedRun) {
            words = run.entries
            entries = run.count
            keep = run
            isVisible = nil
        }

        func isEntry(_ i: Int, _ wpe: Int) -> Bool {
            let p = words + i * wpe
            guard wpe == 1 ? p[0] != 0 : p[0] != 0 || p[1] != 0 else { return false }
            return isVisible?(i) ?? true
        }
    }

    /// Writes to `path` the run of every entry of `sources` (oldest first), and returns it
    /// mapped. Entries that are equal in their first word and in `secondMask` of the second are
    /// one entry: the one from the newest source is kept (a table's later tag takes the place of
    /// an earlier). A counting sort on the bucket bits then a sort of each bucket (a few
    /// entries), so it takes linear time; the file is written through a shared mapping, given its
    /// room first, then made durable before this returns. A failure removes the file.
    public static func build(from sources: [Source], wordsPerEntry wpe: Int, secondMask: UInt64,
                             to path: String) throws(TableError) -> SortedRun {
        precondition(wpe == 1 || wpe == 2, "an entry is one or two words")
        var upper = 0
        for s in sources { upper += s.entries }
        guard upper <= maximumEntries else {
            throw TableError(call: "building", what: "a run of \(upper) entries at \(path), past its most of \(maximumEntries)", errno: EFBIG)
        }
        let bits = bucketBits(for: upper)
        let layout = layout(count: upper, wordsPerEntry: wpe, bucketBits: bits)
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TableError(call: "open", what: "of \(path)", errno: errno) }
        var mapped: UnsafeMutableRawPointer?
        do throws(TableError) {
            defer { close(fd) }
            let e = posix_fallocate(fd, 0, off_t(layout.fileBytes))
            guard e == 0 else { throw TableError(call: "posix_fallocate", what: "of \(layout.fileBytes) bytes for \(path)", errno: e) }
            guard let p = mmap(nil, layout.fileBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
                throw TableError(call: "mmap", what: "of \(layout.fileBytes) bytes of \(path)", errno: errno)
            }
            mapped = p
            let nb = 1 << bits, shift = UInt64(64 - bits), bucketMask = nb == 1 ? 0 : nb - 1
            let buckets = (p + TableBlock.pageBytes).bindMemory(to: UInt32.self, capacity: nb + 1)
            let out = (p + layout.entriesOffset).bindMemory(to: UInt64.self, capacity: max(1, upper * wpe))
            @inline(__always) func bucket(_ first: UInt64) -> Int { Int(truncatingIfNeeded: first >> shift) & bucketMask }
            // Counts, then each bucket's end; placing an entry moves its bucket's end down, so
            // that after all are placed each holds where its bucket begins, and within a bucket
            // the newer entries come first.
            for s in sources {
                for i in 0..<s.entries where s.isEntry(i, wpe) { buckets[bucket(s.words[i * wpe])] += 1 }
            }
            var total: UInt32 = 0
            for b in 0..<nb {
                total += buckets[b]
                buckets[b] = total
            }
            buckets[nb] = total
            for s in sources {
                for i in 0..<s.entries where s.isEntry(i, wpe) {
                    let b = bucket(s.words[i * wpe])
                    buckets[b] -= 1
                    let at = Int(buckets[b]) * wpe
                    for w in 0..<wpe { out[at + w] = s.words[i * wpe + w] }
                }
            }
            // Each bucket sorted (stably: the newest of equal entries stays first), its repeats
            // dropped, and moved down to where the entries kept so far end.
            var kept = 0
            var scratch: [(UInt64, UInt64)] = []
            for b in 0..<nb {
                let start = Int(buckets[b]), end = Int(buckets[b + 1])
                buckets[b] = UInt32(kept)
                scratch.removeAll(keepingCapacity: true)
                for i in start..<end { scratch.append((out[i * wpe], wpe == 2 ? out[i * wpe + 1] : 0)) }
                insertionSort(&scratch, secondMask: secondMask)
                var previous: (UInt64, UInt64)?
                for e in scratch {
                    if let previous, previous.0 == e.0 && previous.1 & secondMask == e.1 & secondMask { continue }
                    previous = e
                    out[kept * wpe] = e.0
                    if wpe == 2 { out[kept * wpe + 1] = e.1 }
                    kept += 1
                }
            }
            buckets[nb] = UInt32(kept)
            let header = p
            magic.withUnsafeBytes { header.copyMemory(from: $0.baseAddress!, byteCount: 8) }
            header.storeBytes(of: UInt64(wpe), toByteOffset: 8, as: UInt64.self)
            header.storeBytes(of: UInt64(kept), toByteOffset: 16, as: UInt64.self)
            header.storeBytes(of: UInt64(bits), toByteOffset: 24, as: UInt64.self)
            guard msync(p, layout.fileBytes, MS_SYNC) == 0 else { throw TableError(call: "msync", what: "of \(path)", errno: errno) }
            munmap(p, layout.fileBytes)
            mapped = nil
            let size = Self.layout(count: kept, wordsPerEntry: wpe, bucketBits: bits).fileBytes
            guard ftruncate(fd, off_t(size)) == 0 else { throw TableError(call: "ftruncate", what: "of \(path)", errno: errno) }
            guard fsync(fd) == 0 else { throw TableError(call: "fsync", what: "of \(path)", errno: errno) }
            return try SortedRun(path: path, wordsPerEntry: wpe, count: kept)
        } catch {
            if let mapped { munmap(mapped, layout.fileBytes) }
            unlink(path)
            throw error
        }
    }

    /// Sorts a bucket's entries by first word, then masked second, keeping equal ones in order.
    private static func insertionSort(_ a: inout [(UInt64, UInt64)], secondMask: UInt64) {
        func less(_ x: (UInt64, UInt64), _ y: (UInt64, UInt64)) -> Bool {
            x.0 != y.0 ? x.0 < y.0 : x.1 & secondMask < y.1 & secondMask
        }
        guard a.count > 1 else { return }
        if a.count > 64 {
            // Only a table built to collide gets here; keep it n log n.
            let sorted = a.enumerated().sorted { less($0.element, $1.element) || (!less($1.element, $0.element) && $0.offset < $1.offset) }
            a = sorted.map(\.element)
            return
        }
        for i in 1..<a.count {
            let e = a[i]
            var j = i
            while j > 0 && less(e, a[j - 1]) {
                a[j] = a[j - 1]
                j -= 1
            }
            a[j] = e
        }
    }
}
