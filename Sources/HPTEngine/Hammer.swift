import Foundation
import HPTRandom
import KVMHost

/// The resize hammer of one guest, the same for every backend: it walks the job's policies
/// (or its fixed order sequence), keeps the budget and the counters, and sorts every answer
/// of its ResizeDriver into expected (ExpectedAnswers) or a finding.
public final class Hammer: @unchecked Sendable {
  let driver: any ResizeDriver
  let job: Job
  let stats: RunStats
  let executor: any AgentExecutor
  var rng: SplitMix64
  /// The guest's HPT order now: a valid order always, so growing and shrinking cannot wrap.
  var order: HPTOrder = 18
  let budget: Budget
  /// Set when the job cannot run on this guest (the run ends with it as its error).
  public private(set) var configError: String?

  public init(
    driver: any ResizeDriver, job: Job, stats: RunStats, executor: any AgentExecutor,
    rng: SplitMix64, budget: Budget
  ) {
    self.driver = driver
    self.job = job
    self.stats = stats
    self.executor = executor
    self.rng = rng
    self.budget = budget
  }

  var nowMs: Double { Double(executor.nowNs) / 1e6 }

  public func run() {
    // A driver reads the guest's order back; one it cannot read is the boot order.
    order = HPTOrder(rawValue: driver.startOrder(boot: job.bootOrder.rawValue)) ?? job.bootOrder
    if job.commitBeforeRun {
      stats.with { $0.attempted += 1 }
      let target = order.rawValue
      guard count(driver.commitBeforeRun(at: target), target, beforeRun: true) else { return }
    }
    var waitingSince: Double?
    var sequenceIndex = 0
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
      if !driver.guestRunning {
        let since = waitingSince ?? nowMs
        waitingSince = since
        let limitMs = job.target.spec.hungAfterS * 1000
        if nowMs - since > limitMs {
          unexpected(
            "KVM_RUN", order.rawValue,
            "the guest did not run for \(Int(limitMs / 1000)) s after it was (re)started",
            evidence: driver.stuckGuestEvidence())
          executor.requestStop()
          break
        }
        executor.sleep(ms: 1)
        continue
      }
      waitingSince = nil
      let ok: Bool
      if let sequence = job.libvirt.orderSequence, !sequence.isEmpty {
        // A fixed walk of orders, round and round.
        let target = sequence[sequenceIndex % sequence.count]
        sequenceIndex += 1
        ok = step(.randomWalk, to: target)
      } else {
        ok = walk(job.policies[rng.below(job.policies.count)])
      }
      if executor.clockIsSimulated {
        let (timeline, done, verified) = stats.with {
          ($0.timeline, $0.succeeded, $0.pagesVerified)
        }
        timeline?.sampleRates(atNs: executor.nowNs, resizes: done, pagesVerified: verified)
      }
      if !ok { break }
      budget.count()
      if job.pauseMs > 0 { executor.sleep(ms: job.pauseMs) }
    }
  }

  /// The policy table: each policy's target, and the driver step that does it. A new policy
  /// is one line here and one driver method. Returns false when the hammer must stop.
  func walk(_ policy: ResizePolicy) -> Bool {
    switch policy {
    case .grow: return step(policy, to: order.grown(upTo: job.orderMax))
    case .shrink: return step(policy, to: order.shrunk(downTo: job.orderMin))
    case .sameOrder: return step(policy, to: order)
    case .jump: return step(policy, to: anyOrder())
    case .randomWalk:
      let s = rng.below(3)
      return step(
        policy,
        to: s == 0
          ? order.shrunk(downTo: job.orderMin) : s == 1 ? order : order.grown(upTo: job.orderMax))
    case .cancelDuringPrepare:
      let target = anyOrder()
      let other = target == job.orderMax ? job.orderMin : target.grown(upTo: job.orderMax)
      stats.with { $0.attempted += 1 }
      return count(
        driver.cancelDuringPrepare(
          to: target.rawValue, other: other.rawValue, choose: { self.rng.below(3) }),
        target.rawValue, policy: policy)
    case .commitWithoutPrepare:
      let target = anyOrder().rawValue
      stats.with { $0.attempted += 1 }
      return count(driver.commitWithoutPrepare(to: target), target, policy: policy)
    case .reboot:
      // Not a resize: not counted as an attempt.
      let boot = job.bootOrder
      return count(
        driver.reboot(
          to: boot.rawValue, budgetSpent: { self.budget.exhausted(now: self.executor.nowNs) }),
        boot.rawValue, policy: policy)
    }
  }

  func anyOrder() -> HPTOrder {
    let (lo, hi) = (job.orderMin.rawValue, job.orderMax.rawValue)
    return HPTOrder(rawValue: lo + UInt32(rng.below(Int(hi - lo) + 1)))!
  }

  func step(_ policy: ResizePolicy, to target: HPTOrder) -> Bool {
    step(policy, to: target.rawValue)
  }

  /// A resize to `target` by the driver's PREPARE-then-COMMIT; a raw shift, as an order
  /// sequence may ask for one the kernel must refuse.
  func step(_ policy: ResizePolicy, to target: UInt32) -> Bool {
    stats.with { $0.attempted += 1 }
    return count(driver.resize(from: order.rawValue, to: target), target, policy: policy)
  }

  /// Counts one outcome; returns false when the hammer must stop.
  func count(
    _ outcome: ResizeOutcome, _ target: UInt32, policy: ResizePolicy? = nil,
    beforeRun: Bool = false
  ) -> Bool {
    switch outcome {
    case .committed(let t):
      stats.with {
        $0.succeeded += 1
        if let p = t?.prepareNs { $0.prepareToReadyUs.record(p / 1000) }
        if let c = t?.commitNs { $0.commitUs.record(c / 1000) }
      }
      if let t { timeline(t, to: target, answer: "0") }
      // The kernel commits only orders it accepts (18...46).
      order = HPTOrder(rawValue: target) ?? order
    case .refused(let op, let errno, let t):
      if let t {
        if let p = t.prepareNs { stats.with { $0.prepareToReadyUs.record(p / 1000) } }
        timeline(t, to: target, answer: errno.name)
      }
      let expected = ExpectedAnswers.expected(
        op: op, errno: errno, policy: policy, from: order.rawValue, to: target, beforeRun: beforeRun
      )
      if expected {
        stats.with { $0.failedExpected += 1 }
      } else {
        unexpected(op, target, errno.name)
      }
    case .wrong(let op, let answer): unexpected(op, target, answer)
    case .cancelled: stats.with { $0.failedExpected += 1 }
    case .excused(let op, let answer, let why):
      stats.with { $0.failedExpected += 1 }
      stats.answer("\(op) \(why)", answer)
    case .reset: order = job.bootOrder
    case .idle: break
    case .configError(let message):
      configError = message
      executor.requestStop()
      return false
    case .hostDown(let t):
      // The COMMIT the host died in: its PREPARE still counts.
      if let p = t?.prepareNs { stats.with { $0.prepareToReadyUs.record(p / 1000) } }
      // Nothing more can be asked of this host, and nothing else would end the run: the
      // budget is the hammer's to keep (seen when the lab's own QEMU died under a run).
      executor.requestStop()
      return false
    case .stopping:
      executor.requestStop()
      return false
    }
    return true
  }

  func timeline(_ t: ResizeTimings, to target: UInt32, answer: String) {
    stats.with { $0.timeline }?.resize(
      atNs: t.atNs, guest: driver.guestName, from: order.rawValue, to: target,
      prepareMs: t.prepareNs.map { Double($0) / 1e6 },
      commitMs: t.commitNs.map { Double($0) / 1e6 }, answer: answer)
  }

  func unexpected(_ op: String, _ target: UInt32, _ answer: String, evidence: String? = nil) {
    stats.unexpected(
      UnexpectedAnswer(
        guest: driver.guestName, op: op, order: target, fromOrder: order.rawValue, answer: answer,
        hostTimeS: nowMs / 1000, evidence: evidence))
  }
}

/// The run's budget: host time and/or a number of resize cycles.
public final class Budget: @unchecked Sendable {
  let deadlineNs: UInt64?
  let resizes: Int?
  private var done = 0
  private let lock = NSLock()

  public init(startNs: UInt64, durationS: Double?, resizes: Int?) {
    deadlineNs = durationS.map { startNs + UInt64($0 * 1e9) }
    self.resizes = resizes
  }

  public func count() { lock.locked { done += 1 } }

  public func exhausted(now: UInt64) -> Bool {
    if let d = deadlineNs, now >= d { return true }
    if let r = resizes { return lock.locked { done >= r } }
    return false
  }
}
