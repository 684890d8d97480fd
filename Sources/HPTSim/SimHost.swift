import KVMHost
import KernelLog

/// A simulated POWER9 host running KVM-HV: the `KVMSystem` the engine drives when the job's
/// backend is `sim`. Everything on it, the harness's agents included, runs under one seeded
/// scheduler, so a seed reproduces a run exactly.
public final class SimHost: KVMSystem, AgentExecutor, @unchecked Sendable {
  public let kernel: SimKernel
  public let hostName: String
  private var vmSeeds: SplitMix64

  /// - bootUptimeS: the simulated host's uptime when the run starts (the log's timestamps).
  public init(
    model: KernelModel, seed: UInt64, hostName: String = "sim-power9", bootUptimeS: UInt64 = 120
  ) {
    self.hostName = hostName
    kernel = SimKernel(
      model: model, seed: seed, hostName: hostName, bootUptimeNs: bootUptimeS * 1_000_000_000)
    var r = SplitMix64(seed: seed ^ 0x5eed)
    vmSeeds = r.split()
  }

  // MARK: KVMSystem

  public func apiVersion() throws(KVMError) -> Int { 12 }

  public func checkExtension(_ cap: KVMCapability) throws(KVMError) -> Int {
    try kernel.checkExtensionValue(cap)
  }

  public func createVM(type: VMType) throws(KVMError) -> any KVMVirtualMachine {
    guard !kernel.dead else { throw KVMError("KVM_CREATE_VM", .hostDown) }
    guard type != .pr else { throw KVMError("KVM_CREATE_VM", .EINVAL) }  // kvm_pr not loaded
    let vm = SimVM(kernel: kernel, lpid: kernel.nextLPID, seed: vmSeeds.next())
    kernel.nextLPID += 1
    return vm
  }

  public var kernelLog: any KernelLogSource { kernel.log }
  public var executor: any AgentExecutor { self }

  public var statistics: [String: Int] {
    let c = kernel.counters
    return [
      "scheduler_steps": Int(kernel.sched.steps), "hypervisor_faults": c.hypervisorFaults,
      "h_enters": c.hEnters, "hptes_rehashed": c.rehashedHPTEs,
      "pages_invalidated": c.invalidatedPages,
      "commits": c.commits, "faults_during_commit": c.faultsDuringCommit,
    ]
  }

  // MARK: AgentExecutor

  public func run(_ agents: [Agent]) {
    let sched = kernel.sched
    sched.spawn(name: "kworker/u256:1", kernel: true) { [kernel] in kernel.kworkerLoop() }
    for a in agents { sched.spawn(name: a.name, body: a.body) }
    sched.run()
    kernel.shutdown()
  }

  public var nowNs: UInt64 { kernel.sched.nowNs }

  public func sleep(ms: Int) {
    try? kernel.sched.sleep(ns: UInt64(ms) * 1_000_000)
  }

  public func requestStop() { kernel.sched.requestStop() }
  public var stopRequested: Bool { kernel.sched.stopRequested }
  public var clockIsSimulated: Bool { true }
}

extension SimKernel {
  /// What a POWER9 KVM-HV host in hash mode answers (KVM_CHECK_EXTENSION).
  func checkExtensionValue(_ cap: KVMCapability) throws(KVMError) -> Int {
    guard !dead else { throw KVMError("KVM_CHECK_EXTENSION", .hostDown) }
    switch cap {
    case .ppcAllocHTAB, .ppcHTABFD, .spaprResizeHPT, .ppcMMUHashV3: return 1
    case .ppcMMURadix: return 0  // booted with disable_radix
    // kvm_vm_ioctl_check_extension(): generic and book3s answers; PVINFO is PR's only.
    case .userMemory, .oneReg, .immediateExit, .ppcPAPR: return 1
    case .ppcGetPVInfo: return 0
    }
  }
}
