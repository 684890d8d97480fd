import Foundation
import Glibc
import KVMHost
import KVMSys
import PPC64

/// One HV guest of the raw backend: its VM fd, its guest RAM and its vCPUs.
///
/// Guest RAM is a shared anonymous mapping (shmem) registered as memslot 0 at guest-physical
/// 0. Shared, so that the host memory load (MADV_DONTNEED) makes KVM drop the pages' HPTEs
/// through the MMU notifier while the guest's data survives in the shmem object: on private
/// anonymous memory the guest would read zeroes back and report corruption that is not there.
public final class RawVM: KVMVirtualMachine, @unchecked Sendable {
  /// The HPT guest's page size: 64 KiB (the payload visits one dword per page).
  public static let guestPageBytes: UInt64 = 65536
  /// Where vCPU i's payload image goes: 64 KiB + 4 KiB * i, inside the first 1/16 of RAM the
  /// engine keeps out of the payloads' ranges.
  public static func imageAddress(vcpu: UInt32) -> UInt64 { 0x1_0000 + UInt64(vcpu) * 0x1000 }

  /// MSR for the payload: 64-bit (SF), machine checks on (ME), recoverable (RI), little-endian
  /// (LE); IR and DR clear, so the guest runs in real mode through the VRMA; EE and PR clear.
  public static let payloadMSR: UInt64 = 1 << 63 | 0x1000 | 0x2 | 0x1
  /// LPCR_ILE: interrupts taken little-endian, to match MSR_LE. One of the LPCR bits userspace
  /// may set (kvmppc_set_lpcr: DPFD, ILE, TC, AIL, LD).
  public static let LPCR_ILE: UInt64 = 1 << 25

  struct Memslot {
    var slot: UInt32
    var guestPhysAddr: UInt64
    var size: UInt64
    var host: UnsafeMutableRawPointer
  }

  private var fd: KVMVMFD?
  let syscalls: any Syscalls
  private let lock = NSLock()
  private var memslots: [Memslot] = []
  private var vcpus: [UInt32: RawVCPU] = [:]
  /// In-kernel devices (the interrupt controller), closed first when the VM is.
  private var devices: [KVMDeviceFD] = []
  /// What each vCPU's payload walks, for the taken tables.
  private var payloads: [GuestPayload] = []
  /// The host's NUMA nodes with memory (advice migrate), and how many migrations were asked.
  private var memoryNodes: [Int32]?
  private var migrations = 0

  let kicker: (any VCPUKicker)?

  /// Where the pages this VM's memory load moved are counted (the system's figure).
  let migrated: RawKVMSystem.Counter

  init(
    fd: KVMVMFD, syscalls: any Syscalls, kicker: (any VCPUKicker)?,
    migrated: RawKVMSystem.Counter = .init()
  ) {
    self.fd = fd
    self.syscalls = syscalls
    self.kicker = kicker
    self.migrated = migrated
  }

  deinit { close() }

  func vmfd(_ ioctl: String) throws(KVMError) -> KVMVMFD {
    guard let fd = lock.withLock({ self.fd }) else { throw KVMError(ioctl, .EBADF) }
    return fd
  }

  public func checkExtension(_ cap: KVMCapability) throws(KVMError) -> Int {
    try vmfd("KVM_CHECK_EXTENSION").checkExtension(cap)
  }

  /// Maps `size` bytes of guest RAM and registers it. Sizes must be whole 64 KiB pages.
  public func setUserMemoryRegion(slot: UInt32, guestPhysAddr: UInt64, size: UInt64)
    throws(KVMError)
  {
    let name = "KVM_SET_USER_MEMORY_REGION"
    guard size > 0, size % Self.guestPageBytes == 0, guestPhysAddr % Self.guestPageBytes == 0
    else { throw KVMError("\(name): size and address must be multiples of 64 KiB", .EINVAL) }
    guard lock.withLock({ !memslots.contains { $0.slot == slot } }) else {
      throw KVMError("\(name): slot \(slot) is already set", .EEXIST)
    }
    let vm = try vmfd(name)
    let host: UnsafeMutableRawPointer
    switch syscalls.mmap(length: Int(size), .sharedAnonymous) {
    case .success(let p): host = p
    case .failure(let e): throw KVMError("mmap guest RAM", e)
    }
    do {
      try vm.setUserMemoryRegion(
        KVMUserspaceMemoryRegion(
          slot: slot, guest_phys_addr: guestPhysAddr, memory_size: size,
          userspace_addr: UInt64(UInt(bitPattern: host))))
    } catch {
      _ = syscalls.munmap(host, length: Int(size))
      throw error
    }
    lock.withLock {
      memslots.append(Memslot(slot: slot, guestPhysAddr: guestPhysAddr, size: size, host: host))
    }
  }

