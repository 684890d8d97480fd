import KVMHost

/// A vCPU fd (rust-vmm's `VcpuFd`) and its mmap'd struct kvm_run, made only by
/// `KVMVMFD.createVCPU`. Owns both: releasing it unmaps kvm_run and closes the fd.
///
/// `@unchecked Sendable`: the only mutable state is kvm_run, which KVM itself requires to be
/// used by one thread at a time (the thread in KVM_RUN); the handle may move between threads.
public final class KVMVCPUFD: @unchecked Sendable {
  public let fd: Int32
  public let id: UInt32
  let syscalls: any Syscalls
  let kvmRun: UnsafeMutableRawPointer
  let kvmRunSize: Int
  var ioctl: IoctlCall { IoctlCall(fd: fd, syscalls: syscalls) }

  init(
    fd: Int32, id: UInt32, syscalls: any Syscalls, kvmRun: UnsafeMutableRawPointer,
    kvmRunSize: Int
  ) {
    precondition(kvmRunSize >= KVMRun.exitUnionOffset + MemoryLayout<KVMRunPAPRHcall>.size)
    self.fd = fd
    self.id = id
    self.syscalls = syscalls
    self.kvmRun = kvmRun
    self.kvmRunSize = kvmRunSize
  }

  deinit {
    _ = syscalls.munmap(kvmRun, length: kvmRunSize)
    _ = syscalls.close(fd)
  }

  /// KVM_RUN, then why it returned, from kvm_run. EINTR is not retried by default: a signal
  /// is how another thread kicks a vCPU out of the guest.
  public func run(retryOnInterrupt: Bool = false) throws(KVMError) -> VCPUExit {
    _ = try ioctl(.KVM_RUN, retryOnInterrupt: retryOnInterrupt).get()
    return exit
  }

  /// The exit recorded in kvm_run by the last KVM_RUN.
  public var exit: VCPUExit {
    let reason = kvmRun.load(fromByteOffset: KVMRun.exitReasonOffset, as: UInt32.self)
    let u = KVMRun.exitUnionOffset
    switch reason {
    case KVMRun.KVM_EXIT_PAPR_HCALL:
      let h = kvmRun.load(fromByteOffset: u, as: KVMRunPAPRHcall.self)
      let args = withUnsafeBytes(of: h.args) { Array($0.bindMemory(to: UInt64.self)) }
      return .paprHcall(nr: h.nr, args: args)
    case KVMRun.KVM_EXIT_INTR:
      return .interrupted
    case KVMRun.KVM_EXIT_SHUTDOWN:
      return .shutdown(reason: "KVM_EXIT_SHUTDOWN")
    case KVMRun.KVM_EXIT_INTERNAL_ERROR:
      let suberror = kvmRun.load(fromByteOffset: u, as: UInt32.self)
      return .shutdown(reason: "KVM_EXIT_INTERNAL_ERROR suberror \(suberror)")
    case KVMRun.KVM_EXIT_FAIL_ENTRY:
      let hw = kvmRun.load(fromByteOffset: u, as: UInt64.self)
      return .shutdown(
        reason: "KVM_EXIT_FAIL_ENTRY hardware_entry_failure_reason 0x\(String(hw, radix: 16))")
    default:
      return .unsupported(reason)
    }
  }

  /// kvm_run.papr_hcall.ret: the return value of the hcall that caused the last
  /// KVM_EXIT_PAPR_HCALL, handed to the guest by the next KVM_RUN.
  public func setHcallReturn(_ value: UInt64) {
    kvmRun.storeBytes(
      of: value, toByteOffset: KVMRun.exitUnionOffset + MemoryLayout<UInt64>.size, as: UInt64.self)
  }

  /// kvm_run.immediate_exit: when set, KVM_RUN returns EINTR at once (KVM_CAP_IMMEDIATE_EXIT).
  public var immediateExit: Bool {
    get { kvmRun.load(fromByteOffset: KVMRun.immediateExitOffset, as: UInt8.self) != 0 }
    set {
      kvmRun.storeBytes(
        of: newValue ? 1 : 0, toByteOffset: KVMRun.immediateExitOffset, as: UInt8.self)
    }
  }

