import Testing

@testable import KVMHost

@Suite struct KVMHostTests {
  /// Growing and shrinking stay within the limits and within 18...46: no wrap-around at the
  /// bottom, an order above the limit comes down to it.
  @Test func hptOrderGrowsAndShrinksWithinItsLimits() {
    let (min, max): (HPTOrder, HPTOrder) = (18, 46)
    #expect(min.shrunk(downTo: min) == min)
    #expect(max.grown(upTo: max) == max)
    #expect((22 as HPTOrder).grown(upTo: 24) == 23)
    #expect((30 as HPTOrder).grown(upTo: 24) == 24)
    #expect((19 as HPTOrder).shrunk(downTo: 20) == 20)
    #expect(HPTOrder(rawValue: 17) == nil && HPTOrder(rawValue: 47) == nil)
  }

  @Test func orderRange() {
    #expect(HPTOrder(rawValue: 17) == nil)
    #expect(HPTOrder(rawValue: 47) == nil)
    let o = HPTOrder(rawValue: 24)!
    #expect(o.hpteCount == 1 << 20)
    #expect(o.groupCount == 1 << 17)
  }

  @Test func errnoNames() {
    #expect(Errno.ENOSPC.name == "ENOSPC")
    #expect(Errno(rawValue: 999).name == "errno 999")
    #expect(
      KVMError("KVM_PPC_RESIZE_HPT_COMMIT", .ENXIO).description
        == "KVM_PPC_RESIZE_HPT_COMMIT: ENXIO (6)")
  }

  @Test func capabilityNumbers() {
    // include/uapi/linux/kvm.h
    #expect(KVMCapability.spaprResizeHPT.rawValue == 133)
    #expect(KVMCapability.ppcAllocHTAB.rawValue == 80)
    #expect(KVMCapability.ppcMMUHashV3.rawValue == 135)
  }
}
