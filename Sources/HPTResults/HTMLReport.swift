import Foundation

/// The report people look at: one self-contained HTML file (inline CSS and SVG, no script, no
/// network), for one run directory or for the store's history. Every piece of text that came
/// from a run (titles, frames, hosts, kernel logs) goes through `HTML.escape`.
public enum HTMLReport {
  // MARK: one run

  /// The report of one run directory: what ran where, its timeline as plots (resize latency,
  /// HPT order per guest, resize rate, crashes on the same time axis), and its crashes with
  /// their report text.
  public static func run(dir: String) throws(StoreError) -> String {
    let r = try RunRecord.load(dir: dir)
    let timeline = Timeline.read(URL(fileURLWithPath: dir))
    var body =
      "<h1>HPTHammer run: \(badge(r.verdict)) \(HTML.escape(r.job)) seed \(HTML.escape(r.seed))</h1>\n"
    body += runFacts(r)
    let plots = runPlots(timeline, crashes: r.crashes)
    if plots.isEmpty {
      body +=
        "<p class=\"note\">This run directory has no timeline.jsonl resize events: no plots (it ended before its first resize, or an HPTHammer before the timeline wrote it).</p>\n"
    }
    body += plots.map { "<figure>\($0.render())</figure>\n" }.joined()
    body += "<h2>Crashes</h2>\n"
    if r.crashes.isEmpty {
      body += "<p>None.</p>\n"
    } else {
      for (i, c) in r.crashes.enumerated() {
        body +=
          "<section class=\"crash\"><h3>\(i + 1). \(HTML.escape(c.title))\(c.expected ? " <span class=\"tag\">expected</span>" : "")</h3>\n"
        body +=
          "<p>guilty frame <code>\(HTML.escape(c.frame ?? "-"))</code>\(c.tS.map { String(format: ", at %.3f s", $0) } ?? "")\(c.type.map { ", " + HTML.escape($0) } ?? "")</p>\n"
        body += reportText(c.report)
        body += "</section>\n"
      }
    }
    return page(title: "HPTHammer run \(r.job) seed \(r.seed): \(r.verdict)", body: body)
  }

  static func runFacts(_ r: RunRecord) -> String {
    var rows: [(String, String)] = [
      ("verdict", r.verdict + (r.interrupted ? " (interrupted)" : "")),
      (
        "kernel under test",
        [r.kernel, r.kernelRelease, r.kernelVersion].compactMap { $0 }.joined(separator: " · ")
      ),
      ("host", [r.host, r.cpu, r.platform].compactMap { $0 }.joined(separator: " · ")),
      ("backend", r.backend),
      ("started", Format.time(r.startedAt)),
    ]
    if let g = r.guestKernel { rows.append(("guest kernel", g)) }
    if let b = r.kernelBuildID { rows.append(("build id", b)) }
    if r.qemuVersion != nil || r.libvirtVersion != nil {
      rows.append(("QEMU · libvirt", "\(r.qemuVersion ?? "?") · \(r.libvirtVersion ?? "?")"))
    }
    if let e = r.elapsedS { rows.append(("wall time", String(format: "%.1f s", e))) }
    rows.append(("resizes", "\(r.resizesSucceeded ?? 0) of \(r.resizesAttempted ?? 0) succeeded"))
    rows.append(
      (
        "latency p50 / p99",
        "prepare \(Format.ms(r.prepareP50Ms)) / \(Format.ms(r.prepareP99Ms)) ms, commit \(Format.ms(r.commitP50Ms)) / \(Format.ms(r.commitP99Ms)) ms"
      ))
    if let e = r.error { rows.append(("error", e)) }
    if let c = r.reproduce { rows.append(("reproduce", c)) }
    rows.append(("harness", "hpthammer \(r.hpthammerVersion ?? "?") \(r.hpthammerCommit ?? "")"))
    rows.append(("run id", r.runID))
    return "<table class=\"facts\">"
      + rows.map { "<tr><th>\(HTML.escape($0.0))</th><td>\(HTML.escape($0.1))</td></tr>" }.joined()
      + "</table>\n"
  }

  static func runPlots(_ events: [TimelineEvent], crashes: [RunRecord.Crash]) -> [SVGPlot] {
    let resizes = events.filter { $0.event == "resize" }
    guard !resizes.isEmpty else { return [] }
    // Crash markers: the timeline's crashes, or run.json's with their times.
    var markers = events.filter { $0.event == "crash" }.map {
      SVGPlot.Marker(x: $0.t, label: $0["title"]?.string ?? "crash")
    }
    if markers.isEmpty {
      markers = crashes.compactMap { c in c.tS.map { SVGPlot.Marker(x: $0, label: c.title) } }
    }
    var prepare: [(x: Double, y: Double)] = []
    var commit: [(x: Double, y: Double)] = []
    var orders: [String: [(x: Double, y: Double)]] = [:]
    for e in resizes {
      if let p = e["prepare_ms"]?.double { prepare.append((e.t, p)) }
      if let c = e["commit_ms"]?.double { commit.append((e.t, c)) }
      let guest = e["guest"]?.string ?? "guest"
      if orders[guest] == nil, let from = e["from"]?.double { orders[guest] = [(0, from)] }
      if e["answer"]?.string == "0", let to = e["to"]?.double {
        orders[guest, default: []].append((e.t, to))
      }
    }
    let latency = SVGPlot(
      id: "resize-latency", title: "Resize latency", xLabel: "host seconds since the run started",
      yLabel: "ms",
      series: [
        .init(
          name: "prepare to ready", color: SVGPlot.palette[0], style: .scatter, points: prepare),
        .init(name: "commit", color: SVGPlot.palette[1], style: .scatter, points: commit),
      ], markers: markers)
    let order = SVGPlot(
      id: "hpt-order", title: "HPT order per guest", xLabel: "host seconds since the run started",
      yLabel: "order (log2 bytes)",
      series: orders.keys.sorted().enumerated().map { i, g in
        .init(
          name: g, color: SVGPlot.palette[(i + 2) % SVGPlot.palette.count], style: .step,
          points: orders[g]!)
      }, markers: markers, yFromZero: false)
    // Resizes per second, in up to 120 buckets over the run.
    let end = max(events.map(\.t).max() ?? 1, 0.001)
    let buckets = 120
    let width = max(end / Double(buckets), 0.01)
    var counts = [Int](repeating: 0, count: Int((end / width).rounded(.up)) + 1)
    for e in resizes { counts[min(Int(e.t / width), counts.count - 1)] += 1 }
    let rate = SVGPlot(
      id: "resize-rate", title: "Resize rate", xLabel: "host seconds since the run started",
      yLabel: "resizes/s",
      series: [
        .init(
          name: "resizes/s", color: SVGPlot.palette[2], style: .step,
          points: counts.enumerated().map { (Double($0) * width, Double($1) / width) })
      ], markers: markers)
    return [latency, order, rate] + hostRates(events, markers: markers)
  }

  /// The timeline's rates lines (every 10 s of host time): hypervisor faults and pages the
  /// guests verified per second, beside the resizes (which stay counted there after a long
  /// run's resize lines stop).
  static func hostRates(_ events: [TimelineEvent], markers: [SVGPlot.Marker]) -> [SVGPlot] {
    let rates = events.filter { $0.event == "rates" }
    guard !rates.isEmpty else { return [] }
    let series = [
      ("faults_per_s", "hypervisor faults/s"), ("pages_verified_per_s", "pages verified/s"),
      ("resizes_per_s", "resizes/s"),
    ].enumerated().map { i, k in
      SVGPlot.Series(
        name: k.1, color: SVGPlot.palette[(i + 3) % SVGPlot.palette.count], style: .step,
        points: rates.compactMap { e in e[k.0]?.double.map { (e.t, $0) } })
    }
    return [
      SVGPlot(
        id: "host-rates", title: "Fault, verification and resize rates",
        xLabel: "host seconds since the run started", yLabel: "per second", series: series,
        markers: markers)
    ]
  }

  // MARK: the history

  /// The store's report: nights per kernel (pass, bug, error), resize latency trends per host,
  /// the deduplicated crash table (new first) with report texts, and the runs.
  /// A night of `hpthammer nightly`: its matrix as it ended, shown first in its report.
  public struct Night: Sendable {
    public struct Row: Sendable {
      public var kernel, job, seed, verdict, note: String
      public var runID: String?
      public init(
        kernel: String, job: String, seed: String, verdict: String, note: String, runID: String?
      ) {
        (self.kernel, self.job, self.seed, self.verdict, self.note, self.runID) = (
          kernel, job, seed, verdict, note, runID
        )
      }
    }
    public var name: String
    public var dir: String
    public var exitCode: Int32
    public var rows: [Row]
    public init(name: String, dir: String, exitCode: Int32, rows: [Row]) {
      (self.name, self.dir, self.exitCode, self.rows) = (name, dir, exitCode, rows)
    }
  }

  static func nightTable(_ n: Night) -> String {
    var s =
      "<h2>This night: \(HTML.escape(n.name)) (exit \(n.exitCode))</h2>\n<p class=\"note\">\(n.rows.count) runs in <code>\(HTML.escape(n.dir))</code>; known: a crash the plan lists as known, which does not fail the night.</p>\n<table class=\"runs\"><thead><tr><th>kernel</th><th>job</th><th>seed</th><th>verdict</th><th>note</th><th>run</th></tr></thead><tbody>\n"
    for r in n.rows {
      s +=
        "<tr\(r.note.hasPrefix("NEW") ? " class=\"new\"" : "")><td>\(HTML.escape(r.kernel))</td><td>\(HTML.escape(r.job))</td><td>\(HTML.escape(r.seed))</td><td>\(badge(r.verdict))</td><td>\(HTML.escape(r.note))</td><td><code>\(HTML.escape(String((r.runID ?? "-").prefix(8))))</code></td></tr>\n"
    }
    return s + "</tbody></table>\n"
  }

  public static func history(
    _ store: ResultsStore, since: Double?, newWithin: Double = 86_400, maxRuns: Int = 500,
    known: Set<String> = [], night: Night? = nil
  ) throws(StoreError) -> String {
    let runs = try store.runs(ResultsStore.RunFilter(since: since))
    let groups = try CrashGroups.group(store, since: since, newWithin: newWithin, known: known)
    var body = "<h1>HPTHammer results</h1>\n"
    let verdicts = Dictionary(grouping: runs, by: \.verdict).mapValues(\.count)
    body +=
      "<p class=\"summary\">\(runs.count) runs\(since.map { " since " + HTML.escape(Format.time($0)) } ?? "") in \(HTML.escape(store.backend.location)): \(badge("pass")) \(verdicts["pass"] ?? 0) \(badge("bug")) \(verdicts["bug"] ?? 0) \(badge("error")) \(verdicts["error"] ?? 0); \(groups.count) crash signatures, \(groups.filter(\.isNew).count) new.</p>\n"
    if let night { body += nightTable(night) }
    if runs.isEmpty {
      body += "<p class=\"note\">No runs: `hpthammer results import DIR` adds some.</p>\n"
    }
    body += historyPlots(runs, groups: groups).map { "<figure>\($0.render())</figure>\n" }.joined()
    body += crashTable(groups)
    body += studyTable(try store.studies(ResultsStore.StudyFilter(since: since, limit: 100)))
    body += runTable(Array(runs.prefix(maxRuns)), total: runs.count)
    return page(title: "HPTHammer results", body: body)
  }

  static func historyPlots(_ runs: [RunRecord], groups: [CrashGroup]) -> [SVGPlot] {
    guard !runs.isEmpty else { return [] }
    var plots: [SVGPlot] = []
    let markers = groups.map { SVGPlot.Marker(x: $0.firstSeen, label: "first seen: " + $0.title) }
    // Nights: the UTC day a run started in.
    func night(_ t: Double) -> Double { (t / 86_400).rounded(.down) * 86_400 }
    let byKernel = Dictionary(grouping: runs, by: \.kernel)
    for (i, kernel) in byKernel.keys.sorted().enumerated() {
      let rs = byKernel[kernel]!
      let nights = Set(rs.map { night($0.startedAt) }).sorted()
      let series: [SVGPlot.Series] = [
        ("pass", "#2ca02c"), ("bug", "#d62728"), ("error", "#7f7f7f"),
      ]
      .map { v, color in
        let counts = Dictionary(grouping: rs.filter { $0.verdict == v }) { night($0.startedAt) }
        return .init(
          name: v, color: color, style: .linePoints,
          points: nights.map { ($0, Double(counts[$0]?.count ?? 0)) })
      }
      var p = SVGPlot(
        id: "nights-\(i)", title: "Runs per night: kernel \(kernel)", xLabel: "night (UTC)",
        yLabel: "runs", series: series)
      p.xIsTime = true
      plots.append(p)
    }
    // Latency per host per night: the median over the night's runs of each run's p50 and p99.
    let byHost = Dictionary(grouping: runs, by: \.host)
    func nightly(_ rs: [RunRecord], _ value: (RunRecord) -> Double?) -> [(x: Double, y: Double)] {
      let nights = Dictionary(grouping: rs) { night($0.startedAt) }
      return nights.keys.sorted().compactMap { n in
        let vs = nights[n]!.compactMap(value).sorted()
        return vs.isEmpty ? nil : (n + 43_200, vs[vs.count / 2])
      }
    }
    for (id, what, p50, p99) in [
      (
        "latency-trend", "prepare to ready", { (r: RunRecord) in r.prepareP50Ms },
        { (r: RunRecord) in r.prepareP99Ms }
      ),
      (
        "commit-trend", "commit", { (r: RunRecord) in r.commitP50Ms },
        { (r: RunRecord) in r.commitP99Ms }
      ),
    ] {
      var series: [SVGPlot.Series] = []
      for (i, host) in byHost.keys.sorted().enumerated() {
        let rs = byHost[host]!
        let color = SVGPlot.palette[i % SVGPlot.palette.count]
        series.append(
          .init(name: "\(host) p99", color: color, style: .linePoints, points: nightly(rs, p99)))
        series.append(
          .init(
            name: "\(host) p50", color: color, style: .linePoints, dashed: true,
            points: nightly(rs, p50)))
      }
      var p = SVGPlot(
        id: id, title: "Resize latency (\(what)) per host: p50 and p99, nightly median of runs",
        xLabel: "night (UTC)", yLabel: "ms", series: series, markers: markers,
        markerName: "a crash signature first seen")
      p.xIsTime = true
      plots.append(p)
    }
    return plots
  }

  static func crashTable(_ groups: [CrashGroup]) -> String {
    var s = "<h2>Crashes, deduplicated by signature (title + guilty frame)</h2>\n"
    guard !groups.isEmpty else { return s + "<p>None.</p>\n" }
    s +=
      "<table class=\"crashes\"><thead><tr><th></th><th>title</th><th>guilty frame</th><th>count</th><th>runs</th><th>first seen</th><th>last seen</th><th>kernels</th><th>hosts</th><th>shortest reproducer</th></tr></thead><tbody>\n"
    for (i, g) in groups.enumerated() {
      let r = g.reproducer
      let repro =
        "job \(r.job), seed \(r.seed), kernel \(r.kernel), backend \(r.backend)"
        + (r.secondsToCrash.map { String(format: " (%.3f s)", $0) } ?? "")
      s +=
        "<tr id=\"crash-\(i + 1)\"\(g.isNew ? " class=\"new\"" : "")><td>\(g.isNew ? "<span class=\"tag new\">new</span>" : g.known ? "<span class=\"tag\">known</span>" : "")</td><td>\(HTML.escape(g.title))</td><td><code>\(HTML.escape(g.frame ?? "-"))</code></td><td>\(g.count)</td><td>\(g.runs)</td><td>\(HTML.escape(Format.time(g.firstSeen)))</td><td>\(HTML.escape(Format.time(g.lastSeen)))</td><td>\(HTML.escape(g.kernels.joined(separator: ", ")))</td><td>\(HTML.escape(g.hosts.joined(separator: ", ")))</td><td>\(HTML.escape(repro))\(r.command.map { "<br><code>\(HTML.escape($0))</code>" } ?? "")</td></tr>\n"
      s +=
        "<tr class=\"report\"><td></td><td colspan=\"9\"><details><summary>report text</summary>\(reportText(g.report))</details></td></tr>\n"
    }
    return s + "</tbody></table>\n"
  }

  /// Bisections and verdicts (none: no section).
  static func studyTable(_ studies: [StudyRecord]) -> String {
    guard !studies.isEmpty else { return "" }
    var s =
      "<h2>Bisections and verdicts</h2>\n<table class=\"runs\"><thead><tr><th>started</th><th>kind</th><th>status</th><th>inputs</th><th>answer</th><th>confidence</th><th>runs</th><th>directory</th></tr></thead><tbody>\n"
    for r in studies {
      let inputs =
        r.kind == .bisection
        ? "\(r.good.map { String($0.prefix(12)) } ?? "?")..\(r.bad.map { String($0.prefix(12)) } ?? "?")"
        : "\(r.base ?? "?") vs \(r.patched ?? "?")"
      let answer = r.outcome ?? r.error.map { "error: \($0)" } ?? "-"
      s +=
        "<tr><td>\(HTML.escape(Format.time(r.startedAt)))</td><td>\(r.kind.rawValue)</td><td>\(HTML.escape(r.status))</td><td>\(HTML.escape(inputs))</td><td><code>\(HTML.escape(answer))</code></td><td>\(r.confidence.map { String(format: "%.4f", $0) } ?? "-")</td><td>\(r.runs.map(String.init) ?? "-")</td><td><code>\(HTML.escape(r.dir))</code></td></tr>\n"
    }
    return s + "</tbody></table>\n"
  }

  static func runTable(_ runs: [RunRecord], total: Int) -> String {
    var s = "<h2>Runs\(total > runs.count ? " (the newest \(runs.count) of \(total))" : "")</h2>\n"
    guard !runs.isEmpty else { return s + "<p>None.</p>\n" }
    s +=
      "<table class=\"runs\"><thead><tr><th>started</th><th>verdict</th><th>job</th><th>seed</th><th>kernel</th><th>host</th><th>backend</th><th>prepare p99 ms</th><th>first crash</th><th>run</th></tr></thead><tbody>\n"
    for r in runs {
      s +=
        "<tr><td>\(HTML.escape(Format.time(r.startedAt)))</td><td>\(badge(r.verdict))\(r.interrupted ? " interrupted" : "")</td><td>\(HTML.escape(r.job))</td><td>\(HTML.escape(r.seed))</td><td>\(HTML.escape(r.kernel))</td><td>\(HTML.escape(r.host))</td><td>\(HTML.escape(r.backend))</td><td>\(Format.ms(r.prepareP99Ms))</td><td>\(HTML.escape(r.bugs.first?.title ?? r.error ?? ""))</td><td><code>\(HTML.escape(String(r.runID.prefix(8))))</code></td></tr>\n"
    }
    return s + "</tbody></table>\n"
  }

  // MARK: the page

  static func reportText(_ text: String?) -> String {
    guard let text, !text.isEmpty else { return "<p class=\"note\">(no report text)</p>" }
    return "<pre class=\"log\">\(HTML.escape(text))</pre>"
  }

  static func badge(_ verdict: String) -> String {
    let v = HTML.escape(verdict)
    return
      "<span class=\"verdict \(["pass", "bug", "error", "known"].contains(verdict) ? v : "other")\">\(v)</span>"
  }

  static let style = """
    body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1400px}
    h1{font-size:22px}h2{font-size:18px;margin-top:28px}h3{font-size:15px}
    table{border-collapse:collapse;margin:8px 0}th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
    table.facts th{color:#555;font-weight:normal}
    tr.new td{background:#fff4f4}
    .verdict{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-weight:bold}
    .verdict.pass{background:#2ca02c}.verdict.bug{background:#d62728}.verdict.error,.verdict.other{background:#7f7f7f}.verdict.known{background:#e6a100}
    .tag{display:inline-block;padding:0 5px;border-radius:3px;background:#eee;font-size:12px}.tag.new{background:#d62728;color:#fff}
    pre.log{background:#f6f6f6;border:1px solid #ddd;padding:8px;overflow-x:auto;max-height:480px;font-size:12px}
    figure{margin:12px 0}svg.plot text{font-size:11px;fill:#333}svg.plot .pt{font-size:13px;font-weight:bold}
    .note{color:#666}code{font-size:12px}
    """

  static func page(title: String, body: String) -> String {
    """
    <!DOCTYPE html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
    <title>\(HTML.escape(title))</title>
    <style>
    \(style)
    </style>
    </head>
    <body>
    \(body)<footer class="note">Written by hpthammer report at \(HTML.escape(Format.time(Date().timeIntervalSince1970))).</footer>
    </body>
    </html>

    """
  }
}
