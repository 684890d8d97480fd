import Foundation
import KVMHost
import Synchronization
import Testing

@testable import HPTEngine

/// The real-thread executor's end of a run: agents blocked on a dead host must not hold it.
@Suite struct ThreadExecutorTests {
  /// An agent stuck in a call (a condition only `onStalled` releases, as cutting hostd's
  /// channel releases a KVM_RUN that will never return): the stop calls `onStalled` and the run
  /// ends with nothing abandoned, long before the grace.
  @Test func onStalledFreesAgentsBlockedAfterTheStop() {
    let exec = ThreadExecutor()
    exec.stalledAfterS = 0.2
    exec.stopGraceS = 30
    let released = DispatchSemaphore(value: 0)
    let calls = Mutex(0)
    exec.onStalled = {
      calls.withLock { $0 += 1 }
      released.signal()
    }
    let stopper = Agent(name: "stopper") { exec.requestStop() }
    let stuck = Agent(name: "vcpu") { released.wait() }
    let t0 = Date()
    exec.run([stopper, stuck])
    #expect(exec.abandoned.isEmpty)
    #expect(calls.withLock { $0 } == 1)
    #expect(Date().timeIntervalSince(t0) < 20, "the run waited for the grace")
  }

  /// After a host crash the executor cuts sooner: a stop that would wait `stalledAfterS` for
  /// a live host waits only `stalledAfterCrashS`.
  @Test func aHostCrashShortensTheWait() {
    let exec = ThreadExecutor()
    exec.stalledAfterS = 30
    exec.stalledAfterCrashS = 0.2
    exec.stopGraceS = 60
    let released = DispatchSemaphore(value: 0)
    exec.onStalled = { released.signal() }
    let t0 = Date()
    exec.run([
      Agent(name: "log") {
        exec.hostCrashed()
        exec.requestStop()
      },
      Agent(name: "vcpu") { released.wait() },
    ])
    #expect(Date().timeIntervalSince(t0) < 20, "the crash did not shorten the wait")
    #expect(exec.abandoned.isEmpty)
  }

  /// Agents that return by themselves never trigger it.
  @Test func agentsThatReturnLeaveOnStalledUncalled() {
    let exec = ThreadExecutor()
    exec.stalledAfterS = 0.2
    let calls = Mutex(0)
    exec.onStalled = { calls.withLock { $0 += 1 } }
    exec.run([Agent(name: "a") { exec.requestStop() }, Agent(name: "b") { exec.sleep(ms: 100) }])
    #expect(calls.withLock { $0 } == 0)
    #expect(exec.abandoned.isEmpty)
  }
}
