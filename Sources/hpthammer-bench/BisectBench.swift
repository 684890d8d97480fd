import Foundation
import HPTBisect

/// `hpthammer-bench bisect [TRIALS] [N]`: the statistical bisection against git bisect's,
/// ktest's and syzkaller's rules on simulated flaky histories (p unknown to the engine), in
/// two cost models, beside the information bound. Each rule sees the same histories.
func bisectBench(trials: Int, count: Int, ps: [Double]) {
  let models = [
    ("build 30 min + run 5 min", BisectCosts(buildS: 1800, runS: 300)),
    ("build 30 s + run 100 s", BisectCosts(buildS: 30, runS: 100)),
  ]
  let rules: [BaselineRule] = [.gitBisect, .ktest(tries: 5), .syzkaller]
  let t0 = Date()
  for (modelName, costs) in models {
    print("== cost model: \(modelName); N = \(count), \(trials) trials per row, confidence 0.99")
    print(
      "p     false-alarm  rule                      correct  mean runs  runs/bound  builds (max)  cost (h)  calibrated"
    )
    for falseAlarm in [0.0, 0.005] {
      for p in ps {
        let bound = informationBoundRuns(count: count, p: p)
        func history(_ t: Int) -> FlakyHistory {
          var seedGen = FlakyHistory(count: count, culprit: 0, p: p, falseAlarm: 0, seed: UInt64(t))
          let culprit = Int(seedGen.uniform() * Double(count))
          return FlakyHistory(
            count: count, culprit: culprit, p: p, falseAlarm: falseAlarm,
            seed: UInt64(t) &* 7919 &+ UInt64(p * 1000))
        }
        var rows: [(String, [TrialResult], [Int])] = []
        for rule in rules {
          var results: [TrialResult] = []
          var truth: [Int] = []
          for t in 0..<trials {
            var h = history(t)
            truth.append(h.culprit)
            results.append(rule.bisect(&h, costs: costs))
          }
          rows.append((rule.name, results, truth))
        }
        var results: [TrialResult] = []
        var truth: [Int] = []
        for t in 0..<trials {
          var h = history(t)
          truth.append(h.culprit)
          results.append(
            Bisection.trial(&h, costs: costs, budget: BisectBudget(confidence: 0.99, maxRuns: 3000))
          )
        }
        rows.append(("HPTHammer (Bayesian, p unknown)", results, truth))
        if costs.buildS > costs.runS {
          // The same engine choosing by runs alone (a build costs nothing to the choice), its
          // cost counted with the model's: what the cost-aware choice saves.
          var results: [TrialResult] = []
          for t in 0..<trials {
            var h = history(t)
            results.append(
              Bisection.trial(
                &h, costs: costs, budget: BisectBudget(confidence: 0.99, maxRuns: 3000),
                choiceCosts: .runsOnly))
          }
          rows.append(("HPTHammer, by runs alone", results, truth))
        }
        for (name, rs, truth) in rows {
          let correct = zip(rs, truth).filter { $0.0.answer == $0.1 }.count
          let runs = Double(rs.map(\.runs).reduce(0, +)) / Double(rs.count)
          let builds = Double(rs.map(\.builds).reduce(0, +)) / Double(rs.count)
          let cost = rs.map(\.costS).reduce(0, +) / Double(rs.count) / 3600
          let claims = zip(rs, truth).filter { $0.0.claimed >= 0.99 }
          let maxBuilds = rs.map(\.builds).max() ?? 0
          let calibrated =
            name.hasPrefix("HPTHammer")
            ? String(format: "%d/%d", claims.filter { $0.0.answer == $0.1 }.count, claims.count)
            : "-"
          print(
            String(
              format: "%-5.2f %-12.3f %-25@ %6.1f%%  %9.1f  %10.2f  %6.1f (%3d)  %8.1f  %@", p,
              falseAlarm,
              name as NSString, 100 * Double(correct) / Double(rs.count), runs, runs / bound,
              builds, maxBuilds,
              cost, calibrated as NSString))
        }
        print(String(format: "      information bound: %.1f runs", bound))
      }
    }
  }
  print(String(format: "bench wall time: %.1f s", Date().timeIntervalSince(t0)))
}

