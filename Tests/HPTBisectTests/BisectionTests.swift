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
