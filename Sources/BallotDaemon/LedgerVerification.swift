import BallotDomain
public import BallotLedger
import BallotFormat
import BallotAudit
import BallotProtocol
import Foundation
import Logging
import NIOConcurrencyHelpers

/// How `ballotd` checks its ledger with the auditor's engine (`Audit.verify`, the one
/// verifier), set by `verify` in the configuration. Every mode but `open` starts from the state
/// kept between starts (docs/architecture.md).
public enum VerificationMode: String, Sendable, CaseIterable {
    /// The events after the kept state, and the newest signed checkpoint against the stored
    /// tree, before serving; a finding stops the start (the default).
    case tail
    /// Every event, before serving (the kept state is rebuilt by that replay); a finding stops
    /// the start.
    case open
    /// `tail` before serving, then every event on a thread of its own while the daemon serves;
    /// the verdict is in `status` and the metrics, and a finding is logged.
    case background
    /// The events after the kept state are replayed, their findings logged, not fatal.
    case off

    /// What the ledger checks as it opens.
    public var openCheck: OpenCheck {
        switch self {
        case .tail, .background: .tail
        case .open: .full
        case .off: .none
        }
    }
}

/// The verdict of the daemon's full check, as `status` shows it.
final class LedgerVerification: Sendable {
    enum State: Sendable {
        case off
        case running
        /// Events `from`…`through` were replayed and found sound (from 1: the whole ledger).
        case verified(from: UInt64, through: UInt64)
        case failed(events: UInt64, findings: Int, first: String)
    }

    let mode: VerificationMode
    private let state: NIOLockedValueBox<State>
    private let metrics: DaemonMetrics

    /// `opening` is what the ledger's open checked: the events after its kept state.
    init(mode: VerificationMode, opening: Ledger.Opening, size: UInt64, metrics: DaemonMetrics) {
        self.mode = mode
        self.metrics = metrics
        state = NIOLockedValueBox(mode == .background ? .running : mode == .off ? .off
            : .verified(from: mode == .open ? 1 : size - opening.replayedEvents + 1, through: size))
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
                    state.withLockedValue { $0 = .verified(from: 1, through: report.events) }
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
        case .verified(let from, let through):
            metrics.verificationRunning.record(0)
            metrics.verifiedEvents.record(Double(through + 1 - from))
            metrics.verificationFindings.record(0)
        case .failed(let events, let findings, _):
            metrics.verificationRunning.record(0)
            metrics.verifiedEvents.record(Double(events))
            metrics.verificationFindings.record(Double(findings))
        }
    }

    /// `status`'s `verification` object.
    var report: VerificationReport {
        let mode = mode.rawValue
        return switch state.withLockedValue({ $0 }) {
        case .off: VerificationReport(mode: mode, state: .off)
        case .running: VerificationReport(mode: mode, state: .running)
        case .verified(let from, let through):
            VerificationReport(mode: mode, state: .verified, events: through + 1 - from, from: from, through: through, findings: 0)
        case .failed(let events, let findings, let first):
            VerificationReport(mode: mode, state: .failed, events: events, findings: Int64(findings), firstFinding: first)
        }
    }
}
