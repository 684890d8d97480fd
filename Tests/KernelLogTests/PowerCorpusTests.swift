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
    #expect(frame.rate >= 0.728)
    // Never worse than grep: every crash a plain grep sees, the detector reports.
    #expect(worseThanGrep.isEmpty)
  }
}
