/// A small lockdep (kernel/locking/lockdep.c) for kernels built with PROVE_LOCKING
/// (Guests/lab/lockdep.config): it learns which lock class is taken while another is held,
/// and reports the first inversion once, then turns itself off (debug_locks_off), as lockdep
/// does. Lock classes are named as lockdep prints them ("&kvm->lock", "&vcpu->mutex").
struct SimLockdep {
  /// Where a dependency was first seen: the function that took the inner lock (with its
  /// callers), and where the outer one was taken.
  struct Site {
    var stack: [Frame]
    var outerAt: Frame
  }

  var on: Bool
  /// held class -> classes taken inside it -> where first seen.
  private var after: [String: [String: Site]] = [:]

  init(on: Bool) { self.on = on }

  /// `inner` taken while `outer` is held. Returns the site of the opposite order if that was
  /// seen before (an inversion: lockdep's report, after which it is off), else records this
  /// one and returns nil.
  mutating func acquire(_ inner: String, holding outer: String, site: Site) -> Site? {
    guard on, inner != outer else { return nil }
    if let reverse = after[inner]?[outer] {
      on = false
      return reverse
    }
    if after[outer]?[inner] == nil { after[outer, default: [:]][inner] = site }
    return nil
  }
}

extension OopsWriter {
  /// "WARNING: possible circular locking dependency detected", as 6.1's lockdep prints it for
  /// two classes: `inner` wanted at `site` while `outer` is held; `earlier` is where `outer`
  /// was taken inside `inner` before.
  mutating func circularLocking(
    inner: String, outer: String, site: SimLockdep.Site, earlier: SimLockdep.Site, cpu: Int,
    pid: Int, comm: String
  ) -> [String] {
    let m = host.model
    let innerAddr = 0xc000_0000_2aee_00b0 &+ (UInt64(rng.below(0x1000)) << 8)
    let outerAddr = 0xc000_0000_03da_0b50 &+ (UInt64(rng.below(0x1000)) << 8)
    let cls = "{+.+.}-{3:3}"
    let task = "\(comm)/\(pid)"
    func stack(_ frames: [Frame]) -> [String] { frames.map { "      " + describe($0) } }
    var lines = [
      "WARNING: possible circular locking dependency detected",
      "\(m.release) #2 \(taintWords)",
      "------------------------------------------------------",
      "\(task) is trying to acquire lock:",
      "\(hex(innerAddr, width: 16)) (\(inner))\(cls), at: \(describe(site.stack[0]))",
      "",
      "but task is already holding lock:",
      "\(hex(outerAddr, width: 16)) (\(outer))\(cls), at: \(describe(site.outerAt))",
      "",
      "which lock already depends on the new lock.",
      "",
      "",
      "the existing dependency chain (in reverse order) is:",
      "",
      "-> #1 (\(outer))\(cls):",
    ]
    lines += stack([Frame("__mutex_lock", 0xd4)] + earlier.stack)
    lines += ["", "-> #0 (\(inner))\(cls):"]
    lines += stack(
      [Frame("__lock_acquire", 0x1510), Frame("lock_acquire", 0x130), Frame("__mutex_lock", 0xd4)]
        + site.stack)
    lines += [
      "", "other info that might help us debug this:", "",
      " Possible unsafe locking scenario:", "",
      "       CPU0                    CPU1",
      "       ----                    ----",
      "  lock(\(outer));",
      "                               lock(\(inner));",
      "                               lock(\(outer));",
      "  lock(\(inner));",
      "", " *** DEADLOCK ***", "",
      "1 lock held by \(task):",
      " #0: \(hex(outerAddr, width: 16)) (\(outer))\(cls), at: \(describe(site.outerAt))",
      "", "stack backtrace:",
      "CPU: \(cpu) PID: \(pid) Comm: \(comm) \(taintWords) \(m.release) #2",
      "Hardware name: 8335-GTW POWER9 (raw) 0x4e1202 opal:skiboot-v6.5.3-35-g1851b2a06 PowerNV",
      "Call Trace:",
    ]
    var sp = 0xc000_0001_4279_76d0 &+ (UInt64(rng.below(0x1000)) << 12)
    let frames =
      [
        Frame("dump_stack_lvl", 0x9c), Frame("print_circular_bug", 0x37c),
        Frame("check_noncircular", 0x1b0), Frame("__lock_acquire", 0x1510),
        Frame("lock_acquire", 0x130), Frame("__mutex_lock", 0xd4),
      ] + site.stack
    for (k, f) in frames.enumerated() {
      let note = k == 0 ? " (unreliable)" : ""
      lines.append(
        "[\(hex(sp, width: 16))] [\(hex(address(of: f), width: 16))] \(describe(f))\(note)")
      sp &+= 0x40 + UInt64(rng.below(8)) * 0x10
    }
    return lines
  }
}
