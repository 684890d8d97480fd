/// A small line pattern, compiled once from a string like "BUG: KASAN: {W} in {F}".
///
/// Swift Regex is far too slow for a scanner that must keep pace with grep, and kernel
/// headers need only a few shapes, so patterns are literals plus these placeholders:
///   {F}  a function name (captured up to the first '.', as syzkaller does); a following
///        "+0x1a/0x2b" offset is consumed
///   {W}  a run of non-space bytes (captured)
///   {R}  the rest of the line, trimmed (captured)
///   {S}  a source file "path/file.c:123" (captures the path)
///   {N}  a decimal number (captured)
///   {X}  a hex number, with or without 0x (not captured)
///   {*}  anything, as little as possible (not captured)
///   {$}  the end of the line (trailing spaces allowed)
/// A pattern matches anywhere in the line unless it starts with "^".
/// A class: matching borrows one reference instead of copying (and retaining) the token,
/// literal and text arrays for every look-alike line.
final class LinePattern: Sendable, Hashable, CustomStringConvertible {
  static func == (a: LinePattern, b: LinePattern) -> Bool { a.description == b.description }
  func hash(into hasher: inout Hasher) { hasher.combine(description) }

  enum Token: Sendable, Hashable {
    /// Bytes `start..<start+count` of `store` (a plain value: matching retains nothing).
    case literal(start: Int, count: Int)
    case function, word, rest, source, number, hex, any, end
  }

  let tokens: [Token]
  let anchored: Bool
  let description: String
  /// Literals the line must contain (ranges of `store`), checked with a fast search before
  /// backtracking.
  let literals: [Range<Int>]
  /// Every literal's bytes, one after another.
  let store: [UInt8]
  /// Bloom positions of four-byte windows of the literals (start, middle, end of each literal
  /// of four bytes or more): a line whose `LineBloom` lacks one cannot match.
  let gate: [Int]

  init(_ text: String) {
    description = text
    var bytes = Array(text.utf8)
    anchored = bytes.first == UInt8(ascii: "^")
    if anchored { bytes.removeFirst() }
    var tokens: [Token] = []
    var literal: [UInt8] = []
    var store: [UInt8] = []
    func flush() {
      guard !literal.isEmpty else { return }
      tokens.append(.literal(start: store.count, count: literal.count))
      store += literal
      literal = []
    }
    var i = 0
    while i < bytes.count {
      if bytes[i] == UInt8(ascii: "{"), i + 2 < bytes.count, bytes[i + 2] == UInt8(ascii: "}") {
        let token: Token?
        switch bytes[i + 1] {
        case UInt8(ascii: "F"): token = .function
        case UInt8(ascii: "W"): token = .word
        case UInt8(ascii: "R"): token = .rest
        case UInt8(ascii: "S"): token = .source
        case UInt8(ascii: "N"): token = .number
        case UInt8(ascii: "X"): token = .hex
        case UInt8(ascii: "*"): token = .any
        case UInt8(ascii: "$"): token = .end
        default: token = nil
        }
        if let token {
          flush()
          tokens.append(token)
          i += 3
          continue
        }
      }
      literal.append(bytes[i])
      i += 1
    }
    flush()
    self.tokens = tokens
    self.store = store
    literals = tokens.compactMap {
      if case .literal(let start, let count) = $0, count >= 2 {
        return start..<(start + count)
      } else {
        return nil
      }
    }
    var gate: [Int] = []
    for range in literals where range.count >= 4 {
      for at in Set([
        range.lowerBound, (range.lowerBound + range.upperBound - 4) / 2, range.upperBound - 4,
      ]) {
        gate.append(LineBloom.position(store[at..<(at + 4)]))
      }
    }
    self.gate = gate
  }

  /// False when the line cannot match (a literal's window is missing from its bloom).
  @inline(__always) func mayMatch(_ bloom: LineBloom) -> Bool {
    gate.withUnsafeBufferPointer { g in
      for position in g where !bloom.contains(position) { return false }
      return true
    }
  }

  /// Captures if the pattern matches somewhere in `line`, else nil.
  func match(_ line: [UInt8]) -> [String]? {
    line.withUnsafeBufferPointer { match($0) }
  }

