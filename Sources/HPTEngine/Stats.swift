import Foundation
import Histogram
import KVMHost

/// Latency percentiles of one kind of operation, in milliseconds of the host's clock.
public struct LatencySummary: Codable, Sendable, Equatable {
  public var count: UInt64
  public var p50: Double
  public var p90: Double
  public var p99: Double
  public var max: Double
}

/// Counters and histograms of a run, shared by the agents (always under its lock).
public final class RunStats: @unchecked Sendable {
  private let lock = NSLock()
  public var attempted = 0
  public var succeeded = 0
  public var failedExpected = 0
  public var failedUnexpected = 0
  /// "PREPARE" / "COMMIT" -> answer ("0", "100", "ENOSPC") -> count.
  public var answers: [String: [String: Int]] = [:]
  public var unexpected: [UnexpectedAnswer] = []
  /// Where each resize is written as it happens (nil before the run has its directory).
  var timeline: RunTimeline?
  var prepareToReadyUs = Histogram<UInt64>(
    highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
  var commitUs = Histogram<UInt64>(
    highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
  public var pagesVerified: UInt64 = 0
  /// A guest whose count of verified pages never came (its agent did not answer at the end):
  /// the run's count is then a floor, not a measurement.
  public var pagesVerifiedUnknown = false
  public var pagesTaken: UInt64 = 0
  public var mismatches: UInt64 = 0
  public var vcpuExits = 0
  public var reboots = 0

  public func with<T>(_ body: (RunStats) -> T) -> T {
    lock.lock()
    defer { lock.unlock() }
    return body(self)
  }

  public func answer(_ op: String, _ a: String) {
    with { $0.answers[op, default: [:]][a, default: 0] += 1 }
  }

  /// run.json keeps this many unexpected answers in full; all of them are counted.
  static let unexpectedKept = 50

  /// An answer the kernel should not have given, on any backend.
  func unexpected(_ u: UnexpectedAnswer) {
    with {
      $0.failedUnexpected += 1
      if $0.unexpected.count < Self.unexpectedKept { $0.unexpected.append(u) }
    }
  }

  static func summary(_ h: Histogram<UInt64>) -> LatencySummary {
    guard h.totalCount > 0 else { return LatencySummary(count: 0, p50: 0, p90: 0, p99: 0, max: 0) }
    func ms(_ us: UInt64) -> Double { (Double(us) / 1000 * 1000).rounded() / 1000 }
    return LatencySummary(
      count: h.totalCount, p50: ms(h.valueAtPercentile(50)), p90: ms(h.valueAtPercentile(90)),
      p99: ms(h.valueAtPercentile(99)), max: ms(h.max))
  }
}

/// An ioctl answer the expected-answer table does not allow.
public struct UnexpectedAnswer: Codable, Sendable, Equatable {
  public var guest: String
  public var op: String
  public var order: UInt32
  public var fromOrder: UInt32
  public var answer: String
  public var hostTimeS: Double
  /// What the driver could see of the guest then (a stuck guest's registers), if anything.
  public var evidence: String? = nil
}

extension NSLock {
  public func locked<T>(_ body: () -> T) -> T {
    lock()
    defer { unlock() }
    return body()
  }
}

/// A Bool shared between agents.
public final class LockedFlag: @unchecked Sendable {
  public init() {}
  private let lock = NSLock()
  private var _value = false
  public var value: Bool {
    get { lock.locked { _value } }
    set { lock.locked { _value = newValue } }
  }
}
