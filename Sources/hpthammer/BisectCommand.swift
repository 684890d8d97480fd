import ArgumentParser
import Foundation
import HPTBisect

/// `hpthammer bisect run|status|resume`: git bisect run's protocol, made statistical.
struct Bisect: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bisect",
    abstract: "Find the first bad commit of a flaky crash (a reproducer that fails sometimes).",
    subcommands: [RunBisect.self, KernelBisect.self, Status.self, Resume.self])

  struct RunBisect: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "run",
      abstract: "Bisect DIR's first-parent history from --good to --bad with TEST.",
      discussion: """
        TEST runs in the repository, on the commit chosen: exit 0 = did not reproduce, \
        1 = reproduced, 125 = cannot test this commit (skip), anything else aborts. \
        Exit: 0 the culprit holds the confidence, 1 the budget ran out first (best guess \
        printed), 125 cannot start, 2 usage.
        """)

    @Option(help: "The git repository (its tree must be clean).") var repo: String
    @Option(help: "A commit where the crash does not happen.") var good: String
    @Option(help: "A commit where it does.") var bad: String
    @Option(help: "Shell command run in the repository after each checkout (non-zero: skip).")
    var build: String?
    @Option(help: "Stop when the most likely culprit holds this probability.")
    var confidence: Double = 0.99
    @Option(help: "Stop after this many test runs.") var maxRuns: Int = 500
    @Option(help: "Build and run costs in seconds, for choosing between a repeat and a build.")
    var buildCost: Double = 60
    @Option var runCost: Double = 60
    @Option(help: "The bisection directory (journal). Default: runs/bisect-TIMESTAMP.")
    var dir: String?
    @Flag(help: "One JSON object on stdout at the end.") var json = false
    @OptionGroup var store: StudyStoreOptions
    @Argument(parsing: .postTerminator, help: "TEST [ARGS...]") var test: [String] = []

    func run() throws {
      guard !test.isEmpty else { throw usageError("bisect run: give the TEST after '--'") }
      try checkBisectBudget(confidence: confidence, maxRuns: maxRuns)
      let exe = test[0].contains("/") ? test[0] : (which(test[0]) ?? test[0])
      guard
        FileManager.default.isExecutableFile(atPath: exe)
          || FileManager.default.isExecutableFile(atPath: "\(repo)/\(exe)")
      else { throw usageError("TEST \(test[0]): not an executable file") }
      let git = Git(repo: repo)
      let start = try BisectSetup.start(
        git: git, good: good, bad: bad, build: build, test: test, confidence: confidence,
        maxRuns: maxRuns, costs: BisectCosts(buildS: buildCost, runS: runCost))
      let d =
        dir ?? "runs/bisect-\(Int(Date().timeIntervalSince1970))"
      try driveNewBisection(
        start, dir: d, json: json, store: store,
        banner: "hpthammer bisect: \(start.commits.count) commits between \(good) and \(bad)")
    }
  }

  /// The form kernel developers use: each chosen commit of --tree built for POWER (the lab's
  /// kernel.sh: cross compiler, one build directory, cached by commit), booted on the target
  /// and run with the job; ci/bisect.sh is the TEST it hands to the statistical bisection.
  struct KernelBisect: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "kernel",
      abstract: "Bisect a kernel tree to the commit that brought a crash, on the lab or a host.",
      discussion: """
        A run counts as reproduced only when a crash with the --match title appears (default: \
        the title of the first crash the bisection sees); another crash is reported and not \
        counted. Every run directory is kept under DIR/runs. Exit codes as for bisect run.
        """)

    @Option(help: "The kernel git tree (clean).") var tree: String
    @Option(help: "A commit where the crash does not happen.") var good: String
    @Option(help: "A commit where it does.") var bad: String
    @Option(help: "The job each run runs.") var job: String
    @Option(help: "The target host (lab, or a name the job's target section gives).")
    var target = "lab"
    @Option(help: "Count only crashes whose title contains this text.") var match: String?
    @Option(help: "Each run's budget (e.g. 45s), instead of the job's.") var duration: String?
    @Option(help: "Stop when the most likely culprit holds this probability.")
    var confidence: Double = 0.99
    @Option(help: "Stop after this many test runs.") var maxRuns: Int = 80
    @Option(help: "Seconds an incremental build and a run (with its boot) take.")
    var buildCost: Double = 120
    @Option var runCost: Double = 120
    @Option(help: "The bisection directory. Default: runs/bisect-kernel-TIMESTAMP.")
    var dir: String?
    @Flag(help: "One JSON object on stdout at the end.") var json = false
    @OptionGroup var store: StudyStoreOptions

    func run() throws {
      try checkBisectBudget(confidence: confidence, maxRuns: maxRuns)
      let cwd = FileManager.default.currentDirectoryPath
      func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : "\(cwd)/\(p)" }
      guard FileManager.default.fileExists(atPath: absolute(job)) else {
        throw usageError("--job \(job): no such job file")
      }
      let script = "\(cwd)/ci/bisect.sh"
      guard FileManager.default.fileExists(atPath: script) else {
        FileHandle.standardError.write(
          Data(
            "hpthammer bisect kernel: \(script) is not here: run it from HPTHammer's checkout\n"
              .utf8))
        throw ExitCode(Exit.couldNotTest)
      }
      let d = absolute(dir ?? "runs/bisect-kernel-\(Int(Date().timeIntervalSince1970))")
      // The TEST with its settings in its argv: the journal keeps them, so a resume runs the
      // same test.
      var test = [
        "/usr/bin/env", "HPTHAMMER_BISECT_JOB=\(absolute(job))",
        "HPTHAMMER_BISECT_TARGET=\(target)",
        "HPTHAMMER_BISECT_RUNS=\(d)/runs", "HPTHAMMER_BIN=\(ownExecutable())",
      ]
      if let duration { test.append("HPTHAMMER_BISECT_DURATION=\(duration)") }
      test.append(
        match.map { "HPTHAMMER_BISECT_MATCH=\($0)" } ?? "HPTHAMMER_BISECT_MATCH_FILE=\(d)/match")
      test.append(script)
      let start = try BisectSetup.start(
        git: Git(repo: tree), good: good, bad: bad, build: nil, test: test,
        confidence: confidence, maxRuns: maxRuns,
        costs: BisectCosts(buildS: buildCost, runS: runCost))
      try driveNewBisection(
        start, dir: d, json: json, store: store,
        banner:
          "hpthammer bisect kernel: \(start.commits.count) commits between \(good) and \(bad); run directories \(d)/runs"
      )
    }
  }

  struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "status",
      abstract: "The posterior and history of a bisection directory.")
    @Argument var dir: String
    func run() throws {
      let (start, events) = try BisectJournal.read(dir: dir)
      var b = start.bisection()
      for e in events { if let i = e.commit, let o = e.outcome { b.record(commit: i, o) } }
      let a = b.answer()
      print(
        "bisection of \(start.commits.count) commits, \(b.runs) runs, \(b.builds) kernels built, \(b.skips) skipped"
      )
      print(String(format: "p estimate %.2f", a.pEstimate))
      for c in a.candidates {
        print(String(format: "  %@  %.4f", start.commits[c.index] as NSString, c.probability))
      }
      if events.contains(where: { $0.event == "end" }) {
        print("ended")
      } else {
        print("not ended: hpthammer bisect resume \(dir)")
      }
    }
  }

  struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "resume",
      abstract: "Go on with a bisection that was stopped (SIGKILL, reboot), from its journal.")
    @Argument var dir: String
    @Flag var json = false
    @OptionGroup var store: StudyStoreOptions
    func run() throws {
      let (start, events) = try BisectJournal.read(dir: dir)
      let journal = try BisectJournal.append(dir: dir)
      store.exportToChildren()
      try BisectDriver(
        start: start, journal: journal, json: json, replay: events,
        recorder: store.recorder(start.studyRecord(dir: dir)), resumed: true
      ).drive()
    }
  }
}

