import Foundation

/// The formats the kernel world and monitoring read: KCIDB v5.3, junit.xml, Prometheus text.
public enum Exports {
  // MARK: KCIDB

  /// KCIDB v5.3 I/O data: one checkout and one build per kernel under test (the kernel is
  /// given to HPTHammer built; its release, version and build ID describe it), one test per
  /// run: PASS, FAIL (a bug found) or ERROR (could not test), with the crash titles and the
  /// first report as the log excerpt.
  public static func kcidb(_ runs: [RunRecord], origin: String = "hpthammer") -> JSONValue {
    var checkouts: [String: JSONValue] = [:]
    var builds: [String: JSONValue] = [:]
    var tests: [JSONValue] = []
    for r in runs.sorted(by: { $0.startedAt < $1.startedAt }) {
      let kernelKey = slug(
        [r.kernel, r.kernelRelease ?? "", r.kernelBuildID ?? ""].joined(separator: "|"))
      let checkoutID = "\(origin):checkout-\(kernelKey)"
      let buildID = "\(origin):build-\(kernelKey)"
      var kmisc: [String: JSONValue] = ["kernel": .string(r.kernel)]
      if let v = r.kernelRelease { kmisc["release"] = .string(v) }
      if let v = r.kernelVersion { kmisc["version"] = .string(v) }
      if let v = r.kernelBuildID { kmisc["build_id"] = .string(v) }
      checkouts[checkoutID] =
        checkouts[checkoutID]
        ?? .object([
          "id": .string(checkoutID), "origin": .string(origin), "valid": .bool(true),
          "comment": .string(clean("kernel under test: \(r.kernel)")), "misc": .object(kmisc),
        ])
      builds[buildID] =
        builds[buildID]
        ?? .object([
          "id": .string(buildID), "origin": .string(origin), "checkout_id": .string(checkoutID),
          "architecture": .string("powerpc"), "status": .string("PASS"),
          "comment": .string(clean("\(r.kernel) \(r.kernelRelease ?? "")")), "misc": .object(kmisc),
        ])
      tests.append(test(r, origin: origin, buildID: buildID))
    }
    return .object([
      "version": .object(["major": .number(5), "minor": .number(3)]),
      "checkouts": .array(checkouts.keys.sorted().map { checkouts[$0]! }),
      "builds": .array(builds.keys.sorted().map { builds[$0]! }),
      "tests": .array(tests),
    ])
  }

  static func test(_ r: RunRecord, origin: String, buildID: String) -> JSONValue {
    let status = ["pass": "PASS", "bug": "FAIL"][r.verdict] ?? "ERROR"
    let titles = r.bugs.map(\.title)
    var excerpt = titles.joined(separator: "\n")
    if let report = r.bugs.first?.report { excerpt += "\n\n" + report }
    if let e = r.error { excerpt = e + (excerpt.isEmpty ? "" : "\n\n" + excerpt) }
    var env: [String: JSONValue] = [
      "comment": .string(
        clean([r.host, r.cpu, r.platform].compactMap { $0 }.joined(separator: ", ")))
    ]
    var envMisc: [String: JSONValue] = ["host": .string(r.host)]
    for (k, v) in [
      ("qemu", r.qemuVersion), ("libvirt", r.libvirtVersion), ("guest_kernel", r.guestKernel),
    ] {
      if let v { envMisc[k] = .string(v) }
    }
    env["misc"] = .object(envMisc)
    var misc: [String: JSONValue] = [
      "job": .string(r.job), "seed": .string(r.seed), "backend": .string(r.backend),
      "crash_titles": .array(titles.map { .string($0) }),
      "signatures": .array(r.bugs.map { .string($0.signature) }),
      "interrupted": .bool(r.interrupted),
    ]
    if let c = r.reproduce { misc["reproduce"] = .string(c) }
    if let v = r.hpthammerCommit { misc["hpthammer_commit"] = .string(v) }
    var t: [String: JSONValue] = [
      "id": .string("\(origin):\(r.runID)"), "origin": .string(origin),
      "build_id": .string(buildID), "path": .string("kvm.hpt_resize." + pathPart(r.job)),
      "status": .string(status), "start_time": .string(iso(r.startedAt)),
      "environment": .object(env), "misc": .object(misc),
    ]
    if let d = r.elapsedS { t["duration"] = .number(d) }
    if let c = titles.first ?? r.error { t["comment"] = .string(clean(String(c.prefix(1000)))) }
    if !excerpt.isEmpty { t["log_excerpt"] = .string(clean(String(excerpt.prefix(16_000)))) }
    return .object(t)
  }

  /// KCIDB strings may hold anything but NUL.
  static func clean(_ s: String) -> String { s.replacingOccurrences(of: "\0", with: " ") }

  /// A test path component: [a-zA-Z0-9_-]+.
  static func pathPart(_ s: String) -> String {
    let ok = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    let p = String(s.map { ok.contains($0) ? $0 : "_" })
    return p.isEmpty ? "job" : p
  }

