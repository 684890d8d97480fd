import Foundation
import Testing

/// A run killed (SIGKILL) at random points: its directory is repaired from its timeline and
/// then tells the truth: valid JSON, verdict error and interrupted, never pass or bug, and every
/// crash the timeline recorded is in run.json.
@Suite struct KillRepairTests {
  let cli = CLITests()

  @Test func aHundredKillsEachLeaveAnHonestDirectory() throws {
    let root = cli.tmp()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let job = CLITests.repo.appendingPathComponent("Jobs/dry-run-fixed.yaml").path
    var seed: UInt64 = 7
    var checked = 0
    for i in 0..<100 {
      let dir = "\(root)/r\(i)"
      let p = Process()
      p.environment = CLITests.environment
      p.executableURL = cli.binary
      p.arguments = [
        "run", job, "--duration", "1h", "--seed", "\(i + 1)", "--out", dir, "--no-progress",
      ]
      p.standardOutput = FileHandle.nullDevice
      p.standardError = FileHandle.nullDevice
      try p.run()
      seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      // Every tenth kill comes at once (maybe before the directory exists); the others at a
      // random point after the run has its run.json, however slow a loaded machine starts it.
      if i % 10 != 0 {
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: "\(dir)/run.json") && Date() < deadline {
          Thread.sleep(forTimeInterval: 0.005)
        }
      }
      Thread.sleep(forTimeInterval: Double((seed >> 33) % 400) / 1000)
      // What the journal held a moment before the kill: nothing of it may be lost or rewritten.
      let journaled = FileManager.default.contents(atPath: "\(dir)/timeline.jsonl") ?? Data()
      kill(p.processIdentifier, SIGKILL)
      p.waitUntilExit()
      // Killed before the directory had its run.json: nothing to say, nothing claimed.
      guard FileManager.default.fileExists(atPath: "\(dir)/run.json") else { continue }
      let (rc, out, err) = try cli.hpthammer(["runs", "repair", dir])
      #expect(rc == 0, "\(dir): \(out) \(err)")
      let data = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/run.json"))
      let j = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(dir)")
      #expect(j["verdict"] as? String == "error", "\(dir): \(j["verdict"] ?? "-")")
      #expect(j["interrupted"] as? Bool == true)
      let timeline = (try? String(contentsOfFile: "\(dir)/timeline.jsonl", encoding: .utf8)) ?? ""
      let crashes = timeline.split(separator: "\n").filter { $0.contains("\"event\":\"crash\"") }
      #expect((j["crashes"] as? [Any])?.count == crashes.count)
      #expect(Data(timeline.utf8).starts(with: journaled), "\(dir): the journal lost lines")
      #expect(FileManager.default.fileExists(atPath: "\(dir)/junit.xml"))
      checked += 1
    }
    #expect(checked >= 80, "only \(checked) of 100 kills came after the directory existed")
  }

  /// The next run under the same runs/ root repairs a dead harness's directory by itself, and
  /// leaves a live run's alone.
  @Test func theNextRunRepairsWhatADeadHarnessLeft() throws {
    let root = cli.tmp()
    try FileManager.default.createDirectory(
      atPath: "\(root)/runs/dead", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(
      atPath: "\(root)/runs/live", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    // A PID that no longer exists, and this test's own (alive).
    let gone = Process()
    gone.environment = CLITests.environment
    gone.executableURL = URL(fileURLWithPath: "/bin/true")
    try gone.run()
    gone.waitUntilExit()
    try #"{"verdict": "running", "job": "dead", "pid": \#(gone.processIdentifier)}"#.write(
      toFile: "\(root)/runs/dead/run.json", atomically: true, encoding: .utf8)
    try #"{"verdict": "running", "job": "live", "pid": \#(getpid())}"#.write(
      toFile: "\(root)/runs/live/run.json", atomically: true, encoding: .utf8)
    // This test's own PID, but recorded in another boot (the controller rebooted) or with
    // another start time (the PID was reused): dead harnesses. Another controller's run (a
    // shared disk) cannot be told from here: left alone.
    let me = getpid()
    let boot = try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
      .trimmingCharacters(in: .whitespacesAndNewlines)
    let owners = [
      "rebooted": #""pid": \#(me), "boot_id": "00000000-0000-0000-0000-000000000000""#,
      "reused": #""pid": \#(me), "boot_id": "\#(boot)", "pid_start_ticks": 1"#,
      "elsewhere": #""pid": 1, "controller": "another-controller.example""#,
    ]
    for (name, owner) in owners {
      try FileManager.default.createDirectory(
        atPath: "\(root)/runs/\(name)", withIntermediateDirectories: true)
      try #"{"verdict": "running", "job": "\#(name)", \#(owner)}"#.write(
        toFile: "\(root)/runs/\(name)/run.json", atomically: true, encoding: .utf8)
    }
    let job = CLITests.repo.appendingPathComponent("Jobs/dry-run.yaml").path
    let (_, _, err) = try CLITests.exec([cli.binary.path, "run", job, "--no-progress"], in: root)
    for name in ["dead", "rebooted", "reused"] {
      #expect(err.contains("repaired") && err.contains("runs/\(name)"), "\(name): \(err)")
      let j = try String(contentsOfFile: "\(root)/runs/\(name)/run.json", encoding: .utf8)
      #expect(j.contains("\"error\"") && j.contains("interrupted"), "\(name)")
    }
    for name in ["live", "elsewhere"] {
      let j = try String(contentsOfFile: "\(root)/runs/\(name)/run.json", encoding: .utf8)
      #expect(j.contains("running"), "\(name)")
    }
    // Asked by name, a live run's directory is refused; another controller's is the user's call.
    let (rc, _, err2) = try cli.hpthammer(["runs", "repair", "\(root)/runs/live"])
    #expect(rc == 2 && err2.contains("still going"), "\(err2)")
    let (rc3, out3, _) = try cli.hpthammer(["runs", "repair", "\(root)/runs/elsewhere"])
    #expect(rc3 == 0 && out3.contains("verdict error, interrupted"), "\(out3)")
  }

  /// A run given --out repairs its siblings a dead harness left running (a night's runs, a
  /// script's), and its journal says how far each phase got.
  @Test func aRunWithOutRepairsItsSiblingsAndJournalsItsPhases() throws {
    let root = cli.tmp()
    defer { try? FileManager.default.removeItem(atPath: root) }
    try FileManager.default.createDirectory(
      atPath: "\(root)/dead", withIntermediateDirectories: true)
    try #"{"verdict": "running", "job": "dead", "pid": 1, "boot_id": "gone"}"#.write(
      toFile: "\(root)/dead/run.json", atomically: true, encoding: .utf8)
    let job = CLITests.repo.appendingPathComponent("Jobs/dry-run-fixed.yaml").path
    let (rc, out, err) = try cli.hpthammer([
      "run", job, "--duration", "2s", "--out", "\(root)/new", "--no-progress", "--no-db",
    ])
    #expect(rc == 0, "\(out) \(err)")
    #expect(err.contains("repaired \(root)/dead"), "\(err)")
    let timeline = try String(contentsOfFile: "\(root)/new/timeline.jsonl", encoding: .utf8)
    let phases = timeline.split(separator: "\n").compactMap { line -> String? in
      guard
        let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
        o["event"] as? String == "phase"
      else { return nil }
      return o["phase"] as? String
    }
    #expect(phases == ["hammering", "stopping", "log-drained"])
  }

  /// run.json and junit.xml are derived from the journal's end line: a run killed after its end
  /// reached the journal, but before run.json did, is repaired to what it found (here a bug),
  /// byte for byte, not to "interrupted".
  @Test func runJSONAndJunitAreDerivedFromTheJournalsEnd() throws {
    let root = cli.tmp()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let dir = "\(root)/r"
    let job = CLITests.repo.appendingPathComponent("Jobs/dry-run.yaml").path
    let (rc, out, err) = try cli.hpthammer(["run", job, "--out", dir, "--no-progress", "--no-db"])
    #expect(rc == 1, "\(out) \(err)")
    let runJSON = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/run.json"))
    let junit = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/junit.xml"))
    let timeline = try String(contentsOfFile: "\(dir)/timeline.jsonl", encoding: .utf8)
    let endLine = try #require(
      timeline.split(separator: "\n").last { $0.contains("\"event\":\"end\"") })
    let end = try #require(
      try JSONSerialization.jsonObject(with: Data(endLine.utf8)) as? [String: Any])
    let fromJournal = try JSONSerialization.data(
      withJSONObject: try #require(end["report"]), options: [.sortedKeys])
    let fromFile = try JSONSerialization.data(
      withJSONObject: try JSONSerialization.jsonObject(with: runJSON), options: [.sortedKeys])
    #expect(fromJournal == fromFile)
    // The kill's window: the journal has its end, run.json still says running, no junit.xml.
    try #"{"verdict": "running", "job": "dry-run", "pid": 1, "boot_id": "before-the-kill"}"#.write(
      toFile: "\(dir)/run.json", atomically: true, encoding: .utf8)
    try FileManager.default.removeItem(atPath: "\(dir)/junit.xml")
    let (rc2, out2, err2) = try cli.hpthammer(["runs", "repair", dir])
    #expect(rc2 == 0 && out2.contains("verdict bug: the run had ended"), "\(out2) \(err2)")
    #expect(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/run.json")) == runJSON)
    #expect(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/junit.xml")) == junit)
  }
}
