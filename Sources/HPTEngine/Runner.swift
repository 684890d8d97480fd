import Foundation
import HPTRandom
import KVMHost
import KernelLog

/// Runs one job on one backend's guests and writes the run directory. Every backend goes
/// through here (GuestFleet.swift says what a backend brings): the hammers, the host's log and
/// the host monitor (a host crash or hang, its recovery, the resize trace), the findings and
/// run.json are the same for all.
public final class Runner: @unchecked Sendable {
  public let job: Job
  public let fleet: any GuestFleet
  public let outDir: URL
  public let progress: ProgressPrinter
  public let recorder: RunRecorder
  /// Called with the run directory once its run.json says "running" (before the guests start).
  public var onBegin: (@Sendable (URL) -> Void)? {
    get { recorder.onBegin }
    set { recorder.onBegin = newValue }
  }
  public var stats: RunStats { recorder.stats }
  public var executor: any AgentExecutor { fleet.executor }
  /// The hammer provoked a COMMIT before any vCPU ran: the kernel's WARNING is then expected.
  public let commitBeforeRunIssued = LockedFlag()
  private let traceStarted = LockedFlag()
  /// The host printed a crash the run did not provoke.
  public let hostCrashed = LockedFlag()
  /// The host's log as the fleet gives it, and host.log with the detector over it (both nil
  /// when the host's log cannot be read).
  var logSource: (any KernelLogSource)?
  var hostLog: HostLogMonitor?
  private let lock = NSLock()
  private var down: String?
  private var detail: String?
  private var failure: String?
  private var infra: String?
  /// Why the host's emulator was starved when its watchdog reports came, and how many came.
  private var starved: (why: String, reports: Int)?
  private var lastRecordNs: UInt64 = 0
  private var extraFigures: [String: Int] = [:]

  public init(job: Job, fleet: any GuestFleet, outDir: URL, progress: Bool, reproduce: String) {
    self.job = job
    self.fleet = fleet
    self.outDir = outDir
    // Stats lines go to progress.log always, and to the terminal when asked.
    self.progress = ProgressPrinter(
      console: progress ? .standardError : nil,
      logURL: outDir.appendingPathComponent("progress.log"))
    recorder = RunRecorder(job: job, outDir: outDir, reproduce: reproduce)
  }

  /// The ioctl backends (sim, raw, raw-sim): `host`'s VMs, its log, and `machine` when the
  /// host is a machine of its own.
  public convenience init(
    job: Job, host: any KVMSystem, kernel: HostKernel, outDir: URL, progress: Bool,
    reproduce: String, machine: (any HostMachine)? = nil, memoryHost: (any HostMachine)? = nil
  ) {
    let fleet = IoctlFleet(host: host, kernel: kernel, machine: machine, memoryHost: memoryHost)
    self.init(job: job, fleet: fleet, outDir: outDir, progress: progress, reproduce: reproduce)
    recorder.kernel = kernel
  }

  /// Runs the job; the report is also in outDir/run.json.
  public func run() -> RunReport {
    let exec = executor
    let start = exec.nowNs
    do {
      try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
    } catch {
      return finish(error: "cannot create the run directory \(outDir.path): \(error)", start: start)
    }
    recorder.begin(clock: { [exec] in exec.nowNs })
    var mm: (any HostMMRun)?
    let startError = begin { mm = $0 }
    if startError == nil {
      recorder.phase("stopping", ["host_crashed": hostCrashed.value])
      fleet.stop(self)
    }
    drainLog()
    recorder.phase("log-drained")
    gatherEvidence()
    if let mm {
      if hostDown == nil { mm.sample() }
      let f = mm.end(hostDown: hostDown != nil)
      lock.locked { extraFigures.merge(f) { _, new in new } }
    }
    fleet.cleanUp(self)
    return finish(error: startError, start: start)
  }

