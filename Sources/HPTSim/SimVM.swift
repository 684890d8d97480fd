import KVMHost
import KernelLog

/// One simulated KVM-HV guest: struct kvm's HPT state (kvm->arch.hpt, resize_hpt, mmu_ready,
/// the rmap of its one memslot), the guest kernel and the harness's payload on its vCPUs.
public final class SimVM: KVMVirtualMachine, @unchecked Sendable {
  let kernel: SimKernel
  let lpid: UInt32
  var sched: SimScheduler { kernel.sched }
  var model: KernelModel { kernel.model }

  public internal(set) var hpt: HashPageTable?
  /// kvm->arch.mmu_ready (hpte_setup_done before 4.15).
  public internal(set) var mmuReady = false
  var vcpusRunning = 0
  var resize: ResizeRequest?
  /// Holder of kvm->lock / kvm->arch.mmu_setup_lock (a simulated thread id).
  var mmuLockOwner: Int?
  var mmuNotifierSeq: UInt64 = 0
  /// vCPUs inside kvmppc_book3s_hv_page_fault(), which runs under srcu_read_lock(&kvm->srcu).
  var srcuReaders = 0
  var mmuNotifierCount = 0

  // The memslot: guest pages of 64K from guest-physical 0.
  var npages = 0
  var rmap: [UInt64] = []
  var hostPFN: [Int32] = []
  var vcpuIDs: [UInt32] = []
  var vrmaMapped = false
  /// Incremented when the HPT is reallocated after the guest booted: the guest rebooted.
  var bootGeneration = 0
  /// The guest's next MMU context id (allocated as processes start, from 0 after each boot).
  var nextContext: UInt64 = 0
  var vcpuObjects: [Weak<SimVCPU>] = []
  var guestBooted = false
  var closed = false
  var htabVirtCounter: UInt64 = 0
  let guestRNGSeed: UInt64
  /// Where the guest's context ids start (they differ between guests and seeds).
  var contextBase: UInt64 { 0x100 &+ (guestRNGSeed & 0x3_ff00) }

  init(kernel: SimKernel, lpid: UInt32, seed: UInt64) {
    self.kernel = kernel
    self.lpid = lpid
    self.guestRNGSeed = seed
  }

  // MARK: - setup ioctls

  public func checkExtension(_ cap: KVMCapability) throws(KVMError) -> Int {
    try kernel.checkExtensionValue(cap)
  }

  public func setUserMemoryRegion(slot: UInt32, guestPhysAddr: UInt64, size: UInt64)
    throws(KVMError)
  {
    guard !kernel.dead else { throw KVMError("KVM_SET_USER_MEMORY_REGION", .hostDown) }
    // One memslot at 0, 64K aligned: all the simulator models.
    guard slot == 0, guestPhysAddr == 0, size > 0, size % HPTHash.pageSize == 0 else {
      throw KVMError("KVM_SET_USER_MEMORY_REGION", .EINVAL)
    }
    npages = Int(size / HPTHash.pageSize)
    rmap = Array(repeating: 0, count: npages)
    hostPFN = Array(repeating: -1, count: npages)
  }

  public func allocateHTAB(order: UInt32) throws(KVMError) -> UInt32 {
    guard !kernel.dead else { throw KVMError("KVM_PPC_ALLOCATE_HTAB", .hostDown) }
    // kvmppc_alloc_reset_hpt(): not while vCPUs run.
    if vcpusRunning > 0 { throw KVMError("KVM_PPC_ALLOCATE_HTAB", .EBUSY) }
    guard HPTOrder.validRange.contains(order) else {
      throw KVMError("KVM_PPC_ALLOCATE_HTAB", .EINVAL)
    }
    guard Int(order) <= kernel.maxAllocOrder else {
      throw KVMError("KVM_PPC_ALLOCATE_HTAB", .ENOMEM)
    }
    mmuReady = false
    let sameOrder = hpt?.order == Int(order)
    if guestBooted {
      // A reset (QEMU reallocates the HPT when the guest reboots): the guest boots again.
      bootGeneration += 1
      guestBooted = false
      vrmaMapped = false
      nextContext = 0
    }
    if model.has(.r1), let old = hpt {
      do { try freeBeforeRmapReset(old, sameOrder: sameOrder) } catch {
        throw KVMError("KVM_PPC_ALLOCATE_HTAB", .hostDown)
      }
    }
    setHPT(newHPT(order: Int(order)))
    for i in rmap.indices { rmap[i] = 0 }
    // need_tlb_flush for every vCPU. Before 4.15 only the same-order path asked for it (B4).
    if sameOrder || !model.has(.b4) {
      for c in kernel.tlbs.indices { kernel.tlbs[c].flush(lpid: lpid) }
    }
    return order
  }

