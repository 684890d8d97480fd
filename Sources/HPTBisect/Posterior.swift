import Foundation

/// What the bisection believes about a history of `count` commits c_0 ... c_{count-1} (first
/// parent order, c_{count-1} the known-bad commit, the known-good one just before c_0): which
/// commit is the culprit (the first bad one), and how often a run on a bad commit reproduces.
///
/// The model (docs/bisection.md): the culprit k is uniform over 0..<count; a run on c_i with
/// i >= k reproduces with probability p, unknown, with a grid prior over (0, 1]; a run with
/// i < k reproduces only through an unrelated false alarm, at rate `falseAlarm`. Runs are
/// independent given (k, p). Only the counts per commit matter, so an update is O(1) and a
/// posterior is O(count x grid).
public struct CulpritPosterior: Sendable {
  public let count: Int
  /// The values p may take, and their prior weights (normalized).
  public let pGrid: [Double]
  public let pPrior: [Double]
  public let falseAlarm: Double
  /// Runs per commit that reproduced, and that did not.
  public private(set) var reproduced: [Int]
  public private(set) var clean: [Int]

  public init(
    count: Int, falseAlarm: Double = 0.002,
    pGrid: [Double] = stride(from: 0.02, through: 1.0, by: 0.02).map { $0 },
    pPrior: [Double]? = nil
  ) {
    precondition(count >= 1 && !pGrid.isEmpty)
    self.count = count
    self.falseAlarm = falseAlarm
    self.pGrid = pGrid
    // Flat over the grid unless told otherwise: flaky races are the point, so low p is as
    // likely as high p a priori.
    let prior = pPrior ?? Array(repeating: 1, count: pGrid.count)
    let sum = prior.reduce(0, +)
    self.pPrior = prior.map { $0 / sum }
    reproduced = Array(repeating: 0, count: count)
    clean = Array(repeating: 0, count: count)
  }

  /// One run on commit `i`.
  public mutating func observe(commit i: Int, reproduced r: Bool) {
    if r { reproduced[i] += 1 } else { clean[i] += 1 }
  }

  /// The joint posterior, normalized: `cells[k * grid + j]` = P(culprit k, p = pGrid[j] | runs).
  public func joint() -> [Double] {
    let g = pGrid.count
    // Suffix counts: runs at commits >= k (all on bad commits if k is the culprit).
    var rAtOrAfter = Array(repeating: 0, count: count + 1)
    var cAtOrAfter = Array(repeating: 0, count: count + 1)
    for i in stride(from: count - 1, through: 0, by: -1) {
      rAtOrAfter[i] = rAtOrAfter[i + 1] + reproduced[i]
      cAtOrAfter[i] = cAtOrAfter[i + 1] + clean[i]
    }
    let rAll = rAtOrAfter[0]
    let cAll = cAtOrAfter[0]
    let logP = pGrid.map { log($0) }
    let log1mP = pGrid.map { $0 >= 1 ? -Double.infinity : log1p(-$0) }
    let logPrior = pPrior.map { log($0) }
    let logE = log(falseAlarm)
    let log1mE = log1p(-falseAlarm)
    var cells = Array(repeating: 0.0, count: count * g)
    var top = -Double.infinity
    for k in 0..<count {
      let rBad = Double(rAtOrAfter[k])
      let cBad = Double(cAtOrAfter[k])
      let before = Double(rAll - rAtOrAfter[k]) * logE + Double(cAll - cAtOrAfter[k]) * log1mE
      for j in 0..<g {
        // 0 * log(0) is 0: a clean run says nothing against p = 1 unless there is one.
        let bad = rBad * logP[j] + (cBad == 0 ? 0 : cBad * log1mP[j])
        let v = logPrior[j] + before + bad
        cells[k * g + j] = v
        if v > top { top = v }
      }
    }
    var sum = 0.0
    for i in cells.indices {
      cells[i] = cells[i] == -Double.infinity ? 0 : exp(cells[i] - top)
      sum += cells[i]
    }
    for i in cells.indices { cells[i] /= sum }
    return cells
  }

  /// The culprit's marginal, and for each k the mass weighted by p (what a run at or after k
  /// reproduces with), from one joint computation.
  public func marginals() -> (culprit: [Double], culpritTimesP: [Double], pMean: Double) {
    let cells = joint()
    let g = pGrid.count
    var culprit = Array(repeating: 0.0, count: count)
    var weighted = Array(repeating: 0.0, count: count)
    var pMean = 0.0
    for k in 0..<count {
      var m = 0.0
      var w = 0.0
      for j in 0..<g {
        m += cells[k * g + j]
        w += cells[k * g + j] * pGrid[j]
      }
      culprit[k] = m
      weighted[k] = w
      pMean += w
    }
    return (culprit, weighted, pMean)
  }
}
