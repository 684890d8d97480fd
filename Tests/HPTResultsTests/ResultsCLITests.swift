import Foundation
import HPTResults
import Testing

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// `hpthammer results ...` and the run's own recording, through the built binary.
@Suite struct ResultsCLITests {
  typealias F = Fixtures

  /// The store of a test: a new SQLite file, and the environment naming it.
  struct Store {
    let path = F.scratch("clidb") + "/results.sqlite"
    func env() -> [String: String] { F.environment(["HPTHAMMER_DB": path]) }
    func run(_ args: [String]) throws -> (Int32, String, String) {
      try F.hpthammer(args + ["--db", path])
    }
  }

  @Test func importIsIdempotentThroughTheCommandLine() throws {
    let db = Store()
    let a = try F.run(seed: 1)
    let b = try F.run(seed: 1, kernel: "6.1")
    var (rc, out, err) = try db.run(["results", "import", a, b, "--json"])
    #expect(rc == 0, "\(err)")
    var doc = try #require(try F.json(out) as? [[String: Any]], "\(out)")
    #expect(doc.map { $0["outcome"] as? String } == ["stored", "stored"])
    #expect(doc[0]["new_signatures"] as? [String] == [StoreTests.signature])
    #expect(doc[1]["new_signatures"] as? [String] == [])
    (rc, out, err) = try db.run(["results", "import", a, b, "--json"])
    #expect(rc == 0, "\(err)")
    doc = try #require(try F.json(out) as? [[String: Any]], "\(out)")
    #expect(doc.map { $0["outcome"] as? String } == ["already-stored", "already-stored"])
    // A directory holding run directories (a --seeds parent, a CI artifact) imports them all.
    let parent = F.scratch("parent")
    try FileManager.default.copyItem(atPath: a, toPath: parent + "/seed-1")
    try FileManager.default.copyItem(
      atPath: try F.run(seed: 2), toPath: parent + "/seed-2")
    (rc, out, err) = try db.run(["results", "import", parent])
    #expect(rc == 0, "\(err)")
    #expect(out.contains("seed-1: already stored"), "\(out)")
    #expect(out.contains("seed-2: stored"), "\(out)")
    #expect(!out.contains("NEW"), "\(out)")
    (rc, out, err) = try db.run(["results", "--json"])
    #expect(try (F.json(out) as? [Any])?.count == 3)
  }

