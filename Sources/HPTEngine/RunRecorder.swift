import Foundation
import Synchronization

/// What every backend's run shares: the counters, the findings written to the run directory as
/// they come, and the final report (run.json, junit.xml).
public final class RunRecorder: @unchecked Sendable {
  let job: Job
  let outDir: URL
  let reproduce: String
  public let stats = RunStats()
  public let interrupted = LockedFlag()
  /// The signal that stopped the run (SIGINT, SIGTERM, SIGHUP), for run.json's error.
  public let interruptedBy = Mutex("SIGINT")
  /// On the host's clock: when the guests started, and when the first unexpected crash's
  /// first line reached the host log (`time_to_crash_s` is the difference).
  public let guestsStartedNs = Mutex<UInt64?>(nil)
  private let firstCrashNs = Mutex<UInt64?>(nil)

  public func crashSeen(atNs ns: UInt64?) {
    guard let ns else { return }
    firstCrashNs.withLock { if $0 == nil { $0 = ns } }
  }

  var timeToCrashS: Double? {
    guard let start = guestsStartedNs.withLock({ $0 }), let at = firstCrashNs.withLock({ $0 })
    else { return nil }
    return (Double(at >= start ? at - start : 0) / 1e6).rounded() / 1000
  }
  let wallStart = Date()
  /// run.json's provenance (RunProvenance.swift): the run's identity for a results store, the
  /// guest kernel (libvirt), and the host to ask for its kernel, CPU and versions (nil: this
  /// machine, or the simulator).
  let runID = UUID().uuidString.lowercased()
  public var guestKernel: String?
  /// The kernel under test as the host reported it (nil: not known, as when its backend could
  /// not be opened).
  var kernel: HostKernel?
  public var machine: (any HostMachine)?
  /// Called once run.json says "running" (the results store marks the run interrupted until
  /// its end replaces the record).
  public var onBegin: (@Sendable (URL) -> Void)?
  private let lock = NSLock()
  private var findings: [Finding] = []
  private var count = 0

  public init(job: Job, outDir: URL, reproduce: String) {
    self.job = job
    self.outDir = outDir
    self.reproduce = reproduce
  }

  /// The timeline (nil until `begin`), and the host clock its times are read from.
  private(set) var timeline: RunTimeline?
  private var clock: @Sendable () -> UInt64 = { 0 }

