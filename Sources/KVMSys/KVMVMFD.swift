import KVMHost

/// A VM fd (rust-vmm's `VmFd`), made only by `KVMSystemFD.createVM`. Owns the fd and closes
/// it when released; KVM frees the VM once its vCPU fds are closed too.
public final class KVMVMFD: KVMExtensionCheck, Sendable {
  public let fd: Int32
  let syscalls: any Syscalls
  /// KVM_GET_VCPU_MMAP_SIZE, asked by the system fd when it created this VM.
  let vcpuMmapSize: Int
  var ioctl: IoctlCall { IoctlCall(fd: fd, syscalls: syscalls) }

  init(fd: Int32, syscalls: any Syscalls, vcpuMmapSize: Int) {
    self.fd = fd
    self.syscalls = syscalls
    self.vcpuMmapSize = vcpuMmapSize
  }

  deinit { _ = syscalls.close(fd) }

  /// KVM_CHECK_EXTENSION on the VM fd with a raw KVM_CAP_* number.
  public func checkExtension(raw cap: UInt32, retryOnInterrupt: Bool = true) throws(KVMError)
    -> Int
  {
    Int(try ioctl(.KVM_CHECK_EXTENSION, value: UInt(cap), retryOnInterrupt: retryOnInterrupt).get())
  }

  /// KVM_SET_USER_MEMORY_REGION.
  public func setUserMemoryRegion(
    _ region: KVMUserspaceMemoryRegion, retryOnInterrupt: Bool = true
  ) throws(KVMError) {
    var r = region
    _ = try ioctl(.KVM_SET_USER_MEMORY_REGION, &r, retryOnInterrupt: retryOnInterrupt).get()
  }

  /// KVM_CREATE_VCPU, then the mmap of its kvm_run. If the mmap fails, the new vCPU fd is
  /// closed and the error is named "mmap kvm_run".
  public func createVCPU(id: UInt32, retryOnInterrupt: Bool = true) throws(KVMError) -> KVMVCPUFD {
    let vcpufd = try ioctl(.KVM_CREATE_VCPU, value: UInt(id), retryOnInterrupt: retryOnInterrupt)
      .get()
    switch syscalls.mmap(length: vcpuMmapSize, .shared(fd: vcpufd, offset: 0)) {
    case .success(let run):
      return KVMVCPUFD(
        fd: vcpufd, id: id, syscalls: syscalls, kvmRun: run, kvmRunSize: vcpuMmapSize)
    case .failure(let e):
      _ = syscalls.close(vcpufd)
      throw KVMError("mmap kvm_run", e)
    }
  }

  /// KVM_ENABLE_CAP on the VM fd.
  public func enableCap(_ cap: KVMEnableCap, retryOnInterrupt: Bool = true) throws(KVMError) {
    var c = cap
    _ = try ioctl(.KVM_ENABLE_CAP, &c, retryOnInterrupt: retryOnInterrupt).get()
  }

  /// KVM_PPC_GET_SMMU_INFO: the hash MMU's segment and page sizes for this VM.
  public func getSMMUInfo(retryOnInterrupt: Bool = true) throws(KVMError) -> KVMPPCSMMUInfo {
    var info = KVMPPCSMMUInfo.zero
    _ = try ioctl(.KVM_PPC_GET_SMMU_INFO, &info, retryOnInterrupt: retryOnInterrupt).get()
    return info
  }

  /// KVM_PPC_ALLOCATE_HTAB: (re)allocates the HPT at `order` (0: the kernel's default) and
  /// returns the order the kernel actually chose (it may fall back to a smaller one).
  /// EBUSY while vCPUs run.
  public func allocateHTAB(order: UInt32, retryOnInterrupt: Bool = true) throws(KVMError)
    -> UInt32
  {
    var o = order
    _ = try ioctl(.KVM_PPC_ALLOCATE_HTAB, &o, retryOnInterrupt: retryOnInterrupt).get()
    return o
  }

  /// KVM_PPC_GET_HTAB_FD: an fd to read (or, with KVM_GET_HTAB_WRITE, write) the HPT.
  public func getHTABFD(_ arg: KVMGetHTABFD, retryOnInterrupt: Bool = true) throws(KVMError)
    -> KVMHTABFD
  {
    var a = arg
    let htabfd = try ioctl(.KVM_PPC_GET_HTAB_FD, &a, retryOnInterrupt: retryOnInterrupt).get()
    return KVMHTABFD(fd: htabfd, syscalls: syscalls)
  }

  /// KVM_CREATE_DEVICE: an in-kernel device of this VM (its own fd; the kernel releases the
  /// device, under kvm->lock, when that fd is closed).
  public func createDevice(type: UInt32, retryOnInterrupt: Bool = true) throws(KVMError)
    -> KVMDeviceFD
  {
    var a = KVMCreateDevice(type: type)
    _ = try ioctl(.KVM_CREATE_DEVICE, &a, retryOnInterrupt: retryOnInterrupt).get()
    return KVMDeviceFD(fd: Int32(bitPattern: a.fd), syscalls: syscalls)
  }

  /// KVM_PPC_RESIZE_HPT_PREPARE(flags, shift): the kernel's 0 is `.ready`, a positive answer
  /// is `.pending(estimateMs:)` (ask again after that long), a negative one throws with its
  /// errno. shift 0 cancels a pending request.
  public func resizeHPTPrepare(flags: UInt64 = 0, shift: UInt32, retryOnInterrupt: Bool = true)
    throws(KVMError) -> PrepareStatus
  {
    var arg = KVMPPCResizeHPT(flags: flags, shift: shift)
    let r = try ioctl(.KVM_PPC_RESIZE_HPT_PREPARE, &arg, retryOnInterrupt: retryOnInterrupt).get()
    return r == 0 ? .ready : .pending(estimateMs: Int(r))
  }

  /// KVM_PPC_RESIZE_HPT_COMMIT(flags, shift): rehash into the prepared HPT and pivot to it.
  public func resizeHPTCommit(flags: UInt64 = 0, shift: UInt32, retryOnInterrupt: Bool = true)
    throws(KVMError)
  {
    var arg = KVMPPCResizeHPT(flags: flags, shift: shift)
    _ = try ioctl(.KVM_PPC_RESIZE_HPT_COMMIT, &arg, retryOnInterrupt: retryOnInterrupt).get()
  }

  /// KVM_PPC_CONFIGURE_V3_MMU: on POWER9+, flags 0 makes the VM an HPT guest, RADIX|GTSE a
  /// radix one.
  public func configureV3MMU(_ cfg: KVMPPCMMUv3Cfg, retryOnInterrupt: Bool = true)
    throws(KVMError)
  {
    var c = cfg
    _ = try ioctl(.KVM_PPC_CONFIGURE_V3_MMU, &c, retryOnInterrupt: retryOnInterrupt).get()
  }
}

/// An fd KVM made for this VM beside the VM fd (KVM_PPC_GET_HTAB_FD's, KVM_CREATE_DEVICE's).
/// Owns it and closes it when released.
public final class KVMOwnedFD: Sendable {
  public let fd: Int32
  let syscalls: any Syscalls
  init(fd: Int32, syscalls: any Syscalls) {
    self.fd = fd
    self.syscalls = syscalls
  }
  deinit { _ = syscalls.close(fd) }
}

/// The fd KVM_PPC_GET_HTAB_FD returns.
public typealias KVMHTABFD = KVMOwnedFD
/// A device fd (KVM_CREATE_DEVICE): closing it releases the device.
public typealias KVMDeviceFD = KVMOwnedFD
