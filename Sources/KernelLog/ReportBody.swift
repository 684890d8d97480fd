#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// What a report says about where it happened: parsed from its first lines on first access.
struct ReportMetadata: Sendable, Hashable {
  var cpu: Int?
  var pid: Int?
  var comm: String?
  var taint: String?
  var kernelVersion: String?
  /// The "Modules linked in:" list as printed (names between spaces): split only when the
  /// names are asked for, as most reports' are not (or are copied out as bytes).
  var moduleList = ModuleList()

  var modules: [String] {
    get { moduleList.names }
    set { moduleList = ModuleList(names: newValue) }
  }
}

/// A report's module names: the printed list, or names set one by one.
public struct ModuleList: Sendable, Hashable {
  private var printed = ""
  private var list: [String]?

  init() {}

  init(printed: String) { self.printed = printed }

  init(names: [String]) { list = names }

  public var names: [String] {
    if let list { return list }
    return printed.utf8.split(separator: 0x20).map { String(Substring($0)) }
  }

  /// Each name's UTF-8 bytes, in order, without a String per name.
  public func forEach(_ body: (UnsafeBufferPointer<UInt8>) -> Void) {
    if let list {
      for var name in list { name.withUTF8(body) }
      return
    }
    var printed = printed
    printed.withUTF8 { bytes in
      var start = 0
      for i in 0...bytes.count where i == bytes.count || bytes[i] == 0x20 {
        if i > start { body(UnsafeBufferPointer(rebasing: bytes[start..<i])) }
        start = i + 1
      }
    }
  }

  public static func == (a: ModuleList, b: ModuleList) -> Bool { a.names == b.names }
  public func hash(into hasher: inout Hasher) { hasher.combine(names) }
}

/// A found report's bytes, shared by the copies of its `CrashReport`, immutable. The text and
/// metadata are made from them on each access (no cache, so no lock: reports cross threads,
/// and most are never asked for either).
final class ReportBody: Sendable {
  /// The report's lines joined by newlines, log prefixes removed.
  let text: [UInt8]
  /// Where the leading lines that may hold the CPU/Comm, Modules and Tainted lines end in
  /// `text` (they come before the stack).
  let metadataEnd: Int
  /// Where the lines after the first stack keyword's line start in `text` (-1: none), found
  /// from the scanner's keyword flags rather than by searching the text again.
  let framesFrom: Int
  /// Where the lines holding a frame terminator ("---[ end trace", "Allocated by task", ...)
  /// after `framesFrom` start in `text`, in order: the first stack ends at the first of them
  /// after a frame.
  let terminatorLines: [Int]

  init(text: [UInt8], metadataEnd: Int, framesFrom: Int?, terminatorLines: [Int] = []) {
    self.text = text
    self.metadataEnd = metadataEnd
    self.framesFrom = framesFrom ?? -1
    self.terminatorLines = terminatorLines
  }

  var reportString: String { String(decoding: text, as: UTF8.self) }

  var metadata: ReportMetadata {
    text.withUnsafeBufferPointer {
      parseMetadata(UnsafeBufferPointer(rebasing: $0[..<metadataEnd]))
    }
  }

  func forEachFrame(_ body: (UnsafeBufferPointer<UInt8>) -> Void) {
    guard framesFrom >= 0 else { return }
    text.withUnsafeBufferPointer {
      forEachStackFrame($0, from: framesFrom, terminatorLines: terminatorLines, body)
    }
  }
}

/// Where the lines after the first stack keyword's line start in a report's text, by searching
/// it (a report made from text, without the scanner's flags).
func stackFramesStart(_ buf: UnsafeBufferPointer<UInt8>) -> Int? {
  // The first stack keyword, each searched once over the whole text (not per line).
  var first: Int?
  for keyword in stackKeywordList {
    // Only where it would come before the earliest keyword found so far.
    let limit = min(buf.count, first.map { $0 + keyword.count } ?? buf.count)
    if let at = indexOf(UnsafeBufferPointer(rebasing: buf[0..<limit]), keyword, from: 0),
      at < (first ?? Int.max)
    {
      first = at
    }
  }
  guard let first, let base = buf.baseAddress,
    let newline = memchrNewline(base + first, buf.count - first)
  else { return nil }
  return first + newline + 1
}

/// Where the lines of `buf` after `start` that hold a frame terminator start (a report made
/// from text, without the scanner's keyword flags): the flags the scanner would have given
/// them, from the same keyword search.
func terminatorLineStarts(_ buf: UnsafeBufferPointer<UInt8>, from start: Int) -> [Int] {
  guard let base = buf.baseAddress else { return [] }
  let detector = CrashDetector()
  var starts: [Int] = []
  var pos = start
  while pos < buf.count {
    let end = memchrNewline(base + pos, buf.count - pos).map { pos + $0 } ?? buf.count
    if detector.keywordFlags(buf, pos, end) & ReportKeyword.terminator != 0 {
      starts.append(pos)
    }
    pos = end + 1
  }
  return starts
}

/// The function names of the first stack's frames (at most 24), innermost first: the lines of
/// `buf` from `start` on that are trace frames, not questionable ones, up to the first line in
/// `terminatorLines` (line starts, in order) after a frame, as `ReportBuilder` reads a stack.
func forEachStackFrame(
  _ buf: UnsafeBufferPointer<UInt8>, from start: Int, terminatorLines: [Int],
  _ body: (UnsafeBufferPointer<UInt8>) -> Void
) {
  guard let base = buf.baseAddress else { return }
  // Only a line holding "+0x<hex>" or ") from [" can be a frame (`classifyTraceLine`): the
  // text is searched for those once, not line by line (a report's tail can be hundreds of
  // lines after its stack).
  var pos = start
  var nextOffset = -1
  var nextArm = -1
  var count = 0
  var seen = false
  var terminator = 0
  while count < 24, pos < buf.count {
    if nextOffset < pos { nextOffset = nextSymbolOffset(buf, from: pos) ?? buf.count }
    if nextArm < pos { nextArm = armFromIndex(buf, from: pos) ?? buf.count }
    let hit = min(nextOffset, nextArm)
    guard hit < buf.count else { return }
    let lineStart = lastNewline(base + pos, hit - pos).map { pos + $0 + 1 } ?? pos
    let lineEnd = memchrNewline(base + hit, buf.count - hit).map { hit + $0 } ?? buf.count
    // A terminator line between the last frame and this one ends the stack.
    while terminator < terminatorLines.count, terminatorLines[terminator] <= lineStart {
      if seen { return }
      terminator += 1
    }
    let line = UnsafeBufferPointer(rebasing: buf[lineStart..<lineEnd])
    let t = classifyTraceLine(line, mayBeArm: nextArm < lineEnd, firstOffset: hit - lineStart)
    if t.role == .frame, let name = t.nameBytes(in: line) {
      seen = true
      if !t.questionable {
        body(name)
        count += 1
      }
    }
    pos = lineEnd + 1
  }
}

/// The next "+0x" followed by a hex digit at or after `from`.
private func nextSymbolOffset(_ buf: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
  guard let base = buf.baseAddress else { return nil }
  var i = from
  while i + 3 < buf.count {
    guard let hit = memchr(base + i, Int32(UInt8(ascii: "+")), buf.count - 3 - i) else {
      return nil
    }
    i = UnsafeRawPointer(hit) - UnsafeRawPointer(base)
    if buf[i + 1] == UInt8(ascii: "0"), buf[i + 2] == UInt8(ascii: "x"), isHexDigit(buf[i + 3]) {
      return i
    }
    i += 1
  }
  return nil
}