  static func slug(_ s: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return pathPart(String(s.prefix(40))) + "-" + String(h, radix: 16)
  }

  static func iso(_ t: Double) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: Date(timeIntervalSince1970: t))
  }

  // MARK: junit

  /// One test suite per night (UTC day), one test case per run: a bug is a failure with the
  /// crash titles and the first report, could-not-test an error.
  public static func junit(_ runs: [RunRecord]) -> String {
    let nights = Dictionary(grouping: runs) { Format.day($0.startedAt) }
    var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"hpthammer\">\n"
    for night in nights.keys.sorted() {
      let rs = nights[night]!.sorted { $0.startedAt < $1.startedAt }
      let failures = rs.filter { $0.verdict == "bug" }.count
      let errors = rs.filter { $0.verdict == "error" }.count
      let time = rs.compactMap(\.elapsedS).reduce(0, +)
      s +=
        "  <testsuite name=\"hpthammer.\(night)\" tests=\"\(rs.count)\" failures=\"\(failures)\" errors=\"\(errors)\" time=\"\(time)\" timestamp=\"\(iso(rs[0].startedAt).dropLast())\">\n"
      for r in rs {
        s +=
          "    <testcase classname=\"hpthammer.\(xml(r.host)).\(xml(r.kernel))\" name=\"\(xml(r.job)) seed \(xml(r.seed))\" time=\"\(r.elapsedS ?? 0)\""
        switch r.verdict {
        case "bug":
          let titles = r.bugs.map(\.title).joined(separator: "\n")
          s +=
            ">\n      <failure message=\"\(xml(r.bugs.first?.title ?? "bug"))\" type=\"bug\">\(xml(titles + "\n\n" + (r.bugs.first?.report ?? "")))</failure>\n"
          s += "      <system-out>\(xml(r.reproduce ?? ""))</system-out>\n    </testcase>\n"
        case "error":
          s +=
            ">\n      <error message=\"\(xml(String((r.error ?? "could not test").prefix(300))))\" type=\"could-not-test\">\(xml(r.error ?? ""))</error>\n    </testcase>\n"
        default:
          s += "/>\n"
        }
      }
      s += "  </testsuite>\n"
    }
    return s + "</testsuites>\n"
  }

  /// Text for XML attributes and elements: markup escaped, control characters XML 1.0
  /// forbids replaced.
  public static func xml(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for c in s.unicodeScalars {
      switch c {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&#39;"
      default:
        if (c.value < 0x20 && c != "\n" && c != "\t" && c != "\r") || c.value == 0xFFFE
          || c.value == 0xFFFF
        {
          out += "\u{FFFD}"
        } else {
          out.unicodeScalars.append(c)
        }
      }
    }
    return out
  }

  // MARK: Prometheus

  /// Text-format metrics of each host's last run, for node_exporter's textfile collector.
  public static func prometheus(_ runs: [RunRecord]) -> String {
    var last: [String: RunRecord] = [:]
    for r in runs where r.startedAt >= last[r.host]?.startedAt ?? -.infinity { last[r.host] = r }
    let hosts = last.keys.sorted()
    var out = ""
    func metric(_ name: String, _ help: String, _ value: (RunRecord) -> Double?) {
      out += "# HELP hpthammer_\(name) \(help)\n# TYPE hpthammer_\(name) gauge\n"
      for h in hosts {
        let r = last[h]!
        guard let v = value(r) else { continue }
        out +=
          "hpthammer_\(name){host=\"\(label(h))\",kernel=\"\(label(r.kernel))\",job=\"\(label(r.job))\"} \(v)\n"
      }
    }
    metric("last_run_timestamp_seconds", "Start of the host's last run (Unix time).") {
      $0.startedAt
    }
    metric("last_run_verdict", "The last run's verdict: 0 pass, 1 bug, 2 could not test.") {
      ["pass": 0, "bug": 1][$0.verdict] ?? 2
    }
    metric("last_run_crashes", "Unexpected crashes in the host's last run.") {
      Double($0.bugs.count)
    }
    metric("last_run_duration_seconds", "Wall time of the last run.") { $0.elapsedS }
    metric("last_run_resizes", "Resizes that succeeded in the last run.") {
      $0.resizesSucceeded.map(Double.init)
    }
    metric("last_run_resizes_per_second", "Resize rate of the last run.") { $0.resizesPerS }
    metric("last_run_faults_per_second", "Hypervisor fault rate of the last run.") { $0.faultsPerS }
    metric("last_run_prepare_p99_milliseconds", "Prepare-to-ready latency p99 of the last run.") {
      $0.prepareP99Ms
    }
    metric("last_run_commit_p99_milliseconds", "Commit latency p99 of the last run.") {
      $0.commitP99Ms
    }
    return out
  }

  /// A label value: backslash, quote and newline escaped.
  static func label(_ s: String) -> String {
    s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
      .replacingOccurrences(of: "\n", with: "\\n")
  }

  /// Writes `text` to `path` through a temporary file and a rename (the textfile collector
  /// must never read half a file).
  public static func writeAtomically(_ text: String, to path: String) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
  }
}
