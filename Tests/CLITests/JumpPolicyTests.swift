import Foundation
import Testing

/// The `jump` policy end to end on the simulator and on the raw VMM over the simulated kernel:
/// resizes of several orders at once, every one inside the job's range, and the run passes on
/// the fixed kernel.
@Suite struct JumpPolicyTests {
  let cli = CLITests()

  @Test(arguments: ["sim", "raw-sim"])
  func jumpsSeveralOrdersAtOnceInsideTheRange(backend: String) throws {
    let dir = cli.tmp()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let fixed = try String(
      contentsOf: CLITests.repo.appendingPathComponent("Jobs/dry-run-fixed.yaml"), encoding: .utf8)
    try fixed.replacingOccurrences(of: "policy: random-walk", with: "policy: jump").write(
      toFile: dir + "/jump.yaml", atomically: true, encoding: .utf8)
    let (rc, out, err) = try cli.hpthammer([
      "run", dir + "/jump.yaml", "--backend", backend, "--duration", "5s", "--out", dir + "/r",
      "--no-progress", "--no-db",
    ])
    #expect(rc == 0, "\(out) \(err)")
    let lines = try String(contentsOfFile: dir + "/r/timeline.jsonl", encoding: .utf8)
      .split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
      }
    let committed = lines.filter {
      $0["event"] as? String == "resize" && $0["answer"] as? String == "0"
    }
    let steps = committed.compactMap { e -> (Int, Int)? in
      guard let f = e["from"] as? Int, let t = e["to"] as? Int else { return nil }
      return (f, t)
    }
    #expect(steps.count > 20)
    #expect(steps.allSatisfy { (19...23).contains($0.0) && (19...23).contains($0.1) })
    #expect(steps.contains { abs($0.1 - $0.0) >= 2 }, "no resize of two orders or more")
  }
}
