import KVMHost

/// KVM_PPC_RESIZE_HPT_PREPARE / COMMIT and their worker, as arch/powerpc/kvm/book3s_64_mmu_hv.c
/// has them, with each modelled bug switched on by the kernel model.
extension SimVM {
  static let sourceFile = "arch/powerpc/kvm/book3s_64_mmu_hv.c"

  // MARK: PREPARE

  public func resizeHPTPrepare(flags: UInt64, shift: UInt32) throws(KVMError) -> PrepareStatus {
    let ret = try resizeIoctl(
      "KVM_PPC_RESIZE_HPT_PREPARE", flags: flags, shift: shift, prepareLocked)
    return ret == 0 ? .ready : .pending(estimateMs: Int(ret))
  }

  /// What PREPARE and COMMIT share: the argument checks made before any lock, the syscall,
  /// the negative return turned into the errno it carries.
  private func resizeIoctl(
    _ name: String, flags: UInt64, shift: UInt32, _ body: (Int) throws(SimHalted) -> Int32
  ) throws(KVMError) -> Int32 {
    guard !kernel.dead else { throw KVMError(name, .hostDown) }
    if flags != 0 { throw KVMError(name, .EINVAL) }
    if shift != 0 && !HPTOrder.validRange.contains(shift) { throw KVMError(name, .EINVAL) }
    let ret: Int32
    do {
      try sched.yield(costNs: 2_000)
      ret = try body(Int(shift))
    } catch {
      throw KVMError(name, .hostDown)
    }
    if ret < 0 { throw KVMError(name, Errno(rawValue: -ret)) }
    return ret
  }

  private func prepareLocked(shift: Int) throws(SimHalted) -> Int32 {
    try lockMMU()
    defer { unlockMMU() }
    if let r = resize {
      if r.order == shift {
        // Suitable resize in progress.
        if model.has(.b3) {
          if r.prepareDone {
            if r.error != 0 { try release(r) }
            return r.error
          }
          return 100
        }
        if r.error == -Errno.EBUSY.rawValue { return 100 }
        if r.error != 0 {
          let e = r.error
          try release(r)
          return e
        }
        return 0
      }
      // Not suitable: cancel it.
      try release(r)
    }
    if shift == 0 { return 0 }  // nothing to do
    try checkPoisonOnAlloc()
    let r = ResizeRequest(id: kernel.nextRequestID, order: shift, vm: self)
    kernel.nextRequestID += 1
    if !model.has(.b3) { r.error = -Errno.EBUSY.rawValue }
    resize = r
    kernel.workQueue.append(r)  // schedule_work()
    return 100  // estimated time in ms
  }

  /// resize_hpt_release().
  func release(_ r: ResizeRequest?) throws(SimHalted) {
    guard let r else {
      if model.has(.b0a) {
        // resize->hpt.virt with resize == NULL: a load from offsetof(struct kvm_resize_hpt, hpt.virt).
        var w = kernel.writer()
        let commit = Frame("kvm_vm_ioctl_resize_hpt_commit", 0x1f4)
        let release = Frame("resize_hpt_release", 0x6c)
        let nip = model.inlinesRelease ? commit : release
        let callers = model.inlinesRelease ? [] : [commit]
        throw kernel.die(
          w.dataFault(
            address: 0x38, write: false, cpu: kernel.currentCPU, pid: kernel.currentPID,
            comm: kernel.currentComm, nip: nip,
            lr: callers.first ?? Frame("kvm_arch_vm_ioctl_hv", 0x2b0),
            trace: callers + [Frame("kvm_arch_vm_ioctl_hv", 0x2b0)] + Self.vmIoctlTrace, r3: 0))
      }
      return
    }
    if model.has(.b3) {
      // Frees the request whatever its worker is doing.
      r.hpt = nil
      r.freed = true
    } else if r.error != -Errno.EBUSY.rawValue {
      r.hpt = nil
      r.freed = true
    }
    if resize === r { resize = nil }
  }

