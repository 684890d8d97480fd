import Foundation
import HPTResults
import Testing

/// Real run directories, written by the built `hpthammer run` (the dry run on the simulated
/// POWER9 host), and the built binary to drive the results commands through.
enum Fixtures {
  /// Reads a child's stdout and stderr to their ends at once: a full stderr pipe must not
  /// stall the child while stdout is read.
  /// Runs `p` to its end; its exit status, stdout and stderr.
  static func capture(_ p: Process) throws -> (Int32, String, String) {
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let (o, e) = drain(out, err)
    p.waitUntilExit()
    return (
      p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self)
    )
  }

  static func drain(_ out: Pipe, _ err: Pipe) -> (Data, Data) {
    let group = DispatchGroup()
    nonisolated(unsafe) var e = Data()
    group.enter()
    DispatchQueue.global().async {
      e = err.fileHandleForReading.readDataToEndOfFile()
      group.leave()
    }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    return (o, e)
  }

  static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

  static let binary: URL = {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for dir in [
      here, here.deletingLastPathComponent(), repo.appendingPathComponent(".build/debug"),
    ] {
      let b = dir.appendingPathComponent("hpthammer")
      if FileManager.default.isExecutableFile(atPath: b.path) { return b }
    }
    return repo.appendingPathComponent(".build/debug/hpthammer")
  }()

  /// A new empty directory under the temporary one.
  static func scratch(_ name: String = "t") -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent(
      "hpthammer-results-\(name)-\(UUID().uuidString)"
    ).path
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
  }

  /// The environment of the hpthammer the tests start: never the user's results database.
  static func environment(_ extra: [String: String] = [:]) -> [String: String] {
    var env = ProcessInfo.processInfo.environment
    env["HPTHAMMER_DB"] = nil
    env["XDG_DATA_HOME"] = scratch("xdg")
    for (k, v) in extra { env[k] = v }
    return env
  }

  /// Runs the built hpthammer; returns its exit status, stdout and stderr.
  @discardableResult
  static func hpthammer(_ args: [String], env: [String: String]? = nil) throws -> (
    Int32, String, String
  ) {
    let p = Process()
    p.executableURL = binary
    p.arguments = args
    p.currentDirectoryURL = repo
    p.environment = env ?? environment()
    return try Fixtures.capture(p)
  }

  /// Runs any program (cwd: the repository); its exit status, stdout and stderr.
  static func exec(_ path: String, _ args: [String], env: [String: String]? = nil) throws -> (
    Int32, String, String
  ) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    p.currentDirectoryURL = repo
    if let env { p.environment = env }
    return try Fixtures.capture(p)
  }

  /// A run of Jobs/dry-run.yaml (the pre-fix kernel: the seed's oops, exit 1; `kernel` "6.1"
  /// with a short duration passes), written once per test process and copied per use.
  static func run(seed: Int, kernel: String? = nil) throws -> String {
    let key = "\(seed)-\(kernel ?? "pre-fix")"
    let dir = try cache.get(key) {
      let d = scratch("run-\(key)") + "/r"
      var args = ["run", "Jobs/dry-run.yaml", "--seed", "\(seed)", "--out", d, "--no-progress"]
      args += ["--no-db"]
      if let kernel { args += ["--kernel", kernel, "--duration", "2s"] }
      let (rc, out, err) = try hpthammer(args)
      guard FileManager.default.fileExists(atPath: d + "/run.json"), rc == 0 || rc == 1 else {
        throw FixtureError("hpthammer \(args.joined(separator: " ")): exit \(rc)\n\(out)\n\(err)")
      }
      return d
    }
    let copy = scratch("copy") + "/" + key
    try FileManager.default.copyItem(atPath: dir, toPath: copy)
    return copy
  }

  /// A copy of `dir` as another run of the same job would have written it: a new run id, and
  /// optionally another start time, host or crash frame (what nights on other hosts give).
  static func variant(
    of dir: String, startedAt: Date? = nil, host: String? = nil, frame: String? = nil,
    timeToCrash: Double? = nil
  ) throws -> String {
    let copy = scratch("variant") + "/r"
    try FileManager.default.copyItem(atPath: dir, toPath: copy)
    let path = copy + "/run.json"
    var j = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        as? [String: Any])
    var p = j["provenance"] as? [String: Any] ?? [:]
    p["run_id"] = UUID().uuidString.lowercased()
    if let startedAt {
      let f = ISO8601DateFormatter()
      p["started_at"] = f.string(from: startedAt)
      p["ended_at"] = f.string(from: startedAt.addingTimeInterval(60))
    }
    if let host {
      var h = p["host"] as? [String: Any] ?? [:]
      h["name"] = host
      p["host"] = h
    }
    j["provenance"] = p
    if let frame, var crashes = j["crashes"] as? [[String: Any]], !crashes.isEmpty {
      crashes[0]["frame"] = frame
      j["crashes"] = crashes
    }
    if let timeToCrash { j["time_to_crash_s"] = timeToCrash }
    try JSONSerialization.data(withJSONObject: j, options: [.prettyPrinted, .sortedKeys]).write(
      to: URL(fileURLWithPath: path))
    return copy
  }

  static func json(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8))
  }

  /// A store in a new SQLite file.
  static func store() throws -> (ResultsStore, String) {
    let path = scratch("db") + "/results.sqlite"
    return (try ResultsStore.open(path), path)
  }

  /// A fresh store of either backend (PostgreSQL: a database of its own on the test server,
  /// dropped when the test is done).
  static func store(_ kind: StoreKind) throws -> (ResultsStore, String) {
    switch kind {
    case .sqlite: return try store()
    case .postgres:
      let url = try BackendTests.postgresDatabase()
      return (try ResultsStore.open(url), url)
    }
  }

  static let cache = RunCache()
}

struct FixtureError: Error, CustomStringConvertible {
  let description: String
  init(_ d: String) { description = d }
}

/// Run directories by key, each made once (tests run in parallel).
final class RunCache: @unchecked Sendable {
  private let lock = NSLock()
  private var dirs: [String: String] = [:]
  private var making: [String: NSCondition] = [:]

  func get(_ key: String, make: () throws -> String) throws -> String {
    lock.lock()
    if let d = dirs[key] {
      lock.unlock()
      return d
    }
    lock.unlock()
    // Made under a per-key lock: two tests asking at once make it once.
    let keyLock = lockFor(key)
    keyLock.lock()
    defer { keyLock.unlock() }
    lock.lock()
    if let d = dirs[key] {
      lock.unlock()
      return d
    }
    lock.unlock()
    let d = try make()
    lock.lock()
    dirs[key] = d
    lock.unlock()
    return d
  }

  private func lockFor(_ key: String) -> NSCondition {
    lock.lock()
    defer { lock.unlock() }
    if let l = making[key] { return l }
    let l = NSCondition()
    making[key] = l
    return l
  }
}

/// The store's backends its tests run on: SQLite always, PostgreSQL when the test command
/// started a server (scripts/ensure-postgres.sh; ToolsTests fails in CI when it did not).
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
  case sqlite, postgres
  static var available: [StoreKind] { BackendTests.postgres == nil ? [.sqlite] : allCases }
  var testDescription: String { rawValue }
}