  /// Opens the host, starts the guests and runs the agents to the end of the budget; returns
  /// the error that kept the run from starting.
  private func begin(memoryManagement: (any HostMMRun) -> Void) -> String? {
    do {
      try fleet.open(self)
    } catch {
      return "\(error)"
    }
    recorder.machine = fleet.machine
    if let log = fleet.hostLog {
      do {
        hostLog = try HostLogMonitor(outDir: outDir, origin: log.origin, recorder: recorder)
        logSource = log.source
      } catch {
        return "cannot create the run directory \(outDir.path): \(error)"
      }
    }
    do {
      let guests = try fleet.startGuests(self)
      if let mm = try fleet.memoryHost?.startMemoryManagement(job.hostMM) {
        memoryManagement(mm)
      }
      hammer(guests)
    } catch {
      return "\(error)"
    }
    return nil
  }

  /// The run's budget, from when the guests are up (nil before).
  public private(set) var budget: Budget?

  /// Whether the budget is spent (false before it starts).
  public func budgetExhausted() -> Bool {
    budget?.exhausted(now: executor.nowNs) ?? false
  }

  private func hammer(_ guests: [FleetGuest]) {
    let exec = executor
    let budget = Budget(startNs: exec.nowNs, durationS: job.durationS, resizes: job.resizeBudget)
    self.budget = budget
    var agents: [Agent] = []
    for g in guests {
      agents += g.before
      let hammer = Hammer(
        driver: g.driver, job: job, stats: stats, executor: exec, rng: g.rng, budget: budget)
      agents.append(
        Agent(name: "hpthammer") { [self] in
          hammer.run()
          if let config = hammer.configError { fail(config) }
        })
      agents += g.after
    }
    agents += fleet.agents(self)
    if let source = logSource {
      agents.append(Agent(name: "hpthammer-log") { [self] in watchLog(source) })
    }
    if fleet.watchesHostForHang, let machine = fleet.machine {
      agents.append(Agent(name: "host-watch") { [self] in watchHost(machine) })
    }
    progress.begin(job: job, stats: stats, executor: exec) { [fleet] in fleet.statistics }
    if job.target.traceResizes, let machine = fleet.machine {
      machine.startTrace()
      traceStarted.value = true
    }
    recorder.guestsStartedNs.withLock { $0 = exec.nowNs }
    recorder.phase("hammering", ["guests": guests.count, "agents": agents.count])
    exec.run(agents)
    progress.end()
  }

  // MARK: what the fleet reports

  /// A guest crashed, hung, died or read back what it did not write: recorded, timed (unless
  /// `timed` is false: a hang is seen long after it began), and the end of the run.
  public func guestFailed(_ f: Finding, report: String, detail: String, timed: Bool = true) {
    recorder.addFinding(f, report: report)
    if timed { recorder.crashSeen(atNs: executor.nowNs) }
    setDetail(detail)
    executor.requestStop()
  }

  /// The run cannot go on as the job asked (a driver refused by the kernel's configuration, a
  /// vCPU that cannot run): the run's error, first one kept, and the end of the run.
  public func fail(_ message: String) {
    lock.locked { if failure == nil { failure = message } }
    executor.requestStop()
  }

  /// The infrastructure failed (libvirtd, hostd, a load the host refused): the run's error
  /// unless the host went down, which explains it; first one kept.
  public func infrastructureFailed(_ message: String, stop: Bool = true) {
    lock.locked { if infra == nil { infra = message } }
    if stop { executor.requestStop() }
  }

  /// What stopped the run when the host itself crashed or hung ("host crash", "host hang"):
  /// it explains whatever the guests did after.
  public var hostDown: String? { lock.locked { down } }

  public func hostIsDown(_ what: String) {
    lock.locked {
      if down == nil { down = what }
      // The host's state explains the guests' and overrides what they reported first.
      detail = what
    }
  }

  func setDetail(_ d: String) {
    lock.locked { if detail == nil { detail = d } }
  }

  /// Figures of the run's own (boot times, CPU time) for run.json.
  public func addFigures(_ f: [String: Int]) {
    lock.locked { extraFigures.merge(f) { _, new in new } }
  }

  // MARK: the host's log

