import ArgumentParser
import Foundation
import HPTBisect
import HPTEngine
import HPTResults

/// `hpthammer verdict JOB --base K1 --patched K2`: does the patch fix the job's crash?
struct Verdict: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "verdict",
    abstract:
      "A patch A/B: alternate runs of JOB on two kernels until it can say fixes, does not fix, regresses or cannot tell.",
    discussion: """
      A kernel is a simulator model (backend sim: see `hpthammer sim kernels`) or, on the lab, \
      VMLINUX,MODULES (Guests/lab/kernel.sh prints both). Exit: 0 fixes, 1 does not fix or \
      regresses, 125 cannot tell, 2 usage.
      """)

  @Argument(help: "The job file.") var job: String
  @Option(help: "The kernel without the patch.") var base: String
  @Option(help: "The kernel with it.") var patched: String
  @Option(help: "Passed to hpthammer run (sim, raw, libvirt).", transform: BackendKind.parse)
  var backend: BackendKind?
  @Option(help: "Passed to hpthammer run (local, lab).", transform: RunTargetChoice.parse)
  var target: RunTargetChoice?
  @Option(help: "Each run's budget, passed to hpthammer run (e.g. 45s).") var duration: String?
  @Option(help: "Each run's budget in resize cycles.") var resizes: Int?
  @Option(help: "How sure the answer must be.") var confidence: Double = 0.99
  @Option(help: "'fixes' means the patched rate is below this fraction of the base rate.")
  var fraction: Double = 0.1
  @Option(help: "Runs on both kernels together.") var maxRuns: Int = 200
  @Option(
    help:
      "Runs in a row on one kernel before switching (on the lab a switch is a reboot: 4 saves 3 of 4)."
  )
  var block: Int = 1
  @Option(
    help:
      "Runs in a row that could not test (exit 125: a lab that did not boot, ssh down) before the verdict gives up; each is skipped and run again."
  )
  var maxSkips: Int = 3
  @Option(help: "Where the runs go (one directory each).") var dir: String?
  @Flag(help: "One JSON object on stdout.") var json = false
  @OptionGroup var store: StudyStoreOptions

  func kernelArgs(_ k: String) -> [String] {
    let parts = k.split(separator: ",", maxSplits: 1).map(String.init)
    return parts.count == 2
      ? ["--host-kernel", parts[0], "--host-modules", parts[1]] : ["--kernel", k]
  }

  func run() throws {
    guard confidence > 0.5 && confidence < 1 else {
      throw usageError("--confidence: between 0.5 and 1")
    }
    guard fraction > 0 && fraction < 1 else { throw usageError("--fraction: between 0 and 1") }
    guard block >= 1 else { throw usageError("--block: at least 1") }
    guard maxSkips >= 1 else { throw usageError("--max-skips: at least 1") }
    guard FileManager.default.fileExists(atPath: job) else {
      throw usageError("\(job): no such job file")
    }
    let d = dir ?? "runs/verdict-\(Int(Date().timeIntervalSince1970))"
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    var v = PatchVerdict(confidence: confidence, fraction: fraction, maxRuns: maxRuns)
    // The store learns of it as it starts (interrupted if it never ends); its runs record
    // themselves in the same store.
    store.exportToChildren()
    let recorder = store.recorder(studyRecord(dir: d))
    recorder?.begin()
    var runDirs: [String] = []
    var skipped = 0
    let t0 = Date()
    var n = 0
    var isBase = true
    var inBlock = 0
    var skipsInARow = 0
    while v.answer == nil {
      // Blocks of --block runs per kernel, the two sides kept level (the test does not care
      // about order; a kernel switch on the lab costs a boot).
      if inBlock == block || (inBlock == 0 && isBase != v.nextIsBase) {
        isBase = v.nextIsBase
        inBlock = 0
      }
      inBlock += 1
      let out = "\(d)/\(isBase ? "base" : "patched")-\(n)"
      var args = ["run", job, "--seed", "\(n / 2 + 1)", "--out", out, "--no-progress"]
      args += kernelArgs(isBase ? base : patched)
      if let backend { args += ["--backend", backend.rawValue] }
      if let target { args += ["--target", target.rawValue] }
      if let duration { args += ["--duration", duration] }
      if let resizes { args += ["--resizes", "\(resizes)"] }
      let rc = try runSelf(args)
      runDirs.append(out)
      n += 1
      guard rc == 0 || rc == 1 else {
        // As git bisect skips: the run says nothing about the kernel; run it again, unless
        // the infrastructure keeps failing (or the job itself is wrong: exit 2).
        skipsInARow += 1
        skipped += 1
        inBlock -= 1
        let stop = rc == 2 || skipsInARow >= maxSkips
        let why =
          "\(skipsInARow == 1 ? "a run" : "\(skipsInARow) runs in a row") could not test (exit \(rc), \(out))"
        FileHandle.standardError.write(
          Data(
            "hpthammer verdict: \(why); \(stop ? "stopping" : "skipped, running it again")\n".utf8))
        guard stop else { continue }
        let exit = rc == 2 ? Exit.usage : Exit.couldNotTest
        recorder?.end(
          outcome: nil, confidence: nil, runs: n, exit: exit, error: why, result: nil,
          runDirs: runDirs)
        throw ExitCode(exit)
      }
      skipsInARow = 0
      v.record(base: isBase, titles: rc == 1 ? Self.titles(in: out) : [])
    }
    let wallS = Date().timeIntervalSince(t0)
    report(v, answer: v.answer!, wallS: wallS, skipped: skipped)
    let exit: Int32 =
      switch v.answer! {
      case .fixes: Exit.pass
      case .doesNotFix, .regresses: Exit.bug
      case .cannotTell: Exit.couldNotTest
      }
    recorder?.end(
      outcome: v.answer!.rawValue, confidence: v.fixProbability, runs: n, exit: exit,
      result: answer(v, answer: v.answer!, wallS: wallS, skipped: skipped), runDirs: runDirs)
    switch v.answer! {
    case .fixes: return
    case .doesNotFix, .regresses: throw ExitCode(Exit.bug)
    case .cannotTell: throw ExitCode(Exit.couldNotTest)
    }
  }

  /// This binary, as a child: each run is a whole `hpthammer run` with its own directory.
  /// Through HostCommand (posix_spawn, waitpid), not Foundation's Process, which waits for a
  /// descriptor the child's daemons inherit: a lab run that booted the lab's QEMU never ended
  /// for it.
  func runSelf(_ args: [String]) throws -> Int32 {
    var exe = ownExecutable()
    if !FileManager.default.isExecutableFile(atPath: exe), let w = which("hpthammer") { exe = w }
    let r = HostCommand.run([exe] + args, timeoutS: 7 * 24 * 3600)
    return r.status ?? Exit.couldNotTest
  }

  static func titles(in dir: String) -> [String] {
    guard let data = FileManager.default.contents(atPath: "\(dir)/run.json"),
      let j = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let crashes = j["crashes"] as? [[String: Any]]
    else { return ["(a bug; run.json unreadable)"] }
    let t = crashes.filter { ($0["expected"] as? Bool) != true }.compactMap {
      $0["title"] as? String
    }
    return t.isEmpty ? ["(a bug without a crash: unexpected answers)"] : t
  }

  /// The verdict's row at its start: the job and both kernels, every setting.
  func studyRecord(dir: String) -> StudyRecord {
    let cwd = FileManager.default.currentDirectoryPath
    let jobPath = job.hasPrefix("/") ? job : cwd + "/" + job
    var args: [String: Any] = [
      "job": jobPath, "base": base, "patched": patched, "confidence": confidence,
      "fraction": fraction, "max_runs": maxRuns, "block": block,
    ]
    for (k, v) in [
      ("backend", backend?.rawValue), ("target", target?.rawValue), ("duration", duration),
    ] {
      if let v { args[k] = v }
    }
    if let resizes { args["resizes"] = resizes }
    var r = StudyRecord(
      kind: .verdict, dir: dir, command: StudyRecorder.commandLine,
      arguments: StudyRecorder.json(args))
    r.job = jobPath
    r.base = base
    r.patched = patched
    r.confidenceAsked = confidence
    return r
  }

  func bound(_ v: PatchVerdict) -> String {
    String(
      format: "patched rate < %.0f%% of the base rate with %.1f%% probability", fraction * 100,
      v.fixProbability * 100)
  }

  /// The answer as --json prints it (and the store keeps it).
  func answer(_ v: PatchVerdict, answer: PatchVerdict.Answer, wallS: Double, skipped: Int)
    -> [String: Any]
  {
    let side = { (s: PatchVerdict.Side) -> [String: Any] in
      ["runs": s.runs, "reproduced": s.reproduced, "titles": s.titles.sorted()]
    }
    return [
      "verdict": answer.rawValue, "confidence": confidence, "base": side(v.base),
      "patched": side(v.patched), "bound": bound(v), "wall_s": (wallS * 10).rounded() / 10,
      "skipped": skipped,
    ]
  }

  func report(_ v: PatchVerdict, answer: PatchVerdict.Answer, wallS: Double, skipped: Int) {
    let bound = self.bound(v)
    if json {
      let obj = self.answer(v, answer: answer, wallS: wallS, skipped: skipped)
      if let d = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) {
        print(String(decoding: d, as: UTF8.self))
      }
      return
    }
    print("verdict: \(answer.rawValue)")
    print(
      "  base (\(base)): \(v.base.reproduced) of \(v.base.runs) runs reproduced \(v.base.titles.sorted())"
    )
    print(
      "  patched (\(patched)): \(v.patched.reproduced) of \(v.patched.runs) runs \(v.patched.titles.sorted())"
    )
    print(
      "  \(bound); \(Int(wallS)) s\(skipped > 0 ? "; \(skipped) runs could not test and were run again" : "")"
    )
  }
}
