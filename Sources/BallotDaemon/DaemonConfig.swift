public import BallotDomain
public import BallotFormat
import NIOCore

/// What `ballotd` needs to run. Built by the executable from its command line and environment.
public struct DaemonConfig: Sendable {
    public var dataDirectory: String
    public var socketPath: String
    /// Permissions of the socket file (default 0660: owner and group).
    public var socketMode: UInt32 = 0o660
    /// The file holding the operator's HMAC secret for voter identifiers.
    public var secretFile: String
    /// The Ed25519 checkpoint signing key (a hex seed), created with mode 0600 if missing.
    public var checkpointKeyFile: String
    /// Seconds between checkpoints while the ledger grows; 0 for none but those on request and
    /// on close and certification.
    public var checkpointIntervalSeconds: Int64 = 300
    /// The origin line of the checkpoints' notes, the log's name (nil: the ledger's own, see
    /// `Ledger.Options.checkpointOrigin`).
    public var checkpointOrigin: String?
    /// The witnesses asked to cosign each checkpoint, and the quorum that makes one witnessed
    /// (c2sp.org/tlog-policy); nil for none. Key: witness_policy (the file's path).
    public var witnessPolicy: WitnessPolicy?
    /// How long one witness has to answer a request (connection included). Key: witness_timeout.
    public var witnessTimeoutSeconds = 10
    /// How long `result.certify` of an election that requires witnesses waits for a witnessed
    /// checkpoint covering it: longer than `witnessTimeoutSeconds`, so that a round still
    /// under way for an earlier checkpoint, and one retry, fit. Key: witness_certify_timeout.
    public var witnessCertifyTimeoutSeconds = 30
    /// Where to publish the ledger as tiles (c2sp.org/tlog-tiles) after each checkpoint, for
    /// any web server to serve; nil for nowhere. Key: tiles_dir.
    public var tilesDirectory: String?
    public var mapSize: Int = 1 << 30
    public var maxMapSize: Int = 1 << 40
    /// When the whole ledger is checked (see `VerificationMode`).
    public var verification = VerificationMode.tail
    /// The most slots each kept table grows to before its older entries go to layers that never
    /// change (`Ledger.Options.keptTableSlots`): a power of two. Key: kept_table_slots.
    public var keptTableSlots = 1 << 25
    /// The longest request line accepted, in bytes.
    public var maxLineBytes = 1 << 20
    /// The most commands one write transaction takes from the queue.
    public var maxBatch = 10_000
    /// Threads serving connections. One more than the cores: the writer thread and the
    /// clients share those cores, and a loop that is preempted holds up every connection on
    /// it (measured in docs/performance.md: 2 cores, 3 loops).
    public var eventLoops = System.coreCount + 1
    /// A connection that sends nothing for this long (a half-sent line, a forgotten client)
    /// is closed, and an import whose file stops arriving for as long is ended; subscribers
    /// and clients awaiting a reply are not.
    public var idleTimeoutSeconds = 300
    public var access: AccessRules
    /// Where to serve `GET /metrics` over HTTP for Prometheus; nil (the default) for nowhere.
    public var metricsListen: ListenAddress?
    /// Votes taken from NATS JetStream (docs/intake.md); nil (the default) for none. Key:
    /// intake.nats_url and the other intake.* keys.
    public var intake: IntakeConfig?
    /// Set: a TCP listener with mutual TLS speaking the same protocol (`listen_tls`).
    public var listenTLS: TLSListenConfig?
    /// Set: this daemon is a follower of that primary (`follow`): it stores the primary's
    /// records, each verified, and serves reads; writes are refused as `read_only`.
    public var follow: FollowConfig?
    /// Renders the metrics for the `metrics` op in the Prometheus text format; `main` sets it
    /// when it bootstraps the metrics backend.
    public var renderMetrics: @Sendable () -> [UInt8] = { Array("# no metrics backend\n".utf8) }

    public init(dataDirectory: String, socketPath: String, secretFile: String, access: AccessRules) {
        self.dataDirectory = dataDirectory
        self.socketPath = socketPath
        self.secretFile = secretFile
        self.checkpointKeyFile = "\(dataDirectory)/checkpoint.key"
        self.access = access
    }
}

/// Who may do what: uids and gids mapped to roles. The uid the daemon runs as is an admin
/// unless it is listed under another role. Anyone else may only say `hello`.
public struct AccessRules: Sendable {
    public var admins = Set<UInt32>()
    public var adminGroups = Set<UInt32>()
    public var importers = Set<UInt32>()
    public var importerGroups = Set<UInt32>()
    public var observers = Set<UInt32>()
    public var observerGroups = Set<UInt32>()
    /// uid → the juror that uid scores as.
    public var jurors: [UInt32: JurorID] = [:]
    /// Client certificates of the TLS listener, by the SHA-256 of their DER bytes, and the uid
    /// each stands for (`access.tls_clients`): its role is that uid's.
    public var tlsClients: [Digest32: UInt32] = [:]
    /// The daemon's own uid (an admin by default).
    public var daemonUID: UInt32

    public init(daemonUID: UInt32) { self.daemonUID = daemonUID }

