import KVMHost
import KVMSys
import KernelLog
import PPC64

/// A minimal VMM for HPT guests on KVM-HV: the KVMHost protocols implemented on the KVMSys
/// handles, so the engine's Runner and Hammer drive a real /dev/kvm (LinuxSyscalls) or the
/// simulated kernel (SimSyscalls) through the very same ioctls.
///
/// Everything the backend needs from outside comes through its initializer: the syscalls,
/// the executor the engine's agents run on (threads on a real host; the simulator's
/// scheduler, which must own every thread for a seed to reproduce a run), and the host's
/// kernel log.
public final class RawKVMSystem: KVMSystem, @unchecked Sendable {
  let system: KVMSystemFD
  let syscalls: any Syscalls
  public let hostName: String
  public let executor: any AgentExecutor
  public let kernelLog: any KernelLogSource
  private let counters: @Sendable () -> [String: Int]

  /// Opens `devicePath` (a failure is a KVMError named "open /dev/kvm").
  public init(
    syscalls: any Syscalls, devicePath: String = "/dev/kvm", executor: any AgentExecutor,
    kernelLog: any KernelLogSource, hostName: String,
    statistics: @escaping @Sendable () -> [String: Int] = { [:] }
  ) throws(KVMError) {
    self.syscalls = syscalls
    system = try KVMSystemFD.open(path: devicePath, syscalls: syscalls)
    self.executor = executor
    self.kernelLog = kernelLog
    self.hostName = hostName
    counters = statistics
  }

  public func apiVersion() throws(KVMError) -> Int { try system.apiVersion() }

  public func checkExtension(_ cap: KVMCapability) throws(KVMError) -> Int {
    try system.checkExtension(cap)
  }

  /// KVM_CREATE_VM, then the switch to HPT where the host needs it: on an ISA 3.0 host
  /// (KVM_CAP_PPC_MMU_HASH_V3) KVM_PPC_CONFIGURE_V3_MMU with flags 0, as QEMU does for hash
  /// guests. book3s_hv.c, kvmhv_configure_mmu(): a VM created on a radix host is radix, and
  /// flags 0 switches it to HPT (kvmppc_switch_mmu_to_hpt; 4.14 refused the switch with
  /// EINVAL, so no HPT guest on a radix 4.14 host); on a hash host it only sets the partition
  /// table; POWER8 has no such ioctl (ENODEV), so it is not sent there.
  public func createVM(type: VMType) throws(KVMError) -> any KVMVirtualMachine {
    let vm = try system.createVM(type: type)
    if try vm.checkExtension(.ppcMMUHashV3) > 0 {
      try vm.configureV3MMU(KVMPPCMMUv3Cfg(flags: 0, process_table: 0))
    }
    return RawVM(fd: vm, syscalls: syscalls)
  }

  public var statistics: [String: Int] { counters() }
}