  /// R1, kvmppc_alloc_reset_hpt() as 6.1 and upstream have it: the old HPT is cleared (same
  /// order) or freed with its revmap (another order) first, and only then does
  /// kvmppc_rmap_reset() empty the chains, under kvm->mmu_lock. The MMU notifier holds only
  /// mmu_lock and the rmap lock, so in between it follows the chains: into the freed revmap
  /// (the oops), or into cleared HPTEs. The freeing costs time; so does the wait for mmu_lock.
  func freeBeforeRmapReset(_ old: HashPageTable, sameOrder: Bool) throws(SimHalted) {
    if sameOrder {
      for i in old.v.indices {
        old.v[i] = 0
        old.r[i] = 0
      }
    } else {
      old.freed = true
      hpt = nil  // kvm->arch.hpt.virt = 0, .rev = NULL
    }
    try sched.yield(costNs: UInt64(old.hpteCount) / 8)  // memset or vfree of 16 bytes an HPTE
    try sched.wait { [unowned self] in self.mmuNotifierCount == 0 }
  }

  public func createVCPU(id: UInt32) throws(KVMError) -> any KVMVCPU {
    guard !kernel.dead else { throw KVMError("KVM_CREATE_VCPU", .hostDown) }
    guard !vcpuIDs.contains(id) else { throw KVMError("KVM_CREATE_VCPU", .EEXIST) }
    let v = SimVCPU(vm: self, id: id)
    vcpuIDs.append(id)
    vcpuObjects.append(Weak(v))
    return v
  }

  public func loadPayload(_ payload: GuestPayload, vcpu: UInt32) throws(KVMError) {
    guard let v = vcpuObjects.compactMap(\.value).first(where: { $0.id == vcpu }) else {
      throw KVMError("loadPayload", .ENOENT)
    }
    let first = payload.base / HPTHash.pageSize
    let count = payload.size / HPTHash.pageSize
    guard count > 0, first + count <= UInt64(npages) else { throw KVMError("loadPayload", .EINVAL) }
    v.payload = PayloadState(payload: payload, firstPage: Int(first), pageCount: Int(count))
    enterBoltedSecondaryHPTEs(payload.boltedSecondaryHPTEs)
  }

  /// What the raw payload's H_ENTERs leave (Payload.boltedSecondaryHPTE): bolted HPTEs with
  /// H = 1 in groups 1, 3, 5, ..., 1 TB segments of VSID 0x1000 + k, mapping guest page 1
  /// (the payload's image), absent until a fault maps the host page.
  func enterBoltedSecondaryHPTEs(_ count: Int) {
    guard count > 0, let t = hpt else { return }
    for k in 0..<count {
      let group = Int(UInt64(2 * k + 1) & t.hashMask) * 8
      guard
        let i = (group..<group + 8).first(where: { t.v[$0] & (HPTEV.valid | HPTEV.absent) == 0 })
      else { continue }  // H_PTEG_FULL
      let avpn = UInt64(0x1000 + k) << 17
      t.v[i] =
        HPTEV.segment1T | (avpn << HPTEV.avpnShift) | HPTEV.bolted | HPTEV.secondary
        | HPTEV.absent
      t.r[i] = 1 << HPTHash.pageShift
      t.rev[i].guestRpte = 1 << HPTHash.pageShift
    }
  }

  public func close() {
    releaseInterruptController()
    closed = true
  }

  /// KVM_CREATE_DEVICE of the XICS (XICS-on-XIVE on POWER9): only its release is modelled.
  var hasInterruptController = false
  public func createInterruptController() throws(KVMError) {
    guard !kernel.dead else { throw KVMError("KVM_CREATE_DEVICE", .hostDown) }
    hasInterruptController = true
  }

  /// The device fd's release: kvm_device_release() holds kvm->lock, and
  /// kvmppc_xive_release() takes each vCPU's mutex inside it.
  public func releaseInterruptController() {
    guard hasInterruptController, !kernel.dead else { return }
    hasInterruptController = false
    guard !vcpuIDs.isEmpty else { return }
    kernel.lockdepAcquire("&vcpu->mutex", holding: "&kvm->lock", site: Self.xiveReleaseSite)
  }

