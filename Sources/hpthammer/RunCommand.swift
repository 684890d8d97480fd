import ArgumentParser
import Foundation
import HPTEngine
import HPTResults
import HPTSim
import KVMHost

struct Run: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Run a job file: launch HPT guests, hammer resizes, watch the host's kernel log.")

  @Argument(help: "The job file (YAML), e.g. Jobs/dry-run.yaml.")
  var job: String

  @Option(
    help:
      "Backend: sim (the simulated POWER9 KVM-HV host), raw (this host's /dev/kvm, POWER KVM-HV), raw-sim (the raw VMM over the simulated kernel), libvirt.",
    transform: BackendKind.parse)
  var backend: BackendKind?

  @Option(help: "Simulated kernel model (see `hpthammer sim kernels`).")
  var kernel: String?

  @Option(help: "Seed of the run (decimal or 0x hex).")
  var seed: String?

  @Option(help: "Run this many seeds, from --seed on; one run directory each.")
  var seeds: Int = 1

  @Option(help: "Host-time budget: 500ms, 30s, 2m, 1h.")
  var duration: String?

  @Option(help: "Budget in resize cycles.")
  var resizes: Int?

  @Option(help: "Run directory (with --seeds: the parent of one directory per seed).")
  var out: String?

  @Flag(inversion: .prefixedNo, help: "Live progress lines (default: when stderr is a terminal).")
  var progress: Bool = isatty(2) != 0

  @Flag(help: "Print run.json to standard output at the end.")
  var json = false

  @Option(
    help:
      "Where KVM runs: local, or lab (the emulated POWER host of Guests/lab/); overrides the job's target.kind.",
    transform: RunTargetChoice.parse)
  var target: RunTargetChoice?

  @Option(help: "Lab: boot this kernel (vmlinux, PowerNV-capable) instead of Debian's.")
  var hostKernel: String?

  @Option(
    help: "Lab: the modules of --host-kernel (a lib/modules/VERSION directory with kvm-hv.ko).")
  var hostModules: String?

  @Option(help: "Record the run in this results database (see `hpthammer results --help`).")
  var db: String?

  @Flag(name: .customLong("no-db"), help: "Do not record the run in the results database.")
  var noDB = false

  func run() throws {
    var job: Job
    do {
      job = try Backends.loadJob(path: self.job)
    } catch {
      throw usageError(error.description)
    }
    if let backend { job.backend = backend }
    if let kernel {
      guard KernelModel.named(kernel) != nil else {
        throw usageError(
          "--kernel: unknown kernel model '\(kernel)'; allowed: \(KernelModel.allNames.joined(separator: ", "))"
        )
      }
      job.kernel = kernel
    }
    if let seed {
      guard
        let s = UInt64(seed) ?? (seed.hasPrefix("0x") ? UInt64(seed.dropFirst(2), radix: 16) : nil)
      else {
        throw usageError("--seed: '\(seed)' is not a whole number (decimal or 0x hex)")
      }
      job.seed = s
    }
    if let target {
      let kind = target.kind
      job.target.spec.kind = kind
      if kind == .lab && ![.libvirt, .raw].contains(job.backend) {
        throw usageError(
          "--target lab: the lab runs the libvirt or raw backend; the job's backend is \(job.backend.rawValue)"
        )
      }
    }
    if hostKernel != nil || hostModules != nil {
      guard job.target.spec.kind == .lab else {
        throw usageError("--host-kernel and --host-modules boot the lab: add --target lab")
      }
      for (flag, path) in [("--host-kernel", hostKernel), ("--host-modules", hostModules)] {
        if let path, !FileManager.default.fileExists(atPath: path) {
          throw usageError("\(flag) \(path): no such file or directory")
        }
      }
      guard let hostKernel, let hostModules else {
        throw usageError(
          "give --host-kernel and --host-modules together (kvm-hv.ko must match the kernel)")
      }
      job.target.spec.lab.hostKernel = hostKernel
      job.target.spec.lab.hostModules = hostModules
    }
    do {
      try job.checkBackendLimits(file: self.job)
      try Backends.checkSimulatorMemory(job, file: self.job)
    } catch {
      throw usageError(error.description)
    }
    guard seeds >= 1 else { throw usageError("--seeds: must be at least 1") }
    guard job.seed <= UInt64.max - UInt64(seeds - 1) else {
      throw usageError(
        "--seeds \(seeds) from seed \(job.seed) would pass 2^64-1 and wrap to 0: start lower")
    }
    if let duration {
      guard let d = parseDuration(duration) else {
        throw usageError(
          "--duration: '\(duration)' is not a duration; examples: 500ms, 30s, 2m, 1h")
      }
      guard d <= Job.maxDurationS else {
        throw usageError("--duration: '\(duration)' is more than a year of host time")
      }
      job.durationS = d
      if resizes == nil { job.resizeBudget = nil }
    }
    if let resizes {
      guard resizes >= 1 else { throw usageError("--resizes: must be at least 1") }
      job.resizeBudget = resizes
      if duration == nil { job.durationS = nil }
    }
    guard let model = KernelModel.named(job.kernel) else {
      throw usageError("\(self.job): host.kernel: unknown kernel model '\(job.kernel)'")
    }

    let stamp = ISO8601DateFormatter.string(
      from: Date(), timeZone: .current, formatOptions: [.withYear, .withMonth, .withDay, .withTime]
    )
    .replacingOccurrences(of: ":", with: "")
    // Nothing written before is lost: a given --out must be new or empty; a default directory
    // gets a suffix if one of the same name exists.
    let kernelName = job.backend == .raw ? "host" : model.name
    var base =
      out ?? "runs/\(RunDirectory.component(job.name))-\(kernelName)-seed\(job.seed)-\(stamp)"
    if let out {
      // The runs beside this one that a dead harness left running (a night's, a script's).
      Runs.repairAbandoned(
        under: URL(fileURLWithPath: out).deletingLastPathComponent().path, depth: 1)
      var isDir: ObjCBool = false
      if FileManager.default.fileExists(atPath: base, isDirectory: &isDir), !isDir.boolValue {
        throw usageError("--out \(base): a file of that name exists; give a new or empty directory")
      }
      if let files = try? FileManager.default.contentsOfDirectory(atPath: base), !files.isEmpty {
        throw usageError(
          "--out \(base): the directory already holds files; choose a new or empty one")
      }
    } else {
      Runs.repairAbandoned(under: "runs")
      var n = 2
      let first = base
      while FileManager.default.fileExists(atPath: base) {
        base = "\(first)-\(n)"
        n += 1
      }
    }
    var worst: Int32 = Exit.pass
    var writeFailed = false
    var rows: [String] = []
    // Ctrl-C, systemd's or timeout's SIGTERM, a closed terminal's SIGHUP: once, stop and write
    // the results (verdict error, the signal named); twice, leave at once.
    let current = CurrentRunner()
    let sources = [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP")].map { sig, name in
      signal(sig, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
      source.setEventHandler {
        if current.interruptOnce(by: name) { return }
        Foundation.exit(128 + sig)
      }
      source.resume()
      return source
    }
    defer { sources.forEach { $0.cancel() } }
    for i in 0..<seeds {
      if current.wasInterrupted { break }
      var j = job
      j.seed = job.seed &+ UInt64(i)
      let dir = seeds == 1 ? base : "\(base)/seed-\(j.seed)"
      FileHandle.standardError.write(Data("hpthammer: run directory \(dir)\n".utf8))
      // A line to paste into a shell: every word quoted where it needs to be.
      var words = [
        "hpthammer", "run", self.job, "--backend", j.backend.rawValue, "--seed", "\(j.seed)",
      ]
      if j.backend.usesKernelModel { words += ["--kernel", model.name] }
      if let duration { words += ["--duration", duration] }
      if let resizes { words += ["--resizes", "\(resizes)"] }
      if let target { words += ["--target", target.rawValue] }
      if let hostKernel, let hostModules {
        words += ["--host-kernel", hostKernel, "--host-modules", hostModules]
      }
      let repro = words.map(shellQuoted).joined(separator: " ")
      // The store learns of the run as it starts (interrupted until its end says otherwise:
      // a harness killed outright leaves it so), and records it whole at its end.
      let recording = !noDB && !ResultsStore.recordingIsOff(db)
      let store: String? = self.db
      var recordStart: (@Sendable (URL) -> Void)?
      if recording {
        recordStart = { (dir: URL) in recordInHistory(runDir: dir.path, db: store, atStart: true) }
      }
      let report = Backends.run(
        j, model: model, dir: URL(fileURLWithPath: dir), progress: progress, reproduce: repro,
        current: current, onBegin: recordStart)
      if !RunOutput.isWritten(report, in: URL(fileURLWithPath: dir)) {
        FileHandle.standardError.write(
          Data(
            "hpthammer: could not write \(dir)/run.json and junit.xml (is its disk full?); the verdict below is not on disk\n"
              .utf8))
        writeFailed = true
      }
      // With --json, stdout holds only JSON (one run.json per line, one line per seed); the
      // human summary goes to stderr.
      let summary = RunOutput.summary(report, dir: dir)
      if json {
        FileHandle.standardError.write(Data((summary + "\n").utf8))
        print(String(decoding: RunOutput.encodeLine(report), as: UTF8.self))
      } else {
        print(summary)
      }
      if recording { recordInHistory(runDir: dir, db: store) }
      rows.append(
        "seed \(j.seed): \(report.verdict.rawValue) \(report.crashes.first(where: { !$0.expected })?.title ?? "")"
      )
      switch report.verdict {
      case .bug: worst = Exit.bug
      case .error: if worst == Exit.pass { worst = Exit.couldNotTest }
      case .pass: break
      }
    }
    if seeds > 1 {
      let table = (["Seeds:"] + rows.map { "  " + $0 }).joined(separator: "\n") + "\n"
      if json {
        FileHandle.standardError.write(Data(table.utf8))
      } else {
        print(table, terminator: "")
      }
    }
    // A verdict the run directory does not hold cannot be trusted, whatever it was.
    if writeFailed { throw ExitCode(Exit.couldNotTest) }
    if worst != Exit.pass { throw ExitCode(worst) }
  }
}