  public func allocateHTAB(order: UInt32) throws(KVMError) -> UInt32 {
    try vmfd("KVM_PPC_ALLOCATE_HTAB").allocateHTAB(order: order)
  }

  /// KVM_CREATE_VCPU and the vCPU's setup for the payload: KVM_CAP_PPC_PAPR enabled on it (HV
  /// runs PAPR guests only: kvmppc_sanity_check() fails KVM_RUN with EINVAL otherwise, seen on
  /// the lab's real kvm_hv), LPCR_ILE set through ONE_REG (LPCR_64). The PVR is left as KVM set it (the host's: KVM_SET_SREGS refuses any other
  /// with EINVAL on HV); it is read back for the record.
  public func createVCPU(id: UInt32) throws(KVMError) -> any KVMVCPU {
    let handle = try vmfd("KVM_CREATE_VCPU").createVCPU(id: id)
    try handle.enableCap(KVMEnableCap(.ppcPAPR))
    let pvr = try handle.getSregs().pvr
    let lpcr = try handle.getOneReg(id: KVMReg.KVM_REG_PPC_LPCR_64)
    try handle.setOneReg(id: KVMReg.KVM_REG_PPC_LPCR_64, value: lpcr | Self.LPCR_ILE)
    let v = RawVCPU(handle: handle, pvr: pvr, kicker: kicker)
    lock.withLock { vcpus[id] = v }
    return v
  }

