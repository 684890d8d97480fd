import Foundation

/// The results history: runs, their crashes, and the crash signatures seen so far, in SQLite
/// (one controller) or PostgreSQL (a fleet), the same schema and the same statements.
public final class ResultsStore: Sendable {
  public let backend: any SQLBackend

  public init(backend: any SQLBackend) { self.backend = backend }

  /// `--db`: a postgres:// URL, a file path, or nil for $HPTHAMMER_DB, else
  /// $XDG_DATA_HOME/hpthammer/results.sqlite (~/.local/share when XDG_DATA_HOME is unset).
  public static func open(_ spec: String?) throws(StoreError) -> ResultsStore {
    let s = spec ?? defaultLocation()
    if isOff(s) {
      throw .usage(
        "the results database is off (HPTHAMMER_DB=\(s)); give --db PATH, or unset HPTHAMMER_DB")
    }
    if s.hasPrefix("postgres://") || s.hasPrefix("postgresql://") {
      return ResultsStore(backend: try PostgresBackend(url: s))
    }
    guard !s.contains("://") else {
      throw .usage("--db \(s): give a file path or a postgres:// URL")
    }
    return ResultsStore(backend: try SQLiteBackend(path: s))
  }

  /// `HPTHAMMER_DB=off` (or `--db off`): runs record nothing (CI jobs, tests).
  public static func isOff(_ spec: String) -> Bool {
    ["off", "none", "no", "0", "false"].contains(spec.lowercased())
  }

  /// Whether a run should record itself: not when --db is absent and HPTHAMMER_DB is off.
  public static func recordingIsOff(_ spec: String?) -> Bool { isOff(spec ?? defaultLocation()) }

