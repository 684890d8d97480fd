import Dispatch
import Foundation

/// Thrown at a yield point once the simulated host has died: every simulated thread unwinds.
public struct SimHalted: Error, Sendable {}

/// Runs simulated threads (vCPUs, the resize worker, the harness's agents) one at a time on
/// real threads, handing a single baton between them at explicit yield points. Which thread
/// runs next is drawn from a seeded PRNG, so one seed gives one interleaving, byte for byte.
/// Time is simulated: each yield advances the host's uptime by what the step cost.
public final class SimScheduler: @unchecked Sendable {
  final class SimThread: @unchecked Sendable {
    let id: Int
    let name: String
    let isKernel: Bool
    let baton = DispatchSemaphore(value: 0)
    var wakeAtNs: UInt64 = 0
    var blockedUntil: (() -> Bool)?
    var done = false
    init(id: Int, name: String, isKernel: Bool) {
      self.id = id
      self.name = name
      self.isKernel = isKernel
    }
  }

  private var threads: [SimThread] = []
  private var current: SimThread?
  private var rng: SplitMix64
  private let allDone = DispatchSemaphore(value: 0)
  private let stopLock = NSLock()
  private var _stopRequested = false

  /// Simulated host uptime in nanoseconds.
  public private(set) var nowNs: UInt64
  /// The host died: yields throw SimHalted from now on.
  public private(set) var halted = false
  /// Number of yields so far (a measure of simulated work).
  public private(set) var steps: UInt64 = 0
  /// Called when every live thread is blocked and none sleeps: a simulated hang. It runs on
  /// the scheduler (as the last thread that yielded) and should report and halt.
  public var onDeadlock: ((_ blocked: [String]) -> Void)?

  public init(seed: UInt64, bootUptimeNs: UInt64) {
    rng = SplitMix64(seed: seed)
    nowNs = bootUptimeNs
  }

  public var stopRequested: Bool {
    stopLock.lock()
    defer { stopLock.unlock() }
    return _stopRequested || halted
  }

  public func requestStop() {
    stopLock.lock()
    _stopRequested = true
    stopLock.unlock()
  }

  /// True when every non-kernel thread has finished (kernel threads such as kworkers use it
  /// to know when to exit).
  public var agentsFinished: Bool { threads.allSatisfy { $0.done || $0.isKernel } }

  /// The name of the simulated thread that holds the baton.
  public var currentName: String { current?.name ?? "swapper" }
  public var currentID: Int { current?.id ?? 0 }

  /// Registers a thread; call before `run()`. Kernel threads may loop until `agentsFinished`.
  public func spawn(name: String, kernel: Bool = false, body: @escaping @Sendable () -> Void) {
    let t = SimThread(id: threads.count, name: name, isKernel: kernel)
    threads.append(t)
    let thread = Thread { [self] in
      t.baton.wait()
      body()
      t.done = true
      handOffFromFinished(t)
    }
    thread.stackSize = 1 << 20
    thread.start()
  }

  /// Runs all spawned threads until each has returned.
  public func run() {
    guard !threads.isEmpty else { return }
    guard let first = pickNext() else { return }
    current = first
    first.baton.signal()
    allDone.wait()
  }

  /// A yield point: the step that just ran cost `costNs` of simulated time; another thread
  /// may run now.
  public func yield(costNs: UInt64 = 1_000) throws(SimHalted) {
    nowNs &+= costNs
    steps &+= 1
    try switchAway()
  }

  /// Sleeps for `ns` of simulated time.
  public func sleep(ns: UInt64) throws(SimHalted) {
    guard let me = current else { return }
    me.wakeAtNs = nowNs &+ ns
    try switchAway()
  }

  /// Blocks until `condition` is true (a mutex, a wait queue). The condition is evaluated by
  /// whichever thread holds the baton, so it may read simulated state freely.
  public func wait(until condition: @escaping () -> Bool) throws(SimHalted) {
    if halted { throw SimHalted() }
    if condition() { return }
    current?.blockedUntil = condition
    try switchAway()
  }

  /// Marks the host dead. The calling thread continues (it must unwind by itself); every
  /// other thread throws SimHalted at its next yield.
  public func halt() {
    halted = true
  }

  // MARK: - scheduling

  private func runnable(_ t: SimThread) -> Bool {
    if t.done { return false }
    if halted { return true }
    if let cond = t.blockedUntil {
      if cond() {
        t.blockedUntil = nil
      } else {
        return false
      }
    }
    return t.wakeAtNs <= nowNs
  }

  private func pickNext() -> SimThread? {
    while true {
      var candidates: [SimThread] = []
      candidates.reserveCapacity(threads.count)
      for t in threads where runnable(t) { candidates.append(t) }
      if !candidates.isEmpty {
        return candidates[rng.below(candidates.count)]
      }
      let live = threads.filter { !$0.done }
      if live.isEmpty { return nil }
      // Nobody can run now: jump the clock to the earliest sleeper.
      let sleepers = live.filter { $0.blockedUntil == nil }
      if let wake = sleepers.map(\.wakeAtNs).min() {
        nowNs = max(nowNs, wake)
        continue
      }
      // Everybody is blocked for good: a hang. Let the kernel report it, then unwind all.
      onDeadlock?(live.map(\.name))
      halted = true
    }
  }

  /// Chance that the thread holding the baton keeps it at a yield. Real CPUs run a thread for
  /// a while; handing the baton over costs two real context switches, so most yields stay put.
  public var stickiness = 0.9

  private func switchAway() throws(SimHalted) {
    guard let me = current else { return }
    if !halted && me.blockedUntil == nil && me.wakeAtNs <= nowNs && rng.chance(stickiness) {
      return
    }
    let next = pickNext()
    if let next, next !== me {
      current = next
      next.baton.signal()
      me.baton.wait()
    }
    if halted { throw SimHalted() }
  }

  private func handOffFromFinished(_ t: SimThread) {
    if let next = pickNext() {
      current = next
      next.baton.signal()
    } else {
      current = nil
      allDone.signal()
    }
  }
}
