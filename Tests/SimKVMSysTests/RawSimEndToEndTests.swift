import Foundation
import HPTSim
import KVMHost
import RawKVM
import SimKVMSys
import Testing

@testable import HPTEngine

/// The raw backend's code (RawKVM over the KVMSys handles) against the simulated kernel,
/// through SimSyscalls, driven by the engine's unchanged Runner and Hammer.
@Suite struct RawSimEndToEndTests {
  func job(kernel: String, seed: UInt64 = 1, resizes: Int? = nil, durationS: Double? = 60) -> Job {
    var j = Job(name: "raw-sim-test")
    j.backend = .rawSim
    j.kernel = kernel
    j.seed = seed
    j.orderMin = 19
    j.orderMax = 23
    j.durationS = durationS
    j.resizeBudget = resizes
    return j
  }

  func run(_ j: Job) throws -> (RunReport, URL, SimSyscalls) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "hpthammer-rawsim-\(UUID().uuidString)")
    let model = KernelModel.named(j.kernel)!
    let sys = SimSyscalls(
      host: SimHost(model: model, seed: j.seed, bootUptimeS: j.hostUptimeS))
    let host = try RawKVMSystem(
      syscalls: sys, executor: sys.executor, kernelLog: sys.kernelLog,
      hostName: sys.host.hostName, statistics: { sys.statistics })
    let kernel = HostKernel(name: model.name, release: model.release)
    let r = Runner(
      job: j, host: host, kernel: kernel, outDir: dir, progress: false, reproduce: "test"
    ).run()
    return (r, dir, sys)
  }

  /// The seed's race, found through the raw VMM's ioctls on the pre-fix kernel.
  @Test func preFixKernelShowsTheSeedRace() throws {
    let (r, dir, sys) = try run(job(kernel: "4.14.0-rc4"))
    #expect(r.verdict == .bug)
    #expect(r.verdict.exitCode == 1)
    #expect(r.backend == "raw-sim")
    let c = try #require(r.crashes.first { !$0.expected })
    #expect(c.title == "BUG: unable to handle kernel paging request in kvmppc_add_revmap_chain")
    let log = try String(contentsOf: dir.appendingPathComponent("host.log"), encoding: .utf8)
    #expect(log.contains("kvmppc_book3s_hv_page_fault"))
    #expect(sys.lastError == nil)
    // The payload ran: the parameter block reached the simulated guests, which faulted.
    #expect((sys.statistics["hypervisor_faults"] ?? 0) > 0)
  }

  /// The fixed kernel passes the same job; the payloads verified pages (the reports came
  /// back through kvm_run) and the host load went through madvise.
  @Test func fixedKernelPasses() throws {
    let (r, _, sys) = try run(job(kernel: "6.1", durationS: 5))
    #expect(r.verdict == .pass, "\(r.crashes) \(r.error ?? "")")
    #expect(r.crashes.isEmpty)
    #expect(r.resizes.succeeded > 0)
    #expect(r.resizes.failed_unexpected == 0)
    #expect(r.guests.pages_verified > 0)
    #expect(r.guests.mismatches == 0)
    #expect((sys.statistics["pages_invalidated"] ?? 0) > 0)
  }

  /// Page migration through the raw VMM: move_pages of guest RAM to the simulated POWER9's
  /// two nodes in turn, each a migration under the MMU notifier; the fixed kernel passes and
  /// run.json counts the pages moved.
  @Test func migrationMovesPagesAndTheFixedKernelPasses() throws {
    var j = job(kernel: "6.1", durationS: 5)
    j.invalidateAdvice = .migrate
    let (r, _, _) = try run(j)
    #expect(r.verdict == .pass, "\(r.crashes) \(r.error ?? "")")
    #expect(r.guests.pages_verified > 0 && r.guests.mismatches == 0)
    #expect((r.figures?["pages_migrated"] ?? 0) > 0, "\(r.figures ?? [:])")
    #expect(r.figures?["pages_migrated"] == r.figures?["pages_invalidated"])
  }

  @Test func sameSeedSameRun() throws {
    let j = job(kernel: "pre-fix", seed: 3)
    let (a, da, _) = try run(j)
    let (b, db, _) = try run(j)
    let la = try Data(contentsOf: da.appendingPathComponent("host.log"))
    let lb = try Data(contentsOf: db.appendingPathComponent("host.log"))
    #expect(!la.isEmpty && la == lb)
    #expect(RunOutput.encode(a.withWallAndIdentity(of: b)) == RunOutput.encode(b))
  }

  /// The raw VMM's ioctls reach the simulated kernel exactly as the sim backend's direct
  /// calls do: for a seed, the same host log and the same run.json (names aside).
  @Test func rawSimIsTheSimRunIoctlByIoctl() throws {
    var j = job(kernel: "pre-fix", seed: 5)
    let (raw, rawDir, _) = try run(j)
    j.backend = .sim
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "hpthammer-sim-\(UUID().uuidString)")
    let model = KernelModel.named(j.kernel)!
    let host = SimHost(model: model, seed: j.seed, bootUptimeS: j.hostUptimeS)
    let kernel = HostKernel(name: model.name, release: model.release)
    var sim = Runner(
      job: j, host: host, kernel: kernel, outDir: dir, progress: false, reproduce: "test"
    ).run()
    let a = try Data(contentsOf: rawDir.appendingPathComponent("host.log"))
    let b = try Data(contentsOf: dir.appendingPathComponent("host.log"))
    #expect(!a.isEmpty && a == b)
    sim.backend = raw.backend
    #expect(RunOutput.encode(sim.withWallAndIdentity(of: raw)) == RunOutput.encode(raw))
  }

  /// COMMIT before any vCPU ran: the WARNING is reported as expected on this backend too.
  @Test func commitBeforeRunWarningIsExpected() throws {
    var j = job(kernel: "fixed", resizes: 5, durationS: nil)
    j.commitBeforeRun = true
    let (r, _, _) = try run(j)
    #expect(r.verdict == .pass, "\(r.crashes)")
    // One provoked COMMIT per guest, one WARNING each, all expected.
    #expect(r.answers["COMMIT"]?["EIO"] == j.guestCount)
    #expect(r.crashes.count == j.guestCount)
    for w in r.crashes {
      #expect(w.title == "WARNING in kvm_vm_ioctl_resize_hpt_commit" && w.expected)
    }
  }
}