/// The run Ctrl-C stops.
final class CurrentRunner: @unchecked Sendable {
  private let lock = NSLock()
  private var stop: (@Sendable (String) -> Void)?
  private var interrupted = false

  private var signal = "SIGINT"

  func set(_ stop: @escaping @Sendable (String) -> Void) {
    lock.lock()
    self.stop = stop
    let now = interrupted
    let sig = signal
    lock.unlock()
    if now { stop(sig) }
  }

  /// Returns true the first time (the run is asked to stop), false after that.
  func interruptOnce(by signal: String) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    if interrupted { return false }
    interrupted = true
    self.signal = signal
    CurrentRunner.signalled.set(signal)
    FileHandle.standardError.write(
      Data("hpthammer: \(signal): stopping; writing results (send it again to quit now)\n".utf8))
    stop?(signal)
    return true
  }

  /// The first signal any run of this process was stopped by (a nightly stops after that run).
  static let signalled = SignalSeen()

  final class SignalSeen: @unchecked Sendable {
    private let lock = NSLock()
    private var name: String?
    func set(_ s: String) {
      lock.lock()
      if name == nil { name = s }
      lock.unlock()
    }
    var value: String? {
      lock.lock()
      defer { lock.unlock() }
      return name
    }
  }

  var wasInterrupted: Bool {
    lock.lock()
    defer { lock.unlock() }
    return interrupted
  }
}

