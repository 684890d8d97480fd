import Foundation
import Testing

/// The shell recipes a new user runs (Guests/, scripts/, ci/), read as text.
@Suite struct ScriptsTests {
  static let repo = CLITests.repo

  /// Every shell script of the project, with its text.
  static func scripts() throws -> [(String, String)] {
    var found: [(String, String)] = []
    for dir in ["Guests", "scripts", "ci", ".ci"] {
      let root = repo.appendingPathComponent(dir)
      guard let e = FileManager.default.enumerator(atPath: root.path) else { continue }
      for case let rel as String in e {
        let path = root.appendingPathComponent(rel).path
        let isShell = rel.hasSuffix(".sh") || rel == "run"
        guard isShell, let text = try? String(contentsOfFile: path, encoding: .utf8) else {
          continue
        }
        found.append(("\(dir)/\(rel)", text))
      }
    }
    return found
  }

  /// Under `set -o pipefail`, a reader that stops early (`head`, `grep -q`) kills its writer
  /// with SIGPIPE whenever the writer has more to say, and the pipeline fails at random (the
  /// lab recipe's `ldd | grep -q` failed 5 times in 30). Readers there must read to the end.
  @Test func pipefailScriptsHaveNoEarlyExitingReaders() throws {
    let early = try Regex(#"\|\s*(head\b|grep\s+-[a-zA-Z]*q)"#)
    var offenders: [String] = []
    let all = try Self.scripts()
    #expect(all.count > 10, "found only \(all.count) scripts under \(Self.repo.path)")
    for (name, text) in all where text.contains("pipefail") {
      for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let code = line.trimmingCharacters(in: .whitespaces)
        if code.hasPrefix("#") { continue }
        if code.contains(early) { offenders.append("\(name):\(i + 1): \(code)") }
      }
    }
    #expect(offenders.isEmpty, "\(offenders.joined(separator: "\n"))")
  }

  /// Guests/build.sh links the payload statically: the static ppc64el libc is only a Recommends
  /// of the cross compiler, so every install list that brings the compiler must name it.
  @Test func crossInstallListsNameTheStaticLibc() throws {
    let ensure = try String(
      contentsOf: Self.repo.appendingPathComponent("scripts/ensure-cross.sh"), encoding: .utf8)
    for pkg in ["gcc-powerpc64le-linux-gnu", "libc6-dev-ppc64el-cross", "dpkg-dev"] {
      #expect(ensure.contains(pkg), "scripts/ensure-cross.sh does not install \(pkg)")
    }
    // The scripts that build the guest image (directly, or through the lab recipe).
    for (name, text) in try Self.scripts()
    where !name.hasPrefix("Guests/") && name != "scripts/ensure-cross.sh"
      && (text.contains("bash Guests/build.sh") || text.contains("bash Guests/lab/build.sh"))
    {
      #expect(
        text.contains("source scripts/ensure-cross.sh"),
        "\(name) builds the guest image without sourcing scripts/ensure-cross.sh")
    }
  }
}
