import BallotFuzz
import Foundation

// Built by scripts/fuzz with AddressSanitizer, libFuzzer's coverage and `-D BALLOT_LIBFUZZER`:
// main hands libFuzzer's driver (LLVMFuzzerRunDriver, linked in and exported by that build
// only, so looked up by name) the target that BALLOT_FUZZ_TARGET names. In an ordinary build,
// runs the target on each file named (a crash's input, say) and says so.
#if BALLOT_LIBFUZZER
nonisolated(unsafe) var target = FuzzTarget.request

@main struct BallotFuzzMain {
    typealias TestOneInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    typealias RunDriver = @convention(c) (
        UnsafeMutablePointer<CInt>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, TestOneInput
    ) -> CInt

    static func main() {
        guard let name = ProcessInfo.processInfo.environment["BALLOT_FUZZ_TARGET"], let chosen = FuzzTarget(rawValue: name) else {
            fatalError("set BALLOT_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        target = chosen
        guard let symbol = dlsym(nil, "LLVMFuzzerRunDriver") else {  // nil: RTLD_DEFAULT
            fatalError("LLVMFuzzerRunDriver is not linked in: build with -sanitize=fuzzer (scripts/fuzz does)")
        }
        let runDriver = unsafeBitCast(symbol, to: RunDriver.self)
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(runDriver(&argc, &argv) { data, count in
            target.run(UnsafeRawBufferPointer(start: count == 0 ? nil : data, count: count))
            return 0
        })
    }
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
