/// A juror's own Ed25519 key, as c2sp.org/signed-note names one: a key name, the public key,
/// and its key ID (the first four bytes of SHA-256 over the name, a newline, the type byte 0x01
/// and the key; computed where SHA-256 is, BallotFormat's `VerifierKey`). Recorded by
/// `juror.add`; the daemon never holds the private half.
public struct JurorKey: Sendable, Equatable {
    public var name: String
    public var publicKey: Digest32
    public var keyID: UInt32

    public init(name: String, publicKey: Digest32, keyID: UInt32) {
        self.name = name
        self.publicKey = publicKey
        self.keyID = keyID
    }
}

extension Digest32 {
    /// Whether these 32 bytes encode an Ed25519 point of small order (orders 1, 2, 4 and 8,
    /// the sign bit ignored, non-canonical forms included): under such a "public key", one
    /// signature verifies for every message. The list is libsodium's.
    public var isSmallOrderEd25519: Bool {
        var bytes = withBytes { Array($0) }
        bytes[31] &= 0x7F
        return Self.smallOrderPoints.contains(bytes)
    }

    /// Whether these 32 bytes are a canonical Ed25519 point encoding: y (little-endian, the
    /// sign bit cleared) below p = 2^255 - 19. (Whether y is on the curve takes field
    /// arithmetic, which no library here offers; a key that is not cannot sign anything, like a
    /// lost one, and a mistyped one fails its vkey's key ID.)
    public var isCanonicalEd25519: Bool {
        var y = withBytes { Array($0) }
        y[31] &= 0x7F
        // p = 0x7fff…ffed, little-endian: ed, then thirty ff, then 7f.
        let p: [UInt8] = [0xED] + Array(repeating: 0xFF, count: 30) + [0x7F]
        for i in stride(from: 31, through: 0, by: -1) where y[i] != p[i] { return y[i] < p[i] }
        return false
    }

    private static let smallOrderPoints: [[UInt8]] = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ].map { hex in stride(from: 0, to: 64, by: 2).map { UInt8(hex.dropFirst($0).prefix(2), radix: 16)! } }
}

/// What an election asks of its jurors' signatures (its definition's `jury_signatures` and
/// `jury_quorum`). Not a rule of any number: a score or a result is what it is; the policy
/// says who must have signed it before the ledger takes it.
public struct JurySignaturePolicy: Sendable, Equatable {
    /// Every score must be signed with its juror's key (an admin's entry too).
    public var required: Bool
    /// How many jurors must co-sign the result before it is certified; 0: no co-signing, and
    /// `result.certify` certifies at once, as before.
    public var quorum: Int

    public init(required: Bool, quorum: Int) {
        self.required = required
        self.quorum = quorum
    }

    public static let none = JurySignaturePolicy(required: false, quorum: 0)
}

/// An Ed25519 signature (64 bytes) by a juror's key, of a statement the ledger can rebuild
/// from the event that holds it and the ledger's id (docs/ledger-format.md §3.2).
public struct JurorSignature: Sendable, Equatable {
    public var juror: JurorID
    public var bytes: [UInt8]

    public init(juror: JurorID, bytes: [UInt8]) {
        self.juror = juror
        self.bytes = bytes
    }
}

/// A signature as a client sends it: the key ID of the signed-note signature line (nil when
/// replay rebuilds the command from an event, which keeps only the signature) and the bytes.
public struct SentSignature: Sendable, Equatable {
    public var keyID: UInt32?
    public var bytes: [UInt8]

    public init(keyID: UInt32?, bytes: [UInt8]) {
        self.keyID = keyID
        self.bytes = bytes
    }
}

/// The result an admin put to the jury in an election with a co-signing quorum: the ranking as
/// it stood, its winner, and the jury's written justification. Jurors co-sign it
/// (`result.sign`); the quorum's last signature certifies it.
public struct ResultProposal: Sendable, Equatable {
    public var election: ElectionID
    public var winner: NomineeID
    public var ranking: [NomineeID]
    public var justification: String

    public init(election: ElectionID, winner: NomineeID, ranking: [NomineeID], justification: String) {
        self.election = election
        self.winner = winner
        self.ranking = ranking
        self.justification = justification
    }
}

/// One juror's co-signature of the proposal recorded at event `proposal`.
public struct ResultCosignature: Sendable, Equatable {
    public var election: ElectionID
    public var proposal: UInt64
    public var signature: JurorSignature

    public init(election: ElectionID, proposal: UInt64, signature: JurorSignature) {
        self.election = election
        self.proposal = proposal
        self.signature = signature
    }
}