  /// SLUB with poisoning checks a freed object when it is handed out again.
  func checkPoisonOnAlloc() throws(SimHalted) {
    if kernel.freelistCorrupted {
      // Without poisoning: the freed request's freelist pointer was overwritten by the worker,
      // so this kzalloc takes a bad object and clears it (memset in the allocator).
      kernel.freelistCorrupted = false
      var w = kernel.writer()
      throw kernel.die(
        w.dataFault(
          address: 0xc000_0000_0000_0000, write: true, cpu: kernel.currentCPU,
          pid: kernel.currentPID, comm: kernel.currentComm, nip: Frame("memset", 0x68),
          lr: Frame("__kmem_cache_alloc_node", 0x330),
          trace: [
            Frame("__kmem_cache_alloc_node", 0x4bc), Frame("kmalloc_trace", 0x50),
            Frame("kvm_vm_ioctl_resize_hpt_prepare", 0xec), Frame("kvm_arch_vm_ioctl_hv", 0x2b0),
          ] + Self.vmIoctlTrace, r3: 0xc000_0000_0000_0000))
    }
    guard let who = kernel.poisonOverwritten else { return }
    kernel.poisonOverwritten = nil
    let obj = 0xc000_000f_e5a3_b000 &+ UInt64(kernel.rng.below(64)) << 8
    let lines = [
      "=============================================================================",
      "BUG kmalloc-128 (Tainted: G           O    ): Poison overwritten",
      "-----------------------------------------------------------------------------",
      "",
      "INFO: 0x\(String(obj + 0x2c, radix: 16))-0x\(String(obj + 0x30, radix: 16)). First byte 0x0 instead of 0x6b",
      "INFO: Allocated in kvm_vm_ioctl_resize_hpt_prepare+0x178/0x2c0 [kvm_hv] age=1201 cpu=\(who.cpu) pid=\(who.pid)",
      "INFO: Freed in kvm_vm_ioctl_resize_hpt_prepare+0x13c/0x2c0 [kvm_hv] age=1100 cpu=\(who.cpu) pid=\(who.pid)",
      "INFO: Object 0x\(String(obj, radix: 16)) @offset=0 fp=0x          (null)",
      "FIX kmalloc-128: Restoring 0x\(String(obj + 0x2c, radix: 16))-0x\(String(obj + 0x30, radix: 16))=0x6b",
      "FIX kmalloc-128: Marking all objects used",
    ]
    for l in lines { kernel.printk(3, l) }
  }

  // MARK: worker

  /// resize_hpt_prepare_work(), run by the kworker.
  func resizePrepareWork(_ r: ResizeRequest) throws(SimHalted) {
    let trace = [
      Frame("process_one_work", 0x1f0), Frame("worker_thread", 0x8c), Frame("kthread", 0x160),
      Frame("ret_from_kernel_thread", 0x5c),
    ]
    if model.has(.b3) {
      if r.freed && !model.slubPoison {
        // resize->order reads the freelist pointer: the allocation fails at once, and the
        // worker's writes of error and prepare_done land on that pointer.
        try lockMMU()
        kernel.freelistCorrupted = true
        unlockMMU()
        return
      }
      // struct kvm *kvm = resize->kvm;  -- from a freed, poisoned object if it was cancelled.
      if r.freed {
        var w = kernel.writer()
        throw kernel.die(
          w.dataFault(
            address: 0x6b6b_6b6b_6b6b_6b6b &+ 0x1a0, write: false, cpu: kernel.currentCPU,
            pid: kernel.currentPID, comm: kernel.currentComm, nip: Frame("mutex_lock", 0x1c),
            lr: Frame("resize_hpt_prepare_work", 0x5c),
            trace: [Frame("resize_hpt_prepare_work", 0x5c)] + trace,
            r3: 0x6b6b_6b6b_6b6b_6b6b &+ 0x1a0))
      }
      let (hpt, err) = try allocateResizeHPT(order: r.order)
      try lockMMU()
      if r.freed {
        // Writes to the freed request; the new HPT leaks with it.
        kernel.poisonOverwritten = (kernel.currentCPU, kernel.currentPID)
      } else {
        r.hpt = hpt
        r.error = err
        r.prepareDone = true
      }
      unlockMMU()
      return
    }
    try lockMMU()
    var err: Int32 = 0
    if resize === r {
      // Don't sleep in the allocator with the lock held.
      unlockMMU()
      let (hpt, e) = try allocateResizeHPT(order: r.order)
      err = e
      try lockMMU()
      r.hpt = hpt
    }
    r.error = err
    r.prepareDone = true
    if resize !== r { try release(r) }
    unlockMMU()
  }

