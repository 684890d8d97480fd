import Foundation

/// What a test run says, in `git bisect run`'s terms.
public enum RunOutcome: String, Sendable, Codable {
  case reproduced, clean, skip
}

/// What the bisection costs: building (and booting) a kernel once, and each run on it.
public struct BisectCosts: Sendable, Hashable {
  public var buildS: Double
  public var runS: Double
  public init(buildS: Double, runS: Double) {
    self.buildS = buildS
    self.runS = runS
  }
}

/// The budget: it stops when the culprit holds `confidence`, or when one of these is spent.
public struct BisectBudget: Sendable, Hashable {
  public var confidence: Double
  public var maxRuns: Int
  public var maxBuilds: Int
  public init(confidence: Double = 0.99, maxRuns: Int = 500, maxBuilds: Int = 1_000) {
    self.confidence = confidence
    self.maxRuns = maxRuns
    self.maxBuilds = maxBuilds
  }
}

/// What the bisection knows when it stops.
public struct BisectAnswer: Sendable, Hashable {
  /// The most likely culprit's index, and the range of indices it cannot be told apart from
  /// (commits around it that could not be tested); lower == upper when there are none.
  public var culprit: Int
  public var lower: Int
  public var upper: Int
  /// P(culprit in lower...upper).
  public var confidence: Double
  /// The most likely culprits, best first, with their probabilities.
  public var candidates: [(index: Int, probability: Double)]
  public var pEstimate: Double
  /// Whether `confidence` reached the asked one (else the budget ran out first).
  public var confident: Bool

  public static func == (a: BisectAnswer, b: BisectAnswer) -> Bool {
    a.culprit == b.culprit && a.lower == b.lower && a.upper == b.upper
      && a.confidence == b.confidence && a.confident == b.confident
  }
  public func hash(into h: inout Hasher) { h.combine(culprit) }
}

/// The statistical bisection: keeps the posterior over the culprit (and p), and picks each next
/// run where one run's expected information about the culprit, per unit of cost, is largest.
/// No I/O: the caller runs what `next()` asks and reports it with `record`.
public struct Bisection: Sendable {
  public private(set) var posterior: CulpritPosterior
  public let costs: BisectCosts
  public let budget: BisectBudget
  public private(set) var built: Set<Int> = []
  public private(set) var skipped: Set<Int> = []
  public private(set) var runs = 0
  public private(set) var skips = 0

  public init(count: Int, costs: BisectCosts, budget: BisectBudget, falseAlarm: Double = 0.002) {
    posterior = CulpritPosterior(count: count, falseAlarm: falseAlarm)
    self.costs = costs
    self.budget = budget
  }

  public var builds: Int { built.count }

  /// One run's answer on commit `i` (whose kernel is then built, unless the build failed).
  public mutating func record(commit i: Int, _ outcome: RunOutcome) {
    switch outcome {
    case .skip:
      skipped.insert(i)
      skips += 1
    case .reproduced, .clean:
      built.insert(i)
      runs += 1
      posterior.observe(commit: i, reproduced: outcome == .reproduced)
    }
  }

  public enum Step: Sendable, Hashable {
    case run(commit: Int)
    case done(BisectAnswer)
  }

  /// The next run to make, or the answer.
  public func next() -> Step {
    let m = posterior.marginals()
    let answer = self.answer(m.culprit, pMean: m.pMean)
    if answer.confident || runs >= budget.maxRuns { return .done(answer) }
    guard let i = bestRun(m.culprit, m.culpritTimesP, canBuild: builds < budget.maxBuilds) else {
      return .done(answer)
    }
    return .run(commit: i)
  }

  /// The answer from the marginal: the best culprit and the range skipped commits leave around
  /// it (culprits k and k+1 differ only in the runs on c_k).
  func answer(_ pi: [Double], pMean: Double) -> BisectAnswer {
    let best = pi.indices.max { pi[$0] < pi[$1] } ?? 0
    var lower = best
    while lower > 0, skipped.contains(lower - 1), !built.contains(lower - 1) { lower -= 1 }
    var upper = best
    while upper < pi.count - 1, skipped.contains(upper), !built.contains(upper) { upper += 1 }
    let mass = pi[lower...upper].reduce(0, +)
    let top = pi.indices.sorted { pi[$0] > pi[$1] }.prefix(5).map { ($0, pi[$0]) }
    return BisectAnswer(
      culprit: best, lower: lower, upper: upper, confidence: mass, candidates: top,
      pEstimate: pMean, confident: mass >= budget.confidence)
  }

  /// argmax over testable commits of (expected entropy drop of the culprit) / cost.
  func bestRun(_ pi: [Double], _ a: [Double], canBuild: Bool) -> Int? {
    let n = pi.count
    let e = posterior.falseAlarm
    func xlogx(_ x: Double) -> Double { x > 0 ? x * log(x) : 0 }
    // Prefix sums over k <= i of a, a log a, b = pi - a, b log b, pi, pi log pi.
    var sA = 0.0
    var sAlogA = 0.0
    var sB = 0.0
    var sBlogB = 0.0
    var sPi = 0.0
    var sPiLogPi = 0.0
    var totalPiLogPi = 0.0
    for k in 0..<n { totalPiLogPi += xlogx(pi[k]) }
    let h0 = -totalPiLogPi
    var best: (score: Double, index: Int)?
    for i in 0..<n {
      sA += a[i]
      sAlogA += xlogx(a[i])
      let b = max(0, pi[i] - a[i])
      sB += b
      sBlogB += xlogx(b)
      sPi += pi[i]
      sPiLogPi += xlogx(pi[i])
      if skipped.contains(i) && !built.contains(i) { continue }
      let isBuilt = built.contains(i)
      if !isBuilt && !canBuild { continue }
      let after = max(0, 1 - sPi)
      let afterLog = totalPiLogPi - sPiLogPi
      // Reproduced: k <= i weighs a(k); k > i weighs e pi(k).
      let z1 = sA + e * after
      let s1 = sAlogA + e * (after * log(e) + afterLog)
      // Clean: k <= i weighs pi - a; k > i weighs (1 - e) pi(k).
      let z0 = sB + (1 - e) * after
      let s0 = sBlogB + (1 - e) * (after * log1p(-e) + afterLog)
      var expected = 0.0
      if z1 > 0 { expected += z1 * log(z1) - s1 }
      if z0 > 0 { expected += z0 * log(z0) - s0 }
      let gain = h0 - expected
      let cost = costs.runS + (isBuilt ? 0 : costs.buildS)
      let score = gain / cost
      if best == nil || score > best!.score { best = (score, i) }
    }
    return best.map(\.index)
  }
}
