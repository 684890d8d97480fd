import Foundation

/// A bisection or a verdict in the results history: recorded as it starts (running) and
/// again at its end (its result). Keyed by kind and directory: `bisect resume DIR` updates
/// the row `bisect run --dir DIR` made. A row left running by a process that is gone (same
/// host, its pid no longer that process) reads as interrupted.
public struct StudyRecord: Sendable, Equatable {
  public enum Kind: String, Sendable, CaseIterable { case bisection, verdict }

  public var kind: Kind
  /// The study's directory, absolute.
  public var dir: String
  public var startedAt: Double
  public var updatedAt: Double
  public var endedAt: Double?
  /// running, ended, or (read only) interrupted.
  public var status: String
  public var host: String
  public var pid: Int?
  public var pidStart: String?
  /// How many times it was resumed.
  public var resumes: Int = 0
  /// The command line that started it (the last one, for a resumed bisection).
  public var command: String
  public var repo: String?
  public var good: String?
  public var bad: String?
  public var job: String?
  public var base: String?
  public var patched: String?
  public var confidenceAsked: Double?
  /// Every argument, as a JSON object's text.
  public var arguments: String
  /// The answer: a bisection's culprit commit, a verdict's fixes / does-not-fix / ...
  public var outcome: String?
  public var confidence: Double?
  /// Test runs made.
  public var runs: Int?
  public var exitCode: Int?
  public var error: String?
  /// The whole result, as a JSON object's text (what `--json` printed).
  public var result: String?
  /// The run directories that belong to it, where known.
  public var runDirs: [String] = []

  public var id: String { Self.id(kind: kind, dir: dir) }
  public static func id(kind: Kind, dir: String) -> String { "\(kind.rawValue):\(dir)" }

  public init(
    kind: Kind, dir: String, command: String, arguments: String, startedAt: Date = Date()
  ) {
    self.kind = kind
    self.dir = URL(fileURLWithPath: dir).standardizedFileURL.path
    self.startedAt = startedAt.timeIntervalSince1970
    self.updatedAt = self.startedAt
    self.status = "running"
    self.host = ProcessInfo.processInfo.hostName
    self.pid = Int(getpid())
    self.pidStart = Self.processStart(getpid())
    self.command = command
    self.arguments = arguments
  }

  /// Field 22 of /proc/PID/stat (clock ticks after boot): a pid and this name one process,
  /// so a pid reused by another process does not keep a dead study running.
  public static func processStart(_ pid: pid_t) -> String? {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = s.lastIndex(of: ")")
    else { return nil }
    let fields = s[s.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, so the start time (22) is the 20th here.
    return fields.count > 19 ? String(fields[19]) : nil
  }

  /// Whether the process that wrote a running row is still there (on another host: assumed).
  public var processAlive: Bool {
    guard host == ProcessInfo.processInfo.hostName else { return true }
    guard let pid, pid > 0 else { return false }
    return Self.processStart(pid_t(pid)) == pidStart
  }
}

extension StudyRecord {
  /// The row as a JSON object (arguments and result as the objects they hold; times in Unix
  /// seconds, as runs' are), for --json.
  public var jsonObject: [String: Any] {
    let time = { (t: Double?) -> Any in t ?? NSNull() }
    let parsed = { (t: String?) -> Any in
      t.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } ?? t ?? NSNull()
    }
    let orNull = { (v: Any?) -> Any in v ?? NSNull() }
    return [
      "id": id, "kind": kind.rawValue, "dir": dir, "status": status,
      "started_at": time(startedAt), "updated_at": time(updatedAt), "ended_at": time(endedAt),
      "host": host, "pid": orNull(pid), "resumes": resumes, "command": command,
      "repo": orNull(repo), "good": orNull(good), "bad": orNull(bad), "job": orNull(job),
      "base": orNull(base), "patched": orNull(patched),
      "confidence_asked": orNull(confidenceAsked), "arguments": parsed(arguments),
      "outcome": orNull(outcome), "confidence": orNull(confidence), "runs": orNull(runs),
      "exit_code": orNull(exitCode), "error": orNull(error), "result": parsed(result),
      "run_dirs": runDirs,
    ]
  }

  /// Studies as one JSON document (an array), keys sorted.
  public static func json(_ studies: [StudyRecord]) -> String {
    let data = try? JSONSerialization.data(
      withJSONObject: studies.map(\.jsonObject),
      options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    return data.map { String(decoding: $0, as: UTF8.self) } ?? "[]"
  }
}

extension ResultsStore {
  static let studyColumns = [
    "study_id", "kind", "dir", "started_at", "updated_at", "ended_at", "status", "host", "pid",
    "pid_start", "resumes", "command", "repo", "good", "bad", "job", "base", "patched",
    "confidence_asked", "arguments", "outcome", "confidence", "runs", "exit_code", "error",
    "result", "run_dirs",
  ]

  func values(_ s: StudyRecord) -> [SQLValue] {
    let dirs =
      (try? JSONSerialization.data(withJSONObject: s.runDirs)).map {
        String(decoding: $0, as: UTF8.self)
      } ?? "[]"
    return [
      .text(s.id), .text(s.kind.rawValue), .text(s.dir), .double(s.startedAt),
      .double(s.updatedAt), SQLValue(s.endedAt), .text(s.status), .text(s.host), SQLValue(s.pid),
      SQLValue(s.pidStart), .int(Int64(s.resumes)), .text(s.command), SQLValue(s.repo),
      SQLValue(s.good), SQLValue(s.bad), SQLValue(s.job), SQLValue(s.base), SQLValue(s.patched),
      SQLValue(s.confidenceAsked), .text(s.arguments), SQLValue(s.outcome),
      SQLValue(s.confidence), SQLValue(s.runs), SQLValue(s.exitCode), SQLValue(s.error),
      SQLValue(s.result), .text(dirs),
    ]
  }

