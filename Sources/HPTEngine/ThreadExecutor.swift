import Foundation
import KVMHost
import Synchronization

/// Real threads and the monotonic clock: the executor of every backend but the simulator.
public final class ThreadExecutor: AgentExecutor, @unchecked Sendable {
  private let lock = NSLock()
  private var stop = false
  private let start = DispatchTime.now().uptimeNanoseconds

  public init() {}

  /// Once a stop is requested, agents get this long to return; one blocked in a call to a host
  /// that died (a libvirt RPC, an ssh command) is left behind rather than hanging the run.
  public var stopGraceS = 60.0
  /// Agents still running this long after the stop are blocked on the host (a vCPU whose
  /// KVM_RUN died in a host oops never answers): `onStalled` runs once then, to cut the
  /// channel they wait on, so a run that has its answer ends in seconds, not in `stopGraceS`.
  /// A vCPU of a live host returns from KVM_RUN at its payload's next report: seconds in the
  /// emulated lab under load; after a host crash (`hostCrashed`) none will.
  public var stalledAfterS = 15.0
  public var stalledAfterCrashS = 1.0
  public var onStalled: (@Sendable () -> Void)?
  private var crashed = false
  public func hostCrashed() { lock.locked { crashed = true } }
  /// The agents that had not returned when `run` gave up waiting for them.
  public private(set) var abandoned: [String] = []

  public func run(_ agents: [Agent]) {
    let group = DispatchGroup()
    let running = Mutex(Set<String>())
    for (i, a) in agents.enumerated() {
      group.enter()
      let key = "\(a.name)#\(i)"
      running.withLock { _ = $0.insert(key) }
      let t = Thread {
        a.body()
        running.withLock { _ = $0.remove(key) }
        group.leave()
      }
      t.name = a.name
      t.start()
    }
    var stopSeen: DispatchTime?
    var stalledCalled = false
    while group.wait(timeout: .now() + 0.2) == .timedOut {
      guard stopRequested else { continue }
      let since = stopSeen ?? .now()
      stopSeen = since
      let waitedS = Double(DispatchTime.now().uptimeNanoseconds - since.uptimeNanoseconds) / 1e9
      let stallS = lock.locked { crashed } ? stalledAfterCrashS : stalledAfterS
      if waitedS > stallS && !stalledCalled, let onStalled {
        stalledCalled = true
        onStalled()
      }
      if waitedS > stopGraceS {
        let left = running.withLock { $0.map { String($0.split(separator: "#")[0]) }.sorted() }
        lock.locked { abandoned = left }
        return
      }
    }
  }

  public var nowNs: UInt64 { DispatchTime.now().uptimeNanoseconds - start }

  public func sleep(ms: Int) {
    // Sleep in slices so a stop request is seen promptly.
    var left = ms
    while left > 0 && !stopRequested {
      let slice = min(left, 50)
      Thread.sleep(forTimeInterval: Double(slice) / 1000)
      left -= slice
    }
  }

  public func requestStop() { lock.locked { stop = true } }
  public var stopRequested: Bool { lock.locked { stop } }
}
