import Foundation

/// The host under test when it is a machine of its own (a remote host, the lab, this machine
/// for its memory management): what a run asks of it besides its KVM interface and its log.
/// The targets (HPTTarget) are these; the simulator has none.
public protocol HostMachine: AnyObject, Sendable {
  var name: String { get }
  /// Why the host's own emulator (the lab's QEMU) is gone; nil while it runs, or on a host
  /// that has none.
  var emulatorGone: String? { get }
  /// Why the host's emulator could not keep its CPUs running in the last `lastS` seconds
  /// (the lab's QEMU waiting for this machine's CPUs); nil when it could, or on a host that
  /// is not emulated. A lockup or stall its kernel reported then is not the kernel's.
  func emulatorStarved(lastS: Double) -> String?
  /// The host's own figures for run.json (how much CPU the lab's emulator was denied).
  var figures: [String: Int] { get }
  /// The host kernel's vmlinux when the harness has it (the lab's), for provenance.
  var vmlinux: String? { get }
  /// How long a host may say nothing before it counts as hung.
  var hungAfterS: Double { get }
  /// Whether the host answers a trivial command within `timeoutS`.
  func answers(timeoutS: Double) -> Bool
  /// A shell script's standard output on the host; nil when it failed.
  func probe(_ script: String) -> String?
  /// KSM and THP turned on for the run as `settings` asks; nil when it asks for neither.
  func startMemoryManagement(_ settings: HostMMSettings) throws -> (any HostMMRun)?

  /// The resize trace (kretprobes): started with the guests, read at the end.
  func startTrace()
  func collectTrace(hostDown: Bool)
  /// run.json's host_trace: nil when tracing was not asked for.
  var trace: HostTrace.Result? { get }
  /// The host's registers (the lab's QMP) into outDir; returns them.
  func saveRegisters(in outDir: URL) -> String?
  /// After the host crashed or hung: a power cycle and its last words, findings into
  /// `recorder`; returns run.json's recovery figures.
  func recover(after what: String, outDir: URL, progress: ProgressPrinter, recorder: RunRecorder)
    -> [String: Int]
}

/// KSM and THP on for one run; `end` puts the host's settings back and returns the figures.
public protocol HostMMRun: AnyObject, Sendable {
  /// Reads the counters once more (the guests' pages while they still exist).
  func sample()
  func end(hostDown: Bool) -> [String: Int]
}
