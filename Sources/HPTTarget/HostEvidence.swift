import Foundation
import HPTEngine

/// What a run gathers from a target host besides its log, the same way on every backend: the
/// kernel's own count of the resize ioctls (kretprobes, `host_trace` in run.json) and, after a
/// lab host crashed or hung, where its CPUs were (host-registers.txt), before a reset wipes it.
public final class HostEvidence: @unchecked Sendable {
  let target: Target
  private let lock = NSLock()
  private var trace: HostTrace.Result?

  public init(target: Target) { self.target = target }

  /// run.json's host_trace: nil when tracing was not asked for.
  public var result: HostTrace.Result? { lock.locked { trace } }

  public func startTrace() {
    let t = HostTrace()
    do {
      let method = try t.setUp(on: target)
      lock.locked { trace = HostTrace.Result(calls: [:], method: method) }
    } catch {
      lock.locked { trace = HostTrace.Result(calls: [:], unavailable: error.description) }
    }
  }

  /// Reads the counts, unless the host went down (then says so).
  public func collectTrace(hostDown: Bool) {
    guard lock.locked({ trace?.method }) != nil else { return }
    guard !hostDown else {
      lock.locked { trace?.unavailable = "the host went down before the counts were read" }
      return
    }
    let t = HostTrace()
    do {
      let calls = try t.collect(on: target)
      lock.locked { trace?.calls = calls }
    } catch {
      lock.locked { trace?.unavailable = error.description }
    }
    t.tearDown(on: target)
  }

  /// A lab host's registers (QMP), symbolized, into host-registers.txt; returns the dump.
  @discardableResult
  public func saveRegisters(in outDir: URL) -> String? {
    guard let lab = target.lab, let dump = try? lab.registerDump(vmlinux: lab.vmlinux) else {
      return nil
    }
    try? dump.write(
      to: outDir.appendingPathComponent("host-registers.txt"), atomically: true, encoding: .utf8)
    return dump
  }

  /// After the host crashed or hung: its registers, then a power cycle (when the target may
  /// be reset), then the kernel's last words once it answers again (LastWords). A report
  /// read there whose title the run already has is the same crash seen twice and is only
  /// noted. Returns run.json's figures (host_recovered, host_recovery_ms, last_words_reports).
  public func recover(
    after what: String, outDir: URL, progress: ProgressPrinter, recorder: RunRecorder
  )
    -> [String: Int]
  {
    guard target.spec.recover || target.lab != nil, target.canPowerCycle else {
      return ["host_recovered": 0]
    }
    if let dump = saveRegisters(in: outDir) {
      progress.note("\(what): \(dump.split(separator: "\n").prefix(8).joined(separator: "; "))")
    }
    let start = Date()
    progress.note("\(what): power-cycling \(target.name)")
    do {
      try target.powerCycleAndWait(timeoutS: target.spec.bootTimeoutS)
    } catch {
      progress.note("\(target.name) did not come back: \(error)")
      return ["host_recovered": 0]
    }
    var figures = [
      "host_recovered": 1, "host_recovery_ms": Int(-start.timeIntervalSinceNow * 1000),
    ]
    progress.note("\(target.name) is back after \(Int(-start.timeIntervalSinceNow)) s")
    let (reports, lines) = LastWords.collect(from: target, into: outDir)
    for l in lines { progress.note(l) }
    let seen = Set(recorder.allFindings.map(\.title))
    for (source, r) in reports where !seen.contains(r.title) {
      recorder.addFinding(
        Finding(r, source: "host \(source) after reboot"),
        report: "(read from the host's \(source) after it came back)\n" + r.report)
    }
    figures["last_words_reports"] = reports.count
    return figures
  }
}
