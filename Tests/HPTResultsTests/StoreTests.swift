import Foundation
import HPTResults
import Testing

/// The store on real run directories, on SQLite and on PostgreSQL (a real server).
@Suite struct StoreTests {
  static let signature =
    "BUG: unable to handle kernel paging request in kvmppc_add_revmap_chain | kvmppc_add_revmap_chain"

  @Test(arguments: StoreKind.available)
  func importingTheSameRunTwiceStoresItOnce(_ kind: StoreKind) throws {
    let (store, url) = try Fixtures.store(kind)
    defer {
      if kind == .postgres {
        store.backend.close()
        BackendTests.drop(url)
      }
    }
    let dir = try Fixtures.run(seed: 1)
    #expect(try store.record(runDir: dir) == .stored(newSignatures: [Self.signature]))
    #expect(try store.record(runDir: dir) == .alreadyStored)
    // The same run from another place (a CI artifact unpacked elsewhere) is the same run.
    let elsewhere = Fixtures.scratch("elsewhere") + "/r"
    try FileManager.default.copyItem(atPath: dir, toPath: elsewhere)
    #expect(try store.record(runDir: elsewhere) == .alreadyStored)
    let n = try store.count()
    #expect(n.runs == 1)
    #expect(n.crashes == 1)
    #expect(n.signatures == 1)
  }

