import KernelLog

/// Everything the harness asks of a KVM-HV host, shaped like /dev/kvm's ioctls. A backend
/// (the simulated kernel, raw /dev/kvm, libvirt) implements these; the engine uses nothing else.
/// Every failing call throws `KVMError` carrying the errno the kernel gave.
public protocol KVMSystem: AnyObject, Sendable {
  /// A short name for the host ("sim-power9", "localhost", a remote name).
  var hostName: String { get }
  /// KVM_GET_API_VERSION.
  func apiVersion() throws(KVMError) -> Int
  /// KVM_CHECK_EXTENSION on the system fd.
  func checkExtension(_ cap: KVMCapability) throws(KVMError) -> Int
  /// KVM_CREATE_VM.
  func createVM(type: VMType) throws(KVMError) -> any KVMVirtualMachine
  /// The host's kernel log (dmesg) as it is written.
  var kernelLog: any KernelLogSource { get }
  /// How the engine's agents run: real threads on a real host, a seeded scheduler on the
  /// simulated one. It also provides the clock they sleep on.
  var executor: any AgentExecutor { get }
  /// Counters the host can give about its own work (hypervisor faults, HPTEs rehashed...),
  /// for progress lines and run.json; empty when it has none.
  var statistics: [String: Int] { get }
}

public protocol KVMVirtualMachine: AnyObject, Sendable {
  /// KVM_CHECK_EXTENSION on the VM fd.
  func checkExtension(_ cap: KVMCapability) throws(KVMError) -> Int
  /// KVM_SET_USER_MEMORY_REGION: guest RAM of `size` bytes at guest-physical `guestPhysAddr`.
  func setUserMemoryRegion(slot: UInt32, guestPhysAddr: UInt64, size: UInt64) throws(KVMError)
  /// KVM_PPC_ALLOCATE_HTAB: (re)allocate the HPT at `order`; returns the order the kernel chose.
  func allocateHTAB(order: UInt32) throws(KVMError) -> UInt32
  /// KVM_CREATE_VCPU.
  func createVCPU(id: UInt32) throws(KVMError) -> any KVMVCPU
  /// KVM_PPC_RESIZE_HPT_PREPARE(flags, shift): 0 -> .ready, >0 -> .pending(ms), <0 -> throws.
  func resizeHPTPrepare(flags: UInt64, shift: UInt32) throws(KVMError) -> PrepareStatus
  /// KVM_PPC_RESIZE_HPT_COMMIT(flags, shift).
  func resizeHPTCommit(flags: UInt64, shift: UInt32) throws(KVMError)
  /// Put the harness's guest payload into guest memory for `vcpu` (machine code on real KVM,
  /// the equivalent guest model on the simulator).
  func loadPayload(_ payload: GuestPayload, vcpu: UInt32) throws(KVMError)
  /// Host-side memory load: take the host pages behind a range of guest memory away (`how`:
  /// unmap them or free them; page migration under the MMU notifier on the simulator), which
  /// forces the kernel to invalidate HPTEs and the guest to fault the pages back in.
  func invalidateGuestMemory(guestPhysAddr: UInt64, size: UInt64, how: HostInvalidation)
    throws(KVMError)
  /// The dword at `gpa` as the VMM sees it through its own mapping of guest RAM (not through
  /// the guest's translations); nil where the backend has no such view (the simulator).
  func readGuestDword(_ gpa: UInt64) -> UInt64?
  /// Gives the VM an in-kernel interrupt controller (XICS; XICS-on-XIVE on POWER9), as QEMU's
  /// pseries machine does; released when the VM is closed (under kvm->lock, taking each vCPU's
  /// mutex). The simulator models none.
  func createInterruptController() throws(KVMError)
  /// Release the VM (close its fds).
  func close()
  /// Makes every vCPU of this VM that is inside KVM_RUN return now (EINTR), once, as QEMU
  /// does before a reset; the next KVM_RUN runs as usual.
  func kickVCPUs()
}

