import Foundation
import KVMHost
import KVMSys
import KernelLog
import PPC64
import Synchronization
import Testing

@testable import RawKVM

/// ScriptedSyscalls plus what ONE_REG passes by address (the value behind kvm_one_reg.addr),
/// which the struct bytes alone do not show.
final class RecordingSyscalls: Syscalls {
  let scripted: ScriptedSyscalls
  let oneRegValues = Mutex<[UInt64]>([])
  init(_ scripted: ScriptedSyscalls) { self.scripted = scripted }

  func open(_ path: String) -> Result<Int32, Errno> { scripted.open(path) }
  func close(_ fd: Int32) -> Result<Int32, Errno> { scripted.close(fd) }
  func ioctl(_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawBufferPointer) -> Result<
    Int32, Errno
  > {
    if request == KVMIoctl.KVM_SET_ONE_REG.number(for: .host) {
      let reg = arg.load(as: KVMOneReg.self)
      let v = UnsafeRawPointer(bitPattern: UInt(reg.addr))!.load(as: UInt64.self)
      oneRegValues.withLock { $0.append(v) }
    }
    return scripted.ioctl(fd, request, arg)
  }
  func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Result<Int32, Errno> {
    scripted.ioctl(fd, request, value: value)
  }
  func mmap(length: Int, _ mapping: MemoryMapping) -> Result<UnsafeMutableRawPointer, Errno> {
    scripted.mmap(length: length, mapping)
  }
  func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> Result<Int32, Errno> {
    scripted.munmap(address, length: length)
  }
  func madvise(_ address: UnsafeMutableRawPointer, length: Int, _ advice: MemoryAdvice)
    -> Result<Int32, Errno>
  {
    scripted.madvise(address, length: length, advice)
  }
  /// The host's memory nodes as a test sets them; each move_pages as (address, length, node).
  let nodes = Mutex<Result<[Int32], Errno>>(.failure(.ENOSYS))
  let moves = Mutex<[(UInt, Int, Int32)]>([])
  func memoryNodes() -> Result<[Int32], Errno> { nodes.withLock { $0 } }
  func movePages(_ address: UnsafeMutableRawPointer, length: Int, toNode node: Int32)
    -> Result<Int, Errno>
  {
    moves.withLock { $0.append((UInt(bitPattern: address), length, node)) }
    return .success(length >> 16)
  }
}

final class NoLog: KernelLogSource, @unchecked Sendable {
  func next(timeoutMs: Int) -> KernelLogRecord? { nil }
  var isFinished: Bool { true }
}

final class NoExecutor: AgentExecutor, @unchecked Sendable {
  func run(_ agents: [Agent]) {}
  var nowNs: UInt64 { 0 }
  func sleep(ms: Int) {}
  func requestStop() {}
  var stopRequested: Bool { true }
}

@Suite struct RawVMTests {
  static func number(_ i: KVMIoctl) -> UInt { i.number(for: .host) }
  let ram: UInt64 = 16 << 20

  /// The scripted kernel for: open, createVM (hash-v3 host), memslot, one vCPU.
  func guest(hashV3: Int32 = 1) throws -> (RawVM, RawVCPU, ScriptedSyscalls, RecordingSyscalls) {
    let s = ScriptedSyscalls([.returns(3)])
    let rec = RecordingSyscalls(s)
    let host = try RawKVMSystem(
      syscalls: rec, executor: NoExecutor(), kernelLog: NoLog(), hostName: "test")
    s.script(.returns(4096), .returns(4), .returns(hashV3))
    if hashV3 > 0 { s.script(.returns(0)) }
    let vm = try #require(try host.createVM(type: .hv) as? RawVM)
    s.script(.returns(0), .returns(0))  // mmap, KVM_SET_USER_MEMORY_REGION
    try vm.setUserMemoryRegion(slot: 0, guestPhysAddr: 0, size: ram)
    var sregs = KVMSregs.zero
    sregs.pvr = 0x004e_1202
    // KVM_CREATE_VCPU, mmap kvm_run, ENABLE_CAP(PAPR), GET_SREGS, GET_ONE_REG, SET_ONE_REG
    s.script(.returns(5), .returns(0), .returns(0), .writes(sregs), .returns(0), .returns(0))
    let v = try #require(try vm.createVCPU(id: 0) as? RawVCPU)
    return (vm, v, s, rec)
  }

