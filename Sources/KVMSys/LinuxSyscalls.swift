import CKVMSys
import Glibc
import KVMHost

/// The real syscalls. The only file in KVMSys that imports the C library (and the ioctl shim), so every errno the
/// ioctl layer reports is read here, right after the call that set it.
public struct LinuxSyscalls: Syscalls {
  public init() {}

  public func open(_ path: String) -> Result<Int32, Errno> {
    check(Glibc.open(path, O_RDWR | O_CLOEXEC))
  }

  public func close(_ fd: Int32) -> Result<Int32, Errno> {
    check(Glibc.close(fd))
  }

  public func ioctl(_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawBufferPointer) -> Result<
    Int32, Errno
  > {
    // SAFETY: `arg` is a live buffer the size of the struct the request encodes; the caller
    // (a handle method) sized it from the same Swift struct as the request number.
    check(ckvmsys_ioctl_ptr(fd, request, arg.baseAddress))
  }

  public func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Result<Int32, Errno> {
    check(ckvmsys_ioctl_value(fd, request, value))
  }

  public func mmap(length: Int, _ mapping: MemoryMapping) -> Result<UnsafeMutableRawPointer, Errno>
  {
    let p: UnsafeMutableRawPointer?
    switch mapping {
    case .shared(let fd, let offset):
      p = Glibc.mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(offset))
    case .anonymous:
      p = Glibc.mmap(
        nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    case .sharedAnonymous:
      p = Glibc.mmap(
        nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    }
    guard let p, p != MAP_FAILED else { return .failure(Errno(rawValue: Glibc.errno)) }
    return .success(p)
  }

  public func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> Result<Int32, Errno> {
    check(Glibc.munmap(address, length))
  }

  public func madvise(_ address: UnsafeMutableRawPointer, length: Int, _ advice: MemoryAdvice)
    -> Result<Int32, Errno>
  {
    check(Glibc.madvise(address, length, advice.rawValue))
  }

  public func memoryNodes() -> Result<[Int32], Errno> {
    let path = "/sys/devices/system/node/has_memory"
    let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
    // A kernel without CONFIG_NUMA has no node directory: one node, 0.
    if fd < 0 {
      return Glibc.errno == ENOENT ? .success([0]) : .failure(Errno(rawValue: Glibc.errno))
    }
    defer { _ = Glibc.close(fd) }
    var buf = [UInt8](repeating: 0, count: 4096)
    let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
    guard n >= 0 else { return .failure(Errno(rawValue: Glibc.errno)) }
    guard let nodes = parseNodeList(String(decoding: buf[..<n], as: UTF8.self)) else {
      return .failure(.EINVAL)
    }
    return .success(nodes)
  }

  public func movePages(_ address: UnsafeMutableRawPointer, length: Int, toNode node: Int32)
    -> Result<Int, Errno>
  {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let count = (length + page - 1) / page
    var pages: [UnsafeMutableRawPointer?] = (0..<count).map { address + $0 * page }
    let nodes = [Int32](repeating: node, count: count)
    var before = [Int32](repeating: -1, count: count)
    var status = [Int32](repeating: -1, count: count)
    let mpolMFMove: Int32 = 1 << 1  // MPOL_MF_MOVE: pages mapped by this process only
    // Nodes nil: where each page is now (a negative errno where it is not present).
    guard ckvmsys_move_pages(UInt(count), &pages, nil, &before, 0) >= 0,
      ckvmsys_move_pages(UInt(count), &pages, nodes, &status, mpolMFMove) >= 0
    else { return .failure(Errno(rawValue: Glibc.errno)) }
    return .success(zip(before, status).count { $0 >= 0 && $0 != node && $1 == node })
  }

  /// -1 means failure with errno set by that very call.
  private func check(_ r: Int32) -> Result<Int32, Errno> {
    r == -1 ? .failure(Errno(rawValue: Glibc.errno)) : .success(r)
  }
}
