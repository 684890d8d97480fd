import KVMHost

/// The harness's payload as the simulated guest runs it: a walk over its pages, each visit
/// verifying the pattern written last time and writing the next one, through the guest's
/// user mappings (`processes` address spaces aliasing the same pages).
struct PayloadState {
  var payload: GuestPayload
  var firstPage: Int
  var pageCount: Int
  var cursor = 0
  var visits: UInt64 = 0
  var expected: [UInt64]
  var verified: UInt64 = 0
  var mismatches: UInt64 = 0
  var firstBad: (gpa: UInt64, expected: UInt64, found: UInt64)?

  init(payload: GuestPayload, firstPage: Int, pageCount: Int) {
    self.payload = payload
    self.firstPage = firstPage
    self.pageCount = pageCount
    expected = Array(repeating: 0, count: pageCount)
  }
}

public final class SimVCPU: KVMVCPU, @unchecked Sendable {
  let vm: SimVM
  public let id: UInt32
  var payload: PayloadState?
  var hcallReturn: UInt64 = 0
  var ran = false

  /// Address spaces of the guest's payload process(es) mapping the same pages.
  static let processes = 2
  /// Guest accesses run between two yield points when nothing needs the hypervisor.
  static let accessesPerSlice = 8
  static let faultLR = Frame("kvmppc_book3s_hv_page_fault", 0xbb8)
  static let faultTrace = [faultLR] + SimVM.vcpuRunTrace

  init(vm: SimVM, id: UInt32) {
    self.vm = vm
    self.id = id
  }

  public func setHcallReturn(_ value: UInt64) { hcallReturn = value }

  var kernel: SimKernel { vm.kernel }
  var sched: SimScheduler { vm.kernel.sched }

  /// KVM_RUN.
  public func run() throws(KVMError) -> VCPUExit {
    guard !kernel.dead else { throw KVMError("KVM_RUN", .hostDown) }
    guard vm.hpt != nil else { throw KVMError("KVM_RUN", .ENOMEM) }
    guard payload != nil else { throw KVMError("KVM_RUN", .EINVAL) }
    do {
      return try runLocked()
    } catch {
      vm.vcpusRunning = max(0, vm.vcpusRunning - 1)
      throw KVMError("KVM_RUN", .hostDown)
    }
  }

  private func runLocked() throws(SimHalted) -> VCPUExit {
    try sched.yield(costNs: 3_000)
    // kvmppc_vcpu_run_hv(): the only mmu_ready check before the seed's fix.
    vm.vcpusRunning += 1
    defer { vm.vcpusRunning -= 1 }
    if !vm.mmuReady { try setupHTABRMA() }
    restartPayloadIfRebooted()
    let fixedB1 = !vm.model.has(.b1)
    var pages = 0
    while true {
      if sched.stopRequested { return .interrupted }
      if fixedB1 && !vm.mmuReady {
        // kvmppc_run_vcpu(): refuse to enter the guest; block on the MMU lock instead.
        try setupHTABRMA()
        continue
      }
      // The guest runs until something needs the hypervisor, or for a slice of accesses that
      // hit in the HPT (16 us of host time each); each slice is one yield point.
      var step = guestStep()
      var slice = 1
      while case .accessed = step, slice < Self.accessesPerSlice,
        pages + slice < payload!.payload.pagesPerReport
      {
        step = guestStep()
        slice += 1
      }
      pages += slice - 1
      try sched.yield(costNs: 16_000 * UInt64(slice))
      switch step {
      case .accessed:
        pages += 1
        if pages >= payload!.payload.pagesPerReport {
          guestKernelBoltsAPage()
          let p = payload!
          return .paprHcall(
            nr: HPTHammerHcall.report,
            args: [
              p.verified, p.mismatches, p.firstBad?.gpa ?? 0, p.firstBad?.expected ?? 0,
              p.firstBad?.found ?? 0,
            ])
        }
      case .hypervisorFault(let index, let snapshot):
        try pageFault(index: index, snapshot: snapshot)
      case .hashFault, .noSlot:
        break
      }
    }
  }

  static let setupSite = SimLockdep.Site(
    stack: [
      Frame("kvmhv_setup_mmu", 0x68), Frame("kvmhv_run_single_vcpu", 0x970),
      Frame("kvmppc_vcpu_run_hv", 0x190), Frame("kvmppc_vcpu_run", 0x34),
      Frame("kvm_arch_vcpu_ioctl_run", 0x114), Frame("kvm_vcpu_ioctl", 0x35c),
      Frame("sys_ioctl", 0x31c), Frame("system_call_exception", 0x128),
      Frame("system_call_vectored_common", 0xf0),
    ], outerAt: Frame("kvm_vcpu_ioctl", 0x9c))

