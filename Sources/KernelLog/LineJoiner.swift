/// Repairs the line structure of a report damaged on its way from the console to the reader,
/// before titles and frames are worked out (the report's text is left as it was read):
/// - lines a mail client or a web form ran together ("...IRQMASK: 0  [  103.269669] GPR00:
///   ..."): split again at each timestamp inside the line;
/// - a header cut by an 80-column console or a mail client ("WARNING: CPU: 0 PID: 1 at
///   mm/vmalloc.c:2700" then "remove_vm_area+0xb4/0xf0" on the next line): joined with its
///   continuation (`joinedHeader`).
enum LineJoiner {
  /// Lines shorter than this cannot hold two console lines with their timestamps.
  static let minimumRunTogether = 48

  /// `lines` with every line that holds further timestamped console lines split at them; the
  /// pieces get their own keyword flags. Returns nil when no line needed it (the usual case).
  static func splitRunTogether(
    _ lines: [Line], _ flags: [UInt8], detector: CrashDetector, limit: Int
  ) -> (lines: [Line], flags: [UInt8])? {
    var out: [Line]?
    var outFlags: [UInt8] = []
    for index in lines.indices {
      let line = lines[index]
      let cuts = index < limit && line.count >= minimumRunTogether ? embeddedStamps(line) : []
      if cuts.isEmpty {
        if out != nil {
          out!.append(line)
          outFlags.append(index < flags.count ? flags[index] : 0)
        }
        continue
      }
      if out == nil {
        out = Array(lines[..<index])
        outFlags = Array(flags.prefix(index))
      }
      // Piece k runs from the text after cut k-1's stamp to cut k (trailing blanks dropped).
      var start = 0
      var startFlags = index < flags.count ? flags[index] & ReportKeyword.prefixed : 0
      for cut in cuts + [(at: line.count, text: line.count)] {
        var end = cut.at
        while end > start, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
        let piece = UnsafeBufferPointer(rebasing: line[start..<end])
        out!.append(piece)
        outFlags.append(detector.keywordFlags(piece, 0, piece.count) | startFlags)
        start = cut.text
        startFlags = ReportKeyword.prefixed
      }
    }
    guard let out else { return nil }
    return (out, outFlags)
  }

  /// Positions inside `line` (after a blank) where a console prefix with a timestamp starts,
  /// with where its text starts.
  static func embeddedStamps(_ line: Line) -> [(at: Int, text: Int)] {
    var cuts: [(at: Int, text: Int)] = []
    guard let base = line.baseAddress else { return cuts }
    var i = 1
    while i < line.count - 3 {
      guard let hit = memchr(base + i, Int32(UInt8(ascii: "[")), line.count - i) else { break }
      let at = UnsafeRawPointer(hit) - UnsafeRawPointer(base)
      i = at + 1
      // "[ 1234.567890]" or "[12.3]": a blank or a digit after the bracket.
      guard line[at - 1] == 0x20 || line[at - 1] == 0x09, at + 1 < line.count,
        line[at + 1] == 0x20 || isDecimal(line[at + 1])
      else { continue }
      let split = splitLine(line, at, line.count)
      if split.hasTimestamp, split.textStart > at {
        cuts.append((at, split.textStart))
        i = split.textStart
      }
    }
    return cuts
  }

  /// Line 1 continues line 0: it lost the prefix the header had (a timestamped log wrapped
  /// by a mail client), or it is the lone "function+0xOFF/0xLEN" of a cut header or entry.
  static func continues(_ lines: [Line], _ flags: [UInt8], at index: Int) -> Bool {
    guard index > 0, index < lines.count, index < flags.count else { return false }
    let line = lines[index]
    var p = 0
    while p < line.count, line[p] == 0x20 || line[p] == 0x09 { p += 1 }
    guard p < line.count else { return false }
    if flags[index - 1] & ReportKeyword.prefixed != 0, flags[index] & ReportKeyword.prefixed == 0 {
      return true
    }
    return continuedSymbol(line) != nil
  }

  /// The header line and its continuation as one line (single blank between), or nil when the
  /// next line does not continue it.
  static func joinedHeader(_ lines: [Line], _ flags: [UInt8]) -> [UInt8]? {
    guard continues(lines, flags, at: 1) else { return nil }
    var joined = Array(lines[0])
    while let last = joined.last, last == 0x20 || last == 0x09 { joined.removeLast() }
    var p = 0
    let next = lines[1]
    while p < next.count, next[p] == 0x20 || next[p] == 0x09 { p += 1 }
    joined.append(0x20)
    joined += next[p...]
    return joined
  }
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif
