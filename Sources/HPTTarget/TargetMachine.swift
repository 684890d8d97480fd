import Foundation
import HPTEngine

/// A target as the engine's Runner sees it (HostMachine): its commands, the evidence a run
/// gathers from it, its memory management.
public final class TargetMachine: HostMachine, @unchecked Sendable {
  public let target: Target
  let evidence: HostEvidence
  /// The lab's emulator's share of this machine's CPUs (nil on a host of its own).
  let emulatorCPU: EmulatorCPUWatch?

  public init(_ target: Target) {
    self.target = target
    evidence = HostEvidence(target: target)
    emulatorCPU = target.lab.map { lab in EmulatorCPUWatch { lab.emulatorPID } }
    emulatorCPU?.start()
  }

  deinit { emulatorCPU?.stop() }

  public var name: String { target.name }
  public var emulatorGone: String? { target.lab?.emulatorGone }

  public var figures: [String: Int] {
    emulatorCPU.map { ["lab_cpu_wait_worst_30s_pct": Int(($0.worstShare * 100).rounded())] } ?? [:]
  }

  public func emulatorStarved(lastS: Double) -> String? {
    guard let (waited, span) = emulatorCPU?.starvedWait(windowS: lastS) else { return nil }
    return String(
      format:
        "the lab's emulator was starved of CPU: a QEMU thread of %@ waited %.1f s of the last %.0f s for one of this machine's CPUs, so its emulated CPUs stood still while their timebase ran on; a lockup or stall the lab's kernel reports then says nothing about that kernel (rerun with this machine less loaded)",
      name, waited, span)
  }
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
