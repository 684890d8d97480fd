import Foundation

/// What one more run is worth: how much it is expected to teach about the culprit (in nats).
///
/// For a run on c_i, Y = 1 if it reproduces. With K the culprit and C = (p, e) the unknown
/// rates, P(Y = 1 | K = k, C) = p if k <= i, else e. Three measures of what Y teaches:
/// - `culprit`: I(K; Y), the mutual information between the culprit and the answer;
/// - `culpritGivenRates`: I(K; Y | C), what the run would teach if p and e were known
///   (each cell's gain, weighted by the cell's posterior): it does not count against a run
///   the ambiguity that the unknown p leaves in its answer, which the runs that follow
///   resolve anyway;
/// - `culpritAndRates`: I(K, C; Y), which also values what the run says about p.
///
/// The engine uses `culprit` (docs/bisection.md has what the others measured).
public enum GainMeasure: String, Sendable, CaseIterable {
  case culprit, culpritGivenRates, culpritAndRates
}

/// Binary entropy in nats.
@inline(__always) func h(_ x: Double) -> Double {
  if x <= 0 || x >= 1 { return 0 }
  return -x * log(x) - (1 - x) * log1p(-x)
}

/// The expected information of a run at any commit, from a posterior summary: per-segment
/// sums are precomputed so that each candidate costs O(1) (O(cells) for `culpritGivenRates`).
struct GainTable {
  let s: PosteriorSummary
  let measure: GainMeasure
  /// Over segments before m (prefix, index m) and after m (suffix, index m + 1).
  var prefA: [Double] = [0]
  var prefHA: [Double] = [0]
  var prefHp: [Double] = [0]
  var prefCells: [[Double]] = []
  var sufB: [Double]
  var sufHB: [Double]
  var sufHe: [Double]
  /// Per segment: per commit, P(K=k) h(E[p|k]), sum over cells of P(k,c) h(p_c), and for e.
  var hA: [Double] = []
  var hB: [Double] = []
  var hp: [Double] = []
  var he: [Double] = []
  let hpCell: [Double]
  let heCell: [Double]
  let pCell: [Double]
  let eCell: [Double]

  init(_ s: PosteriorSummary, measure: GainMeasure) {
    self.s = s
    self.measure = measure
    let e = s.prior.falseAlarm.count
    pCell = (0..<s.prior.cellCount).map { s.prior.p[$0 / e] }
    eCell = (0..<s.prior.cellCount).map { s.prior.falseAlarm[$0 % e] }
    hpCell = pCell.map(h)
    heCell = eCell.map(h)
    let n = s.segments.count
    sufB = Array(repeating: 0, count: n + 1)
    sufHB = sufB
    sufHe = sufB
    for seg in s.segments {
      hA.append(seg.pi > 0 ? seg.pi * h(seg.a / seg.pi) : 0)
      hB.append(seg.pi > 0 ? seg.pi * h(seg.b / seg.pi) : 0)
      var x = 0.0
      var y = 0.0
      for (c, v) in seg.cells.enumerated() {
        x += v * hpCell[c]
        y += v * heCell[c]
      }
      hp.append(x)
      he.append(y)
    }
    if measure == .culpritGivenRates { prefCells = [Array(repeating: 0, count: pCell.count)] }
    for (m, seg) in s.segments.enumerated() {
      let w = Double(seg.size)
      prefA.append(prefA[m] + w * seg.a)
      prefHA.append(prefHA[m] + w * hA[m])
      prefHp.append(prefHp[m] + w * hp[m])
      if measure == .culpritGivenRates {
        prefCells.append(zip(prefCells[m], seg.cells).map { $0 + w * $1 })
      }
    }
    for m in stride(from: n - 1, through: 0, by: -1) {
      let w = Double(s.segments[m].size)
      sufB[m] = sufB[m + 1] + w * s.segments[m].b
      sufHB[m] = sufHB[m + 1] + w * hB[m]
      sufHe[m] = sufHe[m + 1] + w * he[m]
    }
  }

  /// The expected information of a run at the commit `u` places into segment m (u = 1: its
  /// first commit; u = size: its last).
  func gain(segment m: Int, u: Int) -> Double {
    let seg = s.segments[m]
    let left = Double(u)
    let right = Double(seg.size - u)
    switch measure {
    case .culprit:
      let p1 = prefA[m] + left * seg.a + right * seg.b + sufB[m + 1]
      let cond = prefHA[m] + left * hA[m] + right * hB[m] + sufHB[m + 1]
      return h(p1) - cond
    case .culpritAndRates:
      let p1 = prefA[m] + left * seg.a + right * seg.b + sufB[m + 1]
      return h(p1) - noise(m, left, right)
    case .culpritGivenRates:
      var total = 0.0
      for c in pCell.indices {
        let mass = s.cellMass[c]
        if mass <= 0 { continue }
        let l = prefCells[m][c] + left * seg.cells[c]
        total += mass * h((pCell[c] * l + eCell[c] * (mass - l)) / mass)
      }
      return total - noise(m, left, right)
    }
  }

  /// E[h(P(Y=1 | K, C))]: what is left uncertain about the answer when everything is known.
  func noise(_ m: Int, _ left: Double, _ right: Double) -> Double {
    prefHp[m] + left * hp[m] + right * he[m] + sufHe[m + 1]
  }

  /// The u in lo...hi with the largest gain: the gain is concave in u within a segment (the
  /// entropy of a probability linear in u, minus a term linear in u), so a ternary search.
  func bestU(segment m: Int, _ lo: Int, _ hi: Int) -> (u: Int, gain: Double) {
    var a = lo
    var b = hi
    while b - a > 2 {
      let x = a + (b - a) / 3
      let y = b - (b - a) / 3
      if gain(segment: m, u: x) < gain(segment: m, u: y) { a = x + 1 } else { b = y }
    }
    var best = (u: a, gain: gain(segment: m, u: a))
    for u in a...b {
      let g = gain(segment: m, u: u)
      if g > best.gain { best = (u, g) }
    }
    return best
  }
}