  static let xiveReleaseSite = SimLockdep.Site(
    stack: [
      Frame("kvmppc_xive_release", 0xa8), Frame("kvm_device_release", 0xac), Frame("__fput", 0xac),
      Frame("task_work_run", 0xa4), Frame("do_notify_resume", 0x434),
      Frame("interrupt_exit_user_prepare_main", 0x204), Frame("syscall_exit_prepare", 0xa4),
      Frame("system_call_vectored_common", 0xfc),
    ], outerAt: Frame("kvm_device_release", 0x50))

  func newHPT(order: Int) -> HashPageTable {
    htabVirtCounter += 1
    let virt = 0xc000_001e_6a00_0000 &+ (UInt64(lpid) << 32) &+ (htabVirtCounter << 26)
    let revBase = model.moduleBase &+ 0x0940_0000 &+ (htabVirtCounter << 28) &+ (UInt64(lpid) << 36)
    return HashPageTable(order: order, virt: virt, revBase: revBase)
  }

  /// kvmppc_set_hpt().
  func setHPT(_ t: HashPageTable) {
    hpt = t
    kernel.printk(
      6,
      "KVM guest htab at \(String(t.virt, radix: 16)) (order \(t.order)), LPID \(String(lpid, radix: 16))"
    )
  }

  // MARK: - kvm->lock

  func lockMMU() throws(SimHalted) {
    let me = sched.currentID
    try sched.wait { [unowned self] in self.mmuLockOwner == nil }
    mmuLockOwner = me
  }

  func unlockMMU() { mmuLockOwner = nil }

  // MARK: - checked table accesses: an index past the end is a host oops, as in the kernel

  /// Reads a revmap entry of `table` for the function `caller`; an index past the array is a
  /// paging fault at the address the kernel would load from (`fieldOffset` into the entry).
  func checkRev(
    _ table: HashPageTable, _ index: UInt64, fieldOffset: UInt64, nip: Frame, lr: Frame,
    trace: [Frame]
  ) throws(SimHalted) -> Int {
    if index < UInt64(table.hpteCount) { return Int(index) }
    throw readFault(
      at: table.revBase &+ index &* 16 &+ fieldOffset, nip: nip, lr: lr, trace: trace,
      r3: table.revBase,
      instructions: nip.function == "kvmppc_add_revmap_chain" ? Self.addRevmapChainCode : [])
  }

  func checkHPTE(
    _ table: HashPageTable, _ index: UInt64, nip: Frame, lr: Frame, trace: [Frame]
  ) throws(SimHalted) -> Int {
    if index < UInt64(table.hpteCount) { return Int(index) }
    throw readFault(at: table.virt &+ index &* 16, nip: nip, lr: lr, trace: trace, r3: table.virt)
  }

  /// The host oops of a kernel load from `address` by the current simulated thread.
  func readFault(
    at address: UInt64, nip: Frame, lr: Frame, trace: [Frame], r3: UInt64,
    instructions: [UInt32] = []
  ) -> SimHalted {
    var w = kernel.writer()
    return kernel.die(
      w.dataFault(
        address: address, write: false, cpu: kernel.currentCPU, pid: kernel.currentPID,
        comm: kernel.currentComm, nip: nip, lr: lr, trace: trace, r3: r3,
        instructions: instructions))
  }

  /// The instruction words around the faulting load in kvmppc_add_revmap_chain, from the
  /// seed report ("lwz r3,12(r31)": head->back).
  static let addRevmapChainCode: [UInt32] = [
    0xfba1_ffe8, 0xfbc1_fff0, 0xfbe1_fff8, 0xf801_0010, 0xf821_ffa1, 0x2fa7_0000, 0x793d_0020,
    0xe943_2110,
    0x7bbf_26e4, 0x7c7e_1b78, 0x7fea_fa14, 0x409e_0094, 0x807f_000c, 0x7863_26e4, 0x7c6a_1a14,
    0x93a4_0008,
  ]

  static let vcpuRunTrace: [Frame] = [
    Frame("kvmppc_vcpu_run_hv", 0xdf8), Frame("kvmppc_vcpu_run", 0x34),
    Frame("kvm_arch_vcpu_ioctl_run", 0x114), Frame("kvm_vcpu_ioctl", 0x598),
    Frame("do_vfs_ioctl", 0xd0), Frame("SyS_ioctl", 0xd4), Frame("system_call", 0x58),
  ]

  static let vmIoctlTrace: [Frame] = [
    Frame("kvm_arch_vm_ioctl", 0x3c8), Frame("kvm_vm_ioctl", 0x6d4),
    Frame("do_vfs_ioctl", 0xd0), Frame("SyS_ioctl", 0xd4), Frame("system_call", 0x58),
  ]

