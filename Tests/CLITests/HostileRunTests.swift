import Foundation
import Testing

/// What nights throw at a run (issue 13): signals, a full disk, hostile job files and options.
/// Each case goes through the real binary and checks the exit code and the run directory.
@Suite struct HostileRunTests {
  let cli = CLITests()

  /// A scratch directory holding `files` (name: text); returns its path.
  func scratch(_ files: [String: String] = [:]) throws -> String {
    let dir = cli.tmp()
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    for (name, text) in files {
      try text.write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8)
    }
    return dir
  }

  func job(name: String = "hostile", extra: String = "") -> String {
    """
    name: \(name)
    backend: sim
    host: {kernel: fixed}
    guests: {count: 1, memory_mib: 256, vcpus: 1}
    budget: {duration_s: 1}
    resize: {orders: [19, 23], policy: random-walk}
    \(extra)
    """
  }

  /// Runs hpthammer in `dir`; returns exit code, stdout, stderr.
  func run(_ args: [String], in dir: String) throws -> (Int32, String, String) {
    try exec([cli.binary.path] + args, in: dir)
  }

  /// Runs argv[0] in `dir`; returns exit code, stdout, stderr.
  func exec(_ argv: [String], in dir: String) throws -> (Int32, String, String) {
    try CLITests.exec(argv, in: dir)
  }

  func runJSON(_ path: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
  }

  // MARK: signals

  @Test(arguments: [(SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP"), (SIGINT, "SIGINT")])
  func aSignalEndsTheRunWithErrorAndTheReason(sig: Int32, name: String) throws {
    let dir = try scratch()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let p = Process()
    p.environment = CLITests.environment
    p.executableURL = cli.binary
    p.arguments = [
      "run", CLITests.repo.appendingPathComponent("Jobs/dry-run-fixed.yaml").path, "--duration",
      "1h",
      "--out", "\(dir)/r", "--no-progress",
    ]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    // Once the run is under way (its interim run.json is there).
    for _ in 0..<200 where !FileManager.default.fileExists(atPath: "\(dir)/r/run.json") {
      Thread.sleep(forTimeInterval: 0.05)
    }
    Thread.sleep(forTimeInterval: 0.5)
    kill(p.processIdentifier, sig)
    p.waitUntilExit()
    #expect(
      p.terminationReason == .exit && p.terminationStatus == 125,
      "\(name): exit \(p.terminationStatus)")
    let j = try runJSON("\(dir)/r/run.json")
    #expect(j["verdict"] as? String == "error")
    #expect((j["error"] as? String ?? "").contains(name), "\(j["error"] ?? "no error")")
    #expect(FileManager.default.fileExists(atPath: "\(dir)/r/junit.xml"))
  }

  // MARK: the run directory

  /// A job's name is the author's free text: it may not climb out of runs/, nest, or carry
  /// control characters onto a terminal; a long one still runs.
  @Test func jobNamesStayOneComponentUnderRuns() throws {
    let long = String(repeating: "n", count: 300)
    let dir = try scratch([
      "escape.yaml": job(name: "\"../../../escape\""), "nested.yaml": job(name: "a/b/c"),
      "long.yaml": job(name: long),
    ])
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for file in ["escape.yaml", "nested.yaml", "long.yaml"] {
      let (rc, _, err) = try run(["run", file, "--no-progress"], in: dir)
      #expect(rc == 0, "\(file): exit \(rc): \(err)")
    }
    let runs = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/runs")
    #expect(runs.count == 3, "\(runs)")
    for r in runs {
      var isDir: ObjCBool = false
      #expect(
        FileManager.default.fileExists(atPath: "\(dir)/runs/\(r)/run.json", isDirectory: &isDir))
      #expect(!r.contains("/") && !r.hasPrefix(".") && r.count < 200, "\(r)")
    }
    #expect(!FileManager.default.fileExists(atPath: "\(dir)/../../escape"))
  }

  @Test func aNameWithControlCharactersIsRefused() throws {
    let dir = try scratch([
      "ansi.yaml": job(name: "\"red\\e[31m\""), "nl.yaml": job(name: "\"a\\nb\""),
    ])
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for file in ["ansi.yaml", "nl.yaml"] {
      let (rc, _, err) = try run(["run", file, "--no-progress"], in: dir)
      #expect(rc == 2 && err.contains("\(file):1: name"), "\(file): exit \(rc): \(err)")
    }
  }

  /// A tmpfs of `size` (root only): a disk that fills.
  func smallDisk(_ size: String) throws -> String {
    let mnt = try scratch()
    let (mounted, _, why) = try exec(
      ["/bin/mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", mnt], in: "/")
    try #require(mounted == 0, "cannot mount a tmpfs here: \(why)")
    return mnt
  }

  func unmount(_ mnt: String) {
    _ = try? exec(["/bin/umount", mnt], in: "/")
    try? FileManager.default.removeItem(atPath: mnt)
  }

  /// A full disk under --out: exit 125, a message naming the file, never a trap or a "bug".
  @Test(.enabled(if: geteuid() == 0, "mounting a small tmpfs needs root"))
  func aFullDiskIsAnInfrastructureError() throws {
    let mnt = try smallDisk("64k")
    defer { unmount(mnt) }
    // Fill it but for a few KiB, then run the dry run (which finds a bug) into it.
    let fill = FileManager.default.createFile(
      atPath: "\(mnt)/fill", contents: Data(count: 56 << 10))
    #expect(fill)
    let (rc, out, err) = try run(
      [
        "run", CLITests.repo.appendingPathComponent("Jobs/dry-run.yaml").path, "--out", "\(mnt)/r",
        "--no-progress",
      ],
      in: mnt)
    #expect(rc == 125, "exit \(rc)\n\(out)\n\(err)")
    #expect(
      (out + err).contains("No space left") || (out + err).contains("disk full"), "\(out)\n\(err)")
  }

  /// The disk fills in the middle of a run (the journal's resize lines outgrow a 128 KiB
  /// tmpfs a few seconds in): still exit 125 naming the file, and what is on disk is valid
  /// (run.json, where it could be written, is JSON and never says pass or bug).
  @Test(.enabled(if: geteuid() == 0, "mounting a small tmpfs needs root"))
  func aDiskThatFillsMidRunIsAnInfrastructureError() throws {
    let mnt = try smallDisk("128k")
    defer { unmount(mnt) }
    let (rc, out, err) = try run(
      [
        "run", CLITests.repo.appendingPathComponent("Jobs/dry-run-fixed.yaml").path, "--out",
        "\(mnt)/r", "--no-progress", "--no-db",
      ],
      in: mnt)
    #expect(rc == 125, "exit \(rc)\n\(out)\n\(err)")
    #expect((out + err).contains("No space left"), "\(out)\n\(err)")
    // The timeline holds whole lines up to the fill (a cut last line at most).
    let timeline = (try? String(contentsOfFile: "\(mnt)/r/timeline.jsonl", encoding: .utf8)) ?? ""
    let lines = timeline.split(separator: "\n")
    #expect(lines.count > 100, "\(lines.count) lines")
    #expect(
      lines.dropLast().allSatisfy {
        (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil
      })
    if let data = FileManager.default.contents(atPath: "\(mnt)/r/run.json") {
      let j = try JSONSerialization.jsonObject(with: data) as? [String: Any]
      #expect(!["pass", "bug"].contains(j?["verdict"] as? String ?? ""), "\(j ?? [:])")
    }
  }

  @Test func outIsAFileOrANonEmptyDirectory() throws {
    let dir = try scratch(["taken": "x"])
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let job = CLITests.repo.appendingPathComponent("Jobs/dry-run.yaml").path
    let (rc, out, err) = try run(["run", job, "--out", "\(dir)/taken", "--no-progress"], in: dir)
    #expect(
      rc == 2 && err.contains("a file of that name exists") && out.isEmpty, "\(rc) \(out) \(err)")
    // A directory that holds files: refused the same way (nothing in it touched, no NSError).
    try FileManager.default.createDirectory(
      atPath: "\(dir)/full", withIntermediateDirectories: true)
    try "kept".write(toFile: "\(dir)/full/notes.txt", atomically: true, encoding: .utf8)
    let (rc2, out2, err2) = try run(["run", job, "--out", "\(dir)/full", "--no-progress"], in: dir)
    #expect(
      rc2 == 2 && err2.contains("already holds files") && out2.isEmpty
        && !err2.contains("NSError") && !err2.contains("Domain="), "\(rc2) \(out2) \(err2)")
    #expect(try String(contentsOfFile: "\(dir)/full/notes.txt", encoding: .utf8) == "kept")
    #expect(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/full") == ["notes.txt"])
  }

  /// Guests that never reported a page over the whole time budget (a host too slow for the
  /// load) tested nothing of memory: could not test (125), not pass. Without writers, or
  /// bounded by a resize count, the same run passes.
  @Test func aRunThatVerifiedNoPageCouldNotTest() throws {
    let silent = job(extra: "memory_load: {pages_per_report: 1000000}")
    let dir = try scratch([
      "silent.yaml": silent,
      "idle.yaml": job(extra: "memory_load: {guest_writers: false}"),
    ])
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (rc, _, err) = try run(["run", "silent.yaml", "--no-progress", "--out", "r1"], in: dir)
    #expect(rc == 125, "\(err)")
    let report = try runJSON("\(dir)/r1/run.json")
    #expect(report["verdict"] as? String == "error")
    #expect((report["error"] as? String ?? "").contains("verified no page"), "\(report)")
    let (rc2, _, err2) = try run(["run", "idle.yaml", "--no-progress", "--out", "r2"], in: dir)
    #expect(rc2 == 0, "\(err2)")
    let (rc3, _, err3) = try run(
      ["run", "silent.yaml", "--resizes", "3", "--no-progress", "--out", "r3"], in: dir)
    #expect(rc3 == 0, "\(err3)")
  }

  // MARK: options and job values

  @Test func hugeDurationsAreUsageErrors() throws {
    let dir = try scratch([
      "long.yaml": job().replacingOccurrences(of: "duration_s: 1", with: "duration_s: 1e30")
    ])
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (rc1, _, err1) = try run(["run", "long.yaml", "--no-progress"], in: dir)
    #expect(rc1 == 2 && err1.contains("budget.duration_s"), "\(rc1) \(err1)")
    let job = CLITests.repo.appendingPathComponent("Jobs/dry-run.yaml").path
    let (rc2, _, err2) = try run(
      ["run", job, "--duration", "999999999999h", "--no-progress"], in: dir)
    #expect(rc2 == 2 && err2.contains("--duration"), "\(rc2) \(err2)")
  }

  /// The walk starts at the boot order: one outside resize.orders (QEMU's default for the
  /// memory) is refused at load; and a simulator too big for this machine is refused too.
  @Test func ordersAndSimulatorMemoryAreBoundedAtLoad() throws {
    let dir = try scratch([
      "high.yaml": job().replacingOccurrences(of: "orders: [19, 23]", with: "orders: [45, 46]"),
      "big.yaml": job(extra: "").replacingOccurrences(
        of: "orders: [19, 23]", with: "orders: [20, 34]"
      )
      .replacingOccurrences(of: "vcpus: 1}", with: "vcpus: 1, hpt_order: 34}"),
    ])
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (rc1, _, err1) = try run(["run", "high.yaml", "--no-progress"], in: dir)
    #expect(
      rc1 == 2 && err1.contains("guests.memory_mib") && err1.contains("45...46"), "\(rc1) \(err1)")
    let (rc2, _, err2) = try run(["run", "big.yaml", "--no-progress"], in: dir)
    #expect(rc2 == 2 && err2.contains("resize.orders") && err2.contains("MiB"), "\(rc2) \(err2)")
  }

  @Test func seedsDoNotWrap() throws {
    let job = CLITests.repo.appendingPathComponent("Jobs/dry-run.yaml").path
    let (rc, _, err) = try run(
      ["run", job, "--seed", "18446744073709551615", "--seeds", "2", "--no-progress"], in: "/tmp")
    #expect(rc == 2 && err.contains("wrap"), "\(rc) \(err)")
  }

  @Test func duplicateKeysAndSecondDocumentsNameTheirLine() throws {
    let dir = try scratch([
      "dup.yaml": "name: a\nseed: 1\nname: b\n", "multi.yaml": "name: a\n---\nname: b\n",
    ])
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (rc1, _, err1) = try run(["run", "dup.yaml"], in: dir)
    #expect(rc1 == 2 && err1.contains("dup.yaml:3:") && err1.contains("'name'"), "\(err1)")
    let (rc2, _, err2) = try run(["run", "multi.yaml"], in: dir)
    #expect(rc2 == 2 && err2.contains("multi.yaml:2:") && err2.contains("document"), "\(err2)")
  }

  @Test func libvirtRefusesPoliciesTheAgentCannotDoEvenFromTheCommandLine() throws {
    let job = CLITests.repo.appendingPathComponent("Jobs/lab-raw.yaml").path
    let (rc, _, err) = try run(["run", job, "--backend", "libvirt", "--no-progress"], in: "/tmp")
    #expect(rc == 2 && err.contains("resize.policy"), "\(rc) \(err)")
  }

  // MARK: output

  /// --json: stdout is JSON only, one run.json per line (per seed); the summary is on stderr.
  @Test func jsonStdoutIsJSONLinesOnly() throws {
    let dir = try scratch(["j.yaml": job()])
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (rc, out, err) = try run(
      ["run", "j.yaml", "--json", "--seeds", "2", "--no-progress"], in: dir)
    #expect(rc == 0, "\(err)")
    let lines = out.split(separator: "\n")
    #expect(lines.count == 2, "\(out)")
    for l in lines {
      let obj = try JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any]
      #expect(obj?["verdict"] as? String == "pass")
    }
    #expect(err.contains("End of run") && err.contains("Seeds:"))
  }

  /// The reproduce line is pasted into shells: a job file named like a command substitution
  /// must come back as one word and run nothing.
  @Test func theReproduceLineIsShellQuoted() throws {
    let name = "x$(touch pwned) y'q.yaml"
    let dir = try scratch([name: job()])
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (rc, _, err) = try run(["run", name, "--out", "r", "--no-progress"], in: dir)
    #expect(rc == 0, "\(err)")
    let repro = try #require(try runJSON("\(dir)/r/run.json")["reproduce"] as? String)
    let (_, words, _) = try exec(
      ["/bin/sh", "-c", "set -- \(repro); printf '%s\\n' \"$3\""], in: dir)
    #expect(words == name + "\n", "\(repro) -> \(words)")
    #expect(!FileManager.default.fileExists(atPath: "\(dir)/pwned"))
  }
}
