import Foundation

/// What a run gathers from a target host besides its log, the same way on every backend: the
/// kernel's own count of the resize ioctls (kretprobes, `host_trace` in run.json) and, after a
/// lab host crashed or hung, where its CPUs were (host-registers.txt), before a reset wipes it.
final class HostEvidence: @unchecked Sendable {
  let target: Target
  private let lock = NSLock()
  private var trace: HostTrace.Result?

  init(target: Target) { self.target = target }

  /// run.json's host_trace: nil when tracing was not asked for.
  var result: HostTrace.Result? { lock.locked { trace } }

  func startTrace() {
    let t = HostTrace()
    do {
      let method = try t.setUp(on: target)
      lock.locked { trace = HostTrace.Result(calls: [:], method: method) }
    } catch {
      lock.locked { trace = HostTrace.Result(calls: [:], unavailable: error.description) }
    }
  }

  /// Reads the counts, unless the host went down (then says so).
  func collectTrace(hostDown: Bool) {
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
  func saveRegisters(in outDir: URL) -> String? {
    guard let lab = target.lab, let dump = try? lab.registerDump(vmlinux: lab.vmlinux) else {
      return nil
    }
    try? dump.write(
      to: outDir.appendingPathComponent("host-registers.txt"), atomically: true, encoding: .utf8)
    return dump
  }
}
