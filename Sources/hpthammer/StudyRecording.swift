import ArgumentParser
import Foundation
import HPTResults

/// `--db` and `--no-db` of a bisection or a verdict: the store `hpthammer run` records in.
struct StudyStoreOptions: ParsableArguments {
  @Option(
    help:
      "Record it (and the runs it makes) in this results database (see `hpthammer results --help`)."
  )
  var db: String?

  @Flag(name: .customLong("no-db"), help: "Record nothing in the results database.")
  var noDB = false

  /// The runs a study starts (`hpthammer run` as a child, directly or through a TEST script)
  /// record in the same store: HPTHAMMER_DB says which to them (a file path made absolute,
  /// for a TEST runs in the repository), or off.
  func exportToChildren() {
    if noDB {
      setenv("HPTHAMMER_DB", "off", 1)
    } else if var d = db {
      if !d.contains("://") && !ResultsStore.isOff(d) && !d.hasPrefix("/") {
        d = FileManager.default.currentDirectoryPath + "/" + d
      }
      setenv("HPTHAMMER_DB", d, 1)
    }
  }

  func recorder(_ record: StudyRecord) -> StudyRecorder? {
    guard !noDB, !ResultsStore.recordingIsOff(db) else { return nil }
    return StudyRecorder(db: db, record: record)
  }
}

/// Records a bisection or a verdict as it starts and at its end. A store that cannot be used
/// never stops the study: the start is tried quietly, the end says why it failed.
final class StudyRecorder: @unchecked Sendable {
  let db: String?
  var record: StudyRecord

  init(db: String?, record: StudyRecord) {
    self.db = db
    self.record = record
  }

  func begin(resumed: Bool = false) {
    _ = write { try $0.begin(record, resumed: resumed) }
  }

  /// The end: `result` is the JSON object --json prints.
  func end(
    outcome: String?, confidence: Double?, runs: Int?, exit: Int32, error: String? = nil,
    result: [String: Any]?, runDirs: [String]
  ) {
    record.outcome = outcome
    record.confidence = confidence
    record.runs = runs
    record.exitCode = Int(exit)
    record.error = error
    record.result = result.flatMap {
      try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys])
    }.map { String(decoding: $0, as: UTF8.self) }
    record.runDirs = runDirs.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    if let why = write({ try $0.end(record) }) {
      FileHandle.standardError.write(
        Data(
          "hpthammer: warning: the \(record.kind.rawValue) was not recorded in the results database: \(why)\n"
            .utf8))
    } else {
      FileHandle.standardError.write(
        Data("hpthammer: \(record.kind.rawValue) recorded in \(location)\n".utf8))
    }
  }

  private var location = ""

  /// nil when written; else why not.
  private func write(_ body: (ResultsStore) throws -> Void) -> String? {
    do {
      let store = try ResultsStore.open(db)
      defer { store.backend.close() }
      location = store.backend.location
      try body(store)
      return nil
    } catch {
      return "\(error)"
    }
  }

  /// This process's command line, each word quoted where a shell needs it.
  static var commandLine: String {
    (["hpthammer"] + CommandLine.arguments.dropFirst()).map(shellQuoted).joined(separator: " ")
  }

  static func json(_ obj: [String: Any]) -> String {
    (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])).map {
      String(decoding: $0, as: UTF8.self)
    } ?? "{}"
  }

  /// The run directories under DIR/runs (a kernel bisection's), oldest name first.
  static func runDirs(under dir: String) -> [String] {
    let runs = dir + "/runs"
    let names = (try? FileManager.default.contentsOfDirectory(atPath: runs)) ?? []
    return names.sorted().map { runs + "/" + $0 }.filter {
      FileManager.default.fileExists(atPath: $0 + "/run.json")
    }
  }
}

extension BisectStart {
  /// A bisection's row: its inputs from the journal's first line (so a resume records the
  /// same ones), the job and target of a kernel bisection from its TEST's settings.
  func studyRecord(dir: String) -> StudyRecord {
    let setting = { (name: String) in
      test.first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
    }
    var args: [String: Any] = [
      "repo": repo, "good": good, "bad": bad, "test": test, "confidence": confidence,
      "max_runs": maxRuns, "build_cost": buildCost, "run_cost": runCost,
      "commits": commits.count,
    ]
    if let build { args["build"] = build }
    if let job = setting("HPTHAMMER_BISECT_JOB") {
      args["job"] = job
      args["target"] = setting("HPTHAMMER_BISECT_TARGET")
      args["match"] = setting("HPTHAMMER_BISECT_MATCH")
      args["duration"] = setting("HPTHAMMER_BISECT_DURATION")
    }
    var r = StudyRecord(
      kind: .bisection, dir: dir, command: StudyRecorder.commandLine,
      arguments: StudyRecorder.json(args))
    r.repo = repo
    r.good = good
    r.bad = bad
    r.job = setting("HPTHAMMER_BISECT_JOB")
    r.confidenceAsked = confidence
    return r
  }
}
