import ArgumentParser
import Foundation
import HPTEngine
import HPTSim
import KVMHost

struct Run: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run a job file: launch HPT guests, hammer resizes, watch the host's kernel log.")

  @Argument(help: "The job file (YAML), e.g. Jobs/dry-run.yaml.")
  var job: String

  @Option(help: "Backend: sim (the simulated POWER9 KVM-HV host).")
  var backend: String?

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

  func run() throws {
    var job: Job
    do {
      job = try Job.load(path: self.job)
    } catch {
      throw usageError(error.description)
    }
    if let backend {
      guard let b = BackendKind(rawValue: backend) else {
        throw usageError(
          "--backend: unknown backend '\(backend)'; allowed: \(BackendKind.allCases.map(\.rawValue).joined(separator: ", "))"
        )
      }
      job.backend = b
    }
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
    guard seeds >= 1 else { throw usageError("--seeds: must be at least 1") }
    if let duration {
      guard let d = parseDuration(duration) else {
        throw usageError(
          "--duration: '\(duration)' is not a duration; examples: 500ms, 30s, 2m, 1h")
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
    let base = out ?? "runs/\(job.name)-\(model.name)-seed\(job.seed)-\(stamp)"
    var worst: Int32 = Exit.pass
    var rows: [String] = []
    for i in 0..<seeds {
      var j = job
      j.seed = job.seed &+ UInt64(i)
      let dir = seeds == 1 ? base : "\(base)/seed-\(j.seed)"
      FileHandle.standardError.write(Data("hpthammer: run directory \(dir)\n".utf8))
      let host = SimHost(model: model, seed: j.seed, bootUptimeS: j.hostUptimeS)
      var repro = "hpthammer run \(self.job) --kernel \(model.name) --seed \(j.seed)"
      if let duration { repro += " --duration \(duration)" }
      if let resizes { repro += " --resizes \(resizes)" }
      let runner = Runner(
        job: j, host: host, outDir: URL(fileURLWithPath: dir),
        progress: progress ? ProgressPrinter() : nil,
        reproduce: repro)
      let report = runner.run()
      print(RunOutput.summary(report, dir: dir))
      if json, let s = String(data: RunOutput.encode(report), encoding: .utf8) { print(s) }
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
      print("Seeds:")
      for r in rows { print("  " + r) }
    }
    if worst != Exit.pass { throw ExitCode(worst) }
  }
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
    abstract: "The simulated KVM-HV kernel.", subcommands: [Kernels.self])

  struct Kernels: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "List the simulated kernel models: version, bugs carried, and the fixing commits.")

    func run() throws {
      print("Kernel models (hpthammer run JOB --kernel NAME):")
      for m in KernelModel.all {
        let bugs = ResizeBug.allCases.filter { m.has($0) }.map(\.rawValue)
        print(
          "  \(m.name.padding(toLength: 12, withPad: " ", startingAt: 0)) uname -r \(m.release)")
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
