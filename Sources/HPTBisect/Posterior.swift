import Foundation

/// The prior beliefs of a bisection, before any run: the culprit is uniform over the commits;
/// p (how often a run at or after the culprit reproduces) and e (how often a run before it
/// crashes for an unrelated reason) are on grids with weights.
public struct BisectPrior: Sendable, Hashable {
  public var p: [Double]
  public var pWeight: [Double]
  public var falseAlarm: [Double]
  public var falseAlarmWeight: [Double]

  public init(p: [Double], pWeight: [Double], falseAlarm: [Double], falseAlarmWeight: [Double]) {
    precondition(!p.isEmpty && p.count == pWeight.count)
    precondition(!falseAlarm.isEmpty && falseAlarm.count == falseAlarmWeight.count)
    precondition(p.allSatisfy { $0 > 0 && $0 <= 1 } && falseAlarm.allSatisfy { $0 > 0 && $0 < 1 })
    self.p = p
    self.pWeight = pWeight
    self.falseAlarm = falseAlarm
    self.falseAlarmWeight = falseAlarmWeight
  }

  /// p flat on 0.02, 0.04, ..., 1 (a flaky race's rate is as likely any value as another),
  /// with a fifth of the mass on p = 1 (many reproducers are deterministic, and a bisection
  /// of one should cost little more than binary search); e in 0.05%-1%, equally likely.
  public static let standard: BisectPrior = {
    let p = (1...50).map { Double($0) / 50 }
    var w = Array(repeating: 1.0, count: p.count)
    w[p.count - 1] = 12
    return BisectPrior(
      p: p, pWeight: w, falseAlarm: [0.0005, 0.002, 0.005, 0.01],
      falseAlarmWeight: [1, 1, 1, 1])
  }()

  /// The same grids, with p's weight proportional to 1/p below 1 (log-uniform: a rare
  /// reproducer as likely as a frequent one) and the same fifth of the mass on p = 1. The
  /// stopping rule asks it too (Bisection.stopPriors): under the flat prior a few lucky
  /// reproductions after the best culprit make p look higher than it is, and then the misses
  /// on commits before it look like proof that they are good; this prior does not believe
  /// that as readily.
  public static let lowRate: BisectPrior = {
    let std = BisectPrior.standard
    return BisectPrior(
      p: std.p, pWeight: rareRateWeights(std.p, power: 1), falseAlarm: std.falseAlarm,
      falseAlarmWeight: std.falseAlarmWeight)
  }()

  /// The corner of the low-rate prior: p's weight proportional to 1/p² below 1 (the same
  /// fifth on p = 1) and e weighted towards its high end (0.5, 2, 5, 10 on 0.05%-1%). At
  /// p = 0.05 with false alarms the stop's wrong answers were a few commits off: one missed
  /// reproduction, or one false alarm taken for one; a rarer reproducer and a noisier
  /// kernel explain both, and this prior is not sure until the runs rule them out.
  public static let rareAndNoisy: BisectPrior = {
    let low = BisectPrior.lowRate
    return BisectPrior(
      p: low.p, pWeight: rareRateWeights(low.p, power: 2), falseAlarm: low.falseAlarm,
      falseAlarmWeight: [0.5, 2, 5, 10])
  }()

  /// Weights on the grid `p` proportional to 1/p^power below 1, with a fifth of the mass on
  /// p = 1 (the grid's last point), as the standard prior has.
  private static func rareRateWeights(_ p: [Double], power: Int) -> [Double] {
    var w = p.map { x in x < 1 ? 1 / (1..<power).reduce(x) { r, _ in r * x } : 0 }
    w[w.count - 1] = w.reduce(0, +) / 4
    return w
  }

  /// The priors besides the flat one that a bisection must be sure under before it stops
  /// (Bisection.stopPriors; docs/bisection.md, "Stopping and the answer").
  public static let stopClass: [BisectPrior] = [.lowRate, .rareAndNoisy]

  /// One cell per (p, e) pair: index j * falseAlarm.count + f.
  var cellCount: Int { p.count * falseAlarm.count }
}

/// The runs so far on a history of `count` commits c_0 ... c_{count-1} (first-parent order,
/// the known-good commit just before c_0, the known-bad one c_{count-1}), and what they say
/// about the culprit (the first bad commit), p and e (docs/bisection.md).
///
/// Only the counts per commit matter, and the posterior of the culprit is the same for every k
/// between two tested commits (the same runs fall before and after it), so it is kept per
/// segment of untested commits: O(tested commits x grid) to compute, whatever `count` is.
public struct CulpritPosterior: Sendable {
  public let count: Int
  public let prior: BisectPrior
  public private(set) var reproduced: [Int: Int] = [:]
  public private(set) var clean: [Int: Int] = [:]

  public init(count: Int, prior: BisectPrior = .standard) {
    precondition(count >= 1)
    self.count = count
    self.prior = prior
  }

  public mutating func observe(commit i: Int, reproduced r: Bool) {
    precondition(i >= 0 && i < count)
    if r { reproduced[i, default: 0] += 1 } else { clean[i, default: 0] += 1 }
  }

  /// The same runs under another prior.
  public func with(prior: BisectPrior) -> CulpritPosterior {
    var q = CulpritPosterior(count: count, prior: prior)
    q.reproduced = reproduced
    q.clean = clean
    return q
  }

  public var tested: [Int] { Set(reproduced.keys).union(clean.keys).sorted() }

  /// The posterior, per segment.
  public func summary() -> PosteriorSummary { PosteriorSummary(self) }
}

