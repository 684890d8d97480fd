import Foundation
import Testing

/// What the README promises a new user, checked against what the commands print.
@Suite struct ReadmeTests {
  /// The indented block after `marker` in README.md, its 4-space indent removed.
  static func sample(after marker: String) throws -> [String] {
    let readme = try String(
      contentsOf: CLITests.repo.appendingPathComponent("README.md"), encoding: .utf8)
    let lines = readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    guard let at = lines.firstIndex(where: { $0.contains(marker) }) else {
      throw CocoaError(.fileReadCorruptFile, userInfo: ["missing": marker])
    }
    return Array(
      lines[(at + 1)...].drop { $0.isEmpty }.prefix { $0.hasPrefix("    ") }.map {
        String($0.dropFirst(4))
      })
  }

  /// Matches the sample against the output in order: a sample line `...` skips any lines, a
  /// sample line ending in `...` matches a line that starts with the rest. Returns what failed.
  static func mismatch(sample: [String], output: [String]) -> String? {
    var i = 0
    var skipping = false
    for want in sample {
      if want.trimmingCharacters(in: .whitespaces) == "..." {
        skipping = true
        continue
      }
      let matches: (String) -> Bool =
        want.hasSuffix("...") ? { $0.hasPrefix(want.dropLast(3)) } : { $0 == want }
      while i < output.count && !matches(output[i]) {
        if !skipping { return "README: \(want)\nprinted: \(output[i])" }
        i += 1
      }
      guard i < output.count else { return "README: \(want)\nnot printed" }
      i += 1
      skipping = false
    }
    return nil
  }

  @Test func mismatchFindsAChangedFigure() {
    let out = ["a", "  resizes: attempted 2", "x", "run directory: runs/d-1"]
    #expect(
      Self.mismatch(
        sample: ["a", "  resizes: attempted 2", "...", "run directory: runs/d-..."], output: out)
        == nil)
    #expect(Self.mismatch(sample: ["a", "  resizes: attempted 6"], output: out) != nil)
    #expect(Self.mismatch(sample: ["a", "...", "missing"], output: out) != nil)
  }

  /// The two-commands section's dry-run sample is what `scripts/dry-run.sh` prints (the same
  /// command, run from a scratch directory so the run directory lands there).
  @Test func dryRunSampleIsWhatTheDryRunPrints() throws {
    let sample = try Self.sample(after: "prints something like:")
    #expect(sample.count >= 5, "no dry-run sample found in README.md")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "hpthammer-readme-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(
      at: dir.appendingPathComponent("Jobs"), withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try FileManager.default.copyItem(
      at: CLITests.repo.appendingPathComponent("Jobs/dry-run.yaml"),
      to: dir.appendingPathComponent("Jobs/dry-run.yaml"))
    let p = Process()
    p.environment = CLITests.environment
    p.executableURL = CLITests().binary
    p.arguments = ["run", "Jobs/dry-run.yaml", "--no-progress"]
    p.currentDirectoryURL = dir
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    #expect(p.terminationStatus == 1, "the dry run should find the seed's bug (exit 1)")
    let printed = text.split(separator: "\n").map(String.init)
    let failure = Self.mismatch(sample: sample, output: printed)
    #expect(failure == nil, "\(failure ?? "")\n--- the dry run printed:\n\(text)")
  }
}
