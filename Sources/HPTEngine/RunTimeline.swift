import Foundation

/// timeline.jsonl in the run directory: what happened, as it happened, one JSON object a line,
/// append-only. Every line has "t" (host seconds since the run started) and "event":
///   start {job, seed, backend, kernel, reproduce, pid}; phase {phase}; resize {guest, from, to, prepare_ms,
///   commit_ms, answer}; rates {resizes_per_s, faults_per_s, pages_verified_per_s} every
///   `ratesEveryS` of host time while the stats line runs; crash {title, frame, report, expected}; end {verdict, error, report:
///   the whole run.json, from which run.json, junit.xml and the summary are derived}.
/// It is fsync'd at the start, at each phase, at each crash and at the end, so after a SIGKILL or a power loss
/// `hpthammer runs repair` can still say what the run found. Resize lines stop after
/// `maxResizeEvents` (the run.json counters and the rates lines keep counting): a day's run
/// stays under about 20 MB (100,000 resize lines of ~130 bytes, 8,640 rates lines).
public final class RunTimeline: @unchecked Sendable {
  public static let fileName = "timeline.jsonl"
  public static let maxResizeEvents = 100_000
  public static let ratesEveryS = 10.0
  private let handle: FileHandle?
  private let lock = NSLock()
  private var resizes = 0
  private var baseNs: UInt64 = 0
  /// The counters at the last rates line (or the start).
  private var window = (ns: UInt64(0), resizes: 0, faults: 0, pages: UInt64(0))
  /// The host's count of hypervisor faults, when it keeps one.
  var hostFaults: @Sendable () -> Int? = { nil }
  /// Called with the error when a line cannot be written (a full disk).
  var onWriteFailure: (any Error) -> Void = { _ in }

  init(dir: URL) {
    let url = dir.appendingPathComponent(Self.fileName)
    FileManager.default.createFile(atPath: url.path, contents: nil)
    handle = try? FileHandle(forWritingTo: url)
  }

  func start(atNs ns: UInt64, _ fields: [String: Any]) {
    lock.locked {
      baseNs = ns
      window.ns = ns
    }
    write(ns, "start", fields.merging(["pid": Int(getpid())]) { a, _ in a }, sync: true)
  }

  func resize(
    atNs ns: UInt64, guest: String, from: UInt32, to: UInt32, prepareMs: Double?,
    commitMs: Double?, answer: String
  ) {
    let keep = lock.locked {
      resizes += 1
      return resizes <= Self.maxResizeEvents
    }
    guard keep else { return }
    var f: [String: Any] = ["guest": guest, "from": Int(from), "to": Int(to), "answer": answer]
    if let prepareMs { f["prepare_ms"] = (prepareMs * 1000).rounded() / 1000 }
    if let commitMs { f["commit_ms"] = (commitMs * 1000).rounded() / 1000 }
    write(ns, "resize", f, sync: false)
  }

  func crash(atNs ns: UInt64, title: String, frame: String?, report: String, expected: Bool) {
    var f: [String: Any] = ["title": title, "report": report, "expected": expected]
    if let frame { f["frame"] = frame }
    write(ns, "crash", f, sync: true)
  }

  /// A phase of the run begins (guests started, stopping, guests closed, log drained, host down,
  /// recovered); fsync'd, so a kill shows how far the run got.
  func phase(atNs ns: UInt64, _ name: String, _ fields: [String: Any] = [:]) {
    write(ns, "phase", fields.merging(["phase": name]) { a, _ in a }, sync: true)
  }

  /// A rates line when `ratesEveryS` of host time have passed since the last: what a long
  /// run's resizes are aggregated into once their own lines stop. Sampled by the stats line's
  /// thread on a real clock, by the hammer on the simulator's (`clockIsSimulated`).
  /// Called at every resize on the simulator: the host's counters are read only when a line
  /// is due.
  func sampleRates(atNs ns: UInt64, resizes: Int, pagesVerified: UInt64) {
    let due = { (w: UInt64) in ns >= w && Double(ns - w) / 1e9 >= Self.ratesEveryS }
    guard due(lock.locked { window.ns }) else { return }
    let faults = hostFaults()
    // Another hammer may have written the line meanwhile.
    let last = lock.locked { () -> (ns: UInt64, resizes: Int, faults: Int, pages: UInt64)? in
      guard due(window.ns) else { return nil }
      defer { window = (ns, resizes, faults ?? 0, pagesVerified) }
      return window
    }
    guard let last else { return }
    let span = Double(ns - last.ns) / 1e9
    rates(
      atNs: ns, resizesPerS: Double(resizes - last.resizes) / span,
      faultsPerS: faults.map { Double($0 - last.faults) / span },
      pagesVerifiedPerS: Double(pagesVerified &- last.pages) / span)
  }

