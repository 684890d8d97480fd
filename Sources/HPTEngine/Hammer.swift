import Foundation
import HPTSim
import KVMHost

/// The resize hammer of one guest: PREPARE polled with the kernel's own estimate until ready,
/// then COMMIT, in the orders and patterns the job's policies ask for; every answer is sorted
/// into expected or unexpected.
final class Hammer: @unchecked Sendable {
  let guest: GuestContext
  let job: Job
  let stats: RunStats
  let executor: any AgentExecutor
  var rng: SplitMix64
  var order: UInt32
  let budget: Budget

  init(
    guest: GuestContext, job: Job, stats: RunStats, executor: any AgentExecutor, rng: SplitMix64,
    budget: Budget
  ) {
    self.guest = guest
    self.job = job
    self.stats = stats
    self.executor = executor
    self.rng = rng
    self.order = job.bootOrder
    self.budget = budget
  }

  var nowMs: Double { Double(executor.nowNs) / 1e6 }

  var willCommitBeforeRun: @Sendable () -> Void = {}

  func run() {
    if job.commitBeforeRun {
      guard commitBeforeRun() else { return }
      guest.mayRun.value = true
    }
    // COMMIT before any vCPU ran is answered with a WARNING and EIO: wait for the guest.
    var waitingSince: Double?
    while !executor.stopRequested {
      if budget.exhausted(now: executor.nowNs) {
        executor.requestStop()
        break
      }
      // After boot and after each reboot, wait for a vCPU to have run (see commitBeforeRun).
      // A guest that does not run for the target's hung_after_s is stuck in the host's kernel
      // (seen in the lab: "KVM: map_vrma at ... failed" after a reset, the vCPU asleep in
      // KVM_RUN): that is a finding. Shorter waits are not: on the emulated lab, under heavy
      // host memory load, a guest's first report took over 30 s on the stock kernel.
      if !guest.started {
        let since = waitingSince ?? nowMs
        waitingSince = since
        let limitMs = job.target.spec.hungAfterS * 1000
        if nowMs - since > limitMs {
          unexpected(
            "KVM_RUN", order,
            "the guest did not run for \(Int(limitMs / 1000)) s after it was (re)started")
          executor.requestStop()
          break
        }
        executor.sleep(ms: 1)
        continue
      }
      waitingSince = nil
      let policy = job.policies[rng.below(job.policies.count)]
      let ok: Bool
      switch policy {
      case .grow: ok = cycle(to: min(job.orderMax, order + 1))
      case .shrink: ok = cycle(to: max(job.orderMin, order - 1))
      case .sameOrder: ok = cycle(to: order)
      case .randomWalk:
        let step = rng.below(3)
        ok = cycle(
          to: step == 0
            ? max(job.orderMin, order - 1) : step == 1 ? order : min(job.orderMax, order + 1))
      case .cancelDuringPrepare: ok = cancelDuringPrepare()
      case .commitWithoutPrepare: ok = commitWithoutPrepare()
      case .reboot: ok = reboot()
      }
      if !ok { break }
      budget.count()
      if job.pauseMs > 0 { executor.sleep(ms: job.pauseMs) }
    }
  }