/// The budget options of `bisect run` and `bisect kernel`, checked alike (exit 2).
func checkBisectBudget(confidence: Double, maxRuns: Int) throws {
  guard confidence > 0.5 && confidence < 1 else {
    throw usageError("--confidence \(confidence): give a probability between 0.5 and 1")
  }
  guard maxRuns >= 1 else { throw usageError("--max-runs: at least 1") }
}

/// A new bisection: its journal, a line saying where it is, the results store told, and the
/// search itself.
func driveNewBisection(
  _ start: BisectStart, dir d: String, json: Bool, store: StudyStoreOptions, banner: String
) throws {
  let journal = try BisectJournal.create(dir: d, start: start)
  FileHandle.standardError.write(Data("\(banner); journal \(d)/journal.jsonl\n".utf8))
  store.exportToChildren()
  try BisectDriver(
    start: start, journal: journal, json: json, recorder: store.recorder(start.studyRecord(dir: d))
  ).drive()
}

/// This process's binary (/proc/self/exe), so that TEST scripts run the same hpthammer.
func ownExecutable() -> String {
  (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    ?? CommandLine.arguments[0]
}

func which(_ name: String) -> String? {
  (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
    .map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// git, run as a process in the repository.
struct Git: Sendable {
  let repo: String

  /// stdout (trimmed) and the exit status.
  @discardableResult
  func run(_ args: [String]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: which("git") ?? "/usr/bin/git")
    p.arguments = ["-C", repo] + args
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (
      p.terminationStatus,
      String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    )
  }

  func sha(_ rev: String) throws -> String? {
    let (rc, out) = try run(["rev-parse", "--verify", "-q", "\(rev)^{commit}"])
    return rc == 0 ? out : nil
  }
}

/// The bisection's fixed inputs: the first line of its journal.
struct BisectStart: Codable, Sendable {
  var event = "start"
  var repo: String
  var good: String
  var bad: String
  var commits: [String]
  var build: String?
  var test: [String]
  var confidence: Double
  var maxRuns: Int
  var buildCost: Double
  var runCost: Double
  var origHead: String

  func bisection() -> Bisection {
    Bisection(
      count: commits.count, costs: BisectCosts(buildS: buildCost, runS: runCost),
      budget: BisectBudget(confidence: confidence, maxRuns: maxRuns))
  }
}

enum BisectSetup {
  static func start(
    git: Git, good: String, bad: String, build: String?, test: [String], confidence: Double,
    maxRuns: Int, costs: BisectCosts
  ) throws -> BisectStart {
    func cannot(_ why: String) -> ExitCode {
      FileHandle.standardError.write(Data("hpthammer bisect: \(why)\n".utf8))
      return ExitCode(Exit.couldNotTest)
    }
    guard (try? git.run(["rev-parse", "--git-dir"]).0) == 0 else {
      throw cannot("\(git.repo) is not a git repository")
    }
    guard let g = try git.sha(good) else {
      throw cannot("--good \(good): no such commit in \(git.repo)")
    }
    guard let b = try git.sha(bad) else {
      throw cannot("--bad \(bad): no such commit in \(git.repo)")
    }
    guard try git.run(["merge-base", "--is-ancestor", g, b]).0 == 0, g != b else {
      throw cannot(
        "--good \(good) is not an ancestor of --bad \(bad): nothing to bisect between them")
    }
    let (_, dirty) = try git.run(["status", "--porcelain", "--untracked-files=no"])
    guard dirty.isEmpty else {
      throw cannot("\(git.repo) has uncommitted changes; commit or stash them first:\n\(dirty)")
    }
    let (_, list) = try git.run(["rev-list", "--first-parent", "--reverse", "\(g)..\(b)"])
    let commits = list.split(separator: "\n").map(String.init)
    guard !commits.isEmpty else { throw cannot("no commits between \(good) and \(bad)") }
    let (rc, ref) = try git.run(["symbolic-ref", "-q", "--short", "HEAD"])
    let orig = rc == 0 ? ref : (try git.sha("HEAD") ?? b)
    return BisectStart(
      repo: git.repo, good: g, bad: b, commits: commits, build: build, test: test,
      confidence: confidence, maxRuns: maxRuns, buildCost: costs.buildS, runCost: costs.runS,
      origHead: orig)
  }
}

/// One line of the journal after the start: a build or a run, or the end.
struct BisectEvent: Codable, Sendable {
  var event: String
  var commit: Int?
  var sha: String?
  var outcome: RunOutcome?
  var exit: Int32?
  var culprit: String?
  var confidence: Double?
}

/// The bisection directory's journal.jsonl: appended and fsync'd as each answer comes, so a
/// SIGKILL or a reboot loses nothing that was answered.
final class BisectJournal {
  let handle: FileHandle

  init(handle: FileHandle) { self.handle = handle }

  static func create(dir: String, start: BisectStart) throws -> BisectJournal {
    let path = "\(dir)/journal.jsonl"
    if FileManager.default.fileExists(atPath: path) {
      throw usageError(
        "--dir \(dir) already holds a bisection; resume it with hpthammer bisect resume \(dir)")
    }
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    FileManager.default.createFile(atPath: path, contents: nil)
    let j = BisectJournal(handle: try FileHandle(forWritingTo: URL(fileURLWithPath: path)))
    try j.write(start)
    return j
  }

  static func append(dir: String) throws -> BisectJournal {
    let h = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(dir)/journal.jsonl"))
    try h.seekToEnd()
    return BisectJournal(handle: h)
  }

  static func read(dir: String) throws -> (BisectStart, [BisectEvent]) {
    let path = "\(dir)/journal.jsonl"
    guard let data = FileManager.default.contents(atPath: path) else {
      throw usageError("\(dir): not a bisection directory (no journal.jsonl)")
    }
    var lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
    // A line cut by a kill mid-write is the last one; it was never answered.
    if let last = lines.last, (try? JSONSerialization.jsonObject(with: Data(last.utf8))) == nil {
      lines.removeLast()
    }
    guard let first = lines.first,
      let start = try? JSONDecoder().decode(BisectStart.self, from: Data(first.utf8))
    else { throw usageError("\(dir)/journal.jsonl: not a bisection journal") }
    let events = lines.dropFirst().compactMap {
      try? JSONDecoder().decode(BisectEvent.self, from: Data($0.utf8))
    }
    return (start, events)
  }

  func write<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys]
    try handle.write(contentsOf: try enc.encode(value) + Data("\n".utf8))
    try handle.synchronize()
  }
}

