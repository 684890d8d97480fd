import Foundation
import HPTRandom
import KVMHost
import KernelLog
import Synchronization
import Testing

@testable import HPTEngine

/// The one Runner over a scripted GuestFleet (a unit test of that layer; the real fleets run in
/// the dry runs, RawSimEndToEndTests, tcg-ci and lab-ci): what a fleet reports becomes the
/// same verdict, detail and error whatever the backend, and a host that went down is recovered.
@Suite struct RunnerFleetTests {
  /// A driver that commits every resize at once.
  final class InstantDriver: ResizeDriver, @unchecked Sendable {
    static let policies: Set<ResizePolicy> = [.grow, .shrink, .randomWalk]
    var guestName: String { "guest0" }
    var guestRunning: Bool { true }
    func startOrder(boot: UInt32) -> UInt32 { boot }
    func resize(from: UInt32, to: UInt32) -> ResizeOutcome {
      Thread.sleep(forTimeInterval: 0.005)
      return .committed(nil)
    }
  }

  /// Records given in turn, then silence (not finished: a host that stopped printing).
  final class ScriptedLog: KernelLogSource, @unchecked Sendable {
    var records: [KernelLogRecord]
    let lock = NSLock()
    init(_ records: [KernelLogRecord]) { self.records = records }
    func next(timeoutMs: Int) -> KernelLogRecord? {
      lock.locked { records.isEmpty ? nil : records.removeFirst() }
    }
    var isFinished: Bool { false }
  }

  /// A host that answers until `crashed` and records what the Runner asked of it.
  final class FakeMachine: HostMachine, @unchecked Sendable {
    let crashed = LockedFlag()
    var recoveredAfter: String?
    var name: String { "p9-test" }
    var emulatorGone: String? { nil }
    var vmlinux: String? { nil }
    let hungAfterS: Double
    /// What emulatorStarved says, and the windows it was asked about.
    let starved: String?
    let askedWindows = Mutex<[Double]>([])
    init(hungAfterS: Double = 1, starved: String? = nil) {
      self.hungAfterS = hungAfterS
      self.starved = starved
    }
    var figures: [String: Int] { ["lab_cpu_wait_worst_30s_pct": starved == nil ? 3 : 70] }
    func emulatorStarved(lastS: Double) -> String? {
      askedWindows.withLock { $0.append(lastS) }
      return starved
    }
    func answers(timeoutS: Double) -> Bool { !crashed.value }
    func probe(_ script: String) -> String? { nil }
    func startMemoryManagement(_ settings: HostMMSettings) throws -> (any HostMMRun)? { nil }
    func startTrace() {}
    func collectTrace(hostDown: Bool) {}
    var trace: HostTrace.Result? { nil }
    func saveRegisters(in outDir: URL) -> String? { nil }
    func recover(after what: String, outDir: URL, progress: ProgressPrinter, recorder: RunRecorder)
      -> [String: Int]
    {
      recoveredAfter = what
      return ["power_cycles": 1]
    }
  }

  final class ScriptedFleet: GuestFleet, @unchecked Sendable {
    let exec = ThreadExecutor()
    let log: ScriptedLog?
    let host: FakeMachine?
    /// What the fleet's own agent does to the run once the guests run.
    let act: @Sendable (Runner) -> Void
    let stopped = LockedFlag()
    let cleaned = LockedFlag()
    init(log: ScriptedLog?, host: FakeMachine?, act: @escaping @Sendable (Runner) -> Void) {
      self.log = log
      self.host = host
      self.act = act
    }
    var executor: any AgentExecutor { exec }
    func open(_ run: Runner) throws {}
    var hostLog: (source: any KernelLogSource, origin: LogOrigin)? {
      log.map { ($0, .host("p9-test")) }
    }
    var machine: (any HostMachine)? { host }
    var memoryHost: (any HostMachine)? { nil }
    var watchesHostForHang: Bool { host != nil }
    var lostChannel: String? { nil }
    var statistics: [String: Int] { [:] }
    func startGuests(_ run: Runner) throws -> [FleetGuest] {
      [FleetGuest(driver: InstantDriver(), rng: SplitMix64(seed: 1))]
    }
    func agents(_ run: Runner) -> [Agent] { [Agent(name: "fleet") { [act] in act(run) }] }
    func stop(_ run: Runner) { stopped.value = true }
    func cleanUp(_ run: Runner) { cleaned.value = true }
    func end(_ run: Runner) -> FleetEnd {
      FleetEnd(kernel: "test", kernelRelease: "6.1.0-test", target: "remote p9-test", figures: [:])
    }
  }

