import Foundation

/// A crash signature across runs: the detector's title and guilty frame, where and when it
/// was seen, and the cheapest way to see it again.
public struct CrashGroup: Sendable, Codable {
  public struct Reproducer: Sendable, Codable {
    public var runID: String
    public var job: String
    public var seed: String
    public var kernel: String
    public var backend: String
    public var host: String
    public var command: String?
    /// Seconds from the guests' start to the crash (or the run's length when unknown).
    public var secondsToCrash: Double?
  }
  public var signature: String
  public var title: String
  public var frame: String?
  public var type: String?
  /// Occurrences, and the runs they were in.
  public var count: Int
  public var runs: Int
  public var firstSeen: Double
  public var lastSeen: Double
  public var kernels: [String]
  public var hosts: [String]
  /// First seen in the newest night (see `CrashGroups.group`).
  public var isNew: Bool
  /// Marked known (a nightly plan's `known:` list).
  public var known: Bool
  public var reproducer: Reproducer
  /// The shortest reproducer's report text.
  public var report: String?
}

public enum CrashGroups {
  /// The store's unexpected crashes grouped by signature, new ones first, then by last seen.
  /// A signature is new when its first run started within `newWithin` seconds of the newest
  /// run of the store (the last night, by default), so re-importing old nights does not make
  /// old crashes new. Groups last seen before `since` are left out; their first-seen time
  /// still counts all history.
  public static func group(
    _ store: ResultsStore, since: Double? = nil, newWithin: Double = 86_400,
    known: Set<String> = []
  ) throws(StoreError) -> [CrashGroup] {
    let rows = try store.crashRows(since: nil, unexpectedOnly: true)
    let newest = try store.runs(ResultsStore.RunFilter(limit: 1)).first?.startedAt ?? 0
    return group(rows: rows, newestRun: newest, newWithin: newWithin, known: known)
      .filter { since == nil || $0.lastSeen >= since! }
  }

  static func group(rows: [SQLRow], newestRun: Double, newWithin: Double, known: Set<String>)
    -> [CrashGroup]
  {
    var groups: [String: CrashGroup] = [:]
    var runs: [String: Set<String>] = [:]
    var best: [String: Double] = [:]
    for r in rows {
      guard let sig = r["signature"]?.string, let runID = r["run_id"]?.string else { continue }
      let at = r["started_at"]?.double ?? 0
      let cost =
        r["time_to_crash_s"]?.double ?? r["t_s"]?.double ?? r["elapsed_s"]?.double ?? .infinity
      let repro = CrashGroup.Reproducer(
        runID: runID, job: r["job"]?.string ?? "?", seed: r["seed"]?.string ?? "?",
        kernel: r["kernel"]?.string ?? "?", backend: r["backend"]?.string ?? "?",
        host: r["host"]?.string ?? "?", command: r["reproduce"]?.string,
        secondsToCrash: cost.isFinite ? cost : nil)
      var g =
        groups[sig]
        ?? CrashGroup(
          signature: sig, title: r["title"]?.string ?? "?", frame: r["frame"]?.string,
          type: r["type"]?.string, count: 0, runs: 0, firstSeen: at, lastSeen: at, kernels: [],
          hosts: [], isNew: false,
          known: known.contains(sig) || known.contains(r["title"]?.string ?? ""),
          reproducer: repro, report: r["report"]?.string)
      g.count += 1
      g.firstSeen = min(g.firstSeen, at)
      g.lastSeen = max(g.lastSeen, at)
      if let k = r["kernel"]?.string, !g.kernels.contains(k) { g.kernels.append(k) }
      if let h = r["host"]?.string, !g.hosts.contains(h) { g.hosts.append(h) }
      runs[sig, default: []].insert(runID)
      if cost < best[sig] ?? .infinity {
        best[sig] = cost
        g.reproducer = repro
        g.report = r["report"]?.string ?? g.report
      }
      groups[sig] = g
    }
    return groups.values.map { g in
      var g = g
      g.runs = runs[g.signature]?.count ?? 0
      g.isNew = !g.known && g.firstSeen >= newestRun - newWithin
      return g
    }.sorted {
      $0.isNew != $1.isNew
        ? $0.isNew
        : $0.lastSeen != $1.lastSeen ? $0.lastSeen > $1.lastSeen : $0.signature < $1.signature
    }
  }
}
