/// Why the daemon could not start or go on, in words for the operator.
enum DaemonError: Error, CustomStringConvertible {
    case shuttingDown
    case alreadyRunning(String)
    case socketInUse(String)
    case setup(String)

    var description: String {
        switch self {
        case .shuttingDown: "the daemon is shutting down"
        case .alreadyRunning(let message), .socketInUse(let message), .setup(let message): message
        }
    }
}
