import Foundation
import KVMHost

/// The run directory's summary files: run.json and junit.xml.
public enum RunOutput {
  public static func encode(_ report: RunReport) -> Data {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return (try? enc.encode(report)) ?? Data("{}".utf8)
  }

  /// run.json on one line (JSON Lines: `hpthammer run --json` prints one per run).
  public static func encodeLine(_ report: RunReport) -> Data {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return (try? enc.encode(report)) ?? Data("{}".utf8)
  }

  static func write(_ report: RunReport, to dir: URL) {
    try? encode(report).write(to: dir.appendingPathComponent("run.json"), options: .atomic)
    try? Data(junit(report).utf8).write(
      to: dir.appendingPathComponent("junit.xml"), options: .atomic)
  }

  /// Whether `dir` holds this report's run.json and junit.xml as written (a full disk leaves
  /// them missing, stale or cut short): what the caller checks before trusting the verdict.
  public static func isWritten(_ report: RunReport, in dir: URL) -> Bool {
    guard
      let data = FileManager.default.contents(atPath: dir.appendingPathComponent("run.json").path),
      let junit = FileManager.default.contents(atPath: dir.appendingPathComponent("junit.xml").path)
    else { return false }
    return data == encode(report) && junit == Data(Self.junit(report).utf8)
  }

  static func xml(_ s: String) -> String {
    var out = ""
    for c in s.unicodeScalars {
      switch c {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      default:
        if c.value < 0x20 && c != "\n" && c != "\t" {
          out += " "
        } else {
          out.unicodeScalars.append(c)
        }
      }
    }
    return out
  }

  /// One test case per thing a kernel developer looks at: setup, the host's log, the guests'
  /// memory, the resize answers.
  public static func junit(_ r: RunReport) -> String {
    var cases: [(String, String?)] = []
    cases.append(("setup", r.error))
    let hostCrashes = r.crashes.filter { !$0.expected && $0.type != "MEMORY_CORRUPTION" }
    cases.append(
      (
        "host kernel log",
        hostCrashes.isEmpty ? nil : hostCrashes.map(\.title).joined(separator: "\n")
      ))
    let corruption = r.crashes.filter { $0.type == "MEMORY_CORRUPTION" }
    cases.append(
      (
        "guest memory integrity",
        corruption.isEmpty ? nil : corruption.map(\.title).joined(separator: "\n")
      ))
    cases.append(
      (
        "resize answers",
        r.resizes.failed_unexpected == 0
          ? nil
          : r.unexpected.map { "\($0.guest) \($0.op) \($0.fromOrder)->\($0.order): \($0.answer)" }
            .joined(separator: "\n")
      ))
    let failures = cases.filter { $0.1 != nil }.count
    var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    s += "<testsuites>\n"
    s +=
      "  <testsuite name=\"hpthammer.\(xml(r.job))\" tests=\"\(cases.count)\" failures=\"\(failures)\" time=\"\(r.wall.elapsed_s)\">\n"
    s +=
      "    <properties><property name=\"kernel\" value=\"\(xml(r.kernel))\"/><property name=\"seed\" value=\"\(r.seed)\"/><property name=\"verdict\" value=\"\(r.verdict.rawValue)\"/></properties>\n"
    for (name, failure) in cases {
      s += "    <testcase classname=\"hpthammer.\(xml(r.job))\" name=\"\(xml(name))\""
      if let failure {
        s +=
          ">\n      <failure message=\"\(xml(failure.split(separator: "\n").first.map(String.init) ?? ""))\">\(xml(failure))</failure>\n    </testcase>\n"
      } else {
        s += "/>\n"
      }
    }
    s += "  </testsuite>\n</testsuites>\n"
    return s
  }

  /// The one-screen summary printed at the end of a run.
  public static func summary(_ r: RunReport, dir: String) -> String {
    var lines: [String] = []
    let outcome = r.verdict == .pass ? "SUCCESS" : r.verdict == .bug ? "FAILURE" : "ERROR"
    lines.append(
      "End of run: \(outcome) verdict=\(r.verdict.rawValue) kernel=\(r.kernel) seed=\(r.seed) job=\(r.job)"
    )
    if let e = r.error { lines.append("  could not test: \(e)") }
    for c in r.crashes {
      let tag = c.expected ? "expected" : "!!!"
      lines.append("  \(tag) \(c.title)")
      lines.append(
        "      type \(c.type), frame \(c.frame ?? "-"), from \(c.source)\(c.file.map { ", report \($0)" } ?? "")"
      )
    }
    let z = r.resizes
    lines.append(
      "  resizes: attempted \(z.attempted), succeeded \(z.succeeded), failed expected \(z.failed_expected), failed unexpected \(z.failed_unexpected)"
    )
    for u in r.unexpected.prefix(5) {
      lines.append(
        "  !!! unexpected: \(u.guest) \(u.op) order \(u.fromOrder)->\(u.order): \(u.answer) at host t=\(u.hostTimeS)s"
      )
      for line in (u.evidence ?? "").split(separator: "\n") { lines.append("      \(line)") }
    }
    let p = r.latency_ms.prepare_to_ready
    let c = r.latency_ms.commit
    lines.append(
      "  prepare->ready ms: p50 \(p.p50) p90 \(p.p90) p99 \(p.p99) max \(p.max) (n=\(p.count))")
    lines.append(
      "  commit ms:         p50 \(c.p50) p90 \(c.p90) p99 \(c.p99) max \(c.max) (n=\(c.count))")
    lines.append(
      "  guest pages verified \(r.guests.pages_verified), mismatches \(r.guests.mismatches)")
    lines.append("  host time \(r.host_time_s) s, wall \(r.wall.elapsed_s) s")
    lines.append("  run directory: \(dir)")
    lines.append("  reproduce: \(r.reproduce)")
    return lines.joined(separator: "\n")
  }
}

