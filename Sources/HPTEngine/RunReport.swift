import Foundation
import KernelLog

/// A crash or failure the run found.
public struct Finding: Codable, Sendable, Equatable {
  public var title: String
  public var type: String
  public var frame: String?
  /// "host", "guest0", ...
  public var source: String
  /// A splat the harness provoked on purpose and the kernel must print (not a bug).
  public var expected: Bool
  /// The report file in the run directory.
  public var file: String?
  public var corrupted: Bool

  public init(
    title: String, type: String, frame: String?, source: String, expected: Bool, file: String?,
    corrupted: Bool
  ) {
    self.title = title
    self.type = type
    self.frame = frame
    self.source = source
    self.expected = expected
    self.file = file
    self.corrupted = corrupted
  }
}

extension Finding {
  /// A crash report from a kernel log (host or guest).
  public init(_ r: CrashReport, source: String, expected: Bool = false) {
    self.init(
      title: r.title, type: r.type, frame: r.frame, source: source, expected: expected, file: nil,
      corrupted: r.corrupted)
  }
}

public enum Verdict: String, Codable, Sendable {
  case pass, bug, error

  /// `git bisect run` exit codes: 0 good, 1 bad, 125 cannot test.
  public var exitCode: Int32 {
    switch self {
    case .pass: return 0
    case .bug: return 1
    case .error: return 125
    }
  }
}

/// run.json.
public struct RunReport: Codable, Sendable {
  public struct Resizes: Codable, Sendable {
    public var attempted: Int
    public var succeeded: Int
    public var failed_expected: Int
    public var failed_unexpected: Int
  }
  public struct Latency: Codable, Sendable {
    public var prepare_to_ready: LatencySummary
    public var commit: LatencySummary
  }
  public struct Guests: Codable, Sendable {
    public var count: Int
    public var memory_mib: Int
    public var vcpus: Int
    public var boot_order: UInt32
    public var pages_verified: UInt64
    public var mismatches: UInt64
    /// Pages the host freed (advice remove) that the payloads found zeroed, as told.
    public var pages_taken: UInt64?
  }
  public struct Wall: Codable, Sendable {
    public var elapsed_s: Double
    public var resizes_per_s: Double
    public var faults_per_s: Double
  }
  public var verdict: Verdict
  /// What kind of failure: host oops, guest crash, guest hang, QEMU death, guest memory corruption.
  public var verdict_detail: String?
  public var error: String?
  public var job: String
  public var backend: String
  public var kernel: String
  public var kernel_release: String
  public var seed: UInt64
  public var reproduce: String
  public var host_time_s: Double
  /// Host seconds from the guests' start to the first line of the first unexpected crash on
  /// the host's log (nil: none); what a bug's time to detect is measured by.
  public var time_to_crash_s: Double?
  public var resizes: Resizes
  public var answers: [String: [String: Int]]
  public var unexpected: [UnexpectedAnswer]
  public var latency_ms: Latency
  public var guests: Guests
  public var crashes: [Finding]
  /// What the host or backend counted: the simulator's work, boot times, CPU time.
  public var figures: [String: Int]?
  /// The host under test when it is not this machine ("lab lab-powernv9", "remote p9-3").
  public var target: String?
  /// The host's resize ioctls as the kernel answered them (kretprobes), per return value.
  public var host_trace: HostTrace.Result?
  /// Wall-clock figures: with the run's identity (`provenance`'s run_id, started_at and
  /// ended_at), the only part of run.json that differs between two runs of a seed.
  public var wall: Wall
  /// The kernels, host and harness exactly (RunProvenance.swift); absent in older run.json.
  public var provenance: RunProvenance? = nil

  /// This report with `other`'s wall-clock figures and identity: what makes two runs of one
  /// seed encode the same when the runs were the same.
  public func withWallAndIdentity(of other: RunReport) -> RunReport {
    var r = self
    r.wall = other.wall
    if let o = other.provenance {
      r.provenance?.run_id = o.run_id
      r.provenance?.started_at = o.started_at
      r.provenance?.ended_at = o.ended_at
    }
    return r
  }
}
