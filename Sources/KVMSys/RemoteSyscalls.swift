import Foundation
import KVMHost
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// The raw backend's syscalls made by `hpthammer-hostd` (Guests/hostd/) on the host under test,
/// reached through a byte channel (ssh's stdin/stdout, or a local pipe in tests). Swift has no
/// ppc64le toolchain, so this is how the Swift VMM on a controller drives a POWER host's
/// /dev/kvm, and how it survives the host's crash: the controller keeps running and sees the
/// channel close.
///
/// Memory: every mapping has a local shadow the VMM reads and writes as usual. Before a vCPU's
/// first KVM_RUN, the non-zero pages of guest RAM written so far (the payload) are copied to
/// the host; each KVM_RUN carries the kvm_run page both ways. Pointers inside ioctl arguments
/// (a memslot's userspace_addr, ONE_REG's value address) are translated to the host's.
public final class RemoteSyscalls: Syscalls, @unchecked Sendable {
  public let arch: Arch
  /// "hpthammer-hostd 1 ppc64le": the host's answer to HELLO.
  public private(set) var hello = ""
  private let readFD: Int32
  private let writeFD: Int32
  private let state = Mutex(State())
  private let writeLock = Mutex(())
  /// Held while guest RAM is pushed (pushGuestMemory): a vCPU of one guest must not enter
  /// KVM_RUN while another thread is still writing that guest's payload into its RAM.
  private let pushLock = Mutex(())
  private let kvmRunSync = 2048

  struct Mapping {
    var remote: UInt64
    var length: Int
    /// The vCPU fd whose kvm_run this maps, for a shared mapping.
    var vcpuFD: Int32?
    var pushed = false
  }
  struct Pending {
    var done = false
    var ret: Int64 = 0
    var err: Int32 = 0
    var data: [UInt8] = []
  }
  struct State {
    var nextTag: UInt32 = 1
    var pending: [UInt32: Pending] = [:]
    var mappings: [UInt: Mapping] = [:]
    var closed = false
    var abandoned = false
  }
  private let cond = NSCondition()

  enum Op: UInt32 {
    case hello = 0
    case open, close, ioctlPtr, ioctlVal, mmapAnon, mmapShared, munmap, madvise,
      writeMem, readMem, kvmRun, oneReg, mmapSharedAnon, kick, movePages, memoryNodes
  }

  /// `readFD`/`writeFD`: the channel to hostd (its stdout, its stdin). `arch`: the host's.
  public init(readFD: Int32, writeFD: Int32, arch: Arch) throws(KVMError) {
    self.readFD = readFD
    self.writeFD = writeFD
    self.arch = arch
    let reader = Thread { [self] in readLoop() }
    reader.start()
    // A channel that is not hostd (a shell banner, an old hostd) must not hang the run.
    let r = call(.hello, fd: 0, a: 0, b: 0, data: [], timeoutS: 30)
    guard r.ret >= 0, String(decoding: r.data, as: UTF8.self).hasPrefix("hpthammer-hostd 1")
    else {
      throw KVMError(
        "hpthammer-hostd HELLO", r.err != 0 ? Errno(rawValue: r.err) : Errno(rawValue: 71))
    }
    hello = String(decoding: r.data, as: UTF8.self)
  }

  // MARK: Syscalls

  public func open(_ path: String) -> Result<Int32, Errno> {
    result(call(.open, fd: -1, a: 0, b: 0, data: Array(path.utf8))).map { Int32($0) }
  }

  public func close(_ fd: Int32) -> Result<Int32, Errno> {
    result(call(.close, fd: fd, a: 0, b: 0, data: [])).map { Int32($0) }
  }