  func match(_ line: String) -> [String]? {
    match(Array(line.utf8))
  }

  func match(_ line: UnsafeBufferPointer<UInt8>) -> [String]? {
    let allPresent = store.withUnsafeBufferPointer { s in
      literals.allSatisfy { indexOf(line, UnsafeBufferPointer(rebasing: s[$0])) != nil }
    }
    guard allPresent else { return nil }
    var captures: [String] = []
    if anchored {
      return matchAt(line, 0, 0, &captures) ? captures : nil
    }
    // Start only where the first literal can begin, to keep unanchored search cheap.
    var firstByte: UInt8?
    if case .literal(let start, _)? = tokens.first { firstByte = store[start] }
    var start = 0
    while start <= line.count {
      if let firstByte {
        while start < line.count, line[start] != firstByte { start += 1 }
        if start == line.count { return nil }
      }
      captures.removeAll(keepingCapacity: true)
      if matchAt(line, start, 0, &captures) { return captures }
      start += 1
    }
    return nil
  }

  private func matchAt(
    _ line: UnsafeBufferPointer<UInt8>, _ pos: Int, _ tokenIndex: Int, _ captures: inout [String]
  ) -> Bool {
    if tokenIndex == tokens.count { return true }
    let count = line.count
    switch tokens[tokenIndex] {
    case .literal(let start, let length):
      guard pos + length <= count else { return false }
      for k in 0..<length where line[pos + k] != store[start + k] { return false }
      return matchAt(line, pos + length, tokenIndex + 1, &captures)
    case .function:
      // 64-bit big-endian powerpc (ELFv1) names a function's code ".name": the same function.
      let pos = pos < count && line[pos] == UInt8(ascii: ".") ? pos + 1 : pos
      var end = pos
      while end < count, isSymbolByte(line[end]) { end += 1 }
      guard end > pos else { return false }
      var nameEnd = pos
      while nameEnd < end, line[nameEnd] != UInt8(ascii: ".") { nameEnd += 1 }
      // Addresses ("0x0", "ffffffff8134") are not function names.
      guard nameEnd > pos, !isDecimal(line[pos]) else { return false }
      // "ffffffff8343632e": an unsymbolized address is not a name either.
      if nameEnd - pos >= 8, (pos..<nameEnd).allSatisfy({ isHexDigit(line[$0]) }) { return false }
      var next = end
      next = skipOffset(line, next)
      captures.append(string(line, pos, nameEnd))
      if matchAt(line, next, tokenIndex + 1, &captures) { return true }
      captures.removeLast()
      return false
    case .word:
      var end = pos
      while end < count, line[end] != 0x20, line[end] != 0x09 { end += 1 }
      guard end > pos else { return false }
      // Words may be shortened to let the next literal match ("{W}:" style patterns).
      var e = end
      while e > pos {
        captures.append(string(line, pos, e))
        if matchAt(line, e, tokenIndex + 1, &captures) { return true }
        captures.removeLast()
        e -= 1
      }
      return false
    case .rest:
      var s = pos
      var e = count
      while s < e, line[s] == 0x20 { s += 1 }
      while e > s, line[e - 1] == 0x20 || line[e - 1] == 0x0d { e -= 1 }
      captures.append(string(line, s, e))
      return tokenIndex + 1 == tokens.count
    case .source:
      var end = pos
      while end < count, isPathByte(line[end]) { end += 1 }
      // Back off to the last ':' followed by digits.
      var colon = end
      while colon > pos, line[colon - 1] != UInt8(ascii: ":") { colon -= 1 }
      guard colon > pos + 1 else { return false }
      var digitsEnd = colon
      while digitsEnd < count, isDecimal(line[digitsEnd]) { digitsEnd += 1 }
      guard digitsEnd > colon else { return false }
      captures.append(string(line, pos, colon - 1))
      if matchAt(line, digitsEnd, tokenIndex + 1, &captures) { return true }
      captures.removeLast()
      return false
    case .number:
      var end = pos
      while end < count, isDecimal(line[end]) { end += 1 }
      guard end > pos else { return false }
      captures.append(string(line, pos, end))
      if matchAt(line, end, tokenIndex + 1, &captures) { return true }
      captures.removeLast()
      return false
    case .hex:
      var p = pos
      if p + 1 < count, line[p] == UInt8(ascii: "0"), line[p + 1] | 0x20 == UInt8(ascii: "x") {
        p += 2
      }
      var end = p
      while end < count, isHexDigit(line[end]) { end += 1 }
      guard end > p else { return false }
      return matchAt(line, end, tokenIndex + 1, &captures)
    case .end:
      var p = pos
      while p < count, line[p] == 0x20 || line[p] == 0x09 { p += 1 }
      return p == count && tokenIndex + 1 == tokens.count
    case .any:
      var p = pos
      while p <= count {
        if matchAt(line, p, tokenIndex + 1, &captures) { return true }
        p += 1
      }
      return false
    }
  }
}

