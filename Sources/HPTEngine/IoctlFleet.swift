import Foundation
import HPTRandom
import KVMHost
import KernelLog
import PPC64

/// One guest as the engine drives it.
final class GuestContext: @unchecked Sendable {
  let name: String
  let vm: any KVMVirtualMachine
  let vcpus: [any KVMVCPU]
  /// What each vCPU's payload walks, by vCPU id (for the host-view check).
  var payloads: [UInt32: GuestPayload] = [:]
  /// Cleared while the hammer provokes COMMIT-before-run; vCPUs wait for it.
  let mayRun = LockedFlag()
  private let lock = NSLock()
  private var _started = false
  private var _generation = 0
  /// Whether a vCPU has run since the guest was last (re)started.
  var started: Bool { lock.locked { _started } }
  /// Bumped at every reset (reboot): a KVM_RUN that began before it does not count.
  var generation: Int { lock.locked { _generation } }
  /// The guest was reset: it has not run since.
  func restarted() {
    lock.locked {
      _generation += 1
      _started = false
    }
  }
  /// A KVM_RUN that began in `generation` entered the guest.
  func ran(since generation: Int) {
    lock.locked { if _generation == generation { _started = true } }
  }
  private var _inRun = 0
  /// How many of its vCPU threads are inside KVM_RUN now.
  var inRun: Int { lock.locked { _inRun } }
  /// `body` (a KVM_RUN), counted in `inRun`.
  func running<T>(_ body: () throws(KVMError) -> T) throws(KVMError) -> T {
    lock.locked { _inRun += 1 }
    defer { lock.locked { _inRun -= 1 } }
    return try body()
  }
  /// When the host last freed each page of this guest's RAM (memory_load advice remove).
  let freeLog: FreeLog
  init(name: String, vm: any KVMVirtualMachine, vcpus: [any KVMVCPU], memory: UInt64) {
    self.name = name
    self.vm = vm
    self.vcpus = vcpus
    freeLog = FreeLog(pages: Int(memory >> 16))
  }
}

/// When the host last freed each 64 KiB page of a guest's RAM, on one clock with the payload's
/// reports. The host-view check needs it to tell a page freed *before* the guest wrote it
/// (then the VMM's mapping must hold the write: a new page was faulted in, and a write that
/// went elsewhere went through a translation KVM failed to drop) from one freed after (its 0
/// is the free's doing). A mark that only says "freed once" blinds the check: under a steady
/// load every page is freed within seconds, and a stale translation's writes then pass.
final class FreeLog: @unchecked Sendable {
  private let lock = NSLock()
  private var clock: UInt64 = 0
  /// Per page: the clock when its last free ended; 0 never freed, .max while being freed.
  private var freedAt: [UInt64]
  init(pages: Int) { freedAt = Array(repeating: 0, count: pages) }

  /// Frees `pages` (page indexes) with `body`: marked before it starts, stamped when it ends,
  /// whether it succeeded or not.
  func freeing<E: Error>(_ pages: Range<Int>, _ body: () throws(E) -> Void) throws(E) {
    let r = pages.clamped(to: 0..<freedAt.count)
    lock.withLock { for i in r { freedAt[i] = .max } }
    defer {
      lock.withLock {
        clock += 1
        for i in r { freedAt[i] = clock }
      }
    }
    try body()
  }

  /// A payload report: its time on the clock.
  func tick() -> UInt64 {
    lock.withLock {
      clock += 1
      return clock
    }
  }

  /// Whether `page` was being freed, or was freed, after clock time `time`.
  func freed(page: Int, after time: UInt64) -> Bool {
    lock.withLock { page >= 0 && page < freedAt.count && freedAt[page] > time }
  }
}

