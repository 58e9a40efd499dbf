import Testing
import BallotClient
import Foundation
import TestSupport

/// Storage faults (issue 18, method 2): a disk that fails a commit's sync. PostgreSQL's fsync
/// lesson is that after a failed sync the data may be gone while the page cache says it is
/// there; a ledger must then neither acknowledge the batch nor count it as stored, and must not
/// let it damage what was stored before.
@Suite(.serialized, .timeLimit(.minutes(2))) struct StorageFaultTests {
    /// Builds `Tests/Fixtures/faults/fail_fdatasync.c` into `directory`; nil (the test is skipped,
    /// with the reason printed) where there is no C compiler.
    static func shim(in directory: TemporaryDirectory) throws -> String? {
        let library = directory.sub("fail_fdatasync.so")
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-shared", "-fPIC", "-O1", "-o", library,
                        "\(Fixtures.repositoryRoot)/Tests/Fixtures/faults/fail_fdatasync.c", "-ldl"]
        try cc.run()
        cc.waitUntilExit()
        guard cc.terminationStatus == 0 else {
            print("skipped: no C compiler to build the fdatasync shim (cc exited \(cc.terminationStatus))")
            return nil
        }
        return library
    }

    func vote(_ c: BallotClient, _ n: Int, key: String? = nil) throws -> ReplyLine {
        try c.call(.vote("v\(n)@x.no", "kinn", election: "imdi-2022", castAt: "2022-11-03T10:00:00Z"), idempotencyKey: key)
    }

    /// One fdatasync fails with EIO: that vote is refused as `storage_failed`, never
    /// acknowledged; the votes before and after it are; a SIGKILL then loses none of them and
    /// stores nothing of the failed one, and the ledger verifies.
    @Test func aFailedSyncIsNeverAcknowledgedAndLeavesNothingBehind() throws {
        let dir = TemporaryDirectory("storage-fault")
        guard let shim = try Self.shim(in: dir) else { return }
        let trigger = dir.sub("fail-next-fdatasync")
        var daemon = try DaemonProcess(directory: dir, environment: ["LD_PRELOAD": shim, "BALLOT_FAULT_FDATASYNC": trigger])
        var c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.call(.electionDefine(DaemonTests.election2022)).isOK)
        for n in 0..<10 { #expect(try vote(c, n).isOK) }

        FileManager.default.createFile(atPath: trigger, contents: Data())
        let failed = try vote(c, 10, key: "doomed-10")
        #expect(!FileManager.default.fileExists(atPath: trigger), "the shim never saw a sync: is LMDB's fdatasync interposed?")
        #expect(failed.errorCode == .storageFailed, "\(failed)")
        #expect(failed.refusal?.message ?? "" ~= "I/O error")
        // Reads go on and count only what was stored; writes go on.
        #expect(try c.document(.electionGet("imdi-2022"))["votes_cast"]?.intValue == 10)
        for n in 11..<20 { #expect(try vote(c, n).isOK) }
        #expect(daemon.log.contains("a commit failed with an I/O error"))

        daemon.kill()
        daemon = try DaemonProcess(directory: dir)
        c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.document(.electionGet("imdi-2022"))["votes_cast"]?.intValue == 19)
        // The failed vote was never stored: sent again with its key, it is a new event.
        let again = try vote(c, 10, key: "doomed-10")
        #expect(again.isOK && again.result?["repeated"]?.boolValue != true, "\(again)")
        #expect(daemon.terminate() == 0)
        let verify = try runTool("ballot-replay", ["verify", "--ledger", "\(daemon.dataDirectory)/ledger"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
    }
}

private func ~= (text: String, part: String) -> Bool { text.contains(part) }