/// Live progress on a terminal, rcutorture style: one terse stats line per interval.
public final class ProgressPrinter: @unchecked Sendable {
  let intervalS: Double
  let console: FileHandle?
  let logURL: URL
  private var thread: Thread?
  private let lock = NSLock()
  private var running = false

  public init(intervalS: Double = 1, console: FileHandle?, logURL: URL) {
    self.intervalS = intervalS
    self.console = console
    self.logURL = logURL
  }

  /// `hostStatistics`: what the host counts (the fault rate reads hypervisor_faults).
  public func begin(
    job: Job, stats: RunStats, executor: any AgentExecutor,
    hostStatistics: @escaping @Sendable () -> [String: Int]
  ) {
    lock.locked { running = true }
    if !FileManager.default.fileExists(atPath: logURL.path) {
      FileManager.default.createFile(atPath: logURL.path, contents: nil)
    }
    let log = try? FileHandle(forWritingTo: logURL)
    _ = try? log?.seekToEnd()
    let start = Date()
    let hostStart = executor.nowNs
    stats.timeline?.hostFaults = { hostStatistics()["hypervisor_faults"] }
    let t = Thread { [self] in
      var lastResizes = 0
      var lastFaults = 0
      var lastT = 0.0
      while lock.locked({ running }) {
        Thread.sleep(forTimeInterval: intervalS)
        guard lock.locked({ running }) else { break }
        let t = Date().timeIntervalSince(start)
        let (ok, exp, unexp, verified) = stats.with {
          ($0.succeeded, $0.failedExpected, $0.failedUnexpected, $0.pagesVerified)
        }
        let rate = Double(ok - lastResizes) / max(0.001, t - lastT)
        let counted = hostStatistics()["hypervisor_faults"]
        let faults = counted ?? 0
        let faultRate = Double(faults - lastFaults) / max(0.001, t - lastT)
        lastResizes = ok
        lastFaults = faults
        lastT = t
        let nowNs = executor.nowNs
        let hostT = Double(nowNs - hostStart) / 1e9
        // The timeline's rates, over host time; on the simulator the hammer samples them.
        if !executor.clockIsSimulated {
          stats.timeline?.sampleRates(atNs: nowNs, resizes: ok, pagesVerified: verified)
        }
        let flag = unexp > 0 ? " !!!" : ""
        let line = String(
          format:
            "hpthammer: elapsed=%.1fs host=%.2fs resizes=%d (%.1f/s) faults/s=%.0f expected-failures=%d unexpected=%d verified-pages=%llu%@\n",
          t, hostT, ok, rate, faultRate, exp, unexp, verified, flag)
        console?.write(Data(line.utf8))
        try? log?.write(contentsOf: Data(line.utf8))
      }
      try? log?.close()
    }
    thread = t
    t.start()
  }

  public func end() { lock.locked { running = false } }

  /// One event line ("hpthammer: lab: ssh ready after 41 s") on the console and in progress.log.
  /// `always`: on standard error even without a progress console (what the run did to the
  /// host, such as cleaning up a dead run's domains, is never silent).
  public func note(_ message: String, always: Bool = false) {
    let line = "hpthammer: \(message)\n"
    (console ?? (always ? .standardError : nil))?.write(Data(line.utf8))
    lock.locked {
      if !FileManager.default.fileExists(atPath: logURL.path) {
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
      }
      if let h = try? FileHandle(forWritingTo: logURL) {
        _ = try? h.seekToEnd()
        try? h.write(contentsOf: Data(line.utf8))
        try? h.close()
      }
    }
  }
}

/// Run directory names made from job names, which are the job author's free text.
public enum RunDirectory {
  /// `name` as one path component: letters, digits, '.', '_' and '-' kept, anything else
  /// (a '/', a space, an escape) as '_', no leading '.', at most 64 characters (with a hash of
  /// the whole when cut, so two long names stay apart).
  public static func component(_ name: String) -> String {
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    var s = String(name.map { allowed.contains($0) ? $0 : "_" })
    while s.hasPrefix(".") { s = "_" + s.dropFirst() }
    if s.isEmpty { s = "job" }
    guard s.count > 64 else { return s }
    var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a of the whole name
    for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return String(s.prefix(48)) + "-" + String(h, radix: 16)
  }
}
