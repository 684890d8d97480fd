import Foundation
import KVMHost
import Testing

@testable import KVMSys

/// Against this machine's real /dev/kvm through `LinuxSyscalls`. On x86 it checks the generic
/// ioctls and that the PPC resize ioctls are refused; skipped (with the reason) when
/// /dev/kvm is absent.
@Suite(
  .enabled(
    if: FileManager.default.fileExists(atPath: "/dev/kvm"),
    "/dev/kvm is absent on this machine: no real-KVM tests"))
struct RealKVMTests {
  @Test func apiVersionIs12() throws {
    #expect(try KVMSystemFD.open().apiVersion() == 12)
  }

  @Test func createVMAndVCPUWork() throws {
    let kvm = try KVMSystemFD.open()
    let size = try kvm.vcpuMmapSize()
    #expect(size >= 4096)
    let vm = try kvm.createVM(type: .default)
    #expect(vm.fd >= 0 && vm.fd != kvm.fd)
    let vcpu = try vm.createVCPU(id: 0)
    #expect(vcpu.fd >= 0 && vcpu.fd != vm.fd && vcpu.id == 0)
    // The kvm_run mapping is live: KVM_CAP_IMMEDIATE_EXIT's flag round-trips through it.
    vcpu.immediateExit = true
    #expect(vcpu.immediateExit)
  }

  #if !arch(powerpc64le) && !arch(powerpc64)
    @Test func hptResizingIsNotAvailableOffPOWER() throws {
      let kvm = try KVMSystemFD.open()
      #expect(try kvm.checkExtension(.spaprResizeHPT) == 0)
      #expect(try kvm.checkExtension(.userMemory) == 1)
      let vm = try kvm.createVM(type: .default)
      #expect(try vm.checkExtension(.spaprResizeHPT) == 0)
      #expect(throws: KVMError("KVM_PPC_RESIZE_HPT_PREPARE", .ENOTTY)) {
        try vm.resizeHPTPrepare(shift: 24)
      }
      #expect(throws: KVMError("KVM_PPC_RESIZE_HPT_COMMIT", .ENOTTY)) {
        try vm.resizeHPTCommit(shift: 24)
      }
      #expect(throws: KVMError("KVM_PPC_ALLOCATE_HTAB", .ENOTTY)) {
        try vm.allocateHTAB(order: 24)
      }
    }
  #endif

  @Test func aMissingDeviceReportsENOENT() {
    #expect(throws: KVMError("open /dev/kvm-hpthammer-absent", .ENOENT)) {
      try KVMSystemFD.open(path: "/dev/kvm-hpthammer-absent")
    }
  }
}

/// kvm-ioctls' test_faulty_vm_fd: handles around a bad fd, through the real syscalls. Every
/// method must report EBADF from its own ioctl, proving each one checks the kernel's answer.
@Suite struct FaultyFDTests {
  let sys = LinuxSyscalls()
  let bad: Int32 = -1

  func expectEBADF<T>(_ name: String, _ body: () throws(KVMError) -> T) {
    do {
      _ = try body()
      Issue.record("\(name) succeeded on a bad fd")
    } catch {
      #expect(error == KVMError(name, .EBADF))
    }
  }

  @Test func systemFD() {
    let kvm = KVMSystemFD(fd: bad, syscalls: sys)
    expectEBADF("KVM_GET_API_VERSION") { () throws(KVMError) in try kvm.apiVersion() }
    expectEBADF("KVM_CHECK_EXTENSION") { () throws(KVMError) in
      try kvm.checkExtension(.spaprResizeHPT)
    }
    expectEBADF("KVM_CHECK_EXTENSION") { () throws(KVMError) in try kvm.checkExtension(raw: 1) }
    expectEBADF("KVM_GET_VCPU_MMAP_SIZE") { () throws(KVMError) in try kvm.vcpuMmapSize() }
    expectEBADF("KVM_GET_VCPU_MMAP_SIZE") { () throws(KVMError) in try kvm.createVM(type: .hv) }
  }

  @Test func vmFD() {
    let vm = KVMVMFD(fd: bad, syscalls: sys, vcpuMmapSize: 4096)
    expectEBADF("KVM_CHECK_EXTENSION") { () throws(KVMError) in try vm.checkExtension(.ppcMMUHashV3)
    }
    expectEBADF("KVM_CHECK_EXTENSION") { () throws(KVMError) in try vm.checkExtension(raw: 1) }
    expectEBADF("KVM_SET_USER_MEMORY_REGION") { () throws(KVMError) in
      try vm.setUserMemoryRegion(
        KVMUserspaceMemoryRegion(slot: 0, guest_phys_addr: 0, memory_size: 0, userspace_addr: 0))
    }
    expectEBADF("KVM_CREATE_VCPU") { () throws(KVMError) in try vm.createVCPU(id: 0) }
    expectEBADF("KVM_ENABLE_CAP") { () throws(KVMError) in try vm.enableCap(KVMEnableCap(cap: 1)) }
    expectEBADF("KVM_PPC_GET_SMMU_INFO") { () throws(KVMError) in try vm.getSMMUInfo() }
    expectEBADF("KVM_PPC_ALLOCATE_HTAB") { () throws(KVMError) in try vm.allocateHTAB(order: 24) }
    expectEBADF("KVM_PPC_GET_HTAB_FD") { () throws(KVMError) in
      try vm.getHTABFD(KVMGetHTABFD(flags: 0))
    }
    expectEBADF("KVM_PPC_RESIZE_HPT_PREPARE") { () throws(KVMError) in
      try vm.resizeHPTPrepare(shift: 24)
    }
    expectEBADF("KVM_PPC_RESIZE_HPT_COMMIT") { () throws(KVMError) in
      try vm.resizeHPTCommit(shift: 24)
    }
    expectEBADF("KVM_PPC_CONFIGURE_V3_MMU") { () throws(KVMError) in
      try vm.configureV3MMU(KVMPPCMMUv3Cfg(flags: 0))
    }
  }

  @Test func vcpuFD() throws {
    // A real anonymous page stands in for kvm_run; the handle unmaps it when released.
    let run = try sys.mmap(length: 4096, .anonymous).get()
    let vcpu = KVMVCPUFD(fd: bad, id: 0, syscalls: sys, kvmRun: run, kvmRunSize: 4096)
    expectEBADF("KVM_RUN") { () throws(KVMError) in try vcpu.run() }
    expectEBADF("KVM_GET_ONE_REG") { () throws(KVMError) in
      try vcpu.getOneReg(id: KVMReg.KVM_REG_PPC_LPCR_64)
    }
    expectEBADF("KVM_SET_ONE_REG") { () throws(KVMError) in
      try vcpu.setOneReg(id: KVMReg.KVM_REG_PPC_LPCR_64, value: 0)
    }
    expectEBADF("KVM_GET_SREGS") { () throws(KVMError) in try vcpu.getSregs() }
    expectEBADF("KVM_SET_SREGS") { () throws(KVMError) in try vcpu.setSregs(.zero) }
    expectEBADF("KVM_ENABLE_CAP") { () throws(KVMError) in try vcpu.enableCap(KVMEnableCap(cap: 1))
    }
  }
}