/// `hpthammer-bench bisect-engine TRIALS N P,... [expensive|cheap] [FALSE_ALARM] [MEASURE]
/// [runs-only] [known-p] [wrong] [flat-stop] [reference] [confidence=C]`: the engine alone on the
/// same histories as `bisect`, in one cost model (`expensive`: build 30 min + run 5 min;
/// `cheap`: build 30 s + run 100 s), to compare variants quickly: the gain measure
/// (GainMeasure), choosing by runs alone, or p (and e) known to it; `wrong` lists the wrong
/// answers; `flat-stop` stops on the flat prior's posterior alone (no Bisection.stopPriors: the
/// rule before the low-rate prior's check); `reference` is the issue's greedy reference (p flat
/// on its grid with no extra mass on p = 1, e known to be 0.05%, the flat stop, choosing by
/// runs alone); `confidence=C` stops at C instead of 0.99 (runs against accuracy).
func bisectEngineBench(
  trials: Int, count: Int, ps: [Double], model: String, falseAlarm: Double,
  measure: GainMeasure, runsOnly: Bool, knownP: Bool, listWrong: Bool, flatStop: Bool = false,
  reference: Bool = false, confidence: Double = 0.99
) {
  let costs =
    model == "cheap" ? BisectCosts(buildS: 30, runS: 100) : BisectCosts(buildS: 1800, runS: 300)
  print(
    "engine: model \(model), false alarms \(falseAlarm), measure \(measure.rawValue)"
      + (runsOnly ? ", choosing by runs alone" : "") + (knownP ? ", p known" : "")
      + (flatStop ? ", stop on the flat prior alone" : "")
      + (reference ? ", the issue's greedy reference" : "")
      + "; N = \(count), \(trials) trials, confidence \(confidence)")
  let t0 = Date()
  for p in ps {
    let bound = informationBoundRuns(count: count, p: p)
    var rs: [TrialResult] = []
    var truth: [Int] = []
    for t in 0..<trials {
      var seedGen = FlakyHistory(count: count, culprit: 0, p: p, falseAlarm: 0, seed: UInt64(t))
      let culprit = Int(seedGen.uniform() * Double(count))
      var h = FlakyHistory(
        count: count, culprit: culprit, p: p, falseAlarm: falseAlarm,
        seed: UInt64(t) &* 7919 &+ UInt64(p * 1000))
      truth.append(culprit)
      let prior =
        knownP
        ? BisectPrior(
          p: [p], pWeight: [1], falseAlarm: [max(falseAlarm, 0.0005)], falseAlarmWeight: [1])
        : reference ? referencePrior : .standard
      rs.append(
        Bisection.trial(
          &h, costs: costs, budget: BisectBudget(confidence: confidence, maxRuns: 3000),
          prior: prior, measure: measure, choiceCosts: runsOnly || reference ? .runsOnly : nil,
          stopPriors: flatStop || knownP || reference ? [] : BisectPrior.stopClass))
    }
    let correct = zip(rs, truth).filter { $0.0.answer == $0.1 }.count
    let runs = Double(rs.map(\.runs).reduce(0, +)) / Double(rs.count)
    let builds = Double(rs.map(\.builds).reduce(0, +)) / Double(rs.count)
    let cost = rs.map(\.costS).reduce(0, +) / Double(rs.count) / 3600
    let claims = zip(rs, truth).filter { $0.0.claimed >= confidence }
    print(
      String(
        format:
          "p %.2f  correct %5.1f%%  runs %7.1f (%.2fx)  builds %5.1f (max %d)  cost %6.1f h  %g claims right %d/%d",
        p, 100 * Double(correct) / Double(rs.count), runs, runs / bound, builds,
        rs.map(\.builds).max() ?? 0, cost, confidence,
        claims.filter { $0.0.answer == $0.1 }.count, claims.count))
    if listWrong {
      let wrong = zip(rs, truth).filter { $0.0.answer != $0.1 }.map {
        "\($0.0.answer.map(String.init) ?? "none") for \($0.1) at "
          + String(format: "%.4f", $0.0.claimed)
      }
      print("  wrong: \(wrong)")
    }
  }
  print(String(format: "wall %.1f s", Date().timeIntervalSince(t0)))
}

/// The issue's greedy reference's prior: p flat on the standard grid (0.02-1) with no extra
/// mass on p = 1, and the false-alarm rate known to be 0.05%.
let referencePrior = BisectPrior(
  p: BisectPrior.standard.p, pWeight: BisectPrior.standard.p.map { _ in 1 },
  falseAlarm: [0.0005], falseAlarmWeight: [1])
