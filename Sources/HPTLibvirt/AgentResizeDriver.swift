import Foundation
import HPTEngine
import KVMHost

/// Resizes from inside the guest: the agent writes the order to
/// /sys/kernel/debug/powerpc/hpt_order and answers with the errno and its PREPARE and COMMIT
/// times (the guest's kernel asks the host for both, through H_RESIZE_HPT_PREPARE/_COMMIT).
final class AgentResizeDriver: ResizeDriver, @unchecked Sendable {
  static let policies = ResizePolicy.orderChanges
  /// How long after a dimm attach/detach a refused resize is put down to it.
  static let hotplugWindowS = 30.0
  let link: GuestLink
  let stats: RunStats
  let exec: any AgentExecutor
  /// Whether the run's budget is spent (the Runner's).
  let budgetExhausted: @Sendable () -> Bool

  init(
    link: GuestLink, stats: RunStats, exec: any AgentExecutor,
    budgetExhausted: @escaping @Sendable () -> Bool
  ) {
    self.link = link
    self.stats = stats
    self.exec = exec
    self.budgetExhausted = budgetExhausted
  }

  var guestName: String { link.name }
  var guestRunning: Bool { true }  // the agent answers only from a running guest

  /// The domain boots at the job's order; the agent's answer, when it comes, is the truth.
  func startOrder(boot: UInt32) -> UInt32 {
    try? link.send("order")
    if let l = link.await(["hpt"], timeoutS: 10), let o = l.int(0), o > 0 { return UInt32(o) }
    return boot
  }

  func resize(from order: UInt32, to target: UInt32) -> ResizeOutcome {
    do { try link.send("resize \(target)") } catch { return .hostDown() }  // the console is gone
    // Wait for the answer in slices: the budget may end meanwhile (a resize can wait long
    // behind a memory unplug in the guest), and then the missing answer is not a failure.
    var answer: AgentLine?
    for _ in 0..<60 where answer == nil {
      answer = link.await(["resized"], timeoutS: 1)
      if answer == nil && (exec.stopRequested || budgetExhausted()) { break }
    }
    let nearHotplug = link.secondsSinceHotplug < Self.hotplugWindowS
    guard let line = answer, let r = GuestResize(line) else {
      if exec.stopRequested || budgetExhausted() { return .stopping }
      // A console that ended is not the guest's answer: its QEMU or libvirtd went away (the
      // lifecycle and libvirtd watchers say which).
      if link.consoleEnded { return .hostDown() }
      // A resize waits behind the guest's own resizes for an unplug (seen up to minutes).
      return nearHotplug
        ? .excused(op: "hpt_order", answer: "no answer in 60 s", why: "near hotplug")
        : .wrong(op: "hpt_order", answer: "no answer in 60 s")
    }
    let e = Errno(rawValue: r.errno)
    stats.answer("hpt_order", r.errno == 0 ? "0" : e.name)
    stats.answer("hpt_order \(link.name)", r.errno == 0 ? "0" : e.name)
    if r.errno == 0 {
      return .committed(
        ResizeTimings(
          prepareNs: r.prepareMs >= 0 ? UInt64(r.prepareMs) * 1_000_000 : nil,
          commitNs: r.commitMs >= 0 ? UInt64(r.commitMs) * 1_000_000 : nil, atNs: exec.nowNs))
    }
    if e == .ENODEV {
      return .configError(
        "HPT resizing is disabled for this domain (the guest's hpt_order write answers ENODEV): set libvirt.resizing to required or enabled"
      )
    }
    // Near a hotplug the guest resizes by itself: the order the harness believes in is stale
    // (EPERM for what is now above the limit), and a resize racing the guest's own answers
    // ETIMEDOUT or EIO. Counted apart, not failures.
    if nearHotplug && [.EPERM, .ETIMEDOUT, .EIO, .EBUSY, .ENOSPC].contains(e) {
      return .excused(op: "hpt_order", answer: e.name, why: "near hotplug")
    }
    return .refused(op: "hpt_order", errno: e, timings: nil)
  }
}
