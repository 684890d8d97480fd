import ArgumentParser
import Foundation
import HPTResults

/// Where the results store is: every results, report and nightly command takes it.
struct StoreOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "The results database: a SQLite file, or postgres://USER@HOST/DB for a fleet's shared one (password in $PGPASSWORD).",
      discussion: "Default: $HPTHAMMER_DB, else $XDG_DATA_HOME/hpthammer/results.sqlite."))
  var db: String?

  /// Opens the store; a store that cannot be used ends the command: 125 when it is
  /// unreachable or newer, 2 when --db makes no sense.
  func open() throws -> ResultsStore {
    do {
      return try ResultsStore.open(db)
    } catch {
      throw storeExit(error)
    }
  }
}

/// A store error as the command's exit: usage and bad input 2, everything else 125 (the
/// results could not be stored or read: the run itself is not at fault).
func storeExit(_ e: StoreError) -> ExitCode {
  FileHandle.standardError.write(Data("hpthammer: \(e.description)\n".utf8))
  switch e {
  case .usage, .badRunDirectory: return ExitCode(Exit.usage)
  case .unreachable, .newerSchema, .failed: return ExitCode(Exit.couldNotTest)
  }
}

func parseSince(_ s: String?) throws -> Double? {
  guard let s else { return nil }
  guard let t = Format.since(s) else {
    throw usageError("--since: '\(s)' is neither an age (30d, 12h, 2w) nor a date (2026-11-01)")
  }
  return t
}

