import Foundation
import Testing

/// The real parts the store's and the report's tests run against: a PostgreSQL server, Debian's
/// chromium and the PyPI validators. Each of those tests skips, saying why, where a tool cannot
/// be had; with HPTHAMMER_REQUIRE_TOOLS=1 (scripts/test.sh as root, where it installs them all,
/// so in CI) a missing one is a failure here instead, so CI cannot pass on skipped checks.
@Suite struct ToolsTests {
  static let required = ProcessInfo.processInfo.environment["HPTHAMMER_REQUIRE_TOOLS"] == "1"

  @Test(.enabled(if: required, "HPTHAMMER_REQUIRE_TOOLS is not 1 (not scripts/test.sh as root)"))
  func theTestCommandHasEveryRealTool() throws {
    #expect(
      BackendTests.postgres != nil,
      "no PostgreSQL server for the store's tests (scripts/ensure-postgres.sh did not start one)")
    #expect(
      FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"),
      "no /usr/bin/chromium for the report's browser test (scripts/ensure-chromium.sh)")
    if case .failure(let why) = PyTools.venv {
      Issue.record("the PyPI validators are missing: \(why.description)")
    }
  }
}
