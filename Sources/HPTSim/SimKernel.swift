import Foundation
import KVMHost
import KernelLog

/// The host kernel's log: records appended by the simulated kernel (always on the
/// scheduler's baton), read by the harness's log watcher on its own thread.
public final class SimKernelLog: KernelLogSource, @unchecked Sendable {
  private let cond = NSCondition()
  private var records: [KernelLogRecord] = []
  private var readIndex = 0
  private var finished = false
  private var sequence: UInt64 = 0
  let hostName: String

  init(hostName: String) { self.hostName = hostName }

  func append(level: Int, uptimeNs: UInt64, _ text: String) {
    cond.lock()
    records.append(
      KernelLogRecord(
        sequence: sequence, timestampMicros: uptimeNs / 1000, level: level, facility: 0,
        text: text, origin: .host(hostName)))
    sequence += 1
    cond.signal()
    cond.unlock()
  }

  func finish() {
    cond.lock()
    finished = true
    cond.broadcast()
    cond.unlock()
  }

  public func next(timeoutMs: Int) -> KernelLogRecord? {
    cond.lock()
    defer { cond.unlock() }
    let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
    while readIndex >= records.count && !finished {
      if !cond.wait(until: deadline) { break }
    }
    guard readIndex < records.count else { return nil }
    readIndex += 1
    return records[readIndex - 1]
  }

  public var isFinished: Bool {
    cond.lock()
    defer { cond.unlock() }
    return finished && readIndex >= records.count
  }

  /// Everything logged so far (for tests and the benchmark).
  public var allRecords: [KernelLogRecord] {
    cond.lock()
    defer { cond.unlock() }
    return records
  }
}

/// struct kvm_resize_hpt.
final class ResizeRequest {
  let id: Int
  let order: Int
  /// 0, a negative errno, or -EBUSY while the worker has not finished (kernels with B3 fixed).
  var error: Int32 = 0
  var prepareDone = false
  var hpt: HashPageTable?
  /// kfree()d: with slub_debug poisoning, every field now reads 0x6b.
  var freed = false
  let vm: SimVM
  init(id: Int, order: Int, vm: SimVM) {
    self.id = id
    self.order = order
    self.vm = vm
  }
}

/// The simulated KVM-HV host kernel: one per simulated host, shared by its VMs.
public final class SimKernel: @unchecked Sendable {
  public let model: KernelModel
  public let sched: SimScheduler
  public let log: SimKernelLog
  var rng: SplitMix64
  var identity: HostIdentity
  var lockdep: SimLockdep
  /// The host died (oops with panic_on_oops, or a hang): every ioctl answers hostDown.
  public private(set) var dead = false

  // system_wq: resize requests queued by PREPARE for the kworker.
  var workQueue: [ResizeRequest] = []
  var nextRequestID = 1
  var nextLPID: UInt32 = 1
  /// The TLBs of the cores guests run on.
  var tlbs = [TLB](repeating: TLB(), count: 8)

  /// tlbie: every core drops its translation of `vpn` for the partition.
  func tlbie(vpn: UInt64, lpid: UInt32) {
    for c in tlbs.indices { tlbs[c].invalidate(vpn: vpn, lpid: lpid) }
  }

  // Host physical pages backing guest RAM: contents (one pattern word a page stands for the
  // page's data) and a LIFO free list, so a freed page is reused at once, as it would be.
  var pageContent: [UInt64] = []
  var freePFNs: [Int32] = []
  /// Largest HPT the host can allocate (CMA and page allocator together), as an order.
  public var maxAllocOrder = 30

  /// A freed resize request was written to after kfree (B3): SLUB finds it at the next
  /// allocation from that cache.
  var poisonOverwritten: (cpu: Int, pid: Int)?
  /// A freed object's freelist pointer was overwritten (B3 without slub poisoning): the next
  /// allocation from the cache faults.
  var freelistCorrupted = false

  public var counters = Counters()
  public struct Counters: Sendable {
    public var hypervisorFaults = 0
    public var hEnters = 0
    public var rehashedHPTEs = 0
    public var invalidatedPages = 0
    public var commits = 0
    public var faultsDuringCommit = 0
  }

  public init(
    model: KernelModel, seed: UInt64, hostName: String = "sim-power9", bootUptimeNs: UInt64
  ) {
    self.model = model
    var root = SplitMix64(seed: seed)
    sched = SimScheduler(seed: root.next(), bootUptimeNs: bootUptimeNs)
    rng = root.split()
    log = SimKernelLog(hostName: hostName)
    lockdep = SimLockdep(on: model.lockdep)
    identity = HostIdentity(
      model: model,
      modules: [
        "kvm_hv", "kvm_pr", "kvm", "vhost_net", "vhost", "tap", "bridge", "stp", "llc",
        "ipmi_powernv", "ipmi_devintf", "ipmi_msghandler", "powernv_op_panel", "nfsd", "sunrpc",
        "tg3", "ptp", "pps_core",
      ], tainted: "")
    sched.onDeadlock = { [unowned self] blocked in self.reportHang(blocked) }
    bootLog()
  }

