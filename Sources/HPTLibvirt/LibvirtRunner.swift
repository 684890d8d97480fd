import Foundation
import HPTEngine
import HPTRandom
import HPTTarget
import KVMHost
import KernelLog
import Libvirt
import Synchronization

/// One guest's console: agent lines to the runner, everything else to the guest's crash
/// scanner and to guestN.console.log.
final class GuestLink: @unchecked Sendable {
  let name: String
  let domain: LibvirtDomain
  let console: ConsoleStream
  private let cond = NSCondition()
  private var replies: [AgentLine] = []
  private(set) var lastHeartbeat = DispatchTime.now().uptimeNanoseconds
  private(set) var ended = false
  /// When a dimm was last attached or detached: the guest then resizes its HPT by itself, and
  /// a resize the harness asks for meanwhile may be refused or superseded.
  private var lastHotplug: UInt64?
  private var scanner: StreamingCrashScanner
  private let log: FileHandle?
  let onCrash: @Sendable (CrashReport) -> Void
  let onCorrupt: @Sendable (AgentLine) -> Void

  init(
    name: String, domain: LibvirtDomain, console: ConsoleStream, logURL: URL,
    onCrash: @escaping @Sendable (CrashReport) -> Void,
    onCorrupt: @escaping @Sendable (AgentLine) -> Void
  ) {
    self.name = name
    self.domain = domain
    self.console = console
    scanner = StreamingCrashScanner(origin: .guest(name))
    FileManager.default.createFile(atPath: logURL.path, contents: nil)
    log = try? FileHandle(forWritingTo: logURL)
    self.onCrash = onCrash
    self.onCorrupt = onCorrupt
  }

  func startReader() {
    let t = Thread { [self] in
      var pending: [UInt8] = []
      while true {
        let bytes: [UInt8]
        do { bytes = try console.read() } catch { break }
        if bytes.isEmpty { break }
        try? log?.write(contentsOf: Data(bytes))
        pending += bytes
        while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
          handle(String(decoding: pending[..<nl], as: UTF8.self))
          pending.removeSubrange(...nl)
        }
      }
      for r in cond.withLock({ scanner.finish() }) { onCrash(r) }
      cond.withLock {
        ended = true
        cond.broadcast()
      }
    }
    t.name = "console-\(name)"
    t.start()
  }

  private func handle(_ raw: String) {
    if let l = AgentLine.parse(raw) {
      switch l.verb {
      case "hb": cond.withLock { lastHeartbeat = DispatchTime.now().uptimeNanoseconds }
      case "corrupt": onCorrupt(l)
      default:
        cond.withLock {
          replies.append(l)
          cond.broadcast()
        }
      }
      return
    }
    let line = raw.replacingOccurrences(of: "\r", with: "")
    for r in cond.withLock({ scanner.feed(line: line) }) { onCrash(r) }
  }

  func send(_ text: String) throws(LibvirtError) {
    try console.write(Array(AgentLine.command(text).utf8))
  }

  /// The next reply with one of `verbs`, or nil after `timeoutS` or when the console ended.
  func await(_ verbs: Set<String>, timeoutS: Double) -> AgentLine? {
    let deadline = Date().addingTimeInterval(timeoutS)
    cond.lock()
    defer { cond.unlock() }
    while true {
      if let i = replies.firstIndex(where: { verbs.contains($0.verb) }) {
        return replies.remove(at: i)
      }
      if ended || !cond.wait(until: deadline) { return nil }
    }
  }

  func markHotplug() { cond.withLock { lastHotplug = DispatchTime.now().uptimeNanoseconds } }

  /// Seconds since the last dimm attach or detach (infinity: none yet).
  var secondsSinceHotplug: Double {
    cond.withLock {
      lastHotplug.map { Double(DispatchTime.now().uptimeNanoseconds - $0) / 1e9 } ?? .infinity
    }
  }

  var secondsSinceHeartbeat: Double {
    cond.withLock { Double(DispatchTime.now().uptimeNanoseconds - lastHeartbeat) / 1e9 }
  }
  var consoleEnded: Bool { cond.withLock { ended } }
}

