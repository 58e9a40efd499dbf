#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization

/// A hash table that `TableLayers` can keep in layers: `TaggedKeySet` and `SequenceIndex`.
public protocol LayeredTable: AnyObject, Sendable {
    /// Words a slot (and a run's entry) takes: 1 or 2.
    static var slotWords: Int { get }
    /// The bits of a slot's second word that are part of its key: entries equal in their first
    /// word and in these are one entry in a run (the newest is kept).
    static var secondKeyMask: UInt64 { get }
    /// The table in `file`, of `slots` slots.
    init(file: TableFile, slots: Int) throws(TableError)
    var slotCount: Int { get }
    /// The entries in this table's own slots (not in its layers).
    var ownCount: Int { get }
    /// This table's slots, for a run to be built from once it is frozen.
    var runSource: SortedRun.Source { get }
    /// Writes this table's own changed pages to disk.
    func syncOwn() throws(TableError)
}

/// What a snapshot says of one layer of a table in files (`TableLayers`): a table of `size`
/// slots or a run of `size` entries, in the file of its generation.
public struct LayerRecord: Sendable, Equatable {
    public enum Kind: UInt8, Sendable { case table = 0, run = 1 }
    public var kind: Kind
    public var generation: UInt64
    public var size: Int
    public init(kind: Kind, generation: UInt64, size: Int) {
        self.kind = kind
        self.generation = generation
        self.size = size
    }
}

/// How a table kept in files stays small enough to be changed in place: at most `capSlots`
/// slots in the table a batch changes (the newest layer), and everything older in immutable
/// layers below it, newest first on lookup (docs/architecture.md, "What is kept between starts").
///
/// Why: a hash table of 100 million keys in a file is 4 GB changed at random. Each change
/// dirties a page, and past the kernel's dirty limit (a tenth of memory) writeback of those
/// pages throttles the writer to the disk's random-write rate. Kept under the cap, the table a
/// batch changes stays well inside the limit, whatever the ledger's size.
///
/// When the table a batch changes is full at the cap, `reserve` freezes it: it becomes a layer
/// that nothing changes again, and a new empty table of the cap's size takes its place. A
/// thread of its own then builds a `SortedRun` from the oldest frozen table, merged with the
/// runs below it that are no larger than what it has gathered (so that the runs stay few: at
/// most about log2 of the ledger's size over the cap), and the next `reserve` puts the run in
/// place of what it was built from. The layers, and their files (`<name>.<generation>.table`
/// and `.run`), are what a snapshot lists (`records`); files no snapshot lists are removed
/// (`removeUnusedFiles`). Lookups that miss the newest table look in every layer: a frozen
/// table like any table, a run by its bucket index.
///
/// Used from one thread (the writer's or a replay's), except for the build, which reads only
/// frozen layers and hands its run back through `finished`.
public final class TableLayers<Table: LayeredTable>: @unchecked Sendable {
    public enum Layer: Sendable {
        case table(Table)
        case run(SortedRun)
    }

    public typealias Record = LayerRecord

    public let directory: String
    public let name: String
    /// The most slots the table a batch changes grows to before it is frozen.
    public let capSlots: Int
    /// The immutable layers, oldest first.
    public private(set) var layers: [(layer: Layer, generation: UInt64)] = []
    /// The generation of the table a batch changes, and its file's descriptor (which it
    /// grows through).
    private var current: (generation: UInt64, descriptor: Int32) = (0, -1)
    private var nextGeneration: UInt64 = 1
    /// Counts every change of the layers (a freeze, a run put in place): a snapshot is due.
    public private(set) var changes = 0
    /// Why the last build of a run failed (a full disk); nil once one succeeds.
    public private(set) var buildError: TableError?
    private var build: Build?
    private var settlesUntilRetry = 0

    /// A run being built from `layers[sources]` into `path`.
    private final class Build: Sendable {
        let sources: ClosedRange<Int>
        let generation: UInt64
        let path: String
        let finished = Mutex<Result<SortedRun, TableError>?>(nil)
        let done = DispatchSemaphore(value: 0)

        init(sources: ClosedRange<Int>, generation: UInt64, path: String) {
            self.sources = sources
            self.generation = generation
            self.path = path
        }
    }

    public init(directory: String, name: String, capSlots: Int) {
        precondition(capSlots > 0 && capSlots & (capSlots - 1) == 0, "a cap of slots is a power of two")
        self.directory = directory
        self.name = name
        self.capSlots = capSlots
    }

