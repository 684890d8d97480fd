import Foundation
import KVMHost
import Testing

@testable import KVMSys

/// `RemoteSyscalls` against the real `hpthammer-hostd` (Guests/hostd/): built natively and
/// driving this machine's real /dev/kvm through the pipe, and built for ppc64le and run under
/// qemu-user (the binary a POWER host gets).
@Suite struct RemoteSyscallsTests {
  static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let source = repo.appendingPathComponent("Guests/hostd/hpthammer-hostd.c").path

  static func which(_ name: String) -> String? {
    (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
      .map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
  }

  /// Builds hostd with `compiler` into a temporary file.
  static func build(_ compiler: String, _ extra: [String] = []) throws -> String {
    let out = FileManager.default.temporaryDirectory
      .appendingPathComponent("hostd-\(UUID().uuidString.prefix(8))").path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: compiler)
    p.arguments = ["-O2", "-Wall", "-Werror", "-pthread"] + extra + ["-o", out, source]
    let err = Pipe()
    p.standardError = err
    try p.run()
    let msg = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
      throw KVMError("build hostd: \(msg)", .EIO)
    }
    return out
  }

  /// Starts hostd (argv) with pipes and connects a RemoteSyscalls to it.
  static func connect(_ argv: [String], arch: Arch) throws -> (RemoteSyscalls, Process, Pipe) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    let toHost = Pipe()
    let fromHost = Pipe()
    p.standardInput = toHost
    p.standardOutput = fromHost
    try p.run()
    let remote = try RemoteSyscalls(
      readFD: fromHost.fileHandleForReading.fileDescriptor,
      writeFD: toHost.fileHandleForWriting.fileDescriptor, arch: arch)
    return (remote, p, toHost)
  }

  @Test(
    .enabled(if: which("cc") != nil, "no C compiler"),
    .enabled(if: FileManager.default.fileExists(atPath: "/dev/kvm"), "no /dev/kvm"))
  func theRealKVMThroughHostd() throws {
    let bin = try Self.build(Self.which("cc")!)
    defer { try? FileManager.default.removeItem(atPath: bin) }
    let (remote, p, toHost) = try Self.connect([bin], arch: .host)
    defer { if p.isRunning { p.terminate() } }
    #expect(remote.hello.hasPrefix("hpthammer-hostd 1 "))

    let kvm = try KVMSystemFD.open(syscalls: remote)
    #expect(try kvm.apiVersion() == 12)
    #expect(try kvm.checkExtension(.userMemory) == 1)
    #if !arch(powerpc64le)
      #expect(try kvm.checkExtension(.spaprResizeHPT) == 0)
    #endif
    let vm = try kvm.createVM(type: .default)
    // Guest RAM: the memslot names the local shadow; hostd's kernel gets hostd's mapping.
    let size = 2 << 20
    let ram = try remote.mmap(length: size, .sharedAnonymous).get()
    try vm.setUserMemoryRegion(
      KVMUserspaceMemoryRegion(
        slot: 0, guest_phys_addr: 0, memory_size: UInt64(size),
        userspace_addr: UInt64(UInt(bitPattern: ram))))
    // An address no mapping covers cannot be translated: EFAULT, before the kernel sees it.
    #expect(throws: KVMError("KVM_SET_USER_MEMORY_REGION", .EFAULT)) {
      try vm.setUserMemoryRegion(
        KVMUserspaceMemoryRegion(
          slot: 1, guest_phys_addr: UInt64(size), memory_size: 4096, userspace_addr: 0x1000))
    }
    #if !arch(powerpc64le)
      #expect(throws: KVMError("KVM_PPC_RESIZE_HPT_PREPARE", .ENOTTY)) {
        try vm.resizeHPTPrepare(shift: 24)
      }
    #endif
    // kvm_run is mapped on the host and shadowed here; a vCPU is created for real.
    let vcpu = try vm.createVCPU(id: 0)
    vcpu.immediateExit = true
    #expect(vcpu.immediateExit)
    #expect(try remote.madvise(ram, length: size, .dontNeed).get() == 0)
    // MADV_PAGEOUT: reclaim takes the pages and gives the same contents back.
    let word = Array("hpthammer".utf8)
    try remote.poke(ram, word).get()
    #expect(try remote.madvise(ram, length: size, .pageout).get() == 0)
    #expect(try remote.peek(ram, count: word.count).get() == word)
    #expect(throws: Errno.EFAULT) {
      try remote.madvise(UnsafeMutableRawPointer(bitPattern: 0x1000)!, length: 4096, .dontNeed)
        .get()
    }

    // The host goes away: every call fails with EHOSTDOWN instead of hanging.
    try toHost.fileHandleForWriting.close()
    p.waitUntilExit()
    for _ in 0..<100 where !remote.isClosed { Thread.sleep(forTimeInterval: 0.01) }
    #expect(remote.isClosed)
    #expect(throws: KVMError("KVM_GET_API_VERSION", .hostDown)) { try kvm.apiVersion() }
  }

  /// The binary a POWER host runs: static ppc64le, under qemu-user here. qemu-user does not
  /// pass KVM ioctls through, so this checks the protocol, memory and the host's uname.
  @Test(.enabled(if: CrossTools.found != nil, "no ppc64le cross compiler or qemu-user"))
  func thePPC64LEBinarySpeaksTheProtocol() throws {
    let bin = try Self.build(CrossTools.found!.gcc, ["-static"])
    defer { try? FileManager.default.removeItem(atPath: bin) }
    let (remote, p, toHost) = try Self.connect([CrossTools.found!.qemu, bin], arch: .powerpc)
    defer { if p.isRunning { p.terminate() } }
    #expect(remote.hello == "hpthammer-hostd 1 ppc64le")
    #expect(remote.arch == .powerpc)
    let ram = try remote.mmap(length: 1 << 20, .anonymous).get()
    #expect(try remote.madvise(ram, length: 1 << 20, .dontNeed).get() == 0)
    #expect(try remote.munmap(ram, length: 1 << 20).get() == 0)
    #expect(throws: Errno.EINVAL) { try remote.munmap(ram, length: 1 << 20).get() }
    #expect(throws: Errno.ENOENT) { try remote.open("/dev/hpthammer-absent").get() }
    try toHost.fileHandleForWriting.close()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0)
  }
}

