import Foundation
import Testing

@testable import HPTBisect

@Suite struct BisectionTests {
  static let cheap = BisectCosts(buildS: 30, runS: 100)

  /// With p = 1 and no noise it is near binary search: it does not know p is 1, so it repeats
  /// a few clean runs before it believes them, but stays within a few times log2(N).
  @Test func aDeterministicBugIsBinarySearch() {
    for culprit in [0, 1, 63, 64, 99] {
      var h = FlakyHistory(count: 100, culprit: culprit, p: 1, falseAlarm: 0, seed: 1)
      let r = Bisection.trial(&h, costs: Self.cheap, budget: BisectBudget())
      #expect(r.answer == culprit)
      #expect(r.runs <= 25, "culprit \(culprit): \(r.runs) runs")
    }
  }

  /// A flaky bug (p = 0.3, unknown to it): right at the asked confidence, over seeds.
  @Test func aFlakyBugIsFoundAtTheAskedConfidence() {
    var right = 0
    for seed in 0..<20 {
      var h = FlakyHistory(
        count: 200, culprit: (seed * 37) % 200, p: 0.3, falseAlarm: 0.002, seed: UInt64(seed))
      let r = Bisection.trial(
        &h, costs: Self.cheap, budget: BisectBudget(confidence: 0.99, maxRuns: 2000))
      if r.answer == h.culprit { right += 1 }
      #expect(r.claimed >= 0.99)
    }
    #expect(right >= 19)
  }

  /// It stops only when the culprit also holds the confidence under every prior of the stop
  /// class (the low-rate one, the rare-and-noisy one), and the confidence it claims is the
  /// lowest; without stopPriors it is the flat prior's alone.
  @Test func theStopAsksEveryPriorOfTheClass() {
    #expect(BisectPrior.stopClass == [.lowRate, .rareAndNoisy])
    for seed in 0..<6 {
      var h = FlakyHistory(
        count: 100, culprit: (seed * 41) % 100, p: 0.15, falseAlarm: 0.005, seed: UInt64(seed))
      var b = Bisection(
        count: 100, costs: Self.cheap, budget: BisectBudget(confidence: 0.99, maxRuns: 3000))
      while case .run(let i) = b.next() { b.record(commit: i, h.run(i) ? .reproduced : .clean) }
      guard case .done(let a) = b.next() else { continue }
      #expect(a.confident)
      func mass(_ prior: BisectPrior?) -> Double {
        let s = prior.map { b.posterior.with(prior: $0).summary() } ?? b.posterior.summary()
        return s.culprit(count: 100)[a.lower...a.upper].reduce(0, +)
      }
      let masses = [mass(nil), mass(.lowRate), mass(.rareAndNoisy)]
      #expect(masses.allSatisfy { $0 >= 0.99 }, "seed \(seed): \(masses)")
      #expect(abs(a.confidence - masses.min()!) < 1e-12)
      // The rare-and-noisy prior believes the answer least: it is the one that binds.
      #expect(masses[2] <= masses[1] + 1e-12, "seed \(seed): \(masses)")
      var alone = b
      alone.stopPriors = []
      #expect(abs(alone.answer().confidence - masses[0]) < 1e-12)
    }
  }

  /// One stray crash before the culprit does not wreck the answer.
  @Test func oneFalseAlarmIsAbsorbed() {
    var b = Bisection(count: 50, costs: Self.cheap, budget: BisectBudget())
    b.record(commit: 10, .reproduced)  // a false alarm: the culprit is 30
    var h = FlakyHistory(count: 50, culprit: 30, p: 0.5, falseAlarm: 0, seed: 3)
    while case .run(let i) = b.next() { b.record(commit: i, h.run(i) ? .reproduced : .clean) }
    guard case .done(let a) = b.next() else { return }
    #expect(a.culprit == 30)
  }

  /// Commits that cannot be tested around the culprit make the answer a range.
  @Test func skippedCommitsMakeARange() {
    var b = Bisection(count: 20, costs: Self.cheap, budget: BisectBudget(confidence: 0.99))
    for i in 8..<12 { b.record(commit: i, .skip) }
    var h = FlakyHistory(count: 20, culprit: 10, p: 1, falseAlarm: 0, seed: 1)
    var steps = 0
    while case .run(let i) = b.next(), steps < 200 {
      #expect(!(8..<12).contains(i), "ran a skipped commit \(i)")
      b.record(commit: i, h.run(i) ? .reproduced : .clean)
      steps += 1
    }
    guard case .done(let a) = b.next() else { return }
    #expect(a.lower <= 10 && 10 <= a.upper && a.upper > a.lower, "\(a.lower)...\(a.upper)")
  }

