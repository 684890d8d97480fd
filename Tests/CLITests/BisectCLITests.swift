import Foundation
import Testing

/// `hpthammer bisect` end to end, with real git: a flaky reproducer, the simulator as the
/// kernel under test, a bisection killed and resumed, and the inputs it must refuse.
@Suite(.serialized) struct BisectCLITests {
  let cli = CLITests()

  func sh(_ script: String, in dir: String) throws -> (Int32, String) {
    let (rc, out, _) = try CLITests.exec(["/bin/bash", "-c", script], in: dir)
    return (rc, out)
  }

  /// A repository of `count` commits whose file `state` says `before` up to commit `culprit`
  /// (exclusive) and `after` from it; returns (dir, first commit, culprit commit).
  func history(count: Int, culprit: Int, before: String, after: String) throws -> (
    String, String, String
  ) {
    let dir = cli.tmp()
    try FileManager.default.createDirectory(
      atPath: dir + "/repo", withIntermediateDirectories: true)
    let (rc, _) = try sh(
      """
      git init -q && git config user.email t@example.org && git config user.name t &&
      for i in $(seq 0 \(count - 1)); do
        if [ $i -ge \(culprit) ]; then echo \(after) > state; else echo \(before) > state; fi
        echo $i > n; git add -A; git commit -qm "commit $i"
      done
      """, in: dir + "/repo")
    try #require(rc == 0)
    let (_, list) = try sh("git rev-list --reverse HEAD", in: dir + "/repo")
    let shas = list.split(separator: "\n").map(String.init)
    return (dir, shas[0], shas[culprit])
  }

  /// A TEST that reproduces with probability `p` on a commit whose state is "bad", from a
  /// counter-seeded generator in `dir` (deterministic, whatever kills it).
  func flakyTest(in dir: String, p: Double) throws -> String {
    let path = dir + "/test.sh"
    try """
    #!/bin/bash
    c=$(cat \(dir)/counter 2>/dev/null || echo 0); echo $((c+1)) > \(dir)/counter
    RANDOM=$((c * 7919 + 13)); r=$((RANDOM % 1000))
    [ "$(cat state)" = bad ] && [ $r -lt \(Int(p * 1000)) ] && exit 1
    exit 0
    """.write(toFile: path, atomically: true, encoding: .utf8)
    chmod(path, 0o755)
    return path
  }

  func json(_ text: String) -> [String: Any] {
    let line = text.split(separator: "\n").last.map(String.init) ?? ""
    return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
  }

