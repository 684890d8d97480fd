import Foundation
import Testing

@testable import HPTTarget

/// The lab emulator's CPU share: schedstat read per thread, the worst wait in a window.
@Suite struct EmulatorCPUWatchTests {
  func sample(_ s: Double, _ waits: [Int32: Double]) -> EmulatorCPUWatch.Sample {
    EmulatorCPUWatch.Sample(
      ns: UInt64(s * 1e9), waitNs: waits.mapValues { UInt64($0 * 1e9) })
  }

  @Test func theWorstWaitIsOneThreadsWaitWithinTheWindow() throws {
    // Thread 2 waits 0.1 s a second until t = 60, then 0.7 s a second; thread 1 never.
    var samples: [EmulatorCPUWatch.Sample] = []
    var w2 = 0.0
    for t in 0...90 {
      samples.append(sample(Double(t), [1: 0, 2: w2]))
      w2 += t < 60 ? 0.1 : 0.7
    }
    let calm = try #require(EmulatorCPUWatch.worstWait(samples, windowS: 30, nowNs: 55_000_000_000))
    #expect(abs(calm.waitedS - 3.0) < 0.01 && calm.spanS == 30)
    let starved = try #require(
      EmulatorCPUWatch.worstWait(samples, windowS: 30, nowNs: 90_000_000_000))
    #expect(abs(starved.waitedS - 21.0) < 0.01 && starved.spanS == 30)
    // A thread that appeared within the window has no start to count from.
    samples[90].waitNs[3] = 29_000_000_000
    #expect(EmulatorCPUWatch.worstWait(samples, windowS: 30, nowNs: 90_000_000_000)?.waitedS == 21)
    // One sample is no window.
    #expect(EmulatorCPUWatch.worstWait([samples[0]], windowS: 30, nowNs: 0) == nil)
  }

  /// schedstat's three fields (on CPU, waiting on a run queue, time slices), per task.
  @Test func waitsAreReadFromEveryThreadsSchedstat() throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent(
      "hpthammer-proc-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: root) }
    for (tid, stat) in [("41", "1000 2500 7\n"), ("42", "3000 123456789 9\n"), ("43", "junk\n")] {
      let dir = root.appendingPathComponent("40/task/\(tid)")
      try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
      try stat.write(to: dir.appendingPathComponent("schedstat"), atomically: true, encoding: .utf8)
    }
    #expect(
      EmulatorCPUWatch.readWaits(procRoot: root.path, pid: 40) == [41: 2500, 42: 123_456_789])
    #expect(EmulatorCPUWatch.readWaits(procRoot: root.path, pid: 99).isEmpty)

    // Thread 42 then waits 20 s of the next 30: the run's worst 30 s share is 2/3.
    let watch = EmulatorCPUWatch(procRoot: root.path) { 40 }
    watch.sample(atNs: 100_000_000_000)
    try "3000 20123456789 9\n".write(
      to: root.appendingPathComponent("40/task/42/schedstat"), atomically: true, encoding: .utf8)
    watch.sample(atNs: 130_000_000_000)
    #expect(abs(watch.worstShare - 2.0 / 3) < 0.001)
  }

  /// This process's own threads through the real /proc: readings, and a window over them.
  @Test func theRealProcOfThisProcessIsRead() throws {
    let me = getpid()
    #expect(!EmulatorCPUWatch.readWaits(procRoot: "/proc", pid: me).isEmpty)
    let watch = EmulatorCPUWatch { me }
    watch.sample(atNs: DispatchTime.now().uptimeNanoseconds)
    Thread.sleep(forTimeInterval: 0.05)
    let w = try #require(watch.worstWait(windowS: 10))
    #expect(w.waitedS >= 0 && w.spanS > 0.04 && w.spanS < 10)
    // An emulator that does not run: no readings, no window.
    #expect(EmulatorCPUWatch { nil }.worstWait(windowS: 10) == nil)
  }
}
