import Foundation
import Testing

@testable import KernelLog

/// Two CPUs hitting a WARN_ON at once print their reports line by line in turn. Before, the
/// first report ended at the second's header and was titled "WARNING in corrupted", and the
/// second took the first CPU's task and frames. With printk caller ids the lines are told
/// apart exactly; without them, each report takes its frame from its own header and is
/// marked corrupted (its other lines cannot be attributed), as syzkaller marks them.
@Suite struct InterleavedReportTests {
  static let directory = Fixtures.directory.appendingPathComponent("interleaved")

  static func log(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
  }

  struct Expected {
    var title: String
    var cpu: Int
    var pid: Int
    var comm: String
  }

  static func check(_ reports: [CrashReport], _ expected: [Expected], corrupted: Bool) {
    #expect(reports.map(\.title) == expected.map(\.title))
    #expect(reports.map(\.start) == reports.map(\.start).sorted(), "in the order they began")
    for (r, e) in zip(reports, expected) {
      #expect(r.cpu == e.cpu, "\(r.title)")
      #expect(r.pid == e.pid, "\(r.title)")
      #expect(r.comm == e.comm, "\(r.title)")
      #expect(r.corrupted == corrupted, "\(r.title): \(r.corruptedReason ?? "")")
    }
  }

  @Test func powerpcWithoutCallerIDs() throws {
    let reports = CrashDetector().scan(try Self.log("interleaved-warnings-powerpc.log"))
    Self.check(
      reports,
      [
        Expected(title: "WARNING in kvmppc_hpt_foo", cpu: 0, pid: 1234, comm: "qemu-system-ppc"),
        Expected(title: "WARNING in __alloc_pages", cpu: 1, pid: 1235, comm: "stress"),
      ], corrupted: true)
    #expect(reports.first?.corruptedReason == "interleaved with another CPU's report")
  }

  /// The x86 pair, with and without caller ids.
  static let x86Pair = [
    Expected(title: "WARNING in netdev_foo", cpu: 1, pid: 300, comm: "syz-executor"),
    Expected(title: "WARNING in kmem_bar", cpu: 0, pid: 200, comm: "kworker/0:1"),
  ]

  @Test func x86WithoutCallerIDs() throws {
    // The first RIP line is the other CPU's: the header names each report's function.
    let reports = CrashDetector().scan(try Self.log("interleaved-warnings-x86.log"))
    Self.check(reports, Self.x86Pair, corrupted: true)
  }

  @Test func callerIDsSeparateTheReports() throws {
    let reports = CrashDetector().scan(try Self.log("interleaved-warnings-caller-ids.log"))
    Self.check(reports, Self.x86Pair, corrupted: false)
    #expect(
      reports.map(\.frames) == [
        ["dev_ioctl", "sock_ioctl"], ["kmem_cache_alloc", "do_syscall_64"],
      ])
  }

  /// A report whose caller goes on after another caller's report ended still comes out
  /// first; streaming, chunked and parallel scans agree.
  @Test(arguments: [
    "interleaved-warnings-powerpc.log", "interleaved-warnings-x86.log",
    "interleaved-warnings-caller-ids.log",
  ])
  func everyWayOfScanningAgrees(_ name: String) throws {
    let log = try Self.log(name)
    let whole = CrashDetector().scan(log)
    #expect(whole.count == 2)
    for readSize in [1, 7, 64, 1 << 20] {
      ParallelScanTests.expectSame(
        ParallelScanTests.sequential(log, readSize: readSize), whole,
        "\(name), reads of \(readSize)")
    }
    for (workers, chunk) in [(2, 100), (3, 333), (5, 64)] {
      ParallelScanTests.expectSame(
        ParallelScanTests.parallel(log, workers: workers, chunkSize: chunk, readSize: 4096), whole,
        "\(name), \(workers) workers, chunks of \(chunk)")
    }
    var scanner = StreamingCrashScanner()
    var streamed: [CrashReport] = []
    for line in String(decoding: log, as: UTF8.self).split(
      separator: "\n", omittingEmptySubsequences: false)
    {
      streamed += scanner.feed(line: String(line))
    }
    streamed += scanner.finish()
    #expect(streamed.map(\.title) == whole.map(\.title))
    #expect(streamed.map(\.start) == whole.map(\.start))
  }

  /// With caller ids: a third caller's crash ends both reports in progress, and the end of
  /// the input ends a held one; none is lost, and they come out in the order they began.
  @Test func aThirdCrashAndTheEndOfInputEndEveryReport() {
    func line(_ n: Int, _ task: Int, _ text: String) -> String {
      "[    1.00000\(n)][  T\(task)] \(text)"
    }
    let two = [
      line(1, 100, "WARNING: CPU: 0 PID: 100 at a.c:1 fa+0x1/0x2"),
      line(2, 200, "WARNING: CPU: 1 PID: 200 at b.c:2 fb+0x1/0x2"),
      line(3, 100, "RIP: 0010:fa+0x1/0x2"),
      line(4, 200, "RIP: 0010:fb+0x1/0x2"),
    ]
    let third = [
      line(5, 300, "WARNING: CPU: 2 PID: 300 at c.c:3 fc+0x1/0x2"),
      line(6, 300, "RIP: 0010:fc+0x1/0x2"),
    ]
    for (lines, titles) in [
      (two, ["WARNING in fa", "WARNING in fb"]),
      (two + third, ["WARNING in fa", "WARNING in fb", "WARNING in fc"]),
    ] {
      let log = Array((lines.joined(separator: "\n") + "\n").utf8)
      let reports = CrashDetector().scan(log)
      #expect(reports.map(\.title) == titles)
      #expect(reports.map(\.start) == reports.map(\.start).sorted())
      for readSize in [1, 50] {
        ParallelScanTests.expectSame(
          ParallelScanTests.sequential(log, readSize: readSize), reports, "reads of \(readSize)")
      }
    }
  }

  /// The same header printed twice in a row is a replayed console, not a second CPU: one
  /// report keeps the body, as before.
  @Test func aRepeatedHeaderIsNotASecondCPU() throws {
    var log = String(decoding: try Self.log("interleaved-warnings-powerpc.log"), as: UTF8.self)
    let lines = log.split(separator: "\n").filter {
      !$0.contains("CPU: 1") && !$0.contains("__alloc_pages")
    }
    log = lines.joined(separator: "\n") + "\n"
    let header = lines.first { $0.contains("WARNING:") }!
    log = log.replacingOccurrences(of: header + "\n", with: header + "\n" + header + "\n")
    let reports = CrashDetector().scan(Array(log.utf8))
    #expect(reports.contains { $0.title == "WARNING in kvmppc_hpt_foo" && !$0.corrupted })
    #expect(!reports.contains { $0.corruptedReason == "interleaved with another CPU's report" })
  }
}