  /// kvmppc_hv_setup_htab_rma(): under the MMU lock; maps the VRMA and lets the guest boot the
  /// first time, then sets mmu_ready.
  func setupHTABRMA() throws(SimHalted) {
    // kvmhv_setup_mmu(), inside KVM_RUN, which holds the vCPU's mutex.
    kernel.lockdepAcquire("&" + vm.model.mmuLockName, holding: "&vcpu->mutex", site: Self.setupSite)
    try vm.lockMMU()
    defer { vm.unlockMMU() }
    if vm.mmuReady { return }
    if !vm.vrmaMapped {
      mapVRMA()
      vm.vrmaMapped = true
    }
    vm.mmuReady = true
    if !vm.guestBooted {
      vm.guestBooted = true
      guestBoot()
    }
  }

  /// kvmppc_map_vrma(): one bolted 64K HPTE per HPTE group, in slot 7 (H_EXACT).
  func mapVRMA() {
    guard let t = vm.hpt else { return }
    let n = min(vm.npages, Int(t.hashMask) + 1)
    for i in 0..<n {
      let addr = UInt64(i) << HPTHash.pageShift
      let hash = (UInt64(i) ^ (HPTHash.vrmaVSID ^ (HPTHash.vrmaVSID << 25))) & t.hashMask
      let idx = Int(hash * 8 + 7)
      let avpn = HPTHash.avpn1T(vsid: HPTHash.vrmaVSID, segmentOffset: addr)
      t.v[idx] = HPTEV.segment1T | (avpn << HPTEV.avpnShift) | HPTEV.bolted | HPTEV.absent
      t.r[idx] = addr
      t.rev[idx].guestRpte = addr
    }
  }

  /// The guest kernel bolts its linear mapping (1T segment) at boot.
  func guestBoot() {
    let vsid = linearVSID
    for gfn in 0..<vm.npages {
      let segOff = UInt64(gfn) << HPTHash.pageShift
      _ = hEnter(
        hash: HPTHash.hash1T(vsid: vsid, segmentOffset: segOff),
        v: HPTEV.segment1T | (HPTHash.avpn1T(vsid: vsid, segmentOffset: segOff) << HPTEV.avpnShift)
          | HPTEV.bolted, gfn: gfn)
    }
  }

  var linearVSID: UInt64 { 0x0c_5a3f_1234 ^ UInt64(vm.lpid) }
  var kernelPagesBolted = 0

  /// The guest kernel maps a page of its own (a vmalloc'd buffer for the report) and bolts it,
  /// the way htab_bolt_mapping() does: primary group, else secondary, else evict and retry.
  func guestKernelBoltsAPage() {
    let gfn = kernelPagesBolted % max(1, vm.npages / 16)
    kernelPagesBolted += 1
    let ea = 0xd000_0000_0000_0000 &+ (UInt64(kernelPagesBolted) << HPTHash.pageShift)
    let vsid = HPTHash.vsid256M(context: 0, esid: (ea >> 28) & 0xf_ffff)
    _ = hEnter(
      hash: HPTHash.hash256M(vsid: vsid, ea: ea),
      v: (HPTHash.avpn256M(vsid: vsid, ea: ea) << HPTEV.avpnShift) | HPTEV.bolted, gfn: gfn)
  }

  // MARK: - the guest's MMU

  enum Step {
    case accessed
    /// Real mode found an absent HPTE: its index and contents (pgfault_index, pgfault_hpte).
    case hypervisorFault(index: Int, snapshot: (UInt64, UInt64, UInt64))
    /// The guest had no HPTE and H_ENTERed one; the access is retried.
    case hashFault
    case noSlot
  }

