#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Follows a growing file (a console log, host.log) like `tail -F`, in bounded memory: each
/// poll returns the complete lines appended since the last one. A truncated or replaced file
/// is read again from its start. Lines longer than `maxLineBytes` are cut.
public final class FileFollower {
  public let path: String
  public static let maxLineBytes = 64 * 1024
  private var fd: Int32 = -1
  private var inode: UInt64 = 0
  private var offset: Int64 = 0
  private var partial: [UInt8] = []
  private var partialDropped = false
  private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

  public init(path: String, fromEnd: Bool = false) throws {
    self.path = path
    try reopen()
    if fromEnd {
      offset = Int64(lseek(fd, 0, SEEK_END))
    }
  }

  deinit { if fd >= 0 { close(fd) } }

  private func reopen() throws {
    if fd >= 0 { close(fd) }
    fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw KmsgError(operation: "open \(path)", errno: errno) }
    var st = stat()
    fstat(fd, &st)
    inode = UInt64(st.st_ino)
    offset = 0
    partial.removeAll()
    partialDropped = false
  }

  /// New complete lines (without newlines), at most `maxBytes` read per call.
  public func poll(maxBytes: Int = 1 << 20) throws -> [String] {
    var st = stat()
    if stat(path, &st) == 0, UInt64(st.st_ino) != inode {
      try reopen()  // rotated or replaced
    } else if fstat(fd, &st) == 0, Int64(st.st_size) < offset {
      try reopen()  // truncated
    }
    var lines: [String] = []
    var budget = maxBytes
    while budget > 0 {
      let n = buffer.withUnsafeMutableBytes {
        pread(fd, $0.baseAddress, min($0.count, budget), off_t(offset))
      }
      if n < 0 {
        if errno == EINTR { continue }
        throw KmsgError(operation: "read \(path)", errno: errno)
      }
      if n == 0 { break }
      offset += Int64(n)
      budget -= n
      for i in 0..<n {
        let b = buffer[i]
        if b == 0x0a {
          lines.append(String(decoding: partial, as: UTF8.self))
          partial.removeAll(keepingCapacity: true)
          partialDropped = false
        } else if partial.count < Self.maxLineBytes {
          partial.append(b)
        } else {
          partialDropped = true
        }
      }
    }
    return lines
  }
}
