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
  private var assembler = AgentLineAssembler()
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
    _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)  // nil log: not kept
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
    let (agent, kernel) = cond.withLock { assembler.feed(raw) }
    if let l = agent {
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
    guard let kernel else { return }
    let line = kernel.replacingOccurrences(of: "\r", with: "")
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

/// HPT-mode guests through libvirt, as the Runner drives them: it defines and starts the
/// domains, makes them resize their HPTs from inside (the agent writes hpt_order; an
/// AgentResizeDriver per guest) and by memory hotplug and the balloon, and watches their
/// consoles, their lifecycle and libvirtd. The host's log, its hang and recovery are the
/// Runner's.
public final class LibvirtFleet: GuestFleet, @unchecked Sendable {
  /// Connections and consoles that agents left blocked on a dead host still use.
  static let abandoned = Mutex<[AnyObject]>([])
  let exec = ThreadExecutor()
  let runID: String
  private var runner: Runner!
  private var job: Job { runner.job }
  private let lock = NSLock()
  private var created: [LibvirtDomain] = []
  private var links: [GuestLink] = []
  private var conn: LibvirtConnection?
  private var log: HostLogStream?
  private var guestKernel = "?"
  /// The host under test (this machine unless the job's target: says otherwise).
  var target = Target(spec: TargetSpec())
  private var targetMachine: TargetMachine?
  /// The libvirt URI in use: the job's, else the target's.
  var uri = "qemu:///system"

  public init() {
    runID = String(
      UInt32(truncatingIfNeeded: UInt64(Date().timeIntervalSince1970 * 1000)) % 1_000_000)
  }

  public var executor: any AgentExecutor { exec }
  public var hostLog: (source: any KernelLogSource, origin: LogOrigin)? {
    log.map { ($0, $0.origin) }
  }
  public var machine: (any HostMachine)? { targetMachine }
  public var memoryHost: (any HostMachine)? { targetMachine }
  public var watchesHostForHang: Bool { target.spec.kind != .local }
  public var lostChannel: String? { nil }
  public var statistics: [String: Int] { [:] }

  /// The target (booted when it is the lab), libvirtd on it, the leftovers of dead runs, and
  /// the host's kernel log: this machine's /dev/kmsg, or the remote host's console or kmsg.
  public func open(_ run: Runner) throws {
    runner = run
    try Self.libvirt {
      target = try TargetSetup.open(job.target, progress: run.progress)
      run.addFigures(target.lab?.bootFigures ?? [:])
      uri =
        job.libvirt.uri == LibvirtJob().uri && target.spec.kind != .local
        ? target.libvirtURI : job.libvirt.uri
      targetMachine = TargetMachine(target)
      try LibvirtEventLoop.start()
      // A lab or host that has just booted may reset the first connections while libvirtd
      // starts: wait for it (a local libvirtd is up or not).
      let conn: LibvirtConnection =
        target.spec.kind == .local
        ? try LibvirtConnection(uri: uri)
        : try LibvirtConnection.waitingUntilReady(
          uri: uri, timeoutS: 120, ready: { DomainType.best(forPPC64LEIn: $0) != nil },
          note: { [progress = run.progress] in progress.note($0) })
      self.conn = conn
      let cleaned = Leftovers.reap(conn, me: Leftovers.me(runID: runID))
      for line in cleaned { run.progress.note(line, always: true) }
      if !cleaned.isEmpty { run.addFigures(["leftover_domains_cleaned": cleaned.count]) }
      if target.spec.kind != .local
        || (uri.hasPrefix("qemu:///") && (try? KmsgReader(start: .end)) != nil)
      {
        log = try target.openHostLog()
      }
    }
  }

  /// LibvirtError as the run's error, with a hint where there is one.
  static func libvirt<T>(_ body: () throws -> T) throws -> T {
    do {
      return try body()
    } catch let e as LibvirtError {
      throw FleetError("libvirt: \(e.description)" + hint(for: e))
    }
  }

  static func hint(for e: LibvirtError) -> String {
    if e.message.contains("libvirt-sock") || e.message.contains("Failed to connect socket") {
      return " (is libvirtd running? scripts/libvirt-up.sh starts it)"
    }
    return ""
  }

  public func startGuests(_ run: Runner) throws -> [FleetGuest] {
    try Self.libvirt {
      guard let conn else { throw FleetError("libvirt: no connection") }
      links = try bootGuests(conn)
      guestKernel = try awaitReady(links)
      run.recorder.guestKernel = guestKernel
    }
    return links.enumerated().map { i, l in
      var guest = FleetGuest(
        driver: AgentResizeDriver(
          link: l, stats: run.stats, exec: exec,
          budgetExhausted: { [unowned run] in run.budgetExhausted() }),
        rng: SplitMix64(seed: job.seed &+ UInt64(i)))
      if let every = job.libvirt.hotplugEveryS {
        guest.after.append(Agent(name: "hotplug-\(l.name)") { [self] in hotplug(l, everyS: every) })
      }
      if let every = job.libvirt.balloonEveryS {
        guest.after.append(Agent(name: "balloon-\(l.name)") { [self] in balloon(l, everyS: every) })
      }
      return guest
    }
  }

  /// Defines and starts one domain per guest, each with its console read as it comes.
  func bootGuests(_ conn: LibvirtConnection) throws -> [GuestLink] {
    guard let type = DomainType.best(forPPC64LEIn: try conn.capabilities()) else {
      throw FleetError("\(uri) offers no ppc64le guests: install qemu-system-ppc on the host")
    }
    let (kernel, initrd) = try guestImage()
    let consoleDir = try consoleDirectory()
    try conn.onLifecycle { [self] e in lifecycle(e) }
    let owner = Leftovers.me(runID: runID)
    var links: [GuestLink] = []
    for i in 0..<job.guestCount {
      let name = "hpthammer-\(runID)-g\(i)"
      if (try? conn.lookupDomain(name: name)) != nil {
        throw FleetError(
          "a domain named \(name) already exists; it is not ours, so it is left alone")
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
        logURL: runner.outDir.appendingPathComponent("guest\(i).console.log"),
        onCrash: { [self] r in guestCrash(r, guest: "guest\(i)") },
        onCorrupt: { [self] l in guestCorrupt(l, guest: "guest\(i)") })
      link.startReader()
      links.append(link)
    }
    return links
  }

  /// The guest kernel and initramfs: the lab's own, or the job's (or Guests/build.sh's),
  /// staged where QEMU can read them.
  func guestImage() throws -> (kernel: String, initrd: String) {
    if let inLab = target.lab?.guestImage, job.libvirt.kernelImage == nil { return inLab }
    let image: (kernel: String, initrd: String)
    do {
      image = try GuestImage.resolve(kernel: job.libvirt.kernelImage, initrd: job.libvirt.initrd)
    } catch { throw FleetError(error.description) }
    return (try stageForQEMU(image.kernel), try stageForQEMU(image.initrd))
  }

  /// Where libvirt's copy of each console goes: written by QEMU, on the host that runs it.
  func consoleDirectory() throws -> String {
    if target.spec.kind == .local { return runner.outDir.path }
    let dir = "/var/log/hpthammer"
    let mk = target.run(["mkdir", "-p", dir], timeoutS: 30)
    guard mk.ok else { throw FleetError("\(target.name): mkdir -p \(dir): \(mk.lastLine)") }
    return dir
  }

  /// Waits for each agent's "ready" (hash MMU), then sets its console level and its load;
  /// returns the guests' kernel release.
  func awaitReady(_ links: [GuestLink]) throws -> String {
    var release = "?"
    let bootStart = DispatchTime.now().uptimeNanoseconds
    for l in links {
      guard let ready = l.await(["ready"], timeoutS: job.libvirt.bootTimeoutS) else {
        throw FleetError(
          "\(l.name) did not report ready within \(Int(job.libvirt.bootTimeoutS)) s (see \(l.name).console.log)"
        )
      }
      release = ready.args.first ?? "?"
      runner.addFigures([
        "\(l.name)_boot_to_ready_ms": Int(
          (DispatchTime.now().uptimeNanoseconds - bootStart) / 1_000_000)
      ])
      guard ready.args.count > 1, ready.args[1] == "hash" else {
        throw FleetError(
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
    return release
  }

  public func agents(_ run: Runner) -> [Agent] {
    var agents: [Agent] = []
    let all = links
    agents.append(Agent(name: "watchdog") { [self] in watchdog(all) })
    if let conn { agents.append(Agent(name: "libvirtd") { [self] in watchLibvirt(conn) }) }
    if let after = job.target.injectHostHangAfterS, let lab = target.lab {
      agents.append(
        Agent(name: "inject-host-hang") { [self] in
          exec.sleep(ms: Int(after * 1000))
          guard !exec.stopRequested else { return }
          runner.stats.answer("HOST", "frozen (QMP stop)")
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
    return agents
  }

  /// After the agents: why the consoles ended, the agents left blocked, CPU time, and the
  /// agents' own counters (pages verified and mismatches).
  public func stop(_ run: Runner) {
    // A console that ended stopped the run, maybe before the watcher saw libvirtd go: ask it
    // once more. Else the lifecycle event saying why (QEMU died) comes from libvirt's event
    // loop a moment later.
    if links.contains(where: \.consoleEnded), run.hostDown == nil, let conn, !conn.answers,
      target.spec.kind == .local || target.answers(timeoutS: 10)
    {
      noteLibvirtGone()
    }
    if links.contains(where: \.consoleEnded) {
      for _ in 0..<30 where run.recorder.allFindings.isEmpty && !libvirtGone.withLock({ $0 }) {
        Thread.sleep(forTimeInterval: 0.1)
      }
    }
    if !exec.abandoned.isEmpty {
      run.progress.note(
        "left behind after the stop (blocked on the host): \(exec.abandoned.joined(separator: ", "))"
      )
      // Those threads are still inside libvirt calls on this connection and these consoles:
      // they must outlive the run, or libvirt touches freed memory when the calls return.
      Self.abandoned.withLock {
        $0.append(
          contentsOf: [conn as AnyObject?].compactMap { $0 } + links.map { $0 as AnyObject })
      }
    }
    run.addFigures(cpuFigures())
    readCounters(run)
  }

  /// CPU time of the guests' QEMU processes (on this machine) and of the harness itself.
  func cpuFigures() -> [String: Int] {
    var figures: [String: Int] = [:]
    if target.spec.kind == .local {
      var qemuTicks = 0
      for l in links {
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
      figures["qemu_cpu_ms"] = qemuTicks * 1000 / max(1, hz)
    }
    var ru = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &ru)
    figures["harness_cpu_ms"] =
      Int(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 + Int(
        ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000
    return figures
  }

  /// The agents' counters; a guest that cannot give them leaves the pages verified unknown.
  func readCounters(_ run: Runner) {
    for l in links {
      guard !l.consoleEnded, (try? l.send("stats")) != nil,
        let c = l.await(["counters"], timeoutS: 10)
      else {
        run.stats.with { $0.pagesVerifiedUnknown = true }
        continue
      }
      var fields: [String: UInt64] = [:]
      for a in c.args {
        let kv = a.split(separator: "=", maxSplits: 1)
        if kv.count == 2, let v = UInt64(kv[1]) { fields[String(kv[0])] = v }
      }
      run.stats.with {
        $0.pagesVerified += fields["pages"] ?? 0
        $0.mismatches += fields["mismatches"] ?? 0
      }
    }
  }

  /// Domains the harness created are destroyed and undefined on every exit path; domains it did
  /// not create are never touched.
  public func cleanUp(_ run: Runner) {
    log?.stop()
    let mine = lock.locked { created }
    for d in mine {
      try? d.destroy()
      try? d.undefine()
    }
    lock.locked { created = [] }
  }

  public func end(_ run: Runner) -> FleetEnd {
    FleetEnd(
      kernel: "guest \(guestKernel)", kernelRelease: hostRelease(run),
      target: target.spec.kind == .local ? nil : "\(target.spec.kind.rawValue) \(target.name)",
      figures: [:])
  }

  func hostRelease(_ run: Runner) -> String {
    if target.spec.kind != .local {
      return run.hostDown == nil ? target.kernelRelease() : "?"
    }
    return (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?
      .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
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

  func guestCrash(_ r: CrashReport, guest: String) {
    runner.guestFailed(Finding(r, source: guest), report: r.report, detail: "guest crash")
  }

  private var corruptGuests: Set<String> = []
  func guestCorrupt(_ l: AgentLine, guest: String) {
    // The agent repeats a mismatch it keeps seeing; one finding per guest is enough.
    guard lock.locked({ corruptGuests.insert(guest).inserted }) else { return }
    let title = "guest memory corruption: \(guest) read back data it did not write"
    runner.guestFailed(
      Finding(
        title: title, type: "MEMORY_CORRUPTION", frame: nil,
        source: "\(guest) agent integrity check", expected: false, file: nil, corrupted: false),
      report: "\(title)\nagent: corrupt \(l.args.joined(separator: " "))\n",
      detail: "guest memory corruption")
  }

  func lifecycle(_ e: LifecycleEvent) {
    // After a host crash its guests' deaths are its consequence, not findings of their own.
    // (Our own destroy at the end is not a crash: its detail is "destroyed".)
    guard e.domain.hasPrefix("hpthammer-\(runID)-"), e.isCrash,
      runner.hostDown == nil || e.kind == .crashed
    else { return }
    let guest = "guest" + (e.domain.split(separator: "g").last.map(String.init) ?? "?")
    let what = e.kind == .crashed ? "guest crash" : "QEMU death"
    runner.guestFailed(
      Finding(
        title: "\(what): domain \(e.domain) \(e.kind) (detail \(e.detail))",
        type: e.kind == .crashed ? "GUEST_CRASH" : "QEMU_DEATH",
        frame: nil, source: guest, expected: false, file: nil, corrupted: false),
      report: "libvirt lifecycle event: \(e)\n", detail: what)
  }

  /// libvirtd stopped answering on a host that still does: the infrastructure failed, not the
  /// kernel, and nothing the guests seem to do after it (silent consoles) is a finding.
  func watchLibvirt(_ conn: LibvirtConnection) {
    while !exec.stopRequested {
      exec.sleep(ms: 1000)
      if exec.stopRequested || conn.answers { continue }
      if target.spec.kind != .local, !target.answers(timeoutS: 10) { continue }  // the hang watch's
      noteLibvirtGone()
    }
  }
  private let libvirtGone = Mutex(false)

  func noteLibvirtGone() {
    libvirtGone.withLock { $0 = true }
    runner.infrastructureFailed(
      "libvirtd stopped answering on \(uri) mid-run (the guests' results after that are unknown): start it again (scripts/libvirt-up.sh, or systemctl start libvirtd) and rerun; the next run cleans up this run's domains"
    )
  }

  /// sysrq c: the kernel panics on purpose (checks the host-crash path end to end).
  func injectHostCrash() {
    runner.stats.answer("HOST", "sysrq c injected")
    _ = target.run(
      ["sh", "-c", "echo 1 > /proc/sys/kernel/sysrq; sync; echo c > /proc/sysrq-trigger"],
      timeoutS: 15)
  }

  /// No heartbeat for heartbeat_timeout_s: the guest hangs.
  func watchdog(_ links: [GuestLink]) {
    while !exec.stopRequested {
      exec.sleep(ms: 500)
      let silent = links.filter { $0.secondsSinceHeartbeat > job.libvirt.heartbeatTimeoutS }
      // Guests of a remote host that stopped answering are not hung themselves: the host is,
      // and the Runner's hang watch says so once hung_after_s have passed.
      if !silent.isEmpty, target.spec.kind != .local, !target.answers(timeoutS: 10) { continue }
      for l in silent where !exec.stopRequested {
        runner.guestFailed(
          Finding(
            title:
              "guest hang: \(l.name) sent no heartbeat for \(Int(job.libvirt.heartbeatTimeoutS)) s",
            type: "HANG",
            frame: nil, source: l.name, expected: false, file: nil, corrupted: false),
          report:
            "no heartbeat from \(l.name)'s agent for \(Int(l.secondsSinceHeartbeat)) s; see \(l.name).console.log\n",
          detail: "guest hang", timed: false)
      }
    }
  }

  /// The guest resizes by itself for hotplugged memory: read its order back.
  func recordOrder(_ l: GuestLink, _ when: String) throws(LibvirtError) {
    try l.send("order")
    if let o = l.await(["hpt"], timeoutS: 10) {
      runner.stats.answer("HOTPLUG", "order \(o.args.first ?? "?") \(when)")
    }
  }

  /// Memory hotplug from outside: the guest grows (and shrinks) its HPT by itself.
  func hotplug(_ l: GuestLink, everyS: Double) {
    let dimm = HPTDomainSpec.dimmXML(sizeMiB: job.libvirt.hotplugMiB)
    let stats = runner.stats
    while !exec.stopRequested {
      exec.sleep(ms: Int(everyS * 1000))
      if exec.stopRequested { break }
      do {
        l.markHotplug()
        try l.domain.attachDevice(xml: dimm)
        l.markHotplug()
        stats.answer("HOTPLUG", "attached")
        exec.sleep(ms: Int(everyS * 1000))
        try recordOrder(l, "with the dimm")
        l.markHotplug()
        try l.domain.detachDevice(xml: dimm)
        l.markHotplug()
        stats.answer("HOTPLUG", "detached")
        exec.sleep(ms: Int(everyS * 1000))
        try recordOrder(l, "without it")
      } catch {
        stats.answer("HOTPLUG", "error")
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
          runner.stats.answer("BALLOON", target == small ? "inflate" : "deflate")
        } catch {
          runner.stats.answer("BALLOON", "error")
          continue
        }
        if !moved && target == small {
          moved = balloonReaches(l, kib: small, timeoutS: 30)
          if !moved, !exec.stopRequested {
            let now = (try? l.domain.balloonKiB()).flatMap { $0 }.map { "\($0 >> 10) MiB" } ?? "?"
            runner.fail(
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
}
