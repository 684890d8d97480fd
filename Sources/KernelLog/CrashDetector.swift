/// Finds kernel crash reports in console output, titled the way syzkaller titles them.
public struct CrashDetector: Sendable {
  /// The search and format tables, built once and shared by every copy. A detector is copied
  /// into each report's builder: one reference counts once per copy where twelve arrays
  /// counted twelve times, atomically, on counts both scan threads update.
  private final class Tables: Sendable {
    let table: [OopsPattern]
    let needles: NeedleSet
    let formatLines: [[LinePattern]]
    let suppressionPatterns: [[LinePattern]]
    let patternIDs: [[String]]
    let catchAll: [[Bool]]

    init(table: [OopsPattern]) {
      self.table = table
      needles = NeedleSet(CrashDetector.needleList(table))
      formatLines = table.map { $0.formats.map(\.line) }
      suppressionPatterns = table.map(\.suppressions)
      patternIDs = table.map { oops in oops.formats.map { oops.id + "/" + $0.id } }
      catchAll = table.map { oops in oops.formats.map { $0.id.hasSuffix("-catchall") } }
    }
  }
  private let tables: Tables

  var table: [OopsPattern] { tables.table }
  /// Every header (id: its pattern) and report keyword (id: `~flag bit`), searched at once.
  var needles: NeedleSet { tables.needles }
  /// The needles as `needles` was built from them (tests compare it with a plain search).
  var needleList: [(bytes: [UInt8], id: Int)] { Self.needleList(table) }
  /// Each pattern's format header lines and suppressions, flattened for the per-line path.
  var formatLines: [[LinePattern]] { tables.formatLines }
  var suppressionPatterns: [[LinePattern]] { tables.suppressionPatterns }
  /// "pattern/format" ids, made once rather than per report.
  var patternIDs: [[String]] { tables.patternIDs }
  /// Formats that take any header line no other format takes apart ("BUG: {R}"): a line
  /// grep would count is still a crash, titled by its own text, but a later header of the
  /// same line with a specific format wins.
  var catchAll: [[Bool]] { tables.catchAll }

  /// A report is cut after this many lines or bytes: bounded memory on endless output.
  public var maxReportLines = 800
  public var maxReportBytes = 256 * 1024

  /// A detector for the default table (its search tables are built once per process).
  public init() {
    self = Self.standard
  }

  private static let standard = CrashDetector(table: defaultOopsTable)

  init(table: [OopsPattern]) {
    tables = Tables(table: table)
  }

  /// Every header (id: its pattern) and report keyword (id: `~flag bit`) of `table`.
  private static func needleList(_ table: [OopsPattern]) -> [(bytes: [UInt8], id: Int)] {
    var list: [(bytes: [UInt8], id: Int)] = []
    for (i, pattern) in table.enumerated() {
      for header in pattern.headers { list.append((header, i)) }
    }
    for (bit, keywords) in reportKeywords.enumerated() {
      for keyword in keywords { list.append((keyword, ~bit)) }
    }
    return list
  }

  /// The crash header patterns as plain strings (for comparing with grep).
  public var headerStrings: [String] {
    table.flatMap { $0.headers.map { String(decoding: $0, as: UTF8.self) } }
  }

  public func scan(_ log: [UInt8], origin: LogOrigin = .host("localhost")) -> [CrashReport] {
    var scanner = StreamingCrashScanner(detector: self, origin: origin)
    var reports: [CrashReport] = []
    log.withUnsafeBufferPointer { buf in
      scanner.feedLines(buf, 0, buf.count, into: &reports)
    }
    reports += scanner.finish()
    return reports
  }

  public func scan(_ log: String, origin: LogOrigin = .host("localhost")) -> [CrashReport] {
    scan(Array(log.utf8), origin: origin)
  }

  /// Scans records from any reader, as their `dmesgLine`s; offsets count those lines and one
  /// newline each. Continuation lines (kmsg dictionaries) are not part of the console text.
  public func scan(records: [KernelLogRecord], origin: LogOrigin? = nil) -> [CrashReport] {
    var scanner = StreamingCrashScanner(
      detector: self, origin: origin ?? records.first?.origin ?? .host("localhost"))
    var reports: [CrashReport] = []
    for record in records {
      let line =
        record.caller.map { caller -> String in
          let stamped = record.dmesgLine
          guard record.timestampMicros != nil, let close = stamped.firstIndex(of: "]") else {
            return stamped
          }
          let after = stamped.index(after: close)
          return String(stamped[..<after]) + "[\(caller)]" + String(stamped[after...])
        } ?? record.dmesgLine
      reports += scanner.feed(line: line)
    }
    return reports + scanner.finish()
  }

