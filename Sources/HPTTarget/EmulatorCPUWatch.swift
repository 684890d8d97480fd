import Foundation

/// How much of this machine's CPU the lab's emulator got. QEMU's TCG runs each emulated CPU on
/// a thread of its own, and the emulated timebase follows this machine's clock: a thread that
/// waits for a CPU here stops its POWER9 CPU while the timebase runs on, so the emulated
/// kernel's watchdogs (hard and soft lockup, RCU stall, hung task, workqueue lockup) fire on a
/// healthy kernel. Seen on the lab beside a build and two benchmarks: "watchdog: CPU 1 detected
/// hard LOCKUP on other CPUs 0" with 19.6 s since CPU 0's last heartbeat, on the kernel with
/// the fix, in the network stack.
///
/// Every second it reads each QEMU thread's /proc/PID/task/TID/schedstat (time on a CPU, time
/// waiting on a run queue, in ns); `worstWait` is the most any one thread waited in a window.
final class EmulatorCPUWatch: @unchecked Sendable {
  struct Sample: Equatable {
    /// Monotonic time of the reading.
    var ns: UInt64
    /// Per thread id: cumulative run-queue wait, ns.
    var waitNs: [Int32: UInt64]
  }

  private let pid: @Sendable () -> Int32?
  private let procRoot: String
  private let lock = NSLock()
  private var samples: [Sample] = []
  private var samplesPid: Int32?
  private var stopped = false
  private var worst = 0.0
  /// A thread that waited this share of a window had its emulated CPU stopped that long: at
  /// half, a 10 s watchdog sees 20 s pass in 10 s of the emulated CPU's work.
  static let starvedFraction = 0.5
  /// Ten minutes of samples: longer than any watchdog's threshold (hung task: 120 s).
  static let kept = 600

  /// `pid` is read at every sample: run.sh may have started another QEMU since.
  init(procRoot: String = "/proc", pid: @escaping @Sendable () -> Int32?) {
    self.procRoot = procRoot
    self.pid = pid
  }

  /// Samples once a second on a thread of its own until `stop()`.
  func start() {
    let thread = Thread { [weak self] in
      while let watch = self, !watch.isStopped {
        watch.sample()
        Thread.sleep(forTimeInterval: 1)
      }
    }
    thread.name = "emulator-cpu-watch"
    thread.start()
  }

  func stop() { lock.locked { stopped = true } }
  private var isStopped: Bool { lock.locked { stopped } }

  /// One reading of every thread of the emulator (none when it does not run).
  func sample(atNs ns: UInt64 = DispatchTime.now().uptimeNanoseconds) {
    guard let pid = pid() else { return }
    let reading = Sample(ns: ns, waitNs: Self.readWaits(procRoot: procRoot, pid: pid))
    lock.locked {
      if samplesPid != pid { samples.removeAll() }
      samplesPid = pid
      samples.append(reading)
      if samples.count > Self.kept { samples.removeFirst(samples.count - Self.kept) }
      if let w = Self.worstWait(samples, windowS: Self.figureWindowS, nowNs: ns),
        w.spanS >= Self.figureWindowS / 2
      {
        worst = max(worst, w.waitedS / w.spanS)
      }
    }
  }

  /// The window of run.json's figure: a watchdog's threshold.
  static let figureWindowS = 30.0

  /// The largest share of any 30 s the emulator's most-waiting thread spent waiting for a CPU
  /// since the watch began (0-1): under 0.1 on an otherwise idle machine, 0.5-1 beside a build.
  var worstShare: Double { lock.locked { worst } }

  /// Cumulative run-queue wait per thread, from schedstat's second field.
  static func readWaits(procRoot: String, pid: Int32) -> [Int32: UInt64] {
    let dir = "\(procRoot)/\(pid)/task"
    var waits: [Int32: UInt64] = [:]
    for tid in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
      guard let id = Int32(tid),
        let text = try? String(contentsOfFile: "\(dir)/\(tid)/schedstat", encoding: .utf8)
      else { continue }
      let fields = text.split(separator: " ")
      if fields.count >= 2, let wait = UInt64(fields[1]) { waits[id] = wait }
    }
    return waits
  }

  /// The most one thread waited for a CPU in the last `windowS` seconds before `nowNs`, and
  /// the span the samples cover (nil with fewer than two samples in it).
  func worstWait(windowS: Double, nowNs: UInt64 = DispatchTime.now().uptimeNanoseconds)
    -> (waitedS: Double, spanS: Double)?
  {
    sample(atNs: nowNs)
    return lock.locked { Self.worstWait(samples, windowS: windowS, nowNs: nowNs) }
  }

  /// The worst wait in the last `windowS` seconds when it is starvation: a thread waited
  /// `starvedFraction` of a span of at least half the window (10 s for windows over 20 s).
  func starvedWait(windowS: Double) -> (waitedS: Double, spanS: Double)? {
    guard let w = worstWait(windowS: windowS), w.spanS >= min(windowS / 2, 10),
      w.waitedS >= w.spanS * Self.starvedFraction
    else { return nil }
    return w
  }

  static func worstWait(_ samples: [Sample], windowS: Double, nowNs: UInt64) -> (
    waitedS: Double, spanS: Double
  )? {
    let from = nowNs > UInt64(windowS * 1e9) ? nowNs - UInt64(windowS * 1e9) : 0
    guard let first = samples.first(where: { $0.ns >= from }),
      let last = samples.last(where: { $0.ns <= nowNs }), last.ns > first.ns
    else { return nil }
    var worst: UInt64 = 0
    for (tid, end) in last.waitNs {
      guard let begin = first.waitNs[tid], end >= begin else { continue }
      worst = max(worst, end - begin)
    }
    return (Double(worst) / 1e9, Double(last.ns - first.ns) / 1e9)
  }
}
