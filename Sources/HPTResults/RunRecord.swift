import Foundation

/// One run as the store keeps it, read from a run directory (run.json, crash-N.txt,
/// timeline.jsonl), from any HPTHammer version that wrote one.
public struct RunRecord: Sendable, Codable {
  public struct Crash: Sendable, Codable {
    public var title: String
    public var frame: String?
    public var type: String?
    public var source: String?
    public var expected: Bool
    /// Seconds since the run started, from the timeline (nil: no timeline).
    public var tS: Double?
    /// The report text (crash-N.txt), at most `RunRecord.maxReportBytes`.
    public var report: String?

    /// The dedup key: the detector's title and the guilty frame.
    public var signature: String { Self.signature(title: title, frame: frame) }
    public static func signature(title: String, frame: String?) -> String {
      title + " | " + (frame ?? "-")
    }
  }

  public var runID: String
  /// run.json holds a final verdict (false: the harness died; the run is kept as interrupted
  /// and replaced when a complete record of it comes).
  public var complete: Bool
  public var startedAt: Double
  public var endedAt: Double?
  public var job: String
  public var seed: String
  public var backend: String
  /// The kernel under test: the host's release, or the simulator's model.
  public var kernel: String
  public var kernelRelease: String?
  public var kernelVersion: String?
  public var kernelBuildID: String?
  public var guestKernel: String?
  public var host: String
  public var cpu: String?
  public var platform: String?
  public var qemuVersion: String?
  public var libvirtVersion: String?
  public var hpthammerVersion: String?
  public var hpthammerCommit: String?
  public var verdict: String
  public var verdictDetail: String?
  public var error: String?
  public var interrupted: Bool
  public var reproduce: String?
  public var elapsedS: Double?
  public var hostTimeS: Double?
  public var timeToCrashS: Double?
  public var resizesAttempted: Int?
  public var resizesSucceeded: Int?
  public var resizesFailedUnexpected: Int?
  public var prepareP50Ms: Double?
  public var prepareP99Ms: Double?
  public var commitP50Ms: Double?
  public var commitP99Ms: Double?
  public var resizesPerS: Double?
  public var faultsPerS: Double?
  public var pagesVerified: Int?
  public var mismatches: Int?
  public var timelineEvents: Int?
  public var sourceDir: String?
  /// run.json as it was read (nil in listings).
  public var runJSON: String?
  public var crashes: [Crash]

  public static let maxReportBytes = 64 * 1024
  public static let verdicts: Set<String> = ["pass", "bug", "error"]

  /// The unexpected crashes: what a run is a bug for, and what is deduplicated.
  public var bugs: [Crash] { crashes.filter { !$0.expected } }
}

