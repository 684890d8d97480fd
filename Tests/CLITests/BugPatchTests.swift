import Foundation
import Testing

/// Guests/lab/bugs: each bug comes as a plain patch (the bug brought back) and a canary
/// variant, which must differ from it only by the canary lines (Magma's rule: the canary
/// changes nothing else), and print the bug's own id.
@Suite struct BugPatchTests {
  static let dir = CLITests.repo.appendingPathComponent("Guests/lab/bugs")

  /// The patch's changed lines, without the hunk headers (whose line numbers differ).
  static func changes(_ text: String) -> [String] {
    text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter {
      ($0.hasPrefix("+") || $0.hasPrefix("-")) && !$0.hasPrefix("+++") && !$0.hasPrefix("---")
    }
  }

  static func bugs() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: dir.path)
      .filter { $0.hasSuffix("-canary.patch") }.map { String($0.dropLast("-canary.patch".count)) }
      .sorted()
  }

  @Test func everyBugHasAPlainAndACanaryPatchThatDifferOnlyByTheCanary() throws {
    let ids = try Self.bugs()
    #expect(ids.count >= 4, "\(ids)")
    for id in ids {
      let canary = try String(
        contentsOf: Self.dir.appendingPathComponent("\(id)-canary.patch"), encoding: .utf8)
      let plain = try String(
        contentsOf: Self.dir.appendingPathComponent("\(id).patch"), encoding: .utf8)
      let marked = Self.changes(canary).filter { $0.contains("/* hpthammer-canary */") }
      #expect(!marked.isEmpty, "\(id): no canary line")
      #expect(marked.allSatisfy { $0.hasPrefix("+") }, "\(id): a canary line removes code")
      #expect(
        Self.changes(canary).filter { !$0.contains("/* hpthammer-canary */") }
          == Self.changes(plain), "\(id): the canary patch changes more than the canary")
      let prints = marked.filter { $0.contains("hpthammer-canary: ") }
      #expect(
        prints.contains { $0.contains("hpthammer-canary: \(id) triggered") }
          || (id == "B3" && prints.contains { $0.contains("B0a triggered") }),
        "\(id): the canary does not name its bug: \(prints)")
      #expect(!Self.changes(plain).contains { $0.contains("hpthammer-canary") })
      // The header says which fix it undoes and what it expects.
      for field in ["Bug:", "Fix:", "Undoes:", "Expected:", "Canary:"] {
        #expect(plain.contains("\n\(field)"), "\(id).patch: no '\(field)' in its header")
      }
    }
  }
}