/// Runs a job on HPT-mode guests through libvirt: it defines and starts the guests, makes them
/// resize their HPTs from inside (the agent writes hpt_order) and by memory hotplug, and
/// watches their consoles, their lifecycle and the host's kernel log.
public final class LibvirtRunner: @unchecked Sendable {
  /// Connections and consoles that agents left blocked on a dead host still use.
  static let abandoned = Mutex<[AnyObject]>([])
  public let job: Job
  let outDir: URL
  let recorder: RunRecorder
  /// Called with the run directory once its run.json says "running" (before the guests start).
  public var onBegin: (@Sendable (URL) -> Void)? {
    get { recorder.onBegin }
    set { recorder.onBegin = newValue }
  }
  let exec = ThreadExecutor()
  let progress: ProgressPrinter
  let runID: String
  private let lock = NSLock()
  private var created: [LibvirtDomain] = []
  private var verdictDetail: String?
  /// Figures for run.json: boot to agent-ready per guest, CPU time of QEMU and of the harness.
  private var figures: [String: Int] = [:]
  /// The host under test (this machine unless the job's target: says otherwise).
  var target = Target(spec: TargetSpec())
  /// The libvirt URI in use: the job's, else the target's.
  var uri = "qemu:///system"
  private lazy var evidence = HostEvidence(target: target)
  /// KSM and THP on the host for the run (memory_load.host_mm).
  var hostMM: HostMMSession?
  /// Set when the host itself crashed or hung: it explains whatever the guests did after.
  private var hostDown: String?

  public init(job: Job, outDir: URL, progress: Bool, reproduce: String) {
    self.job = job
    self.outDir = outDir
    recorder = RunRecorder(job: job, outDir: outDir, reproduce: reproduce)
    self.progress = ProgressPrinter(
      console: progress ? .standardError : nil,
      logURL: outDir.appendingPathComponent("progress.log"))
    runID = String(
      UInt32(truncatingIfNeeded: UInt64(Date().timeIntervalSince1970 * 1000)) % 1_000_000)
  }

  public func interrupt(by signal: String = "SIGINT") {
    recorder.interruptedBy.withLock { $0 = signal }
    recorder.interrupted.value = true
    exec.requestStop()
  }

  struct SetupError: Error, CustomStringConvertible {
    var description: String
  }

  public func run() -> RunReport {
    do {
      try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
    } catch {
      return recorder.report(
        error: "cannot create \(outDir.path): \(error)", hostTimeS: 0, hostStats: [:], kernel: "?",
        kernelRelease: "")
    }
    recorder.begin(clock: { [exec] in exec.nowNs })
    var failure: String?
    var guestKernel = "?"
    do {
      target = try TargetSetup.open(job.target, progress: progress)
      lock.locked { figures.merge(target.lab?.bootFigures ?? [:]) { a, _ in a } }
      uri =
        job.libvirt.uri == LibvirtJob().uri && target.spec.kind != .local
        ? target.libvirtURI : job.libvirt.uri
      recorder.machine = TargetMachine(target)
      guestKernel = try runGuests()
      recorder.guestKernel = guestKernel
    } catch let e as LibvirtError {
      failure = "libvirt: \(e.description)" + Self.hint(for: e)
    } catch {
      failure = "\(error)"
    }
    if let gone = target.lab?.emulatorGone {
      // A lab host that vanished with its emulator neither crashed nor hung: no power cycle.
      lock.locked { hostDown = nil }
      failure = gone
    }
    if let down = lock.locked({ hostDown }) {
      // The host's crash is the finding; errors of the libvirt connection it took with it are not.
      failure = nil
      recoverHost(after: down)
    }
    var error = failure
    if lock.locked({ hostDown }) == nil { hostMM?.sample() }  // the guests' pages, once more
    cleanUp()
    if let mm = hostMM {
      let f = mm.end(hostDown: lock.locked { hostDown } != nil)
      lock.locked { figures.merge(f) { _, new in new } }
    }
    if error == nil, let c = lock.locked({ configError }) { error = c }
    if let i = infraError.withLock({ $0 }), lock.locked({ hostDown }) == nil, failure == nil {
      error = i
    }
    return recorder.report(
      error: error, hostTimeS: Double(exec.nowNs) / 1e9, hostStats: lock.locked { figures },
      kernel: "guest \(guestKernel)",
      kernelRelease: hostRelease(), detail: lock.locked { verdictDetail },
      target: target.spec.kind == .local ? nil : "\(target.spec.kind.rawValue) \(target.name)",
      hostTrace: evidence.result)
  }

