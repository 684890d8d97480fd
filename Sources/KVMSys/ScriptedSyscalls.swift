import KVMHost
import Synchronization

/// A `Syscalls` for tests: records every call with its arguments and answers open, ioctl and
/// mmap from a script, in order (e.g. PREPARE answering 100, 100, 0, then ENOSPC). close and
/// munmap are recorded and succeed, since handles make them from deinit at times a test does
/// not choose. A call the script did not foresee fails with ENOSYS, so a test that forgot one
/// fails instead of passing on a default.
public final class ScriptedSyscalls: Syscalls {
  /// One recorded call. Pointer arguments are recorded as the bytes they held on entry.
  public enum Call: Hashable, Sendable {
    case open(String)
    case close(Int32)
    case ioctl(fd: Int32, request: UInt, arg: [UInt8])
    case ioctlValue(fd: Int32, request: UInt, value: UInt)
    case mmap(length: Int, MemoryMapping)
    case munmap(length: Int)
    /// madvise of `length` bytes at `offset` into the mapping made `mapping` calls of mmap ago
    /// is not recorded as an address (it differs per run): the offset into the last mapping
    /// that contains it, or -1.
    case madvise(offset: Int, length: Int, MemoryAdvice)
  }

  /// One scripted answer: the result, and for a pointer argument the bytes the "kernel"
  /// writes back into it (KVM_PPC_ALLOCATE_HTAB's order, KVM_GET_SREGS's struct).
  public struct Answer: Sendable {
    public var result: Result<Int32, Errno>
    public var out: [UInt8]?
    public static func returns(_ value: Int32) -> Answer { Answer(result: .success(value)) }
    public static func fails(_ errno: Errno) -> Answer { Answer(result: .failure(errno)) }
    public static func writes<T>(_ value: T, returning r: Int32 = 0) -> Answer {
      Answer(result: .success(r), out: withUnsafeBytes(of: value) { Array($0) })
    }
  }

  private struct State {
    var script: [Answer] = []
    var calls: [Call] = []
    var mappings: [UInt: Int] = [:]
    var mappingOrder: [UInt] = []
    var lastMapping: UInt?
  }
  private let state = Mutex(State())

  public init(_ script: [Answer] = []) {
    state.withLock { $0.script = script }
  }

  /// Appends answers to the script.
  public func script(_ answers: Answer...) {
    state.withLock { $0.script += answers }
  }

  /// Every call so far, in order.
  public var calls: [Call] { state.withLock { $0.calls } }

  /// Answers not consumed yet.
  public var unusedAnswers: Int { state.withLock { $0.script.count } }

  /// The address of the live mapping of `length` bytes made last (a vCPU's kvm_run), so a
  /// test can write what KVM would write there before KVM_RUN returns.
  public func lastMapping() -> UnsafeMutableRawPointer? {
    guard let a = state.withLock({ $0.lastMapping }) else { return nil }
    return UnsafeMutableRawPointer(bitPattern: a)
  }

  private func next(_ call: Call) -> Answer {
    state.withLock { s in
      s.calls.append(call)
      return s.script.isEmpty ? .fails(.ENOSYS) : s.script.removeFirst()
    }
  }

  public func open(_ path: String) -> Result<Int32, Errno> {
    next(.open(path)).result
  }

  public func close(_ fd: Int32) -> Result<Int32, Errno> {
    state.withLock { $0.calls.append(.close(fd)) }
    return .success(0)
  }

  public func ioctl(_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawBufferPointer) -> Result<
    Int32, Errno
  > {
    let a = next(.ioctl(fd: fd, request: request, arg: Array(arg)))
    if let out = a.out {
      precondition(out.count <= arg.count, "scripted answer larger than the ioctl's argument")
      arg.copyBytes(from: out)
    }
    return a.result
  }

  public func ioctl(_ fd: Int32, _ request: UInt, value: UInt) -> Result<Int32, Errno> {
    next(.ioctlValue(fd: fd, request: request, value: value)).result
  }

  public func mmap(length: Int, _ mapping: MemoryMapping) -> Result<UnsafeMutableRawPointer, Errno>
  {
    switch next(.mmap(length: length, mapping)).result {
    case .failure(let e): return .failure(e)
    case .success:
      // Real, zeroed memory so a handle can read and write its kvm_run as with the kernel's.
      let p = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 4096)
      p.initializeMemory(as: UInt8.self, repeating: 0, count: length)
      state.withLock {
        $0.mappings[UInt(bitPattern: p)] = length
        $0.mappingOrder.append(UInt(bitPattern: p))
        $0.lastMapping = UInt(bitPattern: p)
      }
      return .success(p)
    }
  }

  public func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> Result<Int32, Errno> {
    let known = state.withLock { s in
      s.calls.append(.munmap(length: length))
      if s.lastMapping == UInt(bitPattern: address) { s.lastMapping = nil }
      return s.mappings.removeValue(forKey: UInt(bitPattern: address)) != nil
    }
    if known { address.deallocate() }
    return known ? .success(0) : .failure(.EINVAL)
  }

  /// Answered from the script like ioctl (a test decides whether madvise fails).
  public func madvise(_ address: UnsafeMutableRawPointer, length: Int, _ advice: MemoryAdvice)
    -> Result<Int32, Errno>
  {
    let a = UInt(bitPattern: address)
    let offset = state.withLock { s -> Int in
      for base in s.mappingOrder.reversed() {
        if let len = s.mappings[base], a >= base, a + UInt(length) <= base + UInt(len) {
          return Int(a - base)
        }
      }
      return -1
    }
    return next(.madvise(offset: offset, length: length, advice)).result
  }
}
