import Foundation
import KVMHost
import KernelLog
import PPC64
import Synchronization
import Testing

@testable import HPTEngine

/// IoctlResizeDriver.stuckGuestEvidence over a VM whose vCPU never exits to userspace (a unit
/// test of that layer; the lab's raw runs use it on real kvm_hv): a guest spinning in guest
/// mode leaves KVM_RUN when kicked and shows where it is; a vCPU the host's kernel holds does
/// not leave, and the evidence says so without waiting on its registers.
@Suite struct StuckGuestTests {
  /// KVM_RUN blocks until a kick (EINTR), unless `heldByKernel`: then kicks do nothing.
  final class SpinningVCPU: KVMVCPU, @unchecked Sendable {
    let id: UInt32 = 0
    let heldByKernel: Bool
    let kicked = DispatchSemaphore(value: 0)
    let registerReads = Atomic<Int>(0)
    init(heldByKernel: Bool) { self.heldByKernel = heldByKernel }
    func run() throws(KVMError) -> VCPUExit {
      kicked.wait()
      return .interrupted
    }
    func setHcallReturn(_ value: UInt64) {}
    func registers() throws(KVMError) -> VCPURegisters? {
      registerReads.add(1, ordering: .relaxed)
      // A real-mode guest that took a data storage interrupt at 0x10040, then a program
      // interrupt at the empty vector.
      return VCPURegisters(
        pc: 0x704, msr: 0x1, lr: 0x10020, srr0: 0x300, srr1: 0x8_0000_0001, dar: 0x40_0000,
        dsisr: 0x4000_0000)
    }
    func kick() { if !heldByKernel { kicked.signal() } }
    func release() { kicked.signal() }
  }

  /// A VM that answers every call at once; its vCPUs come from `vcpu`, kicks go to `kick`.
  final class AnsweringVM: KVMVirtualMachine, @unchecked Sendable {
    let vcpu: (UInt32) -> any KVMVCPU
    let kick: () -> Void
    init(vcpu: @escaping (UInt32) -> any KVMVCPU, kick: @escaping () -> Void = {}) {
      self.vcpu = vcpu
      self.kick = kick
    }
    func kickVCPUs() { kick() }
    func checkExtension(_ cap: KVMCapability) throws(KVMError) -> Int { 1 }
    func setUserMemoryRegion(slot: UInt32, guestPhysAddr: UInt64, size: UInt64) throws(KVMError) {}
    func allocateHTAB(order: UInt32) throws(KVMError) -> UInt32 { order }
    func createVCPU(id: UInt32) throws(KVMError) -> any KVMVCPU { vcpu(id) }
    func resizeHPTPrepare(flags: UInt64, shift: UInt32) throws(KVMError) -> PrepareStatus { .ready }
    func resizeHPTCommit(flags: UInt64, shift: UInt32) throws(KVMError) {}
    func loadPayload(_ payload: GuestPayload, vcpu: UInt32) throws(KVMError) {}
    func invalidateGuestMemory(guestPhysAddr: UInt64, size: UInt64, how: HostInvalidation)
      throws(KVMError)
    {}
    func close() {}
  }

  /// The vCPU loop's part that matters here: held back while `mayRun` is clear, else inside
  /// KVM_RUN (counted), as IoctlFleet.vcpuLoop does.
  func evidence(heldByKernel: Bool) -> (String?, SpinningVCPU) {
    let vcpu = SpinningVCPU(heldByKernel: heldByKernel)
    let guest = GuestContext(
      name: "guest0", vm: AnsweringVM(vcpu: { _ in vcpu }, kick: vcpu.kick), vcpus: [vcpu],
      memory: 1 << 24)
    guest.mayRun.value = true
    let executor = ThreadExecutor()
    let stop = Atomic<Bool>(false)
    let loop = Thread {
      while !stop.load(ordering: .relaxed) {
        if !guest.mayRun.value {
          Thread.sleep(forTimeInterval: 0.001)
          continue
        }
        _ = try? guest.running { () throws(KVMError) in try vcpu.run() }
      }
    }
    loop.start()
    while guest.inRun == 0 { Thread.sleep(forTimeInterval: 0.001) }
    let driver = IoctlResizeDriver(
      guest: guest, stats: RunStats(), executor: executor, prepareTimeoutMs: 1000)
    driver.kickWaitMs = 300
    driver.hostThreads = { "hostd 42 thread 43: state S" }
    let text = driver.stuckGuestEvidence()
    stop.store(true, ordering: .relaxed)
    vcpu.release()
    vcpu.release()
    return (text, vcpu)
  }

  @Test func aSpinningGuestIsKickedOutAndShowsWhereItIs() throws {
    let (text, vcpu) = evidence(heldByKernel: false)
    let lines = try #require(text).split(separator: "\n").map(String.init)
    #expect(lines.first == "1 of 1 vCPU threads inside KVM_RUN")
    #expect(vcpu.registerReads.load(ordering: .relaxed) == 2, "one read per sample")
    let samples = lines.filter { $0.hasPrefix("sample ") }
    #expect(samples.count == 2)
    #expect(samples.allSatisfy { $0.contains("pc 0x704") && $0.contains("dar 0x400000") })
    #expect(samples.allSatisfy { $0.contains("in the program interrupt vector 0x700") })
    #expect(lines.last == "hostd 42 thread 43: state S")
  }