    deinit {
        build?.done.wait()   // its thread reads the frozen layers' memory
        if current.descriptor >= 0 { close(current.descriptor) }
    }

    /// Generations number files, one each, from 0: far fewer than this in any life of a ledger.
    static var mostGenerations: UInt64 { 1 << 48 }

    public func path(_ kind: Record.Kind, _ generation: UInt64) -> String {
        "\(directory)/\(name).\(generation).\(kind == .table ? "table" : "run")"
    }

    // MARK: Opening

    /// The table the layers `records` (oldest first, the last the table a batch changes)
    /// make up, its files opened and checked against the records.
    public func load(_ records: [Record]) throws(TableError) -> Table {
        guard let last = records.last, last.kind == .table else {
            throw TableError(call: "loading", what: "\(name): its layers do not end in a table", errno: EINVAL)
        }
        guard records.count <= Self.mostLayers, Set(records.map(\.generation)).count == records.count,
              records.allSatisfy({ $0.generation < Self.mostGenerations }) else {
            throw TableError(call: "loading", what: "\(name): its layers are more than \(Self.mostLayers), or their generations repeat or pass 2^48", errno: EINVAL)
        }
        var loaded: [(layer: Layer, generation: UInt64)] = []
        for record in records.dropLast() {
            switch record.kind {
            case .run:
                loaded.append((.run(try SortedRun(path: path(.run, record.generation), wordsPerEntry: Table.slotWords,
                                                  count: record.size)), record.generation))
            case .table:
                let (table, descriptor) = try open(record, creating: false)
                close(descriptor)
                loaded.append((.table(table), record.generation))
            }
        }
        let (table, descriptor) = try open(last, creating: false)
        layers = loaded
        current = (last.generation, descriptor)
        nextGeneration = (records.map(\.generation).max() ?? 0) + 1
        startBuild()
        return table
    }

    /// An empty table of `slots` slots in a new file, every file of this name removed first:
    /// what a rebuild replays every event into.
    public func fresh(slots: Int) throws(TableError) -> Table {
        build?.done.wait()
        build = nil
        layers = []
        if current.descriptor >= 0 { close(current.descriptor) }
        current = (0, -1)
        removeFiles { _ in true }
        let (table, descriptor) = try open(Record(kind: .table, generation: 0, size: slots), creating: true)
        current = (0, descriptor)
        nextGeneration = 1
        return table
    }