extension RunRecord {
  /// Reads a run directory. Anything that is not one says so, naming the directory.
  public static func load(dir: String) throws(StoreError) -> RunRecord {
    let url = URL(fileURLWithPath: dir).standardizedFileURL
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
      throw .badRunDirectory("\(dir): no such run directory")
    }
    let runJSONPath = url.appendingPathComponent("run.json").path
    guard let data = FileManager.default.contents(atPath: runJSONPath) else {
      throw .badRunDirectory(
        "\(dir): not a run directory (no run.json); give directories `hpthammer run` wrote")
    }
    let json: JSONValue
    do {
      json = try JSONDecoder().decode(JSONValue.self, from: data)
    } catch {
      throw .badRunDirectory(
        "\(runJSONPath): corrupt (not JSON: \(String(describing: error).prefix(120))); `hpthammer runs repair \(dir)` rebuilds one from the timeline"
      )
    }
    let timeline = Timeline.summary(url)
    let attributes = try? FileManager.default.attributesOfItem(atPath: runJSONPath)
    let mtime = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970
    return try parse(
      json, raw: String(decoding: data, as: UTF8.self), dir: url, timeline: timeline,
      mtime: mtime ?? Date().timeIntervalSince1970)
  }

  static func parse(
    _ j: JSONValue, raw: String, dir: URL, timeline: Timeline.Summary, mtime: Double
  ) throws(StoreError) -> RunRecord {
    let path = dir.appendingPathComponent("run.json").path
    guard j.object != nil, let job = j["job"]?.string, let verdict = j["verdict"]?.string else {
      throw .badRunDirectory(
        "\(path): not written by hpthammer (no job or verdict); nothing imported from it")
    }
    guard verdicts.contains(verdict) || verdict == "running" else {
      throw .badRunDirectory(
        "\(path): verdict '\(verdict)' is none of pass, bug, error, running; nothing imported from it"
      )
    }
    let p = j["provenance"]
    let complete = verdict != "running"
    let elapsed = j["wall"]?["elapsed_s"]?.double
    let started =
      date(p?["started_at"]?.string ?? j["started_at"]?.string)
      ?? mtime - (elapsed ?? timeline.lastT ?? 0)
    let lat = j["latency_ms"]
    var r = RunRecord(
      runID: p?["run_id"]?.string ?? j["run_id"]?.string ?? legacyID(raw),
      complete: complete, startedAt: started,
      endedAt: date(p?["ended_at"]?.string) ?? (complete ? mtime : nil),
      job: job, seed: j["seed"]?.string ?? "?", backend: j["backend"]?.string ?? "?",
      kernel: "?", kernelRelease: nil, host: "?",
      verdict: complete ? verdict : "error", verdictDetail: j["verdict_detail"]?.string,
      error: j["error"]?.string,
      interrupted: !complete || j["interrupted"]?.bool == true
        || j["error"]?.string?.hasPrefix("interrupted by ") == true,
      reproduce: j["reproduce"]?.string, elapsedS: elapsed, hostTimeS: j["host_time_s"]?.double,
      timeToCrashS: j["time_to_crash_s"]?.double,
      resizesAttempted: j["resizes"]?["attempted"]?.int,
      resizesSucceeded: j["resizes"]?["succeeded"]?.int,
      resizesFailedUnexpected: j["resizes"]?["failed_unexpected"]?.int,
      prepareP50Ms: lat?["prepare_to_ready"]?["p50"]?.double,
      prepareP99Ms: lat?["prepare_to_ready"]?["p99"]?.double,
      commitP50Ms: lat?["commit"]?["p50"]?.double, commitP99Ms: lat?["commit"]?["p99"]?.double,
      resizesPerS: j["wall"]?["resizes_per_s"]?.double,
      faultsPerS: j["wall"]?["faults_per_s"]?.double,
      pagesVerified: j["guests"]?["pages_verified"]?.int,
      mismatches: j["guests"]?["mismatches"]?.int,
      timelineEvents: timeline.count == 0 ? nil : timeline.count, sourceDir: dir.path, runJSON: raw,
      crashes: [])
    if !complete {
      r.error =
        "interrupted: run.json still says running (the harness was killed, or is still running)"
    }
    r.applyIdentity(j, provenance: p)
    r.crashes = crashes(j, complete: complete, dir: dir, timeline: timeline)
    return r
  }

  /// The kernel under test and the host it ran on: from `provenance` when the run has one;
  /// before that, `kernel` named the guest's kernel on libvirt runs ("guest 6.1.0") and the
  /// host's release was `kernel_release`.
  mutating func applyIdentity(_ j: JSONValue, provenance p: JSONValue?) {
    let release = j["kernel_release"]?.string
    let legacyKernel = j["kernel"]?.string ?? "?"
    if let hk = p?["host_kernel"] {
      kernel = hk["sim_model"]?.string ?? hk["release"]?.string ?? release ?? legacyKernel
      kernelRelease = hk["release"]?.string ?? release
      kernelVersion = hk["version"]?.string
      kernelBuildID = hk["build_id"]?.string
    } else if legacyKernel.hasPrefix("guest ") {
      kernel = release ?? "?"
      kernelRelease = release
    } else {
      kernel = legacyKernel
      kernelRelease = release
    }
    guestKernel =
      p?["guest_kernel"]?.string
      ?? (legacyKernel.hasPrefix("guest ") ? String(legacyKernel.dropFirst(6)) : nil)
    let target = j["target"]?.string
    host =
      p?["host"]?["name"]?.string
      ?? target.map { String($0.split(separator: " ").last ?? Substring($0)) }
      ?? (backend == "sim" || backend == "raw-sim" ? "sim-power9" : "localhost")
    cpu = p?["host"]?["cpu"]?.string
    platform = p?["host"]?["platform"]?.string
    qemuVersion = p?["qemu_version"]?.string
    libvirtVersion = p?["libvirt_version"]?.string
    hpthammerVersion = p?["hpthammer_version"]?.string
    hpthammerCommit = p?["hpthammer_commit"]?.string
  }

  /// run.json's crashes with their reports; an interrupted run's come from its timeline.
  static func crashes(_ j: JSONValue, complete: Bool, dir: URL, timeline: Timeline.Summary)
    -> [Crash]
  {
    let timed = timeline.crashes
    if !complete || j["crashes"] == nil {
      return timed.map { e in
        Crash(
          title: e["title"]?.string ?? "?", frame: e["frame"]?.string, type: nil, source: nil,
          expected: e["expected"]?.bool ?? false, tS: e.t,
          report: report(dir, e["report"]?.string))
      }
    }
    return j["crashes"]!.array.map { c in
      let title = c["title"]?.string ?? "?"
      let file = c["file"]?.string
      let at = timed.first { $0["title"]?.string == title && $0["report"]?.string == file }
      return Crash(
        title: title, frame: c["frame"]?.string, type: c["type"]?.string,
        source: c["source"]?.string, expected: c["expected"]?.bool ?? false, tS: at?.t,
        report: report(dir, file))
    }
  }

  /// A crash report file of the run directory: a plain name only (a run.json from elsewhere
  /// must not make the import read /etc/shadow), at most maxReportBytes.
  static func report(_ dir: URL, _ name: String?) -> String? {
    guard let name, !name.isEmpty, !name.contains("/"), name != "..", name != "." else {
      return nil
    }
    guard let h = FileHandle(forReadingAtPath: dir.appendingPathComponent(name).path) else {
      return nil
    }
    defer { try? h.close() }
    let data = (try? h.read(upToCount: maxReportBytes)) ?? Data()
    // Text as both stores keep it: PostgreSQL's text holds no NUL.
    return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\0", with: "\u{FFFD}")
  }

  static func date(_ s: String?) -> Double? {
    guard let s else { return nil }
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let d = f.date(from: s) { return d.timeIntervalSince1970 }
    f.formatOptions = [.withInternetDateTime]
    return f.date(from: s)?.timeIntervalSince1970
  }

  /// A run.json from before runs had an id: its content's hash (FNV-1a, 2 x 64 bits), so the
  /// same directory imported twice is the same run.
  static func legacyID(_ raw: String) -> String {
    var a: UInt64 = 0xcbf2_9ce4_8422_2325
    var b: UInt64 = 0x8422_2325_cbf2_9ce4
    for byte in raw.utf8 {
      a = (a ^ UInt64(byte)) &* 0x100_0000_01b3
      b = (b ^ UInt64(byte)) &* 0x100_0000_01b3 &+ 1
    }
    return "legacy-" + String(a, radix: 16) + String(b, radix: 16)
  }
}
