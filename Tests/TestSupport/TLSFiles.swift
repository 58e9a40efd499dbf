public import Foundation

/// Certificates for the TLS listener's tests, made with the `openssl` command in a temporary
/// directory: the operator's CA, the daemon's certificate, and clients: one the daemon maps to
/// a uid, one it does not, one signed by another CA, and one out of date.
public struct TLSFiles: Sendable {
    public let directory: String
    public var ca: String { "\(directory)/ca.pem" }
    public var server: (cert: String, key: String) { ("\(directory)/server.pem", "\(directory)/server.key") }
    public func client(_ name: String) -> (cert: String, key: String) { ("\(directory)/\(name).pem", "\(directory)/\(name).key") }

    /// Makes them all; `serverIP` goes in the daemon's certificate as its address.
    public init(in directory: String, serverIP: String = "127.0.0.1") throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                          "-days", "2", "-subj", "/CN=BallotLedger test CA"], in: directory)
        try Self.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "rogue-ca.key", "-out", "rogue-ca.pem",
                          "-days", "2", "-subj", "/CN=Someone else's CA"], in: directory)
        try issue("server", ca: "ca", extensions: "subjectAltName=IP:\(serverIP)")
        try issue("admin", ca: "ca")
        try issue("stranger", ca: "ca")
        try issue("rogue", ca: "rogue-ca")
        try issueExpired("expired")
    }

    /// A key and a certificate for `name` signed by `ca`, valid for a day.
    private func issue(_ name: String, ca: String, extensions: String? = nil) throws {
        try Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "\(name).key", "-out", "\(name).csr",
                          "-subj", "/CN=\(name)"], in: directory)
        var args = ["x509", "-req", "-in", "\(name).csr", "-CA", "\(ca).pem", "-CAkey", "\(ca).key", "-CAcreateserial", "-out", "\(name).pem", "-days", "1"]
        if let extensions {
            let file = "\(directory)/\(name).ext"
            try extensions.write(toFile: file, atomically: true, encoding: .utf8)
            args += ["-extfile", file]
        }
        try Self.openssl(args, in: directory)
    }

    /// A certificate the CA signed, valid only for a day in 2020 (`openssl ca` can date one).
    private func issueExpired(_ name: String) throws {
        try Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "\(name).key", "-out", "\(name).csr",
                          "-subj", "/CN=\(name)"], in: directory)
        try "".write(toFile: "\(directory)/index.txt", atomically: true, encoding: .utf8)
        try "01\n".write(toFile: "\(directory)/serial", atomically: true, encoding: .utf8)
        try """
            [ca]
            default_ca = test
            [test]
            database = \(directory)/index.txt
            new_certs_dir = \(directory)
            serial = \(directory)/serial
            default_md = sha256
            policy = any
            [any]
            commonName = supplied

            """.write(toFile: "\(directory)/ca.cnf", atomically: true, encoding: .utf8)
        try Self.openssl(["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "\(name).csr", "-out", "\(name).pem",
                          "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-notext"], in: directory)
    }

    /// The certificate's SHA-256 fingerprint, as `access.tls_clients` lists it.
    public func fingerprint(_ name: String) throws -> String {
        let out = try Self.openssl(["x509", "-noout", "-fingerprint", "-sha256", "-in", "\(name).pem"], in: directory)
        guard let equals = out.firstIndex(of: "=") else { throw DaemonTestError("openssl printed no fingerprint: \(out)") }
        return out[out.index(after: equals)...].trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @discardableResult
    static func openssl(_ arguments: [String], in directory: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = arguments
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw DaemonTestError("openssl \(arguments.joined(separator: " ")) exited \(p.terminationStatus): \(errors)") }
        return text
    }
}
