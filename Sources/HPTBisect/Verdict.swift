import Foundation

/// Does a patch fix a flaky crash? Runs alternate between the base kernel and the patched one;
/// each kernel's reproduction rate has a flat Beta(1, 1) prior. It stops as soon as it can say:
/// - fixes: P(patched rate < `fraction` x base rate) >= confidence, the base having reproduced;
/// - does not fix: the patched kernel reproduced the base's crash;
/// - regresses: the patched kernel showed a crash the base never did;
/// - cannot tell: the budget ran out first (or the base never reproduced).
public struct PatchVerdict: Sendable {
  public enum Answer: String, Sendable, Codable {
    case fixes
    case doesNotFix = "does-not-fix"
    case regresses
    case cannotTell = "cannot-tell"
  }

  public struct Side: Sendable {
    public var runs = 0
    public var reproduced = 0
    public var titles: Set<String> = []
  }

  public let confidence: Double
  public let fraction: Double
  public let maxRuns: Int
  public private(set) var base = Side()
  public private(set) var patched = Side()

  public init(confidence: Double = 0.99, fraction: Double = 0.1, maxRuns: Int = 200) {
    self.confidence = confidence
    self.fraction = fraction
    self.maxRuns = maxRuns
  }

  static let regressionRuns = 10

  /// Which kernel the next run is on: the one with fewer runs (base first).
  public var nextIsBase: Bool { base.runs <= patched.runs }

  /// One run: the crash titles it showed (empty: none).
  public mutating func record(base isBase: Bool, titles: [String]) {
    if isBase {
      base.runs += 1
      if !titles.isEmpty { base.reproduced += 1 }
      base.titles.formUnion(titles)
    } else {
      patched.runs += 1
      if !titles.isEmpty { patched.reproduced += 1 }
      patched.titles.formUnion(titles)
    }
  }

  /// P(patched rate < fraction x base rate | runs), on a grid of the base rate.
  public var fixProbability: Double {
    let steps = 400
    var total = 0.0
    var mass = 0.0
    for s in 0..<steps {
      let pb = (Double(s) + 0.5) / Double(steps)
      let w = Self.betaDensity(
        pb, Double(base.reproduced + 1), Double(base.runs - base.reproduced + 1))
      total += w
      mass +=
        w
        * Self.betaCDF(
          fraction * pb, Double(patched.reproduced + 1),
          Double(patched.runs - patched.reproduced + 1))
    }
    return total > 0 ? mass / total : 0
  }

  /// The answer now, or nil to keep running.
  public var answer: Answer? {
    if !patched.titles.isDisjoint(with: base.titles) { return .doesNotFix }
    // A title the base has not shown in enough runs to have shown it (a flaky crash shows
    // in several forms) is the patch's own.
    if !patched.titles.subtracting(base.titles).isEmpty && base.runs >= Self.regressionRuns {
      return .regresses
    }
    if base.reproduced > 0 && fixProbability >= confidence { return .fixes }
    if base.runs + patched.runs >= maxRuns { return .cannotTell }
    return nil
  }

  // Beta density and CDF by the regularized incomplete beta (continued fraction, as in
  // Numerical Recipes' betacf), enough for the integer parameters these counts give.
  static func logBeta(_ a: Double, _ b: Double) -> Double { lgamma(a) + lgamma(b) - lgamma(a + b) }

  static func betaDensity(_ x: Double, _ a: Double, _ b: Double) -> Double {
    exp((a - 1) * log(x) + (b - 1) * log1p(-x) - logBeta(a, b))
  }

  static func betaCDF(_ x: Double, _ a: Double, _ b: Double) -> Double {
    if x <= 0 { return 0 }
    if x >= 1 { return 1 }
    let front = exp(a * log(x) + b * log1p(-x) - logBeta(a, b))
    if x < (a + 1) / (a + b + 2) { return front * continuedFraction(x, a, b) / a }
    return 1 - exp(b * log1p(-x) + a * log(x) - logBeta(a, b)) * continuedFraction(1 - x, b, a) / b
  }

  static func continuedFraction(_ x: Double, _ a: Double, _ b: Double) -> Double {
    let tiny = 1e-300
    var c = 1.0
    var d = 1 - (a + b) * x / (a + 1)
    if abs(d) < tiny { d = tiny }
    d = 1 / d
    var h = d
    for m in 1...300 {
      let m = Double(m)
      var aa = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
      d = 1 + aa * d
      if abs(d) < tiny { d = tiny }
      c = 1 + aa / c
      if abs(c) < tiny { c = tiny }
      d = 1 / d
      h *= d * c
      aa = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
      d = 1 + aa * d
      if abs(d) < tiny { d = tiny }
      c = 1 + aa / c
      if abs(c) < tiny { c = tiny }
      d = 1 / d
      let del = d * c
      h *= del
      if abs(del - 1) < 1e-12 { break }
    }
    return h
  }
}
