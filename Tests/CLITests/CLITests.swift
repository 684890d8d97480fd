import Foundation
import Testing

/// The command line end to end: exit codes and the run directory, through the real binary.
@Suite struct CLITests {
  static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

  var binary: URL {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for dir in [
      here, here.deletingLastPathComponent(), Self.repo.appendingPathComponent(".build/debug"),
    ] {
      let b = dir.appendingPathComponent("hpthammer")
      if FileManager.default.isExecutableFile(atPath: b.path) { return b }
    }
    return Self.repo.appendingPathComponent(".build/debug/hpthammer")
  }

  func hpthammer(_ args: [String]) throws -> (Int32, String, String) {
    try Self.exec([binary.path] + args, in: Self.repo.path)
  }

  /// The environment of every hpthammer the tests start: `hpthammer run` records each run in
  /// the results database, and the tests' runs go to one of their own (a temporary
  /// XDG_DATA_HOME, one per test process), never the user's ~/.local/share.
  static let environment: [String: String] = {
    var env = ProcessInfo.processInfo.environment
    env["XDG_DATA_HOME"] =
      FileManager.default.temporaryDirectory.appendingPathComponent(
        "hpthammer-tests-\(getpid())"
      ).path
    env["HPTHAMMER_DB"] = nil
    return env
  }()

