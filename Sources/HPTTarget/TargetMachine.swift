import Foundation
import HPTEngine

/// A target as the engine's Runner sees it (HostMachine): its commands, the evidence a run
/// gathers from it, its memory management.
public final class TargetMachine: HostMachine, @unchecked Sendable {
  public let target: Target
  let evidence: HostEvidence

  public init(_ target: Target) {
    self.target = target
    evidence = HostEvidence(target: target)
  }

  public var name: String { target.name }
  public var emulatorGone: String? { target.lab?.emulatorGone }
  public var vmlinux: String? { target.lab?.vmlinux }
  public var hungAfterS: Double { target.spec.hungAfterS }

  public func answers(timeoutS: Double) -> Bool { target.answers(timeoutS: timeoutS) }

  public func probe(_ script: String) -> String? {
    let r = target.run(["sh", "-c", script], timeoutS: 15)
    return r.ok ? r.stdout : nil
  }

  public func startMemoryManagement(_ settings: HostMMSettings) throws -> (any HostMMRun)? {
    try HostMMSession(settings, target: target)
  }

  public func startTrace() { evidence.startTrace() }
  public func collectTrace(hostDown: Bool) { evidence.collectTrace(hostDown: hostDown) }
  public var trace: HostTrace.Result? { evidence.result }

  public func saveRegisters(in outDir: URL) -> String? { evidence.saveRegisters(in: outDir) }

  public func recover(
    after what: String, outDir: URL, progress: ProgressPrinter, recorder: RunRecorder
  ) -> [String: Int] {
    evidence.recover(after: what, outDir: outDir, progress: progress, recorder: recorder)
  }
}

extension HostMMSession: HostMMRun {}
