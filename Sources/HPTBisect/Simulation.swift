import Foundation

/// A simulated flaky history, for the benchmark and the tests: `count` commits, the culprit at
/// `culprit`; a run at or after it reproduces with probability `p`, one before it with
/// `falseAlarm`. Seeded, so a trial reproduces.
public struct FlakyHistory: Sendable {
  public let count: Int
  public let culprit: Int
  public let p: Double
  public let falseAlarm: Double
  var state: UInt64

  public init(count: Int, culprit: Int, p: Double, falseAlarm: Double, seed: UInt64) {
    self.count = count
    self.culprit = culprit
    self.p = p
    self.falseAlarm = falseAlarm
    state = seed &+ 0x9E37_79B9_7F4A_7C15
  }

  /// SplitMix64: the same stream for the same seed.
  public mutating func uniform() -> Double {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    return Double(z >> 11) / Double(1 << 53)
  }

  public mutating func run(_ i: Int) -> Bool { uniform() < (i >= culprit ? p : falseAlarm) }
}

/// What one bisection of a simulated history cost and said.
public struct TrialResult: Sendable {
  public var answer: Int?
  public var claimed: Double
  public var runs: Int
  public var builds: Int
  public var costS: Double
}

/// The rules bisections use today, as faithful as their descriptions, for comparison:
/// - `gitBisect`: `git bisect run` with one run per commit (a miss is "good");
/// - `ktest(tries:)`: ktest.pl's BISECT_TRIES: up to N runs, bad at the first reproduction,
///   good if none of N;
/// - `syzkaller`: pkg/bisect: NumTests = 10 runs per commit, bad if any run crashes, good
///   otherwise; it first checks that the bad commit reproduces (and gives up if not).
public enum BaselineRule: Sendable, Hashable {
  case gitBisect
  case ktest(tries: Int)
  case syzkaller

  public var name: String {
    switch self {
    case .gitBisect: return "git bisect, 1 run"
    case .ktest(let n): return "ktest BISECT_TRIES=\(n)"
    case .syzkaller: return "syzkaller (10 runs)"
    }
  }

  /// Binary search over the history with this rule's verdict per commit.
  public func bisect(_ h: inout FlakyHistory, costs: BisectCosts) -> TrialResult {
    var runs = 0
    var builds = 0
    func verdict(_ i: Int) -> Bool {
      builds += 1
      let tries: Int
      switch self {
      case .gitBisect: tries = 1
      case .ktest(let n): tries = n
      case .syzkaller: tries = 10
      }
      for _ in 0..<tries {
        runs += 1
        if h.run(i) { return true }
      }
      return false
    }
    if case .syzkaller = self, !verdict(h.count - 1) {
      return TrialResult(
        answer: nil, claimed: 1, runs: runs, builds: builds,
        costS: Double(builds) * costs.buildS + Double(runs) * costs.runS)
    }
    // Invariant: the culprit is in lo...hi (c_hi is bad by assumption or by test).
    var lo = 0
    var hi = h.count - 1
    while lo < hi {
      let mid = (lo + hi) / 2
      if verdict(mid) { hi = mid } else { lo = mid + 1 }
    }
    return TrialResult(
      answer: lo, claimed: 1, runs: runs, builds: builds,
      costS: Double(builds) * costs.buildS + Double(runs) * costs.runS)
  }
}

extension Bisection {
  /// Runs this bisection to its end against a simulated history. `choiceCosts`, if given, is
  /// what the choice of runs believes they cost (`.runsOnly`: choosing by runs alone); the
  /// result's cost is always counted with `costs`; `stopPriors` is Bisection.stopPriors.
  public static func trial(
    _ h: inout FlakyHistory, costs: BisectCosts, budget: BisectBudget,
    prior: BisectPrior = .standard, measure: GainMeasure = .culprit,
    choiceCosts: BisectCosts? = nil, stopPriors: [BisectPrior] = BisectPrior.stopClass,
    lateBuildRuns: Double = 2
  ) -> TrialResult {
    var b = Bisection(count: h.count, costs: choiceCosts ?? costs, budget: budget, prior: prior)
    b.measure = measure
    b.lateBuildRuns = lateBuildRuns
    b.stopPriors = stopPriors
    while true {
      switch b.next() {
      case .run(let i):
        b.record(commit: i, h.run(i) ? .reproduced : .clean)
      case .done(let a):
        return TrialResult(
          answer: a.culprit, claimed: a.confidence, runs: b.runs, builds: b.builds,
          costS: Double(b.builds) * costs.buildS + Double(b.runs) * costs.runS)
      }
    }
  }
}

/// The fewest runs any rule needs on average: log2(count) bits over the capacity of the
/// Z-channel a run is (a bad commit answers "reproduced" with probability p, a good one never).
public func informationBoundRuns(count: Int, p: Double) -> Double {
  guard p < 1 else { return log2(Double(count)) }
  // Capacity of the Z-channel with crossover 1 - p (1 -> 0): max over the input distribution.
  let q = 1 - p
  let cap = log2(1 + (1 - q) * pow(q, q / (1 - q)))
  return log2(Double(count)) / cap
}