  /// False alarms at 0.5% (the rate is unknown to it, and not the old fixed 0.2%): still right,
  /// and its 0.99 claims hold.
  @Test func falseAlarmsAtHalfAPercentDoNotMisleadIt() {
    var right = 0
    for seed in 0..<20 {
      var h = FlakyHistory(
        count: 200, culprit: (seed * 53 + 11) % 200, p: 0.3, falseAlarm: 0.005,
        seed: UInt64(seed))
      let r = Bisection.trial(
        &h, costs: Self.cheap, budget: BisectBudget(confidence: 0.99, maxRuns: 2000))
      if r.answer == h.culprit { right += 1 }
      #expect(r.claimed >= 0.99)
    }
    #expect(right >= 19)
  }

  /// The posterior kept per segment of untested commits is the posterior per commit: checked
  /// against a direct sum over every (culprit, p, e) cell on a small history.
  @Test func theSegmentPosteriorIsExact() {
    var post = CulpritPosterior(count: 30)
    let runs: [(Int, Bool)] = [
      (15, false), (15, true), (7, false), (7, false), (22, true), (11, false), (29, true),
      (11, true), (3, false), (15, false),
    ]
    for (i, r) in runs { post.observe(commit: i, reproduced: r) }
    let got = post.summary().culprit(count: 30)
    let prior = post.prior
    var want = Array(repeating: 0.0, count: 30)
    for k in 0..<30 {
      for (j, p) in prior.p.enumerated() {
        for (f, e) in prior.falseAlarm.enumerated() {
          var l = prior.pWeight[j] * prior.falseAlarmWeight[f]
          for (i, r) in runs {
            let q = i >= k ? p : e
            l *= r ? q : 1 - q
          }
          want[k] += l
        }
      }
    }
    let z = want.reduce(0, +)
    for k in 0..<30 {
      #expect(abs(got[k] - want[k] / z) < 1e-9, "culprit \(k): \(got[k]) vs \(want[k] / z)")
    }
  }

  /// With 30-minute builds and 5-minute runs, choosing by expected information per second
  /// builds fewer kernels, and costs less, than choosing by information per run.
  @Test func costAwareChoiceBuildsLessWhenBuildsAreExpensive() {
    let costs = BisectCosts(buildS: 1800, runS: 300)
    var aware = (builds: 0, cost: 0.0, right: 0)
    var byRuns = (builds: 0, cost: 0.0, right: 0)
    for seed in 0..<10 {
      let culprit = (seed * 71 + 5) % 300
      var h = FlakyHistory(count: 300, culprit: culprit, p: 0.3, falseAlarm: 0, seed: UInt64(seed))
      let a = Bisection.trial(&h, costs: costs, budget: BisectBudget(maxRuns: 2000))
      h = FlakyHistory(count: 300, culprit: culprit, p: 0.3, falseAlarm: 0, seed: UInt64(seed))
      let b = Bisection.trial(
        &h, costs: costs, budget: BisectBudget(maxRuns: 2000), choiceCosts: .runsOnly)
      aware.builds += a.builds
      aware.cost += a.costS
      aware.right += a.answer == culprit ? 1 : 0
      byRuns.builds += b.builds
      byRuns.cost += b.costS
      byRuns.right += b.answer == culprit ? 1 : 0
    }
    #expect(aware.right >= 9 && byRuns.right >= 9)
    #expect(aware.builds < byRuns.builds, "\(aware.builds) vs \(byRuns.builds) builds")
    #expect(aware.cost < byRuns.cost, "\(aware.cost) vs \(byRuns.cost) s")
    // Never more distinct kernels than 2 log2(N) on average.
    #expect(Double(aware.builds) / 10 <= 2 * log2(300.0))
  }