  /// One payload access: translate through the HPT the hardware uses now, then verify and
  /// write the page's pattern.
  func guestStep() -> Step {
    guard let t = vm.hpt, var p = payload else { return .noSlot }
    let pageInRegion = p.cursor
    let gfn = p.firstPage + pageInRegion
    let process = Int(p.visits % UInt64(Self.processes))
    // Every payload process maps its pages at the same heap address, as processes do; its
    // VSIDs come from its context id, allocated when it first runs after the guest booted.
    while contexts.count <= process {
      contexts.append(vm.contextBase &+ vm.nextContext)
      vm.nextContext += 1
    }
    let ea = Self.heapBase &+ (UInt64(pageInRegion) << HPTHash.pageShift)
    let vsid = HPTHash.vsid256M(context: contexts[process], esid: ea >> 28)
    let vpn = (vsid << 12) | ((ea & 0x0fff_ffff) >> HPTHash.pageShift)
    let pfn: Int
    if let hit = kernel.tlbs[core].lookup(vpn: vpn, lpid: vm.lpid) {
      pfn = Int(hit)
    } else {
      let hash = HPTHash.hash256M(vsid: vsid, ea: ea)
      let avpn = HPTHash.avpn256M(vsid: vsid, ea: ea)
      guard let idx = find(t, hash: hash, avpn: avpn) else {
        // The guest's hash fault: H_ENTER, then retry the access.
        kernel.counters.hEnters += 1
        return hEnter(hash: hash, v: avpn << HPTEV.avpnShift, gfn: gfn, vpn: vpn)
          ? .hashFault : .noSlot
      }
      let v = t.v[idx]
      if v & HPTEV.absent != 0 && v & HPTEV.valid == 0 {
        return .hypervisorFault(index: idx, snapshot: (v, t.r[idx], t.rev[idx].guestRpte))
      }
      pfn = Int(t.r[idx] >> HPTHash.pageShift)
      kernel.tlbs[core].fill(vpn: vpn, lpid: vm.lpid, pfn: Int32(pfn))
    }
    // The access goes wherever the translation points: a stale one reaches another page.
    let gpa = UInt64(gfn) << HPTHash.pageShift
    if p.expected[pageInRegion] != 0 {
      let found = pfn < kernel.pageContent.count ? kernel.pageContent[pfn] : 0
      p.verified += 1
      if found != p.expected[pageInRegion] {
        p.mismatches += 1
        if p.firstBad == nil { p.firstBad = (gpa, p.expected[pageInRegion], found) }
      }
    }
    p.visits += 1
    let value = pattern(seed: p.payload.patternSeed, gpa: gpa, visit: p.visits)
    if pfn < kernel.pageContent.count { kernel.pageContent[pfn] = value }
    p.expected[pageInRegion] = value
    p.cursor = (p.cursor + 1) % p.pageCount
    payload = p
    return .accessed
  }

  static let heapBase: UInt64 = 0x10_0000_0000
  /// Context ids of this vCPU's payload processes since the guest last booted.
  var contexts: [UInt64] = []
  var payloadGeneration = 0
  /// The core this vCPU runs on; vCPUs land on other cores after a guest reboot.
  var core: Int { (Int(id) + vm.bootGeneration + Int(vm.lpid) * 3) % kernel.tlbs.count }

  /// After the guest rebooted, the payload starts over: new processes, nothing written yet.
  func restartPayloadIfRebooted() {
    guard payloadGeneration != vm.bootGeneration, var p = payload else { return }
    payloadGeneration = vm.bootGeneration
    contexts = []
    p.cursor = 0
    for i in p.expected.indices { p.expected[i] = 0 }
    payload = p
  }

  func pattern(seed: UInt64, gpa: UInt64, visit: UInt64) -> UInt64 {
    var g = SplitMix64(seed: seed ^ gpa ^ (visit &* 0x9E37_79B9))
    return g.next() | 1  // never 0: 0 means "not written yet"
  }

  /// Searches the primary and secondary groups for a guest-valid HPTE with this AVPN.
  func find(_ t: HashPageTable, hash: UInt64, avpn: UInt64) -> Int? {
    for secondary in [false, true] {
      let group = Int((secondary ? ~hash : hash) & t.hashMask) * 8
      for slot in 0..<8 {
        let v = t.v[group + slot]
        if v & (HPTEV.valid | HPTEV.absent) != 0 && HPTEV.avpn(v) == avpn
          && (v & HPTEV.secondary != 0) == secondary
        {
          return group + slot
        }
      }
    }
    return nil
  }