  public static func defaultLocation() -> String {
    let env = ProcessInfo.processInfo.environment
    if let db = env["HPTHAMMER_DB"], !db.isEmpty { return db }
    let data =
      env["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
      ?? (env["HOME"] ?? NSHomeDirectory()) + "/.local/share"
    return data + "/hpthammer/results.sqlite"
  }

  public enum Outcome: Sendable, Equatable {
    /// Stored now; `newSignatures`: the crash signatures this store had never seen.
    case stored(newSignatures: [String])
    /// The store holds this run already (a second import changes nothing).
    case alreadyStored
  }

  public func record(runDir: String) throws(StoreError) -> Outcome {
    try record(RunRecord.load(dir: runDir))
  }

  /// Stores a run once: a run stored complete is never touched again; an interrupted one is
  /// replaced by its complete record. Safe with any number of writers at once (the run's
  /// id is the primary key; ON CONFLICT makes the loser a no-op).
  public func record(_ r: RunRecord) throws(StoreError) -> Outcome {
    do {
      return try backend.transaction { c in
        let old = try c.query("SELECT complete FROM runs WHERE run_id = ?", [.text(r.runID)])
        if let o = old.first {
          if o["complete"]?.int == 1 || !r.complete { return .alreadyStored }
          try c.execute("DELETE FROM crashes WHERE run_id = ?", [.text(r.runID)])
          try c.execute("DELETE FROM runs WHERE run_id = ?", [.text(r.runID)])
        }
        let cols = Schema.runColumns
        let inserted = try c.query(
          "INSERT INTO runs (\(cols.joined(separator: ", "))) VALUES (\(placeholders(cols.count))) ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
          r.values(importedAt: Date().timeIntervalSince1970))
        guard !inserted.isEmpty else { return .alreadyStored }
        for (i, k) in r.crashes.enumerated() {
          try c.execute(
            "INSERT INTO crashes (run_id, idx, signature, title, frame, type, source, expected, t_s, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, idx) DO NOTHING",
            [
              .text(r.runID), .int(Int64(i)), .text(k.signature), .text(k.title), SQLValue(k.frame),
              SQLValue(k.type), SQLValue(k.source), SQLValue(k.expected), SQLValue(k.tS),
              SQLValue(k.report),
            ])
        }
        // The first run to bring a signature here makes it new. Signatures are taken in one
        // order by every writer, so two imports at once never wait on each other in a cycle.
        var new: [String] = []
        var firsts: [String: RunRecord.Crash] = [:]
        for k in r.bugs where firsts[k.signature] == nil { firsts[k.signature] = k }
        for sig in firsts.keys.sorted() {
          let k = firsts[sig]!
          let first = try c.query(
            "INSERT INTO signatures (signature, title, frame, first_run_id, recorded_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (signature) DO NOTHING RETURNING signature",
            [
              .text(sig), .text(k.title), SQLValue(k.frame), .text(r.runID),
              .double(Date().timeIntervalSince1970),
            ])
          if !first.isEmpty { new.append(sig) }
        }
        return .stored(newSignatures: new)
      }
    } catch let e as StoreError {
      throw e
    } catch {
      throw .failed("\(backend.location): \(error)")
    }
  }

  // MARK: reading

  public struct RunFilter: Sendable {
    public var kernel: String?
    public var host: String?
    public var job: String?
    public var verdict: String?
    /// Unix seconds: runs started at or after.
    public var since: Double?
    public var limit: Int?
    public init(
      kernel: String? = nil, host: String? = nil, job: String? = nil, verdict: String? = nil,
      since: Double? = nil, limit: Int? = nil
    ) {
      (self.kernel, self.host, self.job, self.verdict, self.since, self.limit) =
        (kernel, host, job, verdict, since, limit)
    }
  }

  /// Runs, newest first, without their run.json text.
  public func runs(_ f: RunFilter = RunFilter()) throws(StoreError) -> [RunRecord] {
    var clauses: [String] = []
    var args: [SQLValue] = []
    if let k = f.kernel {
      clauses.append("(kernel = ? OR kernel_release = ?)")
      args += [.text(k), .text(k)]
    }
    for (col, v) in [("host", f.host), ("job", f.job), ("verdict", f.verdict)] {
      if let v {
        clauses.append("\(col) = ?")
        args.append(.text(v))
      }
    }
    if let s = f.since {
      clauses.append("started_at >= ?")
      args.append(.double(s))
    }
    let cols = Schema.runColumns.filter { $0 != "run_json" }.joined(separator: ", ")
    var sql = "SELECT \(cols) FROM runs"
    if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
    sql += " ORDER BY started_at DESC, run_id"
    if let l = f.limit { sql += " LIMIT \(max(0, l))" }
    return try read { c in
      var runs = try c.query(sql, args).map(RunRecord.init(row:))
      // Their crashes (titles and frames; the report texts are for `run`), in one query.
      let index = Dictionary(
        runs.enumerated().map { ($1.runID, $0) }, uniquingKeysWith: { a, _ in a })
      for chunk in stride(from: 0, to: runs.count, by: 500) {
        let ids = runs[chunk..<min(chunk + 500, runs.count)].map { SQLValue.text($0.runID) }
        let rows = try c.query(
          "SELECT run_id, idx, signature, title, frame, type, source, expected, t_s FROM crashes WHERE run_id IN (\(placeholders(ids.count))) ORDER BY run_id, idx",
          ids)
        for row in rows {
          guard let id = row["run_id"]?.string, let i = index[id] else { continue }
          runs[i].crashes.append(RunRecord.Crash(row: row))
        }
      }
      return runs
    }
  }

  /// One run with its crashes (and their reports): by id, a unique id prefix, or the
  /// directory it was imported from.
  public func run(_ key: String) throws(StoreError) -> RunRecord {
    let rows = try read { c in
      try c.query(
        "SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ? OR source_dir = ? ORDER BY started_at DESC LIMIT 3",
        [
          .text(key), .text(key.replacingOccurrences(of: "%", with: "") + "%"),
          .text(URL(fileURLWithPath: key).standardizedFileURL.path),
        ])
    }
    let exact = rows.filter { $0["run_id"]?.string == key }
    guard let row = exact.first ?? (rows.count == 1 ? rows.first : nil) else {
      throw .usage(
        rows.isEmpty
          ? "no run '\(key)' in \(backend.location); `hpthammer results` lists them"
          : "'\(key)' names \(rows.count) runs; give more of the id")
    }
    var r = RunRecord(row: row)
    r.crashes = try read { c in
      try c.query("SELECT * FROM crashes WHERE run_id = ? ORDER BY idx", [.text(r.runID)])
    }.map(RunRecord.Crash.init(row:))
    return r
  }

  /// Every crash of the runs matching `f` (with the run's fields it was seen in).
  func crashRows(since: Double?, unexpectedOnly: Bool) throws(StoreError) -> [SQLRow] {
    var sql = """
      SELECT c.signature, c.title, c.frame, c.type, c.expected, c.t_s, c.report, r.run_id,
        r.started_at, r.kernel, r.host, r.job, r.seed, r.backend, r.reproduce,
        r.time_to_crash_s, r.elapsed_s
      FROM crashes c JOIN runs r ON r.run_id = c.run_id
      """
    var args: [SQLValue] = []
    var clauses: [String] = []
    if unexpectedOnly { clauses.append("c.expected = 0") }
    if let since {
      clauses.append("r.started_at >= ?")
      args.append(.double(since))
    }
    if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
    sql += " ORDER BY r.started_at, c.run_id, c.idx"
    return try read { c in try c.query(sql, args) }
  }

  /// The crash signatures this store first saw in `runID` (new when that run was stored).
  public func signaturesFirstSeen(in runID: String) throws(StoreError) -> [String] {
    try read { c in
      try c.query(
        "SELECT signature FROM signatures WHERE first_run_id = ? ORDER BY signature",
        [.text(runID)])
    }.compactMap { $0["signature"]?.string }
  }

  public func count() throws(StoreError) -> (runs: Int, crashes: Int, signatures: Int) {
    try read { c in
      let n = { (t: String) in try c.query("SELECT COUNT(*) AS n FROM \(t)").first?["n"]?.int ?? 0 }
      return (Int(try n("runs")), Int(try n("crashes")), Int(try n("signatures")))
    }
  }

  func read<T>(_ body: (any SQLConnection) throws -> T) throws(StoreError) -> T {
    do {
      return try backend.transaction(body)
    } catch let e as StoreError {
      throw e
    } catch {
      throw .failed("\(backend.location): \(error)")
    }
  }

  func placeholders(_ n: Int) -> String {
    Array(repeating: "?", count: n).joined(separator: ", ")
  }
}
