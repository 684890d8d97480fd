import ArgumentParser
import Foundation
import HPTResults

struct Report: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "report",
    abstract: "One self-contained HTML report: the results history, or one run directory.",
    discussion: """
      `hpthammer report [--since 30d] [--out FILE]`: runs per night per kernel (pass, bug,
      error), resize latency trends per host, the deduplicated crash table (new first) with
      each report's text, and the runs. `hpthammer report RUN_DIR`: one run's resize latency,
      HPT order per guest and resize rate over time, with its crashes on the same axis.
      The file holds no script and loads nothing: inline CSS and SVG only, every log text
      escaped.
      """)
  @OptionGroup var store: StoreOptions
  @Argument(help: "A run directory: report on that run alone (the store is not opened).")
  var runDir: String?
  @Option(help: "The history since: 30d, 12h, 2w, or a date (2026-11-01).") var since = "30d"
  @Option(help: "New: a crash signature first seen within this long of the newest run.")
  var newWithin = "1d"
  @Option(
    help:
      "Write the report here (- for standard output). Default: RUN_DIR/report.html, or hpthammer-report.html."
  )
  var out: String?

  func run() throws {
    let html: String
    let path: String
    if let runDir {
      do {
        html = try HTMLReport.run(dir: runDir)
      } catch {
        throw storeExit(error)
      }
      path = out ?? runDir + "/report.html"
    } else {
      guard let window = Format.age(newWithin) else {
        throw usageError("--new-within: '\(newWithin)' is not an age (1d, 12h)")
      }
      let sinceT = try parseSince(since)
      let s = try store.open()
      defer { s.backend.close() }
      do {
        html = try HTMLReport.history(s, since: sinceT, newWithin: window)
      } catch {
        throw storeExit(error)
      }
      path = out ?? "hpthammer-report.html"
    }
    if path == "-" {
      print(html, terminator: "")
      return
    }
    try emit(html, to: path)
    FileHandle.standardError.write(
      Data("hpthammer: report written to \(path) (\(html.utf8.count / 1024) KiB)\n".utf8))
  }
}
