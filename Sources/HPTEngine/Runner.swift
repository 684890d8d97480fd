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
  init(name: String, vm: any KVMVirtualMachine, vcpus: [any KVMVCPU]) {
    self.name = name
    self.vm = vm
    self.vcpus = vcpus
  }
}

/// A crash or failure the run found.
public struct Finding: Codable, Sendable, Equatable {
  public var title: String
  public var type: String
  public var frame: String?
  /// "host", "guest0", ...
  public var source: String
  /// A splat the harness provoked on purpose and the kernel must print (not a bug).
  public var expected: Bool
  /// The report file in the run directory.
  public var file: String?
  public var corrupted: Bool

  public init(
    title: String, type: String, frame: String?, source: String, expected: Bool, file: String?,
    corrupted: Bool
  ) {
    self.title = title
    self.type = type
    self.frame = frame
    self.source = source
    self.expected = expected
    self.file = file
    self.corrupted = corrupted
  }
}

extension Finding {
  /// A crash report from a kernel log (host or guest).
  public init(_ r: CrashReport, source: String, expected: Bool = false) {
    self.init(
      title: r.title, type: r.type, frame: r.frame, source: source, expected: expected, file: nil,
      corrupted: r.corrupted)
  }
}

public enum Verdict: String, Codable, Sendable {
  case pass, bug, error

  /// `git bisect run` exit codes: 0 good, 1 bad, 125 cannot test.
  public var exitCode: Int32 {
    switch self {
    case .pass: return 0
    case .bug: return 1
    case .error: return 125
    }
  }
}

/// run.json.
public struct RunReport: Codable, Sendable {
  public struct Resizes: Codable, Sendable {
    public var attempted: Int
    public var succeeded: Int
    public var failed_expected: Int
    public var failed_unexpected: Int
  }
  public struct Latency: Codable, Sendable {
    public var prepare_to_ready: LatencySummary
    public var commit: LatencySummary
  }
  public struct Guests: Codable, Sendable {
    public var count: Int
    public var memory_mib: Int
    public var vcpus: Int
    public var boot_order: UInt32
    public var pages_verified: UInt64
    public var mismatches: UInt64
    /// Pages the host freed (advice remove) that the payloads found zeroed, as told.
    public var pages_taken: UInt64?
  }
  public struct Wall: Codable, Sendable {
    public var elapsed_s: Double
    public var resizes_per_s: Double
    public var faults_per_s: Double
  }
  public var verdict: Verdict
  /// What kind of failure: host oops, guest crash, guest hang, QEMU death, guest memory corruption.
  public var verdict_detail: String?
  public var error: String?
  public var job: String
  public var backend: String
  public var kernel: String
  public var kernel_release: String
  public var seed: UInt64
  public var reproduce: String
  public var host_time_s: Double
  /// Host seconds from the guests' start to the first line of the first unexpected crash on
  /// the host's log (nil: none); what a bug's time to detect is measured by.
  public var time_to_crash_s: Double?
  public var resizes: Resizes
  public var answers: [String: [String: Int]]
  public var unexpected: [UnexpectedAnswer]
  public var latency_ms: Latency
  public var guests: Guests
  public var crashes: [Finding]
  /// What the host or backend counted: the simulator's work, boot times, CPU time.
  public var figures: [String: Int]?
  /// The host under test when it is not this machine ("lab lab-powernv9", "remote p9-3").
  public var target: String?
  /// The host's resize ioctls as the kernel answered them (kretprobes), per return value.
  public var host_trace: HostTrace.Result?
  /// Wall-clock figures: with the run's identity (`provenance`'s run_id, started_at and
  /// ended_at), the only part of run.json that differs between two runs of a seed.
  public var wall: Wall
  /// The kernels, host and harness exactly (RunProvenance.swift); absent in older run.json.
  public var provenance: RunProvenance? = nil

  /// This report with `other`'s wall-clock figures and identity: what makes two runs of one
  /// seed encode the same when the runs were the same.
  public func withWallAndIdentity(of other: RunReport) -> RunReport {
    var r = self
    r.wall = other.wall
    if let o = other.provenance {
      r.provenance?.run_id = o.run_id
      r.provenance?.started_at = o.started_at
      r.provenance?.ended_at = o.ended_at
    }
    return r
  }
}