/// One stretch of culprit candidates lower...upper with the same posterior each: the commits
/// after one tested commit up to and including the next.
public struct Segment: Sendable {
  public let lower: Int
  public let upper: Int
  /// P(culprit = k, cell) for one k of the segment, per (p, e) cell.
  var cells: [Double]
  /// P(culprit = k) for one k of it, and that times E[p | k] and E[e | k].
  public let pi: Double
  let a: Double
  let b: Double
  public var size: Int { upper - lower + 1 }
}

/// The joint posterior of (culprit, p, e), normalized, as segments.
public struct PosteriorSummary: Sendable {
  public let segments: [Segment]
  public let prior: BisectPrior
  /// P(p, e) per cell.
  let cellMass: [Double]

  init(_ post: CulpritPosterior) {
    let prior = post.prior
    self.prior = prior
    let tested = post.tested
    var ends = tested
    if ends.last != post.count - 1 { ends.append(post.count - 1) }
    // Runs at tested[l] for l >= m are at or after any k of segment m (k <= tested[m]).
    let r = ends.map { Double(post.reproduced[$0] ?? 0) }
    let c = ends.map { Double(post.clean[$0] ?? 0) }
    var rAfter = Array(repeating: 0.0, count: ends.count + 1)
    var cAfter = rAfter
    for m in stride(from: ends.count - 1, through: 0, by: -1) {
      rAfter[m] = rAfter[m + 1] + r[m]
      cAfter[m] = cAfter[m + 1] + c[m]
    }
    let logs = CellLogs(prior)
    var logCells: [[Double]] = []
    var top = -Double.infinity
    for m in ends.indices {
      let before = (rAfter[0] - rAfter[m], cAfter[0] - cAfter[m])
      let l = logs.logLikelihood(
        badR: rAfter[m], badC: cAfter[m], goodR: before.0, goodC: before.1)
      top = max(top, l.max() ?? top)
      logCells.append(l)
    }
    var z = 0.0
    var lower = 0
    var raw: [(Int, Int, [Double])] = []
    for m in ends.indices {
      let w = logCells[m].map { $0 == -.infinity ? 0 : exp($0 - top) }
      z += Double(ends[m] - lower + 1) * w.reduce(0, +)
      raw.append((lower, ends[m], w))
      lower = ends[m] + 1
    }
    var mass = Array(repeating: 0.0, count: prior.cellCount)
    let e = prior.falseAlarm.count
    segments = raw.map { (lo, hi, w) in
      let cells = w.map { $0 / z }
      var pi = 0.0
      var a = 0.0
      var b = 0.0
      for (i, v) in cells.enumerated() {
        pi += v
        a += v * prior.p[i / e]
        b += v * prior.falseAlarm[i % e]
        mass[i] += v * Double(hi - lo + 1)
      }
      return Segment(lower: lo, upper: hi, cells: cells, pi: pi, a: a, b: b)
    }
    cellMass = mass
  }

  /// The posterior mean of p.
  public var pMean: Double {
    let e = prior.falseAlarm.count
    return cellMass.enumerated().reduce(0) { $0 + $1.element * prior.p[$1.offset / e] }
  }

  /// The q-quantile of p's posterior.
  public func pQuantile(_ q: Double) -> Double {
    let e = prior.falseAlarm.count
    var acc = 0.0
    for j in prior.p.indices {
      for f in 0..<e { acc += cellMass[j * e + f] }
      if acc >= q { return prior.p[j] }
    }
    return prior.p.last!
  }

  /// The posterior mean of the false-alarm rate.
  public var falseAlarmMean: Double {
    let e = prior.falseAlarm.count
    return cellMass.enumerated().reduce(0) { $0 + $1.element * prior.falseAlarm[$1.offset % e] }
  }

  /// P(culprit = k) for every k.
  public func culprit(count: Int) -> [Double] {
    var pi = Array(repeating: 0.0, count: count)
    for s in segments { for k in s.lower...s.upper { pi[k] = s.pi } }
    return pi
  }

  /// The segment holding commit k.
  public func segmentIndex(of k: Int) -> Int {
    var lo = 0
    var hi = segments.count - 1
    while lo < hi {
      let mid = (lo + hi) / 2
      if segments[mid].upper < k { lo = mid + 1 } else { hi = mid }
    }
    return lo
  }
}

/// log P(p), log p, log(1-p), log e, log(1-e) per cell, computed once.
struct CellLogs {
  let logPrior: [Double]
  let logP: [Double]
  let log1mP: [Double]
  let logE: [Double]
  let log1mE: [Double]

  init(_ prior: BisectPrior) {
    let e = prior.falseAlarm.count
    let pw = prior.pWeight.reduce(0, +)
    let ew = prior.falseAlarmWeight.reduce(0, +)
    var lp: [Double] = []
    var a: [Double] = []
    var b: [Double] = []
    var c: [Double] = []
    var d: [Double] = []
    for j in prior.p.indices {
      for f in 0..<e {
        lp.append(log(prior.pWeight[j] / pw * prior.falseAlarmWeight[f] / ew))
        a.append(log(prior.p[j]))
        b.append(prior.p[j] >= 1 ? -.infinity : log1p(-prior.p[j]))
        c.append(log(prior.falseAlarm[f]))
        d.append(log1p(-prior.falseAlarm[f]))
      }
    }
    logPrior = lp
    logP = a
    log1mP = b
    logE = c
    log1mE = d
  }

  /// Per cell: log prior + log P(runs | culprit in this segment, cell), given the reproduced
  /// and clean runs at or after the culprit (bad) and before it (good).
  func logLikelihood(badR: Double, badC: Double, goodR: Double, goodC: Double) -> [Double] {
    logPrior.indices.map { i in
      // 0 x log 0 is 0: a clean run says nothing against p = 1 unless there is one.
      logPrior[i] + badR * logP[i] + (badC == 0 ? 0 : badC * log1mP[i]) + goodR * logE[i]
        + goodC * log1mE[i]
    }
  }
}