  /// The simulator as the kernel under test: the culprit switches the history's kernel model
  /// from 6.1 to the seed's 4.14.0-rc4; each TEST is a short `hpthammer run` (6 resize
  /// cycles: the seed's race shows in about 30% of them). It must name the culprit at 0.99.
  @Test func bisectsASimulatedKernelHistory() throws {
    let (dir, good, culprit) = try history(
      count: 200, culprit: 123, before: "6.1", after: "4.14.0-rc4")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let test = dir + "/sim-test.sh"
    try """
    #!/bin/bash
    c=$(cat \(dir)/counter 2>/dev/null || echo 0); echo $((c+1)) > \(dir)/counter
    rm -rf \(dir)/run
    \(cli.binary.path) run \(CLITests.repo.path)/Jobs/dry-run.yaml --kernel "$(cat state)" \\
      --resizes 6 --seed $((c + 1)) --out \(dir)/run --no-progress >/dev/null 2>&1
    case $? in 0) exit 0 ;; 1) exit 1 ;; *) exit 125 ;; esac
    """.write(toFile: test, atomically: true, encoding: .utf8)
    chmod(test, 0o755)
    let (rc, out, err) = try cli.hpthammer([
      "bisect", "run", "--repo", dir + "/repo", "--good", good, "--bad", "HEAD", "--dir",
      dir + "/b", "--json", "--", test,
    ])
    let j = json(out)
    #expect(rc == 0, "exit \(rc): \(err.suffix(500))")
    #expect(j["culprit"] as? String == culprit, "\(out)")
    #expect((j["confidence"] as? Double ?? 0) >= 0.99)
    let (_, head) = try sh("git symbolic-ref --short HEAD", in: dir + "/repo")
    #expect(
      head.trimmingCharacters(in: .whitespacesAndNewlines) == "master" || head.contains("main"))
  }

  /// SIGKILLed at random points and resumed: the same culprit, and every answered run in the
  /// journal once. (At 0.999: the kills change which runs come out how, and at the default
  /// 0.99 about 1 in 100 histories of a flaky test names a wrong culprit; seen once, under
  /// load. This test is about the journal, not the engine's error rate.)
  @Test func aKilledBisectionResumesToTheSameAnswer() throws {
    let (dir, good, culprit) = try history(count: 300, culprit: 137, before: "good", after: "bad")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let test = try flakyTest(in: dir, p: 0.3)
    let d = dir + "/b"
    var first = true
    var seed: UInt64 = 42
    for _ in 0..<5 {
      let p = Process()
      p.environment = CLITests.environment
      p.executableURL = cli.binary
      p.arguments =
        first
        ? [
          "bisect", "run", "--repo", dir + "/repo", "--good", good, "--bad", "HEAD", "--dir", d,
          "--confidence", "0.999", "--", test,
        ]
        : ["bisect", "resume", d]
      p.standardOutput = FileHandle.nullDevice
      p.standardError = FileHandle.nullDevice
      try p.run()
      if first {
        // Killed once it has a journal (before it, there is nothing to resume).
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: d + "/journal.jsonl") {
          Thread.sleep(forTimeInterval: 0.02)
        }
      }
      first = false
      seed = seed &* 6_364_136_223_846_793_005 &+ 1
      Thread.sleep(forTimeInterval: 0.1 + Double(seed >> 40 % 1000) / 1000 * 0.4)
      kill(p.processIdentifier, SIGKILL)
      p.waitUntilExit()
    }
    let (rc, out, err) = try cli.hpthammer(["bisect", "resume", d, "--json"])
    let j = json(out)
    #expect(rc == 0, "exit \(rc): \(err.suffix(300))")
    #expect(j["culprit"] as? String == culprit)
    let journal = try String(contentsOfFile: d + "/journal.jsonl", encoding: .utf8)
    let runs = journal.split(separator: "\n").filter { $0.contains("\"event\":\"run\"") }.count
    #expect(runs == j["runs"] as? Int, "journal \(runs) runs, answer \(j["runs"] ?? "-")")
  }

  @Test func inputsItCannotBisect() throws {
    let (dir, good, _) = try history(count: 5, culprit: 3, before: "good", after: "bad")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let test = try flakyTest(in: dir, p: 1)
    let repo = dir + "/repo"
    func bisect(_ args: [String]) throws -> (Int32, String) {
      let (rc, _, err) = try cli.hpthammer(
        ["bisect", "run", "--repo", repo, "--dir", dir + "/b\(args.count)"] + args)
      return (rc, err)
    }
    // good not an ancestor of bad (reversed)
    var (rc, err) = try bisect(["--good", "HEAD", "--bad", good, "--", test])
    #expect(rc == 125 && err.contains("not an ancestor"), "\(err)")
    // TEST that is not executable
    (rc, err) = try bisect(["--good", good, "--bad", "HEAD", "--", dir + "/nope.sh"])
    #expect(rc == 2 && err.contains("not an executable"), "\(err)")
    // a dirty tree
    try "x".write(toFile: repo + "/n", atomically: true, encoding: .utf8)
    (rc, err) = try bisect(["--good", good, "--bad", "HEAD", "--", test])
    #expect(rc == 125 && err.contains("uncommitted"), "\(err)")
    // resume of a directory that is not a bisection
    let (rc2, _, err2) = try cli.hpthammer(["bisect", "resume", dir])
    #expect(rc2 == 2 && err2.contains("not a bisection"), "\(err2)")
    // bisect kernel: a job file that is not there; then the same tree checks as bisect run
    func kernel(_ args: [String]) throws -> (Int32, String) {
      let (rc, _, err) = try cli.hpthammer(
        ["bisect", "kernel", "--tree", repo, "--dir", dir + "/k\(args.count)"] + args)
      return (rc, err)
    }
    (rc, err) = try kernel(["--good", good, "--bad", "HEAD", "--job", dir + "/no-job.yaml"])
    #expect(rc == 2 && err.contains("no-job.yaml: no such job file"), "\(err)")
    let job = CLITests.repo.appendingPathComponent("Jobs/lab-raw-race.yaml").path
    (rc, err) = try kernel(["--good", good, "--bad", "HEAD", "--job", job])
    #expect(rc == 125 && err.contains("uncommitted"), "\(err)")
    _ = try sh("git checkout -q -- n", in: repo)
    (rc, err) = try kernel(["--good", "HEAD", "--bad", good, "--job", job, "--match", "x"])
    #expect(rc == 125 && err.contains("not an ancestor"), "\(err)")
  }
}

