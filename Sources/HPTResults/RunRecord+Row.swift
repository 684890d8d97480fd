import Foundation

/// A run and a crash as rows of the store.
extension RunRecord {
  /// The run's columns, in Schema.runColumns order.
  func values(importedAt: Double) -> [SQLValue] {
    [
      .text(runID), SQLValue(complete), .double(startedAt), SQLValue(endedAt), .double(importedAt),
      .text(job), .text(seed), .text(backend), .text(kernel), SQLValue(kernelRelease),
      SQLValue(kernelVersion), SQLValue(kernelBuildID), SQLValue(guestKernel), .text(host),
      SQLValue(cpu), SQLValue(platform), SQLValue(qemuVersion), SQLValue(libvirtVersion),
      SQLValue(hpthammerVersion), SQLValue(hpthammerCommit), .text(verdict),
      SQLValue(verdictDetail), SQLValue(error), SQLValue(interrupted), SQLValue(reproduce),
      SQLValue(elapsedS), SQLValue(hostTimeS), SQLValue(timeToCrashS), SQLValue(resizesAttempted),
      SQLValue(resizesSucceeded), SQLValue(resizesFailedUnexpected), SQLValue(prepareP50Ms),
      SQLValue(prepareP99Ms), SQLValue(commitP50Ms), SQLValue(commitP99Ms),
      SQLValue(resizesPerS), SQLValue(faultsPerS), SQLValue(pagesVerified), SQLValue(mismatches),
      SQLValue(timelineEvents), SQLValue(sourceDir), .text(runJSON ?? "{}"),
    ]
  }

  init(row r: SQLRow) {
    func s(_ k: String) -> String? { r[k]?.string }
    func d(_ k: String) -> Double? { r[k]?.double }
    func i(_ k: String) -> Int? { r[k]?.int.map { Int($0) } }
    self.init(
      runID: s("run_id") ?? "?", complete: i("complete") == 1, startedAt: d("started_at") ?? 0,
      endedAt: d("ended_at"), job: s("job") ?? "?", seed: s("seed") ?? "?",
      backend: s("backend") ?? "?", kernel: s("kernel") ?? "?", kernelRelease: s("kernel_release"),
      kernelVersion: s("kernel_version"), kernelBuildID: s("kernel_build_id"),
      guestKernel: s("guest_kernel"), host: s("host") ?? "?", cpu: s("cpu"),
      platform: s("platform"), qemuVersion: s("qemu_version"),
      libvirtVersion: s("libvirt_version"), hpthammerVersion: s("hpthammer_version"),
      hpthammerCommit: s("hpthammer_commit"), verdict: s("verdict") ?? "?",
      verdictDetail: s("verdict_detail"), error: s("error"), interrupted: i("interrupted") == 1,
      reproduce: s("reproduce"), elapsedS: d("elapsed_s"), hostTimeS: d("host_time_s"),
      timeToCrashS: d("time_to_crash_s"), resizesAttempted: i("resizes_attempted"),
      resizesSucceeded: i("resizes_succeeded"),
      resizesFailedUnexpected: i("resizes_failed_unexpected"), prepareP50Ms: d("prepare_p50_ms"),
      prepareP99Ms: d("prepare_p99_ms"), commitP50Ms: d("commit_p50_ms"),
      commitP99Ms: d("commit_p99_ms"), resizesPerS: d("resizes_per_s"),
      faultsPerS: d("faults_per_s"), pagesVerified: i("pages_verified"),
      mismatches: i("mismatches"), timelineEvents: i("timeline_events"),
      sourceDir: s("source_dir"), runJSON: s("run_json"), crashes: [])
  }
}

extension RunRecord.Crash {
  init(row r: SQLRow) {
    self.init(
      title: r["title"]?.string ?? "?", frame: r["frame"]?.string, type: r["type"]?.string,
      source: r["source"]?.string, expected: r["expected"]?.int == 1, tS: r["t_s"]?.double,
      report: r["report"]?.string)
  }
}
