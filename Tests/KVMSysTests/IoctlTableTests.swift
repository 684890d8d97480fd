import Testing

@testable import KVMSys

/// Request numbers and struct sizes against the uapi (kvm-hpt-resize.md section 2, and the
/// x86 numbers from this machine's /usr/include/linux/kvm.h).
@Suite struct IoctlTableTests {
  /// (ioctl, powerpc, x86_64): the reference's table plus the generic ioctls.
  static let table: [(KVMIoctl, UInt, UInt)] = [
    (.KVM_PPC_RESIZE_HPT_PREPARE, 0x4010_aead, 0x8010_aead),
    (.KVM_PPC_RESIZE_HPT_COMMIT, 0x4010_aeae, 0x8010_aeae),
    (.KVM_PPC_ALLOCATE_HTAB, 0xc004_aea7, 0xc004_aea7),
    (.KVM_PPC_GET_HTAB_FD, 0x8020_aeaa, 0x4020_aeaa),
    (.KVM_PPC_CONFIGURE_V3_MMU, 0x8010_aeaf, 0x4010_aeaf),
    (.KVM_PPC_GET_SMMU_INFO, 0x4250_aea6, 0x8250_aea6),
    (.KVM_CREATE_VM, 0x2000_ae01, 0xae01),
    (.KVM_CHECK_EXTENSION, 0x2000_ae03, 0xae03),
    (.KVM_RUN, 0x2000_ae80, 0xae80),
    (.KVM_GET_API_VERSION, 0x2000_ae00, 0xae00),
    (.KVM_GET_VCPU_MMAP_SIZE, 0x2000_ae04, 0xae04),
    (.KVM_CREATE_VCPU, 0x2000_ae41, 0xae41),
    (.KVM_ENABLE_CAP, 0x8068_aea3, 0x4068_aea3),
    (.KVM_SET_USER_MEMORY_REGION, 0x8020_ae46, 0x4020_ae46),
    (.KVM_GET_ONE_REG, 0x8010_aeab, 0x4010_aeab),
    (.KVM_SET_ONE_REG, 0x8010_aeac, 0x4010_aeac),
    (.KVM_CREATE_DEVICE, 0xc00c_aee0, 0xc00c_aee0),
    // powerpc's kvm_regs is 392 bytes (0x188).
    (.KVM_GET_REGS, 0x4188_ae81, 0x8188_ae81),
    (.KVM_SET_REGS, 0x8188_ae82, 0x4188_ae82),
    // powerpc's kvm_sregs is 1232 bytes (0x4d0).
    (.KVM_GET_SREGS, 0x44d0_ae83, 0x84d0_ae83),
    (.KVM_SET_SREGS, 0x84d0_ae84, 0x44d0_ae84),
  ]

