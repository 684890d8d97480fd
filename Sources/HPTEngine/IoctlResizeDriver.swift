import Foundation
import KVMHost

/// Resizes through the VM fd (KVM_PPC_RESIZE_HPT_PREPARE and _COMMIT), as QEMU does: PREPARE
/// polled with the kernel's own estimate until ready, then COMMIT; and the steps QEMU never
/// takes but a hostile VMM may (cancel, COMMIT without PREPARE or before run, reboot). Every
/// answer the kernel gives is recorded under its ioctl's name.
final class IoctlResizeDriver: ResizeDriver, @unchecked Sendable {
  static let policies = Set(ResizePolicy.allCases)
  let guest: GuestContext
  let stats: RunStats
  let executor: any AgentExecutor
  let prepareTimeoutMs: Int
  /// Called just before COMMIT-before-run (the WARNING it provokes is then expected).
  var willCommitBeforeRun: @Sendable () -> Void = {}
  /// The host's view of the VMM's threads (their kernel stacks), when the host is a machine
  /// the harness can ask.
  var hostThreads: @Sendable () -> String? = { nil }

  init(guest: GuestContext, stats: RunStats, executor: any AgentExecutor, prepareTimeoutMs: Int) {
    self.guest = guest
    self.stats = stats
    self.executor = executor
    self.prepareTimeoutMs = prepareTimeoutMs
  }

  var guestName: String { guest.name }
  var guestRunning: Bool { guest.started }
  func startOrder(boot: UInt32) -> UInt32 { boot }

  func resize(from: UInt32, to target: UInt32) -> ResizeOutcome {
    let t0 = executor.nowNs
    polling: while true {
      do {
        switch try guest.vm.resizeHPTPrepare(flags: 0, shift: target) {
        case .ready:
          stats.answer("PREPARE", "0")
          break polling
        case .pending(let ms):
          stats.answer("PREPARE", String(ms))
          if Double(executor.nowNs - t0) / 1e6 > Double(prepareTimeoutMs) {
            _ = try? guest.vm.resizeHPTPrepare(flags: 0, shift: 0)
            return .wrong(op: "PREPARE", answer: "timeout after \(prepareTimeoutMs) ms")
          }
          executor.sleep(ms: ms)
        }
      } catch {
        if error.errno == .hostDown { return .hostDown() }
        stats.answer("PREPARE", error.errno.name)
        return .refused(op: "PREPARE", errno: error.errno, timings: nil)
      }
      if executor.stopRequested { return .stopping }
    }
    let t1 = executor.nowNs
    do {
      try guest.vm.resizeHPTCommit(flags: 0, shift: target)
      let t2 = executor.nowNs
      stats.answer("COMMIT", "0")
      return .committed(ResizeTimings(prepareNs: t1 - t0, commitNs: t2 - t1, atNs: t2))
    } catch {
      let timings = ResizeTimings(prepareNs: t1 - t0, commitNs: nil, atNs: executor.nowNs)
      if error.errno == .hostDown { return .hostDown(timings) }
      stats.answer("COMMIT", error.errno.name)
      return .refused(op: "COMMIT", errno: error.errno, timings: timings)
    }
  }

  /// All legal, all racing the PREPARE worker.
  func cancelDuringPrepare(to target: UInt32, other: UInt32, choose: () -> Int) -> ResizeOutcome {
    do {
      let first = try guest.vm.resizeHPTPrepare(flags: 0, shift: target)
      stats.answer("PREPARE", first == .ready ? "0" : "100")
      switch choose() {
      case 0:
        _ = try guest.vm.resizeHPTPrepare(flags: 0, shift: 0)
        stats.answer("PREPARE", "0")
      case 1:
        let s = try guest.vm.resizeHPTPrepare(flags: 0, shift: other)
        stats.answer("PREPARE", s == .ready ? "0" : "100")
        _ = try guest.vm.resizeHPTPrepare(flags: 0, shift: 0)
        stats.answer("PREPARE", "0")
      default:
        do {
          try guest.vm.resizeHPTCommit(flags: 0, shift: target)
          stats.answer("COMMIT", "0")
          return .committed(nil)
        } catch {
          if error.errno == .hostDown { return .hostDown() }
          stats.answer("COMMIT", error.errno.name)
          return .refused(op: "COMMIT", errno: error.errno, timings: nil)
        }
      }
      return .cancelled
    } catch {
      if error.errno == .hostDown { return .hostDown() }
      stats.answer("PREPARE", error.errno.name)
      return .refused(op: "PREPARE", errno: error.errno, timings: nil)
    }
  }

  /// The kernel must answer ENXIO.
  func commitWithoutPrepare(to target: UInt32) -> ResizeOutcome {
    do {
      _ = try guest.vm.resizeHPTPrepare(flags: 0, shift: 0)  // make sure nothing is pending
      try guest.vm.resizeHPTCommit(flags: 0, shift: target)
      stats.answer("COMMIT", "0")
      return .wrong(op: "COMMIT", answer: "0 (success) with nothing prepared")
    } catch {
      if error.errno == .hostDown { return .hostDown() }
      stats.answer("COMMIT", error.errno.name)
      return .refused(op: "COMMIT", errno: error.errno, timings: nil)
    }
  }

