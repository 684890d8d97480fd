import Foundation

/// timeline.jsonl in the run directory: what happened, as it happened, one JSON object a line,
/// append-only. Every line has "t" (host seconds since the run started) and "event":
///   start {job, seed, backend, kernel, reproduce, pid}; resize {guest, from, to, prepare_ms,
///   commit_ms, answer}; crash {title, frame, report, expected}; end {verdict, error}.
/// It is fsync'd at the start, at each crash and at the end, so after a SIGKILL or a power loss
/// `hpthammer runs repair` can still say what the run found. Resize lines stop after
/// `maxResizeEvents` (the run.json counters keep counting): a night's run stays bounded.
public final class RunTimeline: @unchecked Sendable {
  public static let fileName = "timeline.jsonl"
  public static let maxResizeEvents = 100_000
  private let handle: FileHandle?
  private let lock = NSLock()
  private var resizes = 0
  private var baseNs: UInt64 = 0
  /// Called with the error when a line cannot be written (a full disk).
  var onWriteFailure: (any Error) -> Void = { _ in }

  init(dir: URL) {
    let url = dir.appendingPathComponent(Self.fileName)
    FileManager.default.createFile(atPath: url.path, contents: nil)
    handle = try? FileHandle(forWritingTo: url)
  }

  func start(atNs ns: UInt64, _ fields: [String: Any]) {
    lock.locked { baseNs = ns }
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

  func end(atNs ns: UInt64, verdict: String, error: String?) {
    var f: [String: Any] = ["verdict": verdict]
    if let error { f["error"] = error }
    write(ns, "end", f, sync: true)
  }

  private func write(_ ns: UInt64, _ event: String, _ fields: [String: Any], sync: Bool) {
    guard let handle else { return }
    lock.locked {
      var f = fields
      f["event"] = event
      f["t"] = (Double(ns &- baseNs) / 1e6).rounded() / 1000
      guard
        let data = try? JSONSerialization.data(
          withJSONObject: f, options: [.sortedKeys, .withoutEscapingSlashes])
      else { return }
      do {
        try handle.write(contentsOf: data + Data("\n".utf8))
        if sync { try handle.synchronize() }
      } catch {
        onWriteFailure(error)
      }
    }
  }
}

/// `hpthammer runs repair`: a run directory whose run.json still says "running" (the harness
/// was killed, or its machine lost power) gets a run.json and junit.xml from its timeline:
/// verdict error, marked interrupted, with the crashes it had found.
public enum RunRepair {
  public enum Outcome: Equatable, Sendable {
    case repaired(events: Int), notNeeded, notARunDirectory(String)
  }

  /// A run directory left "running" by a harness process that no longer exists.
  public static func isAbandoned(_ dir: URL) -> Bool {
    guard let j = json(dir.appendingPathComponent("run.json")), j["verdict"] as? String == "running"
    else { return false }
    guard let pid = j["pid"] as? Int else { return true }
    return kill(pid_t(pid), 0) != 0 && errno == ESRCH
  }

  public static func repair(_ dir: URL) -> Outcome {
    let runJSON = dir.appendingPathComponent("run.json")
    guard let interim = json(runJSON) else {
      return .notARunDirectory("\(dir.path): no readable run.json")
    }
    guard interim["verdict"] as? String == "running" else { return .notNeeded }
    let events = timeline(dir)
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
    return .repaired(events: events.count)
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
