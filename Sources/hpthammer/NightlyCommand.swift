import ArgumentParser
import Foundation
import HPTEngine
import HPTResults
import Yams

struct Nightly: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "nightly",
    abstract:
      "Run a nightly plan: kernels x jobs x seeds on one host, every run recorded, then the report.",
    discussion: """
      Each run goes through `hpthammer run` (one after another, kernel by kernel) into
      NIGHT_DIR/KERNEL/JOB/seed-N and into the results store; then `hpthammer report` is written
      (NIGHT_DIR/report.html unless the plan or --report says otherwise). Exit: the worst verdict
      of the night: 1 when a run found a bug or brought a crash signature the store had never
      seen (unless the plan's known: list names it), else 125 when a run could not test, else 0.
      A bad plan exits 2 naming the file, line and key. Jobs/nightly/ holds the plans.
      """)

  @Argument(help: "The plan file (YAML), e.g. Jobs/nightly/lab.yaml.")
  var plan: String

  @OptionGroup var store: StoreOptions

  @Option(help: "The night's directory (new or empty). Default: the plan's out:/NAME-TIME.")
  var out: String?

  @Option(help: "Write the report here instead of the plan's report: (or NIGHT_DIR/report.html).")
  var report: String?

  @Flag(help: "Print the plan's runs, in order, and exit (nothing is run or stored).")
  var list = false

  @Flag(inversion: .prefixedNo, help: "Live progress lines of each run.")
  var progress: Bool = false

  /// One run of the night, as it ended.
  struct Row {
    var kernel: String
    var job: String
    var seed: UInt64
    var dir: String
    /// pass, bug, error, or known (a bug whose every crash the plan knows).
    var verdict: String
    var note: String
    var runID: String? = nil
  }

  func run() throws {
    let plan: NightlyPlan
    do {
      plan = try NightlyPlan.load(path: self.plan)
    } catch {
      throw usageError(error.description)
    }
    if list {
      // A target: section is checked as each job's would be, in copies thrown away.
      let scratch = NSTemporaryDirectory() + "hpthammer-plan-\(UUID().uuidString)"
      defer { try? FileManager.default.removeItem(atPath: scratch) }
      _ = try jobFilesForTarget(plan, night: scratch)
      for (i, r) in plan.matrix.enumerated() {
        print("\(i + 1). kernel \(r.kernel.name): \(r.job) seed \(r.seed)")
      }
      return
    }
    // The night is for the history: a store that is off, unreachable or newer stops it before
    // anything runs.
    let db = store.db ?? ResultsStore.defaultLocation()
    if ResultsStore.isOff(db) {
      throw usageError(
        "nightly records every run, but the results database is off (\(db)): give --db PATH or --db postgres://..."
      )
    }
    try store.open().backend.close()

    let stamp = ISO8601DateFormatter.string(
      from: Date(), timeZone: .current, formatOptions: [.withYear, .withMonth, .withDay, .withTime]
    ).replacingOccurrences(of: ":", with: "")
    let night = out ?? "\(plan.out)/\(plan.name)-\(stamp)"
    // Earlier nights' runs whose harness died (a reboot, a SIGKILL): finished before this one.
    Runs.repairAbandoned(under: plan.out, depth: 4)
    let fm = FileManager.default
    var isDir: ObjCBool = false
    if fm.fileExists(atPath: night, isDirectory: &isDir) {
      guard isDir.boolValue, (try? fm.contentsOfDirectory(atPath: night))?.isEmpty == true else {
        throw usageError("--out \(night): exists and is not an empty directory; give a new one")
      }
    }
    do {
      try fm.createDirectory(atPath: night, withIntermediateDirectories: true)
    } catch {
      FileHandle.standardError.write(Data("hpthammer: cannot create \(night): \(error)\n".utf8))
      throw ExitCode(Exit.couldNotTest)
    }
    let jobFiles = try jobFilesForTarget(plan, night: night)
    let say = { (s: String) in
      FileHandle.standardError.write(Data("hpthammer nightly: \(s)\n".utf8))
    }
    say(
      "\(plan.name): \(plan.matrix.count) runs (\(plan.kernels.count) kernels x \(plan.jobs.count) jobs x \(plan.seeds.count) seeds) into \(night), results in \(db.hasPrefix("postgres") ? "PostgreSQL" : db)"
    )

    // A signal between two runs (or during a kernel's boot command) is kept too: the night
    // stops before its next run. During a run, the run's own handler stops it first.
    let sources = [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP")].map { sig, name in
      signal(sig, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
      source.setEventHandler { CurrentRunner.signalled.set(name) }
      source.resume()
      return source
    }
    defer { sources.forEach { $0.cancel() } }
    var rows: [Row] = []
    var knownSignatures: Set<String> = []
    var stopped: String?
    var bootFailed: [String: String] = [:]
    var booted: Set<String> = []
    for (kernel, jobPath, seed) in plan.matrix {
      if let sig = CurrentRunner.signalled.value { stopped = sig }
      if stopped != nil { break }
      let job = plan.jobs.first { $0.path == jobPath }!.job
      let dir = "\(night)/\(kernel.name)/\(RunDirectory.component(job.name))/seed-\(seed)"
      if let boot = kernel.boot, !booted.contains(kernel.name) {
        booted.insert(kernel.name)
        say("kernel \(kernel.name): \(boot.map(shellQuoted).joined(separator: " "))")
        if let why = runBoot(boot) { bootFailed[kernel.name] = why }
      }
      if let why = bootFailed[kernel.name] {
        rows.append(
          Row(
            kernel: kernel.name, job: job.name, seed: seed, dir: "-", verdict: "error",
            note: "not run: the kernel's boot command \(why)"))
        continue
      }
      try? fm.createDirectory(
        atPath: (dir as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      var args = [jobFiles[jobPath] ?? jobPath, "--seed", "\(seed)", "--out", dir]
      args.append(progress ? "--progress" : "--no-progress")
      if let d = store.db { args += ["--db", d] }
      if let d = plan.duration { args += ["--duration", d] }
      if job.backend.usesKernelModel { args += ["--kernel", kernel.model ?? kernel.name] }
      if case .flag(let t) = plan.target { args += ["--target", t] }
      if let k = kernel.hostKernel, let m = kernel.hostModules {
        args += ["--host-kernel", k, "--host-modules", m]
      }
      say(
        "kernel \(kernel.name), \(jobPath), seed \(seed): hpthammer run \(args.map(shellQuoted).joined(separator: " "))"
      )
      // The same command as `hpthammer run`, parsed from the same words.
      var rc = Exit.pass
      do {
        let command = try Run.parse(args)
        try command.run()
      } catch let e as ExitCode {
        rc = e.rawValue
      } catch {
        say("\(Run.fullMessage(for: error))")
        rc = Exit.usage
      }
      var row = classify(dir: dir, rc: rc, plan: plan, known: &knownSignatures)
      row.kernel = kernel.name
      row.job = job.name
      row.seed = seed
      rows.append(row)
      // Ctrl-C or systemd's SIGTERM stopped the run (which wrote its results): the night ends.
      if let sig = CurrentRunner.signalled.value { stopped = sig }
    }
    if let stopped {
      say("\(stopped): the night stops here; \(plan.matrix.count - rows.count) runs not started")
    }

    let count = { (v: String) in rows.filter { $0.verdict == v }.count }
    let worst: Int32 =
      count("bug") > 0
      ? Exit.bug : (count("error") > 0 || stopped != nil) ? Exit.couldNotTest : Exit.pass

    // The report, as `hpthammer report` writes it, this night's table first and the plan's
    // known crashes marked.
    let reportPath = report ?? plan.report ?? night + "/report.html"
    var reportWritten = false
    do {
      let s = try ResultsStore.open(store.db)
      defer { s.backend.close() }
      let tonight = HTMLReport.Night(
        name: plan.name, dir: night, exitCode: worst,
        rows: rows.map {
          .init(
            kernel: $0.kernel, job: $0.job, seed: "\($0.seed)", verdict: $0.verdict,
            note: $0.note, runID: $0.runID)
        })
      let html = try HTMLReport.history(
        s, since: Format.since(plan.reportSince),
        known: knownSignatures.union(plan.known.map(\.title)), night: tonight)
      try Exports.writeAtomically(html, to: reportPath)
      reportWritten = true
      say("report written to \(reportPath) (\(html.utf8.count / 1024) KiB)")
    } catch {
      say("warning: the report was not written: \(error)")
    }

    var table = [["KERNEL", "JOB", "SEED", "VERDICT", "NOTE"]]
    for r in rows { table.append([r.kernel, r.job, "\(r.seed)", r.verdict, r.note]) }
    print(Format.table(table))
    print(
      "night \(plan.name): \(rows.count) runs: \(count("pass")) pass, \(count("known")) known crash only, \(count("bug")) bug, \(count("error")) error; \(night)\(reportWritten ? "; report \(reportPath)" : ""); exit \(worst)"
    )
    if worst != Exit.pass { throw ExitCode(worst) }
  }

  /// A run's place in the night: its verdict, and a crash the plan knows does not fail it,
  /// while a signature the store had never seen before this run always does.
  func classify(dir: String, rc: Int32, plan: NightlyPlan, known: inout Set<String>) -> Row {
    var row = Row(kernel: "", job: "", seed: 0, dir: dir, verdict: "error", note: "")
    guard let r = try? RunRecord.load(dir: dir) else {
      row.note = "no run.json in \(dir) (exit \(rc))"
      return row
    }
    row.runID = r.runID
    var new: [String] = []
    do {
      let s = try ResultsStore.open(store.db)
      defer { s.backend.close() }
      new = try s.signaturesFirstSeen(in: r.runID)
    } catch {
      row.note = "not in the store: \(error.description); "
    }
    var notes: [String] = []
    var unknownBugs = 0
    for c in r.bugs {
      let isKnown = plan.known.contains { $0.matches(title: c.title, frame: c.frame) }
      let isNew = new.contains(c.signature)
      if isKnown { known.insert(c.signature) } else { unknownBugs += 1 }
      let tag = isKnown ? "known" : isNew ? "NEW" : "seen before"
      let text = "\(tag): \(c.title)"
      if !notes.contains(text) { notes.append(text) }
    }
    let newUnknown = r.bugs.contains { c in
      new.contains(c.signature)
        && !plan.known.contains { $0.matches(title: c.title, frame: c.frame) }
    }
    switch r.verdict {
    case _ where newUnknown: row.verdict = "bug"
    case "bug": row.verdict = !r.bugs.isEmpty && unknownBugs == 0 ? "known" : "bug"
    case "pass": row.verdict = "pass"
    default:
      row.verdict = "error"
      if let e = r.error { notes.insert(e, at: 0) }
    }
    if row.verdict == "bug" && r.bugs.isEmpty, let d = r.verdictDetail { notes.append(d) }
    row.note += notes.joined(separator: "; ")
    row.note = row.note.split(whereSeparator: \.isNewline).map {
      $0.trimmingCharacters(in: .whitespaces)
    }.filter { !$0.isEmpty }.joined(separator: " ")
    return row
  }

  /// A kernel's boot command: nil when it succeeded, else why not. Through HostCommand, not
  /// Foundation's Process: a boot that starts a daemon (the lab's QEMU) would never end for it.
  func runBoot(_ argv: [String]) -> String? {
    let r = HostCommand.run(["/usr/bin/env"] + argv, timeoutS: 4 * 3600)
    if !r.stdout.isEmpty { FileHandle.standardError.write(Data(r.stdout.utf8)) }
    if !r.stderr.isEmpty { FileHandle.standardError.write(Data(r.stderr.utf8)) }
    guard let status = r.status else { return "did not end in 4 hours" }
    return status == 0 ? nil : "exited \(status)"
  }

  /// With a target: section in the plan, each job's copy in NIGHT_DIR/jobs/ carries it (a
  /// libvirt job gets the host's qemu+ssh URI, as ci/host-job.py does).
  func jobFilesForTarget(_ plan: NightlyPlan, night: String) throws -> [String: String] {
    guard case .section(let section) = plan.target else { return [:] }
    try? FileManager.default.createDirectory(
      atPath: night + "/jobs", withIntermediateDirectories: true)
    var out: [String: String] = [:]
    for (path, job) in plan.jobs {
      do {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard var doc = try Yams.compose(yaml: text) else { continue }
        var target = section
        if job.backend == .libvirt, target["libvirt_uri"] == nil,
          let host = section["ssh"]?["host"]?.string
        {
          let user = section["ssh"]?["user"]?.string ?? "root"
          let port = section["ssh"]?["port"]?.int.map { ":\($0)" } ?? ""
          target["libvirt_uri"] = Node("qemu+ssh://\(user)@\(host)\(port)/system")
          // The job's own libvirt.uri names the host it was written for: the target's wins.
          if case .mapping(var libvirt)? = doc["libvirt"] {
            libvirt["uri"] = nil
            doc["libvirt"] = .mapping(libvirt)
          }
        }
        doc["target"] = target
        let copy = "\(night)/jobs/\(RunDirectory.component(job.name)).yaml"
        try Yams.serialize(node: doc).write(toFile: copy, atomically: true, encoding: .utf8)
        // The copy must still be a valid job: the target section is checked as a job's.
        do {
          _ = try Backends.loadJob(path: copy)
        } catch {
          throw usageError("\(plan.file): target: \(error.description)")
        }
        out[path] = copy
      } catch let e as ExitCode {
        throw e
      } catch {
        FileHandle.standardError.write(
          Data("hpthammer: cannot write the job copy of \(path): \(error)\n".utf8))
        throw ExitCode(Exit.couldNotTest)
      }
    }
    return out
  }
}
