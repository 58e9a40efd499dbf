import BallotDomain
import BallotLedger
import BallotFormat
import BallotAudit
import Foundation
import Logging
import NIOConcurrencyHelpers

/// When `ballotd` checks the whole ledger with the auditor's engine (`Audit.verify`, the one
/// verifier), set by `verify` in the configuration.
public enum VerificationMode: String, Sendable, CaseIterable {
    /// Before serving: a finding stops the start (the default).
    case open
    /// After a fast open (a fold that trusts the events), on a thread of its own while the
    /// daemon serves; the verdict is in `status` and the metrics, and a finding is logged.
    case background
    /// Never; the ledger is trusted as stored.
    case off
}

/// The verdict of the daemon's full check, as `status` shows it.
final class LedgerVerification: Sendable {
    enum State: Sendable {
        case off
        case running
        case verified(events: UInt64)
        case failed(events: UInt64, findings: Int, first: String)
    }

    let mode: VerificationMode
    private let state: NIOLockedValueBox<State>
    private let metrics: DaemonMetrics

    init(mode: VerificationMode, verifiedAtOpen events: UInt64, metrics: DaemonMetrics) {
        self.mode = mode
        self.metrics = metrics
        state = NIOLockedValueBox(mode == .open ? .verified(events: events) : mode == .off ? .off : .running)
        record()
    }

    /// Runs the full check on a thread of its own (background mode), on one core, so that the
    /// writer and the event loops keep the others.
    func startInBackground(_ reader: LedgerReader, logger: Logger) {
        guard mode == .background else { return }
        let thread = Thread { [self] in
            let started = ContinuousClock.now
            do {
                let report = try Audit.verify(reader, helpers: 0)
                if let first = report.firstBad {
                    state.withLockedValue { $0 = .failed(events: report.events, findings: report.findings.count, first: first.description) }
                    logger.critical("background verification found the ledger unsound", metadata: [
                        "ledger.events": "\(report.events)", "findings": "\(report.findings.count)", "first": "\(first)"])
                } else {
                    state.withLockedValue { $0 = .verified(events: report.events) }
                    logger.info("background verification: the ledger is sound", metadata: [
                        "ledger.events": "\(report.events)", "seconds": "\(ContinuousClock.now - started)"])
                }
            } catch {
                state.withLockedValue { $0 = .failed(events: 0, findings: 1, first: "the check could not read the ledger: \(error)") }
                logger.critical("background verification could not read the ledger", metadata: ["error": "\(error)"])
            }
            record()
        }
        thread.name = "ballotd-verify"
        thread.start()
    }

    private func record() {
        switch state.withLockedValue({ $0 }) {
        case .off: metrics.verificationRunning.record(0)
        case .running: metrics.verificationRunning.record(1)
        case .verified(let events):
            metrics.verificationRunning.record(0)
            metrics.verifiedEvents.record(Double(events))
            metrics.verificationFindings.record(0)
        case .failed(let events, let findings, _):
            metrics.verificationRunning.record(0)
            metrics.verifiedEvents.record(Double(events))
            metrics.verificationFindings.record(Double(findings))
        }
    }

    /// `status`'s `verification` object.
    var json: JSONValue {
        var fields: [(String, JSONValue)] = [("mode", .string(mode.rawValue))]
        switch state.withLockedValue({ $0 }) {
        case .off: fields.append(("state", .string("off")))
        case .running: fields.append(("state", .string("running")))
        case .verified(let events):
            fields += [("state", .string("verified")), ("events", .uint(events)), ("findings", .int(0))]
        case .failed(let events, let findings, let first):
            fields += [("state", .string("failed")), ("events", .uint(events)), ("findings", .int(findings)), ("first_finding", .string(first))]
        }
        return .object(fields)
    }
}