  func ioctls(_ s: ScriptedSyscalls) -> [(Int32, UInt, [UInt8])] {
    s.calls.compactMap {
      switch $0 {
      case .ioctl(let fd, let r, let arg): return (fd, r, arg)
      case .ioctlValue(let fd, let r, let v): return (fd, r, withUnsafeBytes(of: v) { Array($0) })
      default: return nil
      }
    }
  }

  @Test func createVMSwitchesToHPTOnISA300Hosts() throws {
    let (_, _, s, _) = try guest()
    let calls = ioctls(s)
    #expect(calls[1].1 == Self.number(.KVM_CREATE_VM) && calls[1].2.first == 1)  // KVM_VM_PPC_HV
    #expect(calls[2].0 == 4 && calls[2].1 == Self.number(.KVM_CHECK_EXTENSION))
    #expect(calls[2].2.first == 135)  // KVM_CAP_PPC_MMU_HASH_V3, asked of the VM fd
    #expect(calls[3].1 == Self.number(.KVM_PPC_CONFIGURE_V3_MMU))
    #expect(calls[3].2 == Array(repeating: 0, count: 16))  // flags 0 (HPT), process_table 0
    // POWER8 (no ISA 3.0 MMU): no CONFIGURE_V3_MMU.
    let (_, _, p8, _) = try guest(hashV3: 0)
    #expect(!ioctls(p8).contains { $0.1 == Self.number(.KVM_PPC_CONFIGURE_V3_MMU) })
  }

  @Test func guestRAMIsSharedAnonymousMemoryAtSlot0() throws {
    let (_, _, s, _) = try guest()
    #expect(s.calls.contains(.mmap(length: Int(ram), .sharedAnonymous)))
    let region = try #require(ioctls(s).first { $0.1 == Self.number(.KVM_SET_USER_MEMORY_REGION) })
    let r = region.2.withUnsafeBytes { $0.load(as: KVMUserspaceMemoryRegion.self) }
    #expect(r.slot == 0 && r.guest_phys_addr == 0 && r.memory_size == ram)
    #expect(r.userspace_addr != 0)
  }

