import Configuration
import Foundation
import SystemPackage
import BallotDomain
import BallotFormat
import BallotHTTP
import BallotClient

/// Reads `ballotd`'s settings: the command line first, then `BALLOTD_*` environment variables,
/// then the YAML file, then the defaults. Keys are flat and snake_case; the environment name
/// of a key is `BALLOTD_` and the key upper-cased, dots as underscores (`socket_mode` →
/// `BALLOTD_SOCKET_MODE`, `access.admin_uids` → `BALLOTD_ACCESS_ADMIN_UIDS`, lists
/// comma-separated). The voter secret itself is never read from here, only its file's path.
public enum DaemonConfigLoader {
    /// Read when `--config` is not given, if it exists.
    public static let defaultConfigFile = "/etc/ballotledger/ballotd.yaml"

    /// `commandLine` and `commandLineLists` hold the settings given as flags, by key.
    public static func load(configFile: String?, commandLine: [String: String], commandLineLists: [String: [String]] = [:],
                            daemonUID: UInt32,
                            environment: [String: String]? = nil) async throws -> (config: DaemonConfig, logLevel: String) {
        var providers: [any ConfigProvider] = [
            InMemoryProvider(name: "command line", values: Dictionary(uniqueKeysWithValues:
                commandLine.map { (AbsoluteConfigKey(stringLiteral: $0.key), ConfigValue(.string($0.value), isSecret: false)) }
                + commandLineLists.map { (AbsoluteConfigKey(stringLiteral: $0.key), ConfigValue(.stringArray($0.value), isSecret: false)) })),
            EnvironmentVariablesProvider(environmentVariables: environment ?? ProcessInfo.processInfo.environment).prefixKeys(with: "ballotd"),
        ]
        let file = configFile ?? defaultConfigFile
        do {
            providers.append(try await FileProvider<YAMLSnapshot>(filePath: FilePath(file), allowMissing: configFile == nil))
        } catch {
            throw DaemonError.setup("cannot read the configuration file \(file): \(error)")
        }
        let reader = ConfigReader(providers: providers)
        func text(_ key: String, _ fallback: String) -> String { reader.string(forKey: ConfigKey(stringLiteral: key)) ?? fallback }
        func number(_ key: String, _ fallback: Int) throws -> Int {
            guard let s = reader.string(forKey: ConfigKey(stringLiteral: key)) else {
                let n = reader.int(forKey: ConfigKey(stringLiteral: key)) ?? fallback
                guard n > 0 else { throw DaemonError.setup("setting \(key) is \(n); a positive whole number is needed") }
                return n
            }
            guard let n = Int(s), n > 0 else { throw DaemonError.setup("setting \(key) is '\(s)'; a positive whole number is needed") }
            return n
        }
        func flag(_ key: String, _ fallback: Bool) throws -> Bool {
            guard let s = reader.string(forKey: ConfigKey(stringLiteral: key)) else { return reader.bool(forKey: ConfigKey(stringLiteral: key)) ?? fallback }
            switch s.lowercased() {
            case "true", "yes", "1": return true
            case "false", "no", "0": return false
            default: throw DaemonError.setup("setting \(key) is '\(s)'; write true or false")
            }
        }
        func ids(_ key: String) throws -> Set<UInt32> {
            let values = reader.stringArray(forKey: ConfigKey(stringLiteral: key)) ?? reader.intArray(forKey: ConfigKey(stringLiteral: key))?.map(String.init) ?? []
            return Set(try values.map { v in
                guard let id = UInt32(v.trimmingCharacters(in: .whitespaces)) else { throw DaemonError.setup("setting \(key) holds '\(v)', which is not a uid or gid") }
                return id
            })
        }

        var access = AccessRules(daemonUID: daemonUID)
        access.admins = try ids("access.admin_uids")
        access.adminGroups = try ids("access.admin_gids")
        access.importers = try ids("access.importer_uids")
        access.importerGroups = try ids("access.importer_gids")
        access.observers = try ids("access.observer_uids")
        access.observerGroups = try ids("access.observer_gids")
        for entry in reader.stringArray(forKey: "access.jurors") ?? [] {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let uid = UInt32(parts[0]), Slug.isValid(parts[1]) else {
                throw DaemonError.setup("access.jurors holds '\(entry)'; write UID=JUROR, for example 1005=jury-a")
            }
            access.jurors[uid] = Slug(unchecked: parts[1])
        }
        for entry in reader.stringArray(forKey: "access.tls_clients") ?? [] {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            let hex = parts.first.map { $0.replacingOccurrences(of: ":", with: "").lowercased() } ?? ""
            guard parts.count == 2, let fingerprint = Digest32(hex: hex), let uid = UInt32(parts[1]), uid != UInt32.max else {
                throw DaemonError.setup("access.tls_clients holds '\(entry)'; write SHA256=UID, the certificate's SHA-256 fingerprint (openssl x509 -noout -fingerprint -sha256 -in CERT) and the uid whose role it takes (below 4294967295)")
            }
            guard access.tlsClients[fingerprint] == nil else {
                throw DaemonError.setup("access.tls_clients lists the certificate \(fingerprint.hex) twice")
            }
            access.tlsClients[fingerprint] = uid
        }

        var config = DaemonConfig(
            dataDirectory: text("data_dir", "/var/lib/ballotledger"),
            socketPath: text("socket", "/run/ballotledger/ballotd.sock"),
            secretFile: text("secret_file", "/etc/ballotledger/voter-secret"),
            access: access)
        config.checkpointKeyFile = text("checkpoint_key_file", config.checkpointKeyFile)
        let interval = text("checkpoint_interval", String(config.checkpointIntervalSeconds))
        guard let seconds = Int64(interval), seconds >= 0 else {
            throw DaemonError.setup("checkpoint_interval is '\(interval)'; write a number of seconds (0 for none)")
        }
        config.checkpointIntervalSeconds = seconds
        config.checkpointOrigin = reader.string(forKey: "checkpoint_origin").flatMap { $0.isEmpty ? nil : $0 }
        let policyPath = text("witness_policy", "")
        if !policyPath.isEmpty { config.witnessPolicy = try loadWitnessPolicy(policyPath) }
        config.witnessTimeoutSeconds = try number("witness_timeout", config.witnessTimeoutSeconds)
        config.witnessCertifyTimeoutSeconds = try number("witness_certify_timeout", config.witnessCertifyTimeoutSeconds)
        config.tilesDirectory = reader.string(forKey: "tiles_dir").flatMap { $0.isEmpty ? nil : $0 }
        let mode = text("socket_mode", "0660")
        guard let octal = UInt32(mode, radix: 8), octal <= 0o777 else { throw DaemonError.setup("socket_mode '\(mode)' is not an octal mode such as 0660") }
        config.socketMode = octal
        config.mapSize = try number("map_size", config.mapSize)
        config.maxMapSize = try number("max_map_size", config.maxMapSize)
        config.maxLineBytes = try number("max_line_bytes", config.maxLineBytes)
        config.maxBatch = try number("max_batch", config.maxBatch)
        config.eventLoops = try number("event_loops", config.eventLoops)
        // `verify_on_open: false`, the older key, means `verify: off`.
        let verify = text("verify", try flag("verify_on_open", true) ? VerificationMode.tail.rawValue : "off")
        guard let verification = VerificationMode(rawValue: verify) else {
            throw DaemonError.setup("verify is '\(verify)'; write one of \(VerificationMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        config.verification = verification
        config.keptTableSlots = try number("kept_table_slots", config.keptTableSlots)
        guard config.keptTableSlots & (config.keptTableSlots - 1) == 0 && (1 << 8...1 << 30).contains(config.keptTableSlots) else {
            throw DaemonError.setup("kept_table_slots is \(config.keptTableSlots); write a power of two from 256 to 1073741824 (the default is 33554432)")
        }
        config.idleTimeoutSeconds = try number("idle_timeout", config.idleTimeoutSeconds)
        let metricsListen = text("metrics_listen", "")
        if !metricsListen.isEmpty {
            guard let address = ListenAddress(metricsListen) else {
                throw DaemonError.setup("metrics_listen is '\(metricsListen)'; write HOST:PORT, for example 127.0.0.1:9464 or [::1]:9464")
            }
            config.metricsListen = address
        }
        let listenTLS = text("listen_tls", "")
        if !listenTLS.isEmpty {
            guard let address = ListenAddress(listenTLS) else {
                throw DaemonError.setup("listen_tls is '\(listenTLS)'; write HOST:PORT, for example 0.0.0.0:7443 or [::]:7443")
            }
            let files = ["tls.certificate", "tls.private_key", "tls.client_ca"].map { text($0, "") }
            for (key, file) in zip(["tls.certificate", "tls.private_key", "tls.client_ca"], files) where file.isEmpty {
                throw DaemonError.setup("listen_tls is set, and \(key) is not: the listener needs the daemon's certificate, its private key and the CA of the clients' certificates (PEM files)")
            }
            config.listenTLS = TLSListenConfig(address: address, certificateFile: files[0], privateKeyFile: files[1], clientCAFile: files[2])
            _ = try TLSListener.context(config.listenTLS!)   // unreadable files stop the start here
        } else if let set = ["tls.certificate", "tls.private_key", "tls.client_ca"].first(where: { !text($0, "").isEmpty }) {
            throw DaemonError.setup("\(set) is set, and listen_tls is not: set listen_tls (HOST:PORT) to serve over TLS, or remove the tls settings")
        }
        let follow = text("follow", "")
        if !follow.isEmpty {
            let keyText = text("follow_checkpoint_key", "")
            var key: Digest32?
            if !keyText.isEmpty {
                guard let parsed = Digest32(hex: keyText) else {
                    throw DaemonError.setup("follow_checkpoint_key is '\(keyText)'; write the primary's checkpoint public key as 64 hex digits (hello's checkpoint_public_key)")
                }
                key = parsed
            }
            let keys = ["follow_tls.certificate", "follow_tls.private_key", "follow_tls.ca"]
            let files = keys.map { text($0, "") }
            let missing = zip(keys, files).filter { $0.1.isEmpty }.map(\.0)
            if follow.hasPrefix("tls://"), !missing.isEmpty, missing.count < keys.count {
                throw DaemonError.setup("follow is \(follow), and \(missing.joined(separator: ", ")) \(missing.count == 1 ? "is" : "are") not set: a follower over TLS needs its certificate, its key and the primary's CA (PEM files)")
            }
            if !follow.hasPrefix("tls://"), missing.count < keys.count {
                throw DaemonError.setup("follow_tls is set, and follow is \(follow), not tls://HOST:PORT: remove follow_tls, or follow the primary's TLS listener")
            }
            let tls = missing.isEmpty ? (certificate: files[0], privateKey: files[1], ca: files[2]) : nil
            if let tls {
                do {
                    _ = try TLSEndpoint.clientContext(certificateFile: tls.certificate, privateKeyFile: tls.privateKey, caFile: tls.ca)
                } catch {
                    throw DaemonError.setup("follow_tls: cannot load the certificate \(tls.certificate), the key \(tls.privateKey) or the CA \(tls.ca): \(error)")
                }
            }
            config.follow = try FollowConfig(follow, tls: tls, checkpointKey: key)
            guard config.follow?.primary != .socket(config.socketPath) else {
                throw DaemonError.setup("follow names this daemon's own socket (\(config.socketPath))")
            }
            guard config.witnessPolicy == nil else {
                throw DaemonError.setup("witness_policy is set on a follower: witnesses cosign the primary's checkpoints, asked by the primary; remove it here")
            }
        }
        let natsURL = text("intake.nats_url", "")
        if !natsURL.isEmpty {
            var intake = IntakeConfig(natsURL: natsURL)
            intake.votesStream = try natsName("intake.votes_stream", text("intake.votes_stream", intake.votesStream))
            intake.votesSubject = try subjectPrefix("intake.votes_subject", text("intake.votes_subject", intake.votesSubject))
            intake.outcomesStream = try natsName("intake.outcomes_stream", text("intake.outcomes_stream", intake.outcomesStream))
            intake.outcomesSubject = try subjectPrefix("intake.outcomes_subject", text("intake.outcomes_subject", intake.outcomesSubject))
            intake.consumer = try natsName("intake.consumer", text("intake.consumer", intake.consumer))
            intake.batch = try number("intake.batch", intake.batch)
            intake.ackWaitSeconds = Int64(try number("intake.ack_wait", Int(intake.ackWaitSeconds)))
            intake.duplicateWindowSeconds = Int64(try number("intake.duplicate_window", Int(intake.duplicateWindowSeconds)))
            guard intake.votesStream != intake.outcomesStream, intake.votesSubject != intake.outcomesSubject,
                  !intake.votesSubject.hasPrefix(intake.outcomesSubject + "."), !intake.outcomesSubject.hasPrefix(intake.votesSubject + ".") else {
                throw DaemonError.setup("intake: the votes and the outcomes need streams and subjects of their own (votes \(intake.votesStream) on \(intake.votesSubject), outcomes \(intake.outcomesStream) on \(intake.outcomesSubject))")
            }
            guard intake.batch <= 65536 else { throw DaemonError.setup("intake.batch is \(intake.batch); at most 65536") }
            // The duplicate window is what drops a second outcome of a message decided again,
            // and a front end's repeat: it must outlast several redeliveries.
            guard intake.duplicateWindowSeconds >= 4 * intake.ackWaitSeconds else {
                throw DaemonError.setup("intake.duplicate_window is \(intake.duplicateWindowSeconds) s; at least 4 times intake.ack_wait (\(intake.ackWaitSeconds) s)")
            }
            guard config.follow == nil else {
                throw DaemonError.setup("intake.nats_url is set on a follower, which takes no votes; set it on the primary")
            }
            config.intake = intake
        }
        let logLevel = text("log_level", "info")
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw DaemonError.setup("log_level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        return (config, logLevel)
    }

    /// A stream's or consumer's name: letters, digits, - and _.
    static func natsName(_ key: String, _ value: String) throws -> String {
        guard !value.isEmpty, value.utf8.count <= 64, value.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else {
            throw DaemonError.setup("\(key) is '\(value)'; write a name of letters, digits, - and _")
        }
        return value
    }

    /// A subject prefix: dot-separated tokens of letters, digits, - and _, no wildcard.
    static func subjectPrefix(_ key: String, _ value: String) throws -> String {
        let tokens = value.split(separator: ".", omittingEmptySubsequences: false)
        guard !value.isEmpty, tokens.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") } }) else {
            throw DaemonError.setup("\(key) is '\(value)'; write a subject such as ballot.votes (tokens of letters, digits, - and _)")
        }
        return value
    }

    private static func isAlphanumeric(_ b: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
    }

    /// Reads the witness policy file; a witness's URL must be one the daemon can ask.
    static func loadWitnessPolicy(_ path: String) throws -> WitnessPolicy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DaemonError.setup("witness_policy: cannot read \(path)")
        }
        let policy: WitnessPolicy
        do {
            policy = try WitnessPolicy(parsing: String(decoding: data, as: UTF8.self))
        } catch {
            throw DaemonError.setup("witness_policy \(path): \(error)")
        }
        for w in policy.witnesses {
            if let url = w.url, HTTPURL(url) == nil {
                throw DaemonError.setup("witness_policy \(path): the witness \(w.name) has the URL '\(url)'; write http://HOST:PORT[/PREFIX] (TLS is not built yet)")
            }
        }
        guard policy.isSatisfied(by: Set(policy.witnesses.filter { $0.url != nil }.map(\.name))) else {
            throw DaemonError.setup("witness_policy \(path): the witnesses with a URL, all of them, do not meet the quorum: no checkpoint could ever be witnessed")
        }
        return policy
    }
}
