import Testing

@testable import KernelLog

/// Input a kernel console can really produce after a crash: binary garbage, NULs, invalid
/// UTF-8, megabyte lines, headers cut mid-line. The scanner must not crash or grow.
@Suite struct HostileInputTests {
  @Test func megabyteLineWithHeaderAtItsEnd() {
    var log = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
    log += Array(" kernel BUG at mm/slub.c:1!\n".utf8)
    log += Array("NIP [c000000000001000] kmem_cache_free+0x10/0x20\n".utf8)
    let reports = CrashDetector().scan(log)
    #expect(reports.count == 1)
    #expect(reports.first?.start == 0)
    // Streaming caps the line it keeps, so the header beyond the cap is not seen; offsets
    // still count every byte.
    var scanner = StreamingCrashScanner()
    _ = log.withUnsafeBufferPointer { scanner.feed(chunk: $0) }
    _ = scanner.finish()
    #expect(scanner.offset == log.count)
  }

  @Test func nulsAndInvalidUTF8() {
    var log: [UInt8] = [0xff, 0xfe, 0x00, 0x0a, 0xc3, 0x28, 0x0a]
    log += Array("[   1.000000] BUG: unable to handle page fault for address: \u{0}ffff\n".utf8)
    log += [0xed, 0xa0, 0x80, 0x0a]  // an encoded surrogate
    log += Array("RIP: 0010:\u{0}\u{7f}+0x1/0x2\n".utf8)
    let reports = CrashDetector().scan(log)
    #expect(reports.count == 1)
    #expect(reports.first.map { $0.end <= log.count } == true)
  }

  @Test func endlessReportStaysBounded() {
    let detector = CrashDetector()
    var scanner = StreamingCrashScanner(detector: detector)
    var reports = scanner.feed(line: "[    1.0] WARNING: CPU: 0 PID: 1 at kernel/x.c:1 f+0x1/0x2")
    for i in 0..<20_000 {
      reports += scanner.feed(line: "[    1.0]  frame_\(i)+0x1/0x2")
      if let current = scanner.current {
        #expect(current.byteCount <= detector.maxReportBytes + 64)
        #expect(current.lineCount <= detector.maxReportLines)
      }
    }
    reports += scanner.finish()
    #expect(reports.count == 1)
  }

  @Test func truncatedRecordsAndHeadersAlone() {
    for text in [
      "BUG:", "WARNING:", "INFO: t", "kernel BUG at", "Unable to handle kernel", "6,1,2", "6,;",
      "<", "[", "[ 1.",
      "NIP [", "Call Trace:", "---[ end trace", "BUG: KASAN: ", "WARNING: at  ",
      "INFO: task  blocked for more than  seconds",
    ] {
      _ = CrashDetector().scan(text)
      _ = KmsgRecord.parse(Array(text.utf8))
      _ = DmesgText.parse(line: text)
      var scanner = StreamingCrashScanner()
      _ = scanner.feed(line: text)
      _ = scanner.finish()
    }
  }

  @Test func manyHeadersInARow() {
    let log = String(repeating: "[ 1.0] BUG: soft lockup - CPU#0 stuck for 22s!\n", count: 5_000)
    let reports = CrashDetector().scan(log)
    #expect(reports.count == 5_000)
    #expect(Set(reports.map(\.signature)).count == 1)
  }
}