  /// With builds cheaper than runs (30 s against 100 s), charging a late kernel two runs keeps
  /// the kernels built within 2 log2(N) on average; charged its build time alone, the choice
  /// builds a fresh kernel next to a built one again and again.
  @Test func lateBuildsAreChargedAtLeastTwoRuns() {
    var charged = (builds: 0, runs: 0, right: 0)
    var plain = (builds: 0, runs: 0, right: 0)
    for seed in 0..<10 {
      let culprit = (seed * 71 + 5) % 300
      for late in [2.0, 0] {
        var h = FlakyHistory(
          count: 300, culprit: culprit, p: 0.2, falseAlarm: 0, seed: UInt64(seed))
        let t = Bisection.trial(
          &h, costs: Self.cheap, budget: BisectBudget(maxRuns: 3000), lateBuildRuns: late)
        if late > 0 {
          charged = (
            charged.builds + t.builds, charged.runs + t.runs,
            charged.right + (t.answer == culprit ? 1 : 0)
          )
        } else {
          plain = (
            plain.builds + t.builds, plain.runs + t.runs,
            plain.right + (t.answer == culprit ? 1 : 0)
          )
        }
      }
    }
    #expect(charged.right >= 9 && plain.right >= 9)
    #expect(Double(charged.builds) / 10 <= 2 * log2(300.0), "\(charged.builds) builds in 10 trials")
    #expect(charged.builds < plain.builds, "\(charged.builds) vs \(plain.builds) builds")
    // For at most a few percent more runs.
    #expect(
      Double(charged.runs) <= 1.1 * Double(plain.runs), "\(charged.runs) vs \(plain.runs) runs")
  }

  /// The same history and seed give the same runs and the same answer.
  @Test func aTrialIsDeterministicPerSeed() {
    func once() -> TrialResult {
      var h = FlakyHistory(count: 500, culprit: 321, p: 0.2, falseAlarm: 0.005, seed: 42)
      return Bisection.trial(&h, costs: Self.cheap, budget: BisectBudget(maxRuns: 3000))
    }
    let a = once()
    let b = once()
    #expect(a.answer == b.answer && a.runs == b.runs && a.builds == b.builds)
    #expect(a.claimed == b.claimed)
  }

  @Test func theInformationBound() {
    #expect(abs(informationBoundRuns(count: 1024, p: 1) - 10) < 1e-9)
    // Z-channel capacity at p = 0.5 is log2(1.25) bits.
    #expect(abs(informationBoundRuns(count: 1000, p: 0.5) - log2(1000) / log2(1.25)) < 1e-6)
  }
}

@Suite struct PatchVerdictTests {
  @Test func aFixIsCalledOnlyWithEnoughEvidence() {
    var v = PatchVerdict(confidence: 0.99, fraction: 0.1, maxRuns: 1000)
    var h = FlakyHistory(count: 2, culprit: 1, p: 0.5, falseAlarm: 0, seed: 9)
    while v.answer == nil {
      let isBase = v.nextIsBase
      v.record(base: isBase, titles: isBase && h.run(1) ? ["BUG in x"] : [])
    }
    #expect(v.answer == .fixes)
    #expect(v.patched.runs >= 40, "called a fix after \(v.patched.runs) clean runs")
    #expect(v.fixProbability >= 0.99)
  }

  @Test func theSameCrashOnThePatchedKernelDoesNotFix() {
    var v = PatchVerdict()
    v.record(base: true, titles: ["BUG in x"])
    v.record(base: false, titles: ["BUG in x"])
    #expect(v.answer == .doesNotFix)
  }

  @Test func aNewCrashRegressesOnceTheBaseHadItsChance() {
    var v = PatchVerdict()
    v.record(base: true, titles: [])
    v.record(base: false, titles: ["WARNING in y"])
    #expect(v.answer == nil)
    for _ in 0..<10 { v.record(base: true, titles: []) }
    #expect(v.answer == .regresses)
  }

  @Test func theBetaCDF() {
    // Beta(1, 1) is uniform; Beta(1, n) has CDF 1 - (1-x)^n.
    #expect(abs(PatchVerdict.betaCDF(0.3, 1, 1) - 0.3) < 1e-9)
    #expect(abs(PatchVerdict.betaCDF(0.05, 1, 47) - (1 - pow(0.95, 47))) < 1e-9)
  }
}
