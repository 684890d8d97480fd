#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// /dev/kmsg structured records: "pri,seq,ts_usec,flags[,...];text" then " KEY=value" lines.
/// Non-printable bytes in the text come escaped as "\xNN".
public enum KmsgRecord {
  public static func parse(_ bytes: [UInt8], origin: LogOrigin = .host("localhost"))
    -> KernelLogRecord?
  {
    guard let semicolon = bytes.firstIndex(of: UInt8(ascii: ";")) else { return nil }
    let fields = bytes[..<semicolon].split(
      separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
    guard fields.count >= 3, let pri = decimal(fields[0]), let seq = decimal(fields[1]),
      let ts = decimal(fields[2])
    else { return nil }
    var caller: String?
    for field in fields.dropFirst(4) {
      // Newer kernels add "caller=T123" after the flags.
      let text = String(decoding: field, as: UTF8.self)
      if text.hasPrefix("caller=") { caller = String(text.dropFirst(7)) }
    }
    var body = bytes[(semicolon + 1)...]
    if body.last == 0x0a { body = body.dropLast() }
    let lines = body.split(separator: 0x0a, omittingEmptySubsequences: false)
    let text = unescape(lines.first ?? [])
    var continuation: [String] = []
    for line in lines.dropFirst() where !line.isEmpty {
      continuation.append(unescape(line.first == 0x20 ? line.dropFirst() : line))
    }
    return KernelLogRecord(
      sequence: seq, timestampMicros: ts, level: Int(pri & 7), facility: Int(pri >> 3),
      caller: caller,
      text: text, continuation: continuation, origin: origin)
  }

  static func decimal(_ bytes: ArraySlice<UInt8>) -> UInt64? {
    guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
    var value: UInt64 = 0
    for b in bytes {
      guard isDecimal(b) else { return nil }
      let (m, o1) = value.multipliedReportingOverflow(by: 10)
      let (a, o2) = m.addingReportingOverflow(UInt64(b - 0x30))
      if o1 || o2 { return nil }
      value = a
    }
    return value
  }

  static func unescape(_ bytes: ArraySlice<UInt8>) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = bytes.startIndex
    while i < bytes.endIndex {
      if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.endIndex, bytes[i + 1] == UInt8(ascii: "x"),
        isHexDigit(bytes[i + 2]), isHexDigit(bytes[i + 3])
      {
        out.append(hexValue(bytes[i + 2]) << 4 | hexValue(bytes[i + 3]))
        i += 4
        continue
      }
      out.append(bytes[i])
      i += 1
    }
    return String(decoding: out, as: UTF8.self)
  }

  private static func hexValue(_ b: UInt8) -> UInt8 {
    switch b {
    case 0x30...0x39: return b - 0x30
    case 0x61...0x66: return b - 0x61 + 10
    default: return b - 0x41 + 10
    }
  }
}

/// What reading /dev/kmsg yields: a record, or a gap where the ring buffer overwrote records
/// before we read them (read() fails with EPIPE; the count comes from the sequence numbers).
public enum KmsgEvent: Sendable, Hashable {
  case record(KernelLogRecord)
  case gap(lost: UInt64)
}

public struct KmsgError: Error, Sendable, CustomStringConvertible {
  public var operation: String
  public var errno: Int32
  public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

/// Counts records lost between sequence numbers (the ring buffer overwrote them).
public struct KmsgGapTracker: Sendable {
  public private(set) var lastSequence: UInt64?
  public private(set) var totalLost: UInt64 = 0
  public init() {}

  /// Records a sequence number; returns how many records were lost before it, if any.
  public mutating func observe(_ sequence: UInt64) -> UInt64? {
    defer { lastSequence = sequence }
    guard let last = lastSequence, sequence > last &+ 1 else { return nil }
    let lost = sequence - last - 1
    totalLost &+= lost
    return lost
  }
}

/// Reads /dev/kmsg (or a device like it) one record per read(2), without blocking.
public final class KmsgReader {
  public enum Start: Sendable { case beginning, end }
  private let fd: Int32
  private var gaps = KmsgGapTracker()
  private var pendingGap = false
  public let origin: LogOrigin
  private var buffer = [UInt8](repeating: 0, count: 16 * 1024)

  public init(
    path: String = "/dev/kmsg", start: Start = .end, origin: LogOrigin = .host("localhost")
  ) throws {
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else { throw KmsgError(operation: "open \(path)", errno: errno) }
    self.origin = origin
    if start == .end, lseek(fd, 0, SEEK_END) < 0 {
      let e = errno
      close(fd)
      throw KmsgError(operation: "seek \(path)", errno: e)
    }
  }

  deinit { close(fd) }

  /// The next event, or nil when no record is available now.
  public func next() throws -> KmsgEvent? {
    if let record = stash {
      stash = nil
      return .record(record)
    }
    while true {
      let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if n < 0 {
        switch errno {
        case EAGAIN: return nil
        case EINTR: continue
        case EPIPE:
          // Records were overwritten; the next read continues at the oldest available one.
          pendingGap = true
          continue
        default: throw KmsgError(operation: "read", errno: errno)
        }
      }
      if n == 0 { return nil }
      guard let record = KmsgRecord.parse(Array(buffer[0..<n]), origin: origin) else { continue }
      pendingGap = false
      if let seq = record.sequence, let lost = gaps.observe(seq) {
        // Deliver the gap first; the record is returned by the next call.
        stash = record
        return .gap(lost: lost)
      }
      return .record(record)
    }
  }

  private var stash: KernelLogRecord?

  /// All records available now (gaps included), in order.
  public func drain(limit: Int = .max) throws -> [KmsgEvent] {
    var events: [KmsgEvent] = []
    while events.count < limit {
      guard let event = try next() else { break }
      events.append(event)
    }
    return events
  }
}