  // MARK: - rmap chains (book3s_hv_rm_mmu.c, book3s_64_mmu_hv.c)

  /// kvmppc_add_revmap_chain(): links HPTE `pteIndex` (whose revmap entry is `revTable`'s) into
  /// the chain of guest page `gfn`. The chain's other entries are found through the *current*
  /// HPT's revmap (kvm->arch.hpt.rev), which is what B1 gets wrong.
  func addRevmapChain(
    revTable: HashPageTable, gfn: Int, pteIndex: UInt64, lr: Frame, trace: [Frame]
  ) throws(SimHalted) {
    guard let cur = hpt else { return }
    let nip = Frame("kvmppc_add_revmap_chain", 0x50)
    if rmap[gfn] & RMAP.present != 0 {
      let i = rmap[gfn] & RMAP.indexMask
      let head = try checkRev(cur, i, fieldOffset: 12, nip: nip, lr: lr, trace: trace)
      let tailIndex = UInt64(cur.rev[head].back)
      let tail = try checkRev(
        cur, tailIndex, fieldOffset: 8, nip: Frame("kvmppc_add_revmap_chain", 0x6c), lr: lr,
        trace: trace)
      revTable.rev[Int(pteIndex)].forw = UInt32(i)
      revTable.rev[Int(pteIndex)].back = cur.rev[head].back
      cur.rev[tail].forw = UInt32(pteIndex)
      cur.rev[head].back = UInt32(pteIndex)
    } else {
      revTable.rev[Int(pteIndex)].forw = UInt32(pteIndex)
      revTable.rev[Int(pteIndex)].back = UInt32(pteIndex)
      rmap[gfn] = (rmap[gfn] & ~RMAP.indexMask) | pteIndex | RMAP.present
    }
  }

  /// kvmppc_unmap_hpte(): removes HPTE i of the current HPT from gfn's chain and makes it
  /// absent if it still maps gfn.
  func unmapHPTE(_ i: Int, gfn: Int, nip: Frame, lr: Frame, trace: [Frame]) throws(SimHalted) {
    guard let t = hpt else { return }
    let j = Int(t.rev[i].forw)
    if j == i {
      rmap[gfn] &= ~(RMAP.present | RMAP.indexMask)
    } else {
      let h = try checkRev(t, UInt64(t.rev[i].back), fieldOffset: 8, nip: nip, lr: lr, trace: trace)
      let jj = try checkRev(t, UInt64(j), fieldOffset: 12, nip: nip, lr: lr, trace: trace)
      t.rev[h].forw = UInt32(jj)
      t.rev[jj].back = UInt32(h)
      t.rev[i].forw = UInt32(i)
      t.rev[i].back = UInt32(i)
      rmap[gfn] = (rmap[gfn] & ~RMAP.indexMask) | UInt64(jj)
    }
    let ptel = t.rev[i].guestRpte
    if t.v[i] & HPTEV.valid != 0 && Int(ptel >> HPTHash.pageShift) == gfn {
      t.v[i] = (t.v[i] | HPTEV.absent) & ~HPTEV.valid
      kernel.tlbie(vpn: t.vpn[i], lpid: lpid)
    }
  }

  /// kvm_unmap_rmapp(): the MMU notifier's per-page work: unmap every HPTE in gfn's chain.
  static let unmapNIP = Frame("kvm_unmap_rmapp", 0x74)
  static let unmapLR = Frame("kvm_handle_hva_range", 0xe4)
  static let unmapTrace = [
    Frame("kvm_handle_hva_range", 0xe4), Frame("kvm_unmap_hva_range_hv", 0x3c),
    Frame("kvm_unmap_hva_range", 0x48), Frame("kvm_mmu_notifier_invalidate_range_start", 0xb0),
    Frame("__mmu_notifier_invalidate_range_start", 0x90), Frame("migrate_pages", 0x62c),
    Frame("compact_zone", 0x6f8), Frame("kcompactd", 0x1d4), Frame("kthread", 0x160),
    Frame("ret_from_kernel_thread", 0x5c),
  ]

  /// 6.1's notifier path (kvm_unmap_gfn_range_hv inlines kvm_unmap_rmapp), from the same
  /// page migration as the older kernels' path.
  static let unmapTraceModern =
    [
      Frame("kvm_unmap_gfn_range_hv", 0x9c), Frame("kvm_mmu_notifier_invalidate_range_start", 0xd8),
    ] + unmapTrace.drop { $0.function != "__mmu_notifier_invalidate_range_start" }

