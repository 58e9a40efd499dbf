import Testing
import Foundation
import TestSupport
@testable import BallotStore

@Suite struct EnvironmentTests {
    func key(_ n: UInt64) -> [UInt8] { withUnsafeBytes(of: n.bigEndian) { Array($0) } }

    @Test func writesCommitAndReadBack() throws {
        let dir = TemporaryDirectory()
        let env = try Environment(path: dir.sub("env"))
        let db = try env.openDatabase("things")
        try env.write { txn in
            for i in 1...100 { try txn.put(key(UInt64(i)), Array("value \(i)".utf8), in: db, flags: .append) }
        }
        try env.read { txn in
            #expect(try txn.entryCount(in: db) == 100)
            #expect(try txn.value(forKey: key(42), in: db) == Array("value 42".utf8))
            #expect(try txn.value(forKey: key(101), in: db) == nil)
            let last = try txn.withLastEntry(in: db) { k, _ in Array(k) }
            #expect(last == key(100))
        }
    }

    /// Readers killed inside a read transaction (a `ballot-replay` killed mid-verify) leave their
    /// slots taken; once every slot is, the next read frees those of the dead and goes on. The
    /// readers are Python's `lmdb`, which the independent verifier uses, each SIGKILLed holding a
    /// read transaction.
    @Test func theSlotsOfKilledReadersAreFreed() throws {
        let dir = TemporaryDirectory()
        let env = try Environment(path: dir.sub("env"), options: EnvironmentOptions(maxReaders: 4))
        let db = try env.openDatabase("things")
        try env.write { txn in try txn.put(key(1), [1], in: db) }
        let reader = """
        import lmdb, sys, time
        env = lmdb.open(sys.argv[1], readonly=True, max_dbs=16, max_readers=4)
        txn = env.begin()
        print("ready", flush=True)
        time.sleep(120)
        """
        for _ in 0..<4 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", "-c", reader, dir.sub("env")]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let ready = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
            #expect(ready.contains("ready"), "the Python reader did not start: \(ready)")
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        let value = try env.read { txn in try txn.value(forKey: key(1), in: db) }
        #expect(value == [1])
        #expect(env.clearStaleReaders() == 0)
    }