  @Test func badMemoryIsRefusedBeforeAnyCall() throws {
    let (vm, _, s, _) = try guest()
    let before = s.calls.count
    #expect(throws: KVMError.self) {
      try vm.setUserMemoryRegion(slot: 1, guestPhysAddr: 1 << 30, size: 4096)
    }
    #expect(throws: KVMError.self) {
      try vm.setUserMemoryRegion(slot: 0, guestPhysAddr: 0, size: ram)
    }
    #expect(s.calls.count == before)
  }

  /// kvmppc_sanity_check(): without KVM_CAP_PPC_PAPR on the vCPU, HV's KVM_RUN is EINVAL.
  @Test func vcpuIsAPAPRVCPU() throws {
    let (_, _, s, _) = try guest()
    let cap = try #require(ioctls(s).first { $0.0 == 5 && $0.1 == Self.number(.KVM_ENABLE_CAP) })
    #expect(cap.2.withUnsafeBytes { $0.load(as: UInt32.self) } == KVMCapability.ppcPAPR.rawValue)
  }

  @Test func vcpuGetsLPCRILEAndKeepsTheHostPVR() throws {
    let (_, v, s, rec) = try guest()
    #expect(v.pvr == 0x004e_1202)
    #expect(rec.oneRegValues.withLock { $0 } == [RawVM.LPCR_ILE])
    #expect(!ioctls(s).contains { $0.1 == Self.number(.KVM_SET_SREGS) })
  }

  /// The payload image lands in guest RAM at the vCPU's load address, and KVM_SET_REGS points
  /// the vCPU at its entry in little-endian real mode.
  @Test func loadPayloadWritesTheImageAndSetsPCAndMSR() throws {
    let (vm, _, s, _) = try guest()
    s.script(.writes(KVMRegs.zero), .returns(0))  // GET_REGS, SET_REGS
    let p = GuestPayload(base: 1 << 20, size: 4 << 20, patternSeed: 99, pagesPerReport: 32)
    try vm.loadPayload(p, vcpu: 0)
    let set = try #require(ioctls(s).last)
    #expect(set.1 == Self.number(.KVM_SET_REGS))
    let regs = set.2.withUnsafeBytes { $0.load(as: KVMRegs.self) }
    #expect(regs.pc == RawVM.imageAddress(vcpu: 0) + Payload.parameterBlockSize)
    #expect(regs.msr == RawVM.payloadMSR && regs.msr & 1 == 1 && regs.msr & 0x30 == 0)
    let block = Int(Payload.parameterBlockSize)
    let host = try #require(vm.hostAddress(RawVM.imageAddress(vcpu: 0), length: UInt64(block)))
    let params = Payload.parameters(fromBlock: UnsafeRawBufferPointer(start: host, count: block))
    #expect(
      params
        == PayloadParameters(
          base: 1 << 20, size: 4 << 20, patternSeed: 99, pagesPerReport: 32, pageBytes: 65536,
          hcallNumber: HPTHammerHcall.report))
    // The code follows the block: its first instruction is lis r20 (the block's address).
    let word = UInt32(littleEndian: (host + block).loadUnaligned(as: UInt32.self))
    #expect(word == (try Instruction.addis(.r20, .r0, 0).encode()))
    // The interrupt vectors: the data storage vector (0x300) says which it is and branches
    // to the common handler at 0x1000.
    let dsi = try #require(vm.hostAddress(0x300, length: 8))
    let li = UInt32(littleEndian: dsi.loadUnaligned(as: UInt32.self))
    let b = UInt32(littleEndian: (dsi + 4).loadUnaligned(as: UInt32.self))
    #expect(li == (try Instruction.li(.r4, 0x300).encode()))
    #expect(b == (try Instruction.b(Int32(0x1000 - 0x304)).encode()))
  }

  @Test func loadPayloadOutsideRAMIsAClearError() throws {
    let (vm, _, _, _) = try guest()
    do {
      try vm.loadPayload(
        GuestPayload(base: 15 << 20, size: 4 << 20, patternSeed: 1, pagesPerReport: 1), vcpu: 0)
      Issue.record("accepted")
    } catch {
      #expect(error.description.contains("outside guest RAM"), "\(error)")
    }
    #expect(throws: KVMError.self) {
      try vm.loadPayload(
        GuestPayload(base: 1 << 20, size: 1 << 20, patternSeed: 1, pagesPerReport: 1), vcpu: 7)
    }
  }

  @Test func invalidateIsMadviseOfWholePagesWithinRAM() throws {
    let (vm, _, s, _) = try guest()
    s.script(.returns(0))
    try vm.invalidateGuestMemory(guestPhysAddr: 0x2_0100, size: 0x1_0000, how: .dontneed)
    #expect(s.calls.last == .madvise(offset: 0x2_0000, length: 0x2_0000, .dontNeed))
    s.script(.returns(0))
    try vm.invalidateGuestMemory(guestPhysAddr: ram - 0x1_0000, size: 0x10_0000, how: .dontneed)
    #expect(s.calls.last == .madvise(offset: Int(ram) - 0x1_0000, length: 0x1_0000, .dontNeed))
    s.script(.fails(.EINVAL))
    #expect(throws: KVMError("madvise MADV_DONTNEED", .EINVAL)) {
      try vm.invalidateGuestMemory(guestPhysAddr: 0, size: 0x1_0000, how: .dontneed)
    }
  }

  /// Migration moves whole 64 KiB pages within RAM to the host's memory nodes in turn
  /// (nodes 0 and 8, as a two-chip POWER9 numbers them), asking for the nodes once.
  @Test func migrateMovesWholePagesToEachNodeInTurn() throws {
    let (vm, _, _, rec) = try guest()
    rec.nodes.withLock { $0 = .success([0, 8]) }
    let ram0 = try #require(vm.hostAddress(0, length: 8))
    let base = UInt(bitPattern: ram0)
    for _ in 0..<3 {
      try vm.invalidateGuestMemory(guestPhysAddr: 0x2_0100, size: 0x1_0000, how: .migrate)
    }
    let moves = rec.moves.withLock { $0 }
    #expect(moves.map(\.0) == Array(repeating: base + 0x2_0000, count: 3))
    #expect(moves.map(\.1) == [0x2_0000, 0x2_0000, 0x2_0000])
    #expect(moves.map(\.2) == [8, 0, 8])
  }

  /// A host with one memory node cannot migrate: the error says so and how to get two.
  @Test func migrationOnAOneNodeHostIsRefusedWithTheReason() throws {
    let (vm, _, _, rec) = try guest()
    rec.nodes.withLock { $0 = .success([0]) }
    do {
      try vm.invalidateGuestMemory(guestPhysAddr: 0, size: 0x1_0000, how: .migrate)
      Issue.record("a one-node host migrated")
    } catch {
      #expect(error.errno == .ENODEV)
      #expect(error.ioctl.contains("one NUMA node with memory (0)"))
      #expect(error.ioctl.contains("sockets=2"))
    }
    #expect(rec.moves.withLock { $0.isEmpty })
  }

  /// MADV_REMOVE frees pages: first the payload's taken table gets a 1 for every walked page
  /// in the range (and only those), then madvise(MADV_REMOVE) of the whole pages.
  @Test func removeMarksTheTakenTableThenFreesThePages() throws {
    let (vm, _, s, _) = try guest()
    s.script(.writes(KVMRegs.zero), .returns(0))  // GET_REGS, SET_REGS
    let table: UInt64 = 0x8_0000
    let p = GuestPayload(
      base: 1 << 20, size: 4 << 20, patternSeed: 5, pagesPerReport: 8, takenTable: table)
    try vm.loadPayload(p, vcpu: 0)
    s.script(.returns(0))
    // Pages 2 and 3 of the walked range, and one page below it (not walked: not marked).
    try vm.invalidateGuestMemory(guestPhysAddr: (1 << 20) - 0x1_0000, size: 0x3_0000, how: .remove)
    #expect(s.calls.last == .madvise(offset: (1 << 20) - 0x1_0000, length: 0x3_0000, .remove))
    let t = try #require(vm.hostAddress(table, length: 64 * 8))
    let marks = (0..<64).map { t.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) }
    #expect(marks[0] == 1 && marks[1] == 1 && marks[2...].allSatisfy { $0 == 0 }, "\(marks)")
    // A table inside the walked range is refused.
    #expect(throws: KVMError.self) {
      try vm.loadPayload(
        GuestPayload(
          base: 1 << 20, size: 4 << 20, patternSeed: 5, pagesPerReport: 8, takenTable: 2 << 20),
        vcpu: 0)
    }
  }

  @Test func runMapsEINTRToInterruptedAndKeepsOtherErrors() throws {
    let (_, v, s, _) = try guest()
    s.script(.fails(.EINTR), .fails(.EFAULT))
    #expect(try v.run() == .interrupted)
    #expect(throws: KVMError("KVM_RUN", .EFAULT)) { try v.run() }
  }

  /// The interrupt controller is a KVM_CREATE_DEVICE of type XICS on the VM fd; closing the
  /// VM closes the device's fd first (its release, under kvm->lock, takes each vCPU's mutex:
  /// the order bug B8 inverts), then the VM's.
  @Test func theInterruptControllerIsClosedBeforeTheVM() throws {
    let (vm, _, s, _) = try guest()
    var made = KVMCreateDevice(type: KVMCreateDevice.KVM_DEV_TYPE_XICS)
    made.fd = 9
    s.script(.writes(made))
    try vm.createInterruptController()
    let create = try #require(ioctls(s).last)
    #expect(create.0 == 4 && create.1 == Self.number(.KVM_CREATE_DEVICE))
    #expect(create.2.withUnsafeBytes { $0.load(as: KVMCreateDevice.self) }.type == 3)
    vm.close()
    let closes = s.calls.compactMap { c -> Int32? in
      if case .close(let fd) = c { return fd }
      return nil
    }
    let device = try #require(closes.firstIndex(of: 9), "\(closes)")
    let vmfd = try #require(closes.firstIndex(of: 4), "\(closes)")
    #expect(device < vmfd)
  }

  @Test func closeReleasesRAMOnce() throws {
    let (vm, _, s, _) = try guest()
    vm.close()
    vm.close()
    #expect(s.calls.filter { $0 == .munmap(length: Int(ram)) }.count == 1)
    #expect(throws: KVMError("KVM_PPC_RESIZE_HPT_COMMIT", .EBADF)) {
      try vm.resizeHPTCommit(flags: 0, shift: 20)
    }
  }
}

