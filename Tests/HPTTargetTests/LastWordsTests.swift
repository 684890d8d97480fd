import Foundation
import KernelLog
import Testing

@testable import HPTEngine
@testable import HPTTarget

/// The last words of a crashed host: the collection script's sections, and the detector on
/// each source (a pstore dump in parts, a journal, a vmcore-dmesg).
@Suite struct LastWordsTests {
  /// The seed's oops as the kernel logged it (timestamped lines of the fixture).
  func seedOops() throws -> [String] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent(
        "KernelLogTests/Fixtures/001-ppc-seed-paging.log")
    let text = try String(contentsOf: url, encoding: .utf8)
    return text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("[") }
  }

  @Test func eachSourceIsReadAndScannedOrSaidAbsent() throws {
    let lines = try seedOops()
    #expect(lines.count > 10)
    let half = lines.count / 2
    // pstore splits a dump into parts, Part1 holding the end of the log.
    let part2 = "Oops#1 Part2\n" + lines[..<half].map { "<4>" + $0 }.joined(separator: "\n")
    let part1 = "Oops#1 Part1\n" + lines[half...].map { "<4>" + $0 }.joined(separator: "\n")
    let output = """
      @@source pstore
      @@file dmesg-nvram-1
      \(part1)
      @@file dmesg-nvram-2
      \(part2)
      @@source journal
      @@absent no journal of the previous boot (is the journal persistent?)
      @@source vmcore-dmesg
      @@file /var/crash/202612040900/vmcore-dmesg.txt
      \(lines.joined(separator: "\n"))

      """
    let sources = LastWords.parse(output)
    #expect(sources.map(\.name) == ["pstore", "journal", "vmcore-dmesg"])
    #expect(sources[1].text == nil)
    #expect(sources[1].absent == "no journal of the previous boot (is the journal persistent?)")
    let title = "BUG: unable to handle kernel paging request in kvmppc_add_revmap_chain"
    for s in [sources[0], sources[2]] {
      let reports = LastWords.reports(in: s, host: "lab")
      #expect(reports.map(\.title) == [title], "\(s.name): \(reports.map(\.title))")
      #expect(reports.first?.frame == "kvmppc_add_revmap_chain")
    }
    // A pstore holding only the first half (the end lost) still yields the oops's header.
    let cut = LastWords.Source(
      name: "pstore", text: "@@file dmesg-ramoops-0\n" + part2, absent: nil)
    #expect(!LastWords.reports(in: cut, host: "lab").isEmpty)
    #expect(LastWords.reports(in: sources[1], host: "lab").isEmpty)
  }

  @Test func theScriptRunsUnderAPlainShell() throws {
    // On this machine: whatever it has, every source answers (text or a reason), and sh
    // accepts the script (a syntax error would leave sections missing).
    let r = HostCommand.run(["sh", "-n", "-c", LastWords.script], timeoutS: 10)
    #expect(r.ok, "\(r.stderr)")
  }
}