  /// A study starts (or, with `resumed`, goes on): its row says running, by this process.
  /// A resumed study keeps its row's start and counts the resume; a new one with the same
  /// directory (a verdict run again into it) replaces the row.
  public func begin(_ s: StudyRecord, resumed: Bool = false) throws(StoreError) {
    let cols = Self.studyColumns
    let update =
      resumed
      ? "status = 'running', updated_at = excluded.updated_at, ended_at = NULL, host = excluded.host, pid = excluded.pid, pid_start = excluded.pid_start, resumes = studies.resumes + 1, command = excluded.command, exit_code = NULL, error = NULL"
      : cols.dropFirst().map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
    try write { c in
      try c.execute(
        "INSERT INTO studies (\(cols.joined(separator: ", "))) VALUES (\(placeholders(cols.count))) ON CONFLICT (study_id) DO UPDATE SET \(update)",
        values(s))
    }
  }

  /// A study's end: its result, and the run directories that belong to it.
  public func end(_ s: StudyRecord) throws(StoreError) {
    var e = s
    e.status = "ended"
    let now = Date().timeIntervalSince1970
    e.endedAt = e.endedAt ?? now
    e.updatedAt = now
    let row = values(e)
    try write { c in
      let sets = [
        "updated_at", "ended_at", "status", "outcome", "confidence", "runs", "exit_code", "error",
        "result", "run_dirs",
      ]
      let v = sets.map { row[Self.studyColumns.firstIndex(of: $0)!] }
      let done = try c.query(
        "UPDATE studies SET \(sets.map { "\($0) = ?" }.joined(separator: ", ")) WHERE study_id = ? RETURNING study_id",
        v + [.text(e.id)])
      // Its start was never recorded (the store was unreachable then): the whole row now.
      if done.isEmpty {
        try c.execute(
          "INSERT INTO studies (\(Self.studyColumns.joined(separator: ", "))) VALUES (\(placeholders(row.count))) ON CONFLICT (study_id) DO NOTHING",
          row)
      }
    }
  }

  public struct StudyFilter: Sendable {
    public var kind: StudyRecord.Kind?
    public var since: Double?
    public var status: String?
    public var limit: Int?
    public init(
      kind: StudyRecord.Kind? = nil, since: Double? = nil, status: String? = nil,
      limit: Int? = nil
    ) {
      (self.kind, self.since, self.status, self.limit) = (kind, since, status, limit)
    }
  }

  /// Bisections and verdicts, newest first; a running one whose process is gone says
  /// interrupted.
  public func studies(_ f: StudyFilter = StudyFilter()) throws(StoreError) -> [StudyRecord] {
    var clauses: [String] = []
    var args: [SQLValue] = []
    if let k = f.kind {
      clauses.append("kind = ?")
      args.append(.text(k.rawValue))
    }
    if let s = f.since {
      clauses.append("started_at >= ?")
      args.append(.double(s))
    }
    var sql = "SELECT * FROM studies"
    if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
    sql += " ORDER BY started_at DESC, study_id"
    let rows = try read { c in try c.query(sql, args) }
    var out = rows.compactMap(StudyRecord.init(row:))
    if let st = f.status { out = out.filter { $0.status == st } }
    if let l = f.limit { out = Array(out.prefix(max(0, l))) }
    return out
  }

  /// One study by its directory (or its id).
  public func study(_ kind: StudyRecord.Kind, dir: String) throws(StoreError) -> StudyRecord? {
    let id = StudyRecord.id(kind: kind, dir: URL(fileURLWithPath: dir).standardizedFileURL.path)
    return try read { c in try c.query("SELECT * FROM studies WHERE study_id = ?", [.text(id)]) }
      .first.flatMap(StudyRecord.init(row:))
  }

  func write(_ body: (any SQLConnection) throws -> Void) throws(StoreError) {
    try read(body)
  }
}

extension StudyRecord {
  init?(row r: SQLRow) {
    guard let k = r["kind"]?.string.flatMap(Kind.init(rawValue:)), let dir = r["dir"]?.string
    else { return nil }
    kind = k
    self.dir = dir
    startedAt = r["started_at"]?.double ?? 0
    updatedAt = r["updated_at"]?.double ?? startedAt
    endedAt = r["ended_at"]?.double
    status = r["status"]?.string ?? "running"
    host = r["host"]?.string ?? ""
    pid = r["pid"]?.int.map { Int($0) }
    pidStart = r["pid_start"]?.string
    resumes = Int(r["resumes"]?.int ?? 0)
    command = r["command"]?.string ?? ""
    repo = r["repo"]?.string
    good = r["good"]?.string
    bad = r["bad"]?.string
    job = r["job"]?.string
    base = r["base"]?.string
    patched = r["patched"]?.string
    confidenceAsked = r["confidence_asked"]?.double
    arguments = r["arguments"]?.string ?? "{}"
    outcome = r["outcome"]?.string
    confidence = r["confidence"]?.double
    runs = r["runs"]?.int.map { Int($0) }
    exitCode = r["exit_code"]?.int.map { Int($0) }
    error = r["error"]?.string
    result = r["result"]?.string
    runDirs =
      (r["run_dirs"]?.string).flatMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String]
      } ?? []
    if status == "running" && !processAlive { status = "interrupted" }
  }
}