/// The real /dev/kvm of this machine: an x86 host has no KVM_CAP_SPAPR_RESIZE_HPT.
@Suite(
  .enabled(
    if: FileManager.default.isReadableFile(atPath: "/dev/kvm")
      && FileManager.default.isWritableFile(atPath: "/dev/kvm"), "no usable /dev/kvm"))
struct RealKVMTests {
  @Test func realDeviceAnswers() throws {
    let host = try RawKVMSystem(
      syscalls: LinuxSyscalls(), executor: NoExecutor(), kernelLog: NoLog(), hostName: "here")
    #expect(try host.apiVersion() == 12)
    #if arch(x86_64)
      #expect(try host.checkExtension(.spaprResizeHPT) == 0)
    #endif
  }
}

/// KVM_RUN that blocks like a guest that never exits to userspace, until a signal
/// interrupts it (then EINTR, as KVM answers).
final class BlockingRunSyscalls: Syscalls, @unchecked Sendable {
  let scripted: ScriptedSyscalls
  let entered = DispatchSemaphore(value: 0)
  init(_ s: ScriptedSyscalls) { scripted = s }
  func open(_ path: String) -> Result<Int32, Errno> { scripted.open(path) }
  func close(_ fd: Int32) -> Result<Int32, Errno> { scripted.close(fd) }
  func ioctl(_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawBufferPointer) -> Result<
    Int32, Errno
  > { scripted.ioctl(fd, request, arg) }
  func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Result<Int32, Errno> {
    guard request == KVMIoctl.KVM_RUN.number(for: .host) else {
      return scripted.ioctl(fd, request, value: value)
    }
    entered.signal()
    let r = poll(nil, 0, 20_000)
    return r < 0 && errno == EINTR ? .failure(.EINTR) : .failure(.ETIMEDOUT)
  }
  func mmap(length: Int, _ mapping: MemoryMapping) -> Result<UnsafeMutableRawPointer, Errno> {
    scripted.mmap(length: length, mapping)
  }
  func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> Result<Int32, Errno> {
    scripted.munmap(address, length: length)
  }
  func madvise(_ address: UnsafeMutableRawPointer, length: Int, _ advice: MemoryAdvice)
    -> Result<Int32, Errno>
  { scripted.madvise(address, length: length, advice) }
}