  /// faultsPerS nil: the host counts no hypervisor faults (a libvirt guest's host), so the
  /// line has no faults_per_s rather than a false 0.
  private func rates(
    atNs ns: UInt64, resizesPerS: Double, faultsPerS: Double?, pagesVerifiedPerS: Double
  ) {
    let r = { (x: Double) in (x * 10).rounded() / 10 }
    var f: [String: Any] = [
      "resizes_per_s": r(resizesPerS), "pages_verified_per_s": r(pagesVerifiedPerS),
    ]
    if let faultsPerS { f["faults_per_s"] = r(faultsPerS) }
    write(ns, "rates", f, sync: false)
  }

  /// The run's end, with the whole report: run.json, junit.xml and the summary are derived from
  /// this line (`RunJournal.derive`). Whether it reached the disk.
  @discardableResult
  func end(atNs ns: UInt64, report: RunReport) -> Bool {
    var f: [String: Any] = ["verdict": report.verdict.rawValue]
    if let error = report.error { f["error"] = error }
    // The report goes in as RunOutput encodes it (not through JSONSerialization), so that
    // decoding it gives back the same run.json byte for byte.
    return write(ns, "end", f, sync: true, raw: ("report", RunOutput.encodeLine(report)))
  }

  @discardableResult
  private func write(
    _ ns: UInt64, _ event: String, _ fields: [String: Any], sync: Bool,
    raw: (key: String, json: Data)? = nil
  ) -> Bool {
    guard let handle else { return false }
    return lock.locked {
      var f = fields
      f["event"] = event
      f["t"] = (Double(ns &- baseNs) / 1e6).rounded() / 1000
      guard
        var data = try? JSONSerialization.data(
          withJSONObject: f, options: [.sortedKeys, .withoutEscapingSlashes])
      else { return false }
      if let raw, data.last == UInt8(ascii: "}") {
        data.removeLast()
        data += Data(",\"\(raw.key)\":".utf8) + raw.json + Data("}".utf8)
      }
      do {
        try handle.write(contentsOf: data + Data("\n".utf8))
        if sync { try handle.synchronize() }
        return true
      } catch {
        onWriteFailure(error)
        return false
      }
    }
  }
}

/// The journal is the run's record: its `end` line holds the report, and run.json, junit.xml
/// and the printed summary are derived from it, as `runs repair` derives them for a run that
/// never reached its end.
public enum RunJournal {
  private struct EndLine: Decodable {
    let event: String
    let report: RunReport?
  }

  /// The report in the journal's last `end` line, if the run got that far.
  public static func endReport(_ dir: URL) -> RunReport? {
    guard
      let data = FileManager.default.contents(
        atPath: dir.appendingPathComponent(RunTimeline.fileName).path)
    else { return nil }
    let dec = JSONDecoder()
    for line in data.split(separator: UInt8(ascii: "\n")).reversed() {
      guard let end = try? dec.decode(EndLine.self, from: Data(line)), end.event == "end" else {
        continue
      }
      return end.report
    }
    return nil
  }

  /// run.json and junit.xml written from the journal's end; the report they hold (nil: the
  /// journal has no end, so nothing was derived).
  @discardableResult
  public static func derive(_ dir: URL) -> RunReport? {
    guard let report = endReport(dir) else { return nil }
    RunOutput.write(report, to: dir)
    return report
  }
}

/// `hpthammer runs repair`: a run directory whose run.json still says "running" (the harness
/// was killed, or its machine lost power) gets a run.json and junit.xml from its timeline:
/// verdict error, marked interrupted, with the crashes it had found.
public enum RunRepair {
  public enum Outcome: Equatable, Sendable {
    /// `verdict` as run.json now says: the run's own when its end reached the journal, else
    /// error (interrupted).
    case repaired(events: Int, verdict: String, interrupted: Bool)
    case notNeeded, notARunDirectory(String)
  }

  /// A run directory left "running" by a harness process that no longer exists.
  public static func isAbandoned(_ dir: URL) -> Bool {
    guard let j = json(dir.appendingPathComponent("run.json")), j["verdict"] as? String == "running"
    else { return false }
    return HarnessProcess.isAlive(owner: j) == false
  }

  /// The PID of the harness still writing `dir` (nil: none, or not a run left running).
  public static func liveOwner(_ dir: URL) -> Int? {
    guard let j = json(dir.appendingPathComponent("run.json")),
      j["verdict"] as? String == "running",
      HarnessProcess.isAlive(owner: j) == true
    else { return nil }
    return j["pid"] as? Int
  }