  func unmapRmapp(gfn: Int) throws(SimHalted) {
    let nip = Self.unmapNIP
    let lr = Self.unmapLR
    let trace = model.modernOopsFormat ? Self.unmapTraceModern : Self.unmapTrace
    guard let t = hpt else {
      if rmap[gfn] & RMAP.present != 0 { try staleRmapFault(gfn: gfn, trace: trace) }
      return
    }
    var guardCount = 0
    while rmap[gfn] & RMAP.present != 0 {
      let i = try checkHPTE(t, rmap[gfn] & RMAP.indexMask, nip: nip, lr: lr, trace: trace)
      let mapped = t.v[i] & HPTEV.valid != 0
      try unmapHPTE(i, gfn: gfn, nip: nip, lr: lr, trace: trace)
      if model.has(.r1) && mapped { try harvestAfterTLBIE(t, i, trace: trace) }
      guardCount += 1
      // A chain that loops (corrupted links) would spin here with the rmap lock held.
      if guardCount > t.hpteCount {
        throw softLockup(in: nip, lr: lr, trace: trace)
      }
    }
  }

  /// R1: a chain still present while kvm->arch.hpt is freed: hptep = virt (0) + (i << 4).
  func staleRmapFault(gfn: Int, trace: [Frame]) throws(SimHalted) {
    throw readFault(
      at: (rmap[gfn] & RMAP.indexMask) << 4, nip: Frame("kvm_unmap_gfn_range_hv", 0x88),
      lr: trace[1], trace: trace, r3: 0)
  }

  /// R1: kvmppc_unmap_hpte()'s tail harvests R and C after the tlbie (slow: it waits for every
  /// core) and reads rev[i].guest_rpte again, through the revmap pointer it loaded at its
  /// start. A reset that freed the revmap meanwhile makes that a read of freed vmalloc memory.
  func harvestAfterTLBIE(_ t: HashPageTable, _ i: Int, trace: [Frame]) throws(SimHalted) {
    try sched.yield(costNs: 1_000)
    guard t.freed else { return }
    throw readFault(
      at: t.revBase &+ UInt64(i) &* 16, nip: Frame("kvmppc_unmap_hpte", 0x220),
      lr: Frame("kvm_unmap_gfn_range_hv", 0x9c), trace: trace, r3: t.revBase)
  }

  func softLockup(in nip: Frame, lr: Frame, trace: [Frame]) -> SimHalted {
    var w = kernel.writer()
    var lines = [
      "watchdog: BUG: soft lockup - CPU#\(kernel.currentCPU) stuck for 22s! [\(kernel.currentComm):\(kernel.currentPID)]"
    ]
    var body = w.body(
      cpu: kernel.currentCPU, pid: kernel.currentPID, comm: kernel.currentComm, trap: "0901",
      nip: nip,
      lr: lr, trace: trace, dar: nil, dsisr: nil, r3: 0, instructions: [])
    body.removeFirst()
    lines += body
    return kernel.die(lines)
  }

  // MARK: - host memory load: page migration under the MMU notifier

  /// Every way of taking pages (`how`: zap, hole punch, reclaim) is modelled as a migration:
  /// the contents survive, so a stale translation shows as the old page, reused by then.
  public func invalidateGuestMemory(guestPhysAddr: UInt64, size: UInt64, how: HostInvalidation)
    throws(KVMError)
  {
    guard !kernel.dead else { throw KVMError("invalidate", .hostDown) }
    let first = Int(guestPhysAddr / HPTHash.pageSize)
    let last = min(npages, Int((guestPhysAddr + size + HPTHash.pageSize - 1) / HPTHash.pageSize))
    guard first < last else { return }
    do {
      for gfn in first..<last {
        // invalidate_range_start: faults in flight must retry.
        mmuNotifierCount += 1
        mmuNotifierSeq &+= 1
        try unmapRmapp(gfn: gfn)
        // Migrate the host page: copy, free the old one (reused at once).
        let old = hostPFN[gfn]
        if old >= 0 {
          let new = kernel.allocPFN()
          kernel.pageContent[Int(new)] = kernel.pageContent[Int(old)]
          kernel.freePFN(old)
          hostPFN[gfn] = new
        }
        mmuNotifierCount -= 1
        kernel.counters.invalidatedPages += 1
        try sched.yield(costNs: 2_000)
      }
    } catch {
      mmuNotifierCount = 0
      throw KVMError("invalidate", .hostDown)
    }
  }
}

/// A reference that does not keep its object alive (the VM lists its vCPUs; they own the VM).
struct Weak<T: AnyObject> {
  weak var value: T?
  init(_ v: T) { value = v }
}
