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
  /// Bit set over a hash of the first four bytes of every header (`quadHash`): a much rarer
  /// hit than the first two bytes, whose common English pairs ("st", "in", "ge") fire often.
  let quadBits: [UInt64]
  /// Some header is shorter than four bytes: only the pair filter applies.
  let shortHeader: Bool
  /// Each pattern's format header lines and suppressions, flattened for the per-line path.
  let formatLines: [[LinePattern]]
  let suppressionPatterns: [[LinePattern]]
  /// "pattern/format" ids, made once rather than per report.
  let patternIDs: [[String]]

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
    // Every header has a window checked at stride two: its first four bytes or the four after
    // its first. A four-byte header's second window ends past it: all 256 next bytes go in.
    var quads = [UInt64](repeating: 0, count: 1024)
    var short = false
    func add(_ window: [UInt8]) {
      let x = window.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
      let h = quadHash(x)
      quads[h >> 6] |= 1 << UInt64(h & 63)
    }
    for pattern in table {
      for header in pattern.headers {
        guard header.count >= 4 else {
          short = true
          continue
        }
        add(Array(header[0..<4]))
        if header.count >= 5 {
          add(Array(header[1..<5]))
        } else {
          for next in 0...255 { add(Array(header[1..<4]) + [UInt8(next)]) }
        }
      }
    }
    quadBits = quads
    shortHeader = short
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
    patternIDs = table.map { oops in oops.formats.map { oops.id + "/" + $0.id } }
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
  /// word or line checks. The hot loop of the whole scanner (it runs over every byte of a
  /// quiet log): raw pointers, a four-byte window at every second position, hashed into a
  /// bit set that holds each header's windows at its offsets 0 and 1; three windows per
  /// eight-byte load and one branch for the three.
  @inline(__always)
  func nextHeaderBytes(_ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int) -> (
    pattern: Int, position: Int
  )? {
    guard !shortHeader else { return nextHeaderBytesByPair(base, from, to) }
    return quadBits.withUnsafeBufferPointer { bitsBuffer -> (pattern: Int, position: Int)? in
      let bits = bitsBuffer.baseAddress!
      let raw = UnsafeRawPointer(base)
      @inline(__always) func bit(_ window: UInt64) -> UInt64 {
        let h = quadHash(UInt32(truncatingIfNeeded: window))
        return bits[h &>> 6] &>> UInt64(h & 63)
      }
      /// A window at `p` hit: a header may start at p - 1 or p.
      @inline(__always) func verify(_ p: Int) -> (pattern: Int, position: Int)? {
        if p > from, let pattern = headerAt(base, p &- 1, to) { return (pattern, p &- 1) }
        if let pattern = headerAt(base, p, to) { return (pattern, p) }
        return nil
      }
      var p = from
      while p &+ 8 <= to {
        let w = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt64.self))
        if (bit(w) | bit(w &>> 16) | bit(w &>> 32)) & 1 != 0 {
          for k in 0..<3 where bit(w &>> UInt64(16 * k)) & 1 != 0 {
            if let found = verify(p &+ 2 &* k) { return found }
          }
        }
        p &+= 6
      }
      while p &+ 4 <= to {
        let x = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt32.self))
        if bit(UInt64(x)) & 1 != 0, let found = verify(p) { return found }
        p &+= 2
      }
      // The one start no window covers: four bytes before the end, off the stride.
      let last = to &- 4
      if last > from, (last &- from) & 1 == 1, let pattern = headerAt(base, last, to) {
        return (pattern, last)
      }
      return nil
    }
  }

  /// The same search by the first two bytes alone, for tables with headers under four bytes.
  private func nextHeaderBytesByPair(_ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int) -> (
    pattern: Int, position: Int
  )? {
    let last = to - 1
    guard from < last else { return nil }
    return pairBits.withUnsafeBufferPointer { bits -> (pattern: Int, position: Int)? in
      var i = from
      var previous = base[i]
      while i < last {
        let next = base[i + 1]
        let pair = Int(previous) << 8 | Int(next)
        if bits[pair >> 6] & (1 << UInt64(pair & 63)) != 0, let pattern = headerAt(base, i, to) {
          return (pattern, i)
        }
        previous = next
        i += 1
      }
      return nil
    }
  }

  /// The first pattern (in table order among those sharing the first two bytes) whose header
  /// starts at `i` and ends by `to`.
  @inline(__always)
  private func headerAt(_ base: UnsafePointer<UInt8>, _ i: Int, _ to: Int) -> Int? {
    guard i + 1 < to else { return nil }
    let slot = Int(pairSlot[Int(base[i]) << 8 | Int(base[i + 1])])
    guard slot >= 0 else { return nil }
    for (pattern, header) in pairCandidates[slot] where i + header.count <= to {
      let equal = header.withUnsafeBufferPointer { h in memcmp(base + i, h.baseAddress!, h.count) == 0 }
      if equal { return pattern }
    }
    return nil
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

/// Fibonacci hashing of four bytes into 16 bits.
@inline(__always) func quadHash(_ x: UInt32) -> Int {
  Int(truncatingIfNeeded: (x &* 0x9E37_79B1) &>> 16)
}

@inline(__always) func memchrNewline(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
  guard let hit = memchr(p, 0x0a, n) else { return nil }
  return UnsafeRawPointer(hit) - UnsafeRawPointer(p)
}

/// The last newline in `p[0..<n]` (lines are short: a backward loop; Glibc's memrchr is not
/// visible to Swift).
@inline(__always) func lastNewline(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
  var i = n - 1
  while i >= 0 {
    if p[i] == 0x0a { return i }
    i -= 1
  }
  return nil
}