  /// mmu_ready is clear: the kernel must WARN and answer EIO. The vCPUs may run after it.
  func commitBeforeRun(at target: UInt32) -> ResizeOutcome {
    let outcome: ResizeOutcome
    do {
      while case .pending(let ms) = try guest.vm.resizeHPTPrepare(flags: 0, shift: target) {
        stats.answer("PREPARE", String(ms))
        executor.sleep(ms: ms)
        if executor.stopRequested { return .stopping }
      }
      stats.answer("PREPARE", "0")
      willCommitBeforeRun()
      try guest.vm.resizeHPTCommit(flags: 0, shift: target)
      stats.answer("COMMIT", "0")
      outcome = .wrong(op: "COMMIT", answer: "0 (success) before any vCPU ran")
    } catch {
      if error.errno == .hostDown { return .hostDown() }
      stats.answer("COMMIT", error.errno.name)
      outcome = .refused(op: "COMMIT", errno: error.errno, timings: nil)
    }
    guest.mayRun.value = true
    return outcome
  }

  static let rebootWaitMs = 30_000.0

  /// As QEMU does it: stop the vCPUs, reallocate the HPT at the boot order
  /// (KVM_PPC_ALLOCATE_HTAB answers EBUSY while a vCPU is still in KVM_RUN), start again.
  func reboot(to boot: UInt32, budgetSpent: () -> Bool) -> ResizeOutcome {
    guest.mayRun.value = false
    defer { guest.mayRun.value = true }
    let since = Double(executor.nowNs) / 1e6
    while !executor.stopRequested {
      if budgetSpent() { return .idle }
      // A vCPU keeps ALLOCATE_HTAB at EBUSY while it is inside KVM_RUN: get it out, as QEMU
      // does. One that a kick cannot get out in rebootWaitMs is stuck in the host's kernel.
      if Double(executor.nowNs) / 1e6 - since > Self.rebootWaitMs {
        executor.requestStop()
        return .wrong(
          op: "ALLOCATE_HTAB",
          answer: "EBUSY for \(Int(Self.rebootWaitMs / 1000)) s: a vCPU never left KVM_RUN")
      }
      do {
        _ = try guest.vm.allocateHTAB(order: boot)
        stats.answer("ALLOCATE_HTAB", "0")
        stats.with { $0.reboots += 1 }
        guest.restarted()
        return .reset
      } catch {
        if error.errno == .hostDown { return .hostDown() }
        stats.answer("ALLOCATE_HTAB", error.errno.name)
        if error.errno != .EBUSY {
          return .refused(op: "ALLOCATE_HTAB", errno: error.errno, timings: nil)
        }
        guest.vm.kickVCPUs()
        executor.sleep(ms: 1)
      }
    }
    return .stopping
  }

  /// How long kicked vCPU threads get to leave KVM_RUN.
  var kickWaitMs = 5_000.0

  /// A guest that has not run since its reset: whether its vCPU threads leave KVM_RUN when
  /// kicked (one the host's kernel holds does not), and where the guest is, twice, 1 s of
  /// running apart (a PC that stays on an interrupt vector is a guest that cannot go on: in
  /// real mode nothing is there to handle it).
  func stuckGuestEvidence() -> String? {
    var lines = ["\(guest.inRun) of \(guest.vcpus.count) vCPU threads inside KVM_RUN"]
    defer { guest.mayRun.value = true }
    for sample in 1...2 {
      guest.mayRun.value = false
      guard leaveRun() else {
        lines.append(
          "sample \(sample): \(guest.inRun) vCPU thread(s) still inside KVM_RUN \(String(format: "%.1f", kickWaitMs / 1000)) s after a kick (EINTR): held in the host's kernel"
        )
        break
      }
      for v in guest.vcpus {
        let described: String
        do throws(KVMError) {
          described = try v.registers()?.description ?? "no registers on this backend"
        } catch {
          described = "registers unreadable: \(error)"
        }
        lines.append("sample \(sample): vCPU \(v.id): \(described)")
      }
      guest.mayRun.value = true
      if sample == 1 { executor.sleep(ms: 1000) }
    }
    if let threads = hostThreads(), !threads.isEmpty { lines.append(threads) }
    return lines.joined(separator: "\n")
  }

  /// Kicks the vCPUs until no thread is inside KVM_RUN, for at most kickWaitMs.
  private func leaveRun() -> Bool {
    let since = Double(executor.nowNs) / 1e6
    while guest.inRun > 0 {
      if Double(executor.nowNs) / 1e6 - since > kickWaitMs { return false }
      guest.vm.kickVCPUs()
      executor.sleep(ms: 10)
    }
    return true
  }
}