  public func ioctl(_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawBufferPointer) -> Result<
    Int32, Errno
  > {
    if request == KVMIoctl.KVM_GET_ONE_REG.number(for: arch)
      || request == KVMIoctl.KVM_SET_ONE_REG.number(for: arch)
    {
      return oneReg(fd, request, arg)
    }
    var bytes = Array(arg)
    if request == KVMIoctl.KVM_SET_USER_MEMORY_REGION.number(for: arch) {
      // userspace_addr (offset 24) names the local shadow; the host's kernel needs its own.
      let local = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 24, as: UInt64.self) }
      guard let remote = remoteAddress(UInt(local)) else { return .failure(.EFAULT) }
      withUnsafeBytes(of: remote.littleEndian) { for i in 0..<8 { bytes[24 + i] = $0[i] } }
    }
    let r = call(.ioctlPtr, fd: fd, a: UInt64(request), b: 0, data: bytes)
    if r.ret >= 0, r.data.count == arg.count {
      arg.copyMemory(from: UnsafeRawBufferPointer(start: r.data, count: r.data.count))
    }
    return result(r).map { Int32($0) }
  }

  public func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Result<Int32, Errno> {
    if request == KVMIoctl.KVM_RUN.number(for: arch) { return kvmRun(fd, request) }
    return result(call(.ioctlVal, fd: fd, a: UInt64(request), b: UInt64(value), data: [])).map {
      Int32($0)
    }
  }

  public func mmap(length: Int, _ mapping: MemoryMapping) -> Result<UnsafeMutableRawPointer, Errno>
  {
    let r: Reply
    var vcpu: Int32?
    switch mapping {
    case .anonymous: r = call(.mmapAnon, fd: -1, a: UInt64(length), b: 0, data: [])
    case .sharedAnonymous: r = call(.mmapSharedAnon, fd: -1, a: UInt64(length), b: 0, data: [])
    case .shared(let fd, let offset):
      r = call(.mmapShared, fd: fd, a: UInt64(length), b: UInt64(offset), data: [])
      vcpu = fd
    }
    guard r.ret != -1 else { return .failure(Errno(rawValue: r.err)) }
    guard
      let local = Glibc.mmap(
        nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
      local != MAP_FAILED
    else {
      _ = call(.munmap, fd: -1, a: UInt64(bitPattern: r.ret), b: UInt64(length), data: [])
      return .failure(.ENOMEM)
    }
    state.withLock {
      $0.mappings[UInt(bitPattern: local)] = Mapping(
        remote: UInt64(bitPattern: r.ret), length: length, vcpuFD: vcpu)
    }
    return .success(local)
  }

  public func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> Result<Int32, Errno> {
    guard let m = state.withLock({ $0.mappings.removeValue(forKey: UInt(bitPattern: address)) })
    else { return .failure(.EINVAL) }
    _ = Glibc.munmap(address, length)
    return result(call(.munmap, fd: -1, a: m.remote, b: UInt64(length), data: [])).map {
      Int32($0)
    }
  }

  /// madvise(2) on the host's pages behind a local shadow range (MADV_DONTNEED: the kernel
  /// invalidates the HPTEs mapping them, the guest faults them back in).
  public func madvise(_ address: UnsafeMutableRawPointer, length: Int, _ advice: MemoryAdvice)
    -> Result<Int32, Errno>
  {
    guard let remote = remoteAddress(UInt(bitPattern: address)) else { return .failure(.EFAULT) }
    return result(call(.madvise, fd: advice.rawValue, a: remote, b: UInt64(length), data: [])).map {
      Int32($0)
    }
  }

  /// The host's memory nodes, read there (hostd's OP_MEMORY_NODES).
  public func memoryNodes() -> Result<[Int32], Errno> {
    let r = call(.memoryNodes, fd: -1, a: 0, b: 0, data: [])
    guard r.ret >= 0 else { return .failure(Errno(rawValue: r.err)) }
    guard let nodes = parseNodeList(String(decoding: r.data, as: UTF8.self)) else {
      return .failure(.EINVAL)
    }
    return .success(nodes)
  }

  /// move_pages(2) of the host's pages behind a local shadow range (hostd's OP_MOVE_PAGES).
  public func movePages(_ address: UnsafeMutableRawPointer, length: Int, toNode node: Int32)
    -> Result<Int, Errno>
  {
    guard let remote = remoteAddress(UInt(bitPattern: address)) else { return .failure(.EFAULT) }
    return result(call(.movePages, fd: node, a: remote, b: UInt64(length), data: [])).map {
      Int($0)
    }
  }

  /// Guest RAM as the remote VMM process sees it (hostd's OP_READ_MEM), not the local shadow.
  public func peek(_ address: UnsafeMutableRawPointer, count: Int) -> Result<[UInt8], Errno> {
    guard let remote = remoteAddress(UInt(bitPattern: address)) else { return .failure(.EFAULT) }
    let r = call(.readMem, fd: -1, a: remote, b: UInt64(count), data: [])
    guard r.ret >= 0 else { return .failure(Errno(rawValue: r.err)) }
    guard r.data.count == count else { return .failure(.EIO) }
    return .success(r.data)
  }

  /// Writes into the remote mapping (hostd's OP_WRITE_MEM) and the local shadow.
  public func poke(_ address: UnsafeMutableRawPointer, _ bytes: [UInt8]) -> Result<Void, Errno> {
    guard let remote = remoteAddress(UInt(bitPattern: address)) else { return .failure(.EFAULT) }
    let r = call(.writeMem, fd: -1, a: remote, b: 0, data: bytes)
    guard r.ret >= 0 else { return .failure(Errno(rawValue: r.err)) }
    bytes.withUnsafeBytes { address.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    return .success(())
  }

  // MARK: -

  private func remoteAddress(_ local: UInt) -> UInt64? {
    state.withLock { s in
      for (base, m) in s.mappings where local >= base && local < base + UInt(m.length) {
        return m.remote + UInt64(local - base)
      }
      return nil
    }
  }

  private func oneReg(_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawBufferPointer)
    -> Result<Int32, Errno>
  {
    let id = arg.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
    let addr = arg.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
    // KVM_REG_SIZE: bits 52-55 hold log2 of the size in bytes.
    let size = 1 << Int((id >> 52) & 0xf)
    guard let p = UnsafeMutableRawPointer(bitPattern: UInt(addr)), size <= 256 else {
      return .failure(.EFAULT)
    }
    let value = Array(UnsafeRawBufferPointer(start: p, count: size))
    let r = call(.oneReg, fd: fd, a: UInt64(request), b: id, data: value)
    if r.ret >= 0, r.data.count == size {
      p.copyMemory(from: r.data, byteCount: size)
    }
    return result(r).map { Int32($0) }
  }

  private func kvmRun(_ fd: Int32, _ request: UInt) -> Result<Int32, Errno> {
    pushGuestMemory()
    guard
      let (local, m) = state.withLock({ s in
        s.mappings.first { $0.value.vcpuFD == fd }.map { ($0.key, $0.value) }
      }),
      let p = UnsafeMutableRawPointer(bitPattern: local)
    else {
      // No kvm_run mapped: the kernel still runs the vCPU; nothing to carry.
      return result(call(.ioctlVal, fd: fd, a: UInt64(request), b: 0, data: [])).map { Int32($0) }
    }
    let n = min(kvmRunSync, m.length)
    let r = call(
      .kvmRun, fd: fd, a: UInt64(request), b: m.remote,
      data: Array(UnsafeRawBufferPointer(start: p, count: n)))
    if r.data.count == n { p.copyMemory(from: r.data, byteCount: n) }
    return result(r).map { Int32($0) }
  }

  /// Copies the non-zero pages of anonymous mappings (guest RAM) not sent yet: what the VMM
  /// wrote before the guest ran (the payload and its parameters). The first KVM_RUN pushes
  /// every guest's RAM; the others wait until it is all there. (Marked pushed and written
  /// outside one lock, a second guest's vCPU ran before its payload arrived: it executed
  /// zeroes at the entry point, took a program interrupt at an empty vector and spun there,
  /// seen on the lab as "the guest did not run for 120 s after it was (re)started".)
  private func pushGuestMemory() {
    pushLock.withLock { _ in pushUnsentGuestMemory() }
  }

  private func pushUnsentGuestMemory() {
    let todo = state.withLock { s -> [(UInt, Mapping)] in
      var out: [(UInt, Mapping)] = []
      for (k, m) in s.mappings where m.vcpuFD == nil && !m.pushed {
        s.mappings[k]!.pushed = true
        out.append((k, m))
      }
      return out
    }
    let page = 4096
    for (base, m) in todo {
      guard let p = UnsafeRawPointer(bitPattern: base) else { continue }
      var off = 0
      while off < m.length {
        let n = min(page, m.length - off)
        let chunk = UnsafeRawBufferPointer(start: p + off, count: n)
        if chunk.contains(where: { $0 != 0 }) {
          _ = call(.writeMem, fd: -1, a: m.remote + UInt64(off), b: 0, data: Array(chunk))
        }
        off += n
      }
    }
  }

  struct Reply {
    var ret: Int64
    var err: Int32
    var data: [UInt8]
  }

  private func result(_ r: Reply) -> Result<Int64, Errno> {
    r.ret < 0 ? .failure(Errno(rawValue: r.err == 0 ? Errno.EIO.rawValue : r.err)) : .success(r.ret)
  }

  private func call(
    _ op: Op, fd: Int32, a: UInt64, b: UInt64, data: [UInt8], timeoutS: Double? = nil
  ) -> Reply {
    let tag: UInt32? = state.withLock { s in
      if s.closed { return nil }
      let t = s.nextTag
      s.nextTag &+= 1
      s.pending[t] = Pending()
      return t
    }
    guard let tag else { return Reply(ret: -1, err: Errno.hostDown.rawValue, data: []) }
    var frame: [UInt8] = []
    frame.reserveCapacity(40 + data.count)
    func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { frame += $0 } }
    put(UInt32(0x5152_4848))
    put(tag)
    put(op.rawValue)
    put(fd)
    put(a)
    put(b)
    put(UInt32(data.count))
    frame += data
    let wrote = writeLock.withLock { _ in writeAll(frame) }
    if !wrote { markClosed() }
    let deadline = timeoutS.map { Date().addingTimeInterval($0) }
    cond.lock()
    while state.withLock({ !($0.pending[tag]?.done ?? true) && !$0.closed }) {
      if let deadline {
        if !cond.wait(until: deadline) { break }
      } else {
        cond.wait()
      }
    }
    cond.unlock()
    let p = state.withLock { $0.pending.removeValue(forKey: tag) }
    guard let p, p.done else {
      return Reply(
        ret: -1, err: (timeoutS != nil ? Errno.ETIMEDOUT : Errno.hostDown).rawValue, data: [])
    }
    return Reply(ret: p.ret, err: p.err, data: p.data)
  }

  private func writeAll(_ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { b in
      var off = 0
      while off < b.count {
        let n = Glibc.write(writeFD, b.baseAddress! + off, b.count - off)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        off += n
      }
      return true
    }
  }

  private func readAll(_ count: Int) -> [UInt8]? {
    var buf = [UInt8](repeating: 0, count: count)
    var off = 0
    while off < count {
      let n = buf.withUnsafeMutableBytes { Glibc.read(readFD, $0.baseAddress! + off, count - off) }
      if n < 0 && errno == EINTR { continue }
      if n <= 0 { return nil }
      off += n
    }
    return buf
  }

  private func readLoop() {
    while let h = readAll(24) {
      let v = h.withUnsafeBytes { b in
        (
          b.loadUnaligned(fromByteOffset: 0, as: UInt32.self),
          b.loadUnaligned(fromByteOffset: 4, as: UInt32.self),
          b.loadUnaligned(fromByteOffset: 8, as: Int64.self),
          b.loadUnaligned(fromByteOffset: 16, as: Int32.self),
          b.loadUnaligned(fromByteOffset: 20, as: UInt32.self)
        )
      }
      guard v.0 == 0x5352_4848, let data = v.4 == 0 ? [] : readAll(Int(v.4)) else { break }
      cond.lock()
      state.withLock {
        $0.pending[v.1] = Pending(done: true, ret: v.2, err: v.3, data: data)
      }
      cond.broadcast()
      cond.unlock()
    }
    markClosed()
  }

  /// The channel closed (hostd exited, ssh dropped, the host died): every call now fails with
  /// EHOSTDOWN, and callers waiting get it too.
  private func markClosed() {
    cond.lock()
    state.withLock { $0.closed = true }
    cond.broadcast()
    cond.unlock()
  }

  public var isClosed: Bool { state.withLock { $0.closed } }

  /// Makes the KVM_RUN on `vcpuFD` return EINTR: now, if a hostd thread is inside it, else at
  /// its next call. hostd answers at once, whatever the vCPU is doing.
  public func kick(vcpuFD: Int32) {
    _ = call(.kick, fd: vcpuFD, a: 0, b: 0, data: [], timeoutS: 10)
  }

  /// Gives up on the host: every call waiting for an answer (a KVM_RUN on a host whose kernel
  /// died under it never gets one) fails now with EHOSTDOWN, and so does every later call.
  public func abandon() {
    state.withLock { $0.abandoned = true }
    markClosed()
  }

  /// Closed by the other side (hostd exited, ssh dropped, the host died), not by `abandon`.
  public var closedByHost: Bool { state.withLock { $0.closed && !$0.abandoned } }
}
