import BallotFuzz
import Foundation

// Built by scripts/fuzz with `-sanitize=fuzzer,address -D BALLOT_LIBFUZZER`: libFuzzer's own
// main drives `LLVMFuzzerTestOneInput`, on the target that BALLOT_FUZZ_TARGET names. In an
// ordinary build, runs the target on each file named (a crash's input, say) and says so.
#if BALLOT_LIBFUZZER
nonisolated(unsafe) let target: FuzzTarget = {
    guard let name = ProcessInfo.processInfo.environment["BALLOT_FUZZ_TARGET"], let target = FuzzTarget(rawValue: name) else {
        fatalError("set BALLOT_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafeRawPointer?, _ count: Int) -> CInt {
    target.run(UnsafeRawBufferPointer(start: count == 0 ? nil : data, count: count))
    return 0
}
#else
@main struct BallotFuzzMain {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name), arguments.count > 1 else {
            FileHandle.standardError.write(Data("usage: ballot-fuzz TARGET FILE... (targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))); scripts/fuzz builds it for libFuzzer\n".utf8))
            exit(64)
        }
        for path in arguments.dropFirst() {
            target.run(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
            print("\(name) \(path): passed")
        }
    }
}
#endif