/// Runs one job on one host and writes the run directory.
public final class Runner: @unchecked Sendable {
  public let job: Job
  let host: any KVMSystem
  let outDir: URL
  let progress: ProgressPrinter
  let reproduce: String
  let recorder: RunRecorder
  /// Called with the run directory once its run.json says "running" (before the guests start).
  public var onBegin: (@Sendable (URL) -> Void)? {
    get { recorder.onBegin }
    set { recorder.onBegin = newValue }
  }
  var stats: RunStats { recorder.stats }
  let commitBeforeRunIssued = LockedFlag()
  /// host.log and the detector over it (nil only when the run directory could not be made).
  var hostLog: HostLogMonitor?

  /// The kernel under test, as its host reported it.
  let kernel: HostKernel

  public init(
    job: Job, host: any KVMSystem, kernel: HostKernel, outDir: URL, progress: Bool,
    reproduce: String
  ) {
    self.job = job
    self.host = host
    self.kernel = kernel
    self.outDir = outDir
    // Stats lines go to progress.log always, and to the terminal when asked.
    self.progress = ProgressPrinter(
      console: progress ? .standardError : nil,
      logURL: outDir.appendingPathComponent("progress.log"))
    self.reproduce = reproduce
    recorder = RunRecorder(job: job, outDir: outDir, reproduce: reproduce)
    recorder.kernel = kernel
  }

  /// Runs the job; the report is also in outDir/run.json.
  public func run() -> RunReport {
    do {
      try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
      hostLog = try HostLogMonitor(
        outDir: outDir, origin: .host(host.hostName), recorder: recorder)
    } catch {
      return finish(
        error: "cannot create the run directory \(outDir.path): \(error)", hostTimeStart: 0)
    }
    let exec = host.executor
    let start = exec.nowNs
    let guests: [GuestContext]
    do {
      guests = try setUp()
    } catch let e as KVMError {
      drainLog()
      return finish(error: "setting up the guests failed: \(e)", hostTimeStart: start)
    } catch {
      return finish(error: "setting up the guests failed: \(error)", hostTimeStart: start)
    }
    let mm: (any HostMMRun)?
    do {
      mm = try memoryHost?.startMemoryManagement(job.hostMM)
    } catch {
      return finish(error: "\(error)", hostTimeStart: start)
    }
    var seeds = SplitMix64(seed: job.seed ^ 0x4a4d_4d45_5200)
    let budget = Budget(startNs: start, durationS: job.durationS, resizes: job.resizeBudget)
    var agents: [Agent] = []
    for g in guests {
      for v in g.vcpus {
        agents.append(Agent(name: "CPU \(v.id)/KVM") { [self] in vcpuLoop(g, v) })
      }
      let driver = IoctlResizeDriver(
        guest: g, stats: stats, executor: exec, prepareTimeoutMs: job.prepareTimeoutMs)
      driver.willCommitBeforeRun = { [commitBeforeRunIssued] in commitBeforeRunIssued.value = true }
      let hammer = Hammer(
        driver: driver, job: job, stats: stats, executor: exec, rng: seeds.split(), budget: budget)
      agents.append(Agent(name: "hpthammer") { hammer.run() })
      if let every = job.invalidateEveryMs {
        let rng = seeds.split()
        let pages = job.invalidatePages
        let memory = UInt64(job.guestMemoryMiB) << 20
        let how = job.invalidateAdvice
        agents.append(
          Agent(name: "kcompactd0") {
            var r = rng
            hostMemoryLoad(
              g, exec: exec, everyMs: every, pages: pages, memory: memory, how: how, rng: &r
            ) { [self] e in memoryLoadRefused(e, how: how, guest: g.name) }
          })
      }
    }
    if let every = job.lifecycleEveryMs {
      let irqchip = job.lifecycleIRQChip
      agents.append(Agent(name: "vm-lifecycle") { [self] in vmLifecycle(exec, every, irqchip) })
    }
    agents.append(Agent(name: "hpthammer-log") { [self] in watchLog(exec) })
    recorder.begin(clock: { [exec] in exec.nowNs })
    progress.begin(job: job, stats: stats, executor: exec) { [host] in host.statistics }
    if job.target.traceResizes { machine?.startTrace() }
    recorder.guestsStartedNs.withLock { $0 = exec.nowNs }
    recorder.phase("hammering", ["guests": guests.count, "agents": agents.count])
    exec.run(agents)
    progress.end()
    recorder.phase("stopping", ["host_crashed": hostCrashed.value])
    if !job.backend.usesKernelModel && !hostCrashed.value {
      closeGuests(guests)
      recorder.phase("guests-closed")
    }
    drainLog()
    recorder.phase("log-drained")
    gatherEvidence()
    if let mm { recoveryFigures.merge(mm.end(hostDown: hostCrashed.value)) { _, new in new } }
    return finish(error: nil, hostTimeStart: start)
  }

