/// Finds kernel crash reports in console output, titled the way syzkaller titles them.
public struct CrashDetector: Sendable {
  let table: [OopsPattern]
  /// Header candidates by their first two bytes; a line is only compared against headers whose
  /// first two bytes occur in it.
  let pairCandidates: [[(pattern: Int, header: [UInt8])]]
  /// Index into `pairCandidates` for each of the 65536 byte pairs, -1 when none.
  let pairSlot: [Int16]
  /// Bit set over the 65536 byte pairs that begin some header.
  let pairBits: [UInt64]
  /// Each pattern's format header lines and suppressions, flattened for the per-line path.
  let formatLines: [[LinePattern]]
  let suppressionPatterns: [[LinePattern]]

  /// A report is cut after this many lines or bytes: bounded memory on endless output.
  public var maxReportLines = 800
  public var maxReportBytes = 256 * 1024

  public init() {
    self.init(table: defaultOopsTable)
  }

  init(table: [OopsPattern]) {
    self.table = table
    var byPair: [UInt16: [(pattern: Int, header: [UInt8])]] = [:]
    var bits = [UInt64](repeating: 0, count: 1024)
    for (i, pattern) in table.enumerated() {
      for header in pattern.headers where header.count >= 2 {
        let pair = UInt16(header[0]) << 8 | UInt16(header[1])
        byPair[pair, default: []].append((i, header))
        bits[Int(pair) >> 6] |= 1 << UInt64(pair & 63)
      }
    }
    var slots = [Int16](repeating: -1, count: 65536)
    var candidates: [[(pattern: Int, header: [UInt8])]] = []
    for (pair, list) in byPair.sorted(by: { $0.key < $1.key }) {
      slots[Int(pair)] = Int16(candidates.count)
      candidates.append(list)
    }
    pairCandidates = candidates
    pairSlot = slots
    pairBits = bits
    formatLines = table.map { $0.formats.map(\.line) }
    suppressionPatterns = table.map(\.suppressions)
  }

  /// The crash header patterns as plain strings (for comparing with grep).
  public var headerStrings: [String] {
    table.flatMap { $0.headers.map { String(decoding: $0, as: UTF8.self) } }
  }

  public func scan(_ log: [UInt8], origin: LogOrigin = .host("localhost")) -> [CrashReport] {
    var scanner = StreamingCrashScanner(detector: self, origin: origin)
    var reports: [CrashReport] = []
    log.withUnsafeBufferPointer { buf in
      var lineStart = 0
      let count = buf.count
      while lineStart < count {
        var lineEnd = lineStart
        // memchr is much faster than a byte loop on long lines.
        if let base = buf.baseAddress,
          let hit = memchrNewline(base + lineStart, count - lineStart)
        {
          lineEnd = lineStart + hit
        } else {
          lineEnd = count
        }
        let next = lineEnd < count ? lineEnd + 1 : count
        reports += scanner.feed(buf, lineStart, lineEnd, next: next)
        lineStart = next
      }
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
    let start = from ?? lo
    let last = hi - 1
    guard start < last else { return nil }
    // The hot loop: raw pointers, the previous byte kept, no array access per byte.
    return pairBits.withUnsafeBufferPointer { bits -> (Int, Int)? in
      var i = start
      var previous = base[i]
      while i < last {
        let next = base[i + 1]
        let pair = Int(previous) << 8 | Int(next)
        if bits[pair >> 6] & (1 << UInt64(pair & 63)) != 0,
          let pattern = headerAt(buf, i, lo, hi, pair)
        {
          return (pattern, i)
        }
        previous = next
        i += 1
      }
      return nil
    }
  }

  /// The pattern whose header starts at `i` (whose first two bytes are `pair`), if any.
  private func headerAt(
    _ buf: UnsafeBufferPointer<UInt8>, _ i: Int, _ lo: Int, _ hi: Int, _ pair: Int
  )
    -> Int?
  {
    for (pattern, header) in pairCandidates[Int(pairSlot[pair])] where i + header.count <= hi {
      var k = 2
      while k < header.count, buf[i + k] == header[k] { k += 1 }
      guard k == header.count else { continue }
      // A header starts a word: "DEBUG:" is not "BUG:".
      if i > lo, isAlnum(buf[i - 1]) { continue }
      return pattern
    }
    return nil
  }

  /// The first format of `pattern` whose header line matches, unless suppressed.
  func matchFormat(_ pattern: Int, _ text: UnsafeBufferPointer<UInt8>) -> (Int, [String])? {
    // Through buffer pointers: a pattern is borrowed, not copied (and retained), per
    // look-alike line.
    let suppressed = suppressionPatterns[pattern].withUnsafeBufferPointer { patterns in
      patterns.indices.contains { patterns[$0].match(text) != nil }
    }
    if suppressed { return nil }
    return formatLines[pattern].withUnsafeBufferPointer { patterns in
      for i in patterns.indices {
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
