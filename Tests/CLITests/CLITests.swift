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
    let p = Process()
    p.executableURL = binary
    p.arguments = args
    p.currentDirectoryURL = Self.repo
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