struct Results: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "results",
    abstract: "The results history: runs, crashes deduplicated across runs, exports.",
    subcommands: [
      List.self, Import.self, Crashes.self, Show.self, Studies.self, KCIDBExport.self,
      JUnitExport.self,
    ],
    defaultSubcommand: List.self)

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "list", abstract: "Runs, newest first (the default subcommand).")
    @OptionGroup var store: StoreOptions
    @Option(help: "Only runs of this kernel under test (name or release).") var kernel: String?
    @Option(help: "Only runs on this host.") var host: String?
    @Option(help: "Only runs of this job.") var job: String?
    @Option(help: "Only runs with this verdict: pass, bug, error.", transform: VerdictChoice.parse)
    var verdict: VerdictChoice?
    @Option(help: "Only runs started since: 30d, 12h, or a date (2026-11-01).") var since: String?
    @Option(help: "At most this many runs.") var limit: Int = 100
    @Option(help: "Also write Prometheus text-format metrics of each host's last run here.")
    var metrics: String?
    @Flag(help: "JSON instead of a table.") var json = false

    func run() throws {
      let s = try store.open()
      let filter = ResultsStore.RunFilter(
        kernel: kernel, host: host, job: job, verdict: verdict?.rawValue,
        since: try parseSince(since),
        limit: limit)
      let runs: [RunRecord]
      do { runs = try s.runs(filter) } catch { throw storeExit(error) }
      if let metrics { try writeMetrics(s, to: metrics) }
      if json {
        print(Format.json(runs))
        return
      }
      guard !runs.isEmpty else {
        print("No runs in \(s.backend.location) match; `hpthammer results import DIR` adds some.")
        return
      }
      var rows = [
        ["STARTED", "VERDICT", "JOB", "SEED", "KERNEL", "HOST", "BACKEND", "ID", "FIRST CRASH"]
      ]
      for r in runs {
        rows.append([
          Format.time(r.startedAt), r.verdict + (r.interrupted ? "*" : ""), r.job, r.seed, r.kernel,
          r.host, r.backend, String(r.runID.prefix(8)), r.bugs.first?.title ?? "",
        ])
      }
      print(Format.table(rows))
      if runs.contains(where: \.interrupted) { print("* interrupted: the run never ended") }
    }
  }

  /// Bisections and verdicts, as they recorded themselves.
  struct Studies: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "studies",
      abstract: "Bisections and verdicts, newest first: their arguments, status and result.",
      discussion: """
        A study still marked running whose process is gone (killed, a reboot) shows as \
        interrupted; `hpthammer bisect resume DIR` goes on with a bisection and updates its row.
        """)
    @OptionGroup var store: StoreOptions
    @Option(
      help: "Only bisections or only verdicts: bisection, verdict.",
      transform: StudyRecord.Kind.parse)
    var kind: StudyRecord.Kind?
    @Option(
      help: "Only those with this status: running, ended, interrupted.",
      transform: StudyStatusChoice.parse)
    var status: StudyStatusChoice?
    @Option(help: "Only those started since: 30d, 12h, or a date (2026-11-01).") var since: String?
    @Option(help: "At most this many.") var limit: Int = 100
    @Flag(help: "JSON instead of a table.") var json = false

    func run() throws {
      let sinceT = try parseSince(since)
      let s = try store.open()
      defer { s.backend.close() }
      let studies: [StudyRecord]
      do {
        studies = try s.studies(
          ResultsStore.StudyFilter(
            kind: kind, since: sinceT, status: status?.rawValue, limit: limit))
      } catch { throw storeExit(error) }
      if json {
        print(StudyRecord.json(studies))
        return
      }
      guard !studies.isEmpty else {
        print(
          "No bisections or verdicts in \(s.backend.location) match; `hpthammer bisect` and `hpthammer verdict` record themselves."
        )
        return
      }
      var rows = [["STARTED", "KIND", "STATUS", "RUNS", "ANSWER", "CONFIDENCE", "INPUTS", "DIR"]]
      for r in studies {
        let inputs =
          r.kind == .bisection
          ? "\(r.good.map { String($0.prefix(12)) } ?? "?")..\(r.bad.map { String($0.prefix(12)) } ?? "?")"
          : "\(r.base ?? "?") vs \(r.patched ?? "?")"
        let answer =
          r.outcome.map { r.kind == .bisection ? String($0.prefix(12)) : $0 } ?? r.error
          .map { "error: \($0)" } ?? "-"
        rows.append([
          Format.time(r.startedAt), r.kind.rawValue, r.status, r.runs.map(String.init) ?? "-",
          answer, r.confidence.map { String(format: "%.4f", $0) } ?? "-", inputs, r.dir,
        ])
      }
      print(Format.table(rows))
    }
  }

  struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "import",
      abstract:
        "Store run directories (CI artifacts, another controller's runs); a run stored before is left as it is."
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "Run directories, or directories holding run directories.") var dirs: [String]
    @Flag(help: "One JSON document on stdout: what was stored, already stored, or refused.")
    var json = false

    struct Outcome: Encodable {
      var dir: String
      /// stored, already-stored, refused
      var outcome: String
      var runId: String?
      var newSignatures: [String]?
      var error: String?
    }

    func run() throws {
      let s = try store.open()
      defer { s.backend.close() }
      var outcomes: [Outcome] = []
      let say = { (line: String) in FileHandle.standardError.write(Data((line + "\n").utf8)) }
      var storeFailure: StoreError?
      for dir in RunDirectories.expand(dirs) {
        do {
          let record = try RunRecord.load(dir: dir)
          switch try s.record(record) {
          case .stored(let new):
            outcomes.append(
              Outcome(dir: dir, outcome: "stored", runId: record.runID, newSignatures: new))
            if !json {
              print("\(dir): stored (\(record.verdict), run \(record.runID.prefix(8)))")
              for sig in new { print("  NEW crash signature (never seen in this store): \(sig)") }
            }
          case .alreadyStored:
            outcomes.append(Outcome(dir: dir, outcome: "already-stored", runId: record.runID))
            if !json { print("\(dir): already stored (run \(record.runID.prefix(8)))") }
          }
        } catch .badRunDirectory(let why) {
          // A directory that is not a run: named, skipped; the others are still imported.
          say("hpthammer results import: \(why)")
          outcomes.append(Outcome(dir: dir, outcome: "refused", error: why))
        } catch {
          // The store itself failed: what was stored before stays, the rest is not tried.
          storeFailure = error
          break
        }
      }
      let stored = outcomes.filter { $0.outcome == "stored" }
      let refused = outcomes.filter { $0.outcome == "refused" }.count
      let new = stored.reduce(0) { $0 + ($1.newSignatures?.count ?? 0) }
      if json { print(Format.json(outcomes)) }
      say(
        "hpthammer: \(stored.count) stored, \(outcomes.count - stored.count - refused) already stored, \(refused) refused (not run directories), \(new) new crash signatures (\(s.backend.location))"
      )
      if let storeFailure { throw storeExit(storeFailure) }
      if refused > 0 { throw ExitCode(Exit.usage) }
    }
  }

  struct Crashes: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "crashes",
      abstract:
        "Crashes deduplicated by signature (title + guilty frame): first and last seen, count, kernels, hosts, shortest reproducer; new ones first."
    )
    @OptionGroup var store: StoreOptions
    @Option(help: "Only signatures seen since: 30d, 12h, or a date.") var since: String?
    @Option(help: "New: first seen within this long of the newest run.")
    var newWithin: String = "1d"
    @Flag(help: "Print each signature's report text too.") var reports = false
    @Flag(help: "JSON instead of a table.") var json = false

    func run() throws {
      let s = try store.open()
      guard let window = Format.age(newWithin) else {
        throw usageError("--new-within: '\(newWithin)' is not an age (1d, 12h)")
      }
      let sinceT = try parseSince(since)
      let groups: [CrashGroup]
      do {
        groups = try CrashGroups.group(s, since: sinceT, newWithin: window)
      } catch { throw storeExit(error) }
      if json {
        print(Format.json(groups))
        return
      }
      guard !groups.isEmpty else {
        print("No crashes in \(s.backend.location).")
        return
      }
      for g in groups {
        print("\(g.isNew ? "NEW " : "")\(g.title)")
        print("    frame \(g.frame ?? "-"), \(g.count) times in \(g.runs) runs")
        print("    first seen \(Format.time(g.firstSeen)), last seen \(Format.time(g.lastSeen))")
        print("    kernels: \(g.kernels.joined(separator: ", "))")
        print("    hosts: \(g.hosts.joined(separator: ", "))")
        let r = g.reproducer
        print(
          "    shortest reproducer: job \(r.job) seed \(r.seed) kernel \(r.kernel) backend \(r.backend)\(r.secondsToCrash.map { String(format: " (%.3f s to crash)", $0) } ?? "")"
        )
        if let c = r.command { print("      \(c)") }
        if reports, let text = g.report {
          print(
            text.split(separator: "\n", omittingEmptySubsequences: false).map { "    | " + $0 }
              .joined(separator: "\n"))
        }
      }
    }
  }

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "show",
      abstract: "One run: provenance, figures, crashes with their reports.")
    @OptionGroup var store: StoreOptions
    @Argument(
      help: ArgumentHelp(
        "The run: its id (or the start of it), or the directory it was imported from.",
        valueName: "run"))
    var key: String
    @Flag(help: "JSON (with run.json as it was written).") var json = false

    func run() throws {
      let s = try store.open()
      let r: RunRecord
      do { r = try s.run(key) } catch { throw storeExit(error) }
      if json {
        print(Format.json(r))
        return
      }
      print(RunText.describe(r))
    }
  }
}