  /// The first crash header in line text [lo, hi): pattern index and header position.
  func findHeader(_ buf: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int, from: Int? = nil) -> (
    Int, Int
  )? {
    guard hi - lo >= 2, let base = buf.baseAddress else { return nil }
    var start = from ?? lo
    while let at = nextHeaderBytes(base, start, hi) {
      // A header starts a word: "DEBUG:" is not "BUG:".
      if at.position == lo || !isAlnum(base[at.position - 1]) { return (at.pattern, at.position) }
      start = at.position + 1
    }
    return nil
  }

  /// The first position in [from, to) where some header's bytes occur, with its pattern: no
  /// word or line checks.
  @inline(__always)
  func nextHeaderBytes(_ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int) -> (
    pattern: Int, position: Int
  )? {
    needles.first(base, from, to) { $0 >= 0 }.map { ($0.id, $0.position) }
  }

  /// The first position in [from, to) where a header's or a report keyword's bytes occur.
  @inline(__always)
  func nextNeedle(_ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int) -> Int? {
    needles.first(base, from, to) { _ in true }?.position
  }

  /// The report keywords (`ReportKeyword` bits) in line text [lo, hi).
  func keywordFlags(_ buf: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int) -> UInt8 {
    guard let base = buf.baseAddress else { return 0 }
    var flags: UInt8 = 0
    var start = lo
    while let hit = needles.first(base, start, hi, { $0 < 0 }) {
      needles.all(at: hit.position, base, hi) { id in
        if id < 0 { flags |= 1 << UInt8(~id) }
      }
      start = hit.position + 1
    }
    return flags
  }

  /// The first format of `pattern` whose header line matches, unless suppressed.
  func matchFormat(_ pattern: Int, _ text: UnsafeBufferPointer<UInt8>) -> (Int, [String])? {
    // One pass builds the line's bloom; formats whose literals are missing from it are ruled
    // out by bit tests. Through buffer pointers: a pattern is borrowed, not copied (and
    // retained), per look-alike line.
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: LineBloom.size) { table in
      matchFormat(pattern, text, LineBloom(text, table: table.baseAddress!))
    }
  }

  private func matchFormat(
    _ pattern: Int, _ text: UnsafeBufferPointer<UInt8>, _ bloom: LineBloom
  ) -> (Int, [String])? {
    let suppressed = suppressionPatterns[pattern].withUnsafeBufferPointer { patterns in
      patterns.indices.contains { patterns[$0].mayMatch(bloom) && patterns[$0].match(text) != nil }
    }
    if suppressed { return nil }
    return formatLines[pattern].withUnsafeBufferPointer { patterns in
      for i in patterns.indices where patterns[i].mayMatch(bloom) {
        if let captures = patterns[i].match(text) { return (i, captures) }
      }
      return nil
    }
  }
}

@inline(__always) func isAlnum(_ b: UInt8) -> Bool {
  (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7a)
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

@inline(__always) func memchrNewline(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
  guard let hit = memchr(p, 0x0a, n) else { return nil }
  return UnsafeRawPointer(hit) - UnsafeRawPointer(p)
}

/// The last newline in `p[0..<n]` (Glibc's memrchr is not visible to Swift): eight bytes at
/// a time from the end (a frame's '+' or a header is usually tens of bytes into its line).
@inline(__always) func lastNewline(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
  let raw = UnsafeRawPointer(p)
  let low7: UInt64 = 0x7f7f_7f7f_7f7f_7f7f
  var i = n
  while i >= 8 {
    let x =
      UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i &- 8, as: UInt64.self))
      ^ 0x0a0a_0a0a_0a0a_0a0a
    // The top bit of each byte that is zero (a newline), exactly: no borrow between bytes.
    let zero = ~(((x & low7) &+ low7) | x | low7)
    if zero != 0 { return i &- 8 &+ (63 &- zero.leadingZeroBitCount) &>> 3 }
    i &-= 8
  }
  while i > 0 {
    i &-= 1
    if p[i] == 0x0a { return i }
  }
  return nil
}
