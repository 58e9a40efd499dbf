/// Who asked for an event: the role the daemon granted and the peer's uid.
public struct Actor: Hashable, Sendable, CustomStringConvertible {
    public enum Role: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        /// The ledger itself (checkpoints, maintenance).
        case system = 0
        case admin = 1
        case juror = 2
        case importer = 3
        case observer = 4

        public var description: String {
            switch self {
            case .system: "system"
            case .admin: "admin"
            case .juror: "juror"
            case .importer: "importer"
            case .observer: "observer"
            }
        }
    }

    public var role: Role
    public var uid: UInt32

    public init(role: Role, uid: UInt32) {
        self.role = role
        self.uid = uid
    }

    public static let system = Actor(role: .system, uid: 0)
    public var description: String { "\(role)(uid \(uid))" }
}
