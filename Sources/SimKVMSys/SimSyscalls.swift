import Foundation
import Glibc
import HPTSim
import KVMHost
import KVMSys
import PPC64

/// A `Syscalls` backed by the simulated KVM-HV kernel: the raw backend's code (RawKVM over
/// the KVMSys handles) runs unchanged against HPTSim, ioctl by ioctl.
///
/// - open("/dev/kvm") gives a fake system fd; KVM_CREATE_VM and KVM_CREATE_VCPU give fake
///   VM and vCPU fds. Requests are decoded by number (KVMIoctl, this machine's layout) and
///   their argument structs read and written as the kernel would, then passed to the
///   simulator's KVMHost objects (SimHost, SimVM, SimVCPU).
/// - mmap of a vCPU fd gives a kvm_run buffer, filled on every KVM_RUN exit (exit_reason,
///   papr_hcall nr/args); papr_hcall.ret is handed to the simulated vCPU on the next
///   KVM_RUN, as KVM puts it in r3. Anonymous mmaps are real (lazily backed) memory.
/// - madvise(MADV_DONTNEED) of memory registered as a memslot becomes the simulated VM's
///   invalidateGuestMemory for the same guest-physical range (the MMU notifier's work).
///
/// The simulator does not interpret ppc64 code. It learns what the payload does from the
/// payload's parameter block (PPC64.Payload): before a vCPU's first KVM_RUN, the 64 bytes
/// at PC - 64 (PC as set with KVM_SET_REGS) are read from guest RAM through the memslot; with
/// the magic, MSR_LE set and MSR_IR/DR clear (the real-mode little-endian payload the
/// simulator models), they become the SimVM's loadPayload. Anything else makes KVM_RUN exit
/// with KVM_EXIT_INTERNAL_ERROR (`lastError` says why), as code the simulator cannot run.
///
/// All calls must come from the simulator's threads (`executor`), or from one thread before
/// the run: the simulated kernel is driven by its seeded scheduler only.
public final class SimSyscalls: Syscalls, @unchecked Sendable {
  public let host: SimHost
  /// What the raw backend runs its agents on and reads the host log from.
  public var executor: any AgentExecutor { host.executor }
  public var kernelLog: any KernelLogSource { host.kernelLog }
  public var statistics: [String: Int] { host.statistics }

  /// KVM_GET_VCPU_MMAP_SIZE: one 64 KiB page, as on a POWER host with 64K pages.
  public static let vcpuMmapSize = 65536
  /// The PVR the simulated host's vCPUs get: POWER9 DD2.2.
  public static let pvr: UInt32 = 0x004e_1202
  static let lpcrUserMask: UInt64 = 0xe0_0000_0000_0000 | 1 << 25 | 3 << 22 | 1 << 24 | 1 << 17

  final class VMState {
    let vm: any KVMVirtualMachine
    var memslots: [KVMUserspaceMemoryRegion] = []
    init(vm: any KVMVirtualMachine) { self.vm = vm }
  }

  final class VCPUState {
    let vcpu: any KVMVCPU
    let vm: VMState
    var regs = KVMRegs.zero
    var lpcr: UInt64 = 0
    var run: UnsafeMutableRawPointer?
    var payloadLoaded = false
    var hcallPending = false
    /// KVM_ENABLE_CAP(KVM_CAP_PPC_PAPR) on this vCPU: HV runs only PAPR guests.
    var papr = false
    init(vcpu: any KVMVCPU, vm: VMState) {
      self.vcpu = vcpu
      self.vm = vm
    }
  }

  enum FD {
    case system
    case vm(VMState)
    case vcpu(VCPUState)
    /// An in-kernel interrupt controller (KVM_CREATE_DEVICE): its release is modelled.
    case device(VMState)
  }

  private let lock = NSLock()
  private var fds: [Int32: FD] = [:]
  private var nextFD: Int32 = 100
  private var mappings: [UInt: Int] = [:]
  private var _lastError: String?

  public init(host: SimHost) {
    self.host = host
  }

  /// Why the last KVM_RUN ended in KVM_EXIT_INTERNAL_ERROR, if one did.
  public var lastError: String? { lock.withLock { _lastError } }