  /// Three seeds hitting the same oops, one of them also on another host days earlier: one
  /// signature, counted four times, first seen on the other host, the shortest reproducer the
  /// seed with the smallest time to crash; "new" only on the first import.
  @Test(arguments: StoreKind.available)
  func crashesAreDeduplicatedBySignature(_ kind: StoreKind) throws {
    let (store, url) = try Fixtures.store(kind)
    defer {
      if kind == .postgres {
        store.backend.close()
        BackendTests.drop(url)
      }
    }
    let seed2 = try Fixtures.run(seed: 2)
    let seed1 = try Fixtures.run(seed: 1)
    let seed4 = try Fixtures.run(seed: 4)
    let early = Date().addingTimeInterval(-3 * 86_400)
    let otherHost = try Fixtures.variant(of: seed2, startedAt: early, host: "p9-lab-b")
    #expect(try store.record(runDir: seed2) == .stored(newSignatures: [Self.signature]))
    for d in [seed1, seed4, otherHost] {
      #expect(try store.record(runDir: d) == .stored(newSignatures: []), "\(d)")
    }
    let groups = try CrashGroups.group(store)
    #expect(groups.count == 1)
    let g = try #require(groups.first)
    #expect(g.signature == Self.signature)
    #expect(g.count == 4)
    #expect(g.runs == 4)
    #expect(Set(g.hosts) == ["sim-power9", "p9-lab-b"])
    #expect(g.kernels == ["4.14.0-rc4"])
    #expect(abs(g.firstSeen - early.timeIntervalSince1970) < 1)
    #expect(g.lastSeen > early.timeIntervalSince1970 + 86_400)
    // The seeds' times to crash, from their run.json: seed 1 is the quickest.
    let ttc = try [seed1, seed2, seed4].map { d -> Double in
      let j = try #require(
        try Fixtures.json(String(contentsOfFile: d + "/run.json", encoding: .utf8))
          as? [String: Any])
      return try #require(j["time_to_crash_s"] as? Double)
    }
    #expect(ttc[0] < ttc[1] && ttc[0] < ttc[2], "\(ttc)")
    #expect(g.reproducer.seed == "1")
    #expect(g.reproducer.job == "dry-run")
    #expect(g.reproducer.kernel == "4.14.0-rc4")
    #expect(g.reproducer.backend == "sim")
    #expect(g.reproducer.secondsToCrash == ttc[0])
    #expect(g.report?.contains("kvmppc_add_revmap_chain") == true)
  }

  /// Another guilty frame is another signature: new when first stored, and in the table as
  /// new when first seen in the newest night; an old signature is not.
  @Test(arguments: StoreKind.available)
  func aSignatureFirstSeenTonightIsNew(_ kind: StoreKind) throws {
    let (store, url) = try Fixtures.store(kind)
    defer {
      if kind == .postgres {
        store.backend.close()
        BackendTests.drop(url)
      }
    }
    let old = try Fixtures.variant(
      of: try Fixtures.run(seed: 1), startedAt: Date().addingTimeInterval(-10 * 86_400))
    #expect(try store.record(runDir: old) == .stored(newSignatures: [Self.signature]))
    let tonight = try Fixtures.variant(of: try Fixtures.run(seed: 2), frame: "kvmppc_hpt_npte")
    let otherSig =
      "BUG: unable to handle kernel paging request in kvmppc_add_revmap_chain | kvmppc_hpt_npte"
    #expect(try store.record(runDir: tonight) == .stored(newSignatures: [otherSig]))
    let groups = try CrashGroups.group(store)
    #expect(groups.map(\.signature) == [otherSig, Self.signature])
    #expect(groups.map(\.isNew) == [true, false])
    #expect(groups.map(\.count) == [1, 1])
  }

  /// A run whose harness died (run.json still says running) is kept as interrupted, and
  /// replaced when its finished record comes; the finished one is never replaced.
  @Test(arguments: StoreKind.available)
  func anInterruptedRunIsReplacedByItsFinishedRecord(_ kind: StoreKind) throws {
    let (store, url) = try Fixtures.store(kind)
    defer {
      if kind == .postgres {
        store.backend.close()
        BackendTests.drop(url)
      }
    }
    let done = try Fixtures.run(seed: 1)
    let running = Fixtures.scratch("running") + "/r"
    try FileManager.default.copyItem(atPath: done, toPath: running)
    let path = running + "/run.json"
    var j = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        as? [String: Any])
    j["verdict"] = "running"
    j["crashes"] = nil
    try JSONSerialization.data(withJSONObject: j).write(to: URL(fileURLWithPath: path))
    guard case .stored = try store.record(runDir: running) else {
      Issue.record("the interrupted run was not stored")
      return
    }
    let id = try #require(try store.runs().first?.runID)
    var r = try store.run(id)
    #expect(r.interrupted && r.verdict == "error" && !r.complete)
    // Its crash is known from the timeline.
    #expect(r.crashes.map(\.title).first?.contains("kvmppc_add_revmap_chain") == true)
    #expect(try store.record(runDir: done) == .stored(newSignatures: []))
    r = try store.run(id)
    #expect(!r.interrupted && r.verdict == "bug" && r.complete)
    #expect(try store.record(runDir: running) == .alreadyStored)
    #expect(try store.count().runs == 1)
    #expect(try store.count().crashes == 1)
  }

  @Test(arguments: StoreKind.available)
  func runsAreFilteredByKernelHostJobVerdictAndAge(_ kind: StoreKind) throws {
    let (store, url) = try Fixtures.store(kind)
    defer {
      if kind == .postgres {
        store.backend.close()
        BackendTests.drop(url)
      }
    }
    let bug = try Fixtures.run(seed: 1)
    let pass = try Fixtures.run(seed: 1, kernel: "6.1")
    let old = try Fixtures.variant(
      of: bug, startedAt: Date().addingTimeInterval(-40 * 86_400), host: "p9-lab-b")
    for d in [bug, pass, old] { _ = try store.record(runDir: d) }
    func ids(_ f: ResultsStore.RunFilter) throws -> Int { try store.runs(f).count }
    #expect(try ids(.init()) == 3)
    #expect(try ids(.init(kernel: "4.14.0-rc4")) == 2)
    #expect(try ids(.init(kernel: "6.1.0-50-powerpc64le")) == 1)
    #expect(try ids(.init(kernel: "5.0")) == 0)
    #expect(try ids(.init(host: "p9-lab-b")) == 1)
    #expect(try ids(.init(job: "dry-run")) == 3)
    #expect(try ids(.init(job: "crowded-hpt")) == 0)
    #expect(try ids(.init(verdict: "pass")) == 1)
    #expect(try ids(.init(verdict: "bug")) == 2)
    let since30d = Format.since("30d")
    #expect(try ids(.init(since: since30d)) == 2)
    #expect(try ids(.init(verdict: "bug", since: since30d)) == 1)
    // Newest first, each with its crashes' titles.
    let runs = try store.runs()
    #expect(runs.last?.host == "p9-lab-b")
    #expect(runs.first { $0.verdict == "bug" }?.crashes.count == 1)
    #expect(runs.first { $0.verdict == "pass" }?.crashes.isEmpty == true)
  }

  @Test func sinceReadsAgesAndDates() throws {
    let now = Date(timeIntervalSince1970: 1_000_000_000)
    #expect(abs(try #require(Format.since("30d", now: now)) - (1e9 - 30 * 86_400)) < 1e-3)
    #expect(abs(try #require(Format.since("12h", now: now)) - (1e9 - 12 * 3600)) < 1e-3)
    #expect(Format.since("2026-11-01", now: now) == 1_793_491_200)
    #expect(Format.since("soon", now: now) == nil)
    #expect(Format.since("-3d", now: now) == nil)
  }

  /// A database written by a newer HPTHammer (a migration this one does not know): refused,
  /// and the file is left byte for byte as it was.
  @Test func aNewerSchemaIsRefusedAndLeftUntouched() throws {
    let (store, path) = try Fixtures.store()
    _ = try store.record(runDir: try Fixtures.run(seed: 1))
    try store.backend.transaction { c in
      try c.execute("INSERT INTO grdb_migrations (identifier) VALUES (?)", ["v99-from-the-future"])
    }
    store.backend.close()
    let before = try Data(contentsOf: URL(fileURLWithPath: path))
    #expect {
      _ = try ResultsStore.open(path)
    } throws: { e in
      guard let e = e as? StoreError, case .newerSchema(let why) = e else { return false }
      return why.contains("v99-from-the-future") && why.contains(path)
    }
    #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
  }

  @Test func aDirectoryThatIsNotARunIsRefusedByName() throws {
    let root = Fixtures.scratch("bad")
    try FileManager.default.createDirectory(
      atPath: root + "/corrupt", withIntermediateDirectories: true)
    try "{\"verdict\": \"bug\", \"job\": ".write(
      toFile: root + "/corrupt/run.json", atomically: true, encoding: .utf8)
    try FileManager.default.createDirectory(
      atPath: root + "/foreign", withIntermediateDirectories: true)
    try "{\"name\": \"some other tool\", \"status\": \"ok\"}".write(
      toFile: root + "/foreign/run.json", atomically: true, encoding: .utf8)
    try FileManager.default.createDirectory(
      atPath: root + "/empty", withIntermediateDirectories: true)
    for (dir, words) in [
      ("corrupt", "corrupt"), ("foreign", "not written by hpthammer"), ("empty", "no run.json"),
      ("missing", "no such run directory"),
    ] {
      #expect {
        _ = try RunRecord.load(dir: root + "/" + dir)
      } throws: { e in
        guard let e = e as? StoreError, case .badRunDirectory(let why) = e else { return false }
        return why.contains(root + "/" + dir) && why.contains(words)
      }
    }
  }
}

