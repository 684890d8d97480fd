import Foundation
import KVMHost

/// Measurements of the simulator itself, for hpthammer-bench.
public enum SimBenchmarks {
  /// Fills an HPT of `order` the way a booted guest does (VRMA, the bolted linear map of
  /// `memoryMiB`, one user HPTE per page), then times full rehashes into a table of the same
  /// order. Returns HPTEs walked per second and the number in use.
  public static func rehash(order: Int, memoryMiB: Int, rounds: Int = 3) -> (
    hptesPerSecond: Double, inUse: Int, total: Int
  ) {
    let host = SimHost(model: KernelModel.named("fixed")!, seed: 1)
    let vm = try! host.createVM(type: .hv) as! SimVM
    try! vm.setUserMemoryRegion(slot: 0, guestPhysAddr: 0, size: UInt64(memoryMiB) << 20)
    _ = try! vm.allocateHTAB(order: UInt32(order))
    let vcpu = try! vm.createVCPU(id: 0) as! SimVCPU
    vcpu.mapVRMA()
    vcpu.guestBoot()
    for gfn in 0..<vm.npages {
      let ea = 0x10_0000_0000 &+ (UInt64(gfn) << HPTHash.pageShift)
      let vsid = HPTHash.vsid256M(context: 0x123, esid: ea >> 28)
      _ = vcpu.hEnter(
        hash: HPTHash.hash256M(vsid: vsid, ea: ea),
        v: HPTHash.avpn256M(vsid: vsid, ea: ea) << HPTEV.avpnShift, gfn: gfn)
    }
    let old = vm.hpt!
    var best = Double.infinity
    for _ in 0..<rounds {
      let new = vm.newHPT(order: order)
      let t0 = Date()
      // COMMIT's own loop; outside a simulated thread its yields return at once.
      _ = try? vm.rehash(into: new)
      best = min(best, Date().timeIntervalSince(t0))
    }
    return (Double(old.hpteCount) / best, old.validOrAbsentCount, old.hpteCount)
  }
}