  /// The run has its directory: run.json says "running" (with this process's PID, so a later
  /// run can tell a dead harness's directory from a live one's) and the timeline starts.
  public func begin(clock: @escaping @Sendable () -> UInt64) {
    self.clock = clock
    // The simulator's kernel by its model's name ("pre-fix" is 4.14.0-rc4), as run.json's end
    // names it: a run killed before its end is filed under the same kernel.
    let kernel = job.backend.usesKernelModel ? self.kernel?.name ?? job.kernel : job.kernel
    let interim: [String: Any] = [
      "verdict": "running", "job": job.name, "kernel": kernel, "seed": String(job.seed),
      "reproduce": reproduce, "backend": job.backend.rawValue,
      "run_id": runID, "started_at": RunProvenance.timestamp(wallStart),
    ].merging(HarnessProcess.me) { a, _ in a }
    if let data = try? JSONSerialization.data(
      withJSONObject: interim, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    {
      do {
        try data.write(to: outDir.appendingPathComponent("run.json"), options: .atomic)
      } catch {
        noteWriteFailure("run.json", error)
      }
    }
    let t = RunTimeline(dir: outDir)
    t.onWriteFailure = { [weak self] in self?.noteWriteFailure(RunTimeline.fileName, $0) }
    t.start(
      atNs: clock(),
      [
        "job": job.name, "seed": String(job.seed), "backend": job.backend.rawValue,
        "kernel": kernel, "reproduce": reproduce,
      ])
    timeline = t
    stats.timeline = t
    onBegin?(outDir)
  }

  var nowNs: UInt64 { clock() }

  /// A phase of the run begins: a journal line, fsync'd.
  public func phase(_ name: String, _ fields: [String: Any] = [:]) {
    timeline?.phase(atNs: clock(), name, fields)
  }

  /// Keeps a finding and writes its report to crash-N.txt at once.
  public func addFinding(_ f: Finding, report: String) {
    lock.locked {
      count += 1
      var f = f
      let name = "crash-\(count).txt"
      f.file = name
      do {
        try Data(report.utf8).write(to: outDir.appendingPathComponent(name))
      } catch {
        noteWriteFailure(name, error)
      }
      findings.append(f)
      timeline?.crash(
        atNs: clock(), title: f.title, frame: f.frame, report: name, expected: f.expected)
    }
  }

  /// The first file of the run directory that could not be written (a full disk, a removed
  /// directory): the run cannot vouch for its results, so its verdict is error, never bug.
  private let writeFailure = Mutex<String?>(nil)

  func noteWriteFailure(_ file: String, _ error: any Error) {
    let e = error as NSError
    let posix = [e, e.userInfo[NSUnderlyingErrorKey] as? NSError].compactMap { $0 }
      .first { $0.domain == NSPOSIXErrorDomain }
    let why = posix.map { String(cString: strerror(Int32($0.code))) } ?? e.localizedDescription
    writeFailure.withLock {
      if $0 == nil { $0 = "could not write \(outDir.appendingPathComponent(file).path): \(why)" }
    }
  }

  /// Appends to one of the run directory's logs; a failure is noted, not fatal.
  public func append(_ data: Data, to handle: FileHandle?, file: String) {
    guard let handle else { return }
    do { try handle.write(contentsOf: data) } catch { noteWriteFailure(file, error) }
  }

  public var allFindings: [Finding] { lock.locked { findings } }

  public func report(
    error: String?, hostTimeS: Double, hostStats: [String: Int], kernel: String,
    kernelRelease: String,
    detail: String? = nil, target: String? = nil, hostTrace: HostTrace.Result? = nil
  ) -> RunReport {
    let wall = Date().timeIntervalSince(wallStart)
    let taken = stats.with { $0.pagesTaken }
    let (resizes, answers, unexpected, lat, pv, mm) = stats.with { s in
      (
        RunReport.Resizes(
          attempted: s.attempted, succeeded: s.succeeded, failed_expected: s.failedExpected,
          failed_unexpected: s.failedUnexpected), s.answers, s.unexpected,
        RunReport.Latency(
          prepare_to_ready: RunStats.summary(s.prepareToReadyUs),
          commit: RunStats.summary(s.commitUs)),
        s.pagesVerified, s.mismatches
      )
    }
    let crashes = allFindings
    let verdict: Verdict
    var error = error
    if let w = writeFailure.withLock({ $0 }) {
      error = (error.map { $0 + "; " } ?? "") + w + " (is its disk full?)"
    }
    if error == nil && interrupted.value && !crashes.contains(where: { !$0.expected }) {
      error =
        "interrupted by \(interruptedBy.withLock { $0 }) before the budget was spent (nothing found until then)"
    }
    // A run that spent its whole time with writers on and not one page verified has not
    // tested guest memory (a run bounded by a resize count may end before the first report).
    if error == nil && job.guestWriters && job.resizeBudget == nil && pv == 0
      && !stats.with({ $0.pagesVerifiedUnknown }) && !crashes.contains(where: { !$0.expected })
    {
      error =
        "the guests verified no page in \(Int(hostTimeS)) s of host time although memory_load.guest_writers is on: their payload never reported (a host too slow or too loaded for this job's load?), so the run tested nothing of guest memory"
    }
    if error != nil {
      verdict = .error
    } else if crashes.contains(where: { !$0.expected })
      || (job.failOnUnexpected && resizes.failed_unexpected > 0)
    {
      verdict = .bug
    } else {
      verdict = .pass
    }
    let faults = hostStats["hypervisor_faults"] ?? 0
    let report = RunReport(
      verdict: verdict,
      verdict_detail: verdict == .bug
        ? detail ?? crashes.first { !$0.expected }.map { _ in "bug" } : nil,
      error: error, job: job.name, backend: job.backend.rawValue,
      kernel: kernel, kernel_release: kernelRelease, seed: job.seed,
      reproduce: reproduce, host_time_s: (hostTimeS * 1e6).rounded() / 1e6,
      time_to_crash_s: timeToCrashS, resizes: resizes,
      answers: answers, unexpected: unexpected, latency_ms: lat,
      guests: RunReport.Guests(
        count: job.guestCount, memory_mib: job.guestMemoryMiB, vcpus: job.vcpus,
        boot_order: job.bootOrder.rawValue,
        pages_verified: pv, mismatches: mm,
        pages_taken: job.invalidateAdvice == .remove ? taken : nil),
      crashes: crashes, figures: hostStats.isEmpty ? nil : hostStats, target: target,
      host_trace: hostTrace,
      wall: RunReport.Wall(
        elapsed_s: (wall * 1000).rounded() / 1000,
        resizes_per_s: wall > 0 ? (Double(resizes.succeeded) / wall * 10).rounded() / 10 : 0,
        faults_per_s: wall > 0 ? (Double(faults) / wall).rounded() : 0),
      provenance: provenance(kernelRelease: kernelRelease))
    // run.json, junit.xml and the summary come from the journal's end line; written directly
    // only when the journal could not take it (a full disk: the run's error says so).
    if timeline?.end(atNs: clock(), report: report) == true, let derived = RunJournal.derive(outDir)
    {
      return derived
    }
    RunOutput.write(report, to: outDir)
    return report
  }

  private func provenance(kernelRelease: String) -> RunProvenance {
    var probe: ((String) -> String?)?
    if !job.backend.usesKernelModel {
      let m = machine
      probe = { script in
        if let m { return m.probe(script) }
        let r = HostCommand.run(["sh", "-c", script], timeoutS: 15)
        return r.ok ? r.stdout : nil
      }
    }
    return RunProvenance.collect(
      job: job, runID: runID, started: wallStart, kernelRelease: kernelRelease,
      simModel: self.kernel, guestKernel: guestKernel, hostName: machine?.name,
      vmlinux: machine?.vmlinux,
      probe: probe)
  }
}

/// A run whose backend could not be opened (/dev/kvm refused, the target unreachable): its
/// directory still gets run.json and junit.xml, verdict error with the reason, like any run
/// the infrastructure failed.
public enum SetupFailedRun {
  public static func report(
    job: Job, kernel: HostKernel?, outDir: URL, reproduce: String, error: String
  ) -> RunReport {
    try? FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
    let recorder = RunRecorder(job: job, outDir: outDir, reproduce: reproduce)
    recorder.kernel = kernel
    recorder.begin(clock: { 0 })
    return recorder.report(
      error: error, hostTimeS: 0, hostStats: [:],
      kernel: job.backend.usesKernelModel ? job.kernel : "?", kernelRelease: "")
  }

  /// What to do about the usual reasons a backend cannot start.
  public static func hint(for message: String) -> String {
    let denied = ["Permission denied", "Operation not permitted", "EACCES", "EPERM"].contains {
      message.contains($0)
    }
    if denied && message.contains("/dev/kvm") {
      return " (run as root, or as a user in the group that owns /dev/kvm)"
    }
    if denied && message.contains("/dev/kmsg") {
      return " (reading the host's kernel log needs root or CAP_SYSLOG)"
    }
    return ""
  }
}