/// timeline.jsonl as an import reads it (only its crash lines and its last line decoded) and as
/// the report reads it (every line).
@Suite struct TimelineTests {
  static let lines = [
    #"{"backend":"sim","event":"start","job":"j","t":0}"#,
    #"{"answer":"0","commit_ms":7.5,"event":"resize","from":21,"guest":"guest0","prepare_ms":100.5,"t":0.25,"to":22}"#,
    #"{"event":"crash","expected":true,"report":"crash-1.txt","t":0.5,"title":"WARNING: expected"}"#,
    #"{"event":"crash","expected":false,"frame":"f","report":"crash-2.txt","t":1.5,"title":"BUG: x"}"#,
    #"{"answer":"EBUSY","event":"resize","from":22,"guest":"guest1","prepare_ms":3,"t":2,"to":23}"#,
    #"{"answer":"0","event":"resi"#,
  ]

  @Test func anImportReadsCrashesCountAndLastTime() throws {
    let dir = Fixtures.scratch("timeline")
    try (Self.lines.joined(separator: "\n")).write(
      toFile: dir + "/timeline.jsonl", atomically: true, encoding: .utf8)
    let s = Timeline.summary(URL(fileURLWithPath: dir))
    #expect(s.count == 5)
    #expect(s.lastT == 2)
    #expect(s.crashes.map(\.t) == [0.5, 1.5])
    #expect(s.crashes.map { $0["expected"]?.bool } == [true, false])
    #expect(s.crashes.map { $0["title"]?.string } == ["WARNING: expected", "BUG: x"])
    // The report's full read: the same events, the cut line skipped, types kept.
    let all = Timeline.read(URL(fileURLWithPath: dir))
    #expect(all.map(\.event) == ["start", "resize", "crash", "crash", "resize"])
    #expect(all[1]["from"]?.int == 21 && all[1]["commit_ms"]?.double == 7.5)
    #expect(all[1]["answer"]?.string == "0")
    #expect(all[2]["expected"]?.bool == true && all[3]["expected"]?.bool == false)
    #expect(Timeline.summary(URL(fileURLWithPath: dir + "/none")).count == 0)
  }
}