final class StopFlagExecutor: AgentExecutor, @unchecked Sendable {
  let stop = Mutex(false)
  func run(_ agents: [Agent]) {}
  var nowNs: UInt64 { 0 }
  func sleep(ms: Int) {}
  func requestStop() { stop.withLock { $0 = true } }
  var stopRequested: Bool { stop.withLock { $0 } }
}

/// The end of a run on a real host: the executor's stop request gets every vCPU out of
/// KVM_RUN, even one whose guest never exits.
@Suite struct KickTests {
  func vcpu(_ sys: any Syscalls, _ s: ScriptedSyscalls, kicker: SignalKicker?) throws -> (
    RawKVMSystem, RawVM, RawVCPU
  ) {
    s.script(.returns(3))
    let host = try RawKVMSystem(
      syscalls: sys, executor: StopFlagExecutor(), kernelLog: NoLog(), hostName: "t",
      kicker: kicker)
    s.script(.returns(4096), .returns(4), .returns(0))
    let vm = try #require(try host.createVM(type: .hv) as? RawVM)
    var sregs = KVMSregs.zero
    sregs.pvr = 1
    // KVM_CREATE_VCPU, mmap kvm_run, ENABLE_CAP(PAPR), GET_SREGS, GET_ONE_REG, SET_ONE_REG
    s.script(.returns(5), .returns(0), .returns(0), .writes(sregs), .returns(0), .returns(0))
    let v = try #require(try vm.createVCPU(id: 0) as? RawVCPU)
    return (host, vm, v)
  }

  @Test func stopSetsImmediateExit() throws {
    let s = ScriptedSyscalls()
    let (host, vm, _) = try vcpu(s, s, kicker: nil)
    let run = try #require(s.lastMapping())
    #expect(run.load(fromByteOffset: 1, as: UInt8.self) == 0)
    host.executor.requestStop()
    #expect(host.executor.stopRequested)
    #expect(run.load(fromByteOffset: 1, as: UInt8.self) == 1)
    _ = vm
  }

  @Test func stopInterruptsAThreadInsideKVMRun() throws {
    let s = ScriptedSyscalls()
    let sys = BlockingRunSyscalls(s)
    let (host, vm, v) = try vcpu(sys, s, kicker: SignalKicker())
    let done = DispatchSemaphore(value: 0)
    let result = Mutex<VCPUExit?>(nil)
    let t = Thread {
      let exit = try? v.run()
      result.withLock { $0 = exit }
      done.signal()
    }
    t.start()
    sys.entered.wait()
    // The thread may be just before poll(); the kick is retried until it is out.
    var out = false
    for _ in 0..<50 where !out {
      host.executor.requestStop()
      out = done.wait(timeout: .now() + .milliseconds(100)) == .success
    }
    #expect(out, "KVM_RUN was not interrupted")
    #expect(result.withLock { $0 } == .interrupted)
    _ = vm
  }
}
