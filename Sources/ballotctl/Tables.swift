import BallotDomain
import Foundation

/// Human output for the replies people read most.
enum Tables {
    static func receipt(_ r: JSONValue) -> String {
        let repeated = r["repeated"]?.boolValue == true ? " (already present)" : ""
        return "event \(text(r["seq"]))\(repeated), leaf hash \(text(r["leaf_hash"]))"
    }

    static func tally(_ r: JSONValue) -> String {
        var lines = ["\(text(r["election"])): \(int(r["votes_cast"])) votes cast, \(int(r["valid_votes"])) valid, \(int(r["invalidated"])) invalidated"]
        for n in r["nominees"]?.arrayValue ?? [] {
            let share = (n["share"]?.doubleValue ?? 0) * 100
            lines.append(String(format: "%3d. %@ %8d  %5.1f %%", int(n["rank"]), pad(n["name"]?.stringValue ?? "", 14), int(n["votes"]), share))
        }
        return lines.joined(separator: "\n")
    }

    static func ranking(_ r: JSONValue) -> String {
        var lines = ["\(text(r["election"])): \(r["formula"]?["text"]?.stringValue ?? "")",
                     "rank  nominee           votes   share  jury(scale)  jury(0-1)  combined"]
        for e in r["ranking"]?.arrayValue ?? [] {
            lines.append(String(format: "%4d  %@ %7d  %6.3f  %11.3f  %9.3f  %8.4f", int(e["rank"]), pad(e["name"]?.stringValue ?? "", 16),
                                int(e["votes"]), e["vote_share"]?.doubleValue ?? 0, e["jury_weighted"]?.doubleValue ?? 0,
                                e["jury_normalized"]?.doubleValue ?? 0, e["combined"]?.doubleValue ?? 0))
        }
        if let winner = r["certified"]?["winner"]?.stringValue { lines.append("certified winner: \(winner)") }
        if let cosigners = r["certified"]?["cosigned_by"]?.arrayValue { lines.append("co-signed by the jurors: \(cosigners.map(text).joined(separator: ", "))") }
        if let p = r["proposed"], p != .null {
            let cosigners = (p["cosigned_by"]?.arrayValue ?? []).map(text)
            lines.append("put to the jury at event \(text(p["event"])): winner \(text(p["winner"])), co-signed by \(cosigners.count) of \(text(p["quorum"])) needed\(cosigners.isEmpty ? "" : " (" + cosigners.joined(separator: ", ") + ")")")
        }
        return lines.joined(separator: "\n")
    }

    /// A value as a person reads it: a string without quotes, a missing value or null as "-",
    /// anything else as its JSON.
    static func text(_ value: JSONValue?) -> String {
        switch value {
        case nil, .null?: "-"
        case .string(let s)?: s
        case let v?: v.text
        }
    }

    private static func int(_ value: JSONValue?) -> Int { Int(value?.intValue ?? 0) }

    /// Columns padded to their widest cell; the first row is the heading; numbers right-aligned.
    static func render(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.indices.map { c in
                let cell = row[c]
                let gap = String(repeating: " ", count: widths[c] - cell.count)
                return c == 0 ? cell + gap : gap + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    private static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }
}
