import Foundation
import HPTResults
import Testing

/// The PyPI tools of scripts/ensure-pytools.sh (kcidb-io, junitparser, check-jsonschema) in
/// their venv, installed on first use; a test that needs them is cancelled with the reason
/// when they cannot be installed here.
enum PyTools {
  static let venv: Result<String, FixtureError> = {
    let env = ProcessInfo.processInfo.environment
    if let why = env["HPTHAMMER_PYTOOLS_MISSING"], !why.isEmpty {
      return .failure(FixtureError(why))
    }
    do {
      let (rc, out, err) = try Fixtures.exec(
        "/bin/bash", [Fixtures.repo.path + "/scripts/ensure-pytools.sh"])
      let dir = out.trimmingCharacters(in: .whitespacesAndNewlines)
      guard rc == 0, !dir.isEmpty else {
        return .failure(FixtureError("scripts/ensure-pytools.sh exit \(rc): \(err)"))
      }
      return .success(dir)
    } catch {
      return .failure(FixtureError("scripts/ensure-pytools.sh: \(error)"))
    }
  }()

  /// The venv, or the test is cancelled (skipped) saying why.
  static func require() throws -> String {
    switch venv {
    case .success(let dir): return dir
    case .failure(let why):
      try Test.cancel("the PyPI tools could not be installed: \(why.description)")
    }
  }

  /// scripts/check-exports.py KIND FILE in the venv; its exit status, stdout and stderr.
  static func check(_ kind: String, _ file: String) throws -> (Int32, String, String) {
    let venv = try require()
    return try Fixtures.exec(
      venv + "/bin/python", [Fixtures.repo.path + "/scripts/check-exports.py", kind, file])
  }
}

/// `hpthammer results kcidb` against kcidb-io's own schema, junit.xml through junitparser, and
/// ci/'s pipelines and systemd units through check-jsonschema and systemd-analyze. Each check
/// is shown to refuse a broken file too.
@Suite struct ToolValidationTests {
  typealias F = Fixtures