/// The ioctl backends' guests (sim, raw, raw-sim): VMs made through `KVMSystem`, one agent per
/// vCPU running the payload (which writes, verifies and reports guest memory), the host memory
/// load and VM lifecycle churn beside them, each guest resized by an IoctlResizeDriver.
final class IoctlFleet: GuestFleet, @unchecked Sendable {
  let host: any KVMSystem
  let kernel: HostKernel
  let machine: (any HostMachine)?
  let memoryHost: (any HostMachine)?
  private var runner: Runner!
  private var guests: [GuestContext] = []
  private var job: Job { runner.job }
  private var stats: RunStats { runner.stats }

  init(
    host: any KVMSystem, kernel: HostKernel, machine: (any HostMachine)?,
    memoryHost: (any HostMachine)?
  ) {
    self.host = host
    self.kernel = kernel
    self.machine = machine
    self.memoryHost = memoryHost
  }

  var executor: any AgentExecutor { host.executor }
  var hostLog: (source: any KernelLogSource, origin: LogOrigin)? {
    (host.kernelLog, .host(host.hostName))
  }
  var watchesHostForHang: Bool { false }
  var lostChannel: String? {
    host.statistics["hostd_gone"] != nil ? "hpthammer-hostd" : nil
  }
  var statistics: [String: Int] { host.statistics }

  /// The host was opened by its backend (Backends.swift).
  func open(_ run: Runner) throws { runner = run }

  func startGuests(_ run: Runner) throws -> [FleetGuest] {
    do {
      guests = try setUp()
    } catch {
      throw FleetError("setting up the guests failed: \(error)")
    }
    let exec = host.executor
    var seeds = SplitMix64(seed: job.seed ^ 0x4a4d_4d45_5200)
    var out: [FleetGuest] = []
    for g in guests {
      let vcpus = g.vcpus.map { v in Agent(name: "CPU \(v.id)/KVM") { [self] in vcpuLoop(g, v) } }
      let driver = IoctlResizeDriver(
        guest: g, stats: stats, executor: exec, prepareTimeoutMs: job.prepareTimeoutMs)
      driver.willCommitBeforeRun = { [flag = run.commitBeforeRunIssued] in flag.value = true }
      if let machine {
        driver.hostThreads = { machine.probe(Self.hostdThreadsScript) }
      }
      var guest = FleetGuest(driver: driver, rng: seeds.split(), before: vcpus)
      if let every = job.invalidateEveryMs {
        let rng = seeds.split()
        let pages = job.invalidatePages
        let memory = UInt64(job.guestMemoryMiB) << 20
        let how = job.invalidateAdvice
        guest.after.append(
          Agent(name: "kcompactd0") { [self] in
            var r = rng
            hostMemoryLoad(
              g, exec: exec, everyMs: every, pages: pages, memory: memory, how: how, rng: &r
            ) { [self] e in memoryLoadRefused(e, how: how, guest: g.name) }
          })
      }
      out.append(guest)
    }
    return out
  }

  func agents(_ run: Runner) -> [Agent] {
    guard let every = job.lifecycleEveryMs else { return [] }
    let irqchip = job.lifecycleIRQChip
    return [Agent(name: "vm-lifecycle") { [self] in vmLifecycle(host.executor, every, irqchip) }]
  }

  /// The guests' VMs close inside the run, not after its report: closing unmaps guest RAM, and
  /// a kernel that still holds stale translations oopses there (the MMU notifier in munmap).
  /// As an agent, so that the executor's stall handling cuts a call that never returns (a
  /// hostd thread that died in that oops), and the log drained after it holds the oops.
  func stop(_ run: Runner) {
    guard !job.backend.usesKernelModel && !run.hostCrashed.value else { return }
    let guests = guests
    host.executor.run([Agent(name: "hpthammer-teardown") { for g in guests { g.vm.close() } }])
    run.recorder.phase("guests-closed")
  }

  func cleanUp(_ run: Runner) {}