  private func add(_ f: FD) -> Int32 {
    lock.withLock {
      let fd = nextFD
      nextFD += 1
      fds[fd] = f
      return fd
    }
  }

  private func lookup(_ fd: Int32) -> FD? { lock.withLock { fds[fd] } }

  // MARK: Syscalls

  public func open(_ path: String) -> Result<Int32, Errno> {
    guard path == "/dev/kvm" else { return .failure(.ENOENT) }
    return .success(add(.system))
  }

  public func close(_ fd: Int32) -> Result<Int32, Errno> {
    let f = lock.withLock { fds.removeValue(forKey: fd) }
    guard let f else { return .failure(.EBADF) }
    if case .vm(let s) = f { s.vm.close() }
    if case .device(let s) = f { (s.vm as? SimVM)?.releaseInterruptController() }
    return .success(0)
  }

  public func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Result<Int32, Errno> {
    guard let f = lookup(fd) else { return .failure(.EBADF) }
    guard let ioctl = KVMIoctl.named(number: request, arch: .host) else { return .failure(.ENOTTY) }
    do {
      switch (f, ioctl) {
      case (.system, .KVM_GET_API_VERSION): return .success(Int32(try host.apiVersion()))
      case (.system, .KVM_CHECK_EXTENSION): return .success(try checkExtension(UInt32(value), nil))
      case (.vm(let s), .KVM_CHECK_EXTENSION):
        return .success(try checkExtension(UInt32(value), s.vm))
      case (.system, .KVM_GET_VCPU_MMAP_SIZE): return .success(Int32(Self.vcpuMmapSize))
      case (.system, .KVM_CREATE_VM):
        guard let type = VMType(rawValue: value) else { return .failure(.EINVAL) }
        return .success(add(.vm(VMState(vm: try host.createVM(type: type)))))
      case (.vm(let s), .KVM_CREATE_VCPU):
        let v = try s.vm.createVCPU(id: UInt32(value))
        return .success(add(.vcpu(VCPUState(vcpu: v, vm: s))))
      case (.vcpu(let s), .KVM_RUN): return run(s)
      default: return .failure(.ENOTTY)
      }
    } catch {
      return .failure(error.errno)
    }
  }

  func checkExtension(_ cap: UInt32, _ vm: (any KVMVirtualMachine)?) throws(KVMError) -> Int32 {
    // A capability the harness does not name is one the simulated kernel lacks.
    guard let c = KVMCapability(rawValue: cap) else { return 0 }
    if let vm { return Int32(try vm.checkExtension(c)) }
    return Int32(try host.checkExtension(c))
  }

