import Foundation
import Testing

/// run.json's hpthammer_commit for an installed binary (no git work tree above it): the commit
/// its install step wrote to PREFIX/share/hpthammer/commit, or $HPTHAMMER_COMMIT.
@Suite struct HarnessCommitTests {
  let cli = CLITests()

  func commit(prefix: String, env: [String: String]) throws -> String? {
    let out = prefix + "/r-\(UUID().uuidString)"
    let p = Process()
    p.environment = CLITests.environment.merging(env) { _, b in b }
    p.executableURL = URL(fileURLWithPath: prefix + "/bin/hpthammer")
    p.arguments = [
      "run", CLITests.repo.appendingPathComponent("Jobs/dry-run.yaml").path, "--out", out,
      "--no-db", "--no-progress",
    ]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    let j = try JSONSerialization.jsonObject(
      with: Data(contentsOf: URL(fileURLWithPath: out + "/run.json")))
    let prov = (j as? [String: Any])?["provenance"] as? [String: Any]
    return prov?["hpthammer_commit"] as? String
  }

  @Test func anInstalledBinaryNamesItsCommit() throws {
    let prefix = cli.tmp()
    defer { try? FileManager.default.removeItem(atPath: prefix) }
    let fm = FileManager.default
    try fm.createDirectory(atPath: prefix + "/bin", withIntermediateDirectories: true)
    try fm.copyItem(atPath: cli.binary.path, toPath: prefix + "/bin/hpthammer")
    // Installed without the commit file: none claimed.
    #expect(try commit(prefix: prefix, env: [:]) == nil)
    try fm.createDirectory(atPath: prefix + "/share/hpthammer", withIntermediateDirectories: true)
    let sha = "0123456789abcdef0123456789abcdef01234567"
    try (sha + "\n").write(
      toFile: prefix + "/share/hpthammer/commit", atomically: true, encoding: .utf8)
    #expect(try commit(prefix: prefix, env: [:]) == sha)
    #expect(try commit(prefix: prefix, env: ["HPTHAMMER_COMMIT": "deadbeef"]) == "deadbeef")
  }
}
