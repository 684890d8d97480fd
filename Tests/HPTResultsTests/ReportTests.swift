import Foundation
import HPTResults
import Testing

/// `hpthammer report`: one self-contained HTML file, its plots, and a hostile log kept as text.
@Suite struct ReportTests {
  typealias F = Fixtures

  static let hostileLines = [
    "<script>alert('pwned')</script>",
    "</pre><img src=x onerror=alert(1)><pre>",
    "& \"quoted\" <!-- comment -->",
  ]

  /// A real bug run whose kernel log and crash title carry markup.
  static func hostileRun() throws -> String {
    let dir = try F.variant(of: try F.run(seed: 2))
    let crash = dir + "/crash-1.txt"
    var text = try String(contentsOfFile: crash, encoding: .utf8)
    text += "\n" + hostileLines.joined(separator: "\n") + "\n"
    try text.write(toFile: crash, atomically: true, encoding: .utf8)
    let path = dir + "/run.json"
    var j = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        as? [String: Any])
    var crashes = try #require(j["crashes"] as? [[String: Any]])
    crashes[0]["title"] = "BUG: <script>document.title='x'</script> in kvm"
    crashes[0]["frame"] = "<b>frame</b>"
    j["crashes"] = crashes
    j["job"] = "<i>job</i>"
    try JSONSerialization.data(withJSONObject: j).write(to: URL(fileURLWithPath: path))
    return dir
  }

  /// The markup the page itself may hold: its own tags only (text never holds a raw `<`), no
  /// script, no event handler, nothing loaded from anywhere.
  static func expectInert(_ html: String) {
    let allowed: Set<String> = [
      "!doctype", "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "table",
      "thead", "tbody", "tr", "th", "td", "span", "code", "pre", "section", "figure", "details",
      "summary", "footer", "br", "svg", "rect", "text", "line", "g", "polyline", "circle",
    ]
    var tags = 0
    for chunk in html.split(separator: "<", omittingEmptySubsequences: true).dropFirst(0) {
      guard let end = chunk.firstIndex(of: ">") else {
        Issue.record("a '<' that opens no tag: \(chunk.prefix(80))")
        continue
      }
      let tag = chunk[..<end].lowercased()
      let name = String(
        tag.drop { $0 == "/" }.prefix { !$0.isWhitespace && $0 != "/" })
      tags += 1
      #expect(allowed.contains(name), "tag <\(tag)>")
      let attributes = tag.split(separator: " ").dropFirst().map { String($0) }
      #expect(
        !attributes.contains {
          $0.hasPrefix("on") || $0.hasPrefix("src=") || $0.hasPrefix("href=")
        },
        "tag <\(tag)>")
    }
    #expect(tags > 50)
    #expect(!html.lowercased().contains("https://"))
  }

  /// The plots by id, each with something drawn in it.
  static func plots(_ html: String) -> [String: Bool] {
    var out: [String: Bool] = [:]
    for chunk in html.components(separatedBy: "<svg id=\"").dropFirst() {
      let id = String(chunk.prefix { $0 != "\"" })
      let svg = chunk.components(separatedBy: "</svg>")[0]
      out[id] = svg.contains("class=\"series\"") || svg.contains("class=\"points\"")
    }
    return out
  }

  @Test func aRunsReportHasItsPlotsAndEscapesItsLog() throws {
    let dir = try Self.hostileRun()
    let (rc, html, err) = try F.hpthammer(["report", dir, "--out", "-"])
    #expect(rc == 0, "\(err)")
    Self.expectInert(html)
    #expect(html.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"))
    #expect(html.contains("&lt;/pre&gt;&lt;img src=x onerror=alert(1)&gt;&lt;pre&gt;"))
    #expect(html.contains("&amp; &quot;quoted&quot; &lt;!-- comment --&gt;"))
    #expect(html.contains("BUG: &lt;script&gt;document.title=&#39;x&#39;&lt;/script&gt; in kvm"))
    #expect(html.contains("&lt;b&gt;frame&lt;/b&gt;"))
    #expect(Self.plots(html) == ["resize-latency": true, "hpt-order": true, "resize-rate": true])
    // The crash marker on the time axis, at the timeline's crash time.
    #expect(html.contains("class=\"crash\""))
    // Without --out, next to the run.
    let (rc2, _, _) = try F.hpthammer(["report", dir])
    #expect(rc2 == 0)
    #expect(try String(contentsOfFile: dir + "/report.html", encoding: .utf8).contains("hpt-order"))
    // Not a run directory: usage error, named.
    let empty = F.scratch("notrun")
    let (rc3, out3, err3) = try F.hpthammer(["report", empty, "--out", "-"])
    #expect(rc3 == 2 && out3.isEmpty && err3.contains(empty), "\(err3)")
  }

  /// A run longer than 10 s of host time writes rates lines (faults, pages verified and resizes
  /// per second) as it goes, and its report plots them.
  @Test func aLongerRunsTimelineHasRatesAndItsReportPlotsThem() throws {
    let dir = F.scratch("rates")
    let job = F.repo.appendingPathComponent("Jobs/dry-run-fixed.yaml").path
    let (rc, out, err) = try F.hpthammer([
      "run", job, "--duration", "25s", "--out", dir, "--no-progress", "--no-db",
    ])
    #expect(rc == 0, "\(out) \(err)")
    let rates = Timeline.read(URL(fileURLWithPath: dir)).filter { $0.event == "rates" }
    #expect(!rates.isEmpty)
    for r in rates {
      #expect((r["faults_per_s"]?.double ?? 0) > 0)
      #expect((r["pages_verified_per_s"]?.double ?? 0) > 0)
      #expect((r["resizes_per_s"]?.double ?? 0) > 0)
    }
    let (rc2, html, err2) = try F.hpthammer(["report", dir, "--out", "-"])
    #expect(rc2 == 0, "\(err2)")
    #expect(Self.plots(html)["host-rates"] == true)
    // On the simulator the rates are sampled on its clock, not the wall's: the same seed writes
    // the same timeline (the start line's PID and the end line's wall times aside).
    let again = F.scratch("rates-again")
    let (rc4, _, _) = try F.hpthammer([
      "run", job, "--duration", "25s", "--out", again, "--no-progress", "--no-db",
    ])
    #expect(rc4 == 0)
    let lines = { (d: String) -> [Substring] in
      let text = (try? String(contentsOfFile: d + "/timeline.jsonl", encoding: .utf8)) ?? ""
      return text.split(separator: "\n").filter {
        !$0.contains("\"event\":\"start\"") && !$0.contains("\"event\":\"end\"")
      }
    }
    #expect(lines(dir).count > rates.count)
    #expect(lines(dir) == lines(again))
  }

  @Test func theHistoryReportHasNightsTrendsAndTheCrashTableNewFirst() throws {
    let db = F.scratch("reportdb") + "/results.sqlite"
    let old = try F.variant(
      of: try F.run(seed: 1), startedAt: Date().addingTimeInterval(-5 * 86_400), host: "p9-b")
    let pass = try F.run(seed: 1, kernel: "6.1")
    let hostile = try Self.hostileRun()
    #expect(try F.hpthammer(["results", "import", old, pass, hostile, "--db", db]).0 == 0)
    let out = F.scratch("report") + "/report.html"
    let (rc, _, err) = try F.hpthammer(["report", "--since", "30d", "--out", out, "--db", db])
    #expect(rc == 0, "\(err)")
    let html = try String(contentsOfFile: out, encoding: .utf8)
    Self.expectInert(html)
    #expect(html.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"))
    let plots = Self.plots(html)
    #expect(
      plots == [
        "nights-0": true, "nights-1": true, "latency-trend": true, "commit-trend": true,
      ], "\(plots)")
    // The hostile signature is tonight's: new, and before the old one.
    let table = try #require(html.components(separatedBy: "<h2>Crashes").last)
    let newRow = try #require(table.range(of: "<tr id=\"crash-1\" class=\"new\">"))
    let hostileTitle = try #require(table.range(of: "BUG: &lt;script&gt;document.title"))
    let oldTitle = try #require(
      table.range(of: "BUG: unable to handle kernel paging request in kvmppc_add_revmap_chain"))
    #expect(newRow.lowerBound < hostileTitle.lowerBound)
    #expect(hostileTitle.lowerBound < oldTitle.lowerBound)
    #expect(table.contains("<tr id=\"crash-2\">"))
  }

  /// The history report in a real browser (Debian's chromium, headless): it renders with no
  /// console message, every plot is drawn, and a screenshot is kept for review.
  @Test(
    .enabled(
      if: FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"),
      "no /usr/bin/chromium"))
  func theReportRendersInChromium() throws {
    let db = F.scratch("chromedb") + "/results.sqlite"
    let dirs = try [
      F.run(seed: 1), F.run(seed: 2), F.run(seed: 1, kernel: "6.1"), Self.hostileRun(),
    ]
    #expect(try F.hpthammer(["results", "import"] + dirs + ["--db", db]).0 == 0)
    let dir = F.scratch("chrome")
    let html = dir + "/report.html"
    #expect(try F.hpthammer(["report", "--out", html, "--db", db]).0 == 0)
    let runHTML = dir + "/run.html"
    #expect(try F.hpthammer(["report", dirs[3], "--out", runHTML]).0 == 0)
    // A run longer than 10 s of host time: its rates lines make a fourth plot.
    let long = F.scratch("chrome-long")
    let fixed = F.repo.appendingPathComponent("Jobs/dry-run-fixed.yaml").path
    #expect(
      try F.hpthammer([
        "run", fixed, "--duration", "25s", "--out", long, "--no-progress", "--no-db",
      ]).0 == 0)
    let longHTML = dir + "/long.html"
    #expect(try F.hpthammer(["report", long, "--out", longHTML]).0 == 0)
    for (page, plotCount) in [(html, 4), (runHTML, 3), (longHTML, 4)] {
      let (rc, dom, log) = try Self.chromium(["--dump-dom", "file://" + page], in: dir)
      #expect(rc == 0, "\(log)")
      #expect(!log.contains("CONSOLE"), "\(log)")
      #expect(!dom.lowercased().contains("<script"))
      let drawn = Self.plots(dom)
      #expect(drawn.count == plotCount && drawn.values.allSatisfy { $0 }, "\(drawn)")
      let png = page + ".png"
      let (src, _, slog) = try Self.chromium(
        ["--screenshot=" + png, "--window-size=1300,1800", "file://" + page], in: dir)
      #expect(src == 0, "\(slog)")
      let size = (try? FileManager.default.attributesOfItem(atPath: png)[.size] as? Int) ?? 0
      #expect(size > 20_000, "\(png): \(size) bytes")
      print("report screenshot: \(png)")
    }
  }

  static func chromium(_ args: [String], in dir: String) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/chromium")
    p.arguments =
      [
        "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        "--enable-logging=stderr", "--v=0", "--user-data-dir=" + dir + "/chrome-profile",
      ] + args
    p.currentDirectoryURL = URL(fileURLWithPath: dir)
    return try Fixtures.capture(p)
  }
}
