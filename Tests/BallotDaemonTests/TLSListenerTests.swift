import Testing
import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The TCP listener with mutual TLS (`listen_tls`), against the real `ballotd`: a peer's role
/// comes from its client certificate; another CA's certificate, one out of date, and a client
/// that does not speak TLS are refused, each with a log line.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TLSListenerTests {
    /// A TCP port free on `host` a moment ago.
    static func freePort(_ host: String = "127.0.0.1") throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        inet_pton(AF_INET, host, &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw DaemonTestError("no free port on \(host)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A daemon listening with TLS on `host`, the admin client's certificate mapped to uid 4242
    /// (an admin), the stranger's to nothing.
    static func daemon(_ files: TLSFiles, host: String, port: Int, directory: TemporaryDirectory) throws -> DaemonProcess {
        let config = directory.sub("ballotd.yaml")
        try """
            idle_timeout: 3
            listen_tls: \(host):\(port)
            tls:
              certificate: \(files.server.cert)
              private_key: \(files.server.key)
              client_ca: \(files.ca)
            access:
              admin_uids: [4242]
              tls_clients: ["\(try files.fingerprint("admin"))=4242"]

            """.write(toFile: config, atomically: true, encoding: .utf8)
        return try DaemonProcess(directory: directory, arguments: ["--config", config])
    }

    static func endpoint(_ files: TLSFiles, _ name: String, host: String, port: Int) -> TLSEndpoint {
        TLSEndpoint(host: host, port: port, certificateFile: files.client(name).cert, privateKeyFile: files.client(name).key, caFile: files.ca)
    }

    @Test func aClientCertificateGivesTheRoleItsUidHasAndOthersAreRefused() throws {
        let directory = TemporaryDirectory("tls")
        let files = try TLSFiles(in: directory.sub("certs"))
        let port = try Self.freePort()
        let daemon = try Self.daemon(files, host: "127.0.0.1", port: port, directory: directory)

        // The admin's certificate: uid 4242's role, on the record of what it writes.
        let admin = try BallotClient(tls: Self.endpoint(files, "admin", host: "127.0.0.1", port: port))
        let hello = try admin.request(.hello, as: HelloResult.self)
        #expect(hello.role == "admin" && hello.uid == 4242, "\(hello)")
        #expect(try admin.call(.electionDefine(DaemonTests.election2022)).isOK)
        let vote = try admin.call(.vote("tls@x.no"))
        let seq = try admin.result(of: vote, as: WriteReceipt.self).seq
        let events = try admin.request(.events(from: seq, limit: 1), as: EventsResult.self).events
        #expect(events.first?["actor"]?["uid"]?.intValue == 4242, "\(events)")

        // A certificate of the same CA that access.tls_clients does not list: hello only.
        let stranger = try BallotClient(tls: Self.endpoint(files, "stranger", host: "127.0.0.1", port: port))
        let strangerHello = try stranger.request(.hello, as: HelloResult.self)
        #expect(strangerHello.role == nil && strangerHello.uid == nil, "\(strangerHello)")
        let strangerPrint = try files.fingerprint("stranger").replacingOccurrences(of: ":", with: "").lowercased()
        #expect(strangerHello.certificateSHA256 == strangerPrint, "\(strangerHello)")
        #expect(try stranger.call(.status).errorCode == .forbidden)

        // Another CA's certificate, and one out of date: no connection, and a line in the log.
        for name in ["rogue", "expired"] {
            #expect(throws: ClientError.self, "\(name)") {
                let client = try BallotClient(tls: Self.endpoint(files, name, host: "127.0.0.1", port: port), timeout: 10)
                _ = try client.call(.hello)
            }
        }
        // A client that does not speak TLS.
        let plain = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(plain, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        #expect(connected)
        _ = Array(#"{"op":"hello"}"#.utf8 + [0x0A]).withUnsafeBytes { send(plain, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(plain, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var answer: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(plain, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            answer += buffer[..<n]
        }
        close(plain)
        #expect(!String(decoding: answer, as: UTF8.self).contains("\"ok\""), "a plain client got a reply: \(answer)")

        // A client that connects and never starts its handshake is closed after idle_timeout.
        let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let silentConnected = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(silent, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        #expect(silentConnected)
        setsockopt(silent, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let waited = Date()
        let got = buffer.withUnsafeMutableBytes { read(silent, $0.baseAddress, $0.count) }
        close(silent)
        #expect(got == 0 && Date().timeIntervalSince(waited) < 9, "the silent client was not closed: read \(got)")

        // Each refusal is a log line naming the peer and the reason.
        var refusals = 0
        for _ in 0..<100 {
            refusals = daemon.log.components(separatedBy: "tls: refused a connection").count - 1
            if refusals >= 4 { break }
            usleep(50_000)
        }
        #expect(refusals >= 4, "\(daemon.log.suffix(3000))")
        #expect(daemon.log.contains("no TLS handshake within idle_timeout"))
        #expect(daemon.log.contains("peer.address=") && daemon.log.contains("reason="))

        // ballotctl speaks it too.
        let ctl = try runTool("ballotctl", ["--connect", "tls://127.0.0.1:\(port)", "--tls-cert", files.client("admin").cert, "--tls-key", files.client("admin").key,
                                            "--tls-ca", files.ca, "--json", "status"])
        #expect(ctl.status == 0 && ctl.stdout.contains("\"ledger_size\""), "\(ctl)")
        #expect(daemon.terminate() == 0)
    }

    /// The same across hosts: the client in a network namespace of its own, joined to the
    /// daemon's by a veth pair with addresses this test gives them. Root only.
    @Test func aClientInAnotherNetworkNamespaceConnects() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") else {
            print("TLSListenerTests: skipped across namespaces: needs root and ip(8)")
            return
        }
        let tag = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        let namespace = "ballot-tls-\(tag)", hostSide = "bt\(tag)h", clientSide = "bt\(tag)c"
        let octet = Int.random(in: 1...250)
        let daemonIP = "10.213.\(octet).1", clientIP = "10.213.\(octet).2"
        func ip(_ args: String...) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            p.arguments = args
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw DaemonTestError("ip \(args.joined(separator: " ")) exited \(p.terminationStatus)") }
        }
        try ip("netns", "add", namespace)
        defer {
            try? ip("link", "delete", hostSide)
            try? ip("netns", "delete", namespace)
        }
        try ip("link", "add", hostSide, "type", "veth", "peer", "name", clientSide)
        try ip("link", "set", clientSide, "netns", namespace)
        try ip("addr", "add", "\(daemonIP)/30", "dev", hostSide)
        try ip("link", "set", hostSide, "up")
        try ip("netns", "exec", namespace, "ip", "addr", "add", "\(clientIP)/30", "dev", clientSide)
        try ip("netns", "exec", namespace, "ip", "link", "set", clientSide, "up")
        try ip("netns", "exec", namespace, "ip", "link", "set", "lo", "up")

        let directory = TemporaryDirectory("tls-netns")
        let files = try TLSFiles(in: directory.sub("certs"), serverIP: daemonIP)
        let port = try Self.freePort(daemonIP)
        let daemon = try Self.daemon(files, host: daemonIP, port: port, directory: directory)
        func ctl(_ name: String) throws -> (status: Int32, stdout: String, stderr: String) {
            try runProgram("/usr/sbin/ip", ["netns", "exec", namespace, "\(DaemonProcess.binaryDirectory)/ballotctl", "--connect", "tls://\(daemonIP):\(port)",
                                         "--tls-cert", files.client(name).cert, "--tls-key", files.client(name).key, "--tls-ca", files.ca, "--json", "hello"])
        }
        let admin = try ctl("admin")
        #expect(admin.status == 0 && admin.stdout.contains("\"role\":\"admin\""), "\(admin)")
        let rogue = try ctl("rogue")
        #expect(rogue.status != 0, "\(rogue)")
        #expect(daemon.log.contains("tls: refused a connection") && daemon.log.contains(clientIP), "\(daemon.log.suffix(2000))")
        #expect(daemon.terminate() == 0)
    }

    /// A follower on the primary's TLS listener, with a certificate the primary maps to an admin.
    @Test func aFollowerFollowsOverTLS() throws {
        let directory = TemporaryDirectory("tls-follow")
        let files = try TLSFiles(in: directory.sub("certs"))
        let port = try Self.freePort()
        let primary = try Self.daemon(files, host: "127.0.0.1", port: port, directory: directory)
        let c = try BallotClient(socketPath: primary.socketPath)
        _ = try c.call(.electionDefine(DaemonTests.election2022))
        for i in 0..<50 {
            _ = try c.call(.vote("t\(i)@x.no"))
        }
        let followerDir = TemporaryDirectory("tls-follower")
        let config = followerDir.sub("follower.yaml")
        try """
            follow: tls://127.0.0.1:\(port)
            follow_tls:
              certificate: \(files.client("admin").cert)
              private_key: \(files.client("admin").key)
              ca: \(files.ca)

            """.write(toFile: config, atomically: true, encoding: .utf8)
        let follower = try DaemonProcess(directory: followerDir, arguments: ["--config", config])
        let size = try FollowerTests.caughtUp(follower, primary)
        #expect(size > 50)
        let status = try FollowerTests.status(follower)
        #expect(status.merkleRoot.hex == (try FollowerTests.status(primary)).merkleRoot.hex)
        #expect(status.follower?.primary == "tls://127.0.0.1:\(port)", "\(status)")
        #expect(follower.terminate() == 0)
        #expect(primary.terminate() == 0)
    }
}