  /// Writes the payload's image for `vcpu` and the interrupt vectors (at 0x100) into guest RAM
  /// and points the vCPU at the image (KVM_SET_REGS: PC = entry, MSR = payloadMSR, GPRs zero).
  public func loadPayload(_ payload: GuestPayload, vcpu: UInt32) throws(KVMError) {
    guard let v = lock.withLock({ vcpus[vcpu] }) else {
      throw KVMError("loadPayload: no vCPU \(vcpu)", .ENOENT)
    }
    guard payload.pagesPerReport >= 1 else {
      throw KVMError("loadPayload: pagesPerReport must be at least 1", .EINVAL)
    }
    let built: Payload
    do {
      built = try Payload(
        loadAddress: Self.imageAddress(vcpu: vcpu),
        parameters: PayloadParameters(
          base: payload.base, size: payload.size, patternSeed: payload.patternSeed,
          pagesPerReport: UInt64(payload.pagesPerReport), pageBytes: Self.guestPageBytes,
          hcallNumber: HPTHammerHcall.report,
          boltedSecondaryHPTEs: UInt64(clamping: payload.boltedSecondaryHPTEs),
          takenTable: payload.takenTable))
    } catch {
      throw KVMError("loadPayload: \(error)", .EINVAL)
    }
    guard let image = hostAddress(built.loadAddress, length: UInt64(built.image.count)) else {
      throw KVMError("loadPayload: the image is outside guest RAM", .EFAULT)
    }
    guard hostAddress(payload.base, length: payload.size) != nil else {
      throw KVMError(
        "loadPayload: 0x\(String(payload.base, radix: 16))+0x\(String(payload.size, radix: 16)) is outside guest RAM",
        .EFAULT)
    }
    if payload.takenTable != 0 {
      let bytes = payload.size / Self.guestPageBytes * 8
      guard hostAddress(payload.takenTable, length: bytes) != nil,
        payload.takenTable + bytes <= payload.base
          || payload.takenTable >= payload.base + payload.size
      else {
        throw KVMError(
          "loadPayload: the taken table at 0x\(String(payload.takenTable, radix: 16)) is outside guest RAM or inside the walked range",
          .EINVAL)
      }
    }
    let vectors = try Self.interruptVectors.get()
    guard
      let vectorsAt = hostAddress(InterruptVectors.address, length: UInt64(vectors.image.count)),
      payload.base >= vectors.end
    else {
      throw KVMError(
        "loadPayload: the interrupt vectors at 0x100 are outside guest RAM or inside the walked range",
        .EINVAL)
    }
    vectors.image.withUnsafeBytes {
      vectorsAt.copyMemory(from: $0.baseAddress!, byteCount: $0.count)
    }
    built.image.withUnsafeBytes { image.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    lock.withLock { payloads.append(payload) }
    var regs = try v.handle.getRegs()
    regs.pc = built.entry
    regs.msr = Self.payloadMSR
    for i in 0..<32 { regs[gpr: i] = 0 }
    try v.handle.setRegs(regs)
  }

  /// The payload's interrupt vectors (the same for every vCPU and VM, assembled once): an
  /// interrupt the payload does not expect is reported by hcall (HPTHammerHcall.interrupt),
  /// not spun on.
  static let interruptVectors = Result { () throws(KVMError) -> InterruptVectors in
    do {
      return try InterruptVectors(hcallNumber: HPTHammerHcall.interrupt)
    } catch {
      throw KVMError("loadPayload: \(error)", .EINVAL)
    }
  }

  /// The host address of guest-physical [gpa, gpa+length) when one memslot holds all of it.
  func hostAddress(_ gpa: UInt64, length: UInt64) -> UnsafeMutableRawPointer? {
    lock.withLock {
      for m in memslots where gpa >= m.guestPhysAddr && gpa + length <= m.guestPhysAddr + m.size {
        return m.host + Int(gpa - m.guestPhysAddr)
      }
      return nil
    }
  }

  public func resizeHPTPrepare(flags: UInt64, shift: UInt32) throws(KVMError) -> PrepareStatus {
    try vmfd("KVM_PPC_RESIZE_HPT_PREPARE").resizeHPTPrepare(flags: flags, shift: shift)
  }

  public func resizeHPTCommit(flags: UInt64, shift: UInt32) throws(KVMError) {
    try vmfd("KVM_PPC_RESIZE_HPT_COMMIT").resizeHPTCommit(flags: flags, shift: shift)
  }

  /// MADV_DONTNEED, MADV_REMOVE or MADV_PAGEOUT of the guest RAM behind [gpa, gpa+size), clipped to the
  /// memslots and widened to whole 64 KiB pages. Before MADV_REMOVE frees a page that a
  /// payload walks, its dword in that payload's taken table is set, so that the 0 the page
  /// reads back is not taken for corruption.
  public func invalidateGuestMemory(guestPhysAddr: UInt64, size: UInt64, how: HostInvalidation)
    throws(KVMError)
  {
    let page = Self.guestPageBytes
    let start = guestPhysAddr / page * page
    let end = (guestPhysAddr + size + page - 1) / page * page
    let (advice, name): (MemoryAdvice, String)
    switch how {
    case .dontneed: (advice, name) = (.dontNeed, "MADV_DONTNEED")
    case .remove:
      try markTaken(start..<end)
      (advice, name) = (.remove, "MADV_REMOVE")
    case .pageout: (advice, name) = (.pageout, "MADV_PAGEOUT")
    case .migrate: return try migrate(start..<end)
    }
    for (host, length) in hostRanges(start..<end) {
      if case .failure(let e) = syscalls.madvise(host, length: length, advice) {
        throw KVMError("madvise \(name)", e)
      }
    }
  }

  /// The host memory behind guest-physical `range`, one piece per memslot it touches.
  func hostRanges(_ range: Range<UInt64>) -> [(UnsafeMutableRawPointer, Int)] {
    lock.withLock { memslots }.compactMap { m in
      let lo = max(range.lowerBound, m.guestPhysAddr)
      let hi = min(range.upperBound, m.guestPhysAddr + m.size)
      return lo < hi ? (m.host + Int(lo - m.guestPhysAddr), Int(hi - lo)) : nil
    }
  }

  /// Moves the guest RAM behind `range` to the next of the host's memory nodes, in turn.
  func migrate(_ range: Range<UInt64>) throws(KVMError) {
    let nodes = try hostMemoryNodes()
    let node = lock.withLock { () -> Int32 in
      migrations += 1
      return nodes[migrations % nodes.count]
    }
    for (host, length) in hostRanges(range) {
      switch syscalls.movePages(host, length: length, toNode: node) {
      case .success(let moved): migrated.add(moved)
      case .failure(let e): throw KVMError("move_pages to node \(node)", e)
      }
    }
  }

  /// The host's NUMA nodes with memory, asked once; two at least, or migration has nowhere to go.
  func hostMemoryNodes() throws(KVMError) -> [Int32] {
    if let n = lock.withLock({ memoryNodes }) { return n }
    let nodes: [Int32]
    switch syscalls.memoryNodes() {
    case .success(let n): nodes = n
    case .failure(let e): throw KVMError("reading the host's memory nodes", e)
    }
    guard nodes.count >= 2 else {
      throw KVMError(
        "memory_load.host_invalidate.advice migrate: the host has one NUMA node with memory (\(nodes.map(String.init).joined(separator: ","))); page migration needs two (the lab: target.lab.sockets: 2 in the job, which boots it with HPTHAMMER_LAB_SMP=2,sockets=2)",
        .ENODEV)
    }
    lock.withLock { memoryNodes = nodes }
    return nodes
  }

  /// Sets the taken-table dword of every walked page in `range`.
  func markTaken(_ range: Range<UInt64>) throws(KVMError) {
    let one = withUnsafeBytes(of: UInt64(1).littleEndian) { Array($0) }
    for p in lock.withLock({ payloads }) where p.takenTable != 0 {
      let lo = max(range.lowerBound, p.base)
      let hi = min(range.upperBound, p.base + p.size)
      var gpa = lo
      while gpa < hi {
        let entry = p.takenTable + (gpa - p.base) / Self.guestPageBytes * 8
        guard let host = hostAddress(entry, length: 8) else {
          throw KVMError(
            "taken table entry 0x\(String(entry, radix: 16)) is outside guest RAM", .EFAULT)
        }
        if case .failure(let e) = syscalls.poke(host, one) { throw KVMError("taken table", e) }
        gpa += Self.guestPageBytes
      }
    }
  }

  /// Through the VMM's own mapping (hostd's on a remote host).
  public func readGuestDword(_ gpa: UInt64) -> UInt64? {
    guard let host = hostAddress(gpa, length: 8),
      case .success(let b) = syscalls.peek(host, count: 8)
    else { return nil }
    return b.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
  }

  public func kickVCPUs() {
    for v in lock.withLock({ Array(vcpus.values) }) { v.kickOnce() }
  }

  /// Kicks every vCPU out of KVM_RUN (see RawVCPU.kick).
  func kickAll() {
    for v in lock.withLock({ Array(vcpus.values) }) { v.kick() }
  }

  /// Closes the vCPU fds, the VM fd, then unmaps guest RAM.
  public func createInterruptController() throws(KVMError) {
    let d = try vmfd("KVM_CREATE_DEVICE").createDevice(type: KVMCreateDevice.KVM_DEV_TYPE_XICS)
    lock.withLock { devices.append(d) }
  }

  public func close() {
    // The device's release runs now, while the vCPUs still exist.
    lock.withLock { devices.removeAll() }
    let (slots, had) = lock.withLock { () -> ([Memslot], Bool) in
      let s = memslots
      let had = fd != nil
      vcpus.removeAll()
      fd = nil
      memslots.removeAll()
      return (s, had)
    }
    guard had else { return }
    for m in slots { _ = syscalls.munmap(m.host, length: Int(m.size)) }
  }
}

/// A vCPU of the raw backend.
public final class RawVCPU: KVMVCPU, @unchecked Sendable {
  let handle: KVMVCPUFD
  /// The PVR KVM gave the vCPU (the host's on HV).
  public let pvr: UInt32
  public var id: UInt32 { handle.id }
  private let lock = NSLock()
  /// The thread inside KVM_RUN, if any (for a kick).
  private var runner: pthread_t?