  static func hint(for e: LibvirtError) -> String {
    if e.message.contains("libvirt-sock") || e.message.contains("Failed to connect socket") {
      return " (is libvirtd running? scripts/libvirt-up.sh starts it)"
    }
    return ""
  }

  func hostRelease() -> String {
    if target.spec.kind != .local {
      return lock.locked { hostDown } == nil ? target.kernelRelease() : "?"
    }
    return (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?
      .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
  }

  /// Everything up to the end of the budget; returns the guests' kernel release.
  func runGuests() throws -> String {
    try LibvirtEventLoop.start()
    // A lab or host that has just booted may reset the first connections while libvirtd
    // starts: wait for it (a local libvirtd is up or not).
    let conn: LibvirtConnection =
      target.spec.kind == .local
      ? try LibvirtConnection(uri: uri)
      : try LibvirtConnection.waitingUntilReady(
        uri: uri, timeoutS: 120, ready: { DomainType.best(forPPC64LEIn: $0) != nil },
        note: { [progress] in progress.note($0) })
    hostMM = try HostMMSession(job.hostMM, target: target)
    let owner = Leftovers.me(runID: runID)
    let cleaned = Leftovers.reap(conn, me: owner)
    for line in cleaned { progress.note(line, always: true) }
    if !cleaned.isEmpty { lock.locked { figures["leftover_domains_cleaned"] = cleaned.count } }
    guard let type = DomainType.best(forPPC64LEIn: try conn.capabilities()) else {
      throw SetupError(
        description:
          "\(uri) offers no ppc64le guests: install qemu-system-ppc on the host")
    }
    let kernel: String
    let initrd: String
    if let inLab = target.lab?.guestImage, job.libvirt.kernelImage == nil {
      // The lab carries the guest image of Guests/build.sh.
      (kernel, initrd) = inLab
    } else {
      let image: (kernel: String, initrd: String)
      do {
        image = try GuestImage.resolve(kernel: job.libvirt.kernelImage, initrd: job.libvirt.initrd)
      } catch { throw SetupError(description: error.description) }
      let (builtKernel, builtInitrd) = image
      kernel = try stageForQEMU(builtKernel)
      initrd = try stageForQEMU(builtInitrd)
    }
    // libvirt's copy of each console is written by QEMU, on the host that runs it.
    let consoleDir: String
    if target.spec.kind == .local {
      consoleDir = outDir.path
    } else {
      consoleDir = "/var/log/hpthammer"
      let mk = target.run(["mkdir", "-p", consoleDir], timeoutS: 30)
      guard mk.ok else {
        throw SetupError(description: "\(target.name): mkdir -p \(consoleDir): \(mk.lastLine)")
      }
    }
    try conn.onLifecycle { [self] e in lifecycle(e) }

    var links: [GuestLink] = []
    for i in 0..<job.guestCount {
      let name = "hpthammer-\(runID)-g\(i)"
      if (try? conn.lookupDomain(name: name)) != nil {
        throw SetupError(
          description: "a domain named \(name) already exists; it is not ours, so it is left alone")
      }
      var spec = HPTDomainSpec(
        name: name, type: type, memoryMiB: job.guestMemoryMiB,
        // Room for the hotplugged dimm (pseries hotplugs in 256 MiB LMBs).
        maxMemoryMiB: max(job.guestMemoryMiB * 4, job.guestMemoryMiB + 2 * job.libvirt.hotplugMiB),
        vcpus: job.vcpus, cpuModel: job.libvirt.cpuModel,
        kernel: kernel, initrd: initrd, resizing: job.libvirt.resizing,
        consoleLog: target.spec.kind == .local
          ? consoleDir + "/guest\(i).libvirt-console.log" : consoleDir + "/\(name).console.log",
        owner: owner)
      spec.balloon = job.libvirt.balloonEveryS != nil
      let d = try conn.defineDomain(xml: spec.xml)
      lock.locked { created.append(d) }
      try d.start()
      let link = GuestLink(
        name: "guest\(i)", domain: d, console: try d.openConsole(),
        logURL: outDir.appendingPathComponent("guest\(i).console.log"),
        onCrash: { [self] r in guestCrash(r, guest: "guest\(i)") },
        onCorrupt: { [self] l in guestCorrupt(l, guest: "guest\(i)") })
      link.startReader()
      links.append(link)
    }
    var release = "?"
    let bootStart = DispatchTime.now().uptimeNanoseconds
    for l in links {
      guard let ready = l.await(["ready"], timeoutS: job.libvirt.bootTimeoutS) else {
        throw SetupError(
          description:
            "\(l.name) did not report ready within \(Int(job.libvirt.bootTimeoutS)) s (see \(l.name).console.log)"
        )
      }
      release = ready.args.first ?? "?"
      figures["\(l.name)_boot_to_ready_ms"] = Int(
        (DispatchTime.now().uptimeNanoseconds - bootStart) / 1_000_000)
      guard ready.args.count > 1, ready.args[1] == "hash" else {
        throw SetupError(
          description:
            "\(l.name) runs the radix MMU: HPT resizing needs hash (disable_radix on POWER9)")
      }
      // Only warnings and worse on the console: the two info lines per resize would cut agent
      // lines (the agent reads the resize timings from /dev/kmsg itself).
      try l.send("loglevel 5")
      if job.libvirt.loadThreads > 0 {
        try l.send(
          "load \(job.libvirt.loadThreads) \(job.libvirt.loadMiBPerThread) \(job.libvirt.churn ? 1 : 0)"
        )
      }
    }
    var agents: [Agent] = []
    let budget = Budget(startNs: exec.nowNs, durationS: job.durationS, resizes: job.resizeBudget)
    for (i, l) in links.enumerated() {
      let hammer = Hammer(
        driver: AgentResizeDriver(link: l, stats: recorder.stats, exec: exec, budget: budget),
        job: job, stats: recorder.stats, executor: exec,
        rng: SplitMix64(seed: job.seed &+ UInt64(i)),
        budget: budget)
      agents.append(
        Agent(name: "hammer-\(l.name)") { [self] in
          hammer.run()
          if let config = hammer.configError { configurationError(config) }
        })
      if let every = job.libvirt.hotplugEveryS {
        agents.append(Agent(name: "hotplug-\(l.name)") { [self] in hotplug(l, everyS: every) })
      }
      if let every = job.libvirt.balloonEveryS {
        agents.append(Agent(name: "balloon-\(l.name)") { [self] in balloon(l, everyS: every) })
      }
    }
    let all = links
    agents.append(Agent(name: "watchdog") { [self] in watchdog(all) })
    agents.append(Agent(name: "libvirtd") { [self] in watchLibvirt(conn) })
    if target.spec.kind != .local
      || (uri.hasPrefix("qemu:///") && (try? KmsgReader(start: .end)) != nil)
    {
      // The host's kernel log: this machine's /dev/kmsg, or the remote host's console or kmsg.
      let log = try target.openHostLog()
      agents.append(Agent(name: "host-log") { [self] in watchHostLog(log) })
      if target.spec.kind != .local {
        agents.append(Agent(name: "host-watch") { [self] in watchHost(log) })
      }
    }
    if job.target.traceResizes { evidence.startTrace() }
    if let after = job.target.injectHostHangAfterS, let lab = target.lab {
      agents.append(
        Agent(name: "inject-host-hang") { [self] in
          exec.sleep(ms: Int(after * 1000))
          guard !exec.stopRequested else { return }
          recorder.stats.answer("HOST", "frozen (QMP stop)")
          _ = try? QMPClient(socketPath: lab.qmpSocket).execute("stop")
        })
    }
    if let after = job.target.injectHostCrashAfterS {
      agents.append(
        Agent(name: "inject-host-crash") { [self] in
          exec.sleep(ms: Int(after * 1000))
          if !exec.stopRequested { injectHostCrash() }
        })
    }
    if let after = job.libvirt.injectGuestCrashAfterS, let first = links.first {
      agents.append(
        Agent(name: "inject-crash") { [self] in
          exec.sleep(ms: Int(after * 1000))
          if !exec.stopRequested { try? first.send("crash") }
        })
    }
    progress.begin(job: job, stats: recorder.stats, executor: exec) { [:] }
    recorder.guestsStartedNs.withLock { $0 = exec.nowNs }
    recorder.phase("hammering", ["guests": links.count, "agents": agents.count])
    exec.run(agents)
    progress.end()
    recorder.phase("stopping")
    // A console that ended stopped the run, maybe before the watcher saw libvirtd go: ask it
    // once more. Else the lifecycle event saying why (QEMU died) comes from libvirt's event
    // loop a moment later.
    if links.contains(where: \.consoleEnded), lock.locked({ hostDown }) == nil, !conn.answers,
      target.spec.kind == .local || target.answers(timeoutS: 10)
    {
      noteLibvirtGone()
    }
    if links.contains(where: \.consoleEnded) {
      for _ in 0..<30 where recorder.allFindings.isEmpty && infraError.withLock({ $0 }) == nil {
        Thread.sleep(forTimeInterval: 0.1)
      }
    }
    if !exec.abandoned.isEmpty {
      progress.note(
        "left behind after the stop (blocked on the host): \(exec.abandoned.joined(separator: ", "))"
      )
      // Those threads are still inside libvirt calls on this connection and these consoles:
      // they must outlive the run, or libvirt touches freed memory when the calls return.
      Self.abandoned.withLock {
        $0.append(contentsOf: [conn as AnyObject] + links.map { $0 as AnyObject })
      }
    }
    if job.target.traceResizes { evidence.collectTrace(hostDown: lock.locked { hostDown } != nil) }
    // CPU time of the guests' QEMU processes (on this machine) and of the harness itself.
    var qemuTicks = 0
    for l in links where target.spec.kind == .local {
      if let pid = try? String(
        contentsOfFile: "/run/libvirt/qemu/\(l.domain.name).pid", encoding: .utf8
      )
      .trimmingCharacters(in: .whitespacesAndNewlines),
        let stat = ProcStat(pid: pid)
      {
        qemuTicks +=
          (stat.field(14).flatMap { Int($0) } ?? 0) + (stat.field(15).flatMap { Int($0) } ?? 0)
      }
    }
    let hz = Int(sysconf(Int32(_SC_CLK_TCK)))
    if target.spec.kind == .local { figures["qemu_cpu_ms"] = qemuTicks * 1000 / max(1, hz) }
    var ru = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &ru)
    figures["harness_cpu_ms"] =
      Int(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 + Int(
        ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000
    // The agents' own counters: pages verified and mismatches.
    for l in links {
      guard !l.consoleEnded, (try? l.send("stats")) != nil,
        let c = l.await(["counters"], timeoutS: 10)
      else {
        recorder.stats.with { $0.pagesVerifiedUnknown = true }
        continue
      }
      var fields: [String: UInt64] = [:]
      for a in c.args {
        let kv = a.split(separator: "=", maxSplits: 1)
        if kv.count == 2, let v = UInt64(kv[1]) { fields[String(kv[0])] = v }
      }
      recorder.stats.with {
        $0.pagesVerified += fields["pages"] ?? 0
        $0.mismatches += fields["mismatches"] ?? 0
      }
    }
    return release
  }

  /// QEMU under qemu:///system runs as its own user, which cannot read a file below a private
  /// home directory: put a copy where libvirt keeps images (same name, same size: reused).
  func stageForQEMU(_ path: String) throws -> String {
    let dir = "/var/lib/libvirt/images/hpthammer"
    if target.spec.kind != .local { return try target.stage(path, directory: dir) }
    guard uri.hasPrefix("qemu:///") else { return path }
    let fm = FileManager.default
    guard (try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil else {
      return path
    }
    let dest = dir + "/" + (path as NSString).lastPathComponent
    let size = { (p: String) in (try? fm.attributesOfItem(atPath: p)[.size] as? Int) ?? -1 }
    if size(dest) != size(path) {
      try? fm.removeItem(atPath: dest)
      guard (try? fm.copyItem(atPath: path, toPath: dest)) != nil else { return path }
      _ = try? fm.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dest)
    }
    return dest
  }

  // MARK: - what the guests and libvirt report

  func setDetail(_ d: String) {
    lock.locked { if verdictDetail == nil { verdictDetail = d } }
  }

  func guestCrash(_ r: CrashReport, guest: String) {
    recorder.addFinding(Finding(r, source: guest), report: r.report)
    recorder.crashSeen(atNs: exec.nowNs)
    setDetail("guest crash")
    exec.requestStop()
  }

  private var corruptGuests: Set<String> = []
  func guestCorrupt(_ l: AgentLine, guest: String) {
    // The agent repeats a mismatch it keeps seeing; one finding per guest is enough.
    guard lock.locked({ corruptGuests.insert(guest).inserted }) else { return }
    let title = "guest memory corruption: \(guest) read back data it did not write"
    recorder.addFinding(
      Finding(
        title: title, type: "MEMORY_CORRUPTION", frame: nil,
        source: "\(guest) agent integrity check", expected: false, file: nil, corrupted: false),
      report: "\(title)\nagent: corrupt \(l.args.joined(separator: " "))\n")
    recorder.crashSeen(atNs: exec.nowNs)
    setDetail("guest memory corruption")
    exec.requestStop()
  }

  func lifecycle(_ e: LifecycleEvent) {
    // After a host crash its guests' deaths are its consequence, not findings of their own.
    // (Our own destroy at the end is not a crash: its detail is "destroyed".)
    guard e.domain.hasPrefix("hpthammer-\(runID)-"), e.isCrash,
      lock.locked({ hostDown }) == nil || e.kind == .crashed
    else { return }
    let guest = "guest" + (e.domain.split(separator: "g").last.map(String.init) ?? "?")
    let what = e.kind == .crashed ? "guest crash" : "QEMU death"
    recorder.addFinding(
      Finding(
        title: "\(what): domain \(e.domain) \(e.kind) (detail \(e.detail))",
        type: e.kind == .crashed ? "GUEST_CRASH" : "QEMU_DEATH",
        frame: nil, source: guest, expected: false, file: nil, corrupted: false),
      report: "libvirt lifecycle event: \(e)\n")
    recorder.crashSeen(atNs: exec.nowNs)
    setDetail(what)
    exec.requestStop()
  }

  /// libvirtd stopped answering on a host that still does: the infrastructure failed, not the
  /// kernel, and nothing the guests seem to do after it (silent consoles) is a finding.
  func watchLibvirt(_ conn: LibvirtConnection) {
    while !exec.stopRequested {
      exec.sleep(ms: 1000)
      if exec.stopRequested || conn.answers { continue }
      if target.spec.kind != .local, !target.answers(timeoutS: 10) { continue }  // watchHost's
      noteLibvirtGone()
      exec.requestStop()
    }
  }
  let infraError = Mutex<String?>(nil)

  func noteLibvirtGone() {
    infraError.withLock {
      if $0 == nil {
        $0 =
          "libvirtd stopped answering on \(uri) mid-run (the guests' results after that are unknown): start it again (scripts/libvirt-up.sh, or systemctl start libvirtd) and rerun; the next run cleans up this run's domains"
      }
    }
  }

  var configError: String?
  func configurationError(_ message: String) {
    lock.locked { if configError == nil { configError = message } }
    exec.requestStop()
  }

  func hostName() -> String {
    (try? String(contentsOfFile: "/proc/sys/kernel/hostname", encoding: .utf8))?
      .trimmingCharacters(in: .whitespacesAndNewlines) ?? "localhost"
  }

  /// The host's kernel log: host.log gets every record, the scanner looks for a host oops.
  func watchHostLog(_ log: HostLogStream) {
    let monitor = try? HostLogMonitor(outDir: outDir, origin: log.origin, recorder: recorder)
    func hostOops(_ report: CrashReport) {
      recorder.addFinding(Finding(report, source: "host"), report: report.report)
      recorder.crashSeen(atNs: monitor?.arrivalNs(of: report))
      if target.spec.kind != .local && !target.answers(timeoutS: 10) {
        hostIsDown("host crash")
      } else {
        setDetail("host oops")
      }
      exec.requestStop()
    }
    func consume(_ r: KernelLogRecord) {
      (monitor?.consume(r, atNs: exec.nowNs) ?? []).forEach(hostOops)
    }
    var lastRecord = Date()
    while !exec.stopRequested {
      if let r = log.next(timeoutMs: 200) {
        consume(r)
        lastRecord = Date()
      } else if monitor?.crashInProgress == true && -lastRecord.timeIntervalSinceNow > 5 {
        // A report with no end marker (a panic that stops the machine): quiet for 5 s means
        // the kernel has said all it will.
        (monitor?.finish() ?? []).forEach(hostOops)
      }
    }
    // What the host printed up to now (a dying kernel's last lines), then the rest of a report.
    let tail = Date().addingTimeInterval(target.spec.kind == .local ? 0.2 : 3)
    while Date() < tail, let r = log.next(timeoutMs: 200) { consume(r) }
    log.stop()
    (monitor?.finish() ?? []).forEach(hostOops)
  }

  /// A remote host that prints nothing on its log and answers no ssh for hung_after_s is hung.
  func watchHost(_ log: HostLogStream) {
    var silentSince: Date?
    while !exec.stopRequested {
      exec.sleep(ms: 2000)
      if exec.stopRequested { break }
      if target.answers(timeoutS: 10) {
        silentSince = nil
        continue
      }
      if target.lab?.emulatorGone != nil {
        exec.requestStop()  // run() says why; no hang to wait for
        break
      }
      let since = silentSince ?? Date()
      silentSince = since
      let quiet = min(log.quietS, -since.timeIntervalSinceNow)
      if quiet >= target.spec.hungAfterS {
        let title =
          "host hang: \(target.name) answered no ssh and printed nothing for \(Int(quiet)) s"
        recorder.addFinding(
          Finding(
            title: title, type: "HOST_HANG", frame: nil, source: "host", expected: false,
            file: nil, corrupted: false),
          report: title + "\n")
        hostIsDown("host hang")
        exec.requestStop()
      }
    }
  }

  func hostIsDown(_ what: String) {
    lock.locked {
      if hostDown == nil { hostDown = what }
      // The host's state explains the guests' and overrides what they reported first.
      verdictDetail = what
    }
  }

  /// sysrq c: the kernel panics on purpose (checks the host-crash path end to end).
  func injectHostCrash() {
    recorder.stats.answer("HOST", "sysrq c injected")
    _ = target.run(
      ["sh", "-c", "echo 1 > /proc/sys/kernel/sysrq; sync; echo c > /proc/sysrq-trigger"],
      timeoutS: 15)
  }

  /// Power-cycles a crashed or hung host and waits until ssh and libvirtd answer, so the next
  /// job can run on it; reads what the kernel left (pstore, journal, vmcore-dmesg).
  func recoverHost(after what: String) {
    recorder.phase("host-down", ["after": what, "next": "registers, power cycle, last words"])
    let f = evidence.recover(after: what, outDir: outDir, progress: progress, recorder: recorder)
    lock.locked { figures.merge(f) { _, new in new } }
  }

  /// No heartbeat for heartbeat_timeout_s: the guest hangs.
  func watchdog(_ links: [GuestLink]) {
    while !exec.stopRequested {
      exec.sleep(ms: 500)
      let silent = links.filter { $0.secondsSinceHeartbeat > job.libvirt.heartbeatTimeoutS }
      // Guests of a remote host that stopped answering are not hung themselves: the host is,
      // and watchHost says so once hung_after_s have passed.
      if !silent.isEmpty, target.spec.kind != .local, !target.answers(timeoutS: 10) { continue }
      for l in silent where !exec.stopRequested {
        recorder.addFinding(
          Finding(
            title:
              "guest hang: \(l.name) sent no heartbeat for \(Int(job.libvirt.heartbeatTimeoutS)) s",
            type: "HANG",
            frame: nil, source: l.name, expected: false, file: nil, corrupted: false),
          report:
            "no heartbeat from \(l.name)'s agent for \(Int(l.secondsSinceHeartbeat)) s; see \(l.name).console.log\n"
        )
        setDetail("guest hang")
        exec.requestStop()
      }
    }
  }

  /// The guest resizes by itself for hotplugged memory: read its order back.
  func recordOrder(_ l: GuestLink, _ when: String) throws(LibvirtError) {
    try l.send("order")
    if let o = l.await(["hpt"], timeoutS: 10) {
      recorder.stats.answer("HOTPLUG", "order \(o.args.first ?? "?") \(when)")
    }
  }

  /// Memory hotplug from outside: the guest grows (and shrinks) its HPT by itself.
  func hotplug(_ l: GuestLink, everyS: Double) {
    let dimm = HPTDomainSpec.dimmXML(sizeMiB: job.libvirt.hotplugMiB)
    while !exec.stopRequested {
      exec.sleep(ms: Int(everyS * 1000))
      if exec.stopRequested { break }
      do {
        l.markHotplug()
        try l.domain.attachDevice(xml: dimm)
        l.markHotplug()
        recorder.stats.answer("HOTPLUG", "attached")
        exec.sleep(ms: Int(everyS * 1000))
        try recordOrder(l, "with the dimm")
        l.markHotplug()
        try l.domain.detachDevice(xml: dimm)
        l.markHotplug()
        recorder.stats.answer("HOTPLUG", "detached")
        exec.sleep(ms: Int(everyS * 1000))
        try recordOrder(l, "without it")
      } catch {
        recorder.stats.answer("HOTPLUG", "error")
      }
    }
  }

  /// The balloon from outside: inflated by balloon_mib, then deflated, in turn. The first
  /// inflation must show in the guest driver's count within 30 s; a balloon that does not move
  /// (no virtio_balloon in the guest) would make a run that takes no page, so it stops the run.
  func balloon(_ l: GuestLink, everyS: Double) {
    let full = UInt(job.guestMemoryMiB) << 10
    let small = full - (UInt(job.libvirt.balloonMiB) << 10)
    var moved = false
    while !exec.stopRequested {
      for target in [small, full] {
        exec.sleep(ms: Int(everyS * 1000))
        if exec.stopRequested { return }
        do {
          try l.domain.setMemory(kib: target)
          recorder.stats.answer("BALLOON", target == small ? "inflate" : "deflate")
        } catch {
          recorder.stats.answer("BALLOON", "error")
          continue
        }
        if !moved && target == small {
          moved = balloonReaches(l, kib: small, timeoutS: 30)
          if !moved, !exec.stopRequested {
            let now = (try? l.domain.balloonKiB()).flatMap { $0 }.map { "\($0 >> 10) MiB" } ?? "?"
            configurationError(
              "\(l.name)'s balloon did not move in 30 s (asked for \(small >> 10) MiB, the guest has \(now)): the guest has no virtio_balloon driver; use the guest image of Guests/build.sh, whose initramfs loads virtio_pci and virtio_balloon"
            )
            return
          }
        }
      }
    }
  }

  /// Whether the guest's balloon driver brings it to `kib` (or below) within `timeoutS`.
  func balloonReaches(_ l: GuestLink, kib: UInt, timeoutS: Double) -> Bool {
    let deadline = Date().addingTimeInterval(timeoutS)
    while Date() < deadline && !exec.stopRequested {
      if let now = try? l.domain.balloonKiB(), now <= UInt64(kib) { return true }
      exec.sleep(ms: 500)
    }
    return false
  }

  /// Domains the harness created are destroyed and undefined on every exit path; domains it did
  /// not create are never touched.
  func cleanUp() {
    let mine = lock.locked { created }
    for d in mine {
      try? d.destroy()
      try? d.undefine()
    }
    lock.locked { created = [] }
  }
}

/// Resizes from inside the guest: the agent writes the order to
/// /sys/kernel/debug/powerpc/hpt_order and answers with the errno and its PREPARE and COMMIT
/// times (the guest's kernel asks the host for both, through H_RESIZE_HPT_PREPARE/_COMMIT).
final class AgentResizeDriver: ResizeDriver, @unchecked Sendable {
  static let policies = ResizePolicy.orderChanges
  /// How long after a dimm attach/detach a refused resize is put down to it.
  static let hotplugWindowS = 30.0
  let link: GuestLink
  let stats: RunStats
  let exec: ThreadExecutor
  let budget: Budget

  init(link: GuestLink, stats: RunStats, exec: ThreadExecutor, budget: Budget) {
    self.link = link
    self.stats = stats
    self.exec = exec
    self.budget = budget
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
      if answer == nil && (exec.stopRequested || budget.exhausted(now: exec.nowNs)) { break }
    }
    let nearHotplug = link.secondsSinceHotplug < Self.hotplugWindowS
    guard let line = answer, let r = GuestResize(line) else {
      if exec.stopRequested || budget.exhausted(now: exec.nowNs) { return .stopping }
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
