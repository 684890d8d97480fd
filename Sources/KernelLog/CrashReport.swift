/// What kind of kernel failure a report describes, in the kernel's own terms.
public enum CrashKind: String, Sendable, Codable, Hashable, CaseIterable {
  case pagingFault, nullDeref, accessFault, generalProtection, stackSegment, doubleFault
  case divideError, invalidOpcode, alignmentTrap, internalError
  case bug, warning, softLockup, hardLockup, rcuStall, hungTask, taskCantDie, workqueueLockup
  case panic, stackCorruption, kasan, kfence, kmsan, kcsan, ubsan, lockdep, suspiciousRCU
  case listCorruption, badPageState, badRSSCounter, sleepInAtomic, preemptible, badUsercopy
  case refcount, debugObjects, memoryLeak, machineCheck, checkstop, netdevLeak, fileCount
  case rustPanic, userspaceFailure, other
}

/// One crash found in a kernel log, shaped after syzkaller's pkg/report `Report`.
public struct CrashReport: Sendable, Codable, Hashable {
  public var kind: CrashKind
  /// syzkaller's crash type: "BUG", "WARNING", "HANG", "LOCKDEP", "MEMORY_SAFETY_BUG", "DoS", ...
  public var type: String
  /// Title in syzkaller's conventions ("WARNING in kvm_vm_ioctl_resize_hpt_commit").
  public var title: String
  /// The guilty frame (function name only), when one was found.
  public var frame: String?
  public var corrupted: Bool
  public var corruptedReason: String?
  /// The report's lines, log prefixes removed.
  public var report: String
  /// Byte offset of the report's first byte in the scanned input.
  public var start: Int
  /// Byte offset just past the report's last byte.
  public var end: Int
  /// Stable deduplication key: kind and title with addresses and numbers normalised.
  public var signature: String
  public var cpu: Int?
  public var pid: Int?
  public var comm: String?
  public var taint: String?
  public var kernelVersion: String?
  public var modules: [String]
  public var origin: LogOrigin
  /// The table row that titled this report ("bug/kasan-access", "warning/warn-at"), to trace a
  /// title back to its pattern.
  public var patternID: String = ""
  /// Frames of the report's first stack, innermost first (function names, at most 24).
  /// Computed from `report` on demand: most reports are only titled and deduplicated.
  public var frames: [String] {
    var text = report
    return text.withUTF8 { buf in
      var frames: [String] = []
      var inStack = false
      var start = 0
      while start <= buf.count, frames.count < 24 {
        var end = start
        while end < buf.count, buf[end] != 0x0a { end += 1 }
        let line = UnsafeBufferPointer(rebasing: buf[start..<end])
        if !inStack {
          inStack = stackKeywordList.contains { indexOf(line, $0, from: 0) != nil }
        } else {
          let t = classifyTraceLine(line)
          if t.role == .frame, !t.questionable, let f = t.function(in: line) { frames.append(f) }
        }
        start = end + 1
      }
      return frames
    }
  }

  public init(
    kind: CrashKind, type: String, title: String, frame: String? = nil, corrupted: Bool = false,
    corruptedReason: String? = nil, report: String, start: Int, end: Int, signature: String? = nil,
    cpu: Int? = nil, pid: Int? = nil, comm: String? = nil, taint: String? = nil,
    kernelVersion: String? = nil, modules: [String] = [], origin: LogOrigin = .host("localhost")
  ) {
    self.kind = kind
    self.type = type
    self.title = title
    self.frame = frame
    self.corrupted = corrupted
    self.corruptedReason = corruptedReason
    self.report = report
    self.start = start
    self.end = end
    self.signature = signature ?? CrashReport.signature(kind: kind, title: title)
    self.cpu = cpu
    self.pid = pid
    self.comm = comm
    self.taint = taint
    self.kernelVersion = kernelVersion
    self.modules = modules
    self.origin = origin
  }

  /// FNV-1a over the kind and the title with hex addresses and numbers replaced, so the same
  /// bug hit at other addresses, CPUs or sizes collapses to one key.
  public static func signature(kind: CrashKind, title: String) -> String {
    let normalized = TitleNormalizer.normalize(title)
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ byte: UInt8) {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    for byte in kind.rawValue.utf8 { mix(byte) }
    mix(0)
    for byte in normalized.utf8 { mix(byte) }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
  }
}

private let addrBytes = Array("ADDR".utf8)
private let numBytes = Array("NUM".utf8)

/// Replaces addresses and numbers in titles, the way syzkaller keeps titles stable ("ADDR", "NUM").
enum TitleNormalizer {
  static func normalize(_ text: String) -> String {
    let bytes = Array(text.utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = 0
    func isWordByte(_ b: UInt8) -> Bool {
      (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7a) || b == 0x5f
    }
    while i < bytes.count {
      let b = bytes[i]
      let atWordStart = i == 0 || !isWordByte(bytes[i - 1])
      if atWordStart, b == 0x30, i + 1 < bytes.count, bytes[i + 1] | 0x20 == 0x78 {
        var j = i + 2
        while j < bytes.count, isHexDigit(bytes[j]) { j += 1 }
        if j > i + 2, j == bytes.count || !isWordByte(bytes[j]) {
          out.append(contentsOf: addrBytes)
          i = j
          continue
        }
      }
      if atWordStart, isHexDigit(b) {
        // A run of hex digits that is a whole word: an address if long, a number if decimal.
        var j = i
        var allDecimal = true
        while j < bytes.count, isHexDigit(bytes[j]) {
          if bytes[j] > 0x39 { allDecimal = false }
          j += 1
        }
        if j == bytes.count || !isWordByte(bytes[j]) {
          if allDecimal {
            out.append(contentsOf: numBytes)
            i = j
            continue
          }
          if j - i >= 8 {
            out.append(contentsOf: addrBytes)
            i = j
            continue
          }
        }
      }
      out.append(b)
      i += 1
    }
    return String(decoding: out, as: UTF8.self)
  }
}

@inline(__always) func isHexDigit(_ b: UInt8) -> Bool {
  (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46)
}