extension RemoteSyscallsTests {
  /// Guest RAM written here reaches hostd before any vCPU runs, whichever thread's KVM_RUN
  /// pushes it: a second thread's KVM_RUN waits for the first one's push (two guests whose
  /// vCPUs started together: one ran before its payload arrived, on the lab).
  @Test(.enabled(if: which("cc") != nil, "no C compiler"))
  func aSecondKVMRunWaitsForThePushOfGuestRAM() throws {
    let bin = try Self.build(Self.which("cc")!)
    defer { try? FileManager.default.removeItem(atPath: bin) }
    let (remote, p, _) = try Self.connect([bin], arch: .host)
    defer { if p.isRunning { p.terminate() } }
    // Two guests' RAM, every page non-zero, so the push takes thousands of round trips.
    let size = 8 << 20
    let rams = try (0..<2).map { _ in try remote.mmap(length: size, .sharedAnonymous).get() }
    for (g, ram) in rams.enumerated() { memset(ram, 0x41 + Int32(g), size) }
    let run = KVMIoctl.KVM_RUN.number(for: .host)
    // Not a vCPU: hostd answers EBADF, after the push that comes first.
    let first = Thread { _ = remote.ioctl(-1, run, value: 0) }
    first.start()
    Thread.sleep(forTimeInterval: 0.005)
    _ = remote.ioctl(-1, run, value: 0)
    for (g, ram) in rams.enumerated() {
      let last = try remote.peek(ram + size - 4096, count: 4096).get()
      #expect(last.allSatisfy { $0 == 0x41 + UInt8(g) }, "guest \(g)'s last page not there yet")
    }
  }

  /// Page migration here (LinuxSyscalls) and through hostd: the same node list; moving the
  /// pages of a shmem range to the node they are on moves none and keeps their contents; a node
  /// that does not exist is the kernel's refusal, not a count.
  @Test(.enabled(if: which("cc") != nil, "no C compiler"))
  func pageMigrationHereAndThroughHostd() throws {
    let local = LinuxSyscalls()
    let nodes = try local.memoryNodes().get()
    #expect(!nodes.isEmpty)
    let bin = try Self.build(Self.which("cc")!)
    defer { try? FileManager.default.removeItem(atPath: bin) }
    let (remote, p, _) = try Self.connect([bin], arch: .host)
    defer { if p.isRunning { p.terminate() } }
    #expect(try remote.memoryNodes().get() == nodes)
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let word = Array("hpthammer".utf8)
    for sys in [local, remote] as [any Syscalls] {
      let ram = try sys.mmap(length: 16 * page, .sharedAnonymous).get()
      for i in 0..<4 { try sys.poke(ram + i * page, word).get() }
      let here =
        nodes.count == 1 ? 0 : try sys.movePages(ram, length: 16 * page, toNode: nodes[1]).get()
      #expect(here <= 4)
      let back = try sys.movePages(ram, length: 16 * page, toNode: nodes[0]).get()
      #expect(nodes.count == 1 ? back == 0 : back == here, "\(here) \(back)")
      #expect(try sys.peek(ram + 3 * page, count: word.count).get() == word)
      #expect(throws: Errno.ENODEV) {
        try sys.movePages(ram, length: page, toNode: (nodes.max() ?? 0) + 1).get()
      }
      _ = sys.munmap(ram, length: 16 * page)
    }
    #expect(throws: Errno.EFAULT) {
      try remote.movePages(UnsafeMutableRawPointer(bitPattern: 0x1000)!, length: 4096, toNode: 0)
        .get()
    }
  }

  /// The kernel's node list format.
  @Test func nodeListsParseAsTheKernelWritesThem() {
    #expect(parseNodeList("0\n") == [0])
    #expect(parseNodeList("0-1\n") == [0, 1])
    #expect(parseNodeList("0,8\n") == [0, 8])
    #expect(parseNodeList("0-2,8-9") == [0, 1, 2, 8, 9])
    #expect(parseNodeList("") == [])
    #expect(parseNodeList("0-") == nil)
    #expect(parseNodeList("a") == nil)
    #expect(parseNodeList("3-1") == nil)
  }

  /// Something that is not hostd at the other end (here `cat`, echoing the HELLO frame back):
  /// a clear error, not a hang.
  @Test func aChannelThatIsNotHostdIsRefused() throws {
    do {
      let (_, p, _) = try Self.connect(["/bin/cat"], arch: .host)
      p.terminate()
      Issue.record("cat was taken for hostd")
    } catch let e as KVMError {
      #expect(e.ioctl == "hpthammer-hostd HELLO")
    }
  }
}