@inline(__always) func isDecimal(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

/// Bytes of a kernel symbol as printed in traces ("tcp_sendmsg", "foo.isra.0", "__x64_sys_ioctl").
/// (One bit test: the chain of comparisons was most of the time spent finding trace frames.)
@inline(__always) func isSymbolByte(_ b: UInt8) -> Bool {
  // '$', '.', '0'-'9' below 64; 'A'-'Z', '_', 'a'-'z' from 64 on.
  let low: UInt64 = 1 << 0x24 | 1 << 0x2e | 0x3ff << 0x30
  let high: UInt64 = 0x3ff_ffff << 1 | 1 << 31 | 0x3ff_ffff << 33
  return b < 128 && ((b < 64 ? low : high) &>> UInt64(b & 63)) & 1 != 0
}

@inline(__always) func isPathByte(_ b: UInt8) -> Bool {
  isSymbolByte(b) || b == 0x2f || b == 0x2d || b == 0x3a || b == 0x2b
}

/// Skips "+0x1a/0x2b" after a symbol; returns `pos` unchanged when absent.
func skipOffset(_ line: UnsafeBufferPointer<UInt8>, _ pos: Int) -> Int {
  let count = line.count
  guard pos + 3 < count, line[pos] == UInt8(ascii: "+"), line[pos + 1] == UInt8(ascii: "0"),
    line[pos + 2] | 0x20 == UInt8(ascii: "x")
  else { return pos }
  var p = pos + 3
  while p < count, isHexDigit(line[p]) { p += 1 }
  if p + 2 < count, line[p] == UInt8(ascii: "/"), line[p + 1] == UInt8(ascii: "0"),
    line[p + 2] | 0x20 == UInt8(ascii: "x")
  {
    p += 3
    while p < count, isHexDigit(line[p]) { p += 1 }
  }
  return p
}

@inline(__always) func string(_ line: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> String
{
  String(decoding: UnsafeBufferPointer(rebasing: line[from..<to]), as: UTF8.self)
}

/// The four-byte windows of a line, hashed into a 1024-byte table: one pass over a look-alike
/// header line lets every format of its pattern be ruled out by a few table reads instead of a
/// search per literal. Bytes, not bits: the stores are independent, with no read-modify-write.
struct LineBloom {
  static let size = 1024
  let table: UnsafeMutablePointer<UInt8>

  /// Fills `table` (`size` bytes) from the line.
  init(_ line: UnsafeBufferPointer<UInt8>, table: UnsafeMutablePointer<UInt8>) {
    self.table = table
    table.initialize(repeating: 0, count: Self.size)
    guard line.count >= 4, let base = line.baseAddress else { return }
    let raw = UnsafeRawPointer(base)
    var i = 0
    while i &+ 4 <= line.count {
      let x = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt32.self))
      table[Self.position(x)] = 1
      i &+= 1
    }
  }

  @inline(__always) func contains(_ position: Int) -> Bool { table[position] != 0 }

  @inline(__always) static func position(_ x: UInt32) -> Int { quadHash(x) & (size - 1) }

  static func position(_ bytes: ArraySlice<UInt8>) -> Int {
    var x: UInt32 = 0
    for (k, b) in bytes.enumerated() { x |= UInt32(b) << UInt32(8 * k) }
    return position(x)
  }
}
