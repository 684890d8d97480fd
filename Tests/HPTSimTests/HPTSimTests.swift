import Foundation
import KVMHost
import Testing

@testable import HPTSim

@Suite struct SchedulerTests {
  /// Two threads appending to a shared trace: the interleaving depends on the seed alone.
  func trace(seed: UInt64) -> [String] {
    let s = SimScheduler(seed: seed, bootUptimeNs: 0)
    final class Box: @unchecked Sendable { var t: [String] = [] }
    let box = Box()
    for name in ["a", "b", "c"] {
      s.spawn(name: name) {
        for i in 0..<50 {
          box.t.append("\(name)\(i)")
          try? s.yield(costNs: 10)
        }
      }
    }
    s.run()
    return box.t
  }

  @Test func sameSeedSameInterleaving() {
    #expect(trace(seed: 7) == trace(seed: 7))
    #expect(trace(seed: 7).count == 150)
  }

  @Test func otherSeedOtherInterleaving() {
    #expect(trace(seed: 7) != trace(seed: 8))
  }

  @Test func sleepAdvancesSimulatedTime() {
    let s = SimScheduler(seed: 1, bootUptimeNs: 5)
    s.spawn(name: "sleeper") { try? s.sleep(ns: 1_000_000) }
    s.run()
    #expect(s.nowNs >= 1_000_005)
  }

  @Test func deadlockIsReported() {
    let s = SimScheduler(seed: 1, bootUptimeNs: 0)
    final class Box: @unchecked Sendable { var blocked: [String] = [] }
    let box = Box()
    s.onDeadlock = { box.blocked = $0 }
    s.spawn(name: "waiter") { try? s.wait { false } }
    s.run()
    #expect(box.blocked == ["waiter"])
    #expect(s.halted)
  }
}

@Suite struct HPTTests {
  @Test func splitMixIsDeterministic() {
    var a = SplitMix64(seed: 42)
    var b = SplitMix64(seed: 42)
    #expect((0..<10).map { _ in a.next() } == (0..<10).map { _ in b.next() })
  }

  @Test func kernelModelsAndAliases() {
    #expect(KernelModel.named("pre-fix")?.has(.b1) == true)
    // Fixed for the seed; Debian's 6.1 still carries R1, the reset race HPTHammer found.
    #expect(KernelModel.named("fixed")?.bugs == [.r1])
    #expect(KernelModel.named("6.1-reset-fix")?.bugs.isEmpty == true)
    #expect(KernelModel.named("6.1-B5")?.bugs == [.b5, .r1])
    #expect(KernelModel.named("4.14")?.has(.b1) == false)
    #expect(KernelModel.named("nope") == nil)
  }

  /// Nine bolted HPTEs whose primary hashes share a group: eight fill the primary group, the
  /// ninth goes to the secondary one. Growing the table must leave each where a lookup with
  /// its own hash finds it (fixed kernel) or hit B5's BUG_ON (4.15).
  func crowdedTable(_ kernel: String) throws -> (SimVM, SimVCPU, [(UInt64, UInt64)]) {
    let host = SimHost(model: KernelModel.named(kernel)!, seed: 1)
    let vm = try host.createVM(type: .hv) as! SimVM
    try vm.setUserMemoryRegion(slot: 0, guestPhysAddr: 0, size: 64 << 20)
    _ = try vm.allocateHTAB(order: 18)
    let vcpu = try vm.createVCPU(id: 0) as! SimVCPU
    var placed: [(UInt64, UInt64)] = []
    let page: UInt64 = 0x123
    for k in 0..<UInt64(9) {
      let vsid = 0x40_0000 + (k << 11)  // same low 11 bits: same group at order 18
      let ea = (UInt64(0x5) << 28) | (page << 16)
      let hash = HPTHash.hash256M(vsid: vsid, ea: ea)
      let avpn = HPTHash.avpn256M(vsid: vsid, ea: ea)
      #expect(vcpu.hEnter(hash: hash, v: (avpn << HPTEV.avpnShift) | HPTEV.bolted, gfn: Int(k)))
      placed.append((hash, avpn))
    }
    let t = vm.hpt!
    #expect(t.v.filter { $0 & HPTEV.secondary != 0 && $0 & HPTEV.bolted != 0 }.count == 1)
    return (vm, vcpu, placed)
  }

  @Test func fixedRehashKeepsBoltedSecondaryEntriesFindable() throws {
    let (vm, vcpu, placed) = try crowdedTable("fixed")
    let old = vm.hpt!
    let new = vm.newHPT(order: 19)
    for i in 0..<old.hpteCount where old.v[i] & (HPTEV.valid | HPTEV.absent) != 0 {
      #expect(try vm.rehashHPTE(old: old, new: new, idx: i) == 0)
    }
    for (hash, avpn) in placed {
      #expect(vcpu.find(new, hash: hash, avpn: avpn) != nil)
    }
  }

  @Test func b5RehashHitsBugOn() throws {
    let (vm, _, _) = try crowdedTable("4.15")
    let old = vm.hpt!
    let new = vm.newHPT(order: 19)
    #expect(throws: SimHalted.self) {
      for i in 0..<old.hpteCount where old.v[i] & (HPTEV.valid | HPTEV.absent) != 0 {
        _ = try vm.rehashHPTE(old: old, new: new, idx: i)
      }
    }
    let log = vm.kernel.log.allRecords.map(\.text)
    #expect(log.contains { $0.hasPrefix("kernel BUG at arch/powerpc/kvm/book3s_64_mmu_hv.c:") })
    #expect(vm.kernel.dead)
  }

}
