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

  /// Whether some line of `text` (lines joined by newlines) may hold a console prefix after a
  /// blank, as `embeddedStamps` first tests it: most reports hold none, and one search of the
  /// whole text spares a search per line.
  static func mayHoldEmbeddedStamp(_ text: Line) -> Bool {
    guard let base = text.baseAddress else { return false }
    var i = 1
    while i < text.count {
      guard let hit = memchr(base + i, Int32(UInt8(ascii: "[")), text.count - i) else { break }
      let at = UnsafeRawPointer(hit) - UnsafeRawPointer(base)
      i = at + 1
      if text[at - 1] == 0x20 || text[at - 1] == 0x09, at + 1 < text.count,
        text[at + 1] == 0x20 || isDecimal(text[at + 1])
      {
        return true
      }
    }
    return false
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

  /// `lines` with each line a console or mail client wrapped joined again: in a log whose
  /// lines carry a console prefix, a line without one continues the prefixed line before it
  /// (directly when that line was as wide as a console, which cuts mid-word; after a blank
  /// otherwise, as mail clients wrap at blanks). The joined lines live in `arena`, which the
  /// caller deallocates. Nil when nothing was joined (the usual case).
  static func joinWrapped(_ lines: [Line], _ flags: [UInt8], limit: Int) -> (
    lines: [Line], flags: [UInt8], arena: UnsafeMutableBufferPointer<UInt8>
  )? {
    let count = min(lines.count, flags.count, limit)
    // Which lines start a joined run, and how many continuations each takes.
    var runs: [(first: Int, extra: Int)] = []
    var bytes = 0
    var i = 0
    while i + 1 < count {
      guard flags[i] & ReportKeyword.prefixed != 0 else {
        i += 1
        continue
      }
      var extra = 0
      var size = lines[i].count
      while i + extra + 1 < count, flags[i + extra + 1] & ReportKeyword.prefixed == 0,
        !lines[i + extra + 1].allSatisfy({ $0 == 0x20 || $0 == 0x09 }),
        extra == 0 || flags[i + extra] & ReportKeyword.fullWidth != 0, extra < 3
      {
        extra += 1
        size += 1 + lines[i + extra].count
      }
      if extra > 0 {
        runs.append((i, extra))
        bytes += size
      }
      i += extra + 1
    }
    guard !runs.isEmpty else { return nil }
    let arena = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: bytes)
    var at = 0
    var out: [Line] = []
    var outFlags: [UInt8] = []
    out.reserveCapacity(lines.count)
    outFlags.reserveCapacity(lines.count)
    var next = 0
    for run in runs {
      for k in next..<run.first {
        out.append(lines[k])
        outFlags.append(flags[k])
      }
      let start = at
      var merged = flags[run.first]
      for k in run.first...(run.first + run.extra) {
        var piece = lines[k]
        if k > run.first {
          // Mid-word after a full-width line; else the blank the wrap took.
          if flags[k - 1] & ReportKeyword.fullWidth == 0 {
            while at > start, arena[at - 1] == 0x20 || arena[at - 1] == 0x09 { at -= 1 }
            arena[at] = 0x20
            at += 1
            var p = 0
            while p < piece.count, piece[p] == 0x20 || piece[p] == 0x09 { p += 1 }
            piece = UnsafeBufferPointer(rebasing: piece[p...])
          }
          merged |= flags[k] & ~(ReportKeyword.prefixed | ReportKeyword.fullWidth)
        }
        if let source = piece.baseAddress, let target = arena.baseAddress, !piece.isEmpty {
          (target + at).update(from: source, count: piece.count)
        }
        at += piece.count
      }
      out.append(UnsafeBufferPointer(rebasing: arena[start..<at]))
      outFlags.append(merged)
      next = run.first + run.extra + 1
    }
    for k in next..<lines.count {
      out.append(lines[k])
      outFlags.append(k < flags.count ? flags[k] : 0)
    }
    return (out, outFlags, arena)
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