  /// On a real host the kernel under test is the host's own, named by its release (the
  /// verdict line and dedup say which kernel broke); the host's name goes to `target`.
  /// A simulated model is named by the model.
  func end(_ run: Runner) -> FleetEnd {
    let real = !run.job.backend.usesKernelModel
    return FleetEnd(
      kernel: kernel.name, kernelRelease: kernel.release, target: real ? host.hostName : nil,
      figures: host.statistics)
  }

  // MARK: setup

  func setUp() throws -> [GuestContext] {
    let api = try host.apiVersion()
    guard api == 12 else { throw FleetError("KVM API version \(api), expected 12") }
    guard try host.checkExtension(.spaprResizeHPT) > 0 else {
      throw FleetError(
        "\(host.hostName): KVM_CAP_SPAPR_RESIZE_HPT is 0: this host cannot resize HPTs (not a POWER KVM-HV host, or kvm_hv not loaded)"
      )
    }
    var out: [GuestContext] = []
    let memory = UInt64(job.guestMemoryMiB) << 20
    for gi in 0..<job.guestCount {
      let vm = try host.createVM(type: .hv)
      try vm.setUserMemoryRegion(slot: 0, guestPhysAddr: 0, size: memory)
      _ = try vm.allocateHTAB(order: job.bootOrder.rawValue)
      var vcpus: [any KVMVCPU] = []
      // The guest kernel keeps the first 1/16 of RAM; the payload walks the rest, split per vCPU.
      let reserved = memory / 16
      let per = ((memory - reserved) / UInt64(job.vcpus)) & ~0xffff
      var payloads: [UInt32: GuestPayload] = [:]
      for ci in 0..<job.vcpus {
        let v = try vm.createVCPU(id: UInt32(ci))
        let p = GuestPayload(
          base: reserved + UInt64(ci) * per, size: per,
          patternSeed: job.seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(gi * 64 + ci),
          pagesPerReport: job.pagesPerReport,
          boltedSecondaryHPTEs: ci == 0 ? job.boltedSecondaryHPTEs : 0,
          takenTable: job.invalidateAdvice == .remove
            ? Self.takenTable(vcpu: ci, walked: per, reserved: reserved) : 0)
        try vm.loadPayload(p, vcpu: UInt32(ci))
        payloads[UInt32(ci)] = p
        vcpus.append(v)
      }
      let g = GuestContext(name: "guest\(gi)", vm: vm, vcpus: vcpus, memory: memory)
      g.payloads = payloads
      g.mayRun.value = !job.commitBeforeRun
      out.append(g)
    }
    return out
  }

