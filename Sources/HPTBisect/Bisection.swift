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
  /// Every run costs the same, built or not: the choice by runs alone.
  public static let runsOnly = BisectCosts(buildS: 0, runS: 1)
}

/// The budget: it stops when the culprit holds `confidence`, or when one of these is spent.
public struct BisectBudget: Sendable, Hashable {
  public var confidence: Double
  public var maxRuns: Int
  public var maxBuilds: Int
  /// Seconds of build and run cost (as recorded).
  public var maxCostS: Double
  public init(
    confidence: Double = 0.99, maxRuns: Int = 500, maxBuilds: Int = 1_000,
    maxCostS: Double = .infinity
  ) {
    self.confidence = confidence
    self.maxRuns = maxRuns
    self.maxBuilds = maxBuilds
    self.maxCostS = maxCostS
  }
}

/// What the bisection knows when it stops.
public struct BisectAnswer: Sendable {
  public enum Stop: String, Sendable {
    case confident
    case runs = "run budget spent"
    case builds = "build budget spent"
    case cost = "time budget spent"
    case untestable = "no commit left to test"
  }
  /// The most likely culprit, and the range of commits it cannot be told apart from (commits
  /// next to it that could not be tested); lower == upper when there are none.
  public var culprit: Int
  public var lower: Int
  public var upper: Int
  /// P(culprit in lower...upper).
  public var confidence: Double
  /// The most likely culprits, best first, with their probabilities.
  public var candidates: [(index: Int, probability: Double)]
  public var pEstimate: Double
  public var falseAlarmEstimate: Double
  public var stop: Stop?
  public var confident: Bool { stop == .confident }
}

/// The statistical bisection: keeps the posterior over the culprit (and p, and e), and picks
/// each next run where its expected information about the culprit per unit of cost is
/// largest. No I/O: the caller runs what `next()` asks and reports it with `record`.
public struct Bisection: Sendable {
  public private(set) var posterior: CulpritPosterior
  public let costs: BisectCosts
  public let budget: BisectBudget
  /// What a run is worth (GainMeasure): the information about the culprit unless told.
  public var measure: GainMeasure = .culprit
  /// The stopping rule's other priors: it stops only when the same culprit range holds the
  /// asked confidence under the bisection's prior and under each of these (the same runs
  /// weighed with another belief about p; docs/bisection.md, "Stopping"). Empty: the
  /// bisection's own posterior alone.
  public var stopPriors: [BisectPrior] = BisectPrior.stopClass
  /// Once log2(N) kernels are built (what a bisection without noise builds), a fresh kernel
  /// is charged at least this many runs in the choice, however cheap its build: late in a
  /// noisy search a new kernel next to a built one teaches little more than a repeat there,
  /// and cheap builds would otherwise multiply kernels (docs/bisection.md, "Late builds").
  /// Not applied when builds cost nothing (`BisectCosts.runsOnly`, a checkout without build).
  public var lateBuildRuns = 2.0
  public private(set) var built: Set<Int> = []
  public private(set) var skipped: Set<Int> = []
  public private(set) var runs = 0
  public private(set) var skips = 0
  public private(set) var spentS = 0.0

  public init(
    count: Int, costs: BisectCosts, budget: BisectBudget, prior: BisectPrior = .standard
  ) {
    posterior = CulpritPosterior(count: count, prior: prior)
    self.costs = costs
    self.budget = budget
  }

  public var count: Int { posterior.count }
  public var builds: Int { built.count }