/// Run directories named on a command line: each one, or each run directory right under one
/// that holds no run.json (a CI artifact's runs/, a --seeds parent).
enum RunDirectories {
  static func expand(_ dirs: [String]) -> [String] {
    dirs.flatMap { d -> [String] in
      let fm = FileManager.default
      if fm.fileExists(atPath: d + "/run.json") { return [d] }
      guard let names = try? fm.contentsOfDirectory(atPath: d) else { return [d] }
      let inner = names.sorted().map { d + "/" + $0 }.filter {
        fm.fileExists(atPath: $0 + "/run.json")
          || (try? fm.contentsOfDirectory(atPath: $0))?.contains { n in n.hasPrefix("seed-") }
            == true
      }
      return inner.isEmpty ? [d] : expand(inner)
    }
  }
}

/// `results show` as text.
enum RunText {
  static func describe(_ r: RunRecord) -> String {
    var l: [String] = []
    l.append("run \(r.runID): \(r.verdict)\(r.interrupted ? " (interrupted)" : "")")
    l.append("  job \(r.job), seed \(r.seed), backend \(r.backend)")
    l.append(
      "  kernel under test \(r.kernel)\(r.kernelRelease.map { " (\($0))" } ?? "")\(r.kernelVersion.map { ", \($0)" } ?? "")"
    )
    if let b = r.kernelBuildID { l.append("  build id \(b)") }
    if let g = r.guestKernel { l.append("  guest kernel \(g)") }
    l.append(
      "  host \(r.host)\(r.cpu.map { ", cpu \($0)" } ?? "")\(r.platform.map { ", \($0)" } ?? "")")
    if r.qemuVersion != nil || r.libvirtVersion != nil {
      l.append("  \(r.qemuVersion ?? "QEMU ?"); \(r.libvirtVersion ?? "libvirt ?")")
    }
    l.append(
      "  hpthammer \(r.hpthammerVersion ?? "?")\(r.hpthammerCommit.map { " (\($0))" } ?? "")")
    l.append(
      "  started \(Format.time(r.startedAt)), \(r.elapsedS.map { String(format: "%.1f s", $0) } ?? "?") wall"
    )
    if let e = r.error { l.append("  error: \(e)") }
    l.append(
      "  resizes \(r.resizesSucceeded ?? 0)/\(r.resizesAttempted ?? 0), prepare p50/p99 \(Format.ms(r.prepareP50Ms))/\(Format.ms(r.prepareP99Ms)) ms, commit p50/p99 \(Format.ms(r.commitP50Ms))/\(Format.ms(r.commitP99Ms)) ms"
    )
    if let d = r.sourceDir { l.append("  directory \(d)") }
    if let c = r.reproduce { l.append("  reproduce: \(c)") }
    for (i, c) in r.crashes.enumerated() {
      l.append(
        "crash \(i + 1)\(c.expected ? " (expected)" : ""): \(c.title) [frame \(c.frame ?? "-")]")
      if let text = c.report {
        l += text.split(separator: "\n", omittingEmptySubsequences: false).map { "  | " + $0 }
      }
    }
    return l.joined(separator: "\n")
  }
}