/// Runs the bisection: checkouts, builds, TEST runs, the journal, the answer.
struct BisectDriver {
  let start: BisectStart
  let journal: BisectJournal
  let json: Bool
  var replay: [BisectEvent] = []
  /// The results store's record of it, when it records.
  var recorder: StudyRecorder?
  var resumed = false

  func drive() throws {
    recorder?.begin(resumed: resumed)
    let git = Git(repo: start.repo)
    var b = start.bisection()
    var buildFailed: Set<Int> = []
    for e in replay {
      if let i = e.commit, let o = e.outcome { b.record(commit: i, o) }
      if e.event == "build", e.outcome == .skip, let i = e.commit { buildFailed.insert(i) }
    }
    let t0 = Date()
    // HEAD goes back where it was, at the end and on SIGINT/SIGTERM.
    let restore = { _ = try? git.run(["checkout", "-q", start.origHead]) }
    let signals = [SIGINT, SIGTERM, SIGHUP].map { sig in
      signal(sig, SIG_IGN)
      let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
      s.setEventHandler {
        restore()
        FileHandle.standardError.write(
          Data("hpthammer bisect: stopped; resume with hpthammer bisect resume DIR\n".utf8))
        Foundation.exit(128 + sig)
      }
      s.resume()
      return s
    }
    defer { signals.forEach { $0.cancel() } }
    var current: Int?
    while true {
      guard case .run(let i) = b.next() else { break }
      if current != i {
        guard try git.run(["checkout", "-q", "--detach", start.commits[i]]).0 == 0 else {
          restore()
          FileHandle.standardError.write(
            Data("hpthammer bisect: git checkout \(start.commits[i]) failed\n".utf8))
          recordAbort("git checkout \(start.commits[i]) failed", b)
          throw ExitCode(Exit.couldNotTest)
        }
        current = i
        if let cmd = start.build {
          let rc = try shell(["/bin/sh", "-c", cmd])
          try journal.write(
            BisectEvent(
              event: "build", commit: i, sha: start.commits[i], outcome: rc == 0 ? nil : .skip,
              exit: rc))
          if rc != 0 {
            b.record(commit: i, .skip)
            current = nil
            continue
          }
        }
      }
      let rc = try shell(start.test)
      let outcome: RunOutcome
      switch rc {
      case 0: outcome = .clean
      case 1: outcome = .reproduced
      case 125: outcome = .skip
      default:
        restore()
        FileHandle.standardError.write(
          Data(
            "hpthammer bisect: TEST exited \(rc) on \(start.commits[i]): aborting (0, 1 and 125 are answers)\n"
              .utf8))
        recordAbort("TEST exited \(rc) on \(start.commits[i])", b)
        throw ExitCode(Exit.couldNotTest)
      }
      try journal.write(
        BisectEvent(event: "run", commit: i, sha: start.commits[i], outcome: outcome, exit: rc))
      b.record(commit: i, outcome)
    }
    restore()
    guard case .done(let a) = b.next() else { return }
    try journal.write(
      BisectEvent(event: "end", culprit: start.commits[a.culprit], confidence: a.confidence))
    report(a, b, wallS: Date().timeIntervalSince(t0))
    recorder?.end(
      outcome: start.commits[a.culprit], confidence: a.confidence, runs: b.runs,
      exit: a.confident ? Exit.pass : Exit.bug,
      result: answer(a, b, wallS: Date().timeIntervalSince(t0)),
      runDirs: StudyRecorder.runDirs(under: recorder?.record.dir ?? ""))
    if !a.confident { throw ExitCode(Exit.bug) }
  }