  /// kvmppc_allocate_hpt(): CMA or the page allocator, then the revmap; takes time.
  func allocateResizeHPT(order: Int) throws(SimHalted) -> (HashPageTable?, Int32) {
    // About 1 ms per MiB of table plus revmap, in steps.
    let bytes = UInt64(1) << UInt64(order)
    let costNs = max(50_000, bytes / 1024 * 2)
    try sched.sleep(ns: costNs / 2)
    try sched.sleep(ns: costNs / 2)
    if order > kernel.maxAllocOrder { return (nil, -Errno.ENOMEM.rawValue) }
    return (newHPT(order: order), 0)
  }

  // MARK: COMMIT

  public func resizeHPTCommit(flags: UInt64, shift: UInt32) throws(KVMError) {
    _ = try resizeIoctl("KVM_PPC_RESIZE_HPT_COMMIT", flags: flags, shift: shift, commitLocked)
  }

  private func commitLocked(shift: Int) throws(SimHalted) -> Int32 {
    try lockMMU()
    defer { unlockMMU() }
    let r = resize
    var ret: Int32 = -Errno.EIO.rawValue
    kernel.counters.commits += 1
    // "This shouldn't be possible": COMMIT before any vCPU ran (or after ALLOCATE_HTAB).
    if !mmuReady {
      kernel.warn(
        file: Self.sourceFile, line: model.modernOopsFormat ? 1609 : 1468,
        nip: Frame("kvm_vm_ioctl_resize_hpt_commit", 0x1ec),
        lr: Frame("kvm_arch_vm_ioctl_hv", 0x2b0),
        trace: [Frame("kvm_arch_vm_ioctl_hv", 0x2b0)] + Self.vmIoctlTrace)
      try release(r)
      return ret
    }
    // Stop vCPUs from running while we mess with the HPT, and kick them out of the guest.
    mmuReady = false
    try sched.yield(costNs: 10_000)

    ret = -Errno.ENXIO.rawValue
    if let r, r.order == shift {
      let stillAllocating = model.has(.b3) ? !r.prepareDone : r.error == -Errno.EBUSY.rawValue
      if stillAllocating {
        ret = -Errno.EBUSY.rawValue
      } else if r.error != 0 {
        ret = r.error
      } else if let new = r.hpt {
        ret = try rehash(into: new)
        if ret == 0 { try pivot(r) }
      }
    }
    mmuReady = true
    try release(r)
    return ret
  }

  /// resize_hpt_rehash(): every HPTE of the old table; yields between chunks, as the real loop
  /// is preemptible by nothing but can race with other CPUs.
  func rehash(into new: HashPageTable) throws(SimHalted) -> Int32 {
    guard let old = hpt else { return -Errno.EIO.rawValue }
    let n = old.hpteCount
    let chunk = 1024
    var inUse: [Int] = []
    inUse.reserveCapacity(chunk)
    var start = 0
    while start < n {
      let end = min(n, start + chunk)
      // Most HPTEs are empty: find the ones in use first, then rehash them.
      inUse.removeAll(keepingCapacity: true)
      old.v.withUnsafeBufferPointer { v in
        for i in start..<end where v[i] & (HPTEV.valid | HPTEV.absent) != 0 { inUse.append(i) }
      }
      for i in inUse {
        let rc = try rehashHPTE(old: old, new: new, idx: i)
        if rc != 0 { return rc }
      }
      kernel.counters.rehashedHPTEs += end - start
      start = end
      try sched.yield(costNs: UInt64(chunk) * 20)
    }
    return 0
  }

  static let rehashNIP = Frame("resize_hpt_rehash_hpte", 0x1a8)
  static let rehashLR = Frame("kvm_vm_ioctl_resize_hpt_commit", 0x2c4)
  static let rehashTrace =
    [Frame("kvm_vm_ioctl_resize_hpt_commit", 0x2c4), Frame("kvm_arch_vm_ioctl_hv", 0x2b0)]
    + vmIoctlTrace

