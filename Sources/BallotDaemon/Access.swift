public import BallotDomain
import BallotProtocol

/// The peer on the other end of a connection: from `SO_PEERCRED` on the Unix socket, or from
/// its client certificate on the TLS listener (`access.tls_clients` names its uid).
public struct Peer: Sendable {
    public let uid: UInt32
    public let gid: UInt32
    public let pid: Int32
    /// nil: not in the access rules; such a peer may only say `hello`.
    public let role: Actor.Role?
    /// The juror this peer scores as, when its role is juror.
    public let juror: JurorID?
    /// On the TLS listener: the SHA-256 of its certificate (hex).
    public var certificate: String? = nil
    /// On the TLS listener: whether `access.tls_clients` lists the certificate (and so gives
    /// it a uid, whose role may still be none).
    public var listed = true

    /// Whether the peer has a uid: every peer of the socket, and a certificate the rules list.
    public var hasUID: Bool { certificate == nil || listed }

    /// Who the peer is, for refusals: its uid, or the certificate no rule lists.
    public var name: String { hasUID ? "uid \(uid)" : "the certificate \(certificate ?? "?") (not in access.tls_clients)" }

    public var actor: Actor { Actor(role: role ?? .observer, uid: uid) }
}

enum Access {
    /// Refuses `operation` for `peer` with `forbidden`, naming the op and the role.
    static func check(_ operation: Op, for peer: Peer) throws(ProtocolError) {
        let op = operation.name.rawValue
        guard let role = peer.role else {
            if case .hello = operation { return }
            throw ProtocolError(.forbidden, "\(op): \(peer.name) has no role on this daemon; only 'hello' is open to it")
        }
        let allowed: Bool
        switch operation {
        case .hello, .status, .electionGet, .tally, .ranking, .events, .subscribe, .checkpoint(latest: true), .inclusionProof,
             .consistencyProof, .metrics:
            allowed = true
        // A receipt holds the record, and so a sealed election's vote's nominee: for those who cast.
        case .voteCast, .importFile, .receipt:
            allowed = role == .admin || role == .importer
        case .juryScore(_, let juror, _, _, _, _), .resultSign(_, let juror, _):
            if role == .juror {
                if let juror, juror != peer.juror {
                    throw ProtocolError(.forbidden, "\(op): uid \(peer.uid) scores as juror '\(peer.juror?.value ?? "?")', not '\(juror)'")
                }
                allowed = true
            } else {
                allowed = role == .admin
            }
        // The jury's own table, with every score before voting ends: for the jury and admins.
        case .jury:
            allowed = role == .admin || role == .juror
        // A follower's stream holds every record as stored, sealed votes' nominees included.
        case .electionDefine, .electionOpen, .electionClose, .nomineeAdd, .voteInvalidate, .jurorAdd, .juryClose, .resultCertify, .backup,
             .checkpoint(latest: false), .replicate:
            allowed = role == .admin
        }
        guard allowed else { throw ProtocolError(.forbidden, "\(op) is not allowed for the \(role) role (uid \(peer.uid))") }
    }
}
