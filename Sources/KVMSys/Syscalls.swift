import KVMHost

/// The syscalls the ioctl layer makes, as a seam: `LinuxSyscalls` makes them for real,
/// `ScriptedSyscalls` records them and replays answers for tests. Every call returns the
/// kernel's result or the errno taken right after that call, never a stale global errno.
/// Retrying on EINTR is the caller's visible choice (`retryOnInterrupt:` on the handles).
public protocol Syscalls: Sendable {
  /// open(2) with O_RDWR | O_CLOEXEC: the only mode the KVM device files are opened in.
  func open(_ path: String) -> Result<Int32, Errno>
  func close(_ fd: Int32) -> Result<Int32, Errno>
  /// ioctl(2) whose argument is a pointer to `arg` (a struct the kernel reads and/or writes).
  func ioctl(_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawBufferPointer) -> Result<
    Int32, Errno
  >
  /// ioctl(2) whose argument is a plain integer (KVM_CREATE_VM's type, KVM_CHECK_EXTENSION's
  /// capability, KVM_CREATE_VCPU's id), or none (0).
  func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Result<Int32, Errno>
  /// mmap(2) of `length` bytes, read/write.
  func mmap(length: Int, _ mapping: MemoryMapping) -> Result<UnsafeMutableRawPointer, Errno>
  func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> Result<Int32, Errno>
  /// madvise(2) of a range of a mapping (page aligned).
  func madvise(_ address: UnsafeMutableRawPointer, length: Int, _ advice: MemoryAdvice) -> Result<
    Int32, Errno
  >
  /// The NUMA nodes that have memory (/sys/devices/system/node/has_memory), in order.
  func memoryNodes() -> Result<[Int32], Errno>
  /// move_pages(2) with MPOL_MF_MOVE: every page of [address, address+length) that is present
  /// moves to `node` (page migration: the MMU notifier, then a new page with the same
  /// contents). Returns how many pages moved (present on another node before, on `node` now).
  func movePages(_ address: UnsafeMutableRawPointer, length: Int, toNode node: Int32) -> Result<
    Int, Errno
  >
  /// The architecture of the kernel the calls reach, which decides the ioctl numbers: this
  /// host's (the default), or a remote POWER host's for `RemoteSyscalls`.
  var arch: Arch { get }
  /// Bytes of a mapping made through these calls, read and written where the mapping really
  /// is (a remote host's for `RemoteSyscalls`); defaults: this process's memory.
  func peek(_ address: UnsafeMutableRawPointer, count: Int) -> Result<[UInt8], Errno>
  func poke(_ address: UnsafeMutableRawPointer, _ bytes: [UInt8]) -> Result<Void, Errno>
}

/// The madvise(2) advice the raw backend gives.
public enum MemoryAdvice: Int32, Sendable, Hashable {
  /// MADV_DONTNEED (4): drop the pages from the process's page tables. The kernel's MMU
  /// notifier (invalidate_range_start) makes KVM-HV unmap every HPTE of those pages; the guest
  /// faults them back in. On a shared mapping the contents stay in the shmem object.
  case dontNeed = 4
  /// MADV_REMOVE (9): free the pages of a shared mapping (punch a hole in the shmem object);
  /// the MMU notifier runs as for MADV_DONTNEED, and the pages come back zeroed.
  case remove = 9
  /// MADV_PAGEOUT (21, Linux 5.4): reclaim the pages now. Reclaim unmaps them through the rmap
  /// (try_to_unmap: the MMU notifier from another path than madvise's own zap) and writes them
  /// to swap where the host has swap; a later access faults in a new page, same contents.
  case pageout = 21
}

/// What an mmap maps: a file (a vCPU fd's kvm_run, shared) or anonymous memory (guest RAM).
public enum MemoryMapping: Sendable, Hashable {
  /// MAP_SHARED of `fd` at `offset`.
  case shared(fd: Int32, offset: Int)
  /// MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE.
  case anonymous
  /// MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE: shmem-backed memory. Guest RAM is mapped this
  /// way so that MADV_DONTNEED unmaps pages (MMU notifier, HPTE invalidation) without
  /// discarding what the guest wrote (on a private anonymous mapping it would read zeroes).
  case sharedAnonymous
}

extension Syscalls {
  public var arch: Arch { .host }

  /// A seam that models no NUMA (the scripted and recording test seams).
  public func memoryNodes() -> Result<[Int32], Errno> { .failure(.ENOSYS) }
  public func movePages(_ address: UnsafeMutableRawPointer, length: Int, toNode node: Int32)
    -> Result<Int, Errno>
  { .failure(.ENOSYS) }

  /// Reads `count` bytes of a mapping this process made (on a remote host: of the mapping
  /// there, not of the local shadow).
  public func peek(_ address: UnsafeMutableRawPointer, count: Int) -> Result<[UInt8], Errno> {
    .success(Array(UnsafeRawBufferPointer(start: address, count: count)))
  }
  /// Writes bytes into a mapping this process made (on a remote host: into the mapping there).
  public func poke(_ address: UnsafeMutableRawPointer, _ bytes: [UInt8]) -> Result<Void, Errno> {
    bytes.withUnsafeBytes { address.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    return .success(())
  }

  /// Calls `body` until it returns something other than EINTR, if asked to.
  func retrying<T>(_ retryOnInterrupt: Bool, _ body: () -> Result<T, Errno>) -> Result<T, Errno> {
    while true {
      let r = body()
      if retryOnInterrupt, case .failure(.EINTR) = r { continue }
      return r
    }
  }
}

/// The kernel's node list format (cpulist_parse: "0", "0-1", "0,8", "0-3,8-11"), as in
/// /sys/devices/system/node/has_memory; nil for anything else.
public func parseNodeList(_ text: String) -> [Int32]? {
  let t = text.filter { !$0.isWhitespace }
  guard !t.isEmpty else { return [] }
  var out: [Int32] = []
  for part in t.split(separator: ",", omittingEmptySubsequences: false) {
    let ends = part.split(separator: "-", omittingEmptySubsequences: false).map { Int32($0) }
    switch ends.count {
    case 1:
      guard let a = ends[0] else { return nil }
      out.append(a)
    case 2:
      guard let a = ends[0], let b = ends[1], a <= b, b - a < 4096 else { return nil }
      out += Array(a...b)
    default: return nil
    }
  }
  return out
}
