public import BallotDomain
public import BallotAudit
public import BallotFormat

/// The verdict of `ballot-replay verify`, for a person or for a script.
public enum Verdict {
    /// One line: what an auditor would say first.
    public static func headline(_ report: AuditReport) -> String {
        switch report.exitCode {
        case 0:
            let verified = "VERIFIED: \(report.events) events intact, every checkpoint and projection agrees with the replay"
            // Anyone can re-sign a rewritten ledger with a key of their own: only a pinned key
            // shows who signed.
            return report.keyPinned || report.checkpoints.isEmpty ? verified
                : verified + "; no key was pinned, so this proves integrity, not authorship (pass --pubkey with the daemon's key)"
        case 2:
            let first = report.firstBad.map { "\($0)" } ?? "?"
            return "TAMPERED: the first bad sequence number is \(report.firstBad?.events.lowerBound ?? 0) — \(first)"
        default:
            return "DISAGREES: the events are intact, but \(report.findings.count) stored number(s) are not what they give"
        }
    }

    public static func text(_ report: AuditReport, ledger: String, elapsed: Duration) -> String {
        var lines = ["ledger:      \(ledger)",
                     "events:      \(report.events)",
                     "ledger id:   \(report.ledgerID.withUnsafeBytes { hexString($0) }) (meta, outside the tree: what jurors' signed statements name)",
                     "merkle root: \(report.root.hex)" + (report.stoppedEarly ? " (over the first \(report.rootCovers) records: the audit stopped at its limit of findings)" : "")]
        let held = report.checkpoints.filter(\.holds).count
        let keyNote = report.keyPinned ? "against the key given" : "against the key each names (pass --pubkey to pin the daemon's key)"
        lines.append("checkpoints: \(report.checkpoints.count) found, \(held) hold; signatures checked \(keyNote)")
        if let last = report.checkpoints.last(where: \.holds) {
            lines.append("latest good: event \(last.seq), covering events 1…\(last.checkpoint.size), signed \(last.checkpoint.takenAt.rfc3339) (\(last.checkpoint.reason)) by \(last.checkpoint.publicKey.hex)")
        }
        if let cp = report.state.lastCheckpoint, report.events > cp.seq {
            lines.append("unsigned:    events \(cp.seq + 1)…\(report.events) come after the last checkpoint; only the stored tree covers them")
        }
        lines.append("elections:   " + (report.state.elections.map { "\($0.id) (\($0.votesCast) votes)" }.joined(separator: ", ")))
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        lines.append("replayed in: \(Text.fixed(seconds, digits: 2)) s (\(seconds > 0 ? Int(Double(report.events) / seconds) : 0) events/s)")
        lines.append("")
        lines.append(headline(report))
        for finding in report.findings.prefix(10) {
            lines.append("  - \(finding.severity == .tampered ? "tampered" : "disagrees"): \(finding)")
        }
        if report.findings.count > 10 { lines.append("  … and \(report.findings.count - 10) more") }
        return lines.joined(separator: "\n")
    }

    public static func json(_ report: AuditReport, ledger: String, elapsed: Duration) -> String {
        let verdict = ["verified", "disagrees", "tampered"][Int(report.exitCode)]
        let doc: JSONValue = .object([
            ("ledger", .string(ledger)),
            ("verdict", .string(verdict)),
            ("exit_code", .int(Int64(report.exitCode))),
            ("events", .uint(report.events)),
            ("ledger_id", .string(report.ledgerID.withUnsafeBytes { hexString($0) })),
            ("merkle_root", .string(report.root.hex)),
            ("merkle_root_covers", .uint(report.rootCovers)),
            ("stopped_early", .bool(report.stoppedEarly)),
            ("first_bad_seq", report.exitCode == 2 ? .uint(report.firstBad?.events.lowerBound ?? 0) : .null),
            ("first_bad", report.firstBad.map { f in
                .object([("first_seq", .uint(f.events.lowerBound)), ("last_seq", .uint(f.events.upperBound)), ("what", .string(f.what))])
            } ?? .null),
            ("findings", .array(report.findings.map { f in
                .object([("severity", .string(f.severity == .tampered ? "tampered" : "disagrees")),
                         ("first_seq", .uint(f.events.lowerBound)), ("last_seq", .uint(f.events.upperBound)), ("what", .string(f.what))])
            })),
            ("checkpoints", .array(report.checkpoints.map { c in
                .object([("seq", .uint(c.seq)), ("size", .uint(c.checkpoint.size)), ("root", .string(c.checkpoint.root.hex)),
                         ("reason", .string(c.checkpoint.reason.description)), ("holds", .bool(c.holds))])
            })),
            ("key_pinned", .bool(report.keyPinned)),
        ])
        return String(decoding: doc.serialized(), as: UTF8.self)
    }
}

/// Plain-text tables of replayed numbers.
public enum Text {
    public static func asOf(_ last: RecordedEvent?) -> String {
        guard let last else { return "as of: the empty ledger" }
        return "as of event \(last.seq), recorded \(last.timestamp.rfc3339)"
    }

    public static func tally(_ t: Tally) -> String {
        var lines = ["\(t.election): \(t.votesCast) votes cast, \(t.validVotes) valid, \(t.invalidated) invalidated"]
        for e in t.entries {
            lines.append("  \(e.rank). \(e.name) (\(e.nominee))  \(e.votes) votes  \(percent(e.share))")
        }
        return lines.joined(separator: "\n")
    }

    public static func ranking(_ r: Ranking) -> String {
        var lines = ["\(r.election): \(r.formula.text)"]
        if let c = r.certified { lines.append("certified winner: \(c.winner)") }
        for e in r.entries {
            lines.append("  \(e.rank). \(e.name) (\(e.nominee))  combined \(fixed(e.combined))  votes \(e.votes) (\(percent(e.voteShare)))  jury \(e.juryWeighted.map { fixed($0) } ?? "-") → \(fixed(e.juryNormalized))")
        }
        return lines.joined(separator: "\n")
    }

    static func percent(_ share: Double) -> String { "\(fixed(share * 100, digits: 1)) %" }

    /// A number with `digits` decimals, without Foundation's locale-dependent formatting.
    static func fixed(_ x: Double, digits: Int = 4) -> String {
        guard x.isFinite else { return "\(x)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let n = Int64((abs(x) * scale).rounded())
        let whole = n / Int64(scale), frac = n % Int64(scale)
        var f = String(frac)
        while f.count < digits { f = "0" + f }
        return (x < 0 && n != 0 ? "-" : "") + "\(whole)" + (digits > 0 ? ".\(f)" : "")
    }
}