  /// resize_hpt_rehash_hpte().
  func rehashHPTE(old: HashPageTable, new: HashPageTable, idx: Int) throws(SimHalted) -> Int32 {
    let inlined = Frame("kvm_vm_ioctl_resize_hpt_commit", 0x3f8)
    let nip = model.inlinesRehash ? inlined : Self.rehashNIP
    let lr = model.inlinesRehash ? Frame("kvm_vm_ioctl_resize_hpt_commit", 0x48c) : Self.rehashLR
    let trace = Self.rehashTrace
    var vpte = old.v[idx]
    let guestRpte = old.rev[idx].guestRpte
    if vpte & HPTEV.valid != 0 {
      let gfn = Int(guestRpte >> HPTHash.pageShift)
      if gfn < npages {
        try unmapHPTE(idx, gfn: gfn, nip: nip, lr: lr, trace: trace)
      }
    }
    vpte = old.v[idx]
    if vpte & HPTEV.valid != 0 || vpte & HPTEV.absent == 0 {
      throw bugOn(line: model.modernOopsFormat ? 1295 : 1267, nip: nip, lr: lr, trace: trace)
    }
    if vpte & HPTEV.bolted == 0 { return 0 }  // non-bolted HPTEs are dropped

    let rpte = old.r[idx]
    // Every simulated HPTE is a large (64K) one; B7's radix host sizes it from an empty table.
    let psize: UInt64 = model.has(.b7) ? 0 : HPTHash.pageSize
    let oldHashMask = old.hashMask
    let newHashMask = new.hashMask
    let avpn = HPTEV.avpn(vpte) & ~((psize &- 1) >> 23)
    var pteg = UInt64(idx / 8)
    // The B5 kernels forgot this inversion (and compared ~pteg below instead).
    if vpte & HPTEV.secondary != 0 && !model.has(.b5) { pteg = ~pteg }
    let hash: UInt64
    if vpte & HPTEV.segment1T == 0 {
      var offset = (avpn & 0x1f) << 23
      let vsid = avpn >> 5
      if psize < (1 << 23) { offset |= ((vsid ^ pteg) & oldHashMask) &* psize }
      hash = vsid ^ (psize == 0 ? 0 : offset / psize)  // divdu by 0: no trap on POWER
    } else {
      var offset = (avpn & 0x1ffff) << 23
      let vsid = avpn >> 17
      if psize < (1 << 23) { offset |= ((vsid ^ (vsid << 25) ^ pteg) & oldHashMask) &* psize }
      hash = vsid ^ (vsid << 25) ^ (psize == 0 ? 0 : offset / psize)
    }
    var newPteg = hash & newHashMask
    if vpte & HPTEV.secondary != 0 {
      if model.has(.b5) {
        // The pre-fix code compared the inverted group with the primary hash.
        if ~pteg != (hash & oldHashMask) {
          throw bugOn(line: model.inlinesRehash ? 1325 : 1329, nip: nip, lr: lr, trace: trace)
        }
        newPteg = ~newPteg
      } else {
        newPteg = ~hash & newHashMask
      }
    } else if pteg != (hash & oldHashMask) {
      // Only the B5 kernels kept this BUG_ON; fixed kernels trust the hash.
      if model.has(.b5) { throw bugOn(line: 1332, nip: nip, lr: lr, trace: trace) }
    }
    let newIdx = Int(newPteg &* 8 &+ UInt64(idx % 8))
    guard newIdx >= 0 && newIdx < new.hpteCount else { return -Errno.EIO.rawValue }
    let replace = new.v[newIdx]
    if replace & (HPTEV.valid | HPTEV.absent) != 0 {
      if new.order >= old.order {
        throw bugOn(line: model.modernOopsFormat ? 1392 : 1349, nip: nip, lr: lr, trace: trace)
      }
      if replace & HPTEV.bolted != 0 {
        // Bolted collision, nothing we can do (both are bolted here).
        return -Errno.ENOSPC.rawValue
      }
      // Discard the previous HPTE.
    }
    new.r[newIdx] = rpte
    new.vpn[newIdx] = old.vpn[idx]
    new.rev[newIdx].guestRpte = guestRpte
    new.v[newIdx] = vpte
    return 0
  }

  func bugOn(line: Int, nip: Frame, lr: Frame, trace: [Frame]) -> SimHalted {
    var w = kernel.writer()
    return kernel.die(
      w.bug(
        file: Self.sourceFile, line: line, cpu: kernel.currentCPU, pid: kernel.currentPID,
        comm: kernel.currentComm, nip: nip, lr: lr, trace: trace, r3: 1))
  }

  /// resize_hpt_pivot(): swap the tables, then synchronize_srcu.
  func pivot(_ r: ResizeRequest) throws(SimHalted) {
    guard let new = r.hpt else { return }
    let old = hpt
    setHPT(new)
    r.hpt = old
    // synchronize_srcu_expedited(): page faults that started on the old HPT finish before
    // COMMIT goes on (and, in fixed kernels, before mmu_ready is set again).
    try sched.yield(costNs: 20_000)
    try sched.wait { [unowned self] in self.srcuReaders == 0 }
  }
}