  /// A bug run, a pass run and a run that could not test, in a new store.
  static func store() throws -> String {
    let db = F.scratch("tooldb") + "/results.sqlite"
    let error = try F.variant(of: try F.run(seed: 1, kernel: "6.1"))
    let path = error + "/run.json"
    var j = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        as? [String: Any])
    j["verdict"] = "error"
    j["error"] = "cannot reach the host: ssh: connect to host p9-lab-1 port 22: No route to host"
    try JSONSerialization.data(withJSONObject: j).write(to: URL(fileURLWithPath: path))
    let (rc, _, err) = try F.hpthammer(
      [
        "results", "import", try F.run(seed: 2), try F.run(seed: 1, kernel: "6.1"), error, "--db",
        db,
      ])
    #expect(rc == 0, "\(err)")
    return db
  }

  @Test func kcidbExportIsValidForKcidbIO() throws {
    _ = try PyTools.require()
    let db = try Self.store()
    let out = F.scratch("kcidb") + "/kcidb.json"
    let (rc, _, err) = try F.hpthammer(["results", "kcidb", "--db", db, "--out", out])
    #expect(rc == 0, "\(err)")
    let (vrc, summary, verr) = try PyTools.check("kcidb", out)
    #expect(vrc == 0, "kcidb_io refused \(out): \(verr)")
    let s = try #require(try F.json(summary) as? [String: Any], "\(summary)")
    #expect(s["schema"] as? String == "v5.3")
    #expect(s["tests"] as? Int == 3)
    #expect((s["checkouts"] as? Int ?? 0) >= 1 && (s["builds"] as? Int ?? 0) >= 1)
    #expect(s["statuses"] as? [String] == ["ERROR", "FAIL", "PASS"], "\(summary)")
    #expect(s["origins"] as? [String] == ["hpthammer"])
    // The same check refuses a document KCIDB would: a status it does not know.
    var doc = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out)))
        as? [String: Any])
    var tests = try #require(doc["tests"] as? [[String: Any]])
    tests[0]["status"] = "BROKEN"
    doc["tests"] = tests
    let bad = F.scratch("kcidb-bad") + "/kcidb.json"
    try JSONSerialization.data(withJSONObject: doc).write(to: URL(fileURLWithPath: bad))
    let (brc, _, berr) = try PyTools.check("kcidb", bad)
    #expect(brc == 1 && berr.contains("BROKEN"), "\(berr)")
  }

  @Test func aRunsJunitAndTheStoresJunitParseWithJunitparser() throws {
    _ = try PyTools.require()
    // A bug run's own junit.xml: the crash is a failure carrying its title.
    let bug = try F.run(seed: 2)
    var (rc, out, err) = try PyTools.check("junit", bug + "/junit.xml")
    #expect(rc == 0, "junitparser refused \(bug)/junit.xml: \(err)")
    var doc = try #require(try F.json(out) as? [String: Any], "\(out)")
    var cases = try #require(doc["cases"] as? [[String: Any]])
    let failures = cases.filter { $0["result"] as? String == "failure" }
    #expect(failures.count == 1, "\(cases)")
    #expect(
      (failures.first?["message"] as? String)?.contains("kvmppc_add_revmap_chain") == true,
      "\(failures)")
    // A pass run: no failure, no error.
    (rc, out, err) = try PyTools.check("junit", try F.run(seed: 1, kernel: "6.1") + "/junit.xml")
    #expect(rc == 0, "\(err)")
    doc = try #require(try F.json(out) as? [String: Any], "\(out)")
    cases = try #require(doc["cases"] as? [[String: Any]])
    #expect(!cases.isEmpty && cases.allSatisfy { $0["result"] as? String == "passed" }, "\(cases)")
    // `results junit`: a case per run, failure for the bug, error for the run that could not test.
    let db = try Self.store()
    let xml = F.scratch("junit") + "/junit.xml"
    #expect(try F.hpthammer(["results", "junit", "--db", db, "--out", xml]).0 == 0)
    (rc, out, err) = try PyTools.check("junit", xml)
    #expect(rc == 0, "\(err)")
    doc = try #require(try F.json(out) as? [String: Any], "\(out)")
    cases = try #require(doc["cases"] as? [[String: Any]])
    #expect(
      cases.compactMap { $0["result"] as? String }.sorted() == ["error", "failure", "passed"],
      "\(cases)")
    // junitparser's counts are checked against the suite's: a suite that lies is refused.
    let text = try String(contentsOfFile: bug + "/junit.xml", encoding: .utf8)
    let lie = text.replacingOccurrences(of: "failures=\"1\"", with: "failures=\"0\"")
    #expect(lie != text, "the run's junit.xml has no failures=\"1\" to change: \(text.prefix(400))")
    let bad = F.scratch("junit-bad") + "/junit.xml"
    try lie.write(toFile: bad, atomically: true, encoding: .utf8)
    let (brc, _, berr) = try PyTools.check("junit", bad)
    #expect(brc == 1 && berr.contains("failures"), "\(berr)")
  }

  /// check-jsonschema with the schemas it carries; the file as given, then one broken copy.
  static func checkSchema(_ schema: String, _ file: String) throws -> (Int32, String) {
    let venv = try PyTools.require()
    let (rc, out, err) = try F.exec(
      venv + "/bin/check-jsonschema", ["--builtin-schema", schema, file])
    return (rc, out + err)
  }

  @Test func thePipelinesPassTheirCIEnginesSchemas() throws {
    _ = try PyTools.require()
    for (schema, file, breakIt) in [
      ("vendor.github-workflows", "ci/nightly.yml", ("runs-on:", "run-on:")),
      ("vendor.gitlab-ci", "ci/gitlab-ci.yml", ("  stage: nightly", "  stage: [nightly, 2]")),
    ] {
      let path = F.repo.path + "/" + file
      let (rc, out) = try Self.checkSchema(schema, path)
      #expect(rc == 0, "\(file) against \(schema): \(out)")
      let text = try String(contentsOfFile: path, encoding: .utf8)
      let broken = text.replacingOccurrences(of: breakIt.0, with: breakIt.1)
      #expect(broken != text)
      let copy = F.scratch("pipeline") + "/" + (file as NSString).lastPathComponent
      try broken.write(toFile: copy, atomically: true, encoding: .utf8)
      let (brc, bout) = try Self.checkSchema(schema, copy)
      #expect(brc != 0, "a broken \(file) passed \(schema): \(bout)")
    }
    // Every controller writes to the shared PostgreSQL store; the fleet's plan is the POWER9 one.
    for file in ["ci/nightly.yml", "ci/gitlab-ci.yml"] {
      let text = try String(contentsOfFile: F.repo.path + "/" + file, encoding: .utf8)
      #expect(text.contains("nightly plan.yaml --db \"$HPTHAMMER_DB_URL\""), "\(file)")
      #expect(text.contains("Jobs/nightly/power9.yaml"), "\(file)")
    }
  }

  @Test func theSystemdUnitsVerify() throws {
    let analyze = "/usr/bin/systemd-analyze"
    guard FileManager.default.isExecutableFile(atPath: analyze) else {
      try Test.cancel("no \(analyze) on this machine (Debian's systemd package)")
    }
    // As installed: the binary and the checkout where the unit expects them.
    let dir = F.scratch("units")
    func install(_ service: String) throws {
      for name in ["hpthammer-nightly.service", "hpthammer-nightly.timer"] {
        var text = try String(
          contentsOfFile: F.repo.path + "/ci/systemd/" + name, encoding: .utf8)
        text = text.replacingOccurrences(of: "/usr/local/bin/hpthammer", with: F.binary.path)
          .replacingOccurrences(of: "/opt/hpthammer", with: F.repo.path)
        if name.hasSuffix(".service") { text = service.isEmpty ? text : text + service }
        try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
      }
    }
    let units = ["hpthammer-nightly.service", "hpthammer-nightly.timer"].map { dir + "/" + $0 }
    try install("")
    let (rc, out, err) = try F.exec(analyze, ["verify", "--man=no"] + units)
    #expect(rc == 0, "\(out)\(err)")
    #expect(!(out + err).contains(dir), "systemd-analyze verify: \(out)\(err)")
    // A key systemd does not know is reported against the file.
    try install("ExecStrat=/bin/true\n")
    let (_, bout, berr) = try F.exec(analyze, ["verify", "--man=no"] + units)
    #expect((bout + berr).contains("ExecStrat"), "\(bout)\(berr)")
  }
}