extension KVMVirtualMachine {
  /// A backend whose vCPUs return at their next yield (the simulator) needs no kick.
  public func kickVCPUs() {}
  public func readGuestDword(_ gpa: UInt64) -> UInt64? { nil }
  public func createInterruptController() throws(KVMError) {}
}

/// How the host takes guest pages away (memory_load.host_invalidate.advice).
public enum HostInvalidation: String, Sendable, Hashable, CaseIterable, Codable {
  /// madvise(MADV_DONTNEED) on the shared guest RAM: the pages leave the VMM's page tables
  /// (MMU notifier, HPTE invalidation) but their contents stay in the shmem object, so a stale
  /// translation still reaches the right data.
  case dontneed
  /// madvise(MADV_REMOVE): the pages are freed (a hole punched in the shmem object) and come
  /// back zeroed; a stale translation now reaches a freed page. The payload is told which
  /// pages went (its taken table).
  case remove
  /// madvise(MADV_PAGEOUT): reclaim takes the pages (unmapped through the rmap, written to
  /// swap where there is swap) and gives them back, contents intact, at the next access.
  case pageout
  /// move_pages(2) to another NUMA node (as NUMA balancing and memory offlining do): the
  /// MMU notifier, then a new page with the same contents; a stale translation reaches the
  /// old page, freed and reused. The host needs two nodes with memory.
  case migrate
}

public protocol KVMVCPU: AnyObject, Sendable {
  var id: UInt32 { get }
  /// KVM_RUN: runs the guest until it needs userspace.
  func run() throws(KVMError) -> VCPUExit
  /// Set the return value of the hcall that caused the last `.paprHcall` exit.
  func setHcallReturn(_ value: UInt64)
  /// The guest's registers that say where it is (PC, MSR, LR, SRR0/1, DAR, DSISR), for a
  /// guest that stopped making progress; nil where the backend has none (the simulator).
  /// Only while no thread is inside KVM_RUN: the ioctl waits for the vCPU's mutex.
  func registers() throws(KVMError) -> VCPURegisters?
}

extension KVMVCPU {
  public func registers() throws(KVMError) -> VCPURegisters? { nil }
}

/// Where a vCPU's guest is: enough to tell a payload that loops from one that took an
/// interrupt it has no handler for (real mode: the vectors at 0x100-0xf00 hold nothing).
public struct VCPURegisters: Sendable, Equatable, Codable {
  public var pc: UInt64
  public var msr: UInt64
  public var lr: UInt64
  public var srr0: UInt64
  public var srr1: UInt64
  public var dar: UInt64
  public var dsisr: UInt64

  public init(
    pc: UInt64, msr: UInt64, lr: UInt64, srr0: UInt64, srr1: UInt64, dar: UInt64, dsisr: UInt64
  ) {
    self.pc = pc
    self.msr = msr
    self.lr = lr
    self.srr0 = srr0
    self.srr1 = srr1
    self.dar = dar
    self.dsisr = dsisr
  }

  /// The Book3S interrupt vectors a real-mode guest lands on (Power ISA, Book III).
  static let vectors: [UInt64: String] = [
    0x100: "system reset", 0x200: "machine check", 0x300: "data storage",
    0x380: "data segment", 0x400: "instruction storage", 0x480: "instruction segment",
    0x500: "external", 0x600: "alignment", 0x700: "program", 0x800: "FP unavailable",
    0x900: "decrementer", 0x980: "hypervisor decrementer", 0xc00: "system call",
    0xd00: "trace", 0xe00: "hypervisor data storage", 0xf00: "performance monitor",
  ]

  /// One line: the registers, and the interrupt vector the PC is in, if it is in one.
  public var description: String {
    func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
    var s =
      "pc \(hex(pc)) msr \(hex(msr)) lr \(hex(lr)) srr0 \(hex(srr0)) srr1 \(hex(srr1)) dar \(hex(dar)) dsisr \(hex(dsisr))"
    if pc < 0x1000, let name = Self.vectors[pc & ~0x7f] {
      s +=
        " (in the \(name) interrupt vector \(hex(pc & ~0x7f)): the guest took an interrupt at \(hex(srr0)))"
    }
    return s
  }
}