  /// H_ENTER as the guest uses it (hpte_insert_repeating): primary group, then secondary,
  /// then evict a non-bolted HPTE and try again. KVM inserts it absent; the hypervisor page
  /// fault maps the host page on first access.
  func hEnter(hash: UInt64, v: UInt64, gfn: Int, vpn: UInt64 = 0) -> Bool {
    guard let t = vm.hpt else { return false }
    var rng = SplitMix64(seed: hash ^ UInt64(kernel.counters.hEnters))
    for _ in 0..<3 {
      for secondary in [false, true] {
        let group = Int((secondary ? ~hash : hash) & t.hashMask) * 8
        for slot in 0..<8 where t.v[group + slot] & (HPTEV.valid | HPTEV.absent) == 0 {
          let i = group + slot
          t.v[i] = v | HPTEV.absent | (secondary ? HPTEV.secondary : 0)
          t.r[i] = UInt64(gfn) << HPTHash.pageShift
          t.vpn[i] = vpn
          t.rev[i].guestRpte = UInt64(gfn) << HPTHash.pageShift
          return true
        }
      }
      // Both full: H_REMOVE a random non-bolted entry of one of the groups.
      let group = Int((rng.chance(0.5) ? hash : ~hash) & t.hashMask) * 8
      let start = rng.below(8)
      for k in 0..<8 {
        let i = group + (start + k) % 8
        if t.v[i] & HPTEV.bolted == 0 {
          hRemove(t, i)
          break
        }
      }
    }
    return false
  }

  /// H_REMOVE (kvmppc_do_h_remove): unlink a valid HPTE from its rmap chain, then clear it.
  func hRemove(_ t: HashPageTable, _ i: Int) {
    if t.v[i] & HPTEV.valid != 0 {
      let gfn = Int(t.rev[i].guestRpte >> HPTHash.pageShift)
      if gfn < vm.npages {
        // remove_revmap_chain(): links are followed in the current HPT's revmap.
        let forw = Int(t.rev[i].forw)
        let back = Int(t.rev[i].back)
        if forw < t.hpteCount && back < t.hpteCount {
          t.rev[forw].back = UInt32(back)
          t.rev[back].forw = UInt32(forw)
        }
        let head = Int(vm.rmap[gfn] & RMAP.indexMask)
        if vm.rmap[gfn] & RMAP.present != 0 && head == i {
          if forw == i {
            vm.rmap[gfn] &= ~(RMAP.present | RMAP.indexMask)
          } else {
            vm.rmap[gfn] = (vm.rmap[gfn] & ~RMAP.indexMask) | UInt64(forw)
          }
        }
      }
    }
    if t.v[i] & HPTEV.valid != 0 { kernel.tlbie(vpn: t.vpn[i], lpid: vm.lpid) }
    t.v[i] = 0
    t.r[i] = 0
  }

  // MARK: - kvmppc_book3s_hv_page_fault()

  func pageFault(index: Int, snapshot: (UInt64, UInt64, UInt64)) throws(SimHalted) {
    kernel.counters.hypervisorFaults += 1
    vm.srcuReaders += 1
    defer { vm.srcuReaders -= 1 }
    // hptep and rev are taken from kvm->arch.hpt as the handler starts; a resize may have
    // replaced the table since real mode looked (then the entry will not match).
    guard let hptRef = vm.hpt, index < hptRef.hpteCount else { return }
    if !vm.mmuReady { kernel.counters.faultsDuringCommit += 1 }
    let lr = Self.faultLR
    // Real mode found the entry; virtual mode locks it and checks it has not changed.
    if hptRef.v[index] != snapshot.0 || hptRef.r[index] != snapshot.1
      || hptRef.rev[index].guestRpte != snapshot.2
    {
      return
    }
    let gfn = Int(snapshot.2 >> HPTHash.pageShift)
    guard gfn < vm.npages else { return }
    let mmuSeq = vm.mmuNotifierSeq
    // get_user_pages_fast(): may fault the host page in; sleeps, so anything can happen here.
    try sched.yield(costNs: 4_000)
    if vm.hostPFN[gfn] < 0 {
      vm.hostPFN[gfn] = kernel.allocPFN()
      kernel.pageContent[Int(vm.hostPFN[gfn])] = 0
      try sched.yield(costNs: 6_000)
    }
    let pfn = UInt64(vm.hostPFN[gfn])
    // HPTE locked from here to the end: no yield.
    if !vm.model.has(.b1) && !vm.mmuReady {
      return  // the seed's fix: a resize is in progress, let the guest retry
    }
    if hptRef.v[index] != snapshot.0 || hptRef.r[index] != snapshot.1
      || hptRef.rev[index].guestRpte != snapshot.2
    {
      return  // HPTE changed under us
    }
    if vm.mmuNotifierCount > 0 || vm.mmuNotifierSeq != mmuSeq {
      return  // mmu_notifier_retry()
    }
    try vm.addRevmapChain(
      revTable: hptRef, gfn: gfn, pteIndex: UInt64(index), lr: lr,
      trace: Self.faultTrace)
    hptRef.r[index] = pfn << HPTHash.pageShift
    hptRef.v[index] = (snapshot.0 & ~HPTEV.absent) | HPTEV.valid
  }
}
