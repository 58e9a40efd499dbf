public import BallotDomain

// What any peer may ask of the daemon itself: who it is, how its ledger stands, its metrics.

/// `hello`: the protocol and server, who the daemon takes the peer to be, and what it may ask.
public struct HelloResult: OpResult {
    public var protocolVersion: Int64
    public var serverVersion: String
    /// nil: the peer has no role and may only say `hello`.
    public var role: String?
    /// nil: a TLS client whose certificate `access.tls_clients` does not list.
    public var uid: UInt32?
    /// On the TLS listener: the SHA-256 of the peer's certificate (hex).
    public var certificateSHA256: String?
    /// Names, not `OpName`s: a newer daemon may know more.
    public var ops: [String]
    public var checkpointPublicKey: String?

    public init(protocolVersion: Int64, serverVersion: String, role: String?, uid: UInt32?, certificateSHA256: String?, ops: [String], checkpointPublicKey: String?) {
        self.protocolVersion = protocolVersion
        self.serverVersion = serverVersion
        self.role = role
        self.uid = uid
        self.certificateSHA256 = certificateSHA256
        self.ops = ops
        self.checkpointPublicKey = checkpointPublicKey
    }

    public var json: JSONValue {
        .object([("protocol_version", .int(protocolVersion)), ("server_version", .string(serverVersion)), ("role", role.json),
                 ("uid", uid.map { .int(Int64($0)) } ?? .null), ("certificate_sha256", certificateSHA256.json),
                 ("ops", .array(ops.map(JSONValue.string))), ("checkpoint_public_key", checkpointPublicKey.json)])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("hello", json)
        let uid = try m.optional("uid", m.uint)
        guard uid.map({ $0 <= UInt32.max }) ?? true else { throw m.lacks("uid", "a uid") }
        var ops: [String] = []
        for op in try m.array("ops") {
            guard let name = op.stringValue else { throw m.lacks("ops", "an array of names") }
            ops.append(name)
        }
        self.init(protocolVersion: try m.int("protocol_version"), serverVersion: try m.string("server_version"),
                  role: try m.optional("role", m.string), uid: uid.map { UInt32($0) },
                  certificateSHA256: try m.optional("certificate_sha256", m.string), ops: ops,
                  checkpointPublicKey: try m.optional("checkpoint_public_key", m.string))
    }
}

/// `status`: the ledger's size and root, its elections, and how its verification, witnessing
/// and (on a follower) replication stand.
public struct StatusResult: OpResult {
    public var ledgerID: String
    public var ledgerSize: UInt64
    public var merkleRoot: Digest32
    public var elections: Int64
    public var verification: VerificationReport
    /// The witnesses and the newest witnessed checkpoint; `.null` without a witness policy.
    public var witnessing: JSONValue
    /// On a follower: how it follows its primary.
    public var follower: FollowerReport?

    public init(ledgerID: String, ledgerSize: UInt64, merkleRoot: Digest32, elections: Int64, verification: VerificationReport,
                witnessing: JSONValue, follower: FollowerReport?) {
        self.ledgerID = ledgerID
        self.ledgerSize = ledgerSize
        self.merkleRoot = merkleRoot
        self.elections = elections
        self.verification = verification
        self.witnessing = witnessing
        self.follower = follower
    }

    public var json: JSONValue {
        .object([("ledger_id", .string(ledgerID)), ("ledger_size", .uint(ledgerSize)), ("merkle_root", .string(merkleRoot.hex)),
                 ("elections", .int(elections)), ("verification", verification.json), ("witnessing", witnessing),
                 ("follower", follower?.json ?? .null)])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("status", json)
        self.init(ledgerID: try m.string("ledger_id"), ledgerSize: try m.uint("ledger_size"), merkleRoot: try m.digest("merkle_root"),
                  elections: try m.int("elections"), verification: try VerificationReport(json: m.any("verification")),
                  witnessing: m.any("witnessing"), follower: m.has("follower") ? try FollowerReport(json: m.any("follower")) : nil)
    }
}