  /// `results`, `results crashes` and `results show` print exactly one JSON document each.
  @Test func jsonOutputIsOneDocument() throws {
    let db = Store()
    let bug = try F.run(seed: 1)
    let pass = try F.run(seed: 1, kernel: "6.1")
    #expect(try db.run(["results", "import", bug, pass]).0 == 0)

    var (rc, out, err) = try db.run(["results", "--json"])
    #expect(rc == 0, "\(err)")
    let runs = try #require(try F.json(out) as? [[String: Any]], "\(out)")
    #expect(runs.count == 2)
    #expect(Set(runs.compactMap { $0["verdict"] as? String }) == ["bug", "pass"])
    #expect(
      Set(runs.compactMap { $0["kernel"] as? String }) == ["4.14.0-rc4", "6.1"])
    // The simulator's kernel is its model (what --kernel takes), with the release it reports.
    #expect(
      Set(runs.compactMap { $0["kernel_release"] as? String }) == [
        "4.14.0-rc4", "6.1.0-50-powerpc64le",
      ])
    let bugRun = try #require(runs.first { $0["verdict"] as? String == "bug" })
    let id = try #require(bugRun["run_id"] as? String)
    #expect(bugRun["run_json"] == nil)

    (rc, out, err) = try db.run(["results", "crashes", "--json"])
    #expect(rc == 0, "\(err)")
    let groups = try #require(try F.json(out) as? [[String: Any]], "\(out)")
    #expect(groups.count == 1)
    #expect(groups.first?["signature"] as? String == StoreTests.signature)
    #expect(groups.first?["count"] as? Int == 1)
    #expect(groups.first?["is_new"] as? Bool == true)
    let repro = try #require(groups.first?["reproducer"] as? [String: Any])
    #expect(repro["seed"] as? String == "1")
    #expect(repro["run_id"] as? String == id)

    (rc, out, err) = try db.run(["results", "show", String(id.prefix(8)), "--json"])
    #expect(rc == 0, "\(err)")
    let shown = try #require(try F.json(out) as? [String: Any], "\(out)")
    #expect(shown["run_id"] as? String == id)
    let crashes = try #require(shown["crashes"] as? [[String: Any]])
    #expect((crashes.first?["report"] as? String)?.contains("kvmppc_add_revmap_chain") == true)
    // By the directory it was imported from, too; text without --json.
    (rc, out, err) = try db.run(["results", "show", bug])
    #expect(rc == 0, "\(err)")
    #expect(out.contains("run \(id): bug"), "\(out)")
    #expect(try db.run(["results", "show", "no-such-run"]).0 == 2)
  }

  @Test func filtersOnTheCommandLine() throws {
    let db = Store()
    let bug = try F.run(seed: 1)
    let pass = try F.run(seed: 1, kernel: "6.1")
    let old = try F.variant(
      of: try F.run(seed: 2), startedAt: Date().addingTimeInterval(-40 * 86_400), host: "p9-b")
    #expect(try db.run(["results", "import", bug, pass, old]).0 == 0)
    func count(_ args: [String]) throws -> Int {
      let (rc, out, err) = try db.run(["results"] + args + ["--json"])
      #expect(rc == 0, "\(args): \(err)")
      return try #require(try F.json(out) as? [Any], "\(out)").count
    }
    #expect(try count([]) == 3)
    #expect(try count(["--kernel", "6.1.0-50-powerpc64le"]) == 1)
    #expect(try count(["--kernel", "4.14.0-rc4"]) == 2)
    #expect(try count(["--host", "p9-b"]) == 1)
    #expect(try count(["--job", "dry-run"]) == 3)
    #expect(try count(["--job", "nope"]) == 0)
    #expect(try count(["--verdict", "bug"]) == 2)
    #expect(try count(["--since", "30d"]) == 2)
    #expect(try count(["--since", "30d", "--verdict", "bug", "--kernel", "4.14.0-rc4"]) == 1)
    // The crash table's --since: the old host's night alone is 40 days back.
    let (_, out, _) = try db.run(["results", "crashes", "--since", "30d", "--json"])
    let g = try #require(try F.json(out) as? [[String: Any]])
    #expect(g.first?["count"] as? Int == 2)
    #expect(g.first?["hosts"] as? [String] == ["p9-b", "sim-power9"])
    // Nonsense is a usage error.
    #expect(try db.run(["results", "--verdict", "maybe"]).0 == 2)
    #expect(try db.run(["results", "--since", "last tuesday"]).0 == 2)
  }

  /// A corrupt and a foreign directory among good ones: each named, exit 2, the good ones
  /// stored, what was stored before still there.
  @Test func badDirectoriesAreNamedAndTheRestImported() throws {
    let db = Store()
    let before = try F.run(seed: 2)
    #expect(try db.run(["results", "import", before]).0 == 0)
    let root = F.scratch("bad")
    let corrupt = root + "/corrupt"
    let foreign = root + "/foreign"
    try FileManager.default.createDirectory(atPath: corrupt, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
    try Data([0x7b, 0x22, 0x76, 0x65, 0xff, 0x00]).write(
      to: URL(fileURLWithPath: corrupt + "/run.json"))
    try "{\"name\": \"another tool\"}".write(
      toFile: foreign + "/run.json", atomically: true, encoding: .utf8)
    let good = try F.run(seed: 1, kernel: "6.1")
    let (rc, out, err) = try db.run(["results", "import", corrupt, good, foreign, "--json"])
    #expect(rc == 2, "\(out) \(err)")
    #expect(err.contains(corrupt) && err.contains("corrupt"), "\(err)")
    #expect(err.contains(foreign) && err.contains("not written by hpthammer"), "\(err)")
    let doc = try #require(try F.json(out) as? [[String: Any]], "\(out)")
    #expect(doc.map { $0["outcome"] as? String } == ["refused", "stored", "refused"])
    let (_, list, _) = try db.run(["results", "--json"])
    #expect(try (F.json(list) as? [Any])?.count == 2)
  }

  @Test func aNewerDatabaseExits125AndStaysAsItWas() throws {
    let db = Store()
    #expect(try db.run(["results", "import", try F.run(seed: 1)]).0 == 0)
    let store = try ResultsStore.open(db.path)
    try store.backend.transaction { c in
      try c.execute("INSERT INTO grdb_migrations (identifier) VALUES (?)", ["v9-next"])
    }
    store.backend.close()
    let before = try Data(contentsOf: URL(fileURLWithPath: db.path))
    for args in [
      ["results"], ["results", "crashes", "--json"], ["results", "import", try F.run(seed: 2)],
    ] {
      let (rc, out, err) = try db.run(args)
      #expect(rc == 125, "\(args): \(out) \(err)")
      #expect(err.contains("newer HPTHammer") && err.contains("v9-next"), "\(err)")
      #expect(out.isEmpty)
    }
    #expect(try Data(contentsOf: URL(fileURLWithPath: db.path)) == before)
    // Not a database at all: 125 too, and untouched.
    let text = F.scratch("notdb") + "/notes.sqlite"
    try "my notes".write(toFile: text, atomically: true, encoding: .utf8)
    let (rc, _, err) = try F.hpthammer(["results", "--db", text])
    #expect(rc == 125, "\(err)")
    #expect(err.contains(text))
    #expect(try String(contentsOfFile: text, encoding: .utf8) == "my notes")
  }

  /// The exports: KCIDB v5.3 (a checkout and build per kernel, a test per run: FAIL with the
  /// crash title, PASS), junit.xml (a failure per bug), Prometheus text per host.
  @Test func exportsCarryTheRuns() throws {
    let db = Store()
    #expect(
      try db.run(["results", "import", try F.run(seed: 1), try F.run(seed: 1, kernel: "6.1")]).0
        == 0)
    var (rc, out, err) = try db.run(["results", "kcidb"])
    #expect(rc == 0, "\(err)")
    let k = try #require(try F.json(out) as? [String: Any])
    #expect((k["version"] as? [String: Int]) == ["major": 5, "minor": 3])
    #expect((k["checkouts"] as? [Any])?.count == 2)
    let tests = try #require(k["tests"] as? [[String: Any]])
    #expect(Set(tests.compactMap { $0["status"] as? String }) == ["FAIL", "PASS"])
    let fail = try #require(tests.first { $0["status"] as? String == "FAIL" })
    #expect((fail["comment"] as? String)?.contains("kvmppc_add_revmap_chain") == true)
    #expect((fail["log_excerpt"] as? String)?.contains("Oops") == true)
    #expect(tests.allSatisfy { ($0["id"] as? String)?.hasPrefix("hpthammer:") == true })
    (rc, out, err) = try db.run(["results", "junit"])
    #expect(rc == 0, "\(err)")
    let xml = XMLParser(data: Data(out.utf8))
    #expect(xml.parse(), "junit.xml does not parse")
    #expect(out.components(separatedBy: "<testcase ").count == 3)
    #expect(out.components(separatedBy: "<failure ").count == 2)
    let prom = F.scratch("prom") + "/hpthammer.prom"
    (rc, _, err) = try db.run(["results", "--metrics", prom])
    #expect(rc == 0, "\(err)")
    let text = try String(contentsOfFile: prom, encoding: .utf8)
    #expect(text.contains("hpthammer_last_run_verdict{host=\"sim-power9\""))
    #expect(try db.run(["results", "kcidb", "--origin", "Bad Origin"]).0 == 2)
  }

  // MARK: a run records itself

  @Test func aRunRecordsItselfInTheDefaultStore() throws {
    let env = F.environment()
    let xdg = try #require(env["XDG_DATA_HOME"])
    let dbPath = xdg + "/hpthammer/results.sqlite"
    let d1 = F.scratch("own") + "/r"
    var (rc, out, err) = try F.hpthammer(
      ["run", "Jobs/dry-run.yaml", "--out", d1, "--no-progress"], env: env)
    #expect(rc == 1, "\(out) \(err)")
    #expect(err.contains("recorded in \(dbPath)"), "\(err)")
    #expect(err.contains("NEW crash signature (never seen in this store): \(StoreTests.signature)"))
    // The same oops again: recorded, not new.
    let d2 = F.scratch("own") + "/r"
    (rc, out, err) = try F.hpthammer(
      ["run", "Jobs/dry-run.yaml", "--seed", "4", "--out", d2, "--no-progress"], env: env)
    #expect(rc == 1)
    #expect(err.contains("recorded in"))
    #expect(!err.contains("NEW"), "\(err)")
    (rc, out, err) = try F.hpthammer(["results", "crashes", "--json"], env: env)
    let g = try #require(try F.json(out) as? [[String: Any]], "\(out) \(err)")
    #expect(g.first?["count"] as? Int == 2)
    // Importing the directories the runs recorded changes nothing.
    (rc, out, err) = try F.hpthammer(["results", "import", d1, d2], env: env)
    #expect(rc == 0)
    #expect(out.components(separatedBy: "already stored").count == 3, "\(out)")
  }

  @Test func noDBAndOffRecordNothing() throws {
    for (args, extra) in [(["--no-db"], [:]), ([], ["HPTHAMMER_DB": "off"])] {
      let env = F.environment(extra)
      let xdg = try #require(env["XDG_DATA_HOME"])
      let (rc, _, err) = try F.hpthammer(
        ["run", "Jobs/dry-run.yaml", "--out", F.scratch("nodb") + "/r", "--no-progress"] + args,
        env: env)
      #expect(rc == 1)
      #expect(!err.contains("recorded"), "\(err)")
      #expect(!FileManager.default.fileExists(atPath: xdg + "/hpthammer"), "\(args) \(extra)")
    }
    // And the results commands say the store is off rather than open one.
    let (rc, _, err) = try F.hpthammer(["results"], env: F.environment(["HPTHAMMER_DB": "off"]))
    #expect(rc == 2 && err.contains("off"), "\(err)")
  }

  /// A store that cannot take the run is a warning: the run's exit code is its verdict's.
  @Test func aStoreFailureNeverChangesTheRunsExitCode() throws {
    let blocker = F.scratch("blocker") + "/file"
    try "not a directory".write(toFile: blocker, atomically: true, encoding: .utf8)
    let newer = Store()
    #expect(try newer.run(["results", "import", try F.run(seed: 1)]).0 == 0)
    let store = try ResultsStore.open(newer.path)
    try store.backend.transaction { c in
      try c.execute("INSERT INTO grdb_migrations (identifier) VALUES (?)", ["v9-next"])
    }
    store.backend.close()
    let before = try Data(contentsOf: URL(fileURLWithPath: newer.path))
    for (kernel, expected) in [("pre-fix", Int32(1)), ("6.1", Int32(0))] {
      for db in [blocker + "/results.sqlite", newer.path] {
        let (rc, out, err) = try F.hpthammer([
          "run", "Jobs/dry-run.yaml", "--kernel", kernel, "--duration", "2s", "--out",
          F.scratch("warn") + "/r", "--no-progress", "--db", db,
        ])
        #expect(rc == expected, "\(kernel) \(db): \(out) \(err)")
        #expect(err.contains("warning: the run was not recorded"), "\(err)")
      }
    }
    #expect(try Data(contentsOf: URL(fileURLWithPath: newer.path)) == before)
  }
  /// A run is in the store from its start: killed outright it stays there as interrupted;
  /// stopped by a signal it ends and its record is replaced by the finished one.
  @Test(arguments: [SIGKILL, SIGINT])
  func aRunIsRecordedFromItsStart(signal: Int32) throws {
    let db = Store()
    let dir = F.scratch("killed") + "/r"
    let p = Process()
    p.executableURL = F.binary
    p.arguments = [
      "run", "Jobs/dry-run-fixed.yaml", "--duration", "1h", "--out", dir, "--no-progress", "--db",
      db.path,
    ]
    p.currentDirectoryURL = F.repo
    p.environment = F.environment()
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    var seen: [RunRecord] = []
    for _ in 0..<300 where seen.isEmpty {
      Thread.sleep(forTimeInterval: 0.1)
      if FileManager.default.fileExists(atPath: db.path) {
        seen = (try? ResultsStore.open(db.path).runs()) ?? []
      }
    }
    let running = try #require(seen.first, "the run never appeared in the store")
    #expect(running.interrupted && !running.complete && running.verdict == "error")
    #expect(running.kernel == "6.1")
    kill(p.processIdentifier, signal)
    p.waitUntilExit()
    let store = try ResultsStore.open(db.path)
    let runs = try store.runs()
    #expect(runs.count == 1)
    let r = try #require(runs.first)
    #expect(r.runID == running.runID)
    #expect(r.verdict == "error" && r.interrupted)
    if signal == SIGKILL {
      // Never ended: still the interrupted record, until `runs repair` and an import finish it.
      #expect(!r.complete)
      #expect(try F.hpthammer(["runs", "repair", dir]).0 == 0)
      #expect(try db.run(["results", "import", dir]).0 == 0)
      #expect(try store.run(r.runID).complete)
    } else {
      #expect(p.terminationStatus == 125)
      #expect(r.complete, "the run's own end replaced the interrupted record")
      #expect(r.error?.contains("SIGINT") == true, "\(r.error ?? "-")")
    }
    #expect(try store.count().runs == 1)
  }
}