extension Results {
  struct KCIDBExport: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "kcidb",
      abstract:
        "KCIDB v5.3 JSON (origin hpthammer): a checkout and build per kernel under test, a test per run."
    )
    @OptionGroup var store: StoreOptions
    @Option(help: "Only runs started since: 30d, 12h, or a date.") var since: String?
    @Option(help: "The KCIDB origin (lowercase letters, digits, _).") var origin = "hpthammer"
    @Option(help: "Write here instead of standard output.") var out: String?

    func run() throws {
      guard origin.range(of: "^[a-z0-9_]+$", options: .regularExpression) != nil else {
        throw usageError("--origin: '\(origin)'; KCIDB origins are lowercase letters, digits and _")
      }
      let s = try store.open()
      let runs = try fullRuns(s, since: try parseSince(since))
      try emit(Format.json(Exports.kcidb(runs, origin: origin)) + "\n", to: out)
    }
  }

  struct JUnitExport: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "junit",
      abstract: "junit.xml of the stored runs: a suite per night, a case per run.")
    @OptionGroup var store: StoreOptions
    @Option(help: "Only runs started since: 30d, 12h, or a date.") var since: String?
    @Option(help: "Write here instead of standard output.") var out: String?

    func run() throws {
      let s = try store.open()
      try emit(Exports.junit(try fullRuns(s, since: try parseSince(since))), to: out)
    }
  }
}

/// The runs since `since` with their crashes and reports (what the exports show).
func fullRuns(_ s: ResultsStore, since: Double?) throws -> [RunRecord] {
  do {
    var full: [RunRecord] = []
    for r in try s.runs(ResultsStore.RunFilter(since: since)) { full.append(try s.run(r.runID)) }
    return full
  } catch {
    throw storeExit(error)
  }
}

/// Writes to a file (atomically) or standard output.
func emit(_ text: String, to path: String?) throws {
  guard let path else {
    print(text, terminator: "")
    return
  }
  do {
    try Exports.writeAtomically(text, to: path)
  } catch {
    FileHandle.standardError.write(Data("hpthammer: cannot write \(path): \(error)\n".utf8))
    throw ExitCode(Exit.couldNotTest)
  }
}

/// --metrics FILE: Prometheus text of each host's last run.
func writeMetrics(_ s: ResultsStore, to path: String) throws {
  let runs = try fullRuns(s, since: nil)
  try emit(Exports.prometheus(runs), to: path)
}

/// The start and the end of every `hpthammer run`: the run directory goes into the results
/// store (at the start run.json says "running": the store keeps the run as interrupted until
/// the end replaces it). A store that cannot take it is a warning, never the run's verdict.
func recordInHistory(runDir: String, db: String?, atStart: Bool = false) {
  let say = { (s: String) in FileHandle.standardError.write(Data("hpthammer: \(s)\n".utf8)) }
  do {
    let store = try ResultsStore.open(db)
    defer { store.backend.close() }
    switch try store.record(runDir: runDir) {
    case .stored(let new):
      if atStart { return }
      say("recorded in \(store.backend.location)")
      for sig in new { say("NEW crash signature (never seen in this store): \(sig)") }
    case .alreadyStored: break
    }
  } catch {
    // At the start the warning is left to the end, which tries again.
    if atStart { return }
    say(
      "warning: the run was not recorded in the results database: \(error.description) (the run's verdict stands; `hpthammer results import \(runDir)` stores it later)"
    )
  }
}