/// `status.verification`: the daemon's own check of its ledger (docs/operations.md).
public struct VerificationReport: OpResult {
    /// off, running, verified or failed; a newer daemon may report another.
    public struct State: RawRepresentable, Hashable, Sendable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let off = State(rawValue: "off"), running = State(rawValue: "running")
        public static let verified = State(rawValue: "verified"), failed = State(rawValue: "failed")
    }
    /// The `verify` setting: how much of the ledger is checked at start.
    public var mode: String
    public var state: State
    /// Verified or failed: how many events were checked, and from and through which.
    public var events: UInt64?
    public var from: UInt64?
    public var through: UInt64?
    public var findings: Int64?
    public var firstFinding: String?

    public init(mode: String, state: State, events: UInt64? = nil, from: UInt64? = nil, through: UInt64? = nil, findings: Int64? = nil,
                firstFinding: String? = nil) {
        self.mode = mode
        self.state = state
        self.events = events
        self.from = from
        self.through = through
        self.findings = findings
        self.firstFinding = firstFinding
    }

    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [("mode", .string(mode)), ("state", .string(state.rawValue))]
        if let events { fields.append(("events", .uint(events))) }
        if let from { fields.append(("from", .uint(from))) }
        if let through { fields.append(("through", .uint(through))) }
        if let findings { fields.append(("findings", .int(findings))) }
        if let firstFinding { fields.append(("first_finding", .string(firstFinding))) }
        return .object(fields)
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("status.verification", json)
        self.init(mode: try m.string("mode"), state: State(rawValue: try m.string("state")), events: try m.optional("events", m.uint), from: try m.optional("from", m.uint),
                  through: try m.optional("through", m.uint), findings: try m.optional("findings", m.int),
                  firstFinding: try m.optional("first_finding", m.string))
    }
}

/// `status.follower`: where a follower stands against its primary (docs/operations.md, "Followers").
public struct FollowerReport: OpResult {
    public var primary: String
    /// connecting, following, paused, waiting or stopped.
    public var state: String
    public var primaryLedgerSize: UInt64?
    public var lagEvents: UInt64?
    /// The size the newest stored checkpoint signs.
    public var checkpointSize: UInt64?
    public var secondsSinceContact: Double?
    public var stoppedBecause: String?
    public var lastError: String?

    public init(primary: String, state: String, primaryLedgerSize: UInt64?, lagEvents: UInt64?, checkpointSize: UInt64?,
                secondsSinceContact: Double?, stoppedBecause: String?, lastError: String?) {
        self.primary = primary
        self.state = state
        self.primaryLedgerSize = primaryLedgerSize
        self.lagEvents = lagEvents
        self.checkpointSize = checkpointSize
        self.secondsSinceContact = secondsSinceContact
        self.stoppedBecause = stoppedBecause
        self.lastError = lastError
    }

    public var json: JSONValue {
        .object([("primary", .string(primary)), ("state", .string(state)), ("primary_ledger_size", primaryLedgerSize.json),
                 ("lag_events", lagEvents.json), ("checkpoint_size", checkpointSize.json),
                 ("seconds_since_contact", secondsSinceContact.map { .double($0) } ?? .null),
                 ("stopped_because", stoppedBecause.json), ("last_error", lastError.json)])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("status.follower", json)
        var seconds: Double?
        if m.has("seconds_since_contact") {
            guard let s = m.any("seconds_since_contact").doubleValue else { throw m.lacks("seconds_since_contact", "a number") }
            seconds = s
        }
        self.init(primary: try m.string("primary"), state: try m.string("state"), primaryLedgerSize: try m.optional("primary_ledger_size", m.uint),
                  lagEvents: try m.optional("lag_events", m.uint), checkpointSize: try m.optional("checkpoint_size", m.uint),
                  secondsSinceContact: seconds, stoppedBecause: try m.optional("stopped_because", m.string),
                  lastError: try m.optional("last_error", m.string))
    }
}

/// `metrics`: the daemon's metrics in the Prometheus text format.
public struct MetricsResult: OpResult {
    public var format: String
    public var text: String

    public init(format: String = "prometheus-text-0.0.4", text: String) {
        self.format = format
        self.text = text
    }

    public var json: JSONValue { .object([("format", .string(format)), ("text", .string(text))]) }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("metrics", json)
        self.init(format: try m.string("format"), text: try m.string("text"))
    }
}
