/// Every op the daemon knows, by the name a request line gives it: the one list, which `hello`
/// reports and `unknown_op` names, and over which `Op.init` switches to decode a request (so a
/// name without a decoding does not compile). The access rules and a follower's read-only rule
/// switch over `Op` itself (docs/protocol.md).
public enum OpName: String, Sendable, CaseIterable {
    case hello
    case status
    case electionDefine = "election.define"
    case electionGet = "election.get"
    case electionOpen = "election.open"
    case electionClose = "election.close"
    case nomineeAdd = "nominee.add"
    case voteCast = "vote.cast"
    case voteInvalidate = "vote.invalidate"
    case jurorAdd = "juror.add"
    case juryScore = "jury.score"
    case juryClose = "jury.close"
    case jury
    case resultCertify = "result.certify"
    case resultSign = "result.sign"
    case tally
    case ranking
    case events
    case subscribe
    case replicate
    case checkpoint
    case proof
    case receipt
    case backup
    case metrics
    case importFile = "import"
}

extension Op {
    /// The name a request line gives this op.
    public var name: OpName {
        switch self {
        case .hello: .hello
        case .status: .status
        case .electionDefine: .electionDefine
        case .electionGet: .electionGet
        case .electionOpen: .electionOpen
        case .electionClose: .electionClose
        case .nomineeAdd: .nomineeAdd
        case .voteCast: .voteCast
        case .voteInvalidate: .voteInvalidate
        case .jurorAdd: .jurorAdd
        case .juryScore: .juryScore
        case .juryClose: .juryClose
        case .jury: .jury
        case .resultCertify: .resultCertify
        case .resultSign: .resultSign
        case .tally: .tally
        case .ranking: .ranking
        case .events: .events
        case .subscribe: .subscribe
        case .replicate: .replicate
        case .checkpoint: .checkpoint
        case .inclusionProof, .consistencyProof: .proof
        case .receipt: .receipt
        case .backup: .backup
        case .metrics: .metrics
        case .importFile: .importFile
        }
    }
}
