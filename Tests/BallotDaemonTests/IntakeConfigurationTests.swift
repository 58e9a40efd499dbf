import Testing
import Foundation
import TestSupport
@testable import BallotDaemon

/// The `intake:` settings (docs/intake.md): read from the file and the environment, checked
/// before anything starts, each refusal naming its key.
@Suite struct IntakeConfigurationTests {
    func load(_ yaml: String, environment: [String: String] = [:]) async throws -> DaemonConfig {
        let dir = TemporaryDirectory("intake-config")
        let file = dir.sub("ballotd.yaml")
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        return try await DaemonConfigLoader.load(configFile: file, commandLine: [:], daemonUID: 0, environment: environment).config
    }

    @Test func offUnlessAServerIsNamed() async throws {
        #expect(try await load("data_dir: /tmp/x\n").intake == nil)
    }

    @Test func theFileAndTheEnvironment() async throws {
        let config = try await load("""
            intake:
              nats_url: nats://127.0.0.1:4222
              votes_subject: kommune.votes
              batch: 1000
              ack_wait: 5
            """, environment: ["BALLOTD_INTAKE_CONSUMER": "ballotd-2"])
        var expected = IntakeConfig(natsURL: "nats://127.0.0.1:4222")
        expected.votesSubject = "kommune.votes"
        expected.batch = 1000
        expected.ackWaitSeconds = 5
        expected.consumer = "ballotd-2"
        #expect(config.intake == expected)
    }

    @Test func aBadSettingIsRefusedByName() async throws {
        let cases: [(String, String)] = [
            ("votes_subject: ballot.*", "intake.votes_subject"),
            ("outcomes_subject: ballot..outcomes", "intake.outcomes_subject"),
            ("votes_stream: has.dot", "intake.votes_stream"),
            ("consumer: \"\"", "intake.consumer"),
            ("batch: 0", "intake.batch"),
            ("batch: 100000", "intake.batch"),
            ("outcomes_subject: ballot.votes.out", "outcomes"),
            ("outcomes_stream: BALLOT_VOTES", "outcomes"),
            ("duplicate_window: 60", "intake.duplicate_window"),
        ]
        for (line, key) in cases {
            do {
                _ = try await load("intake:\n  nats_url: nats://127.0.0.1:4222\n  \(line)\n")
                Issue.record("'\(line)' was taken")
            } catch {
                #expect("\(error)".contains(key), "'\(line)': \(error)")
            }
        }
    }
}