  /// Reads the host kernel log as it is written: host.log gets every record at once (it
  /// survives a crash of the harness), the scanner sees each line; a crash stops the run.
  func watchLog(_ log: any KernelLogSource) {
    let exec = executor
    // On a real clock a report with no end marker (a panic that stops the machine) is over
    // after 5 s of quiet: the kernel has said all it will.
    let quietEndNs: UInt64? = exec.clockIsSimulated ? nil : 5_000_000_000
    lock.locked { lastRecordNs = exec.nowNs }
    while !exec.stopRequested {
      if let r = log.next(timeoutMs: 0) {
        consume(r, live: true)
        lock.locked { lastRecordNs = exec.nowNs }
      } else if log.isFinished {
        break
      } else if let q = quietEndNs, hostLog?.crashInProgress == true, quietNs > q {
        for report in hostLog?.finish() ?? [] { hostReport(report, live: true) }
      } else {
        exec.sleep(ms: 2)
      }
    }
  }

  private var quietNs: UInt64 {
    let now = executor.nowNs
    let last = lock.locked { lastRecordNs }
    return now > last ? now - last : 0
  }

  func consume(_ r: KernelLogRecord, live: Bool) {
    for report in hostLog?.consume(r, atNs: executor.nowNs) ?? [] {
      hostReport(report, live: live)
    }
  }

  /// The first crash that is not a splat provoked on purpose ends the run; drainLog() collects
  /// whatever the host prints after it.
  func hostReport(_ report: CrashReport, live: Bool) {
    guard !addCrash(report) else { return }
    hostCrashed.value = true
    setDetail("host oops")
    let exec = executor
    if live, !exec.stopRequested {
      exec.hostCrashed()  // this is the host's own log
      exec.requestStop()
    }
  }

  /// After the run: everything the host printed to the end (the rest of an oops, the panic).
  func drainLog() {
    guard let source = logSource else { return }
    // A remote host's console lags its kernel: a report may still be on its way.
    let quiet = fleet.machine == nil ? 20 : 100
    var idle = 0
    while idle < quiet {
      if let r = source.next(timeoutMs: 10) {
        consume(r, live: false)
        idle = 0
      } else if source.isFinished {
        break
      } else {
        idle += 1
      }
    }
    for report in hostLog?.finish() ?? [] { hostReport(report, live: false) }
  }

