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

  /// Every format of the table is exercised by a fixture or a corpus log, so none is dead.
  @Test(.enabled(if: CorpusLocation.available, "shared corpus not present"))
  func everyFormatMatchesSomeLog() {
    let detector = CrashDetector()
    var seen = Set<String>()
    for c in Fixtures.cases + CorpusCase.load(CorpusLocation.syzkaller) {
      for r in detector.scan(c.log) { seen.insert(r.patternID) }
    }
    let all = defaultOopsTable.flatMap { oops in oops.formats.map { oops.id + "/" + $0.id } }
    let missing = all.filter { !seen.contains($0) && !Self.withoutExample.contains($0) }
    if !missing.isEmpty { print("formats without an example: \(missing.joined(separator: " "))") }
    #expect(missing.isEmpty)
  }

  /// Formats with no log here yet: forms seen only when a console lost the line before
  /// (a header without its "BUG: " prefix, an Oops or machine check line alone), rare
  /// sanitizer and lockdep variants, and fallbacks for damaged headers. Shrink this list by
  /// adding fixtures; a new format must come with one.
  static let withoutExample: Set<String> = [
    "bug/kasan-invalid-free", "bug/kasan-corrupted", "bug/kfence", "bug/kcsan", "bug/ppc-unaligned",
    "bug/user-memory",
    "bug/fault-any", "bug/locks-held", "bug/lock-held-user", "bug/nr-ptes", "bug/workqueue-lockup",
    "bug/bug-empty", "warning/warn-file-at",
    "warning/kobject-warn", "warning/list-debug-warn", "warning/irq-inversion",
    "warning/recursive-locking",
    "warning/nested-lock2", "warning/warn-empty", "info/rcu-stall-old",
    "unable-to-handle/ppc-data-access",
    "unable-to-handle/ppc-data-access-old", "unable-to-handle/ppc-fetch",
    "unable-to-handle/ppc-unaligned",
    "unable-to-handle/paging-any", "unable-to-handle/fault-any", "stack-segment/stack-segment",
    "kernel-panic/panic-on-warn", "kernel-panic/machine-check-panic",
    "kernel-bug-x86/kernel-bug-addr",
    "invalid-opcode/invalid-opcode", "ubsan/ubsan", "soft-lockup-ppc/soft-lockup-old",
    "machine-check/ppc-machine-check-kernel", "machine-check/machine-check-exception",
    "checkstop/checkstop",
    "oops/oops-exception", "oops/oops-unrecoverable",
    // Cut headers: they start a report, which the header joined with its continuation titles
    // (fixtures 026-029 and power-linux logs wrapped by mail).
    "bug/kfence-wrapped", "warning/warn-at-wrapped", "ubsan/ubsan-wrapped",
    "hard-lockup/ppc-hard-lockup-self-wrapped",
  ]

  /// A live watcher must not wait for the next crash: reports end at "---[ end trace" and
  /// sanitizer reports at their closing "=====" rule.
  @Test(arguments: ["001-ppc-seed-paging.log", "009-ppc-kasan-uaf.log", "006-ppc-kernel-bug.log"])
  func reportsCompleteWithoutFinish(_ name: String) throws {
    let c = try #require(Fixtures.cases.first { $0.name == name })
    var scanner = StreamingCrashScanner()
    var reports: [CrashReport] = []
    for line in String(decoding: c.log, as: UTF8.self).split(separator: "\n") {
      reports += scanner.feed(line: String(line))
    }
    #expect(reports.count == 1, "\(name)")
    #expect(!scanner.crashInProgress)
  }

  /// `frames` is the first stack: KASAN's allocation and free stacks after "Allocated by
  /// task" are not part of it, whether the report was scanned or made from its text.
  @Test func framesAreTheFirstStackOnly() throws {
    let c = try #require(Fixtures.cases.first { $0.name == "009-ppc-kasan-uaf.log" })
    let report = try #require(CrashDetector().scan(c.log).first)
    let want = [
      "print_report", "kasan_report", "resize_hpt_prepare_work", "process_one_work",
      "worker_thread", "kthread", "ret_from_kernel_thread",
    ]
    #expect(report.frames == want)
    let fromText = CrashReport(
      kind: report.kind, type: report.type, title: report.title, report: report.report,
      start: report.start, end: report.end)
    #expect(fromText.frames == want)
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