    /// The role a peer with these credentials acts in, or nil for none.
    /// `gid`: nil for a TLS client, which has a uid (`tlsClients`) and no group.
    public func role(uid: UInt32, gid: UInt32?) -> Actor.Role? {
        if admins.contains(uid) { return .admin }
        if jurors[uid] != nil { return .juror }
        if importers.contains(uid) { return .importer }
        if observers.contains(uid) { return .observer }
        if uid == daemonUID { return .admin }
        guard let gid else { return nil }
        if adminGroups.contains(gid) { return .admin }
        if importerGroups.contains(gid) { return .importer }
        if observerGroups.contains(gid) { return .observer }
        return nil
    }
}

/// The TCP listener with mutual TLS (`listen_tls`, `tls.*`; docs/operations.md, "Remote access").
public struct TLSListenConfig: Sendable, Equatable {
    public var address: ListenAddress
    /// PEM files: the daemon's certificate (chain), its private key, and the CA that signs
    /// the clients' certificates (none other is accepted).
    public var certificateFile: String
    public var privateKeyFile: String
    public var clientCAFile: String

    public init(address: ListenAddress, certificateFile: String, privateKeyFile: String, clientCAFile: String) {
        self.address = address
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.clientCAFile = clientCAFile
    }
}

/// A TCP address to listen on, written HOST:PORT (`127.0.0.1:9464`, `[::1]:9464`).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(" ") else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Where and how `ballotd` takes votes from NATS JetStream (docs/intake.md).
public struct IntakeConfig: Sendable, Equatable {
    /// The NATS server (`nats://HOST:PORT`; several, comma-separated, for a cluster).
    public var natsURL: String
    /// The stream front ends publish votes to, made if missing (work-queue retention), and
    /// the subjects: `<votesSubject>.<election>`.
    public var votesStream = "BALLOT_VOTES"
    public var votesSubject = "ballot.votes"
    /// The stream every outcome is kept in, made if missing, on `<outcomesSubject>.<election>.<vote>`.
    public var outcomesStream = "BALLOT_OUTCOMES"
    public var outcomesSubject = "ballot.outcomes"
    /// The durable pull consumer's name.
    public var consumer = "ballotd"
    /// The most messages one fetch takes: one writer job, one commit.
    public var batch = 4096
    /// How long JetStream waits for an acknowledgement before it delivers a message again.
    public var ackWaitSeconds: Int64 = 30
    /// How long the streams JetStream makes remember a message id (a front end's repeat of a
    /// vote within it is dropped before ballotd sees it).
    public var duplicateWindowSeconds: Int64 = 600

    public init(natsURL: String) { self.natsURL = natsURL }
}

/// A follower's primary (`follow`, `follow_checkpoint_key`, `follow_tls`; docs/operations.md,
/// "Followers").
public struct FollowConfig: Sendable, Equatable {
    /// Where the primary is: its Unix socket, or its TLS listener.
    public enum Primary: Sendable, Equatable {
        case socket(String)
        /// With the follower's certificate and key and the CA of the primary's certificate.
        case tls(host: String, port: Int, certificate: String, privateKey: String, ca: String)
    }

    public var primary: Primary
    /// The primary's checkpoint key: every checkpoint must be signed by it. Nil: the first
    /// checkpoint's key stands for it, as in `ballot-replay verify` without `--pubkey`.
    public var checkpointKey: Digest32?

    /// What `follow` names.
    public var description: String {
        switch primary {
        case .socket(let path): "unix://\(path)"
        case .tls(let host, let port, _, _, _): "tls://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        }
    }

    public init(primary: Primary, checkpointKey: Digest32? = nil) {
        self.primary = primary
        self.checkpointKey = checkpointKey
    }

    /// Reads `follow`: `unix:///PATH` (or the path alone), or `tls://HOST:PORT` with `tls`, the
    /// follower's certificate, key and the primary's CA (`follow_tls.*`).
    public init(_ text: String, tls: (certificate: String, privateKey: String, ca: String)?, checkpointKey: Digest32? = nil) throws {
        self.checkpointKey = checkpointKey
        if text.hasPrefix("tls://") {
            guard let address = ListenAddress(String(text.dropFirst("tls://".count))) else {
                throw DaemonError.setup("follow is '\(text)'; write tls://HOST:PORT")
            }
            guard let tls else {
                throw DaemonError.setup("follow is '\(text)', and follow_tls.certificate, follow_tls.private_key and follow_tls.ca are not all set: a follower over TLS needs its certificate, its key and the primary's CA (PEM files)")
            }
            primary = .tls(host: address.host, port: address.port, certificate: tls.certificate, privateKey: tls.privateKey, ca: tls.ca)
            return
        }
        let path = text.hasPrefix("unix://") ? String(text.dropFirst("unix://".count)) : text
        guard path.hasPrefix("/"), !path.utf8.contains(0) else {
            throw DaemonError.setup("follow is '\(text)'; write the primary's socket as unix:///PATH (or an absolute path), or its TLS listener as tls://HOST:PORT")
        }
        primary = .socket(path)
    }
}
