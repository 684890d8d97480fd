import Foundation
import HPTResults
import Testing

/// Both backends: the same store on SQLite (always) and PostgreSQL (when
/// HPTHAMMER_TEST_POSTGRES names a server: postgres://USER@HOST:PORT/DB; each test makes a
/// database of its own there with psql), with many writers at once.
@Suite struct BackendTests {
  typealias F = Fixtures

  static let postgres = ProcessInfo.processInfo.environment["HPTHAMMER_TEST_POSTGRES"]

  /// A new, empty PostgreSQL database on the test server: its URL.
  static func postgresDatabase() throws -> String {
    let server = try #require(postgres)
    let name = "hpt_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    var u = try #require(URLComponents(string: server))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    var psqlURL = u
    psqlURL.queryItems = nil
    p.arguments = ["psql", psqlURL.string ?? server, "-q", "-c", "CREATE DATABASE \(name)"]
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    try #require(p.terminationStatus == 0, "psql could not create a database on \(server)")
    u.path = "/" + name
    return u.string ?? server
  }

  /// Drops a database postgresDatabase made.
  static func drop(_ url: String) {
    guard let server = postgres, var u = URLComponents(string: server),
      let name = URLComponents(string: url)?.path.dropFirst()
    else { return }
    u.queryItems = nil
    _ = try? psql(u.string ?? server, "DROP DATABASE IF EXISTS \(name)")
  }