  // MARK: - log

  func printk(_ level: Int, _ text: String) {
    log.append(level: level, uptimeNs: sched.nowNs, text)
  }

  private func bootLog() {
    printk(5, "Linux version \(model.release) (builder@power9) (gcc version 12.2.0) #1 SMP")
    printk(6, "POWER9 DD2.2 (raw) 0x4e1202 opal:skiboot PowerNV, hash MMU (disable_radix)")
    printk(6, "kvm-hv: Parameters: kvm_hv.nested=0 resize_hpt=1 \(model.description)")
  }

  var cpuCount: Int { 128 }
  var currentCPU: Int { (sched.currentID * 37 + 8) % cpuCount }
  var currentPID: Int { 4000 + sched.currentID * 13 }
  var currentComm: String { sched.currentName }

  func writer() -> OopsWriter { OopsWriter(host: identity, rng: rng.split()) }

  /// The host is dead from here: print the report, panic, and unwind every simulated thread.
  func die(_ lines: [String]) -> SimHalted {
    for l in lines { printk(lines.first == l ? 1 : 4, l) }
    printk(0, "Kernel panic - not syncing: Fatal exception")
    printk(0, "---[ end Kernel panic - not syncing: Fatal exception ]---")
    dead = true
    sched.halt()
    log.finish()
    return SimHalted()
  }

  /// lockdep's check of `inner` taken while `outer` is held: its report on an inversion.
  func lockdepAcquire(_ inner: String, holding outer: String, site: SimLockdep.Site) {
    guard let earlier = lockdep.acquire(inner, holding: outer, site: site) else { return }
    var w = writer()
    let lines = w.circularLocking(
      inner: inner, outer: outer, site: site, earlier: earlier, cpu: currentCPU, pid: currentPID,
      comm: currentComm)
    for l in lines { printk(4, l) }
  }

  func warn(file: String, line: Int, nip: Frame, lr: Frame, trace: [Frame]) {
    var w = writer()
    let lines = w.warning(
      file: file, line: line, cpu: currentCPU, pid: currentPID, comm: currentComm, nip: nip,
      lr: lr, trace: trace, r3: 0)
    for l in lines { printk(4, l) }
    if !identity.tainted.contains("W") {
      identity.tainted = identity.tainted.isEmpty ? "G        W" : identity.tainted + " W"
    }
  }

  func reportHang(_ blocked: [String]) {
    for name in blocked.prefix(4) {
      printk(3, "INFO: task \(name):\(4000) blocked for more than 120 seconds.")
      printk(
        3,
        "      \(identity.tainted.isEmpty ? "Not tainted" : "Tainted: \(identity.tainted)") \(model.release) #1"
      )
      printk(3, "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.")
      printk(6, "\(name)     D    0  4000      1 0x00040000")
      printk(6, "Call Trace:")
      printk(6, "[c0000000028db850] [c00000000001b430] __switch_to+0x2f0/0x430")
      printk(6, "[c0000000028db8b0] [c000000000a3c5d4] __schedule+0x2a4/0x9d0")
      printk(6, "[c0000000028db980] [c000000000a3cd48] schedule+0x48/0xc0")
      printk(6, "[c0000000028db9b0] [c000000000a3d5c4] schedule_preempt_disabled+0x14/0x20")
      printk(6, "[c0000000028db9d0] [c000000000a3ecb8] __mutex_lock+0x318/0x9a0")
      printk(6, "[c0000000028dba80] [d00000000c36a078] kvmppc_vcpu_run_hv+0xdf8/0x1300 [kvm_hv]")
    }
    printk(0, "Kernel panic - not syncing: hung_task: blocked tasks")
    dead = true
    log.finish()
  }

  /// Called when the harness's run is over and the host is still alive.
  public func shutdown() {
    if !dead { log.finish() }
  }

  // MARK: - host pages

  func allocPFN() -> Int32 {
    if let pfn = freePFNs.popLast() { return pfn }
    pageContent.append(0)
    return Int32(pageContent.count - 1)
  }

  func freePFN(_ pfn: Int32) {
    // Page poisoning on free: what a stale mapping reads back is visibly not its data.
    pageContent[Int(pfn)] = 0x6b6b_6b6b_6b6b_6b6b
    freePFNs.append(pfn)
  }

  // MARK: - resize worker (system_wq)

  /// The kworker that runs resize_hpt_prepare_work().
  func kworkerLoop() {
    do {
      while true {
        try sched.wait { [unowned self] in !self.workQueue.isEmpty || self.sched.agentsFinished }
        if workQueue.isEmpty { return }
        let resize = workQueue.removeFirst()
        try sched.yield(costNs: 5_000)
        try resize.vm.resizePrepareWork(resize)
      }
    } catch {
      return
    }
  }
}