  /// Records a host crash report; returns whether it was expected.
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
    recorder.addFinding(Finding(r, source: "\(r.origin)", expected: expected), report: r.report)
    if !expected { recorder.crashSeen(atNs: hostLog?.arrivalNs(of: r)) }
    if !expected { noteStarvation(r) }
    return expected
  }

  /// A watchdog's report while the host's emulator was starved of CPU: kept as a finding, but
  /// if nothing else is found the run could not test (finish).
  func noteStarvation(_ r: CrashReport) {
    guard r.kind.isWatchdogReport,
      let why = fleet.machine?.emulatorStarved(lastS: Self.starvationWindowS)
    else { return }
    lock.locked { starved = (starved?.why ?? why, (starved?.reports ?? 0) + 1) }
  }

  /// The watchdogs' thresholds: 10 s (hard lockup), 20-30 s (soft lockup, RCU stall, workqueue).
  static let starvationWindowS = 30.0

  // MARK: the host as a machine

  /// A host that prints nothing on its log and answers nothing for hung_after_s is hung.
  func watchHost(_ machine: any HostMachine) {
    let exec = executor
    var silentSince: Date?
    while !exec.stopRequested {
      exec.sleep(ms: 2000)
      if exec.stopRequested { break }
      if machine.answers(timeoutS: 10) {
        silentSince = nil
        continue
      }
      if machine.emulatorGone != nil {
        exec.requestStop()  // finish says why; no hang to wait for
        break
      }
      let since = silentSince ?? Date()
      silentSince = since
      let quiet = min(Double(quietNs) / 1e9, -since.timeIntervalSinceNow)
      if quiet >= machine.hungAfterS {
        hostHung(machine, silentS: quiet)
        exec.requestStop()
      }
    }
  }

  func hostHung(_ machine: any HostMachine, silentS: Double) {
    let title =
      "host hang: \(machine.name) answered no ssh and printed nothing for \(Int(silentS)) s"
    recorder.addFinding(
      Finding(
        title: title, type: "HOST_HANG", frame: nil, source: "host", expected: false, file: nil,
        corrupted: false),
      report: title + "\n")
    hostIsDown("host hang")
  }

  /// After the run, from a host that is a machine of its own: whether it went down, the resize
  /// trace, and after a crash that left it unanswering its registers, a power cycle and what
  /// the kernel left (pstore, journal, vmcore-dmesg). A lab whose own QEMU died is not reset:
  /// run.json says so instead.
  func gatherEvidence() {
    guard let machine = fleet.machine else { return }
    if hostDown == nil, !hostCrashed.value, let channel = fleet.lostChannel {
      channelLost(channel, machine)
    }
    if hostDown == nil, hostCrashed.value, !machine.answers(timeoutS: 10) {
      hostIsDown("host crash")
    }
    let what = hostDown
    if traceStarted.value { machine.collectTrace(hostDown: what != nil) }
    if let what, machine.emulatorGone == nil {
      recorder.phase("host-down", ["after": what, "next": "registers, power cycle, last words"])
      addFigures(
        machine.recover(after: what, outDir: outDir, progress: progress, recorder: recorder))
    } else if hostCrashed.value, let dump = machine.saveRegisters(in: outDir) {
      progress.note("host crash: \(dump.split(separator: "\n").prefix(4).joined(separator: "; "))")
    }
  }

  /// The fleet's channel to the host (hostd) closed with no crash on the host's log: either the
  /// host went down without a word (a hang: a finding) or only the channel died (the
  /// infrastructure: the run's error). The lab's own QEMU dying is the latter (finish says so).
  func channelLost(_ channel: String, _ machine: any HostMachine) {
    guard machine.emulatorGone == nil else { return }
    let deadline = Date().addingTimeInterval(machine.hungAfterS)
    while Date() < deadline {
      if machine.answers(timeoutS: 10) {
        infrastructureFailed(
          "the channel to \(channel) on \(machine.name) closed mid-run, and \(machine.name) still answers ssh with no kernel message: \(channel) or the connection died, not the kernel (see host.log); rerun",
          stop: false)
        return
      }
      Thread.sleep(forTimeInterval: 2)
    }
    hostHung(machine, silentS: machine.hungAfterS)
    hostCrashed.value = true
  }

  // MARK: report

  /// Ctrl-C: stop the agents; the run still writes its results.
  public func interrupt(by signal: String = "SIGINT") {
    recorder.interruptedBy.withLock { $0 = signal }
    recorder.interrupted.value = true
    executor.requestStop()
  }

  func finish(error startError: String?, start: UInt64) -> RunReport {
    let (down, failure, infra, extra, detail) = lock.locked {
      (self.down, self.failure, self.infra, extraFigures, self.detail)
    }
    // A host that went down explains the errors of the connections it took with it.
    var error = down == nil ? startError : nil
    if error == nil { error = failure }
    if error == nil, down == nil { error = infra }
    // Whatever the run saw after the lab's emulator died (a silent host, a cut channel) is
    // the infrastructure's doing.
    if let gone = fleet.machine?.emulatorGone { error = gone }
    // Only watchdog reports made while the emulator was starved: nothing the kernel did.
    let unexpected = recorder.allFindings.filter { !$0.expected }.count
    if error == nil, let starved = lock.locked({ starved }), starved.reports == unexpected {
      error = starved.why
    }
    let end = fleet.end(self)
    let machine = fleet.machine?.figures ?? [:]
    return recorder.report(
      error: error, hostTimeS: Double(executor.nowNs - start) / 1e9,
      hostStats: end.figures.merging(extra) { _, new in new }.merging(machine) { _, new in new },
      kernel: end.kernel,
      kernelRelease: end.kernelRelease, detail: detail, target: end.target,
      hostTrace: fleet.machine?.trace)
  }
}