  public func ioctl(_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawBufferPointer) -> Result<
    Int32, Errno
  > {
    guard let f = lookup(fd) else { return .failure(.EBADF) }
    guard let ioctl = KVMIoctl.named(number: request, arch: .host), ioctl.size == arg.count else {
      return .failure(.ENOTTY)
    }
    do {
      switch (f, ioctl) {
      case (.vm(let s), .KVM_SET_USER_MEMORY_REGION):
        let r = arg.load(as: KVMUserspaceMemoryRegion.self)
        try s.vm.setUserMemoryRegion(
          slot: r.slot, guestPhysAddr: r.guest_phys_addr, size: r.memory_size)
        lock.withLock {
          s.memslots.removeAll { $0.slot == r.slot }
          s.memslots.append(r)
        }
        return .success(0)
      case (.vm(let s), .KVM_CREATE_DEVICE):
        var d = arg.load(as: KVMCreateDevice.self)
        guard d.type == KVMCreateDevice.KVM_DEV_TYPE_XICS else { return .failure(.ENODEV) }
        try s.vm.createInterruptController()
        d.fd = UInt32(add(.device(s)))
        arg.storeBytes(of: d, as: KVMCreateDevice.self)
        return .success(0)
      case (.vm(let s), .KVM_PPC_ALLOCATE_HTAB):
        let order = try s.vm.allocateHTAB(order: arg.load(as: UInt32.self))
        arg.storeBytes(of: order, as: UInt32.self)
        return .success(0)
      case (.vm(let s), .KVM_PPC_RESIZE_HPT_PREPARE):
        let r = arg.load(as: KVMPPCResizeHPT.self)
        switch try s.vm.resizeHPTPrepare(flags: r.flags, shift: r.shift) {
        case .ready: return .success(0)
        case .pending(let ms): return .success(Int32(ms))
        }
      case (.vm(let s), .KVM_PPC_RESIZE_HPT_COMMIT):
        let r = arg.load(as: KVMPPCResizeHPT.self)
        try s.vm.resizeHPTCommit(flags: r.flags, shift: r.shift)
        return .success(0)
      case (.vm, .KVM_PPC_CONFIGURE_V3_MMU):
        // kvmhv_configure_mmu() on a hash POWER9 host: unknown flags and radix are EINVAL.
        let c = arg.load(as: KVMPPCMMUv3Cfg.self)
        let known = KVMPPCMMUv3Cfg.KVM_PPC_MMUV3_RADIX | KVMPPCMMUv3Cfg.KVM_PPC_MMUV3_GTSE
        guard c.flags & ~known == 0, c.flags & KVMPPCMMUv3Cfg.KVM_PPC_MMUV3_RADIX == 0 else {
          return .failure(.EINVAL)
        }
        return .success(0)
      case (.vcpu(let s), .KVM_GET_REGS):
        let regs = lock.withLock { s.regs }
        arg.storeBytes(of: regs, as: KVMRegs.self)
        return .success(0)
      case (.vcpu(let s), .KVM_SET_REGS):
        let regs = arg.load(as: KVMRegs.self)
        lock.withLock { s.regs = regs }
        return .success(0)
      case (.vcpu, .KVM_GET_SREGS):
        var sregs = KVMSregs.zero
        sregs.pvr = Self.pvr
        arg.storeBytes(of: sregs, as: KVMSregs.self)
        return .success(0)
      case (.vcpu, .KVM_SET_SREGS):
        // kvm_arch_vcpu_ioctl_set_sregs_hv(): only the host's PVR.
        return arg.load(as: KVMSregs.self).pvr == Self.pvr ? .success(0) : .failure(.EINVAL)
      case (.vcpu(let s), .KVM_GET_ONE_REG), (.vcpu(let s), .KVM_SET_ONE_REG):
        return oneReg(s, arg.load(as: KVMOneReg.self), set: ioctl == .KVM_SET_ONE_REG)
      case (.vcpu(let s), .KVM_ENABLE_CAP):
        // kvm_vcpu_ioctl_enable_cap(): KVM_CAP_PPC_PAPR is the one the VMM needs on HV.
        guard arg.load(as: UInt32.self) == KVMCapability.ppcPAPR.rawValue else {
          return .failure(.EINVAL)
        }
        lock.withLock { s.papr = true }
        return .success(0)
      default:
        return .failure(.ENOTTY)
      }
    } catch {
      return .failure(error.errno)
    }
  }

  /// ONE_REG: only LPCR (LPCR_64) is modelled; its user-settable bits as kvmppc_set_lpcr()
  /// masks them (DPFD, ILE, TC, AIL, LD).
  func oneReg(_ s: VCPUState, _ reg: KVMOneReg, set: Bool) -> Result<Int32, Errno> {
    guard reg.id == KVMReg.KVM_REG_PPC_LPCR_64 else { return .failure(.EINVAL) }
    guard let p = UnsafeMutableRawPointer(bitPattern: UInt(reg.addr)) else {
      return .failure(.EFAULT)
    }
    if set {
      let v = p.loadUnaligned(as: UInt64.self)
      lock.withLock { s.lpcr = (s.lpcr & ~Self.lpcrUserMask) | (v & Self.lpcrUserMask) }
    } else {
      p.storeBytes(of: lock.withLock { s.lpcr }, as: UInt64.self)
    }
    return .success(0)
  }

  // MARK: KVM_RUN

  static let MSR_LE: UInt64 = 1
  static let MSR_IR: UInt64 = 1 << 5
  static let MSR_DR: UInt64 = 1 << 4

