/// What kind of kernel failure a report describes, in the kernel's own terms.
public enum CrashKind: String, Sendable, Codable, Hashable, CaseIterable {
  case pagingFault, nullDeref, accessFault, generalProtection, stackSegment, doubleFault
  case divideError, invalidOpcode, alignmentTrap, internalError
  case bug, warning, softLockup, hardLockup, rcuStall, hungTask, taskCantDie, workqueueLockup
  case panic, stackCorruption, kasan, kfence, kmsan, kcsan, ubsan, lockdep, suspiciousRCU
  case listCorruption, badPageState, badRSSCounter, sleepInAtomic, preemptible, badUsercopy
  case refcount, debugObjects, memoryLeak, machineCheck, checkstop, netdevLeak, fileCount
  case rustPanic, userspaceFailure, other

  /// A report a watchdog makes when something did not happen in time (lockup detectors, the
  /// RCU stall detector, khungtaskd, the workqueue watchdog): it measures time, not logic, so
  /// a machine that did not get to run (an emulator starved of CPU) makes one too.
  public var isWatchdogReport: Bool {
    [.softLockup, .hardLockup, .rcuStall, .hungTask, .workqueueLockup].contains(self)
  }
}

/// One crash found in a kernel log, shaped after syzkaller's pkg/report `Report`.
///
/// Title, type, frame, signature and the corruption verdict are worked out when the report is
/// found; the report text and the metadata (CPU, PID, comm, taint, version, modules) are kept
/// as the report's bytes and made from them when asked for (most reports are only titled and
/// deduplicated; a consumer reading them often should copy them once). Every property can
/// still be set; a set value replaces the parsed one.
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
  /// Byte offset of the report's first byte in the scanned input.
  public var start: Int
  /// Byte offset just past the report's last byte.
  public var end: Int
  /// Stable deduplication key: kind and title with addresses and numbers normalised.
  public var signature: String
  public var origin: LogOrigin
  /// The table row that titled this report ("bug/kasan-access", "warning/warn-at"), to trace a
  /// title back to its pattern.
  public var patternID: String = ""

  /// The report's bytes as found (nil for a report made with the memberwise initialiser).
  var body: ReportBody?
  /// Values set through the properties, replacing what `body` holds.
  private var reportOverride: String?
  private var metadataOverride: ReportMetadata?

  /// The report's lines, log prefixes removed.
  public var report: String {
    get { reportOverride ?? body?.reportString ?? "" }
    set { reportOverride = newValue }
  }

  private var metadata: ReportMetadata {
    metadataOverride ?? body?.metadata ?? ReportMetadata()
  }

  private mutating func setMetadata(_ change: (inout ReportMetadata) -> Void) {
    var m = metadata
    change(&m)
    metadataOverride = m
  }

  /// The metadata from one parse (see `CrashContext`).
  public var context: CrashContext {
    let m = metadata
    return CrashContext(
      cpu: m.cpu, pid: m.pid, comm: m.comm, taint: m.taint, kernelVersion: m.kernelVersion,
      moduleList: m.moduleList)
  }

  public var cpu: Int? {
    get { metadata.cpu }
    set { setMetadata { $0.cpu = newValue } }
  }
  public var pid: Int? {
    get { metadata.pid }
    set { setMetadata { $0.pid = newValue } }
  }
  public var comm: String? {
    get { metadata.comm }
    set { setMetadata { $0.comm = newValue } }
  }
  public var taint: String? {
    get { metadata.taint }
    set { setMetadata { $0.taint = newValue } }
  }
  public var kernelVersion: String? {
    get { metadata.kernelVersion }
    set { setMetadata { $0.kernelVersion = newValue } }
  }
  public var modules: [String] {
    get { metadata.modules }
    set { setMetadata { $0.modules = newValue } }
  }

  /// Frames of the report's first stack, innermost first (function names, at most 24).
  /// Computed from the report text on demand: most reports are only titled and deduplicated.
  public var frames: [String] {
    var frames: [String] = []
    forEachFrame { frames.append(String(decoding: $0, as: UTF8.self)) }
    return frames
  }

  /// The bytes of each of `frames` in order, without a String per frame (for output writers).
  public func forEachFrame(_ each: (UnsafeBufferPointer<UInt8>) -> Void) {
    if reportOverride == nil, let body {
      return body.forEachFrame(each)
    }
    var text = report
    text.withUTF8 { buf in
      if let start = stackFramesStart(buf) {
        forEachStackFrame(
          buf, from: start, terminatorLines: terminatorLineStarts(buf, from: start), each)
      }
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
    self.start = start
    self.end = end
    self.signature = signature ?? CrashReport.signature(kind: kind, title: title)
    self.origin = origin
    reportOverride = report
    metadataOverride = ReportMetadata(
      cpu: cpu, pid: pid, comm: comm, taint: taint, kernelVersion: kernelVersion,
      moduleList: ModuleList(names: modules))
  }

  /// A report as found by the scanner: text and metadata stay in `body` until asked for.
  init(
    kind: CrashKind, type: String, title: String, frame: String?, corruptedReason: String?,
    body: ReportBody, start: Int, end: Int, origin: LogOrigin, patternID: String
  ) {
    self.kind = kind
    self.type = type
    self.title = title
    self.frame = frame
    self.corrupted = corruptedReason != nil
    self.corruptedReason = corruptedReason
    self.start = start
    self.end = end
    self.signature = CrashReport.signature(kind: kind, title: title)
    self.origin = origin
    self.patternID = patternID
    self.body = body
  }

  private enum CodingKeys: String, CodingKey {
    case kind, type, title, frame, corrupted, corruptedReason, report, start, end, signature
    case cpu, pid, comm, taint, kernelVersion, modules, origin, patternID
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(
      kind: try c.decode(CrashKind.self, forKey: .kind),
      type: try c.decode(String.self, forKey: .type),
      title: try c.decode(String.self, forKey: .title),
      frame: try c.decodeIfPresent(String.self, forKey: .frame),
      corrupted: try c.decode(Bool.self, forKey: .corrupted),
      corruptedReason: try c.decodeIfPresent(String.self, forKey: .corruptedReason),
      report: try c.decode(String.self, forKey: .report),
      start: try c.decode(Int.self, forKey: .start),
      end: try c.decode(Int.self, forKey: .end),
      signature: try c.decode(String.self, forKey: .signature),
      cpu: try c.decodeIfPresent(Int.self, forKey: .cpu),
      pid: try c.decodeIfPresent(Int.self, forKey: .pid),
      comm: try c.decodeIfPresent(String.self, forKey: .comm),
      taint: try c.decodeIfPresent(String.self, forKey: .taint),
      kernelVersion: try c.decodeIfPresent(String.self, forKey: .kernelVersion),
      modules: try c.decode([String].self, forKey: .modules),
      origin: try c.decode(LogOrigin.self, forKey: .origin))
    patternID = try c.decode(String.self, forKey: .patternID)
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(kind, forKey: .kind)
    try c.encode(type, forKey: .type)
    try c.encode(title, forKey: .title)
    try c.encodeIfPresent(frame, forKey: .frame)
    try c.encode(corrupted, forKey: .corrupted)
    try c.encodeIfPresent(corruptedReason, forKey: .corruptedReason)
    try c.encode(report, forKey: .report)
    try c.encode(start, forKey: .start)
    try c.encode(end, forKey: .end)
    try c.encode(signature, forKey: .signature)
    let m = metadata
    try c.encodeIfPresent(m.cpu, forKey: .cpu)
    try c.encodeIfPresent(m.pid, forKey: .pid)
    try c.encodeIfPresent(m.comm, forKey: .comm)
    try c.encodeIfPresent(m.taint, forKey: .taint)
    try c.encodeIfPresent(m.kernelVersion, forKey: .kernelVersion)
    try c.encode(m.modules, forKey: .modules)
    try c.encode(origin, forKey: .origin)
    try c.encode(patternID, forKey: .patternID)
  }

  /// Equal when every public property is equal, however it was obtained.
  public static func == (a: CrashReport, b: CrashReport) -> Bool {
    a.kind == b.kind && a.type == b.type && a.title == b.title && a.frame == b.frame
      && a.corrupted == b.corrupted && a.corruptedReason == b.corruptedReason
      && a.start == b.start && a.end == b.end && a.signature == b.signature
      && a.origin == b.origin && a.patternID == b.patternID && a.report == b.report
      && a.metadata == b.metadata
  }

  /// A subset of what `==` compares (the text and metadata are left to `==`).
  public func hash(into hasher: inout Hasher) {
    hasher.combine(kind)
    hasher.combine(title)
    hasher.combine(start)
    hasher.combine(end)
    hasher.combine(signature)
  }

  /// FNV-1a over the kind and the title with hex addresses and numbers replaced, so the same
  /// bug hit at other addresses, CPUs or sizes collapses to one key.
  public static func signature(kind: CrashKind, title: String) -> String {
    // The normalised title is hashed as it is produced: no intermediate strings.
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    @inline(__always) func mix(_ byte: UInt8) {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    for byte in kind.rawValue.utf8 { mix(byte) }
    mix(0)
    TitleNormalizer.normalize(title) { mix($0) }
    let digits = Array("0123456789abcdef".utf8)
    return String(unsafeUninitializedCapacity: 16) { out in
      for i in 0..<16 { out[i] = digits[Int((hash >> UInt64(60 - 4 * i)) & 0xf)] }
      return 16
    }
  }
}

private let addrBytes = Array("ADDR".utf8)
private let numBytes = Array("NUM".utf8)

/// Replaces addresses and numbers in titles, the way syzkaller keeps titles stable ("ADDR", "NUM").
enum TitleNormalizer {
  static func normalize(_ text: String) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(text.utf8.count)
    normalize(text) { out.append($0) }
    return String(decoding: out, as: UTF8.self)
  }

  /// The normalised text's bytes, one at a time.
  @inline(__always) static func normalize(_ text: String, _ emit: (UInt8) -> Void) {
    var text = text
    text.withUTF8 { normalize($0, emit) }
  }

  static func normalize(_ bytes: UnsafeBufferPointer<UInt8>, _ emit: (UInt8) -> Void) {
    var i = 0
    @inline(__always) func isWordByte(_ b: UInt8) -> Bool {
      (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7a) || b == 0x5f
    }
    while i < bytes.count {
      let b = bytes[i]
      let atWordStart = i == 0 || !isWordByte(bytes[i - 1])
      if atWordStart, b == 0x30, i + 1 < bytes.count, bytes[i + 1] | 0x20 == 0x78 {
        var j = i + 2
        while j < bytes.count, isHexDigit(bytes[j]) { j += 1 }
        if j > i + 2, j == bytes.count || !isWordByte(bytes[j]) {
          for a in addrBytes { emit(a) }
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
            for n in numBytes { emit(n) }
            i = j
            continue
          }
          if j - i >= 8 {
            for a in addrBytes { emit(a) }
            i = j
            continue
          }
        }
      }
      emit(b)
      i += 1
    }
  }
}

@inline(__always) func isHexDigit(_ b: UInt8) -> Bool {
  (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46)
}

/// Where a crash happened, from one parse of the report (each of `CrashReport`'s `cpu`, `pid`,
/// `comm`, `taint`, `kernelVersion` and `modules` parses the report on its own: a consumer
/// that needs several, like `scan`'s output, asks for this once).
public struct CrashContext: Sendable, Hashable {
  public var cpu: Int?
  public var pid: Int?
  public var comm: String?
  public var taint: String?
  public var kernelVersion: String?
  /// The module names, split from the printed list when asked for.
  public var moduleList: ModuleList
  public var modules: [String] { moduleList.names }
}