  /// Runs argv[0] in `dir`; returns its exit status, stdout and stderr.
  static func exec(_ argv: [String], in dir: String) throws -> (Int32, String, String) {
    let p = Process()
    p.environment = CLITests.environment
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    p.currentDirectoryURL = URL(fileURLWithPath: dir)
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (
      p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self)
    )
  }

  func tmp() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent(
      "hpthammer-cli-\(UUID().uuidString)"
    ).path
  }

  @Test func dryRunFindsTheSeedBugAndExits1() throws {
    let dir = tmp()
    let (code, out, _) = try hpthammer(["run", "Jobs/dry-run.yaml", "--out", dir, "--no-progress"])
    #expect(code == 1)
    #expect(out.contains("BUG: unable to handle kernel paging request in kvmppc_add_revmap_chain"))
    for f in ["run.json", "host.log", "junit.xml", "crash-1.txt"] {
      #expect(FileManager.default.fileExists(atPath: dir + "/" + f), "\(f) missing")
    }
    let json =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: dir + "/run.json"))) as! [String: Any]
    #expect(json["verdict"] as? String == "bug")
    #expect(json["seed"] as? Int == 1)
    #expect(json["kernel"] as? String == "4.14.0-rc4")
    let resizes = json["resizes"] as! [String: Int]
    #expect(
      Set(resizes.keys) == ["attempted", "succeeded", "failed_expected", "failed_unexpected"])
    let crash = (json["crashes"] as! [[String: Any]])[0]
    #expect(crash["frame"] as? String == "kvmppc_add_revmap_chain")
    let junit = try String(contentsOfFile: dir + "/junit.xml", encoding: .utf8)
    #expect(junit.contains("<failure"))
  }

  @Test func fixedKernelPassesAndExits0() throws {
    let (code, out, _) = try hpthammer([
      "run", "Jobs/dry-run-fixed.yaml", "--out", tmp(), "--duration", "3s", "--no-progress",
    ])
    #expect(code == 0)
    #expect(out.contains("End of run: SUCCESS"))
  }

  @Test func usageErrorsExit2() throws {
    let bad = tmp() + ".yaml"
    try "guests:\n  memroy_mib: 5\n".write(toFile: bad, atomically: true, encoding: .utf8)
    let (c1, _, e1) = try hpthammer(["run", bad])
    #expect(c1 == 2)
    #expect(e1.contains(":2: guests.memroy_mib"))
    let (c2, _, e2) = try hpthammer(["run", "Jobs/dry-run.yaml", "--kernel", "5.99"])
    #expect(c2 == 2 && e2.contains("allowed:"))
    let (c3, _, _) = try hpthammer(["run"])
    #expect(c3 == 2)
    let (c4, _, e4) = try hpthammer(["run", "Jobs/dry-run.yaml", "--duration", "soon"])
    #expect(c4 == 2 && e4.contains("--duration"))
  }

  @Test func existingRunDirectoryIsNeverOverwritten() throws {
    let dir = tmp()
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try "keep me".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
    let (code, _, err) = try hpthammer(["run", "Jobs/dry-run.yaml", "--out", dir, "--no-progress"])
    #expect(code == 2)
    #expect(err.contains("already holds files"))
    #expect(try String(contentsOfFile: dir + "/notes.txt", encoding: .utf8) == "keep me")
  }

  @Test func severalSeedsOneDirectoryEach() throws {
    let dir = tmp()
    let (code, out, _) = try hpthammer([
      "run", "Jobs/dry-run.yaml", "--seed", "5", "--seeds", "3", "--out", dir, "--no-progress",
    ])
    #expect(code == 1)
    for seed in 5...7 {
      #expect(FileManager.default.fileExists(atPath: "\(dir)/seed-\(seed)/run.json"))
      #expect(out.contains("seed \(seed): bug"))
    }
  }

  /// Ctrl-C: the run stops, writes its results, and says it could not finish (125).
  @Test func interruptWritesResultsAndExits125() throws {
    let dir = tmp()
    let p = Process()
    p.environment = CLITests.environment
    p.executableURL = binary
    p.arguments = [
      "run", "Jobs/dry-run-fixed.yaml", "--duration", "1h", "--out", dir, "--no-progress",
    ]
    p.currentDirectoryURL = Self.repo
    p.standardOutput = Pipe()
    p.standardError = Pipe()
    try p.run()
    // Wait until the run is under way (progress.log appears once the agents start).
    for _ in 0..<100 where !FileManager.default.fileExists(atPath: dir + "/progress.log") {
      Thread.sleep(forTimeInterval: 0.1)
    }
    Thread.sleep(forTimeInterval: 1.5)
    kill(p.processIdentifier, SIGINT)
    p.waitUntilExit()
    #expect(p.terminationStatus == 125)
    let json =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: dir + "/run.json"))) as! [String: Any]
    #expect(json["verdict"] as? String == "error")
    #expect((json["error"] as? String)?.contains("interrupted") == true)
    let log = try String(contentsOfFile: dir + "/progress.log", encoding: .utf8)
    #expect(log.contains("hpthammer: elapsed="))
  }

  /// A libvirt URI nobody answers: exit 125 naming the URI and the fix (no daemon needed).
  @Test func unreachableLibvirtExits125() throws {
    let dir = tmp()
    let (code, out, _) = try hpthammer([
      "run", "Jobs/ci/unreachable-libvirt.yaml", "--out", dir, "--no-progress",
    ])
    #expect(code == 125)
    #expect(out.contains("connecting to qemu+unix:///system?socket=/nonexistent/libvirt-sock"))
    #expect(out.contains("libvirtd running?"))
  }

  /// The raw VMM over the simulated kernel: the seed's oops on the pre-fix model (exit 1), a
  /// pass on the fixed one (exit 0), the reproduce line naming backend and kernel.
  @Test func rawSimFindsTheSeedBugAndPassesTheFix() throws {
    let dir = tmp()
    let (code, out, _) = try hpthammer([
      "run", "Jobs/raw-sim-dry-run.yaml", "--out", dir, "--no-progress",
    ])
    #expect(code == 1)
    #expect(out.contains("BUG: unable to handle kernel paging request in kvmppc_add_revmap_chain"))
    #expect(out.contains("--backend raw-sim --seed 1 --kernel 4.14.0-rc4"))
    let json =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: dir + "/run.json"))) as! [String: Any]
    #expect(json["backend"] as? String == "raw-sim")
    let (fixed, fout, _) = try hpthammer([
      "run", "Jobs/raw-sim-dry-run.yaml", "--kernel", "6.1", "--duration", "3s", "--out", tmp(),
      "--no-progress",
    ])
    #expect(fixed == 0, "\(fout)")
    #expect(fout.contains("End of run: SUCCESS"))
  }

  /// `--backend raw` on this machine's /dev/kvm: an x86 KVM has no HPT resizing, so the run
  /// cannot test (125) and says which capability is missing.
  @Test(
    .enabled(
      if: FileManager.default.isWritableFile(atPath: "/dev/kvm")
        && FileManager.default.isReadableFile(atPath: "/dev/kmsg"),
      "no usable /dev/kvm or /dev/kmsg"))
  func rawBackendWithoutHPTResizingExits125() throws {
    #if arch(x86_64) || arch(arm64)
      let dir = tmp()
      let (code, out, err) = try hpthammer([
        "run", "Jobs/dry-run.yaml", "--backend", "raw", "--out", dir, "--no-progress",
      ])
      #expect(code == 125, "\(out)\(err)")
      #expect(out.contains("KVM_CAP_SPAPR_RESIZE_HPT is 0"), "\(out)")
      let json =
        try JSONSerialization.jsonObject(
          with: Data(contentsOf: URL(fileURLWithPath: dir + "/run.json"))) as! [String: Any]
      #expect(json["verdict"] as? String == "error")
      #expect(json["backend"] as? String == "raw")
    #endif
  }

  @Test func unknownBackendIsAUsageErrorListingTheRawOnes() throws {
    let (code, _, err) = try hpthammer(["run", "Jobs/dry-run.yaml", "--backend", "rawsim"])
    #expect(code == 2)
    #expect(err.contains("allowed: sim, libvirt, raw, raw-sim"), "\(err)")
  }

  /// Every option with a fixed set of values (CLIChoice) refuses another one the same way:
  /// exit 2, the option named, the allowed values listed.
  @Test func choiceOptionsNameTheOptionAndTheAllowedValues() throws {
    for (args, option, allowed) in [
      (["run", "Jobs/dry-run.yaml", "--target", "remote"], "--target", "allowed: local, lab"),
      (
        ["verdict", "Jobs/dry-run.yaml", "--base", "6.1", "--patched", "6.1", "--backend", "kvm"],
        "--backend", "allowed: sim, libvirt, raw, raw-sim"
      ),
      (["results", "--verdict", "maybe"], "--verdict", "allowed: pass, bug, error"),
    ] {
      let (code, out, err) = try hpthammer(args)
      #expect(code == 2 && out.isEmpty, "\(args)")
      #expect(err.contains(option) && err.contains(allowed), "\(err)")
    }
  }

  @Test func simKernelsListsModelsAndFixes() throws {
    let (code, out, _) = try hpthammer(["sim", "kernels"])
    #expect(code == 0)
    #expect(out.contains("38c53af85306"))
    #expect(out.contains("4.14.0-rc4"))
  }

  @Test func scanFindsTheSeedOops() throws {
    let seed = Self.repo.deletingLastPathComponent().appendingPathComponent(
      "shared/seeds/hpt-resize-exclusion-fix.txt")
    guard FileManager.default.fileExists(atPath: seed.path) else { return }
    let (code, out, _) = try hpthammer(["scan", "--json", seed.path])
    #expect(code == 1)
    #expect(out.contains("kvmppc_add_revmap_chain"))
  }
}