  /// A bisection that stopped without an answer (exit 125): the store says why.
  func recordAbort(_ why: String, _ b: Bisection) {
    recorder?.end(
      outcome: nil, confidence: nil, runs: b.runs, exit: Exit.couldNotTest, error: why,
      result: nil, runDirs: StudyRecorder.runDirs(under: recorder?.record.dir ?? ""))
  }

  /// The answer as --json prints it (and the store keeps it).
  func answer(_ a: BisectAnswer, _ b: Bisection, wallS: Double) -> [String: Any] {
    let range =
      a.lower == a.upper
      ? nil : (start.commits[a.lower], start.commits[a.upper])
    return [
      "culprit": start.commits[a.culprit], "confidence": a.confidence,
      "range": range.map { [$0.0, $0.1] } as Any,
      "candidates": a.candidates.map {
        ["commit": start.commits[$0.index], "probability": $0.probability]
      },
      "runs": b.runs, "builds": b.builds, "skipped": b.skips, "p_estimate": a.pEstimate,
      "wall_s": (wallS * 10).rounded() / 10, "confident": a.confident,
    ]
  }

  /// Runs argv in the repository (its stdout to our stderr) and waits for it with waitpid:
  /// a TEST runs for minutes and starts daemons (the lab's QEMU), and Foundation's Process
  /// was seen leaving such a child unreaped, the bisection waiting forever.
  func shell(_ argv: [String]) throws -> Int32 {
    let script = "cd \"$0\" && exec \"$@\" 1>&2"
    let args = ["/bin/sh", "-c", script, start.repo] + argv
    var cargs = args.map { strdup($0) } + [nil]
    defer { cargs.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, "/bin/sh", nil, nil, &cargs, environ)
    guard rc == 0 else {
      throw RuntimeError("cannot start \(argv[0]): \(String(cString: strerror(rc)))")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let signaled = (status & 0x7f) != 0
    return signaled ? 128 + (status & 0x7f) : (status >> 8) & 0xff
  }

  func report(_ a: BisectAnswer, _ b: Bisection, wallS: Double) {
    let sha = start.commits[a.culprit]
    let range =
      a.lower == a.upper
      ? nil : (start.commits[a.lower], start.commits[a.upper])
    if json {
      let obj = answer(a, b, wallS: wallS)
      if let d = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) {
        print(String(decoding: d, as: UTF8.self))
      }
      return
    }
    if let range {
      print(
        "the first bad commit is one of \(range.0)..\(range.1) (commits between could not be tested)"
      )
    } else {
      print("\(sha) is the first bad commit")
    }
    print(
      String(
        format: "confidence %.4f%@; %d runs, %d commits built, %d skipped; p estimate %.2f; %.0f s",
        a.confidence,
        (a.confident ? "" : " (budget spent before the asked confidence)") as NSString,
        b.runs, b.builds, b.skips, a.pEstimate, wallS))
    for c in a.candidates {
      print(String(format: "  %@  %.4f", start.commits[c.index] as NSString, c.probability))
    }
  }
}

struct RuntimeError: Error, CustomStringConvertible {
  var description: String
  init(_ d: String) { description = d }
}