  let kicker: (any VCPUKicker)?

  init(handle: KVMVCPUFD, pvr: UInt32, kicker: (any VCPUKicker)?) {
    self.handle = handle
    self.pvr = pvr
    self.kicker = kicker
  }

  /// KVM_RUN; EINTR (a kick, a signal, or the simulated host asked to stop) is `.interrupted`.
  public func run() throws(KVMError) -> VCPUExit {
    kicker?.prepareCurrentThread()
    lock.withLock { runner = pthread_self() }
    defer { lock.withLock { runner = nil } }
    do {
      return try handle.run()
    } catch {
      if error.errno == .EINTR { return .interrupted }
      throw error
    }
  }

  public func setHcallReturn(_ value: UInt64) { handle.setHcallReturn(value) }

  /// KVM_GET_REGS, and DAR and DSISR through ONE_REG.
  public func registers() throws(KVMError) -> VCPURegisters? {
    let r = try handle.getRegs()
    return VCPURegisters(
      pc: r.pc, msr: r.msr, lr: r.lr, srr0: r.srr0, srr1: r.srr1,
      dar: try handle.getOneReg(id: KVMReg.KVM_REG_PPC_DAR),
      dsisr: try handle.getOneReg(id: KVMReg.KVM_REG_PPC_DSISR))
  }