  /// Returns false when the host is gone.
  func cycle(to target: UInt32) -> Bool {
    stats.with { $0.attempted += 1 }
    let t0 = executor.nowNs
    polling: while true {
      do {
        let status = try guest.vm.resizeHPTPrepare(flags: 0, shift: target)
        switch status {
        case .ready:
          stats.answer("PREPARE", "0")
          break polling
        case .pending(let ms):
          stats.answer("PREPARE", String(ms))
          if Double(executor.nowNs - t0) / 1e6 > Double(job.prepareTimeoutMs) {
            unexpected("PREPARE", target, "timeout after \(job.prepareTimeoutMs) ms")
            _ = try? guest.vm.resizeHPTPrepare(flags: 0, shift: 0)
            return true
          }
          executor.sleep(ms: ms)
        }
      } catch {
        if error.errno == .hostDown { return false }
        stats.answer("PREPARE", error.errno.name)
        // ENOMEM: the host could not allocate the new HPT; a fact of the host, not a bug.
        classify("PREPARE", target, error.errno, expected: error.errno == .ENOMEM)
        return true
      }
      if executor.stopRequested { return false }
    }
    let t1 = executor.nowNs
    stats.with { $0.prepareToReadyUs.record((t1 - t0) / 1000) }
    let timeline = stats.with { $0.timeline }
    do {
      try guest.vm.resizeHPTCommit(flags: 0, shift: target)
      let t2 = executor.nowNs
      stats.answer("COMMIT", "0")
      stats.with {
        $0.succeeded += 1
        $0.commitUs.record((t2 - t1) / 1000)
      }
      timeline?.resize(
        atNs: t2, guest: guest.name, from: order, to: target, prepareMs: Double(t1 - t0) / 1e6,
        commitMs: Double(t2 - t1) / 1e6, answer: "0")
      order = target
    } catch {
      if error.errno == .hostDown { return false }
      timeline?.resize(
        atNs: executor.nowNs, guest: guest.name, from: order, to: target,
        prepareMs: Double(t1 - t0) / 1e6, commitMs: nil, answer: error.errno.name)
      stats.answer("COMMIT", error.errno.name)
      // ENOSPC: two bolted HPTEs collide in the smaller table.
      classify("COMMIT", target, error.errno, expected: error.errno == .ENOSPC && target < order)
    }
    return true
  }

  /// PREPARE an order, then before the worker is done cancel it (shift 0), switch to another
  /// order, or COMMIT it: all legal, all racing the worker.
  func cancelDuringPrepare() -> Bool {
    stats.with { $0.attempted += 1 }
    let target = UInt32(Int(job.orderMin) + rng.below(Int(job.orderMax - job.orderMin) + 1))
    do {
      let first = try guest.vm.resizeHPTPrepare(flags: 0, shift: target)
      stats.answer("PREPARE", first == .ready ? "0" : "100")
      switch rng.below(3) {
      case 0:
        _ = try guest.vm.resizeHPTPrepare(flags: 0, shift: 0)
        stats.answer("PREPARE", "0")
      case 1:
        let other = target == job.orderMax ? job.orderMin : target + 1
        let s = try guest.vm.resizeHPTPrepare(flags: 0, shift: other)
        stats.answer("PREPARE", s == .ready ? "0" : "100")
        _ = try guest.vm.resizeHPTPrepare(flags: 0, shift: 0)
        stats.answer("PREPARE", "0")
      default:
        do {
          try guest.vm.resizeHPTCommit(flags: 0, shift: target)
          stats.answer("COMMIT", "0")
          order = target
          stats.with { $0.succeeded += 1 }
          return true
        } catch {
          if error.errno == .hostDown { return false }
          stats.answer("COMMIT", error.errno.name)
          // EBUSY: still allocating; ENOSPC: a shrink with colliding bolted HPTEs.
          classify(
            "COMMIT", target, error.errno,
            expected: error.errno == .EBUSY || (error.errno == .ENOSPC && target < order))
          return true
        }
      }
      stats.with { $0.failedExpected += 1 }  // cancelled on purpose
    } catch {
      if error.errno == .hostDown { return false }
      stats.answer("PREPARE", error.errno.name)
      classify("PREPARE", target, error.errno, expected: error.errno == .ENOMEM)
    }
    return true
  }

  /// PREPARE and COMMIT before any vCPU has run: mmu_ready is clear, so the kernel WARNs
  /// ("This shouldn't be possible") and answers EIO. Both are expected.
  func commitBeforeRun() -> Bool {
    stats.with { $0.attempted += 1 }
    let target = order
    do {
      while case .pending(let ms) = try guest.vm.resizeHPTPrepare(flags: 0, shift: target) {
        stats.answer("PREPARE", String(ms))
        executor.sleep(ms: ms)
        if executor.stopRequested { return false }
      }
      stats.answer("PREPARE", "0")
      willCommitBeforeRun()
      try guest.vm.resizeHPTCommit(flags: 0, shift: target)
      stats.answer("COMMIT", "0")
      unexpected("COMMIT", target, "0 (success) before any vCPU ran")
    } catch {
      if error.errno == .hostDown { return false }
      stats.answer("COMMIT", error.errno.name)
      classify("COMMIT", target, error.errno, expected: error.errno == .EIO)
    }
    return true
  }

