import Foundation
import HPTResults
import Testing

/// `hpthammer nightly`: Jobs/nightly/sim.yaml end to end through the built binary, into a real
/// SQLite store and a real report file; known crashes; bad plans.
@Suite struct NightlyTests {
  typealias F = Fixtures

  /// The night's table rows: kernel, job, seed, verdict, note.
  static func rows(_ out: String) -> [[String]] {
    out.split(separator: "\n").map(String.init).filter {
      $0.hasPrefix("pre-fix ") || $0.hasPrefix("6.1 ")
    }.map { line in
      let cols = line.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: true)
        .map { String($0).trimmingCharacters(in: .whitespaces) }
      return cols
    }
  }

  @Test func theSimPlanRunsEndToEndThenItsKnownCrashNoLongerFailsTheNight() throws {
    let db = F.scratch("nightdb") + "/results.sqlite"
    let night = F.scratch("night") + "/n1"
    var (rc, out, err) = try F.hpthammer([
      "nightly", "Jobs/nightly/sim.yaml", "--db", db, "--out", night,
    ])
    // The pre-fix kernel's oops is a signature this new store never saw: a bug night.
    #expect(rc == 1, "\(out)\n\(err)")
    var rows = Self.rows(out)
    #expect(rows.count == 4, "\(out)")
    #expect(rows.map { $0[0] } == ["pre-fix", "pre-fix", "6.1", "6.1"])
    #expect(rows.map { $0[2] } == ["1", "2", "1", "2"])
    #expect(rows.map { $0[3] } == ["bug", "bug", "pass", "pass"], "\(out)")
    #expect(rows[0][4].hasPrefix("NEW: BUG: unable to handle kernel paging request"), "\(rows[0])")
    #expect(rows[1][4].hasPrefix("seen before: BUG:"), "\(rows[1])")
    #expect(out.contains("exit 1"))
    // The README's sample of this night is what it prints.
    let readme = try String(contentsOf: F.repo.appendingPathComponent("README.md"), encoding: .utf8)
    let sample = readme.components(separatedBy: "\n    KERNEL   JOB").dropFirst().first.map {
      ("KERNEL   JOB" + $0).split(separator: "\n").prefix(5).map {
        $0.trimmingCharacters(in: .whitespaces)
      }
    }
    let printed = out.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
      .drop { !$0.hasPrefix("KERNEL ") }.prefix(5)
    #expect(sample == Array(printed), "README: \(sample ?? [])\nprinted: \(Array(printed))")
    // Every run went through `hpthammer run`: its directory, and the store holds it.
    for (k, s) in [("pre-fix", 1), ("pre-fix", 2), ("6.1", 1), ("6.1", 2)] {
      #expect(FileManager.default.fileExists(atPath: "\(night)/\(k)/dry-run/seed-\(s)/run.json"))
      #expect(FileManager.default.fileExists(atPath: "\(night)/\(k)/dry-run/seed-\(s)/junit.xml"))
    }
    let (lrc, list, lerr) = try F.hpthammer(["results", "--json", "--db", db])
    #expect(lrc == 0, "\(lerr)")
    let runs = try #require(try F.json(list) as? [[String: Any]], "\(list)")
    #expect(runs.count == 4)
    #expect(runs.filter { $0["interrupted"] as? Bool == true }.isEmpty, "\(list)")
    #expect(Set(runs.compactMap { $0["kernel"] as? String }) == ["4.14.0-rc4", "6.1"], "\(list)")
    // The report: the store's history, the crash new.
    let html = try String(contentsOfFile: night + "/report.html", encoding: .utf8)
    ReportTests.expectInert(html)
    #expect(html.contains("4 runs"), "\(html.prefix(2000))")
    #expect(html.contains("<tr id=\"crash-1\" class=\"new\">"))
    #expect(html.contains("kvmppc_add_revmap_chain"))
    // This night's table first: its four runs, the new crash's row marked.
    let tonight = try #require(
      html.components(separatedBy: "<h2>This night: sim (exit 1)</h2>").dropFirst().first?
        .components(separatedBy: "</table>").first, "\(html.prefix(3000))")
    #expect(tonight.components(separatedBy: "<tr").count - 2 == 4, "\(tonight)")
    #expect(tonight.contains("<tr class=\"new\"><td>pre-fix</td>"), "\(tonight)")
    #expect(tonight.components(separatedBy: "<span class=\"verdict pass\">").count - 1 == 2)

    // The plan with the oops known: the same night passes, the crash marked known.
    let plan = F.scratch("plan") + "/sim-known.yaml"
    var text = try String(contentsOfFile: F.repo.path + "/Jobs/nightly/sim.yaml", encoding: .utf8)
    text = text.replacingOccurrences(of: "\n# known:", with: "\nknown:")
      .replacingOccurrences(of: "\n#   - title:", with: "\n  - title:")
      .replacingOccurrences(of: "\n#     why:", with: "\n    why:")
    #expect(text.contains("\nknown:\n  - title:"), "\(text)")
    try text.write(toFile: plan, atomically: true, encoding: .utf8)
    let night2 = F.scratch("night") + "/n2"
    (rc, out, err) = try F.hpthammer(["nightly", plan, "--db", db, "--out", night2])
    #expect(rc == 0, "\(out)\n\(err)")
    rows = Self.rows(out)
    #expect(rows.map { $0[3] } == ["known", "known", "pass", "pass"], "\(out)")
    #expect(rows[0][4].hasPrefix("known: BUG:"), "\(rows[0])")
    let html2 = try String(contentsOfFile: night2 + "/report.html", encoding: .utf8)
    #expect(html2.contains("8 runs"))
    #expect(html2.contains("<span class=\"tag\">known</span>"), "\(html2.prefix(3000))")
    #expect(!html2.contains("class=\"new\""))
    #expect(html2.contains("<h2>This night: sim (exit 0)</h2>"))
    #expect(
      html2.components(separatedBy: "<span class=\"verdict known\">known</span>").count - 1 == 2)

    // Without known:, a crash seen on earlier nights still fails the night (but is not new).
    let night3 = F.scratch("night") + "/n3"
    (rc, out, err) = try F.hpthammer([
      "nightly", "Jobs/nightly/sim.yaml", "--db", db, "--out", night3, "--report",
      night3 + "-report.html",
    ])
    #expect(rc == 1, "\(out)\n\(err)")
    rows = Self.rows(out)
    #expect(rows.map { $0[3] } == ["bug", "bug", "pass", "pass"], "\(out)")
    #expect(rows.allSatisfy { !$0.joined(separator: " ").contains("NEW") }, "\(out)")
    #expect(FileManager.default.fileExists(atPath: night3 + "-report.html"))
  }

  /// systemd's stop: the run under way writes its results, the night stops after it (125), its
  /// report is written and the store holds that run as it ended.
  @Test func sigtermStopsTheNightAfterTheCurrentRun() throws {
    let plan = F.scratch("plan") + "/long.yaml"
    try """
    name: long
    kernels: ["6.1"]
    jobs: [Jobs/dry-run.yaml]
    seeds: [1, 2, 3]
    duration: 10m
    """.write(toFile: plan, atomically: true, encoding: .utf8)
    let db = F.scratch("sigdb") + "/results.sqlite"
    let night = F.scratch("night") + "/sig"
    let p = Process()
    p.executableURL = F.binary
    p.arguments = ["nightly", plan, "--db", db, "--out", night]
    p.currentDirectoryURL = F.repo
    p.environment = F.environment()
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Once the first run has started (its directory holds run.json's "running" record).
    let deadline = Date().addingTimeInterval(60)
    while !FileManager.default.fileExists(atPath: night + "/6.1/dry-run/seed-1/run.json"),
      Date() < deadline
    {
      Thread.sleep(forTimeInterval: 0.1)
    }
    Thread.sleep(forTimeInterval: 1)
    kill(p.processIdentifier, SIGTERM)
    let (od, e) = Fixtures.drain(out, err)
    let o = String(decoding: od, as: UTF8.self)
    p.waitUntilExit()
    let stderr = String(decoding: e, as: UTF8.self)
    #expect(p.terminationStatus == 125, "\(o)\n\(stderr)")
    #expect(stderr.contains("SIGTERM: the night stops here; 2 runs not started"), "\(stderr)")
    #expect(Self.rows(o).map { $0[3] } == ["error"], "\(o)")
    #expect(!FileManager.default.fileExists(atPath: night + "/6.1/dry-run/seed-2"))
    #expect(FileManager.default.fileExists(atPath: night + "/report.html"))
    let (_, list, _) = try F.hpthammer(["results", "--json", "--db", db])
    let runs = try #require(try F.json(list) as? [[String: Any]], "\(list)")
    // Stored complete: the run's own end, interrupted by the signal, verdict error.
    #expect(runs.count == 1, "\(list)")
    #expect(runs.first?["complete"] as? Bool == true, "\(list)")
    #expect(runs.first?["verdict"] as? String == "error", "\(list)")
    #expect((runs.first?["error"] as? String)?.contains("SIGTERM") == true, "\(list)")
  }

  /// A fleet: two controllers' nights at once into one PostgreSQL store. Every run is there
  /// once, and the crash is new to exactly one of them.
  @Test(.enabled(if: BackendTests.postgres != nil, "HPTHAMMER_TEST_POSTGRES is not set"))
  func twoControllersShareOnePostgresStore() throws {
    let url = try BackendTests.postgresDatabase()
    defer { BackendTests.drop(url) }
    nonisolated(unsafe) var results: [(Int32, String, String)] = []
    let lock = NSLock()
    DispatchQueue.concurrentPerform(iterations: 2) { i in
      let night = F.scratch("fleet") + "/controller-\(i)"
      let r =
        (try? F.hpthammer(["nightly", "Jobs/nightly/sim.yaml", "--db", url, "--out", night]))
        ?? (-1, "", "did not start")
      lock.lock()
      results.append(r)
      lock.unlock()
    }
    #expect(results.map(\.0) == [1, 1], "\(results)")
    let news = results.map { r in
      Self.rows(r.1).filter { $0.count > 4 && $0[4].hasPrefix("NEW:") }.count
    }
    #expect(news.sorted() == [0, 1], "\(results.map(\.1))")
    #expect(try BackendTests.psql(url, "SELECT count(*) FROM runs") == "8")
    #expect(try BackendTests.psql(url, "SELECT count(*) FROM signatures") == "1")
    let (rc, html, err) = try F.hpthammer(["report", "--db", url, "--out", "-"])
    #expect(rc == 0, "\(err)")
    #expect(html.contains("8 runs"))
  }

  /// A remote host that refuses ssh: every run could not test (125, named in the table), each
  /// job's copy carries the plan's target (a libvirt job its qemu+ssh URI), the runs are stored.
  @Test func aRemoteHostThatCannotBeReachedMakesANightOfErrors() throws {
    let dir = F.scratch("remote")
    try """
    name: remote
    target:
      kind: remote
      name: nohost
      ssh: {host: 127.0.0.1, port: 1, user: root}
      host_log: console
      console: {command: [cat, /dev/null]}
    kernels: [installed]
    jobs: [Jobs/power9-raw.yaml, Jobs/power9-nightly.yaml]
    """.write(toFile: dir + "/plan.yaml", atomically: true, encoding: .utf8)
    let db = dir + "/results.sqlite"
    let (rc, out, err) = try F.hpthammer([
      "nightly", dir + "/plan.yaml", "--db", db, "--out", dir + "/night",
    ])
    #expect(rc == 125, "\(out)\n\(err)")
    let rows = out.split(separator: "\n").filter { $0.hasPrefix("installed ") }
    #expect(rows.count == 2, "\(out)")
    #expect(
      rows.allSatisfy { $0.contains(" error ") && $0.contains("port 1: Connection refused") },
      "\(rows)")
    let libvirt = try String(
      contentsOfFile: dir + "/night/jobs/power9-nightly.yaml", encoding: .utf8)
    #expect(libvirt.contains("libvirt_uri: qemu+ssh://root@127.0.0.1:1/system"), "\(libvirt)")
    #expect(!libvirt.contains("qemu:///system"), "\(libvirt)")
    let raw = try String(contentsOfFile: dir + "/night/jobs/power9-raw.yaml", encoding: .utf8)
    #expect(raw.contains("name: nohost") && !raw.contains("p9-lab-1"), "\(raw)")
    let (_, list, _) = try F.hpthammer(["results", "--json", "--db", db])
    let runs = try #require(try F.json(list) as? [[String: Any]], "\(list)")
    #expect(runs.map { $0["verdict"] as? String } == ["error", "error"], "\(list)")
  }

  /// A kernel whose boot command fails: its runs are errors, never bugs, and are not run; the
  /// next kernel's runs go on.
  @Test func aKernelThatDoesNotBootMakesItsRunsErrors() throws {
    let dir = F.scratch("boot")
    try """
    name: boot
    kernels:
      - {name: pre-fix, boot: ["false"]}
      - {name: "6.1", boot: ["true"]}
    jobs: [Jobs/dry-run.yaml]
    seeds: [1]
    duration: 2s
    """.write(toFile: dir + "/plan.yaml", atomically: true, encoding: .utf8)
    let (rc, out, err) = try F.hpthammer([
      "nightly", dir + "/plan.yaml", "--db", dir + "/results.sqlite", "--out", dir + "/night",
    ])
    #expect(rc == 125, "\(out)\n\(err)")
    let rows = Self.rows(out)
    #expect(rows.map { $0[3] } == ["error", "pass"], "\(out)")
    #expect(rows.first?[4] == "not run: the kernel's boot command exited 1", "\(out)")
    #expect(!FileManager.default.fileExists(atPath: dir + "/night/pre-fix"))
  }

  @Test func listPrintsTheMatrixInOrderAndRunsNothing() throws {
    let env = F.environment(["HPTHAMMER_DB": F.scratch("listdb") + "/results.sqlite"])
    let (rc, out, err) = try F.hpthammer(["nightly", "Jobs/nightly/sim.yaml", "--list"], env: env)
    #expect(rc == 0, "\(err)")
    #expect(
      out.split(separator: "\n") == [
        "1. kernel pre-fix: Jobs/dry-run.yaml seed 1",
        "2. kernel pre-fix: Jobs/dry-run.yaml seed 2",
        "3. kernel 6.1: Jobs/dry-run.yaml seed 1", "4. kernel 6.1: Jobs/dry-run.yaml seed 2",
      ], "\(out)")
    #expect(!FileManager.default.fileExists(atPath: env["HPTHAMMER_DB"]!))
    // The shipped plans parse (their jobs and target sections too).
    for plan in ["lab", "power9"] {
      let (prc, pout, perr) = try F.hpthammer(["nightly", "Jobs/nightly/\(plan).yaml", "--list"])
      #expect(prc == 0, "\(plan): \(perr)")
      #expect(pout.contains("1. kernel "), "\(pout)")
    }
  }

  @Test(arguments: [
    (
      "name: n\nkernels: [pre-fix]\njobs: [Jobs/dry-run.yaml]\nkernelz: 1\n", 4, "kernelz",
      "unknown key"
    ),
    (
      "name: n\nkernels: [pre-fix]\njobs:\n  - Jobs/dry-run.yaml\n  - Jobs/none.yaml\n", 5,
      "jobs[1]", "Jobs/none.yaml"
    ),
    (
      "name: n\nkernels:\n  - pre-fix\n  - no-such-model\njobs: [Jobs/dry-run.yaml]\n", 4,
      "kernels[1]", "not a kernel model"
    ),
    (
      "name: n\nkernels: [pre-fix]\njobs: [Jobs/dry-run.yaml]\nseeds: [1, x]\n", 4, "seeds[1]",
      "not a seed"
    ),
    (
      "name: n\nkernels: [pre-fix]\njobs: [Jobs/dry-run.yaml]\nduration: soon\n", 4, "duration",
      "not a duration"
    ),
    (
      "name: n\nkernels: [pre-fix]\njobs: [Jobs/dry-run.yaml]\nknown:\n  - frame: f\n", 5,
      "known[0]", "title"
    ),
    (
      "name: n\nkernels: [pre-fix]\njobs: [Jobs/dry-run.yaml]\ntarget: mars\n", 4, "target",
      "allowed"
    ),
    ("name: n\nkernels: [pre-fix\njobs: [Jobs/dry-run.yaml]\n", 3, "", "malformed YAML"),
    ("kernels: [pre-fix]\njobs: [Jobs/dry-run.yaml]\n", 1, "name", "missing"),
  ])
  func aBadPlanExits2NamingFileLineAndKey(plan: String, line: Int, key: String, says: String)
    throws
  {
    let path = F.scratch("badplan") + "/plan.yaml"
    try plan.write(toFile: path, atomically: true, encoding: .utf8)
    let db = F.scratch("baddb") + "/results.sqlite"
    let (rc, out, err) = try F.hpthammer(["nightly", path, "--db", db, "--out", path + ".night"])
    #expect(rc == 2, "\(out)\(err)")
    let prefix = "hpthammer: \(path):\(line)" + (key.isEmpty ? "" : ": \(key)")
    #expect(err.hasPrefix(prefix), "expected \(prefix)...; got \(err)")
    #expect(err.contains(says), "\(err)")
    // Nothing ran, nothing was stored.
    #expect(!FileManager.default.fileExists(atPath: path + ".night"))
    #expect(!FileManager.default.fileExists(atPath: db))
  }

  @Test func anUnreachableStoreStopsTheNightBeforeAnyRun() throws {
    let night = F.scratch("night") + "/unreachable"
    let (rc, out, err) = try F.hpthammer([
      "nightly", "Jobs/nightly/sim.yaml", "--db", "postgres://nobody@127.0.0.1:1/none", "--out",
      night,
    ])
    #expect(rc == 125, "\(out)\(err)")
    #expect(err.contains("127.0.0.1"), "\(err)")
    #expect(!FileManager.default.fileExists(atPath: night))
    // A store that is off: the night would record nothing, so it does not start (usage).
    let env = F.environment(["HPTHAMMER_DB": "off"])
    let (orc, _, oerr) = try F.hpthammer(
      ["nightly", "Jobs/nightly/sim.yaml", "--out", night], env: env)
    #expect(orc == 2 && oerr.contains("off"), "\(oerr)")
  }
}
