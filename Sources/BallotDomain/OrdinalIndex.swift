/// The position of each id in the order ids were added: elections in a ledger, nominees in an
/// election. There are usually a handful, and comparing a few short ids is cheaper than hashing
/// one, so small indexes scan; large ones use the dictionary.
struct OrdinalIndex: Sendable {
    private(set) var ids: [Slug] = []
    private var positions: [Slug: Int] = [:]
    private static let scanLimit = 16

    var count: Int { ids.count }

    func ordinal(of id: Slug) -> Int? {
        ids.count <= Self.scanLimit ? ids.firstIndex(of: id) : positions[id]
    }

    /// An id added again (only a replay of a tampered ledger applies the refused event that
    /// does so) keeps its first position, as `firstIndex` gives for small indexes.
    mutating func append(_ id: Slug) {
        if positions[id] == nil { positions[id] = ids.count }
        ids.append(id)
    }
}
