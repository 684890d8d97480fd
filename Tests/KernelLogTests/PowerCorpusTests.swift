import Foundation
import Testing

@testable import KernelLog

/// The detector on real powerpc logs from linuxppc-dev and kvm-ppc posts
/// (../shared/corpus/power-linux: KIND and FRAME per case, labelling rules in its README),
/// measured kind by kind, and against the plain grep over oops header lines that a user
/// would otherwise run.
@Suite struct PowerCorpusTests {
  static let directory = CorpusLocation.repoRoot.deletingLastPathComponent()
    .appendingPathComponent("shared/corpus/power-linux/cases")
  static var available: Bool { FileManager.default.fileExists(atPath: directory.path) }

  /// `grep -E 'BUG:|WARNING:|...'`, the baseline, line by line.
  static let grepHeaders = [
    "BUG:", "WARNING:", "INFO:", "Unable to handle kernel", "general protection fault",
    "Kernel panic", "kernel BUG", "Oops:", "watchdog:", "Watchdog", "UBSAN:", "divide error:",
    "invalid opcode:", "Internal error:",
  ]

  static func grepFinds(_ log: [UInt8]) -> Bool {
    let text = String(decoding: log, as: UTF8.self)
    return grepHeaders.contains { text.contains($0) }
  }

  @Test(.enabled(if: available, "shared power-linux corpus not present"))
  func powerCorpusAgreementByKind() throws {
    let cases = CorpusCase.load(Self.directory)
    #expect(cases.count >= 250)
    let detector = CrashDetector()
    var crash = Agreement()
    var frame = Agreement()
    var grep = Agreement()
    var byKind: [String: (crash: Agreement, frame: Agreement)] = [:]
    var worseThanGrep: [String] = []
    for c in cases {
      let kind = c.value("KIND") ?? "?"
      let positive = kind != "none"
      let got = detector.scan(c.log).first
      let grepSays = Self.grepFinds(c.log)
      crash.count((got != nil) == positive)
      grep.count(grepSays == positive)
      byKind[kind, default: (Agreement(), Agreement())].crash.count((got != nil) == positive)
      if positive && got == nil && grepSays { worseThanGrep.append(c.name) }
      if positive, let want = c.value("FRAME"), want != "-" {
        frame.count(got?.frame == want)
        byKind[kind, default: (Agreement(), Agreement())].frame.count(got?.frame == want)
      }
    }
    print("power-linux: \(cases.count) cases")
    print("crash-or-not agreement: \(crash.text) (grep: \(grep.text))")
    print("frame agreement: \(frame.text)")
    for (kind, a) in byKind.sorted(by: { $0.value.crash.total > $1.value.crash.total }) {
      print("  \(kind): crash \(a.crash.text), frame \(a.frame.text)")
    }
    print("crashes grep sees and the detector misses: \(worseThanGrep.count) \(worseThanGrep)")
    // Thresholds from measured agreement; raise them as the detector improves.
    #expect(crash.rate >= 0.995)
    #expect(frame.rate >= 0.96)
    // Never worse than grep: every crash a plain grep sees, the detector reports.
    #expect(worseThanGrep.isEmpty)
  }

  /// The same logs as they reach people: wrapped at 80 columns, indented, with printk level
  /// prefixes, quoted in a mail reply, with CRLF line ends. Every crash a plain grep still sees
  /// is found, and the frame agreement stays near the undamaged one.
  @Test(
    .enabled(if: available, "shared power-linux corpus not present"),
    arguments: [
      ("wrap80", 0.94), ("indent", 0.94), ("level", 0.96), ("quote", 0.96), ("crlf", 0.96),
    ])
  func damagedLogs(_ damage: String, _ minimumFrameRate: Double) throws {
    let cases = CorpusCase.load(Self.directory).filter { $0.value("KIND") != "none" }
    let detector = CrashDetector()
    var crash = Agreement()
    var frame = Agreement()
    var worseThanGrep: [String] = []
    for c in cases {
      let log = Self.damaged(String(decoding: c.log, as: UTF8.self), damage)
      let got = detector.scan(log).first
      crash.count(got != nil)
      if got == nil, Self.grepFinds(Array(log.utf8)) { worseThanGrep.append(c.name) }
      if let want = c.value("FRAME"), want != "-" { frame.count(got?.frame == want) }
    }
    print("power-linux, \(damage): crash \(crash.text), frame \(frame.text)")
    #expect(worseThanGrep.isEmpty, "\(damage): \(worseThanGrep)")
    #expect(crash.rate == 1)
    #expect(frame.rate >= minimumFrameRate)
  }

  static func damaged(_ log: String, _ damage: String) -> String {
    let lines = log.split(separator: "\n", omittingEmptySubsequences: false)
    switch damage {
    case "wrap80":
      return lines.map { line -> String in
        var pieces: [Substring] = []
        var rest = line[...]
        while rest.count > 80 {
          pieces.append(rest.prefix(80))
          rest = rest.dropFirst(80)
        }
        pieces.append(rest)
        return pieces.joined(separator: "\n")
      }.joined(separator: "\n")
    case "indent": return lines.map { "   " + $0 }.joined(separator: "\n")
    case "level": return lines.map { "<4>" + $0 }.joined(separator: "\n")
    case "quote": return lines.map { "> " + $0 }.joined(separator: "\n")
    case "crlf": return lines.map { $0 + "\r" }.joined(separator: "\n")
    default: return log
    }
  }
}