  // MARK: setup

  func setUp() throws -> [GuestContext] {
    let api = try host.apiVersion()
    guard api == 12 else { throw SetupError("KVM API version \(api), expected 12") }
    guard try host.checkExtension(.spaprResizeHPT) > 0 else {
      throw SetupError(
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
      let g = GuestContext(name: "guest\(gi)", vm: vm, vcpus: vcpus)
      g.payloads = payloads
      g.mayRun.value = !job.commitBeforeRun
      out.append(g)
    }
    return out
  }

  struct SetupError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
  }

  // MARK: agents

  func vcpuLoop(_ g: GuestContext, _ v: any KVMVCPU) {
    let exec = host.executor
    var reported = false
    while !exec.stopRequested {
      // Held back while the hammer reboots the guest or provokes COMMIT-before-run.
      if !g.mayRun.value {
        exec.sleep(ms: 1)
        continue
      }
      let exit: VCPUExit
      let generation = g.generation
      do {
        exit = try v.run()
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
        if !reported, args.count >= 7, let p = g.payloads[v.id],
          let bad = hostViewDiffers(g, p, pass: args[5], offset: args[6])
        {
          reported = true
          guestCorrupted(
            "guest memory corruption: the host's view of \(g.name) differs from what it wrote",
            source: "\(g.name) host-view check", exec: exec,
            detail:
              "vCPU \(v.id) wrote 0x\(String(bad.wrote, radix: 16)) at guest-physical 0x\(String(bad.gpa, radix: 16)) (pass \(bad.pass)); the VMM's mapping holds 0x\(String(bad.host, radix: 16))."
          )
        }
        if args[1] > 0 && !reported {
          reported = true
          // A stable title (dedup across runs); the addresses go in the report.
          guestCorrupted(
            "guest memory corruption: \(g.name) read back data it did not write",
            source: "\(g.name) payload integrity check", exec: exec,
            detail:
              "vCPU \(v.id) read 0x\(String(args[4], radix: 16)) at guest-physical 0x\(String(args[2], radix: 16)), wrote 0x\(String(args[3], radix: 16))\n\(args[1]) of \(args[0]) verified pages differed so far."
          )
        }
        recordGuest(
          v, verified: args[0], mismatches: args[1], taken: args.count >= 8 ? args[7] : 0)
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
  private let vcpuLock = NSLock()
  private var vcpuFailure: String?
  func vcpuStopped(_ why: String) {
    vcpuLock.locked { if vcpuFailure == nil { vcpuFailure = why } }
    host.executor.requestStop()
  }

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
  /// (its pass and offset say which, and with what), read through the VMM's own mapping. A
  /// page the host freed since (its taken dword set) is skipped. Returns the first difference.
  func hostViewDiffers(_ g: GuestContext, _ p: GuestPayload, pass: UInt64, offset: UInt64) -> (
    gpa: UInt64, wrote: UInt64, host: UInt64, pass: UInt64
  )? {
    let step: UInt64 = 1 << 16
    guard job.hostViewPages > 0 else { return nil }
    for k in 1...job.hostViewPages {
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
      if host == wrote { continue }
      if p.takenTable != 0, g.vm.readGuestDword(p.takenTable + UInt64(off) / step * 8) != 0 {
        continue  // freed by the host after the write
      }
      return (gpa, wrote, host, q)
    }
    return nil
  }

  /// A guest memory corruption finding: recorded, timed, and the end of the run.
  func guestCorrupted(_ title: String, source: String, exec: any AgentExecutor, detail: String) {
    addFinding(
      Finding(
        title: title, type: "MEMORY_CORRUPTION", frame: nil, source: source, expected: false,
        file: nil, corrupted: false),
      report: "\(title)\n\(detail)\n")
    recorder.crashSeen(atNs: exec.nowNs)
    exec.requestStop()
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

  /// Reads the host kernel log as it is written: host.log gets every record at once (it
  /// survives a crash of the harness), the scanner sees each line; a crash stops the run.
  func watchLog(_ exec: any AgentExecutor) {
    while !exec.stopRequested {
      if let r = host.kernelLog.next(timeoutMs: 0) {
        consume(r, exec: exec)
      } else if host.kernelLog.isFinished {
        break
      } else {
        exec.sleep(ms: 2)
      }
    }
  }

  func consume(_ r: KernelLogRecord, exec: (any AgentExecutor)?) {
    for report in hostLog?.consume(r, atNs: host.executor.nowNs) ?? [] {
      // The first crash that is not a splat provoked on purpose ends the run; drainLog()
      // collects whatever the host prints after it.
      if !addCrash(report) {
        hostCrashed.value = true
        if let exec, !exec.stopRequested {
          exec.hostCrashed()  // this is the host's own log
          exec.requestStop()
        }
      }
    }
  }

  /// After the run: everything the host printed to the end (the rest of an oops, the panic).
  /// The guests' VMs closed inside the run, not after its report: closing unmaps guest RAM, and
  /// a kernel that still holds stale translations oopses there (the MMU notifier in munmap).
  /// As an agent, so that the executor's stall handling cuts a call that never returns (a
  /// hostd thread that died in that oops), and the log drained after it holds the oops.
  func closeGuests(_ guests: [GuestContext]) {
    host.executor.run([Agent(name: "hpthammer-teardown") { for g in guests { g.vm.close() } }])
  }

  func drainLog() {
    // A remote host's console lags its kernel: a report may still be on its way.
    let quiet = machine == nil ? 20 : 100
    var idle = 0
    while idle < quiet {
      if let r = host.kernelLog.next(timeoutMs: 10) {
        consume(r, exec: nil)
        idle = 0
      } else if host.kernelLog.isFinished {
        break
      } else {
        idle += 1
      }
    }
    for report in hostLog?.finish() ?? [] { addCrash(report) }
  }

  /// After the run, from a remote host: the resize counts, and after a crash that left it
  /// unanswering, its registers, a power cycle and what the kernel left (pstore, journal,
  /// vmcore-dmesg). A lab whose own QEMU died is not reset: run.json says so instead.
  func gatherEvidence() {
    guard let machine else { return }
    if !hostCrashed.value, host.statistics["hostd_gone"] != nil { hostdWentAway(machine) }
    let down = hostCrashed.value && !machine.answers(timeoutS: 10)
    if job.target.traceResizes { machine.collectTrace(hostDown: down) }
    if down, machine.emulatorGone == nil {
      recorder.phase("host-down", ["next": "registers, power cycle, last words"])
      recoveryFigures = machine.recover(
        after: "host crash", outDir: outDir, progress: progress, recorder: recorder)
    } else if hostCrashed.value, let dump = machine.saveRegisters(in: outDir) {
      progress.note("host crash: \(dump.split(separator: "\n").prefix(4).joined(separator: "; "))")
    }
  }
  var recoveryFigures: [String: Int] = [:]

  /// hostd's channel closed with no crash on the host's log: either the host went down without
  /// a word (a hang: a finding, as on libvirt) or only hostd or the way to the host died (the
  /// infrastructure: the run's error). The lab's own QEMU dying is the latter (finish says so).
  func hostdWentAway(_ target: any HostMachine) {
    guard target.emulatorGone == nil else { return }
    let deadline = Date().addingTimeInterval(target.hungAfterS)
    while Date() < deadline {
      if target.answers(timeoutS: 10) {
        infraError =
          "the channel to hpthammer-hostd on \(target.name) closed mid-run, and \(target.name) still answers ssh with no kernel message: hostd or the connection died, not the kernel (see host.log); rerun"
        return
      }
      Thread.sleep(forTimeInterval: 2)
    }
    let title =
      "host hang: \(target.name) answered no ssh and printed nothing for \(Int(target.hungAfterS)) s"
    addFinding(
      Finding(
        title: title, type: "HOST_HANG", frame: nil, source: "host", expected: false, file: nil,
        corrupted: false),
      report: title + "\n")
    hostCrashed.value = true
  }
  var infraError: String? {
    get { infraErrorLock.withLock { infraErrorText } }
    set { infraErrorLock.withLock { if infraErrorText == nil { infraErrorText = newValue } } }
  }
  private var infraErrorText: String?
  private let infraErrorLock = NSLock()

  /// The host refused to take a guest's pages as the job asked: the host or its setup cannot
  /// do this load (not a kernel bug), so the run stops as one that could not test.
  func memoryLoadRefused(_ e: KVMError, how: HostInvalidation, guest: String) {
    guard e.errno != .hostDown else { return }
    infraError =
      "memory_load.host_invalidate (advice \(how.rawValue)) for \(guest): the host refused it: \(e)"
    host.executor.requestStop()
  }

  /// The host under test when it is not this machine (a remote or lab target), for the
  /// evidence a run gathers from it besides its log.
  public var machine: (any HostMachine)? {
    didSet { recorder.machine = machine }
  }
  /// Where KSM and THP are turned on (the host under test: this machine or `machine`).
  public var memoryHost: (any HostMachine)?
  let hostCrashed = LockedFlag()

  /// Records a crash report; returns whether it was expected.
  @discardableResult
  func addCrash(_ r: CrashReport) -> Bool {
    // COMMIT before any vCPU ran: "This shouldn't be possible" WARN_ON, user-triggerable.
    // Two VMs doing it at once print two WARNINGs interleaved on a console: the one cut up
    // has no stack, but its header line still names the function.
    let header = r.report.prefix { $0 != "\n" }
    let expected =
      commitBeforeRunIssued.value && r.type == "WARNING"
      && (r.frame == "kvm_vm_ioctl_resize_hpt_commit"
        || header.contains(" kvm_vm_ioctl_resize_hpt_commit+"))
    addFinding(Finding(r, source: "\(r.origin)", expected: expected), report: r.report)
    if !expected { recorder.crashSeen(atNs: hostLog?.arrivalNs(of: r)) }
    return expected
  }

  func addFinding(_ f: Finding, report: String) { recorder.addFinding(f, report: report) }

  // MARK: report

  /// Ctrl-C: stop the agents; the run still writes its results.
  public func interrupt(by signal: String = "SIGINT") {
    recorder.interruptedBy.withLock { $0 = signal }
    recorder.interrupted.value = true
    host.executor.requestStop()
  }

  func finish(error: String?, hostTimeStart: UInt64) -> RunReport {
    var error = error
    if error == nil, let v = vcpuLock.locked({ vcpuFailure }) {
      error = "a vCPU could not run: \(v)"
    }
    // Whatever the run saw after the lab's emulator died (a silent host, a cut channel) is
    // the infrastructure's doing.
    if error == nil { error = infraError }
    if let gone = machine?.emulatorGone { error = gone }
    // On a real host the kernel under test is the host's own, named by its release (the
    // verdict line and dedup say which kernel broke); the host's name goes to `target`.
    // A simulated model is named by the model.
    let real = !job.backend.usesKernelModel
    return recorder.report(
      error: error, hostTimeS: Double(host.executor.nowNs - hostTimeStart) / 1e9,
      hostStats: host.statistics.merging(recoveryFigures) { _, new in new },
      kernel: kernel.name, kernelRelease: kernel.release, target: real ? host.hostName : nil,
      hostTrace: machine?.trace)
  }
}

/// Host-side memory load: take a random range of guest pages every `everyMs` (`how`: zap, hole
/// punch, reclaim, migration), forcing HPTE invalidations through the MMU notifier and
/// re-faults. A refusal (anything but the host going down) is handed to `refused`.
func hostMemoryLoad(
  _ g: GuestContext, exec: any AgentExecutor, everyMs: Double, pages: Int, memory: UInt64,
  how: HostInvalidation, rng: inout SplitMix64, refused: (KVMError) -> Void
) {
  let totalPages = Int(memory >> 16)
  while !exec.stopRequested {
    exec.sleep(ms: max(1, Int(everyMs)))
    if exec.stopRequested { break }
    let first = rng.below(max(1, totalPages - pages))
    do {
      try g.vm.invalidateGuestMemory(
        guestPhysAddr: UInt64(first) << 16, size: UInt64(pages) << 16, how: how)
    } catch {
      refused(error)
      return
    }
  }
}

/// Arrival times of the last lines of a log, by byte offset (bounded: a report spans far fewer
/// lines than are kept).
public struct LineTimes {
  public init() {}
  private var offsets: [Int] = []
  private var times: [UInt64] = []
  static let kept = 16384

  public mutating func add(offset: Int, ns: UInt64) {
    if offsets.count >= Self.kept * 2 {
      offsets.removeFirst(Self.kept)
      times.removeFirst(Self.kept)
    }
    offsets.append(offset)
    times.append(ns)
  }

  /// The arrival time of the line holding `offset` (the latest line starting at or before it);
  /// nil when that line is no longer kept.
  public func ns(at offset: Int) -> UInt64? {
    var lo = 0
    var hi = offsets.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if offsets[mid] <= offset { lo = mid + 1 } else { hi = mid }
    }
    return lo == 0 ? nil : times[lo - 1]
  }
}