  @Test func aVCPUTheKernelHoldsIsNotWaitedOn() throws {
    let (text, vcpu) = evidence(heldByKernel: true)
    let lines = try #require(text).split(separator: "\n").map(String.init)
    #expect(lines.count == 3)
    #expect(
      lines[1].contains(
        "still inside KVM_RUN 0.3 s after a kick (EINTR): held in the host's kernel"))
    #expect(vcpu.registerReads.load(ordering: .relaxed) == 0, "KVM_GET_REGS would wait for ever")
    #expect(lines[2] == "hostd 42 thread 43: state S")
  }

  @Test func registersNameTheVectorOnlyInsideOne() {
    let inPayload = VCPURegisters(
      pc: 0x10040, msr: 1, lr: 0, srr0: 0, srr1: 0, dar: 0, dsisr: 0)
    #expect(!inPayload.description.contains("vector"))
    let atDSI = VCPURegisters(pc: 0x300, msr: 1, lr: 0, srr0: 0x10040, srr1: 0, dar: 0, dsisr: 0)
    #expect(
      atDSI.description.hasSuffix(
        "(in the data storage interrupt vector 0x300: the guest took an interrupt at 0x10040)"))
  }

  /// A vCPU whose payload reports once, then takes a data storage interrupt (as its vectors
  /// report it), on a host that answers every resize at once.
  final class InterruptedVCPU: KVMVCPU, @unchecked Sendable {
    let id: UInt32
    let runs = Atomic<Int>(0)
    init(id: UInt32) { self.id = id }
    func run() throws(KVMError) -> VCPUExit {
      if runs.add(1, ordering: .relaxed).newValue == 1 {
        return .paprHcall(nr: HPTHammerHcall.report, args: [64, 0, 0, 0, 0, 0, 0, 0])
      }
      Thread.sleep(forTimeInterval: 0.01)
      return .paprHcall(
        nr: HPTHammerHcall.interrupt,
        args: [0x300, 0x10_0a4, 0x8000_0000_0000_1001, 0x42_0000, 0x4200_0000])
    }
    func setHcallReturn(_ value: UInt64) {}
  }

  final class QuietLog: KernelLogSource, @unchecked Sendable {
    func next(timeoutMs: Int) -> KernelLogRecord? {
      Thread.sleep(forTimeInterval: Double(min(timeoutMs, 10)) / 1000)
      return nil
    }
    var isFinished: Bool { false }
  }

  final class AnsweringHost: KVMSystem, @unchecked Sendable {
    let log = QuietLog()
    let exec = ThreadExecutor()
    var hostName: String { "fake-p9" }
    func apiVersion() throws(KVMError) -> Int { 12 }
    func checkExtension(_ cap: KVMCapability) throws(KVMError) -> Int { 1 }
    func createVM(type: VMType) throws(KVMError) -> any KVMVirtualMachine {
      AnsweringVM(vcpu: { InterruptedVCPU(id: $0) })
    }
    var kernelLog: any KernelLogSource { log }
    var executor: any AgentExecutor { exec }
    var statistics: [String: Int] { [:] }
  }

  /// The interrupt the vectors report ends the run as a bug: one finding, titled by the
  /// interrupt alone (runs dedup on it), its report naming the guest, where and why.
  @Test func anInterruptTheVectorsReportIsAFinding() throws {
    var j = Job(name: "interrupt-test")
    j.backend = .raw
    j.durationS = 20
    j.guestCount = 1
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "hpthammer-interrupt-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let r = Runner(
      job: j, host: AnsweringHost(), kernel: HostKernel(name: "fake", release: "6.1.0-fake"),
      outDir: dir, progress: false, reproduce: "test"
    ).run()
    #expect(r.verdict == .bug, "\(r.error ?? "")")
    #expect(r.verdict.exitCode == 1)
    #expect(r.host_time_s < 15, "the run ends at the finding, not at its budget")
    let f = try #require(r.crashes.first)
    #expect(f.title == "guest took an unexpected data storage interrupt in real mode")
    #expect(f.type == "GUEST_INTERRUPT")
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
    let report = try files.filter { $0.hasPrefix("crash-") }.map {
      try String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8)
    }.joined()
    #expect(
      report.contains(
        "vCPU 0: data storage interrupt (0x300) (no HPTE, store) at 0x100a4: srr1 0x8000000000001001 dar 0x420000 dsisr 0x42000000"
      ), "\(report)")
  }

  @Test func interruptCausesAreDecoded() {
    let program = GuestInterrupt([0x700, 0x700, 0x8000_0000_0008_1001, 0, 0])
    #expect(program.name == "program" && program.cause == ["illegal instruction"])
    let isi = GuestInterrupt([0x400, 0x1_0080, 0x4000_0000, 0, 0])
    #expect(isi.cause == ["no HPTE"])
    #expect(GuestInterrupt([0xa00, 0, 0, 0, 0]).name == "0xa00")
  }
}
