import KVMHost
import Testing

@testable import KVMSys

/// The handles against scripted kernel answers: what they send, and how answers map.
@Suite struct ScriptedSyscallsTests {
  let host = Arch.host

  func vm(_ sys: ScriptedSyscalls) throws -> KVMVMFD {
    sys.script(.returns(4096), .returns(7))  // KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VM
    return try KVMSystemFD(fd: 3, syscalls: sys).createVM(type: .hv)
  }

  /// The calls that reached the "kernel" with an argument (not the releases in deinit, whose
  /// timing the test does not choose: the system fd above is released right after createVM).
  func ioctls(_ sys: ScriptedSyscalls) -> [ScriptedSyscalls.Call] {
    sys.calls.filter {
      switch $0 {
      case .close, .munmap: return false
      default: return true
      }
    }
  }

  @Test func createVMAsksTheRunSizeThenCreatesAnHVVM() throws {
    let sys = ScriptedSyscalls()
    let vm = try vm(sys)
    #expect(vm.fd == 7 && vm.vcpuMmapSize == 4096)
    #expect(sys.calls.contains(.close(3)))  // the system fd, released after createVM
    #expect(
      ioctls(sys) == [
        .ioctlValue(fd: 3, request: KVMIoctl.KVM_GET_VCPU_MMAP_SIZE.number(for: host), value: 0),
        .ioctlValue(fd: 3, request: KVMIoctl.KVM_CREATE_VM.number(for: host), value: 1),
      ])
  }

  @Test func preparePollsUntilReadyThenReportsTheKernelsErrno() throws {
    let sys = ScriptedSyscalls()
    let vm = try vm(sys)
    sys.script(.returns(100), .returns(100), .returns(0), .fails(.ENOSPC))
    #expect(try vm.resizeHPTPrepare(shift: 24) == .pending(estimateMs: 100))
    #expect(try vm.resizeHPTPrepare(shift: 24) == .pending(estimateMs: 100))
    #expect(try vm.resizeHPTPrepare(shift: 24) == .ready)
    #expect(throws: KVMError("KVM_PPC_RESIZE_HPT_PREPARE", .ENOSPC)) {
      try vm.resizeHPTPrepare(shift: 24)
    }
    // Each call passed struct kvm_ppc_resize_hpt { flags 0, shift 24, pad 0 } on the VM fd.
    let arg = withUnsafeBytes(of: KVMPPCResizeHPT(flags: 0, shift: 24)) { Array($0) }
    #expect(arg.count == 16 && arg[8] == 24)
    let prepare = KVMIoctl.KVM_PPC_RESIZE_HPT_PREPARE.number(for: host)
    #expect(
      sys.calls.suffix(4) == Array(repeating: .ioctl(fd: 7, request: prepare, arg: arg), count: 4))
  }

  @Test func commitSendsFlagsAndShiftAndMapsErrnos() throws {
    let sys = ScriptedSyscalls()
    let vm = try vm(sys)
    sys.script(.returns(0), .fails(.ENXIO), .fails(.EBUSY), .fails(.EIO))
    try vm.resizeHPTCommit(flags: 0, shift: 22)
    for e in [Errno.ENXIO, .EBUSY, .EIO] {
      #expect(throws: KVMError("KVM_PPC_RESIZE_HPT_COMMIT", e)) {
        try vm.resizeHPTCommit(shift: 22)
      }
    }
    guard case .ioctl(7, let request, let arg) = ioctls(sys)[2] else {
      Issue.record("not an ioctl: \(ioctls(sys)[2])")
      return
    }
    #expect(request == KVMIoctl.KVM_PPC_RESIZE_HPT_COMMIT.number(for: host))
    #expect(arg == withUnsafeBytes(of: KVMPPCResizeHPT(shift: 22)) { Array($0) })
  }

  @Test func allocateHTABReturnsTheOrderTheKernelWroteBack() throws {
    let sys = ScriptedSyscalls()
    let vm = try vm(sys)
    sys.script(.writes(UInt32(23)))
    #expect(try vm.allocateHTAB(order: 24) == 23)
    #expect(sys.calls.last == .ioctl(fd: 7, request: 0xc004_aea7, arg: [24, 0, 0, 0]))
  }

  @Test func eintrIsRetriedOnlyWhenAsked() throws {
    let sys = ScriptedSyscalls()
    let vm = try vm(sys)
    sys.script(.fails(.EINTR), .fails(.EINTR), .returns(0))
    #expect(try vm.resizeHPTPrepare(shift: 20) == .ready)
    #expect(ioctls(sys).count == 2 + 3)
    sys.script(.fails(.EINTR), .returns(0))
    #expect(throws: KVMError("KVM_PPC_RESIZE_HPT_PREPARE", .EINTR)) {
      try vm.resizeHPTPrepare(shift: 20, retryOnInterrupt: false)
    }
    #expect(sys.unusedAnswers == 1)
  }

  @Test func anUnscriptedCallFailsWithENOSYS() throws {
    let sys = ScriptedSyscalls()
    #expect(throws: KVMError("KVM_GET_API_VERSION", .ENOSYS)) {
      try KVMSystemFD(fd: 3, syscalls: sys).apiVersion()
    }
  }

  @Test func openFailureIsNamedAfterThePath() {
    let sys = ScriptedSyscalls([.fails(.EACCES)])
    #expect(throws: KVMError("open /dev/kvm", .EACCES)) {
      try KVMSystemFD.open(syscalls: sys)
    }
  }

  @Test func handlesCloseTheirFdsWhenReleased() throws {
    let sys = ScriptedSyscalls()
    do {
      let vm = try vm(sys)
      sys.script(.returns(9), .returns(0))  // KVM_CREATE_VCPU, mmap
      let vcpu = try vm.createVCPU(id: 0)
      #expect(vcpu.fd == 9)
    }
    // The system fd, the VM fd, the vCPU fd and its kvm_run mapping are all released.
    let releases = sys.calls.filter {
      if case .close = $0 { return true }
      if case .munmap = $0 { return true }
      return false
    }
    #expect(Set(releases) == [.close(3), .close(7), .close(9), .munmap(length: 4096)])
    #expect(sys.lastMapping() == nil)
  }

  @Test func failedKvmRunMappingClosesTheNewVCPUFd() throws {
    let sys = ScriptedSyscalls()
    let vm = try vm(sys)
    sys.script(.returns(9), .fails(.ENOMEM))
    #expect(throws: KVMError("mmap kvm_run", .ENOMEM)) { try vm.createVCPU(id: 1) }
    #expect(
      sys.calls.suffix(3).first
        == .ioctlValue(fd: 7, request: KVMIoctl.KVM_CREATE_VCPU.number(for: host), value: 1))
    #expect(sys.calls.last == .close(9))
  }

  @Test func runReadsThePAPRHcallExitAndSetsItsReturn() throws {
    let sys = ScriptedSyscalls()
    let vm = try vm(sys)
    sys.script(.returns(9), .returns(0))
    let vcpu = try vm.createVCPU(id: 0)
    let run = try #require(sys.lastMapping())
    // What KVM writes on KVM_EXIT_PAPR_HCALL: exit_reason 19, papr_hcall.nr and args.
    run.storeBytes(of: KVMRun.KVM_EXIT_PAPR_HCALL, toByteOffset: 8, as: UInt32.self)
    run.storeBytes(of: UInt64(0xF100), toByteOffset: 32, as: UInt64.self)
    for i in 0..<9 { run.storeBytes(of: UInt64(i + 1), toByteOffset: 48 + 8 * i, as: UInt64.self) }
    sys.script(.returns(0))
    #expect(try vcpu.run() == .paprHcall(nr: 0xF100, args: Array(1...9)))
    vcpu.setHcallReturn(0xdead)
    #expect(run.load(fromByteOffset: 40, as: UInt64.self) == 0xdead)
    run.storeBytes(of: UInt32(42), toByteOffset: 8, as: UInt32.self)
    sys.script(.returns(0))
    #expect(try vcpu.run() == .unsupported(42))
    // A signal: KVM_RUN gives EINTR and run() does not retry by default.
    sys.script(.fails(.EINTR))
    #expect(throws: KVMError("KVM_RUN", .EINTR)) { try vcpu.run() }
  }

  @Test func oneRegPassesTheValueByAddress() throws {
    let sys = ScriptedSyscalls()
    let vm = try vm(sys)
    sys.script(.returns(9), .returns(0))
    let vcpu = try vm.createVCPU(id: 0)
    sys.script(.returns(0))
    try vcpu.setOneReg(id: KVMReg.KVM_REG_PPC_LPCR_64, value: 0x0040_0000)
    guard case .ioctl(9, let request, let arg) = sys.calls.last else {
      Issue.record("no ioctl")
      return
    }
    #expect(request == KVMIoctl.KVM_SET_ONE_REG.number(for: host))
    let reg = arg.withUnsafeBytes { $0.load(as: KVMOneReg.self) }
    #expect(reg.id == KVMReg.KVM_REG_PPC_LPCR_64 && reg.addr != 0)
    // A register wider than 8 bytes is refused before any call, with the kernel's EINVAL.
    let before = sys.calls.count
    let vsr0: UInt64 = KVMReg.KVM_REG_PPC | 0x0040_0000_0000_0000 | 0x100  // KVM_REG_SIZE_U128
    #expect(throws: KVMError("KVM_GET_ONE_REG", .EINVAL)) { try vcpu.getOneReg(id: vsr0) }
    #expect(sys.calls.count == before)
  }
}
