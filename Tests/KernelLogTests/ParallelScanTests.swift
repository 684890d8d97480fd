import Foundation
import Testing

@testable import KernelLog

/// A log scanned in parallel chunks gives the reports of one scan from its start, whatever the
/// chunk size and the number of threads (chunks starting inside reports, between a report and
/// its panic line, after a cut header).
@Suite struct ParallelScanTests {
  /// The fixtures and both corpora's logs one after another.
  static let log: [UInt8] = {
    var log: [UInt8] = []
    let power = CorpusLocation.repoRoot.deletingLastPathComponent().appendingPathComponent(
      "shared/corpus/power-linux/cases")
    for c in Fixtures.cases + CorpusCase.load(CorpusLocation.syzkaller) + CorpusCase.load(power) {
      log += c.log
      if log.last != 0x0a { log.append(0x0a) }
    }
    return log
  }()

  /// The fixtures only, for the tiniest chunks.
  static let small: [UInt8] = {
    var log: [UInt8] = []
    for c in Fixtures.cases { log += c.log }
    return log
  }()

  /// One scan from the start, fed in reads of `readSize` bytes (as `hpthammer scan` reads).
  static func sequential(_ log: [UInt8], readSize: Int) -> [CrashReport] {
    var scanner = StreamingCrashScanner()
    var reports: [CrashReport] = []
    log.withUnsafeBufferPointer { buf in
      var at = 0
      while at < buf.count {
        let end = min(buf.count, at + readSize)
        reports += scanner.feed(chunk: UnsafeBufferPointer(rebasing: buf[at..<end]))
        at = end
      }
    }
    return reports + scanner.finish()
  }

  static func parallel(_ log: [UInt8], workers: Int, chunkSize: Int, readSize: Int)
    -> [CrashReport]
  {
    let scan = ParallelScan(workers: workers, chunkSize: chunkSize, readSize: readSize)
    let (reports, rest) = scan.scan(log)
    guard var scanner = rest else {
      Issue.record("read failed")
      return reports
    }
    #expect(scanner.consumed == log.count)
    return reports + scanner.finish()
  }

  static func expectSame(_ a: [CrashReport], _ b: [CrashReport], _ what: String) {
    #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) reports")
    for (x, y) in zip(a, b) where x != y || x.frames != y.frames || x.context != y.context {
      Issue.record("\(what): report at \(x.start) '\(x.title)' vs at \(y.start) '\(y.title)'")
      return
    }
  }

  @Test(arguments: [(2, 1 << 22), (2, 65536), (3, 4096), (8, 1000), (5, 333)])
  func corpora(workers: Int, chunkSize: Int) {
    let whole = CrashDetector().scan(Self.log)
    #expect(whole.count > 300)
    Self.expectSame(
      Self.parallel(Self.log, workers: workers, chunkSize: chunkSize, readSize: 1 << 20), whole,
      "\(workers) threads, \(chunkSize)-byte chunks")
  }

  @Test(arguments: [1, 2, 7, 50])
  func tinyChunks(chunkSize: Int) {
    let whole = CrashDetector().scan(Self.small)
    Self.expectSame(
      Self.parallel(Self.small, workers: 4, chunkSize: chunkSize, readSize: 1 << 20), whole,
      "\(chunkSize)-byte chunks")
  }

  /// Reads cut lines where a whole-file read would (lines longer than `maxLineBytes` are
  /// matched on their start when a read cuts them).
  @Test(arguments: [(64, 64), (256, 100), (4096, 1024), (8192, 4096)])
  func readCuts(chunkSize: Int, readSize: Int) {
    var log = Self.small
    // A report with a line longer than `maxLineBytes` and a header past its first 64 KiB.
    let long = Array(repeating: UInt8(ascii: "x"), count: StreamingCrashScanner.maxLineBytes + 10)
    let header = Array(" BUG: KASAN: use-after-free in f+0x1/0x2\n".utf8)
    log += Array("[  1.0] BUG: unable to handle kernel paging request at 0000\n".utf8)
    log += long + header
    log += long + header + Array("[  2.0] Call Trace:\n[  2.0]  g+0x1/0x2\n".utf8)
    log += Self.small.prefix(20000)
    let sequential = Self.sequential(log, readSize: readSize)
    Self.expectSame(
      Self.parallel(log, workers: 3, chunkSize: chunkSize, readSize: readSize), sequential,
      "\(chunkSize)-byte chunks, \(readSize)-byte reads")
  }
}
