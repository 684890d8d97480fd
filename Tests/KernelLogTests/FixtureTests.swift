import Foundation
import Testing

@testable import KernelLog

/// HPTHammer's own cases: every powerpc crash form the harness must title right. Each file is a
/// "# source:" line, KEY: value expectations, a blank line and the log.
enum Fixtures {
  static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent(
      "Fixtures")
  static let cases: [CorpusCase] = CorpusCase.load(directory)
}

@Suite struct FixtureTests {
  @Test(arguments: Fixtures.cases)
  func fixture(_ c: CorpusCase) {
    let reports = CrashDetector().scan(c.log)
    guard let title = c.value("TITLE") else {
      #expect(reports.isEmpty, "\(c.name): expected no crash, got \(reports.map(\.title))")
      return
    }
    #expect(reports.count == 1, "\(c.name): \(reports.map(\.title))")
    guard let r = reports.first else { return }
    #expect(r.title == title, "\(c.name)")
    if let kind = c.value("KIND") { #expect(r.kind.rawValue == kind, "\(c.name)") }
    if let type = c.value("TYPE") { #expect(r.type == type, "\(c.name)") }
    if let frame = c.value("FRAME") { #expect(r.frame == frame, "\(c.name)") }
    if let cpu = c.value("CPU") { #expect(r.cpu == Int(cpu), "\(c.name)") }
    if let pid = c.value("PID") { #expect(r.pid == Int(pid), "\(c.name)") }
    if let comm = c.value("COMM") { #expect(r.comm == comm, "\(c.name)") }
    if let version = c.value("VERSION") { #expect(r.kernelVersion == version, "\(c.name)") }
    #expect(r.corrupted == (c.value("CORRUPTED") == "Y"), "\(c.name): \(r.corruptedReason ?? "")")
    // The byte range holds the report: re-scanning just that range gives the same title.
    let again = CrashDetector().scan(Array(c.log[r.start..<r.end]))
    #expect(again.first?.title == r.title, "\(c.name): rescan of [start, end)")
    // Streaming line by line finds the same reports at the same offsets.
    var scanner = StreamingCrashScanner()
    var streamed: [CrashReport] = []
    for line in String(decoding: c.log, as: UTF8.self).split(
      separator: "\n", omittingEmptySubsequences: false)
    {
      streamed += scanner.feed(line: String(line))
    }
    streamed += scanner.finish()
    #expect(streamed.map(\.title) == reports.map(\.title))
    #expect(streamed.map(\.start) == reports.map(\.start))
  }

  @Test func everyPowerKindHasAFixture() {
    let kinds = Set(Fixtures.cases.compactMap { $0.value("KIND") })
    for kind in [
      "pagingFault", "nullDeref", "bug", "warning", "kasan", "softLockup", "hardLockup", "rcuStall",
      "hungTask", "panic", "machineCheck",
    ] {
      #expect(kinds.contains(kind), "no fixture for \(kind)")
    }
  }
}