/// `hpthammer verdict` on the simulator: the fixed kernel against the seed's, and the seed's
/// against itself.
@Suite struct VerdictCLITests {
  @Test func theFixedKernelFixesTheSeedsBugAndTheSameKernelDoesNot() throws {
    let cli = CLITests()
    let dir = cli.tmp()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let job = CLITests.repo.appendingPathComponent("Jobs/dry-run.yaml").path
    let (rc, out, err) = try cli.hpthammer([
      "verdict", job, "--base", "4.14.0-rc4", "--patched", "6.1", "--resizes", "40", "--fraction",
      "0.2", "--max-runs", "300", "--dir", dir + "/a", "--json",
    ])
    #expect(rc == 0, "\(out) \(err)")
    let j = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
    #expect(j?["verdict"] as? String == "fixes")
    #expect((j?["patched"] as? [String: Any])?["reproduced"] as? Int == 0)
    let (rc2, out2, _) = try cli.hpthammer([
      "verdict", job, "--base", "4.14.0-rc4", "--patched", "4.14.0-rc4", "--resizes", "40",
      "--dir", dir + "/b",
    ])
    #expect(rc2 == 1 && out2.contains("does-not-fix"), "\(out2)")
  }

  /// A run that could not test (exit 125: here its --out leads nowhere writable, as on a
  /// broken disk) is skipped
  /// and run again, as git bisect skips; --max-skips in a row end the verdict with 125.
  @Test func runsThatCannotTestAreSkippedThenItGivesUp() throws {
    let cli = CLITests()
    let dir = cli.tmp()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let job = CLITests.repo.appendingPathComponent("Jobs/dry-run.yaml").path
    func verdict(_ blocked: [String], _ extra: [String]) throws -> (Int32, String, String) {
      let d = dir + "/\(blocked.count)"
      try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
      for b in blocked {
        try FileManager.default.createSymbolicLink(
          atPath: d + "/" + b, withDestinationPath: "/proc/version/x")
      }
      return try cli.hpthammer(
        [
          "verdict", job, "--base", "4.14.0-rc4", "--patched", "6.1", "--resizes", "40",
          "--fraction", "0.2", "--max-runs", "300", "--max-skips", "2", "--dir", d, "--no-db",
        ] + extra)
    }
    let (rc, out, err) = try verdict(["base-0"], ["--json"])
    #expect(rc == 0 && err.contains("skipped, running it again"), "\(out) \(err)")
    let j = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
    #expect(j?["verdict"] as? String == "fixes" && j?["skipped"] as? Int == 1, "\(out)")
    let (rc2, out2, err2) = try verdict(["base-0", "base-1"], [])
    #expect(rc2 == 125, "\(out2) \(err2)")
    #expect(err2.contains("2 runs in a row could not test (exit 125"), "\(err2)")
  }
}