  func run(_ s: VCPUState) -> Result<Int32, Errno> {
    guard let run = lock.withLock({ s.run }) else { return .failure(.EFAULT) }
    func setExit(_ reason: UInt32) {
      run.storeBytes(of: reason, toByteOffset: KVMRun.exitReasonOffset, as: UInt32.self)
    }
    if lock.withLock({ s.hcallPending }) {
      let ret = run.load(
        fromByteOffset: KVMRun.exitUnionOffset + MemoryLayout<UInt64>.size, as: UInt64.self)
      s.vcpu.setHcallReturn(ret)
      lock.withLock { s.hcallPending = false }
    }
    // kvm_arch_vcpu_ioctl_run(): after the hcall's return value, immediate_exit is EINTR.
    if run.load(fromByteOffset: KVMRun.immediateExitOffset, as: UInt8.self) != 0 {
      setExit(KVMRun.KVM_EXIT_INTR)
      return .failure(.EINTR)
    }
    // kvmppc_sanity_check(): "HV KVM can only do PAPR mode for now".
    guard lock.withLock({ s.papr }) else {
      setExit(KVMRun.KVM_EXIT_INTERNAL_ERROR)
      return .failure(.EINVAL)
    }
    if !lock.withLock({ s.payloadLoaded }) {
      if let why = loadPayload(s) {
        lock.withLock { _lastError = "vCPU \(s.vcpu.id): \(why)" }
        setExit(KVMRun.KVM_EXIT_INTERNAL_ERROR)
        run.storeBytes(of: UInt32(1), toByteOffset: KVMRun.exitUnionOffset, as: UInt32.self)
        return .success(0)
      }
    }
    let exit: VCPUExit
    do {
      exit = try s.vcpu.run()
    } catch {
      return .failure(error.errno)
    }
    switch exit {
    case .paprHcall(let nr, let args):
      // kvm_run.papr_hcall: nr, ret, args[9].
      let u = KVMRun.exitUnionOffset
      run.storeBytes(of: nr, toByteOffset: u, as: UInt64.self)
      run.storeBytes(of: UInt64(0), toByteOffset: u + 8, as: UInt64.self)
      for i in 0..<9 {
        let a = i < args.count ? args[i] : 0
        run.storeBytes(of: a, toByteOffset: u + 16 + i * 8, as: UInt64.self)
      }
      setExit(KVMRun.KVM_EXIT_PAPR_HCALL)
      lock.withLock { s.hcallPending = true }
      return .success(0)
    case .interrupted:
      setExit(KVMRun.KVM_EXIT_INTR)
      return .failure(.EINTR)
    case .shutdown:
      setExit(KVMRun.KVM_EXIT_SHUTDOWN)
      return .success(0)
    case .unsupported(let r):
      setExit(r)
      return .success(0)
    }
  }

  /// Reads the payload's parameter block at PC - 64 and hands it to the simulated VM; returns
  /// why not, when it cannot.
  func loadPayload(_ s: VCPUState) -> String? {
    let (pc, msr, slots) = lock.withLock { (s.regs.pc, s.regs.msr, s.vm.memslots) }
    guard msr & Self.MSR_LE != 0, msr & (Self.MSR_IR | Self.MSR_DR) == 0 else {
      return
        "MSR 0x\(String(msr, radix: 16)): the simulator only runs the real-mode little-endian payload"
    }
    let blockSize = Payload.parameterBlockSize
    guard pc >= blockSize,
      let m = slots.first(where: {
        pc - blockSize >= $0.guest_phys_addr && pc <= $0.guest_phys_addr + $0.memory_size
      }),
      let host = UnsafeRawPointer(bitPattern: UInt(m.userspace_addr))
    else { return "PC 0x\(String(pc, radix: 16)) is not in guest RAM" }
    let block = UnsafeRawBufferPointer(
      start: host + Int(pc - blockSize - m.guest_phys_addr), count: Int(blockSize))
    guard let p = Payload.parameters(fromBlock: block) else {
      return "no payload parameter block at 0x\(String(pc - blockSize, radix: 16))"
    }
    guard p.pageBytes == 65536, p.hcallNumber == HPTHammerHcall.report else {
      return
        "payload with pageBytes \(p.pageBytes), hcall 0x\(String(p.hcallNumber, radix: 16)): the simulator models 64 KiB pages and HPTHammerHcall.report"
    }
    do {
      try s.vm.vm.loadPayload(
        GuestPayload(
          base: p.base, size: p.size, patternSeed: p.patternSeed,
          pagesPerReport: Int(clamping: p.pagesPerReport),
          boltedSecondaryHPTEs: Int(clamping: p.boltedSecondaryHPTEs)), vcpu: s.vcpu.id)
    } catch {
      return "loadPayload: \(error)"
    }
    lock.withLock { s.payloadLoaded = true }
    return nil
  }

