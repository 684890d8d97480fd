import Foundation
import HPTSim
import KVMHost
import Testing

@testable import HPTEngine

/// The one Hammer over a scripted ResizeDriver (a unit test of that layer; the real drivers
/// run in the dry runs, RawSimEndToEndTests, tcg-ci and lab-ci): every outcome is counted
/// and classified the same way whatever the backend.
@Suite struct HammerTests {
  /// Answers each step from a script, on a clock that moves 1 ms per sleep.
  final class ScriptedDriver: ResizeDriver, AgentExecutor, @unchecked Sendable {
    static let policies = Set(ResizePolicy.allCases)
    var script: [ResizeOutcome]
    var steps: [String] = []
    var now: UInt64 = 0
    var stop = false
    init(_ script: [ResizeOutcome]) { self.script = script }

    var guestName: String { "guest0" }
    var guestRunning: Bool { true }
    func startOrder(boot: UInt32) -> UInt32 { boot }
    func next(_ step: String) -> ResizeOutcome {
      steps.append(step)
      if script.isEmpty { return .stopping }
      return script.removeFirst()
    }
    func resize(from: UInt32, to: UInt32) -> ResizeOutcome { next("resize \(from)->\(to)") }
    func cancelDuringPrepare(to: UInt32, other: UInt32, choose: () -> Int) -> ResizeOutcome {
      next("cancel \(to)")
    }
    func commitWithoutPrepare(to: UInt32) -> ResizeOutcome { next("commit-without \(to)") }
    func commitBeforeRun(at: UInt32) -> ResizeOutcome { next("before-run \(at)") }
    func reboot(to boot: UInt32, budgetSpent: () -> Bool) -> ResizeOutcome { next("reboot") }

    func run(_ agents: [Agent]) {}
    var nowNs: UInt64 { now }
    func sleep(ms: Int) { now += UInt64(ms) * 1_000_000 }
    func requestStop() { stop = true }
    var stopRequested: Bool { stop }
  }

  func hammer(_ policy: String, _ script: [ResizeOutcome], extra: String = "") throws -> (
    Hammer, ScriptedDriver, RunStats
  ) {
    let job = try Job.parse(
      """
      name: h
      backend: sim
      guests: {count: 1, memory_mib: 256, vcpus: 1, hpt_order: 20}
      budget: {resizes: 100}
      resize: {orders: [19, 22], policy: \(policy)\(extra)}
      """, file: "h.yaml")
    let d = ScriptedDriver(script)
    let stats = RunStats()
    let h = Hammer(
      driver: d, job: job, stats: stats, executor: d, rng: SplitMix64(seed: 1),
      budget: Budget(startNs: 0, durationS: nil, resizes: job.resizeBudget))
    return (h, d, stats)
  }

  @Test func outcomesAreCountedAndClassifiedByTheTable() throws {
    let t = ResizeTimings(prepareNs: 2_000_000, commitNs: 1_000_000, atNs: 5)
    let (h, d, stats) = try hammer(
      "grow",
      [
        .committed(t),  // 20 -> 21
        .refused(op: "PREPARE", errno: .ENOMEM, timings: nil),  // expected anywhere
        .refused(op: "COMMIT", errno: .EBUSY, timings: t),  // only cancel may see EBUSY
        .excused(op: "hpt_order", answer: "EIO", why: "near hotplug"),
        .wrong(op: "COMMIT", answer: "0 (success) with nothing prepared"),
        .configError("resizing is disabled"),
      ])
    h.run()
    #expect(d.steps == ["resize 20->21"] + Array(repeating: "resize 21->22", count: 5))
    stats.with {
      #expect($0.attempted == 6)
      #expect($0.succeeded == 1)
      #expect($0.failedExpected == 2)  // ENOMEM, near hotplug
      #expect($0.failedUnexpected == 2)  // EBUSY outside cancel, the wrong success
      #expect($0.unexpected.map(\.op) == ["COMMIT", "COMMIT"])
      #expect($0.unexpected.first?.answer == "EBUSY")
      #expect($0.answers["hpt_order near hotplug"]?["EIO"] == 1)
      #expect($0.prepareToReadyUs.totalCount == 2)  // the committed one and the refused COMMIT's
      #expect($0.commitUs.totalCount == 1)
    }
    #expect(h.configError == "resizing is disabled")
    #expect(d.stopRequested)
  }

  @Test func theSameRefusalIsExpectedOnlyWhereTheKernelMustGiveIt() {
    typealias E = ExpectedAnswers
    #expect(E.expected(op: "COMMIT", errno: .EBUSY, policy: .cancelDuringPrepare, from: 20, to: 21))
    #expect(!E.expected(op: "COMMIT", errno: .EBUSY, policy: .grow, from: 20, to: 21))
    #expect(E.expected(op: "COMMIT", errno: .ENOSPC, policy: .shrink, from: 21, to: 20))
    #expect(!E.expected(op: "COMMIT", errno: .ENOSPC, policy: .grow, from: 20, to: 21))
    #expect(
      E.expected(op: "COMMIT", errno: .ENXIO, policy: .commitWithoutPrepare, from: 20, to: 20))
    #expect(E.expected(op: "COMMIT", errno: .EIO, policy: nil, from: 20, to: 20, beforeRun: true))
    #expect(!E.expected(op: "COMMIT", errno: .EIO, policy: .grow, from: 20, to: 21))
    #expect(E.expected(op: "hpt_order", errno: .EINVAL, policy: .grow, from: 46, to: 47))
    #expect(!E.expected(op: "hpt_order", errno: .EINVAL, policy: .grow, from: 20, to: 21))
    #expect(E.expected(op: "hpt_order", errno: .EPERM, policy: .grow, from: 20, to: 21))
    #expect(!E.expected(op: "hpt_order", errno: .EPERM, policy: .shrink, from: 21, to: 20))
  }

  @Test func aRebootIsNotAnAttemptAndPutsTheOrderBackAtBoot() throws {
    let (h, d, stats) = try hammer("[grow, reboot]", [])
    d.script = [.committed(nil), .reset, .committed(nil), .reset, .committed(nil), .reset]
    h.run()
    let resizes = d.steps.filter { $0.hasPrefix("resize") }
    // Every resize after a reset starts from the boot order again.
    #expect(resizes.allSatisfy { $0 == "resize 20->21" }, "\(d.steps)")
    #expect(d.steps.contains("reboot"))
    stats.with { #expect($0.attempted == resizes.count) }  // reboots are not attempts
  }
}
