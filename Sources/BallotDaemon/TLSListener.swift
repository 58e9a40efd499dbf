import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
#if canImport(Glibc)
import Glibc
#endif
import BallotDomain
import BallotFormat
import BallotProtocol

/// The TCP listener with mutual TLS (`listen_tls`): the same line protocol as the Unix socket,
/// a peer's role taken from its client certificate. A client must present a certificate the
/// configured CA signed and that is in date, or the handshake fails (and is logged); its
/// SHA-256 fingerprint is then looked up in `access.tls_clients`, which names the uid whose
/// role it takes. A certificate not listed may only say `hello`.
enum TLSListener {
    /// The server's TLS context: TLS 1.2 or later, the client's certificate required and
    /// verified against the client CA (no host name: clients are told apart by certificate).
    static func context(_ config: TLSListenConfig) throws -> NIOSSLContext {
        do {
            var tls = TLSConfiguration.makeServerConfigurationWithMTLS(
                certificateChain: try NIOSSLCertificate.fromPEMFile(config.certificateFile).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: config.privateKeyFile, format: .pem)),
                trustRoots: .file(config.clientCAFile))
            tls.minimumTLSVersion = .tlsv12
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw DaemonError.setup("listen_tls: cannot load tls.certificate \(config.certificateFile), tls.private_key \(config.privateKeyFile) or tls.client_ca \(config.clientCAFile): \(error)")
        }
    }

    /// The SHA-256 of a certificate's DER bytes: what `access.tls_clients` lists.
    static func fingerprint(_ certificate: NIOSSLCertificate) -> Digest32? {
        guard let der = try? certificate.toDERBytes() else { return nil }
        return der.withUnsafeBytes { SHA256Digester.hash($0) }
    }

    /// The peer a verified client certificate stands for. (A peer with no uid has uid
    /// `UInt32.max`, which `access.tls_clients` may not name, and no role.)
    static func peer(_ certificate: NIOSSLCertificate?, rules: AccessRules) -> (Peer, fingerprint: String) {
        guard let certificate, let fingerprint = fingerprint(certificate) else {
            return (Peer(uid: UInt32.max, gid: UInt32.max, pid: 0, role: nil, juror: nil, certificate: "none", listed: false), "none")
        }
        guard let uid = rules.tlsClients[fingerprint] else {
            return (Peer(uid: UInt32.max, gid: UInt32.max, pid: 0, role: nil, juror: nil, certificate: fingerprint.hex, listed: false), fingerprint.hex)
        }
        let role = rules.role(uid: uid, gid: nil)
        return (Peer(uid: uid, gid: UInt32.max, pid: 0, role: role, juror: role == .juror ? rules.jurors[uid] : nil, certificate: fingerprint.hex),
                fingerprint.hex)
    }
}

/// Waits for a connection's TLS handshake, then puts the protocol's handlers behind it for the
/// peer its certificate names, and leaves. A failed handshake (no certificate, another CA's,
/// one out of date, a client that does not speak TLS) is logged with the peer's address and
/// closes the connection.
final class TLSPeerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let rules: AccessRules
    private let logger: Logger
    private let install: (Peer, ChannelHandlerContext) throws -> Void
    /// Bytes that arrived before the handlers were in place.
    private var early: [NIOAny] = []
    private var installed = false

    init(rules: AccessRules, logger: Logger, install: @escaping (Peer, ChannelHandlerContext) throws -> Void) {
        self.rules = rules
        self.logger = logger
        self.install = install
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if installed { context.fireChannelRead(data) } else { early.append(data) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case TLSUserEvent.handshakeCompleted = event else {
            // Before the handshake completes nothing behind this handler would hear of an idle
            // connection or a shutdown: a client that connects and never finishes its handshake
            // is closed here, as an idle one is.
            if !installed, event is ShutdownRequested || (event as? IdleStateHandler.IdleStateEvent) == .read {
                if !(event is ShutdownRequested) { refused(context, "no TLS handshake within idle_timeout") }
                return context.close(promise: nil)
            }
            return context.fireUserInboundEventTriggered(event)
        }
        let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
        // A resumed session skips the certificate's dates: they are checked here on every one.
        if let certificate {
            let now = time(nil)
            guard certificate.notValidBefore <= now, now <= certificate.notValidAfter else {
                refused(context, "the client certificate is out of date (a resumed session)")
                return context.close(promise: nil)
            }
        }
        let (peer, fingerprint) = TLSListener.peer(certificate, rules: rules)
        logger.info("tls: a client connected", metadata: [
            "peer.address": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "peer.certificate_sha256": "\(fingerprint)",
            "peer.uid": "\(peer.listed ? "\(peer.uid)\(peer.role == nil ? " (which has no role)" : "")" : "none (not in access.tls_clients: hello only)")"])
        do {
            try install(peer, context)
        } catch {
            logger.error("tls: cannot set up the connection", metadata: ["error": "\(error)"])
            return context.close(promise: nil)
        }
        installed = true
        for data in early { context.fireChannelRead(data) }
        early = []
        context.fireUserInboundEventTriggered(event)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !installed { refused(context, Self.reason(error)) }
        context.close(promise: nil)
    }

    /// The log line of a refused connection: who, and why.
    private func refused(_ context: ChannelHandlerContext, _ reason: String) {
        logger.warning("tls: refused a connection", metadata: [
            "peer.address": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(reason)"])
    }

    /// What went wrong, for the log line: the handshake's own error where there is one.
    static func reason(_ error: any Error) -> String {
        switch error {
        case NIOSSLError.handshakeFailed(let errors): "the TLS handshake failed: \(errors)"
        case let error as NIOSSLError: "\(error)"
        default: "\(error)"
        }
    }
}