  // MARK: memory

  public func mmap(length: Int, _ mapping: MemoryMapping) -> Result<UnsafeMutableRawPointer, Errno>
  {
    guard length > 0 else { return .failure(.EINVAL) }
    switch mapping {
    case .shared(let fd, _):
      guard case .vcpu(let s) = lookup(fd) else { return .failure(.ENODEV) }
      let p = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 4096)
      p.initializeMemory(as: UInt8.self, repeating: 0, count: length)
      lock.withLock {
        s.run = p
        mappings[UInt(bitPattern: p)] = -length
      }
      return .success(p)
    case .anonymous, .sharedAnonymous:
      // Real memory, backed lazily: only the pages the VMM writes (the payload images) cost.
      let flags = (mapping == .anonymous ? MAP_PRIVATE : MAP_SHARED) | MAP_ANONYMOUS | MAP_NORESERVE
      let p = Glibc.mmap(nil, length, PROT_READ | PROT_WRITE, flags, -1, 0)
      guard let p, p != MAP_FAILED else { return .failure(Errno(rawValue: Glibc.errno)) }
      lock.withLock { mappings[UInt(bitPattern: p)] = length }
      return .success(p)
    }
  }

  public func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> Result<Int32, Errno> {
    guard let known = lock.withLock({ mappings.removeValue(forKey: UInt(bitPattern: address)) })
    else { return .failure(.EINVAL) }
    if known < 0 {
      address.deallocate()  // a kvm_run buffer
    } else {
      _ = Glibc.munmap(address, known)
    }
    return .success(0)
  }

  /// Guest RAM's contents live in the simulated kernel's model, not in this memory: there is no
  /// VMM view to read (the host-view check is skipped on raw-sim).
  public func peek(_ address: UnsafeMutableRawPointer, count: Int) -> Result<[UInt8], Errno> {
    .failure(.ENOSYS)
  }

  /// MADV_DONTNEED or MADV_REMOVE of a memslot's memory: the simulated MMU notifier
  /// invalidates the range (the simulator models both as a page migration: contents kept).
  public func madvise(_ address: UnsafeMutableRawPointer, length: Int, _ advice: MemoryAdvice)
    -> Result<Int32, Errno>
  {
    let how: HostInvalidation =
      switch advice {
      case .dontNeed: .dontneed
      case .remove: .remove
      case .pageout: .pageout
      }
    return invalidate(address, length: length, how: how).map { _ in 0 }
  }

  /// The simulated POWER9 has two chips, each a node with memory.
  public func memoryNodes() -> Result<[Int32], Errno> { .success([0, 1]) }

  /// move_pages of a memslot's memory: a page migration, as the simulator models every way of
  /// taking pages; every page of the range is then on `node`.
  public func movePages(_ address: UnsafeMutableRawPointer, length: Int, toNode node: Int32)
    -> Result<Int, Errno>
  {
    invalidate(address, length: length, how: .migrate).map { length / Int(HPTHash.pageSize) }
  }

  /// The simulated MMU notifier over the memslot memory at `address`.
  func invalidate(_ address: UnsafeMutableRawPointer, length: Int, how: HostInvalidation)
    -> Result<Void, Errno>
  {
    let a = UInt64(UInt(bitPattern: address))
    let target = lock.withLock { () -> (VMState, UInt64)? in
      for case .vm(let s) in fds.values {
        for m in s.memslots
        where a >= m.userspace_addr && a + UInt64(length) <= m.userspace_addr + m.memory_size {
          return (s, m.guest_phys_addr + (a - m.userspace_addr))
        }
      }
      return nil
    }
    guard let (s, gpa) = target else { return .success(()) }  // plain memory: nothing to model
    do {
      try s.vm.invalidateGuestMemory(guestPhysAddr: gpa, size: UInt64(length), how: how)
      return .success(())
    } catch {
      return .failure(error.errno)
    }
  }
}
