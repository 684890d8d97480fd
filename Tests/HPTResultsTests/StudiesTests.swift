import Foundation
import HPTResults
import Testing

/// Bisections and verdicts in the results store: rows written at their start and end, on
/// both backends; a real bisection killed (interrupted) and resumed (ended), a real verdict on
/// the simulator with its runs.
@Suite struct StudiesTests {
  typealias F = Fixtures

  /// begin / resume / end and the reading of a row whose process is gone, on one store.
  static func rowsGoThroughTheirLife(db: String) throws {
    let store = try ResultsStore.open(db)
    defer { store.backend.close() }
    let dir = F.scratch("study") + "/b"
    var s = StudyRecord(
      kind: .bisection, dir: dir, command: "hpthammer bisect run ...",
      arguments: #"{"repo":"/r","good":"g","bad":"b"}"#,
      startedAt: Date(timeIntervalSince1970: 1_700_000_000))
    s.good = "g"
    s.bad = "b"
    s.repo = "/r"
    try store.begin(s)
    var rows = try store.studies()
    #expect(rows.count == 1)
    // This process wrote it and is alive: running.
    #expect(rows.first?.status == "running")
    #expect(rows.first?.id == "bisection:\(dir)")

    // The same pid, another process start: the writer is gone, so interrupted.
    var gone = s
    gone.pidStart = "1"
    try store.begin(gone)
    #expect(try store.study(.bisection, dir: dir)?.status == "interrupted")
    #expect(try store.studies(ResultsStore.StudyFilter(status: "interrupted")).count == 1)

    // A resume: the same row, its start kept, counted.
    var resumed = s
    resumed.startedAt = 1_800_000_000
    try store.begin(resumed, resumed: true)
    var r = try #require(try store.study(.bisection, dir: dir))
    #expect(r.status == "running" && r.resumes == 1)
    #expect(r.startedAt == 1_700_000_000)

    r.outcome = "abc123"
    r.confidence = 0.995
    r.runs = 42
    r.exitCode = 0
    r.result = #"{"culprit":"abc123","runs":42,"p_estimate":0.3}"#
    r.runDirs = ["/x/runs/1", "/x/runs/2"]
    try store.end(r)
    let e = try #require(try store.study(.bisection, dir: dir))
    #expect(e.status == "ended")
    #expect(e.outcome == "abc123" && e.runs == 42 && e.exitCode == 0)
    #expect(e.runDirs == ["/x/runs/1", "/x/runs/2"])
    #expect(e.endedAt != nil && e.resumes == 1 && e.good == "g")

    // A verdict in the same directory is another row; --kind tells them apart.
    var v = StudyRecord(kind: .verdict, dir: dir, command: "hpthammer verdict", arguments: "{}")
    v.base = "4.14.0-rc4"
    try store.end(v)  // an end without a recorded start stores the whole row
    rows = try store.studies()
    #expect(rows.count == 2)
    #expect(
      try store.studies(ResultsStore.StudyFilter(kind: .verdict)).map(\.base) == ["4.14.0-rc4"])
    #expect(
      try store.studies(ResultsStore.StudyFilter(kind: .bisection)).map(\.outcome) == ["abc123"])
  }

  @Test func rowsOnSQLite() throws {
    try Self.rowsGoThroughTheirLife(db: F.scratch("sqlite") + "/results.sqlite")
  }

  @Test(.enabled(if: BackendTests.postgres != nil, "HPTHAMMER_TEST_POSTGRES is not set"))
  func rowsOnPostgreSQL() throws {
    let url = try BackendTests.postgresDatabase()
    defer { BackendTests.drop(url) }
    try Self.rowsGoThroughTheirLife(db: url)
  }

  func sh(_ script: String, in dir: String) throws -> (Int32, String) {
    let (rc, out, _) = try F.exec("/bin/bash", ["-c", "cd \"$0\" && " + script, dir])
    return (rc, out)
  }

  func studies(_ db: String, _ kind: String) throws -> [[String: Any]] {
    let (rc, out, err) = try F.hpthammer([
      "results", "studies", "--kind", kind, "--json", "--db", db,
    ])
    #expect(rc == 0, "\(err)")
    return try #require(try F.json(out) as? [[String: Any]], "\(out) \(err)")
  }

  /// A real bisection (git history, a flaky TEST) SIGKILLed mid-way: its row says
  /// interrupted; `bisect resume` ends it in the same row, with the culprit.
  @Test func aKilledBisectionIsInterruptedThenEndedByItsResume() throws {
    let dir = F.scratch("bisect")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let repo = dir + "/repo"
    try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
    let (rc0, _) = try sh(
      """
      git init -q && git config user.email t@example.org && git config user.name t &&
      for i in $(seq 0 59); do
        if [ $i -ge 37 ]; then echo bad > state; else echo good > state; fi
        echo $i > n; git add -A; git commit -qm "commit $i"
      done
      """, in: repo)
    try #require(rc0 == 0)
    let (_, list) = try sh("git rev-list --reverse HEAD", in: repo)
    let shas = list.split(separator: "\n").map(String.init)
    let (good, culprit) = (shas[0], shas[37])
    let test = dir + "/test.sh"
    try """
    #!/bin/bash
    c=$(cat \(dir)/counter 2>/dev/null || echo 0); echo $((c+1)) > \(dir)/counter
    sleep 0.05
    RANDOM=$((c * 7919 + 13)); r=$((RANDOM % 1000))
    [ "$(cat state)" = bad ] && [ $r -lt 400 ] && exit 1
    exit 0
    """.write(toFile: test, atomically: true, encoding: .utf8)
    chmod(test, 0o755)
    let db = dir + "/results.sqlite"
    let d = dir + "/b"

    let p = Process()
    p.executableURL = F.binary
    p.environment = F.environment()
    p.currentDirectoryURL = F.repo
    p.arguments = [
      "bisect", "run", "--repo", repo, "--good", good, "--bad", "HEAD", "--dir", d, "--db", db,
      "--", test,
    ]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    // Killed once it has answered a few runs.
    for _ in 0..<500 {
      let j = (try? String(contentsOfFile: d + "/journal.jsonl", encoding: .utf8)) ?? ""
      if j.split(separator: "\n").count >= 4 { break }
      Thread.sleep(forTimeInterval: 0.02)
    }
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    let journal = try String(contentsOfFile: d + "/journal.jsonl", encoding: .utf8)
    try #require(!journal.contains("\"event\":\"end\""), "it ended before it was killed")

    var rows = try studies(db, "bisection")
    try #require(rows.count == 1, "\(rows)")
    #expect(rows[0]["status"] as? String == "interrupted", "\(rows[0])")
    #expect(rows[0]["good"] as? String == good)
    #expect(rows[0]["dir"] as? String == d)
    #expect((rows[0]["arguments"] as? [String: Any])?["test"] as? [String] == [test])
    #expect(rows[0]["result"] is NSNull || rows[0]["result"] == nil)
    let started = try #require(rows[0]["started_at"] as? Double)

    let (rc, out, err) = try F.hpthammer(
      ["bisect", "resume", d, "--db", db, "--json"], env: F.environment())
    #expect(rc == 0, "exit \(rc): \(err.suffix(400))")
    let answer = try #require(
      try F.json(String(out.split(separator: "\n").last ?? "")) as? [String: Any], "\(out)")
    #expect(answer["culprit"] as? String == culprit)

    rows = try studies(db, "bisection")
    try #require(rows.count == 1, "one row: the resume updated it")
    let r = rows[0]
    #expect(r["status"] as? String == "ended", "\(r)")
    #expect(r["outcome"] as? String == culprit)
    #expect(r["resumes"] as? Int == 1)
    #expect(r["started_at"] as? Double == started)
    #expect(r["exit_code"] as? Int == 0)
    #expect(r["runs"] as? Int == answer["runs"] as? Int)
    let result = try #require(r["result"] as? [String: Any])
    #expect(result["culprit"] as? String == culprit)
    #expect((result["confidence"] as? Double ?? 0) >= 0.99)
    for key in ["candidates", "runs", "builds", "skipped", "p_estimate"] {
      #expect(result[key] != nil, "result has no \(key)")
    }
    // The table says the same.
    let (_, table, _) = try F.hpthammer(["results", "studies", "--db", db])
    #expect(table.contains("bisection") && table.contains("ended"), "\(table)")
    #expect(table.contains(String(culprit.prefix(12))), "\(table)")
  }

  /// `hpthammer verdict` on the simulator records itself and its runs (in the same store).
  @Test func aVerdictRecordsItselfAndItsRuns() throws {
    let dir = F.scratch("verdict")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let db = dir + "/results.sqlite"
    let (rc, out, err) = try F.hpthammer([
      "verdict", "Jobs/dry-run.yaml", "--base", "4.14.0-rc4", "--patched", "6.1", "--resizes",
      "40", "--dir", dir + "/v", "--db", db, "--json",
    ])
    #expect(rc == 0, "\(out) \(err.suffix(400))")
    let answer = try #require(try F.json(out) as? [String: Any], "\(out)")
    #expect(answer["verdict"] as? String == "fixes")

    let rows = try studies(db, "verdict")
    try #require(rows.count == 1, "\(rows)")
    let r = rows[0]
    #expect(r["status"] as? String == "ended", "\(r)")
    #expect(r["outcome"] as? String == "fixes")
    #expect(r["base"] as? String == "4.14.0-rc4" && r["patched"] as? String == "6.1")
    #expect((r["job"] as? String)?.hasSuffix("Jobs/dry-run.yaml") == true)
    #expect((r["arguments"] as? [String: Any])?["resizes"] as? Int == 40)
    let result = try #require(r["result"] as? [String: Any])
    let base = try #require(result["base"] as? [String: Any])
    let patched = try #require(result["patched"] as? [String: Any])
    #expect((base["reproduced"] as? Int ?? 0) > 0)
    #expect(!(base["titles"] as? [String] ?? []).isEmpty)
    #expect(patched["reproduced"] as? Int == 0)
    #expect((result["bound"] as? String)?.contains("patched rate <") == true)
    let runs = (base["runs"] as? Int ?? 0) + (patched["runs"] as? Int ?? 0)
    #expect(r["runs"] as? Int == runs)
    // Its run directories, each one a run recorded in the same store.
    let dirs = try #require(r["run_dirs"] as? [String])
    #expect(dirs.count == runs)
    let (rc2, listed, err2) = try F.hpthammer([
      "results", "list", "--json", "--limit", "100000", "--db", db,
    ])
    #expect(rc2 == 0, "\(err2)")
    let stored = Set(
      (try F.json(listed) as? [[String: Any]] ?? []).compactMap { $0["source_dir"] as? String })
    #expect(Set(dirs) == stored, "run directories \(dirs.count), runs stored \(stored.count)")
    #expect(dirs.allSatisfy { $0.hasPrefix(dir + "/v/") })
    // The history page lists it.
    let html = dir + "/report.html"
    let (rc3, _, err3) = try F.hpthammer(["report", "--db", db, "--out", html])
    #expect(rc3 == 0, "\(err3)")
    let page = (try? String(contentsOfFile: html, encoding: .utf8)) ?? ""
    #expect(page.contains("<h2>Bisections and verdicts</h2>"))
    #expect(page.contains("4.14.0-rc4 vs 6.1") && page.contains("<code>fixes</code>"))
  }

  @Test func badFiltersAreUsageErrors() throws {
    let db = F.scratch("bad") + "/results.sqlite"
    var (rc, _, err) = try F.hpthammer(["results", "studies", "--kind", "nightly", "--db", db])
    #expect(rc == 2 && err.contains("--kind"), "\(err)")
    (rc, _, err) = try F.hpthammer(["results", "studies", "--status", "gone", "--db", db])
    #expect(rc == 2 && err.contains("--status"), "\(err)")
    (rc, _, err) = try F.hpthammer(["results", "studies", "--since", "yesterday", "--db", db])
    #expect(rc == 2, "\(err)")
    var out: String
    (rc, out, err) = try F.hpthammer(["results", "studies", "--db", db])
    #expect(rc == 0 && out.contains("No bisections or verdicts"), "\(out) \(err)")
  }
}