  /// One answer on commit `i`: a run (its kernel is then built), or a skip (the build failed,
  /// or the run could not test it): a skipped commit is not chosen again. `costS` is what it
  /// cost, if measured (else the cost model's figure).
  public mutating func record(commit i: Int, _ outcome: RunOutcome, costS: Double? = nil) {
    let modelled = (built.contains(i) ? 0 : costs.buildS) + costs.runS
    spentS += costS ?? modelled
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

  /// A kernel built without a run yet (the driver builds before it runs).
  public mutating func recordBuild(commit i: Int, costS: Double? = nil) {
    if built.insert(i).inserted { spentS += costS ?? costs.buildS }
  }

  public enum Step: Sendable {
    case run(commit: Int)
    case done(BisectAnswer)
  }

  /// The next run to make, or the answer.
  public func next() -> Step {
    let s = posterior.summary()
    var a = answer(s)
    if a.confident { return .done(a) }
    if runs >= budget.maxRuns { a.stop = .runs }
    if spentS >= budget.maxCostS { a.stop = .cost }
    if a.stop != nil { return .done(a) }
    guard let i = bestRun(s) else {
      a.stop = builds >= budget.maxBuilds ? .builds : .untestable
      return .done(a)
    }
    return .run(commit: i)
  }

  /// The answer now, without choosing a next run.
  public func answer() -> BisectAnswer { answer(posterior.summary()) }

  /// The best culprit, and the range skipped commits leave around it: culprits k and k+1
  /// differ only in the runs on c_k, so if c_k has none and cannot be tested they are one.
  func answer(_ s: PosteriorSummary) -> BisectAnswer {
    let pi = s.culprit(count: count)
    let best = pi.indices.max { pi[$0] < pi[$1] } ?? 0
    let untestable = { (k: Int) in
      self.skipped.contains(k) && self.posterior.reproduced[k] == nil
        && self.posterior.clean[k] == nil
    }
    var lower = best
    while lower > 0, untestable(lower - 1) { lower -= 1 }
    var upper = best
    while upper < count - 1, untestable(upper) { upper += 1 }
    // The confidence claimed: the range's mass under the bisection's prior, or under one
    // of stopPriors if that is lower (only worth computing once the first is high).
    var mass = pi[lower...upper].reduce(0, +)
    if mass >= budget.confidence {
      for prior in stopPriors where mass >= budget.confidence {
        let other = posterior.with(prior: prior).summary().culprit(count: count)
        mass = min(mass, other[lower...upper].reduce(0, +))
      }
    }
    let top = pi.indices.sorted { pi[$0] > pi[$1] }.prefix(5).map { ($0, pi[$0]) }
    return BisectAnswer(
      culprit: best, lower: lower, upper: upper, confidence: mass, candidates: top,
      pEstimate: s.pMean, falseAlarmEstimate: s.falseAlarmMean,
      stop: mass >= budget.confidence ? .confident : nil)
  }

  /// argmax over testable commits of (expected information) / (cost): in each segment of
  /// the posterior, its best unbuilt commit (build + run) and every built one (run).
  func bestRun(_ s: PosteriorSummary) -> Int? {
    let table = GainTable(s, measure: measure)
    let canBuild = builds < budget.maxBuilds
    let buildS = buildCostInChoice()
    var best: (score: Double, index: Int)?
    func consider(_ i: Int, _ gain: Double) {
      let cost = costs.runS + (built.contains(i) ? 0 : buildS)
      let score = gain / max(cost, 1e-9)
      if best == nil || score > best!.score { best = (score, i) }
    }
    for k in built where !skipped.contains(k) {
      let m = s.segmentIndex(of: k)
      consider(k, table.gain(segment: m, u: k - s.segments[m].lower + 1))
    }
    guard canBuild else { return best?.index }
    for (m, seg) in s.segments.enumerated() where seg.pi * Double(seg.size) > 1e-9 {
      let hi = built.contains(seg.upper) ? seg.upper - 1 : seg.upper
      guard hi >= seg.lower else { continue }
      let (u, gain) = table.bestU(segment: m, 1, hi - seg.lower + 1)
      guard let i = nearestTestable(seg.lower + u - 1, in: seg.lower...hi) else { continue }
      consider(i, i == seg.lower + u - 1 ? gain : table.gain(segment: m, u: i - seg.lower + 1))
    }
    return best?.index
  }

  /// What a fresh kernel costs in the choice: its build, or `lateBuildRuns` runs once the
  /// noiseless bisection's log2(N) kernels are built, if that is more.
  func buildCostInChoice() -> Double {
    guard costs.buildS > 0, Double(builds) >= log2(Double(max(count, 2))) else {
      return costs.buildS
    }
    return max(costs.buildS, lateBuildRuns * costs.runS)
  }

  /// The commit nearest to i in r that is neither skipped nor built.
  func nearestTestable(_ i: Int, in r: ClosedRange<Int>) -> Int? {
    for d in 0...(r.count) {
      for j in [i - d, i + d] where r.contains(j) && !skipped.contains(j) && !built.contains(j) {
        return j
      }
    }
    return nil
  }
}