  static let rebootWaitMs = 30_000.0

  /// A guest reboot as QEMU does it: stop the vCPUs, reallocate the HPT at the boot order
  /// (KVM_PPC_ALLOCATE_HTAB answers EBUSY while a vCPU is still in KVM_RUN), start again.
  func reboot() -> Bool {
    guest.mayRun.value = false
    defer { guest.mayRun.value = true }
    let since = nowMs
    while !executor.stopRequested {
      if budget.exhausted(now: executor.nowNs) { return true }
      // A vCPU keeps ALLOCATE_HTAB at EBUSY while it is inside KVM_RUN: get it out, as QEMU
      // does. One that a kick cannot get out in rebootWaitMs is stuck in the host's kernel.
      if nowMs - since > Self.rebootWaitMs {
        unexpected(
          "ALLOCATE_HTAB", job.bootOrder,
          "EBUSY for \(Int(Self.rebootWaitMs / 1000)) s: a vCPU never left KVM_RUN")
        executor.requestStop()
        return true
      }
      do {
        _ = try guest.vm.allocateHTAB(order: job.bootOrder)
        stats.answer("ALLOCATE_HTAB", "0")
        stats.with { $0.reboots += 1 }
        order = job.bootOrder
        guest.restarted()
        return true
      } catch {
        if error.errno == .hostDown { return false }
        stats.answer("ALLOCATE_HTAB", error.errno.name)
        if error.errno != .EBUSY {
          unexpected("ALLOCATE_HTAB", job.bootOrder, error.errno.name)
          return true
        }
        guest.vm.kickVCPUs()
        executor.sleep(ms: 1)
      }
    }
    return false
  }

  /// COMMIT with nothing prepared: the kernel must answer ENXIO.
  func commitWithoutPrepare() -> Bool {
    stats.with { $0.attempted += 1 }
    let target = UInt32(Int(job.orderMin) + rng.below(Int(job.orderMax - job.orderMin) + 1))
    do {
      _ = try guest.vm.resizeHPTPrepare(flags: 0, shift: 0)  // make sure nothing is pending
      try guest.vm.resizeHPTCommit(flags: 0, shift: target)
      stats.answer("COMMIT", "0")
      unexpected("COMMIT", target, "0 (success) with nothing prepared")
    } catch {
      if error.errno == .hostDown { return false }
      stats.answer("COMMIT", error.errno.name)
      classify("COMMIT", target, error.errno, expected: error.errno == .ENXIO)
    }
    return true
  }

  func classify(_ op: String, _ target: UInt32, _ errno: Errno, expected: Bool) {
    if expected {
      stats.with { $0.failedExpected += 1 }
    } else {
      unexpected(op, target, errno.name)
    }
  }

  func unexpected(_ op: String, _ target: UInt32, _ answer: String) {
    let u = UnexpectedAnswer(
      guest: guest.name, op: op, order: target, fromOrder: order, answer: answer,
      hostTimeS: nowMs / 1000)
    stats.unexpected(u)
  }
}

/// The run's budget: host time and/or a number of resize cycles.
final class Budget: @unchecked Sendable {
  let deadlineNs: UInt64?
  let resizes: Int?
  private var done = 0
  private let lock = NSLock()

  init(startNs: UInt64, durationS: Double?, resizes: Int?) {
    deadlineNs = durationS.map { startNs + UInt64($0 * 1e9) }
    self.resizes = resizes
  }

  func count() { lock.locked { done += 1 } }

  func exhausted(now: UInt64) -> Bool {
    if let d = deadlineNs, now >= d { return true }
    if let r = resizes { return lock.locked { done >= r } }
    return false
  }
}