  func run(_ fleet: ScriptedFleet, seconds: Int = 30) throws -> (RunReport, URL) {
    let job = try Job.parse(
      """
      name: fleet
      backend: libvirt
      guests: {count: 1, memory_mib: 256, vcpus: 1, hpt_order: 20}
      budget: {duration_s: \(seconds)}
      resize: {orders: [19, 22], policy: random-walk}
      """, file: "fleet.yaml")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "hpthammer-fleet-\(UUID().uuidString)")
    let runner = Runner(job: job, fleet: fleet, outDir: dir, progress: false, reproduce: "-")
    return (runner.run(), dir)
  }

  /// The seed's oops with its end marker cut (a panic that stopped the machine): over after
  /// 5 s of quiet, a bug, and a host that then answers nothing is "host crash" and recovered.
  @Test func aHostThatCrashedSilentIsABugAndIsRecovered() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../KernelLogTests/Fixtures/001-ppc-seed-paging.log")
    let text = try String(contentsOf: url, encoding: .utf8)
    // The log's lines, not the fixture's header; the end marker cut.
    let oops = DmesgText.parse(text: text, origin: .host("p9-test")).filter {
      $0.timestampMicros != nil && !$0.text.contains("end trace")
    }
    // Silent for longer than the quiet that ends a report: a crash, not a hang.
    let host = FakeMachine(hungAfterS: 12)
    let log = ScriptedLog([])
    let fleet = ScriptedFleet(log: log, host: host) { _ in
      Thread.sleep(forTimeInterval: 0.3)
      log.lock.locked { log.records = oops }
      host.crashed.value = true
    }
    let (r, dir) = try run(fleet)
    defer { try? FileManager.default.removeItem(at: dir) }
    #expect(r.verdict == .bug)
    #expect(r.verdict_detail == "host crash")
    #expect(
      r.crashes.first?.title
        == "BUG: unable to handle kernel paging request in kvmppc_add_revmap_chain"
    )
    #expect(host.recoveredAfter == "host crash")
    #expect(r.figures?["power_cycles"] == 1)
    #expect(r.time_to_crash_s != nil)
    #expect(r.host_time_s < 20, "the quiet end stopped the run, not the 30 s budget")
    #expect(fleet.stopped.value && fleet.cleaned.value)
    let hostLog = try String(contentsOf: dir.appendingPathComponent("host.log"), encoding: .utf8)
    #expect(hostLog.contains("kvmppc_add_revmap_chain+0x50/0x120"))
  }

  /// A guest's failure as the fleet reports it: a finding, its detail, the end of the run; a
  /// hang is not timed.
  @Test func aGuestFailureEndsTheRunWithItsDetail() throws {
    let fleet = ScriptedFleet(log: nil, host: nil) { run in
      Thread.sleep(forTimeInterval: 0.2)
      run.guestFailed(
        Finding(
          title: "guest hang: guest0 sent no heartbeat for 1 s", type: "HANG", frame: nil,
          source: "guest0", expected: false, file: nil, corrupted: false),
        report: "no heartbeat\n", detail: "guest hang", timed: false)
    }
    let (r, dir) = try run(fleet)
    defer { try? FileManager.default.removeItem(at: dir) }
    #expect(r.verdict == .bug && r.verdict_detail == "guest hang")
    #expect(r.time_to_crash_s == nil)
    #expect(r.resizes.attempted > 0)
    #expect(r.host_time_s < 20)
    #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("crash-1.txt").path))
  }

  /// `fail` is the run's error (125) and ends it; an infrastructure failure after the host went
  /// down is not: the host explains it.
  @Test func errorsAreTheRunsUnlessTheHostWentDown() throws {
    let failing = ScriptedFleet(log: nil, host: nil) { run in
      run.fail("resizing is disabled for this domain")
      run.fail("a second reason is not kept")
    }
    let (r, dir) = try run(failing)
    defer { try? FileManager.default.removeItem(at: dir) }
    #expect(r.verdict == .error && r.error == "resizing is disabled for this domain")
    #expect(r.verdict.exitCode == 125)

    let host = FakeMachine()
    let hung = ScriptedFleet(log: ScriptedLog([]), host: host) { run in
      host.crashed.value = true  // silent and unanswering: the hang watch sees it
      Thread.sleep(forTimeInterval: 0.2)
      run.infrastructureFailed("libvirtd stopped answering", stop: false)
    }
    let (h, dir2) = try run(hung)
    defer { try? FileManager.default.removeItem(at: dir2) }
    #expect(h.verdict == .bug && h.verdict_detail == "host hang", "\(h.error ?? "")")
    #expect(h.error == nil)
    #expect(host.recoveredAfter == "host hang")
  }

  /// A fixture's log lines as the host's log gives them.
  func hostRecords(_ fixture: String) throws -> [KernelLogRecord] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../KernelLogTests/Fixtures/\(fixture)")
    let text = try String(contentsOf: url, encoding: .utf8)
    return DmesgText.parse(text: text, origin: .host("p9-test")).filter {
      $0.timestampMicros != nil
    }
  }

  /// A watchdog's report (a hard lockup) from an emulated host whose emulator was starved of
  /// CPU is kept as a finding, but the run could not test (125, the reason named); the same
  /// report from a host that ran is a bug, and so is an oops beside it on a starved one.
  @Test func aLockupOnAStarvedEmulatorIsNotTheKernels() throws {
    let lockup = try hostRecords("011-ppc-hard-lockup.log")
    let oops = try hostRecords("001-ppc-seed-paging.log")
    func runWith(_ records: [KernelLogRecord], starved: String?) throws -> (RunReport, FakeMachine)
    {
      let host = FakeMachine(hungAfterS: 30, starved: starved)
      let log = ScriptedLog([])
      let fleet = ScriptedFleet(log: log, host: host) { _ in
        Thread.sleep(forTimeInterval: 0.2)
        log.lock.locked { log.records = records }
      }
      let (r, dir) = try run(fleet, seconds: 3)
      try? FileManager.default.removeItem(at: dir)
      return (r, host)
    }
    let why = "the lab's emulator was starved of CPU: a QEMU thread waited 21.0 s of the last 30 s"
    let (starvedRun, host) = try runWith(lockup, starved: why)
    #expect(starvedRun.verdict == .error && starvedRun.error == why)
    #expect(starvedRun.verdict.exitCode == 125)
    #expect(starvedRun.crashes.map(\.title) == ["BUG: hard lockup in native_hpte_clear"])
    #expect(host.askedWindows.withLock { $0 } == [Runner.starvationWindowS])
    #expect(starvedRun.figures?["lab_cpu_wait_worst_30s_pct"] == 70)

    let (ranRun, _) = try runWith(lockup, starved: nil)
    #expect(ranRun.verdict == .bug && ranRun.error == nil)

    let (both, _) = try runWith(lockup + oops, starved: why)
    #expect(both.verdict == .bug, "\(both.error ?? "")")
    #expect(both.crashes.count == 2)
    // An oops alone does not ask: only watchdogs measure time.
    let (oopsOnly, oopsHost) = try runWith(oops, starved: why)
    #expect(oopsOnly.verdict == .bug && oopsHost.askedWindows.withLock { $0 }.isEmpty)
  }
}
