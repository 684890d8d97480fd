import Foundation
import HPTSim
import KVMHost
import Testing

@testable import HPTEngine

/// Each modelled bug is found by a fixed seed on the kernel that has it, and the kernel
/// without it passes the same job.
@Suite struct BugModelTests {
  func job(
    kernel: String, policy: [ResizePolicy], memory: Int = 256, order: HPTOrder? = nil,
    orders: ClosedRange<HPTOrder> = 18...22, resizes: Int = 40, seed: UInt64 = 1
  ) -> Job {
    var j = Job(name: "test")
    j.kernel = kernel
    j.guestCount = 1
    j.guestMemoryMiB = memory
    j.hptOrder = order
    j.orderMin = orders.lowerBound
    j.orderMax = orders.upperBound
    j.policies = policy
    j.durationS = nil
    j.resizeBudget = resizes
    j.seed = seed
    return j
  }

  func run(_ j: Job) -> (RunReport, URL) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "hpthammer-test-\(UUID().uuidString)")
    let model = KernelModel.named(j.kernel)!
    let host = SimHost(model: model, seed: j.seed, bootUptimeS: j.hostUptimeS)
    let kernel = HostKernel(name: model.name, release: model.release)
    let runner = Runner(
      job: j, host: host, kernel: kernel, outDir: dir, progress: false, reproduce: "test")
    return (runner.run(), dir)
  }

  /// With only the guests faulting, the stale rmap index is met by the next fault on the page:
  /// the seed's oops, with the seed's NIP and LR.
  @Test func b1SeedRaceOnPreFixKernel() throws {
    var j = job(kernel: "pre-fix", policy: [.shrink, .randomWalk], orders: 19...22)
    j.invalidateEveryMs = nil
    let (r, dir) = run(j)
    #expect(r.verdict == .bug)
    let c = try #require(r.crashes.first)
    #expect(c.title == "BUG: unable to handle kernel paging request in kvmppc_add_revmap_chain")
    #expect(c.frame == "kvmppc_add_revmap_chain")
    let log = try String(contentsOf: dir.appendingPathComponent("host.log"), encoding: .utf8)
    #expect(log.contains("LR [d00000000c36e498] kvmppc_book3s_hv_page_fault+0xbb8/0xc40 [kvm_hv]"))
    #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("crash-1.txt").path))
  }

  /// With host invalidations too, the MMU notifier may meet the stale index first.
  @Test func b1WithHostInvalidations() throws {
    for seed in UInt64(1)...3 {
      let (r, _) = run(
        job(
          kernel: "pre-fix", policy: [.shrink, .randomWalk], orders: 19...22, resizes: 200,
          seed: seed))
      #expect(r.verdict == .bug)
      let c = try #require(r.crashes.first)
      // The oops where the stale index is used, or the corruption a stale translation causes.
      #expect(
        ["kvmppc_add_revmap_chain", "kvm_unmap_rmapp"].contains(c.frame ?? "")
          || c.type == "MEMORY_CORRUPTION")
    }
  }

  @Test func b1FixedIn414() {
    let (r, _) = run(job(kernel: "4.14", policy: [.shrink, .randomWalk], orders: 19...22))
    #expect(r.verdict == .pass)
    #expect(r.crashes.isEmpty)
    #expect(r.resizes.succeeded > 10)
  }

  @Test func b0aCommitWithoutPrepare() throws {
    let (r, _) = run(job(kernel: "4.14", policy: [.commitWithoutPrepare]))
    #expect(r.verdict == .bug)
    #expect(
      try #require(r.crashes.first).title
        == "BUG: unable to handle kernel NULL pointer dereference in kvm_vm_ioctl_resize_hpt_commit"
    )
    let (f, _) = run(job(kernel: "4.15", policy: [.commitWithoutPrepare], resizes: 20))
    #expect(f.verdict == .pass)
    #expect(f.answers["COMMIT"]?["ENXIO"] == 20)
  }

  @Test func b3CancelDuringPrepare() throws {
    let (r, _) = run(job(kernel: "4.14", policy: [.cancelDuringPrepare]))
    #expect(r.verdict == .bug)
    #expect(try #require(r.crashes.first).title.contains("resize_hpt_prepare_work"))
    let (f, _) = run(job(kernel: "4.15", policy: [.cancelDuringPrepare]))
    #expect(f.verdict == .pass)
  }

  @Test func b5SecondaryHPTEGOnCrowdedHPT() throws {
    let j = job(
      kernel: "4.15", policy: [.sameOrder], memory: 512, order: 18, orders: 18...19, resizes: 60)
    let (r, _) = run(j)
    #expect(r.verdict == .bug)
    #expect(try #require(r.crashes.first).title == "kernel BUG in resize_hpt_rehash_hpte")
    var fixed = j
    fixed.kernel = "fixed"
    #expect(run(fixed).0.verdict == .pass)
  }

  /// B4 is silent in the host's log: only the payload's integrity check can see it.
  @Test func b4RebootWithoutTLBFlushCorruptsGuestMemory() throws {
    var j = job(
      kernel: "4.14", policy: [.randomWalk, .randomWalk, .reboot], orders: 19...23, resizes: 400)
    j.guestCount = 2
    let (r, _) = run(j)
    #expect(r.verdict == .bug)
    let c = try #require(r.crashes.first)
    #expect(c.type == "MEMORY_CORRUPTION")
    #expect(c.title.hasPrefix("guest memory corruption: guest"))
    #expect(r.guests.mismatches > 0)
    j.kernel = "4.15"
    let (f, _) = run(j)
    #expect(f.verdict == .pass)
    #expect(f.guests.mismatches == 0 && f.guests.pages_verified > 10_000)
    #expect(f.answers["ALLOCATE_HTAB"]?["0"] ?? 0 > 0)
  }

  /// COMMIT before any vCPU ran: the kernel WARNs and answers EIO; both are expected, the
  /// run passes, and the WARNING is kept in the run directory.
  @Test func commitBeforeRunWarningIsExpected() throws {
    for kernel in ["fixed", "4.14"] {
      var j = job(kernel: kernel, policy: [.randomWalk], orders: 19...22, resizes: 5)
      j.commitBeforeRun = true
      let (r, _) = run(j)
      #expect(r.verdict == .pass)
      let w = try #require(r.crashes.first)
      #expect(w.title == "WARNING in kvm_vm_ioctl_resize_hpt_commit" && w.expected)
      #expect(r.answers["COMMIT"]?["EIO"] == 1)
    }
  }

  @Test func sameSeedSameRun() throws {
    let j = job(kernel: "pre-fix", policy: [.randomWalk], orders: 19...22, seed: 3)
    let (a, da) = run(j)
    let (b, db) = run(j)
    let la = try Data(contentsOf: da.appendingPathComponent("host.log"))
    let lb = try Data(contentsOf: db.appendingPathComponent("host.log"))
    #expect(la == lb)
    #expect(!la.isEmpty)
    #expect(RunOutput.encode(a.withWallAndIdentity(of: b)) == RunOutput.encode(b))
    let (c, _) = run(job(kernel: "pre-fix", policy: [.randomWalk], orders: 19...22, seed: 4))
    #expect(c.host_time_s != a.host_time_s || c.resizes.attempted != a.resizes.attempted)
  }
}