/// `word` as a POSIX shell reads it back: as is when it holds only characters no shell
/// treats specially, else in single quotes (a quote inside becomes '\'').
func shellQuoted(_ word: String) -> String {
  let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=+,@%")
  if !word.isEmpty && word.allSatisfy({ plain.contains($0) }) { return word }
  return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// "500ms", "30s", "2m", "1h", or a plain number of seconds.
func parseDuration(_ s: String) -> Double? {
  let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
  for (suffix, scale) in units where s.hasSuffix(suffix) {
    if let v = Double(s.dropLast(suffix.count)), v > 0 { return v * scale }
  }
  if let v = Double(s), v > 0 { return v }
  return nil
}

struct Sim: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sim",
    abstract: "The simulated KVM-HV kernel.", subcommands: [Kernels.self])

  struct Kernels: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "kernels",
      abstract: "List the simulated kernel models: version, bugs carried, and the fixing commits.")

    func run() throws {
      print("Kernel models (hpthammer run JOB --kernel NAME):")
      let width = KernelModel.all.map(\.name.count).max() ?? 0
      for m in KernelModel.all {
        let bugs = ResizeBug.allCases.filter { m.has($0) }.map(\.rawValue)
        print(
          "  \(m.name.padding(toLength: width, withPad: " ", startingAt: 0))  uname -r \(m.release)"
        )
        print(
          "      bugs: \(bugs.isEmpty ? "none" : bugs.joined(separator: ", ")) - \(m.description)")
      }
      print(
        "Aliases: "
          + KernelModel.aliases.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(
            separator: ", "))
      print("Bugs:")
      for b in ResizeBug.allCases {
        print("  \(b.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0)) \(b.summary)")
        print("       in \(b.versions); fixed by \(b.fix)")
      }
    }
  }
}