    private func open(_ record: Record, creating: Bool) throws(TableError) -> (Table, Int32) {
        let path = path(.table, record.generation)
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC | (creating ? O_CREAT | O_TRUNC : 0), 0o600)
        guard fd >= 0 else { throw TableError(call: "open", what: "of \(path)", errno: errno) }
        do throws(TableError) {
            if !creating {
                var st = stat()
                let bytes = TableBlock.pageBytes + record.size * Table.slotWords * 8
                guard fstat(fd, &st) == 0, Int(st.st_size) == bytes else {
                    throw TableError(call: "loading", what: "\(path): it is \(st.st_size) bytes, not the \(bytes) of a table of \(record.size) slots", errno: EINVAL)
                }
            }
            return (try Table(file: TableFile(descriptor: fd, path: path), slots: record.size), fd)
        } catch {
            close(fd)
            throw error
        }
    }

    // MARK: Freezing and building

    /// The slots of the table that takes a frozen one's place (`slotBytes` each, the cap's
    /// number), in a new file, and the file and its generation.
    func freshStorage(slotBytes: Int) throws(TableError) -> (storage: TableWords, file: TableFile, generation: UInt64) {
        let generation = nextGeneration
        let path = path(.table, generation)
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TableError(call: "open", what: "of \(path)", errno: errno) }
        nextGeneration += 1
        let file = TableFile(descriptor: fd, path: path)
        do throws(TableError) {
            return (try TableWords(words: capSlots * slotBytes / 8, slotBytes: slotBytes, file: file), file, generation)
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
    }

    /// `frozen` is now a layer, and the table in `file` (of `generation`) the one a batch changes.
    func didFreeze(_ frozen: Table, into file: TableFile, generation: UInt64) {
        layers.append((.table(frozen), current.generation))
        if current.descriptor >= 0 { close(current.descriptor) }
        current = (generation, file.descriptor)
        changes += 1
        startBuild()
    }

    /// Puts a finished run in place of what it was built from, and starts the next build: at
    /// the start of a batch, from `reserve`.
    func settle() {
        if let build, let result = build.finished.withLock({ $0 }) {
            self.build = nil
            switch result {
            case .success(let run):
                layers.replaceSubrange(build.sources, with: [(.run(run), build.generation)])
                buildError = nil
                changes += 1
            case .failure(let error):
                buildError = error
                settlesUntilRetry = 10_000
            }
        }
        if settlesUntilRetry > 0 {
            settlesUntilRetry -= 1
            return
        }
        startBuild()
    }

    /// The most layers a snapshot records of a table (`KeptStateCodec`); past `mostFrozen`
    /// immutable ones (runs not built as fast as tables fill, or not built at all), the table a
    /// batch changes grows past the cap instead of freezing.
    public static var mostLayers: Int { 64 }
    static var mostFrozen: Int { 48 }
    var canFreeze: Bool { layers.count < Self.mostFrozen }

    /// Waits for the run being built, if any, without putting it in place: before the files
    /// are let go (another writer may take them, and would build into the same names).
    public func waitForBuild() {
        guard let build else { return }
        build.done.wait()
        build.done.signal()
    }

    /// Waits for the run being built, if any, and puts it in place (a close, and tests).
    public func finishBuilding() {
        while let build {
            build.done.wait()
            build.done.signal()
            settlesUntilRetry = 0
            settle()
            if buildError != nil { return }
        }
    }

    private func startBuild() {
        guard build == nil, let f = layers.firstIndex(where: { if case .table = $0.layer { true } else { false } }) else { return }
        var first = f
        var gathered = size(of: layers[f].layer)
        while first > 0, case .run(let run) = layers[first - 1].layer, run.count <= gathered {
            first -= 1
            gathered += run.count
        }
        let sources = layers[first...f].map { entry -> SortedRun.Source in
            switch entry.layer {
            case .table(let t): t.runSource
            case .run(let r): SortedRun.Source(run: r)
            }
        }
        let build = Build(sources: first...f, generation: nextGeneration, path: path(.run, nextGeneration))
        nextGeneration += 1
        self.build = build
        DispatchQueue.global(qos: .utility).async {
            let result: Result<SortedRun, TableError>
            do throws(TableError) {
                result = .success(try SortedRun.build(from: sources, wordsPerEntry: Table.slotWords,
                                                       secondMask: Table.secondKeyMask, to: build.path))
            } catch {
                result = .failure(error)
            }
            build.finished.withLock { $0 = result }
            build.done.signal()
        }
    }

    private func size(of layer: Layer) -> Int {
        switch layer {
        case .table(let t): t.ownCount
        case .run(let r): r.count
        }
    }

    // MARK: What a snapshot lists

    /// The entries in the immutable layers (a key in two counts twice).
    public var layeredCount: Int { layers.reduce(0) { $0 + size(of: $1.layer) } }

    /// The layers, oldest first, and last the table a batch changes, of `currentSlots` slots.
    public func records(currentSlots: Int) -> [Record] {
        layers.map { entry in
            switch entry.layer {
            case .table(let t): Record(kind: .table, generation: entry.generation, size: t.slotCount)
            case .run(let r): Record(kind: .run, generation: entry.generation, size: r.count)
            }
        } + [Record(kind: .table, generation: current.generation, size: currentSlots)]
    }

    /// Writes the frozen tables' changed pages to disk (runs are on disk once built).
    func syncLayers() throws(TableError) {
        for case (.table(let t), _) in layers { try t.syncOwn() }
    }

    /// Removes the files of this name that neither `records` nor the build in progress use:
    /// what a snapshot that no longer lists them, or a process that died building, left behind.
    public func removeUnusedFiles(keeping records: [Record]) {
        var keep = Set(records.map { path($0.kind, $0.generation) })
        if let build { keep.insert(build.path) }
        removeFiles { !keep.contains($0) }
    }

    private func removeFiles(where remove: (String) -> Bool) {
        guard let dir = opendir(directory) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let file = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard file.hasPrefix(name + "."), file.hasSuffix(".table") || file.hasSuffix(".run") else { continue }
            let path = "\(directory)/\(file)"
            if remove(path) { unlink(path) }
        }
    }
}