    @Test func aThrowingBodyWritesNothing() throws {
        struct Stop: Error {}
        let dir = TemporaryDirectory()
        let env = try Environment(path: dir.sub("env"))
        let db = try env.openDatabase("things")
        #expect(throws: Stop.self) {
            try env.write { txn in
                try txn.put(key(1), [1], in: db)
                throw Stop()
            }
        }
        try env.read { txn in
            let count = try txn.entryCount(in: db)
            #expect(count == 0)
        }
    }

    @Test func appendOutOfOrderIsRefusedWithContext() throws {
        let dir = TemporaryDirectory()
        let env = try Environment(path: dir.sub("env"))
        let db = try env.openDatabase("log")
        try env.write { txn in try txn.put(key(5), [5], in: db, flags: .append) }
        let error = #expect(throws: StoreError.self) {
            try env.write { txn in try txn.put(key(3), [3], in: db, flags: .append, "appending event 3") }
        }
        #expect(error?.kind == .keyExists)
        #expect(error?.call == "mdb_put")
        #expect(error?.description.contains("appending event 3") == true)
        #expect(error?.description.contains("MDB_KEYEXIST") == true)
    }

    @Test func iterationStartsAtAKeyAndStopsOnRequest() throws {
        let dir = TemporaryDirectory()
        let env = try Environment(path: dir.sub("env"))
        let db = try env.openDatabase("log")
        try env.write { txn in for i in 1...10 { try txn.put(key(UInt64(i)), [UInt8(i)], in: db) } }
        var seen: [UInt8] = []
        try env.read { txn in
            try txn.forEach(in: db, from: key(4)) { _, v in
                seen.append(v[0])
                return seen.count < 3
            }
        }
        #expect(seen == [4, 5, 6])
    }

    /// Runs come in key order, full but for the last, from the start key, and stop when asked.
    @Test func aCursorWalksInRuns() throws {
        let dir = TemporaryDirectory()
        let env = try Environment(path: dir.sub("env"))
        let db = try env.openDatabase("runs")
        try env.write { txn in for i in 1...10 { try txn.put(key(UInt64(i)), [UInt8(i)], in: db) } }
        var runs: [[UInt8]] = []
        try env.read { txn in
            try txn.forEachRun(in: db, from: key(2), run: 4) { entries in
                runs.append(entries.map { $0.value[0] })
                return true
            }
        }
        #expect(runs == [[2, 3, 4, 5], [6, 7, 8, 9], [10]])
        runs = []
        try env.read { txn in
            try txn.forEachRun(in: db, run: 3) { entries in
                runs.append(entries.map { $0.value[0] })
                return runs.count < 2
            }
        }
        #expect(runs == [[1, 2, 3], [4, 5, 6]])
    }

    @Test func aFullMapGrowsAndTheTransactionIsRedone() throws {
        let dir = TemporaryDirectory()
        let env = try Environment(path: dir.sub("env"), options: EnvironmentOptions(mapSize: 256 << 10, maxMapSize: 64 << 20, growAtUse: 1.0))
        let db = try env.openDatabase("blobs")
        let before = try env.info().mapSize
        var attempts = 0
        var retries = 0
        try env.write(beforeRetry: { retries += 1 }) { txn in
            attempts += 1
            for i in 0..<400 { try txn.put(key(UInt64(i)), [UInt8](repeating: 7, count: 2000), in: db) }
        }
        #expect(retries >= 1)
        #expect(attempts == retries + 1)
        #expect(try env.info().mapSize > before)
        try env.read { txn in
            let count = try txn.entryCount(in: db)
            #expect(count == 400)
        }
    }

    @Test func aMapAtItsMaximumFailsAsLedgerFullHavingWrittenNothing() throws {
        let dir = TemporaryDirectory()
        let env = try Environment(path: dir.sub("env"), options: EnvironmentOptions(mapSize: 256 << 10, maxMapSize: 512 << 10, growAtUse: 1.0))
        let db = try env.openDatabase("blobs")
        try env.write { txn in try txn.put(key(0), [1, 2, 3], in: db) }
        let error = #expect(throws: StoreError.self) {
            try env.write("appending 1000 blobs") { txn in
                for i in 1...1000 { try txn.put(key(UInt64(i)), [UInt8](repeating: 7, count: 2000), in: db) }
            }
        }
        #expect(error?.kind == .ledgerFull)
        #expect(error?.description.contains("nothing from this transaction was written") == true)
        #expect(error?.description.contains("appending 1000 blobs") == true)
        try env.read { txn in
            let count = try txn.entryCount(in: db)
            #expect(count == 1)
        }
        // Still usable for a write that fits.
        try env.write { txn in try txn.put(key(1), [4], in: db) }
    }

    @Test func openingAFileAsAnEnvironmentNamesTheCallAndThePath() throws {
        let dir = TemporaryDirectory()
        let file = dir.sub("not-a-directory")
        _ = FileManager.default.createFile(atPath: file, contents: Data("hello".utf8))
        let error = #expect(throws: StoreError.self) { try Environment(path: file) }
        #expect(error?.description.contains(file) == true)
    }

    @Test func readOnlyOpenOfAMissingDirectoryFails() throws {
        let dir = TemporaryDirectory()
        let error = #expect(throws: StoreError.self) {
            try Environment(path: dir.sub("missing"), options: EnvironmentOptions(readOnly: true))
        }
        #expect(error?.call == "mdb_env_open")
    }

    @Test func aCopyIsACompleteEnvironment() throws {
        let dir = TemporaryDirectory()
        let env = try Environment(path: dir.sub("env"))
        let db = try env.openDatabase("log")
        try env.write { txn in for i in 1...50 { try txn.put(key(UInt64(i)), [UInt8(i)], in: db, flags: .append) } }
        let backup = dir.sub("backup")
        try FileManager.default.createDirectory(atPath: backup, withIntermediateDirectories: false)
        try env.copy(to: backup)
        let copy = try Environment(path: backup, options: EnvironmentOptions(readOnly: true))
        let copied = try copy.openDatabase("log", create: false)
        try copy.read { txn in
            let count = try txn.entryCount(in: copied)
            #expect(count == 50)
            #expect(try txn.value(forKey: key(50), in: copied) == [50])
        }
    }

    @Test func deleteAndRemoveAll() throws {
        let dir = TemporaryDirectory()
        let env = try Environment(path: dir.sub("env"))
        let db = try env.openDatabase("kv")
        try env.write { txn in
            try txn.put([1], [1], in: db)
            try txn.put([2], [2], in: db)
            #expect(try txn.delete([1], in: db))
            #expect(try !txn.delete([9], in: db))
        }
        try env.read { txn in
            let count = try txn.entryCount(in: db)
            #expect(count == 1)
        }
        try env.write { txn in try txn.removeAll(in: db) }
        try env.read { txn in
            let count = try txn.entryCount(in: db)
            #expect(count == 0)
        }
    }
}
