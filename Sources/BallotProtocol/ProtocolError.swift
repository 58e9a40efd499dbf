public import BallotDomain

/// A refused request. Refusals made by the protocol layer (`bad_request`, `unknown_op`,
/// `forbidden`, `sealed`) have the same shape and stable codes as the ledger's, so one type
/// carries both to the reply.
public typealias ProtocolError = DomainError