  /// Makes KVM_RUN return: kvm_run.immediate_exit for the next entry (KVM answers EINTR at
  /// once), and `signal` for a thread inside it now (a guest that never exits to userspace:
  /// a payload gone astray, a host bug). Once set, immediate_exit stays: this is for the end.
  func kick() {
    handle.immediateExit = true
    kickOnce()
  }

  /// Interrupts the KVM_RUN in progress (or, through hostd, the next one) and nothing more.
  func kickOnce() { kicker?.kick(vcpuFD: handle.fd, thread: lock.withLock { runner }) }
}

/// How a thread inside KVM_RUN is made to return (EINTR).
public protocol VCPUKicker: Sendable {
  /// Called on the thread about to enter KVM_RUN.
  func prepareCurrentThread()
  /// Interrupts the KVM_RUN of `vcpuFD`; `thread` is this process's thread inside it, if any.
  func kick(vcpuFD: Int32, thread: pthread_t?)
}

/// A host reached through hpthammer-hostd: the kick is hostd's (OP_KICK signals its thread
/// inside KVM_RUN, or makes that vCPU's next KVM_RUN return at once). Without it a guest that
/// never exits to userspace, a payload waiting for a vCPU the stop held back, keeps the stop
/// waiting on a live host.
public struct RemoteKicker: VCPUKicker {
  let syscalls: RemoteSyscalls
  public init(_ syscalls: RemoteSyscalls) { self.syscalls = syscalls }
  public func prepareCurrentThread() {}
  public func kick(vcpuFD: Int32, thread: pthread_t?) { syscalls.kick(vcpuFD: vcpuFD) }
}

/// Sends SIGUSR1 to a thread to make its KVM_RUN return EINTR. The handler does nothing and
/// is installed without SA_RESTART, so the ioctl is interrupted rather than restarted (and
/// the process is not killed, SIGUSR1's default).
public final class SignalKicker: VCPUKicker {
  public init() {
    var sa = sigaction()
    sa.__sigaction_handler.sa_handler = { _ in }
    sigemptyset(&sa.sa_mask)
    sa.sa_flags = 0
    _ = sigaction(SIGUSR1, &sa, nil)
  }

  public func kick(vcpuFD: Int32, thread: pthread_t?) {
    if let thread { pthread_kill(thread, SIGUSR1) }
  }

  /// Unblocks SIGUSR1 in the calling thread: threads inherit their creator's mask, and
  /// Dispatch's worker threads block it.
  public func prepareCurrentThread() {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGUSR1)
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
  }
}