  /// Every hostd thread on the host: state, wait channel, the syscall it is in (54 with
  /// 0xae80 is ioctl KVM_RUN on ppc64) and its kernel stack. By /proc and the executable's
  /// name (staged as ...-hpthammer-hostd-ARCH-HASH, its comm is a hash): the lab has no pgrep.
  static let hostdThreadsScript = #"""
    for d in /proc/[0-9]*; do
      case "$(readlink $d/exe 2>/dev/null)" in *hpthammer-hostd*) ;; *) continue ;; esac
      p=${d#/proc/}
      for t in $d/task/*; do
        s=$(cut -d' ' -f3 $t/stat 2>/dev/null) || continue
        echo "hostd $p thread ${t##*/}: state $s wchan $(cat $t/wchan 2>/dev/null) syscall $(cat $t/syscall 2>/dev/null | cut -d' ' -f1-3)"
        sed 's/^/    /' $t/stack 2>/dev/null
      done
    done
    """#

  // MARK: agents

  func vcpuLoop(_ g: GuestContext, _ v: any KVMVCPU) {
    let exec = host.executor
    var reported = false
    var lastReport: UInt64 = 0  // on g.freeLog's clock
    while !exec.stopRequested {
      // Held back while the hammer reboots the guest or provokes COMMIT-before-run.
      if !g.mayRun.value {
        exec.sleep(ms: 1)
        continue
      }
      let exit: VCPUExit
      let generation = g.generation
      do {
        exit = try g.running { () throws(KVMError) in try v.run() }
      } catch {
        // Host down (the log tells why), or the kernel refused to run the vCPU: say which.
        stats.answer("KVM_RUN", error.errno.name)
        if error.errno != .hostDown && !exec.stopRequested {
          vcpuStopped("\(g.name) vCPU \(v.id): \(error)")
        }
        return
      }
      // A KVM_RUN kicked out before a reset, or one that never entered the guest, does not
      // make the guest started: a COMMIT before its MMU is set up again is the kernel's
      // "This shouldn't be possible" WARNING.
      if exit != .interrupted { g.ran(since: generation) }
      switch exit {
      case .paprHcall(let nr, let args) where nr == HPTHammerHcall.report && args.count >= 5:
        v.setHcallReturn(0)
        stats.with { $0.vcpuExits += 1 }
        let now = g.freeLog.tick()
        defer { lastReport = now }
        if !reported, args.count >= 7, let p = g.payloads[v.id],
          let bad = hostViewDiffers(g, p, pass: args[5], offset: args[6], since: lastReport)
        {
          reported = true
          guestCorrupted(
            "guest memory corruption: the host's view of \(g.name) differs from what it wrote",
            source: "\(g.name) host-view check",
            detail:
              "vCPU \(v.id) wrote 0x\(String(bad.wrote, radix: 16)) at guest-physical 0x\(String(bad.gpa, radix: 16)) (pass \(bad.pass)); the VMM's mapping holds 0x\(String(bad.host, radix: 16))."
          )
        }
        if args[1] > 0 && !reported {
          reported = true
          // A stable title (dedup across runs); the addresses go in the report.
          guestCorrupted(
            "guest memory corruption: \(g.name) read back data it did not write",
            source: "\(g.name) payload integrity check",
            detail:
              "vCPU \(v.id) read 0x\(String(args[4], radix: 16)) at guest-physical 0x\(String(args[2], radix: 16)), wrote 0x\(String(args[3], radix: 16))\n\(args[1]) of \(args[0]) verified pages differed so far."
          )
        }
        recordGuest(
          v, verified: args[0], mismatches: args[1], taken: args.count >= 8 ? args[7] : 0)
      case .paprHcall(let nr, let args) where nr == HPTHammerHcall.interrupt && args.count >= 5:
        // The guest stays in its vector's handler: this vCPU is done.
        guestInterrupted(g, v, GuestInterrupt(args))
        return
      case .interrupted:
        continue
      case .shutdown(let reason):
        stats.answer("KVM_RUN", "shutdown")
        if !exec.stopRequested { vcpuStopped("\(g.name) vCPU \(v.id) stopped: \(reason)") }
        return
      case .unsupported(let reason):
        stats.answer("KVM_RUN", "exit \(reason)")
        if !exec.stopRequested {
          vcpuStopped("\(g.name) vCPU \(v.id): KVM_RUN exit reason \(reason) is not handled")
        }
        return
      case .paprHcall:
        v.setHcallReturn(UInt64(bitPattern: -2))  // H_PARAMETER
      }
    }
  }

  /// A vCPU that cannot run any more ends the run: the guests' payloads are what the
  /// resizes race with. The kernel's refusal is an answer to record, not a kernel bug.
  func vcpuStopped(_ why: String) { runner.fail("a vCPU could not run: \(why)") }

  /// Each vCPU's last reported totals: pages verified, mismatches, pages taken.
  private var perVCPU: [ObjectIdentifier: (UInt64, UInt64, UInt64)] = [:]
  /// VM lifecycle churn beside the guests: create a small VM (64 MiB at order 18, an interrupt
  /// controller if asked), run its one vCPU to its second payload report (its first KVM_RUN
  /// sets up the MMU), destroy it (the device is released first, under kvm->lock). Each
  /// lifecycle is an answer "VM_LIFECYCLE" in run.json: 0, or the errno of the step that
  /// failed.
  func vmLifecycle(_ exec: any AgentExecutor, _ everyMs: Double, _ irqchip: Bool) {
    var n: UInt64 = 0
    while !exec.stopRequested {
      exec.sleep(ms: max(1, Int(everyMs)))
      if exec.stopRequested { break }
      n += 1
      do {
        let vm = try host.createVM(type: .hv)
        defer { vm.close() }
        try vm.setUserMemoryRegion(slot: 0, guestPhysAddr: 0, size: 64 << 20)
        _ = try vm.allocateHTAB(order: 18)
        if irqchip { try vm.createInterruptController() }
        let v = try vm.createVCPU(id: 0)
        try vm.loadPayload(
          GuestPayload(
            base: 4 << 20, size: 60 << 20, patternSeed: job.seed ^ n, pagesPerReport: 64),
          vcpu: 0)
        var reports = 0
        while reports < 2 && !exec.stopRequested {
          switch try v.run() {
          case .paprHcall(let nr, _) where nr == HPTHammerHcall.report:
            v.setHcallReturn(0)
            reports += 1
          case .interrupted: continue
          default: reports = 2
          }
        }
        stats.answer("VM_LIFECYCLE", "0")
      } catch {
        if error.errno == .hostDown { return }
        stats.answer("VM_LIFECYCLE", error.errno.name)
      }
    }
  }

  /// Where vCPU `vcpu`'s taken table goes: in the first 1/16 of RAM (kept out of the walked
  /// ranges), from 1 MiB up, 4 KiB aligned, one dword per walked page.
  static func takenTable(vcpu: Int, walked: UInt64, reserved: UInt64) -> UInt64 {
    let bytes = ((walked >> 16) * 8 + 0xfff) & ~0xfff
    let at = 0x10_0000 + UInt64(vcpu) * bytes
    precondition(at + bytes <= reserved, "taken tables past the reserved RAM")
    return at
  }

  /// The host-view check: the last `hostViewPages` pages the payload wrote before this report
  /// (its pass and offset say which, and with what; no more than it wrote since its previous
  /// report, at clock time `since`), read through the VMM's own mapping. A page the host began
  /// to free after `since` is skipped: it may have been freed after the write. One freed
  /// before must hold what the guest wrote. Returns the first difference.
  func hostViewDiffers(
    _ g: GuestContext, _ p: GuestPayload, pass: UInt64, offset: UInt64, since: UInt64
  ) -> (gpa: UInt64, wrote: UInt64, host: UInt64, pass: UInt64)? {
    let step: UInt64 = 1 << 16
    let pages = min(job.hostViewPages, Int(p.pagesPerReport))
    guard pages > 0 else { return nil }
    for k in 1...pages {
      var off = Int64(offset) - Int64(k) * Int64(step)
      var q = pass
      if off < 0 {
        guard pass > 0 else { return nil }
        off += Int64(p.size)
        q = pass - 1
      }
      let gpa = p.base + UInt64(off)
      guard let host = g.vm.readGuestDword(gpa) else { return nil }
      let wrote = Payload.pattern(seed: p.patternSeed, gpa: gpa, pass: q)
      if host == wrote || g.freeLog.freed(page: Int(gpa / step), after: since) { continue }
      return (gpa, wrote, host, q)
    }
    return nil
  }

  /// A guest memory corruption finding: recorded, timed, and the end of the run.
  func guestCorrupted(_ title: String, source: String, detail: String) {
    runner.guestFailed(
      Finding(
        title: title, type: "MEMORY_CORRUPTION", frame: nil, source: source, expected: false,
        file: nil, corrupted: false),
      report: "\(title)\n\(detail)\n", detail: "guest memory corruption")
  }

  /// The payload took an interrupt (its vectors reported it): the host lost or broke a
  /// translation of the guest's real-mode memory, a finding like a corrupted page. The title
  /// names the interrupt only, so that runs dedup; the addresses go in the report.
  func guestInterrupted(_ g: GuestContext, _ v: any KVMVCPU, _ i: GuestInterrupt) {
    runner.guestFailed(
      Finding(
        title: "guest took an unexpected \(i.name) interrupt in real mode",
        type: "GUEST_INTERRUPT", frame: nil, source: "\(g.name) interrupt vectors",
        expected: false, file: nil, corrupted: false),
      report: "\(g.name) vCPU \(v.id): \(i)\n", detail: "unexpected guest interrupt")
  }

  /// A payload report's running totals (since the vCPU started) into the run's counters.
  func recordGuest(_ v: any KVMVCPU, verified: UInt64, mismatches: UInt64, taken: UInt64) {
    stats.with { s in
      let key = ObjectIdentifier(v)
      let old = perVCPU[key] ?? (0, 0, 0)
      perVCPU[key] = (verified, mismatches, taken)
      s.pagesVerified += verified - old.0
      s.mismatches += mismatches - old.1
      s.pagesTaken += taken - old.2
    }
  }

  /// The host refused to take a guest's pages as the job asked: the host or its setup cannot
  /// do this load (not a kernel bug), so the run stops as one that could not test.
  func memoryLoadRefused(_ e: KVMError, how: HostInvalidation, guest: String) {
    guard e.errno != .hostDown else { return }
    runner.infrastructureFailed(
      "memory_load.host_invalidate (advice \(how.rawValue)) for \(guest): the host refused it: \(e)"
    )
  }
}

/// Why a fleet could not open its host or start its guests.
public struct FleetError: Error, CustomStringConvertible {
  public var description: String
  public init(_ d: String) { description = d }
}

/// Host-side memory load: take a random range of guest pages every `everyMs` (`how`: zap, hole
/// punch, reclaim, migration), forcing HPTE invalidations through the MMU notifier and
/// re-faults. A refusal (anything but the host going down) is handed to `refused`.
func hostMemoryLoad(
  _ g: GuestContext, exec: any AgentExecutor, everyMs: Double, pages: Int, memory: UInt64,
  how: HostInvalidation, rng: inout SplitMix64, refused: (KVMError) -> Void
) {
  let spans = hostMemoryLoadSpans(g, memory: memory, how: how)
  while !exec.stopRequested {
    exec.sleep(ms: max(1, Int(everyMs)))
    if exec.stopRequested { break }
    let span = spans.count == 1 ? spans[0] : spans[rng.below(spans.count)]
    let first = span.lowerBound + rng.below(max(1, span.count - pages))
    do {
      let free = { () throws(KVMError) in
        try g.vm.invalidateGuestMemory(
          guestPhysAddr: UInt64(first) << 16, size: UInt64(pages) << 16, how: how)
      }
      // Only a hole punch frees the data; the other advices keep it (reclaim, migration).
      if how == .remove { try g.freeLog.freeing(first..<first + pages, free) } else { try free() }
    } catch {
      refused(error)
      return
    }
  }
}

/// Where the memory load's ranges start, in 64 KiB pages: anywhere in guest RAM for an advice
/// that keeps the data; for a hole punch only the pages the payloads walk, which their taken
/// tables cover. Punched elsewhere it would wipe the payload's own code, parameter block or
/// taken tables, and the guest would then "corrupt" pages the host never told it about.
func hostMemoryLoadSpans(_ g: GuestContext, memory: UInt64, how: HostInvalidation) -> [Range<Int>] {
  let all = [0..<Int(memory >> 16)]
  guard how == .remove else { return all }
  let walked = g.payloads.sorted { $0.key < $1.key }.map { _, p in
    Int(p.base >> 16)..<Int((p.base + p.size) >> 16)
  }
  return walked.isEmpty ? all : walked
}
