import Foundation
import HPTSim
import KVMHost
import KVMSys
import PPC64
import RawKVM
import Testing

@testable import SimKVMSys

/// SimSyscalls as the kernel side of the ioctls, one at a time (outside a run, so only calls
/// that do not need the scheduler).
@Suite struct SimSyscallsTests {
  func system() throws -> (RawKVMSystem, SimSyscalls) {
    let sys = SimSyscalls(host: SimHost(model: KernelModel.named("fixed")!, seed: 7))
    let host = try RawKVMSystem(
      syscalls: sys, executor: sys.executor, kernelLog: sys.kernelLog, hostName: "sim")
    return (host, sys)
  }

  @Test func answersLikeAHashPOWER9Host() throws {
    let (host, sys) = try system()
    #expect(try host.apiVersion() == 12)
    #expect(try host.checkExtension(.spaprResizeHPT) == 1)
    #expect(try host.checkExtension(.ppcMMURadix) == 0)
    // As kvm_vm_ioctl_check_extension() answers on HV; a number the harness does not name is 0.
    #expect(try host.checkExtension(.ppcPAPR) == 1)
    #expect(try host.checkExtension(.immediateExit) == 1)
    #expect(try host.checkExtension(.ppcGetPVInfo) == 0)
    #expect(try KVMSystemFD.open(syscalls: sys).checkExtension(raw: 9999) == 0)
    #expect(sys.open("/dev/kvm.typo") == .failure(.ENOENT))
    #expect(sys.ioctl(9999, 0, value: 0) == .failure(.EBADF))
    // CONFIGURE_V3_MMU: hash only (radix is EINVAL on a hash host).
    let sysfd = try KVMSystemFD.open(syscalls: sys)
    let vm = try sysfd.createVM(type: .hv)
    #expect(throws: KVMError("KVM_PPC_CONFIGURE_V3_MMU", .EINVAL)) {
      try vm.configureV3MMU(KVMPPCMMUv3Cfg(flags: KVMPPCMMUv3Cfg.KVM_PPC_MMUV3_RADIX))
    }
    try vm.configureV3MMU(KVMPPCMMUv3Cfg(flags: 0))
  }

  /// The guest setup the raw VMM does reaches the simulated VM: memslot, HTAB order, vCPU
  /// registers (LPCR_ILE kept, PVR the host's), and the payload written to guest RAM.
  @Test func setupReachesTheSimulatedVM() throws {
    let (host, sys) = try system()
    let vm = try host.createVM(type: .hv)
    try vm.setUserMemoryRegion(slot: 0, guestPhysAddr: 0, size: 64 << 20)
    #expect(try vm.allocateHTAB(order: 20) == 20)
    #expect(throws: KVMError.self) { _ = try vm.allocateHTAB(order: 17) }
    let v = try #require(try vm.createVCPU(id: 0) as? RawVCPU)
    #expect(v.pvr == SimSyscalls.pvr)
    try vm.loadPayload(
      GuestPayload(base: 4 << 20, size: 8 << 20, patternSeed: 5, pagesPerReport: 16), vcpu: 0)
    #expect(sys.lastError == nil)
    vm.close()
  }

  /// A vCPU whose PC has no payload parameter block before it cannot be simulated: KVM_RUN
  /// exits with KVM_EXIT_INTERNAL_ERROR and says why.
  @Test func runWithoutAPayloadIsAnInternalError() throws {
    let (_, sys) = try system()
    let sysfd = try KVMSystemFD.open(syscalls: sys)
    let vm = try sysfd.createVM(type: .hv)
    let ram = try sys.mmap(length: 16 << 20, .sharedAnonymous).get()
    try vm.setUserMemoryRegion(
      KVMUserspaceMemoryRegion(
        slot: 0, guest_phys_addr: 0, memory_size: 16 << 20,
        userspace_addr: UInt64(UInt(bitPattern: ram))))
    _ = try vm.allocateHTAB(order: 19)
    let v = try vm.createVCPU(id: 0)
    // kvmppc_sanity_check(): HV runs PAPR vCPUs only.
    #expect(throws: KVMError("KVM_RUN", .EINVAL)) { _ = try v.run() }
    try v.enableCap(KVMEnableCap(.ppcPAPR))
    var regs = KVMRegs.zero
    regs.pc = 0x1_0000 + Payload.parameterBlockSize
    regs.msr = RawVM.payloadMSR
    try v.setRegs(regs)
    let exit = try v.run()
    #expect(exit == .shutdown(reason: "KVM_EXIT_INTERNAL_ERROR suberror 1"))
    #expect(sys.lastError?.contains("no payload parameter block at 0x10000") == true)
    // Big-endian or translated code is refused with the MSR named.
    regs.msr = RawVM.payloadMSR & ~1
    try v.setRegs(regs)
    _ = try v.run()
    #expect(sys.lastError?.contains("MSR 0x") == true)
    #expect(sys.munmap(ram, length: 16 << 20) == .success(0))
  }

  @Test func oneRegLPCRKeepsOnlyTheBitsUserspaceMaySet() throws {
    let (_, sys) = try system()
    let vm = try KVMSystemFD.open(syscalls: sys).createVM(type: .hv)
    let v = try vm.createVCPU(id: 1)
    try v.setOneReg(id: KVMReg.KVM_REG_PPC_LPCR_64, value: ~0)
    let lpcr = try v.getOneReg(id: KVMReg.KVM_REG_PPC_LPCR_64)
    #expect(lpcr & RawVM.LPCR_ILE != 0)
    #expect(lpcr & 1 == 0)  // LPCR_HDICE: not userspace's
    #expect(throws: KVMError("KVM_SET_ONE_REG", .EINVAL)) {
      try v.setOneReg(id: KVMReg.KVM_REG_PPC_ARCH_COMPAT, value: 0)
    }
    var sregs = try v.getSregs()
    #expect(sregs.pvr == SimSyscalls.pvr)
    sregs.pvr = 0x004b_0201  // POWER8: not the host's
    #expect(throws: KVMError("KVM_SET_SREGS", .EINVAL)) { try v.setSregs(sregs) }
  }
}