/// An interrupt the payload's vectors reported (HPTHammerHcall.interrupt): which vector, and
/// SRR0, SRR1, DAR, DSISR as the handler found them.
public struct GuestInterrupt: Sendable, Equatable, CustomStringConvertible {
  public var vector: UInt64
  public var srr0: UInt64
  public var srr1: UInt64
  public var dar: UInt64
  public var dsisr: UInt64

  /// From the hcall's arguments r4...r8.
  public init(_ args: [UInt64]) {
    precondition(args.count >= 5)
    (vector, srr0, srr1, dar, dsisr) = (args[0], args[1], args[2], args[3], args[4])
  }

  /// "data storage", "program", ... (Power ISA, Book III), or the vector's address.
  public var name: String {
    VCPURegisters.vectors[vector] ?? "0x" + String(vector, radix: 16)
  }

  /// What SRR1 (program, instruction storage) or DSISR (data storage) says caused it.
  public var cause: [String] {
    let bits: [(UInt64, UInt64, String)]
    switch vector {
    case 0x300:
      bits = [
        (dsisr, 0x4000_0000, "no HPTE"), (dsisr, 0x0800_0000, "protection"),
        (dsisr, 0x0200_0000, "store"),
      ]
    case 0x400:
      bits = [(srr1, 0x4000_0000, "no HPTE"), (srr1, 0x0800_0000, "protection or no-execute")]
    case 0x700:
      bits = [
        (srr1, 0x10_0000, "floating-point enabled"), (srr1, 0x8_0000, "illegal instruction"),
        (srr1, 0x4_0000, "privileged instruction"), (srr1, 0x2_0000, "trap"),
      ]
    default: bits = []
    }
    return bits.filter { $0.0 & $0.1 != 0 }.map(\.2)
  }

  public var description: String {
    func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
    let why = cause.isEmpty ? "" : " (\(cause.joined(separator: ", ")))"
    return
      "\(name) interrupt (\(hex(vector)))\(why) at \(hex(srr0)): srr1 \(hex(srr1)) dar \(hex(dar)) dsisr \(hex(dsisr))"
  }
}

/// A source of kernel log records. `next(timeoutMs:)` returns nil when none arrived in time;
/// `isFinished` is true once the source can produce nothing more (the host died, EOF).
public protocol KernelLogSource: AnyObject, Sendable {
  func next(timeoutMs: Int) -> KernelLogRecord?
  var isFinished: Bool { get }
}

/// A named unit of work of the engine (a vCPU loop, the hammer, the host memory load).
public struct Agent: Sendable {
  public var name: String
  public var body: @Sendable () -> Void
  public init(name: String, body: @escaping @Sendable () -> Void) {
    self.name = name
    self.body = body
  }
}

/// Runs the engine's agents and gives them time. On a real host agents are threads and time
/// is the monotonic clock; on the simulator they are interleaved by a seeded scheduler and
/// time is the simulated host's uptime, so one seed reproduces one run exactly.
public protocol AgentExecutor: AnyObject, Sendable {
  /// Runs the agents to completion (they return when `stopRequested` turns true, or when they
  /// are done). Returns when all have returned.
  func run(_ agents: [Agent])
  /// Nanoseconds on the executor's clock (host uptime on the simulator).
  var nowNs: UInt64 { get }
  func sleep(ms: Int)
  /// Asks every agent to finish.
  func requestStop()
  var stopRequested: Bool { get }
  /// The host's kernel has crashed: agents blocked in calls to it may never return, so the
  /// executor need not wait long for them once stopped.
  func hostCrashed()
  /// The clock is the simulator's: it moves only as the agents run, so anything sampled by
  /// the wall clock (the timeline's rates) is sampled by the agents instead, to keep one seed
  /// one run.
  var clockIsSimulated: Bool { get }
}

extension AgentExecutor {
  public func hostCrashed() {}
  public var clockIsSimulated: Bool { false }
}