  /// One value by psql.
  static func psql(_ url: String, _ sql: String) throws -> String {
    var u = try #require(URLComponents(string: url))
    u.queryItems = nil
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["psql", u.string ?? url, "-tAc", sql]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// Distinct run directories: real runs of 4 seeds, and copies of them as other hosts' runs,
  /// some with another guilty frame (4 signatures in all, counting the guest-memory ones the
  /// seeds may also find).
  static func runs(_ n: Int) throws -> [String] {
    let seeds = try [1, 2, 3, 4].map { try F.run(seed: $0) }
    var dirs = seeds
    var i = 0
    while dirs.count < n {
      let base = seeds[i % seeds.count]
      dirs.append(
        try F.variant(
          of: base, host: "p9-\(i % 3)", frame: i % 5 == 0 ? "kvmppc_frame_\(i % 2)" : nil))
      i += 1
    }
    return dirs
  }

  /// `writers` processes importing the same directories at once, each in its own order:
  /// every run stored once, every crash once, and each signature reported new by exactly one.
  static func concurrentImport(db: String, writers: Int = 8) throws {
    let dirs = try runs(24)
    var expectedSignatures = Set<String>()
    var expectedCrashes = 0
    for d in dirs {
      let r = try RunRecord.load(dir: d)
      expectedCrashes += r.crashes.count
      expectedSignatures.formUnion(r.bugs.map(\.signature))
    }
    let env = F.environment()
    let results = ResultBox()
    let group = DispatchGroup()
    for w in 0..<writers {
      // Rotated and, for odd writers, reversed: every writer races every other on each run.
      var order = Array(dirs[(w * 3 % dirs.count)...] + dirs[..<(w * 3 % dirs.count)])
      if w % 2 == 1 { order.reverse() }
      let args = ["results", "import", "--json", "--db", db] + order
      group.enter()
      DispatchQueue.global().async {
        defer { group.leave() }
        do {
          results.add(
            try F.hpthammer(args, env: env))
        } catch {
          results.add((-1, "", "\(error)"))
        }
      }
    }
    group.wait()
    var stored = 0
    var reportedNew: [String] = []
    for (rc, out, err) in results.all {
      #expect(rc == 0, "a writer: exit \(rc): \(err.suffix(600))")
      guard let doc = try? F.json(out) as? [[String: Any]] else {
        Issue.record("a writer printed no JSON: \(out.prefix(300)) \(err.suffix(300))")
        continue
      }
      #expect(doc.count == dirs.count)
      stored += doc.filter { $0["outcome"] as? String == "stored" }.count
      reportedNew += doc.flatMap { $0["new_signatures"] as? [String] ?? [] }
    }
    #expect(stored == dirs.count, "runs stored by the \(writers) writers together")
    #expect(reportedNew.sorted() == expectedSignatures.sorted())
    let store = try ResultsStore.open(db)
    defer { store.backend.close() }
    let n = try store.count()
    #expect(n.runs == dirs.count)
    #expect(n.crashes == expectedCrashes)
    #expect(n.signatures == expectedSignatures.count)
    let groups = try CrashGroups.group(store)
    #expect(groups.reduce(0) { $0 + $1.count } == expectedBugs(dirs))
  }

  static func expectedBugs(_ dirs: [String]) -> Int {
    dirs.reduce(0) { $0 + ((try? RunRecord.load(dir: $1))?.bugs.count ?? 0) }
  }

  @Test func eightWritersAtOnceOnSQLite() throws {
    try Self.concurrentImport(db: F.scratch("concurrent") + "/results.sqlite")
  }

  @Test(.enabled(if: postgres != nil, "HPTHAMMER_TEST_POSTGRES is not set"))
  func eightWritersAtOnceOnPostgres() throws {
    let url = try Self.postgresDatabase()
    defer { Self.drop(url) }
    try Self.concurrentImport(db: url)
  }

  /// The store's behaviour on PostgreSQL: idempotent import, dedup and "new", filters, and a
  /// newer schema refused with nothing changed.
  @Test(.enabled(if: postgres != nil, "HPTHAMMER_TEST_POSTGRES is not set"))
  func theStoreOnPostgres() throws {
    let url = try Self.postgresDatabase()
    defer { Self.drop(url) }
    let store = try ResultsStore.open(url)
    let seed1 = try F.run(seed: 1)
    let seed2 = try F.run(seed: 2)
    let pass = try F.run(seed: 1, kernel: "6.1")
    #expect(try store.record(runDir: seed2) == .stored(newSignatures: [StoreTests.signature]))
    #expect(try store.record(runDir: seed1) == .stored(newSignatures: []))
    #expect(try store.record(runDir: pass) == .stored(newSignatures: []))
    #expect(try store.record(runDir: seed1) == .alreadyStored)
    #expect(try store.runs(.init(verdict: "bug")).count == 2)
    #expect(try store.runs(.init(kernel: "6.1.0-50-powerpc64le")).count == 1)
    let g = try #require(try CrashGroups.group(store).first)
    #expect(g.count == 2 && g.reproducer.seed == "1" && g.isNew)
    let shown = try store.run(
      String(try #require(store.runs(.init(verdict: "pass")).first).runID.prefix(8)))
    #expect(shown.verdict == "pass" && shown.runJSON?.contains("\"verdict\"") == true)
    try store.backend.transaction { c in
      try c.execute(
        "INSERT INTO hpthammer_migrations (id, applied_at) VALUES (?, ?)", ["v9-next", .int(0)])
    }
    store.backend.close()
    let (rc, out, err) = try F.hpthammer(["results", "--json", "--db", url])
    #expect(rc == 125 && out.isEmpty, "\(err)")
    #expect(err.contains("newer HPTHammer") && err.contains("v9-next"), "\(err)")
    // Nothing changed: the runs are all there, and the newer migration still recorded.
    #expect(try Self.psql(url, "SELECT count(*) FROM runs") == "3")
    #expect(
      try Self.psql(url, "SELECT count(*) FROM hpthammer_migrations")
        == "\(Schema.migrations.count + 1)")
  }

  /// A PostgreSQL server nobody answers: 125 naming it; a run's exit code stays its verdict's.
  @Test func anUnreachablePostgresExits125() throws {
    let url = "postgres://hpthammer@127.0.0.1:1/results?sslmode=disable"
    let (rc, out, err) = try F.hpthammer(["results", "--db", url])
    #expect(rc == 125 && out.isEmpty, "\(err)")
    #expect(
      err.contains("cannot reach the results database postgres://hpthammer@127.0.0.1:1/results"),
      "\(err)")
    let (rrc, _, rerr) = try F.hpthammer([
      "run", "Jobs/dry-run.yaml", "--out", F.scratch("pgrun") + "/r", "--no-progress", "--db", url,
    ])
    #expect(rrc == 1, "\(rerr)")
    #expect(rerr.contains("warning: the run was not recorded"), "\(rerr)")
    // A URL that is not one: usage.
    #expect(try F.hpthammer(["results", "--db", "mysql://x@y/z"]).0 == 2)
  }
}

final class ResultBox: @unchecked Sendable {
  private let lock = NSLock()
  private var items: [(Int32, String, String)] = []
  func add(_ r: (Int32, String, String)) {
    lock.lock()
    items.append(r)
    lock.unlock()
  }
  var all: [(Int32, String, String)] {
    lock.lock()
    defer { lock.unlock() }
    return items
  }
}