  public static func repair(_ dir: URL) -> Outcome {
    let runJSON = dir.appendingPathComponent("run.json")
    guard let interim = json(runJSON) else {
      return .notARunDirectory("\(dir.path): no readable run.json")
    }
    guard interim["verdict"] as? String == "running" else { return .notNeeded }
    let events = timeline(dir)
    // Killed after its end reached the journal but before run.json: the end is the record.
    if let r = RunJournal.derive(dir) {
      return .repaired(events: events.count, verdict: r.verdict.rawValue, interrupted: false)
    }
    let crashes = events.filter { $0["event"] as? String == "crash" }
    let resizes = events.filter { $0["event"] as? String == "resize" }
    let last = events.last?["t"] as? Double ?? 0
    var report = interim
    report["verdict"] = "error"
    report["interrupted"] = true
    report["error"] =
      "interrupted: the harness stopped (SIGKILL, a crash or a power loss) before the run ended; repaired from \(RunTimeline.fileName) (\(events.count) events, the last at \(last) s)"
    report["crashes"] = crashes.map { c -> [String: Any] in
      var f: [String: Any] = [
        "title": c["title"] ?? "", "file": c["report"] ?? "", "expected": c["expected"] ?? false,
        "source": "host",
      ]
      if let frame = c["frame"] { f["frame"] = frame }
      return f
    }
    report["resizes_seen"] = resizes.count
    guard
      let data = try? JSONSerialization.data(
        withJSONObject: report, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]),
      (try? data.write(to: runJSON, options: .atomic)) != nil
    else { return .notARunDirectory("\(dir.path): cannot write run.json") }
    let name = RunOutput.xml(interim["job"] as? String ?? "run")
    let junit = """
      <?xml version="1.0" encoding="UTF-8"?>
      <testsuites><testsuite name="hpthammer" tests="1" failures="0" errors="1">
      <testcase classname="hpthammer" name="\(name)"><error message="\(RunOutput.xml(report["error"] as? String ?? ""))"/></testcase>
      </testsuite></testsuites>

      """
    try? Data(junit.utf8).write(to: dir.appendingPathComponent("junit.xml"), options: .atomic)
    return .repaired(events: events.count, verdict: "error", interrupted: true)
  }

  /// The timeline's lines; a line cut by the kill is dropped.
  static func timeline(_ dir: URL) -> [[String: Any]] {
    guard
      let data = FileManager.default.contents(
        atPath: dir.appendingPathComponent(RunTimeline.fileName).path)
    else { return [] }
    return data.split(separator: UInt8(ascii: "\n")).compactMap {
      (try? JSONSerialization.jsonObject(with: Data($0))) as? [String: Any]
    }
  }

  static func json(_ url: URL) -> [String: Any]? {
    guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
    return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
  }
}

/// The harness process that owns a run directory: its PID, the boot it ran in and its start
/// time, so that a PID reused after a controller's reboot or by another process is not taken
/// for the harness.
public enum HarnessProcess {
  public static var bootID: String? {
    (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
      .trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// The start time (clock ticks since boot) of a process that runs; nil for one that is gone
  /// or a zombie (killed, not yet reaped).
  public static func startTicks(of pid: Int32) -> UInt64? {
    guard let stat = ProcStat(pid: pid), stat.isLive else { return nil }
    return stat.field(22).flatMap { UInt64($0) }
  }

  /// What the interim run.json records of this process.
  public static var me: [String: Any] {
    let pid = getpid()
    var o: [String: Any] = ["pid": Int(pid), "controller": ProcessInfo.processInfo.hostName]
    if let b = bootID { o["boot_id"] = b }
    if let t = startTicks(of: pid) { o["pid_start_ticks"] = Int(t) }
    return o
  }

  /// Whether the owner recorded in `j` (controller, pid, boot_id, pid_start_ticks) still runs;
  /// nil when that cannot be told from here (another controller's run, on a shared disk).
  public static func isAlive(owner j: [String: Any]) -> Bool? {
    guard let pid = j["pid"] as? Int else {
      return isAlive(controller: j["controller"] as? String, bootID: nil, pid: nil, startTicks: nil)
    }
    return isAlive(
      controller: j["controller"] as? String, bootID: j["boot_id"] as? String, pid: pid,
      startTicks: (j["pid_start_ticks"] as? Int).map(UInt64.init))
  }

  /// The same for an owner's fields (nil: not recorded, not checked; no PID: gone), seen from
  /// `here` (this controller and its boot unless told).
  public static func isAlive(
    controller: String?, bootID: String?, pid: Int?, startTicks recorded: UInt64?,
    seenFrom here: (controller: String, bootID: String?) = (
      ProcessInfo.processInfo.hostName, HarnessProcess.bootID
    )
  ) -> Bool? {
    if let controller, controller != here.controller { return nil }
    guard let pid else { return false }
    if let bootID, bootID != here.bootID { return false }
    guard let ticks = startTicks(of: pid_t(pid)) else { return false }
    if let recorded, recorded != ticks { return false }
    return true
  }
}