  /// KVM_GET_ONE_REG for a register of up to 8 bytes (id's KVM_REG_SIZE field). A larger
  /// register is refused with EINVAL before any call, as the kernel would for a short buffer.
  public func getOneReg(id: UInt64, retryOnInterrupt: Bool = true) throws(KVMError) -> UInt64 {
    let size = KVMReg.size(of: id)
    guard size <= 8 else { throw KVMError(KVMIoctl.KVM_GET_ONE_REG.name, .EINVAL) }
    var value: (UInt64, UInt64) = (0, 0)
    let r = withUnsafeMutableBytes(of: &value) { buf in
      var reg = KVMOneReg(id: id, addr: UInt64(UInt(bitPattern: buf.baseAddress)))
      return ioctl(.KVM_GET_ONE_REG, &reg, retryOnInterrupt: retryOnInterrupt)
        .map { _ in Self.loadRegister(buf, size: size) }
    }
    return try r.get()
  }

  /// KVM_SET_ONE_REG for a register of up to 8 bytes.
  public func setOneReg(id: UInt64, value: UInt64, retryOnInterrupt: Bool = true) throws(KVMError) {
    let size = KVMReg.size(of: id)
    guard size <= 8 else { throw KVMError(KVMIoctl.KVM_SET_ONE_REG.name, .EINVAL) }
    var storage: (UInt64, UInt64) = (0, 0)
    let r = withUnsafeMutableBytes(of: &storage) { buf in
      Self.storeRegister(value, buf, size: size)
      var reg = KVMOneReg(id: id, addr: UInt64(UInt(bitPattern: buf.baseAddress)))
      return ioctl(.KVM_SET_ONE_REG, &reg, retryOnInterrupt: retryOnInterrupt)
    }
    _ = try r.get()
  }

  /// KVM_GET_REGS (powerpc's kvm_regs: PC, MSR, GPRs).
  public func getRegs(retryOnInterrupt: Bool = true) throws(KVMError) -> KVMRegs {
    var r = KVMRegs.zero
    _ = try ioctl(.KVM_GET_REGS, &r, retryOnInterrupt: retryOnInterrupt).get()
    return r
  }

  /// KVM_SET_REGS.
  public func setRegs(_ regs: KVMRegs, retryOnInterrupt: Bool = true) throws(KVMError) {
    var r = regs
    _ = try ioctl(.KVM_SET_REGS, &r, retryOnInterrupt: retryOnInterrupt).get()
  }

  /// KVM_GET_SREGS (powerpc's kvm_sregs: PVR, SDR1, SLB).
  public func getSregs(retryOnInterrupt: Bool = true) throws(KVMError) -> KVMSregs {
    var s = KVMSregs.zero
    _ = try ioctl(.KVM_GET_SREGS, &s, retryOnInterrupt: retryOnInterrupt).get()
    return s
  }

  /// KVM_SET_SREGS.
  public func setSregs(_ sregs: KVMSregs, retryOnInterrupt: Bool = true) throws(KVMError) {
    var s = sregs
    _ = try ioctl(.KVM_SET_SREGS, &s, retryOnInterrupt: retryOnInterrupt).get()
  }

  /// KVM_ENABLE_CAP on the vCPU fd.
  public func enableCap(_ cap: KVMEnableCap, retryOnInterrupt: Bool = true) throws(KVMError) {
    var c = cap
    _ = try ioctl(.KVM_ENABLE_CAP, &c, retryOnInterrupt: retryOnInterrupt).get()
  }

  // ONE_REG values are native-endian integers of their own size at `addr`.
  static func loadRegister(_ buf: UnsafeMutableRawBufferPointer, size: Int) -> UInt64 {
    switch size {
    case 1: return UInt64(buf.load(as: UInt8.self))
    case 2: return UInt64(buf.load(as: UInt16.self))
    case 4: return UInt64(buf.load(as: UInt32.self))
    default: return buf.load(as: UInt64.self)
    }
  }

  static func storeRegister(_ v: UInt64, _ buf: UnsafeMutableRawBufferPointer, size: Int) {
    switch size {
    case 1: buf.storeBytes(of: UInt8(truncatingIfNeeded: v), as: UInt8.self)
    case 2: buf.storeBytes(of: UInt16(truncatingIfNeeded: v), as: UInt16.self)
    case 4: buf.storeBytes(of: UInt32(truncatingIfNeeded: v), as: UInt32.self)
    default: buf.storeBytes(of: v, as: UInt64.self)
    }
  }
}
