import Foundation
import Testing

/// `time_to_crash_s` in run.json: from the guests' start to the first line of the first
/// unexpected crash on the host's log; absent when nothing crashed.
@Suite struct TimeToCrashTests {
  func runJSON(_ args: [String]) throws -> [String: Any] {
    let out = CLITests().tmp()
    defer { try? FileManager.default.removeItem(atPath: out) }
    _ = try CLITests().hpthammer(["run"] + args + ["--out", out, "--no-progress"])
    let data = try Data(contentsOf: URL(fileURLWithPath: out + "/run.json"))
    return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
  }

  @Test func theSeedsBugIsTimedWithinTheRun() throws {
    let j = try runJSON(["Jobs/dry-run.yaml"])
    let t = try #require(j["time_to_crash_s"] as? Double)
    let host = try #require(j["host_time_s"] as? Double)
    #expect(j["verdict"] as? String == "bug")
    #expect(t > 0 && t <= host + 0.001, "time_to_crash_s \(t), host_time_s \(host)")
  }

  @Test func aPassingRunHasNoTimeToCrash() throws {
    let j = try runJSON(["Jobs/dry-run-fixed.yaml", "--duration", "1s"])
    #expect(j["verdict"] as? String == "pass")
    #expect(j["time_to_crash_s"] == nil)
  }
}