  @Test(arguments: table.indices)
  func numbersMatchTheUAPI(_ i: Int) {
    let (ioctl, powerpc, x86) = Self.table[i]
    #expect(
      ioctl.number(for: .powerpc) == powerpc,
      "\(ioctl.name) powerpc 0x\(String(ioctl.number(for: .powerpc), radix: 16))")
    #expect(
      ioctl.number(for: .generic) == x86,
      "\(ioctl.name) generic 0x\(String(ioctl.number(for: .generic), radix: 16))")
  }

  @Test func everyIoctlIsInTheTableOnce() {
    #expect(Set(KVMIoctl.all.map(\.name)).count == KVMIoctl.all.count)
    #expect(Set(Self.table.map(\.0.name)) == Set(KVMIoctl.all.map(\.name)))
    for arch in Arch.allCases {
      #expect(Set(KVMIoctl.all.map { $0.number(for: arch) }).count == KVMIoctl.all.count)
    }
  }

  @Test func hostIsTheArchitectureCompiledFor() {
    #if arch(x86_64) || arch(arm64)
      #expect(Arch.host == .generic)
    #elseif arch(powerpc64le) || arch(powerpc64)
      #expect(Arch.host == .powerpc)
    #endif
  }

  @Test func encodingSplitsBackIntoItsFields() {
    for arch in Arch.allCases {
      for ioctl in KVMIoctl.all {
        let d = IoctlEncoding.decode(ioctl.number(for: arch), arch: arch)
        #expect(d.dir == ioctl.dir && d.type == 0xAE && d.nr == ioctl.nr && d.size == ioctl.size)
        #expect(KVMIoctl.named(number: ioctl.number(for: arch), arch: arch) == ioctl)
      }
    }
  }

  @Test func directionBitsDifferByArch() {
    // The same _IOR is 2<<29 on powerpc and 2<<30 on x86: the reason for the whole table.
    #expect(IoctlEncoding.ioc(.read, type: 0xAE, nr: 0xad, size: 16, arch: .powerpc) == 0x4010_aead)
    #expect(IoctlEncoding.ioc(.read, type: 0xAE, nr: 0xad, size: 16, arch: .generic) == 0x8010_aead)
    #expect(IoctlEncoding.ioc(.none, type: 0xAE, nr: 0, size: 0, arch: .generic) == 0xae00)
    // 13 size bits on powerpc: 8191 is the largest argument it can encode.
    #expect(IoctlEncoding.sizeBits(.powerpc) == 13 && IoctlEncoding.sizeBits(.generic) == 14)
    #expect(
      IoctlEncoding.ioc(.write, type: 0xAE, nr: 1, size: 8191, arch: .powerpc) == 0x9fff_ae01)
  }

  @Test func structSizesMatchTheUAPI() {
    #expect(MemoryLayout<KVMPPCResizeHPT>.size == 16)
    #expect(MemoryLayout<KVMUserspaceMemoryRegion>.size == 32)
    #expect(MemoryLayout<KVMOneReg>.size == 16)
    #expect(MemoryLayout<KVMEnableCap>.size == 104)
    #expect(MemoryLayout<KVMPPCMMUv3Cfg>.size == 16)
    #expect(MemoryLayout<KVMGetHTABFD>.size == 32)
    #expect(MemoryLayout<KVMPPCOnePageSize>.size == 8)
    #expect(MemoryLayout<KVMPPCOneSegPageSize>.size == 72)
    #expect(MemoryLayout<KVMPPCSMMUInfo>.size == 592)
    #expect(MemoryLayout<KVMSregsPPC32>.size == 192)
    #expect(MemoryLayout<KVMSregs>.size == 1232)
    #expect(MemoryLayout<KVMRegs>.size == 392)
    #expect(MemoryLayout<KVMRegs>.offset(of: \.msr) == 40)
    #expect(MemoryLayout<KVMRegs>.offset(of: \.gpr) == 136)
    #expect(MemoryLayout<KVMRunHead>.size == KVMRun.exitUnionOffset)
    #expect(MemoryLayout<KVMRunPAPRHcall>.size == 88)
  }

  @Test func fieldOffsetsMatchTheUAPI() {
    #expect(MemoryLayout<KVMPPCResizeHPT>.offset(of: \.shift) == 8)
    #expect(MemoryLayout<KVMUserspaceMemoryRegion>.offset(of: \.guest_phys_addr) == 8)
    #expect(MemoryLayout<KVMUserspaceMemoryRegion>.offset(of: \.userspace_addr) == 24)
    #expect(MemoryLayout<KVMEnableCap>.offset(of: \.args) == 8)
    #expect(MemoryLayout<KVMPPCSMMUInfo>.offset(of: \.sps) == 16)
    #expect(MemoryLayout<KVMSregs>.offset(of: \.sdr1) == 8)
    #expect(MemoryLayout<KVMSregs>.offset(of: \.slb) == 16)
    #expect(MemoryLayout<KVMSregs>.offset(of: \.ppc32) == 16 + 64 * 16)
    #expect(MemoryLayout<KVMRunHead>.offset(of: \.exit_reason) == KVMRun.exitReasonOffset)
    #expect(MemoryLayout<KVMRunHead>.offset(of: \.immediate_exit) == KVMRun.immediateExitOffset)
  }

  @Test func sregsSLBSubscriptWritesTheRightEntry() {
    var s = KVMSregs.zero
    s[slb: 63] = KVMPPCSLBEntry(slbe: 0x0800_0000_0000_003f, slbv: 0x400)
    #expect(s[slb: 63].slbe == 0x0800_0000_0000_003f && s[slb: 62] == KVMPPCSLBEntry())
    let raw = withUnsafeBytes(of: s) { $0.load(fromByteOffset: 16 + 63 * 16 + 8, as: UInt64.self) }
    #expect(raw == 0x400)
  }

  @Test func oneRegSizeComesFromTheID() {
    #expect(KVMReg.size(of: KVMReg.KVM_REG_PPC_LPCR_64) == 8)
    #expect(KVMReg.size(of: KVMReg.KVM_REG_PPC_ARCH_COMPAT) == 4)
  }
}
