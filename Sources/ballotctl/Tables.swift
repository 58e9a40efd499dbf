import Foundation

/// Human output for the replies people read most.
enum Tables {
    static func receipt(_ r: [String: Any]) -> String {
        let repeated = r["repeated"] as? Bool == true ? " (already present)" : ""
        return "event \(r["seq"] ?? "?")\(repeated), leaf hash \(r["leaf_hash"] ?? "?")"
    }

    static func tally(_ r: [String: Any]) -> String {
        var lines = ["\(r["election"] ?? ""): \(r["votes_cast"] ?? 0) votes cast, \(r["valid_votes"] ?? 0) valid, \(r["invalidated"] ?? 0) invalidated"]
        for n in r["nominees"] as? [[String: Any]] ?? [] {
            let share = (n["share"] as? Double ?? 0) * 100
            lines.append(String(format: "%3d. %@ %8d  %5.1f %%", n["rank"] as? Int ?? 0, pad(n["name"] as? String ?? "", 14), n["votes"] as? Int ?? 0, share))
        }
        return lines.joined(separator: "\n")
    }

    static func ranking(_ r: [String: Any]) -> String {
        let formula = (r["formula"] as? [String: Any])?["text"] as? String ?? ""
        var lines = ["\(r["election"] ?? ""): \(formula)",
                     "rank  nominee           votes   share  jury(scale)  jury(0-1)  combined"]
        for e in r["ranking"] as? [[String: Any]] ?? [] {
            lines.append(String(format: "%4d  %@ %7d  %6.3f  %11.3f  %9.3f  %8.4f", e["rank"] as? Int ?? 0, pad(e["name"] as? String ?? "", 16),
                                e["votes"] as? Int ?? 0, e["vote_share"] as? Double ?? 0, e["jury_weighted"] as? Double ?? 0,
                                e["jury_normalized"] as? Double ?? 0, e["combined"] as? Double ?? 0))
        }
        if let winner = (r["certified"] as? [String: Any])?["winner"] as? String { lines.append("certified winner: \(winner)") }
        if let cosigners = (r["certified"] as? [String: Any])?["cosigned_by"] as? [String] { lines.append("co-signed by the jurors: \(cosigners.joined(separator: ", "))") }
        if let p = r["proposed"] as? [String: Any] {
            let cosigners = p["cosigned_by"] as? [String] ?? []
            lines.append("put to the jury at event \(p["event"] ?? "?"): winner \(p["winner"] ?? "?"), co-signed by \(cosigners.count) of \(p["quorum"] ?? "?") needed\(cosigners.isEmpty ? "" : " (" + cosigners.joined(separator: ", ") + ")")")
        }
        return lines.joined(separator: "\n")
    }

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
