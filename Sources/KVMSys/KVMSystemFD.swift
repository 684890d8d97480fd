import KVMHost

/// The /dev/kvm fd (rust-vmm's `Kvm`). Owns the fd and closes it when released; it is the
/// only way to get a `KVMVMFD`.
public final class KVMSystemFD: KVMExtensionCheck, Sendable {
  public let fd: Int32
  let syscalls: any Syscalls
  var ioctl: IoctlCall { IoctlCall(fd: fd, syscalls: syscalls) }

  /// Opens `path` (O_RDWR | O_CLOEXEC). A failure is named "open <path>".
  public static func open(
    path: String = "/dev/kvm", syscalls: any Syscalls = LinuxSyscalls(),
    retryOnInterrupt: Bool = true
  ) throws(KVMError) -> KVMSystemFD {
    let fd = try syscalls.retrying(retryOnInterrupt) { syscalls.open(path) }
      .mapError { KVMError("open \(path)", $0) }.get()
    return KVMSystemFD(fd: fd, syscalls: syscalls)
  }

  /// Wraps an fd this handle will own (and close).
  init(fd: Int32, syscalls: any Syscalls) {
    self.fd = fd
    self.syscalls = syscalls
  }

  deinit { _ = syscalls.close(fd) }

  /// KVM_GET_API_VERSION: 12 on every kernel since 2.6.22.
  public func apiVersion(retryOnInterrupt: Bool = true) throws(KVMError) -> Int {
    Int(try ioctl(.KVM_GET_API_VERSION, retryOnInterrupt: retryOnInterrupt).get())
  }

  /// KVM_CHECK_EXTENSION with a KVM_CAP_* number KVMCapability does not name.
  public func checkExtension(raw cap: UInt32, retryOnInterrupt: Bool = true) throws(KVMError)
    -> Int
  {
    Int(try ioctl(.KVM_CHECK_EXTENSION, value: UInt(cap), retryOnInterrupt: retryOnInterrupt).get())
  }

  /// KVM_GET_VCPU_MMAP_SIZE: the size of each vCPU fd's kvm_run mapping.
  public func vcpuMmapSize(retryOnInterrupt: Bool = true) throws(KVMError) -> Int {
    Int(try ioctl(.KVM_GET_VCPU_MMAP_SIZE, retryOnInterrupt: retryOnInterrupt).get())
  }

  /// KVM_CREATE_VM. Asks KVM_GET_VCPU_MMAP_SIZE first (as kvm-ioctls does), so the VM can
  /// map its vCPUs' kvm_run and no VM fd leaks when that fails.
  public func createVM(type: VMType, retryOnInterrupt: Bool = true) throws(KVMError) -> KVMVMFD {
    let runSize = try vcpuMmapSize(retryOnInterrupt: retryOnInterrupt)
    let vmfd = try ioctl(.KVM_CREATE_VM, value: type.rawValue, retryOnInterrupt: retryOnInterrupt)
      .get()
    return KVMVMFD(fd: vmfd, syscalls: syscalls, vcpuMmapSize: runSize)
  }
}

/// The fds KVM_CHECK_EXTENSION works on (system and VM): the typed form over the raw one.
public protocol KVMExtensionCheck {
  /// KVM_CHECK_EXTENSION with a KVM_CAP_* number (`KVMCapability` names them): 0 when absent, else a
  /// capability-specific value.
  func checkExtension(raw cap: UInt32, retryOnInterrupt: Bool) throws(KVMError) -> Int
}

extension KVMExtensionCheck {
  /// KVM_CHECK_EXTENSION: on the system fd what the module supports, on the VM fd what this
  /// VM's type (HV or PR) supports.
  public func checkExtension(_ cap: KVMCapability, retryOnInterrupt: Bool = true)
    throws(KVMError) -> Int
  {
    try checkExtension(raw: cap.rawValue, retryOnInterrupt: retryOnInterrupt)
  }
}
