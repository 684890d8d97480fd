import Foundation
import HPTEngine

/// KSM and THP on the target (HostMMSettings): the scripts that turn them on and back.
enum HostMM {
  /// Prints the settings it replaces as KEY=VALUE lines (for `restore`); fails when a knob is
  /// not there (no CONFIG_KSM, no THP) or cannot be written (not root).
  static func applyScript(_ s: HostMMSettings) -> String {
    var lines = ["set -e", "k=/sys/kernel/mm/ksm", "t=/sys/kernel/mm/transparent_hugepage"]
    if s.ksm {
      lines += [
        "[ -w $k/run ] || { echo 'no writable /sys/kernel/mm/ksm (CONFIG_KSM, root)' >&2; exit 3; }",
        "echo ksm_run=$(cat $k/run) ksm_pages_to_scan=$(cat $k/pages_to_scan) ksm_sleep_millisecs=$(cat $k/sleep_millisecs)",
        // Scan fast: a run lasts minutes, and every merge or unmerge is an invalidation.
        "echo 1000 >$k/pages_to_scan; echo 5 >$k/sleep_millisecs; echo 1 >$k/run",
      ]
    }
    if s.thp {
      lines += [
        "[ -w $t/enabled ] || { echo 'no writable /sys/kernel/mm/transparent_hugepage (THP, root)' >&2; exit 3; }",
        "cur() { sed -n 's/.*\\[\\(.*\\)\\].*/\\1/p' $1; }",
        "echo thp_enabled=$(cur $t/enabled) thp_shmem_enabled=$(cur $t/shmem_enabled 2>/dev/null || echo) thp_scan_sleep_millisecs=$(cat $t/khugepaged/scan_sleep_millisecs) thp_alloc_sleep_millisecs=$(cat $t/khugepaged/alloc_sleep_millisecs)",
        "echo always >$t/enabled; [ -w $t/shmem_enabled ] && echo always >$t/shmem_enabled || true",
        "echo 10 >$t/khugepaged/scan_sleep_millisecs; echo 10 >$t/khugepaged/alloc_sleep_millisecs",
      ]
    }
    return lines.joined(separator: "\n")
  }

  /// Puts back what `applyScript` printed.
  static func restoreScript(_ saved: [String: String]) -> String {
    let k = "/sys/kernel/mm/ksm"
    let t = "/sys/kernel/mm/transparent_hugepage"
    let files = [
      "ksm_pages_to_scan": "\(k)/pages_to_scan", "ksm_sleep_millisecs": "\(k)/sleep_millisecs",
      "ksm_run": "\(k)/run", "thp_enabled": "\(t)/enabled",
      "thp_shmem_enabled": "\(t)/shmem_enabled",
      "thp_scan_sleep_millisecs": "\(t)/khugepaged/scan_sleep_millisecs",
      "thp_alloc_sleep_millisecs": "\(t)/khugepaged/alloc_sleep_millisecs",
    ]
    // Values are the kernel's own words and numbers; anything else is not written back.
    let ok = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_-"))
    return saved.sorted { $0.key < $1.key }.compactMap { key, value in
      guard let f = files[key], !value.isEmpty,
        value.unicodeScalars.allSatisfy(ok.contains)
      else { return nil }
      return "echo \(value) >\(f) 2>/dev/null || true"
    }.joined(separator: "\n")
  }

  /// How much the host's memory management did, as counters to subtract (start from end).
  static let countersScript =
    "k=/sys/kernel/mm/ksm; for f in pages_shared pages_sharing full_scans; do [ -r $k/$f ] && echo ksm_$f=$(cat $k/$f); done; grep -E '^(thp_collapse_alloc|thp_split_page|thp_fault_alloc|thp_file_alloc|thp_split_pmd) ' /proc/vmstat | tr ' ' '='"

  static func parse(_ text: String) -> [String: String] {
    var out: [String: String] = [:]
    for word in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
      let kv = word.split(separator: "=", maxSplits: 1)
      if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
    }
    return out
  }

  /// Turns the knobs on; returns what to restore, or why it could not.
  static func apply(_ s: HostMMSettings, on target: Target) throws(TargetError) -> [String: String]
  {
    let r = target.run(["sh", "-c", applyScript(s)], timeoutS: 30)
    guard r.ok else {
      throw TargetError(
        "\(target.name): memory_load.host_mm: \(r.stderr.isEmpty ? r.lastLine : r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
      )
    }
    return parse(r.stdout)
  }

  static func restore(_ saved: [String: String], on target: Target) {
    _ = target.run(["sh", "-c", restoreScript(saved)], timeoutS: 30)
  }

  static func counters(on target: Target) -> [String: Int] {
    let r = target.run(["sh", "-c", countersScript], timeoutS: 30)
    return parse(r.stdout).compactMapValues { Int($0) }
  }

  /// The KSM gauges: pages merged now, not a count of merges.
  static let gauges: Set<String> = ["ksm_pages_shared", "ksm_pages_sharing"]

  /// run.json figures: the gauges at their peak while the guests ran (`_peak`; at the end the
  /// guests are gone and KSM drops their pages as it next scans), the counters as deltas.
  static func figures(start: [String: Int], end: [String: Int], peak: [String: Int])
    -> [String: Int]
  {
    var out: [String: Int] = [:]
    for (k, v) in end where !gauges.contains(k) { out["host_mm_" + k] = v - (start[k] ?? 0) }
    for k in gauges where peak[k] != nil || end[k] != nil {
      out["host_mm_\(k)_peak"] = max(peak[k] ?? 0, end[k] ?? 0)
    }
    return out
  }

  /// The larger of each gauge.
  static func peak(_ a: [String: Int], _ b: [String: Int]) -> [String: Int] {
    var out = a
    for k in gauges { if let v = b[k] { out[k] = max(v, a[k] ?? 0) } }
    return out
  }
}

/// One run's use of HostMM: on at the start, the gauges sampled while the guests run, the
/// counters read and the knobs put back at the end (also when the run fails).
public final class HostMMSession: @unchecked Sendable {
  let target: Target
  let saved: [String: String]
  let start: [String: Int]
  /// Seconds between samples of the KSM gauges.
  static let sampleS: UInt32 = 5
  private let state = NSLock()
  private var peakSeen: [String: Int] = [:]
  private var stopped = false

  public init?(_ s: HostMMSettings, target: Target) throws(TargetError) {
    guard s.any else { return nil }
    self.target = target
    saved = try HostMM.apply(s, on: target)
    start = HostMM.counters(on: target)
    if s.ksm { startSampling() }
  }

  private func startSampling() {
    let t = Thread { [self] in
      while !state.withLock({ stopped }) {
        sample()
        for _ in 0..<(Self.sampleS * 10) where !state.withLock({ stopped }) { usleep(100_000) }
      }
    }
    t.name = "host-mm-sampler"
    t.start()
  }

  /// Reads the gauges now and keeps their peak; the runner calls it once more just before it
  /// destroys the guests.
  public func sample() {
    let now = HostMM.counters(on: target)
    state.withLock { peakSeen = HostMM.peak(peakSeen, now) }
  }

  /// run.json's figures; the host's settings are as before after it.
  public func end(hostDown: Bool) -> [String: Int] {
    state.withLock { stopped = true }
    guard !hostDown else { return [:] }  // a rebooted host has its defaults back
    let f = HostMM.figures(
      start: start, end: HostMM.counters(on: target), peak: state.withLock { peakSeen })
    HostMM.restore(saved, on: target)
    return f
  }
}
