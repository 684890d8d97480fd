import Foundation
import Glibc
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
  public let kernelLog: any KernelLogSource
  private let counters: @Sendable () -> [String: Int]
  private let base: any AgentExecutor
  private let kicker: (any VCPUKicker)?
  private let lock = NSLock()
  private var vms: [Weak] = []
  /// Guest pages the host moved to another NUMA node (advice migrate), over every VM.
  private let migrated = Counter()

  final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int) { lock.withLock { n += k } }
    var value: Int { lock.withLock { n } }
  }

  struct Weak {
    weak var vm: RawVM?
  }

  /// The executor the engine's agents run on: the one given, whose stop request also kicks
  /// every vCPU out of KVM_RUN (immediate_exit, and a signal when a kicker was given).
  public var executor: any AgentExecutor { KickingExecutor(base: base, system: self) }

  /// Opens `devicePath` (a failure is a KVMError named "open /dev/kvm"). `kicker`: how to
  /// interrupt a thread inside KVM_RUN on a real host (nil on the simulator, whose vCPUs
  /// return at their next yield).
  public init(
    syscalls: any Syscalls, devicePath: String = "/dev/kvm", executor: any AgentExecutor,
    kernelLog: any KernelLogSource, hostName: String, kicker: (any VCPUKicker)? = nil,
    statistics: @escaping @Sendable () -> [String: Int] = { [:] }
  ) throws(KVMError) {
    self.syscalls = syscalls
    system = try KVMSystemFD.open(path: devicePath, syscalls: syscalls)
    base = executor
    self.kicker = kicker
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
    let r = RawVM(fd: vm, syscalls: syscalls, kicker: kicker, migrated: migrated)
    lock.withLock { vms.append(Weak(vm: r)) }
    return r
  }

  /// Kicks every vCPU of every live VM out of KVM_RUN.
  func kickAll() {
    for vm in lock.withLock({ vms.compactMap(\.vm) }) { vm.kickAll() }
  }

  /// The counters given (the simulated kernel's), and the pages migrated when there were any.
  public var statistics: [String: Int] {
    var s = counters()
    if migrated.value > 0 { s["pages_migrated"] = migrated.value }
    return s
  }
}

/// The executor given to RawKVMSystem, with a stop request that also kicks the vCPUs.
final class KickingExecutor: AgentExecutor, @unchecked Sendable {
  let base: any AgentExecutor
  let system: RawKVMSystem
  init(base: any AgentExecutor, system: RawKVMSystem) {
    self.base = base
    self.system = system
  }
  func run(_ agents: [Agent]) { base.run(agents) }
  var nowNs: UInt64 { base.nowNs }
  func sleep(ms: Int) { base.sleep(ms: ms) }
  func requestStop() {
    base.requestStop()
    system.kickAll()
  }
  var stopRequested: Bool { base.stopRequested }
  func hostCrashed() { base.hostCrashed() }
  var clockIsSimulated: Bool { base.clockIsSimulated }
}
