/// Line-at-a-time, bounded memory: for a log watcher following a live kernel log.
public struct StreamingCrashScanner: Sendable {
  public let detector: CrashDetector
  public let origin: LogOrigin
  /// Byte offset of the next line's first byte.
  public private(set) var offset = 0
  var current: ReportInProgress?
  /// Lines since the last report ended, to recognise a panic that belongs to it.
  var linesSinceReport = Int.max
  /// The last report's buffers, emptied, for the next one (no regrowth per report).
  var spareText: [UInt8] = []
  var spareLines: [ReportLine] = []
  /// A report's "Kernel panic - not syncing" or "Oops:" may follow its end marker.
  static let followUpWindow = 40
  /// A line holding a crash header that no format took apart, kept for one line: a console
  /// or mail client may have cut it ("INFO: task x:1 blocked for more th" / "an 122 seconds.").
  var cutHeader: CutHeader?
  /// A report cut short by another CPU's header (`holds`): it goes on beside `current`. With
  /// printk caller ids each line goes to the report of its caller; without them the two
  /// reports' lines cannot be told apart, so both get every line and end together.
  var held: ReportInProgress?
  /// Reports that ended while one begun before them (held, now in progress) goes on.
  var waiting: [CrashReport] = []

  public init(detector: CrashDetector = CrashDetector(), origin: LogOrigin = .host("localhost")) {
    self.detector = detector
    self.origin = origin
  }

  /// A scanner starting at a line start `offset` bytes into the input (a chunk of a file).
  init(detector: CrashDetector, origin: LogOrigin, offset: Int) {
    self.detector = detector
    self.origin = origin
    self.offset = offset
  }

  /// The input bytes fed so far (the offset of the next line, and the start of a line not
  /// yet ended).
  public var consumed: Int { offset + carry.count + carryDropped }

  /// The two scanners turn the same further input into the same reports: everything they
  /// carry from line to line is equal (the input's offset, a line begun, the report in
  /// progress, a cut header, the lines since the last report where they still matter). The
  /// spare buffers are only capacity.
  func sameState(as other: StreamingCrashScanner) -> Bool {
    offset == other.offset && carryDropped == other.carryDropped
      && min(linesSinceReport, Self.followUpWindow)
        == min(other.linesSinceReport, Self.followUpWindow)
      && Self.same(cutHeader, other.cutHeader) && Self.same(current, other.current)
      && Self.same(held, other.held) && waiting.map(\.start) == other.waiting.map(\.start)
      && carry == other.carry
  }

  // (Not Equatable conformances: with them `current != nil` compiles to an Optional
  // comparison that copies the report in progress, on every line.)
  private static func same(_ a: CutHeader?, _ b: CutHeader?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    return a.offset == b.offset && a.end == b.end && a.caller == b.caller
      && a.prefixed == b.prefixed && a.fullWidth == b.fullWidth && a.text == b.text
  }

  private static func same(_ a: ReportInProgress?, _ b: ReportInProgress?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    return a.start == b.start && a.end == b.end && a.pattern == b.pattern
      && a.format == b.format && a.caller == b.caller && a.endsAtRule == b.endsAtRule
      && a.copied == b.copied && a.byteCount == b.byteCount && a.captures == b.captures
      && a.lines == b.lines && a.text == b.text && a.interleaved == b.interleaved
  }

  /// A crash header has been seen and its report is not finished.
  public var crashInProgress: Bool { current != nil }

  /// Feeds one line without its newline; returns reports completed by this line.
  public mutating func feed(line: String) -> [CrashReport] {
    var line = line
    var reports: [CrashReport] = []
    line.withUTF8 { buf in feed(buf, 0, buf.count, next: buf.count + 1, into: &reports) }
    return reports
  }

  /// Feeds one line given as bytes without its newline.
  public mutating func feed(bytes: [UInt8]) -> [CrashReport] {
    var reports: [CrashReport] = []
    bytes.withUnsafeBufferPointer { feed($0, 0, $0.count, next: $0.count + 1, into: &reports) }
    return reports
  }

  /// Feeds raw input of any size, split anywhere; lines are cut at newlines. Lines longer
  /// than `maxLineBytes` are matched on their first `maxLineBytes` bytes (offsets stay exact).
  /// Do not mix with `feed(line:)`.
  public mutating func feed(chunk: UnsafeBufferPointer<UInt8>) -> [CrashReport] {
    var reports: [CrashReport] = []
    guard let base = chunk.baseAddress else { return reports }
    var pos = 0
    if !carry.isEmpty || carryDropped > 0 {
      // The rest of a line begun in an earlier chunk.
      guard let hit = memchrNewline(base, chunk.count) else {
        appendCarry(chunk)
        return reports
      }
      appendCarry(UnsafeBufferPointer(rebasing: chunk[0..<hit]))
      flushCarry(newline: true, into: &reports)
      pos = hit + 1
    }
    // The complete lines, then the start of the next one kept for the next chunk.
    guard pos < chunk.count, let last = lastNewline(base + pos, chunk.count - pos) else {
      if pos < chunk.count { appendCarry(UnsafeBufferPointer(rebasing: chunk[pos...])) }
      return reports
    }
    let linesEnd = pos + last + 1
    feedLines(chunk, pos, linesEnd, into: &reports)
    if linesEnd < chunk.count { appendCarry(UnsafeBufferPointer(rebasing: chunk[linesEnd...])) }
    return reports
  }

  /// The lines of `buf[from..<to]` (the last one may lack its newline). Outside a report
  /// (and past the follow-up window) lines without a header's bytes do nothing but move the
  /// offset, so the search jumps from header candidate to header candidate over the whole
  /// range, as grep does, instead of splitting every line.
  mutating func feedLines(
    _ buf: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int, into reports: inout [CrashReport]
  ) {
    guard let base = buf.baseAddress else { return }
    var pos = from
    // The next positions holding a header's bytes, and a header's or report keyword's,
    // each searched once over the whole range: lines before them (most report lines too)
    // need no search of their own. Stale when < pos.
    var nextHeader = -1
    var nextNeedle = -1
    // Report lines are kept as ranges of `buf` until then.
    defer {
      if current != nil { current!.materialize(buf) }
      if held != nil { held!.materialize(buf) }
    }
    while pos < to {
      if current == nil, cutHeader == nil, linesSinceReport < Self.followUpWindow {
        // After a report: until the next header's line, a line only counts towards the
        // follow-up window (no report, no cut header, no header to start one).
        if nextHeader < pos { nextHeader = detector.nextHeaderBytes(base, pos, to)?.position ?? to }
        let skipped = skipLines(base, &pos, to, before: nextHeader)
        if skipped { continue }
      }
      if current == nil, linesSinceReport >= Self.followUpWindow, cutHeader == nil {
        if nextHeader < pos { nextHeader = detector.nextHeaderBytes(base, pos, to)?.position ?? to }
        guard nextHeader < to else {
          offset += to - pos
          return
        }
        var lineStart = pos
        if let nl = lastNewline(base + pos, nextHeader - pos) { lineStart = pos + nl + 1 }
        offset += lineStart - pos
        pos = lineStart
        let lineEnd = memchrNewline(base + pos, to - pos).map { pos + $0 } ?? to
        let next = lineEnd < to ? lineEnd + 1 : to
        feed(buf, pos, lineEnd, next: next, into: &reports, deferred: true)
        pos = next
        continue
      }
      if nextNeedle < pos { nextNeedle = detector.nextNeedle(base, pos, to) ?? to }
      let lineEnd = memchrNewline(base + pos, to - pos).map { pos + $0 } ?? to
      let next = lineEnd < to ? lineEnd + 1 : to
      if current != nil, held == nil, nextNeedle >= next {
        feedPlainReportLine(buf, pos, lineEnd, next: next, into: &reports)
      } else {
        feed(
          buf, pos, lineEnd, next: next, into: &reports, needlePossible: nextNeedle < next,
          deferred: true)
      }
      pos = next
    }
  }

  /// Counts the lines from `pos` that end before `limit` (hold no header) as lines since the
  /// last report, while under the follow-up window, moving `pos` and the offset past them.
  /// Returns whether it counted any.
  private mutating func skipLines(
    _ base: UnsafePointer<UInt8>, _ pos: inout Int, _ to: Int, before limit: Int
  ) -> Bool {
    let from = pos
    while pos < to, linesSinceReport < Self.followUpWindow {
      let lineEnd = memchrNewline(base + pos, to - pos).map { pos + $0 } ?? to
      // The line holding `limit`; a header there ends the counting.
      guard lineEnd < limit || limit >= to else { break }
      let next = lineEnd < to ? lineEnd + 1 : to
      offset += next - pos
      linesSinceReport += 1
      pos = next
    }
    return pos > from
  }

  public mutating func feed(chunk: [UInt8]) -> [CrashReport] {
    chunk.withUnsafeBufferPointer { feed(chunk: $0) }
  }

  public static let maxLineBytes = 64 * 1024
  var carry: [UInt8] = []
  var carryDropped = 0

  private mutating func appendCarry(_ bytes: UnsafeBufferPointer<UInt8>) {
    let room = Self.maxLineBytes - carry.count
    if bytes.count <= room {
      carry.append(contentsOf: bytes)
    } else {
      carry.append(contentsOf: bytes.prefix(max(room, 0)))
      carryDropped += bytes.count - max(room, 0)
    }
  }

  private mutating func flushCarry(newline: Bool, into reports: inout [CrashReport]) {
    let line = carry
    let extra = carryDropped + (newline ? 1 : 0)
    carry.removeAll(keepingCapacity: true)
    carryDropped = 0
    line.withUnsafeBufferPointer { feed($0, 0, $0.count, next: $0.count + extra, into: &reports) }
  }

  /// End of input: flushes a partial last line and a report in progress.
  public mutating func finish() -> [CrashReport] {
    var reports: [CrashReport] = []
    if !carry.isEmpty || carryDropped > 0 { flushCarry(newline: false, into: &reports) }
    guard current != nil else { return reports }
    // Nothing is pending outside `feedLines`.
    endCurrent(UnsafeBufferPointer(start: nil, count: 0), into: &reports, all: true)
    return reports
  }

  /// Line [lo, hi) of `buf`; `next - lo` is the line's size in the input including its newline.
  mutating func feed(
    _ buf: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int, next: Int,
    into completed: inout [CrashReport], needlePossible: Bool = true, deferred: Bool = false
  ) {
    let lineOffset = offset
    offset += next - lo
    let split = splitLine(buf, lo, hi)
    if let cut = cutHeader {
      cutHeader = nil
      if current == nil, startJoined(cut, buf, split, deferred: deferred) {
        if current!.ended(buf, split) { endCurrent(buf, into: &completed) }
        return
      }
    }
    var started: (pattern: Int, format: Int, captures: [String])?
    // A line may hold several headers ("Oops: general protection fault"); the first one with a
    // matching format wins.
    // A catch-all format ("Oops: {R}") yields to a later header of the line that a specific
    // format takes apart ("Oops: general protection fault ...").
    var searchFrom = split.textStart
    var fallback: (pattern: Int, format: Int, captures: [String])?
    var sawHeader = false
    while needlePossible, started == nil,
      let (pattern, at) = detector.findHeader(buf, split.textStart, split.textEnd, from: searchFrom)
    {
      sawHeader = true
      let text = UnsafeBufferPointer(rebasing: buf[split.textStart..<split.textEnd])
      if let (format, captures) = detector.matchFormat(pattern, text) {
        if detector.catchAll[pattern][format] {
          fallback = fallback ?? (pattern, format, captures)
        } else {
          started = (pattern, format, captures)
        }
      }
      searchFrom = at + 1
    }
    if started == nil { started = fallback }
    if held != nil,
      feedHeld(buf, split, started: started != nil, deferred: deferred, into: &completed)
    {
      return
    }
    if current != nil {
      let caller = current!.caller
      let sameCaller = caller == split.caller || caller.kind == .none || split.caller.kind == .none
      if let started, !detector.table[started.pattern].neverEndsReport,
        !detector.table[started.pattern].followsReport || !sameCaller,
        !(sameCaller && current!.repeatsHeader(buf, split))
      {
        // Another crash begins: the report in progress ends before this line, unless
        // another CPU's report cut it short.
        if holds(started, buf, split) {
          held = current
          current = nil
          held!.interleaved = held!.caller.kind == .none
        } else {
          endCurrent(buf, into: &completed, all: true)
        }
      } else {
        let lineFlags = flags(buf, split, needlePossible)
        if sameCaller {
          current!.append(buf, split, end: offset, flags: lineFlags, deferred: deferred)
        }
        if held != nil, held!.caller.kind == .none {  // no caller ids: the lines are shared
          held!.append(buf, split, end: offset, flags: lineFlags, deferred: deferred)
        }
        if started == nil,
          current!.ended(buf, split) || current!.lineCount >= detector.maxReportLines
            || current!.byteCount >= detector.maxReportBytes
        {
          endCurrent(buf, into: &completed)
        }
        return
      }
    }
    guard let started else {
      if linesSinceReport < Int.max { linesSinceReport += 1 }
      if sawHeader, split.textEnd - split.textStart >= CutHeader.minimumLength {
        cutHeader = CutHeader(buf, split, offset: lineOffset, end: offset)
      }
      return
    }
    if detector.table[started.pattern].followsReport, linesSinceReport < Self.followUpWindow {
      // The panic or Oops line of a crash already reported.
      linesSinceReport += 1
      return
    }
    current = ReportInProgress(
      pattern: started.pattern, format: started.format, captures: started.captures,
      start: lineOffset,
      caller: split.caller)
    swap(&current!.text, &spareText)
    swap(&current!.lines, &spareLines)
    // (A report begun beside a held one without caller ids shares its lines.)
    current!.interleaved = held?.interleaved ?? false
    current!.endsAtRule = detector.table[started.pattern].formats[started.format].endsAtRule
    current!.append(
      buf, split, end: offset, flags: flags(buf, split, needlePossible), deferred: deferred)
    if current!.ended(buf, split) { endCurrent(buf, into: &completed) }
    return
  }

  /// The cut header joined with this line, if it continues it and the two read as a crash
  /// header: the report starts at the cut line.
  private mutating func startJoined(
    _ cut: CutHeader, _ buf: UnsafeBufferPointer<UInt8>, _ split: SplitLine, deferred: Bool
  ) -> Bool {
    let continued = cut.prefixed ? !split.prefixed : cut.fullWidth
    guard continued, split.textEnd > split.textStart, split.caller == cut.caller else {
      return false
    }
    var joined = cut.text
    let next = UnsafeBufferPointer(rebasing: buf[split.textStart..<split.textEnd])
    var p = 0
    if !cut.fullWidth {
      while let last = joined.last, last == 0x20 || last == 0x09 { joined.removeLast() }
      joined.append(0x20)
      while p < next.count, next[p] == 0x20 || next[p] == 0x09 { p += 1 }
    }
    joined += next[p...]
    let match: (Int, Int, [String])? = joined.withUnsafeBufferPointer { text in
      var from = 0
      while let (pattern, at) = detector.findHeader(text, 0, text.count, from: from) {
        if let (format, captures) = detector.matchFormat(pattern, text),
          !detector.catchAll[pattern][format]
        {
          return (pattern, format, captures)
        }
        from = at + 1
      }
      return nil
    }
    guard let (pattern, format, captures) = match else { return false }
    if detector.table[pattern].followsReport, linesSinceReport < Self.followUpWindow {
      return false
    }
    current = ReportInProgress(
      pattern: pattern, format: format, captures: captures, start: cut.offset,
      caller: split.caller)
    swap(&current!.text, &spareText)
    swap(&current!.lines, &spareLines)
    current!.endsAtRule = detector.table[pattern].formats[format].endsAtRule
    cut.text.withUnsafeBufferPointer { text in
      let piece = SplitLine(
        textStart: 0, textEnd: text.count, caller: cut.caller, hasTimestamp: cut.prefixed,
        prefixed: cut.prefixed, lineStart: 0)
      current!.append(
        text, piece, end: cut.end, flags: detector.keywordFlags(text, 0, text.count),
        deferred: false)
    }
    current!.append(
      buf, split, end: offset, flags: detector.keywordFlags(buf, split.textStart, split.textEnd),
      deferred: deferred)
    return true
  }

  /// What `feed` does with a line of `feedLines`'s buffer that holds no header or keyword
  /// bytes while a report is in progress (most report lines), without its header search and
  /// the rest of its state machine.
  @inline(__always)
  private mutating func feedPlainReportLine(
    _ buf: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int, next: Int,
    into completed: inout [CrashReport]
  ) {
    offset += next - lo
    let split = splitLine(buf, lo, hi)
    let caller = current!.caller
    if caller == split.caller || caller.kind == .none || split.caller.kind == .none {
      current!.append(buf, split, end: offset, flags: 0, deferred: true)
    }
    if current!.ended(buf, split) || current!.lineCount >= detector.maxReportLines
      || current!.byteCount >= detector.maxReportBytes
    {
      endCurrent(buf, into: &completed)
    }
  }

  /// The line's `ReportKeyword` bits (none when the range search found no needle in it).
  private func flags(_ buf: UnsafeBufferPointer<UInt8>, _ split: SplitLine, _ needlePossible: Bool)
    -> UInt8
  {
    needlePossible ? detector.keywordFlags(buf, split.textStart, split.textEnd) : 0
  }

  /// Whether the report in progress was cut short by another CPU's header, rather than
  /// ended by a new crash: with caller ids, the header comes from another caller; without
  /// them, a header of the same format comes before the report printed more than a line
  /// after its own (two CPUs hitting the same WARN_ON print their lines in turn), and the
  /// report needs its body for a frame. A header repeated byte for byte is a replayed
  /// console, not a second CPU.
  private func holds(
    _ started: (pattern: Int, format: Int, captures: [String]), _ buf: UnsafeBufferPointer<UInt8>,
    _ split: SplitLine
  ) -> Bool {
    guard held == nil, let report = current, !detector.table[started.pattern].followsReport
    else { return false }
    let caller = report.caller
    if caller.kind != .none, split.caller.kind != .none { return caller != split.caller }
    guard caller.kind == .none, split.caller.kind == .none, report.lineCount <= 2,
      started.pattern == report.pattern, started.format == report.format,
      detector.table[report.pattern].formats[report.format].title.contains("$F")
    else { return false }
    return !report.repeatsHeader(buf, split, afterLines: 1)
  }

  /// A line while a report is held. With caller ids, a line of the held report's caller is
  /// its alone (a new header from it ends it first); returns whether the line was taken.
  private mutating func feedHeld(
    _ buf: UnsafeBufferPointer<UInt8>, _ split: SplitLine, started: Bool, deferred: Bool,
    into completed: inout [CrashReport]
  ) -> Bool {
    guard held!.caller.kind != .none, split.caller == held!.caller else { return false }
    if started {
      completed.append(finishHeld(buf))
      return false
    }
    held!.append(
      buf, split, end: offset, flags: detector.keywordFlags(buf, split.textStart, split.textEnd),
      deferred: deferred)
    if held!.ended(buf, split) || held!.lineCount >= detector.maxReportLines
      || held!.byteCount >= detector.maxReportBytes
    {
      completed.append(finishHeld(buf))
    }
    return true
  }

  /// Ends the report in progress. A held report without caller ids shared its lines and ends
  /// with it (first: it began first); one with caller ids goes on as the report in progress,
  /// unless `all` (a new crash begins, or the input ends) ends it too.
  /// Reports come out in the order they began: one that ended while a report begun before
  /// it goes on waits in `waiting`.
  private mutating func endCurrent(
    _ buf: UnsafeBufferPointer<UInt8>, into completed: inout [CrashReport], all: Bool = false
  ) {
    if held != nil, held!.caller.kind == .none || all {
      completed.append(finishHeld(buf))
      completed += waiting
      waiting.removeAll()
    }
    let report = finishCurrent(buf)
    if held != nil {
      held!.materialize(buf)
      current = held
      held = nil
      waiting.append(report)
      return
    }
    completed.append(consume report)
    completed += waiting
    waiting.removeAll()
  }

  private mutating func finishHeld(_ buf: UnsafeBufferPointer<UInt8>) -> CrashReport {
    // Moved out, not copied: a copy retains every array of the report in progress.
    let report = held.take()!
    return report.build(detector: detector, origin: origin, buf: buf)
  }

  /// Ends the report in progress; `buf` holds its pending lines.
  private mutating func finishCurrent(_ buf: UnsafeBufferPointer<UInt8>) -> CrashReport {
    var report = current.take()!
    linesSinceReport = 0
    let built = report.build(detector: detector, origin: origin, buf: buf)
    report.text.removeAll(keepingCapacity: true)
    report.lines.removeAll(keepingCapacity: true)
    spareText = report.text
    spareLines = report.lines
    return built
  }
}

let interleavedStackMessages: [[UInt8]] = [
  "FAULT_INJECTION: forcing a failure", "vmalloc: allocation failure:",
  "FAULT_FLAG_ALLOW_RETRY missing",
].map { Array($0.utf8) }

private let endMarkers: [[UInt8]] = ["---[ end trace", "---[ end Kernel panic"].map {
  Array($0.utf8)
}

/// A header line no format took apart, with what is needed to start a report at it.
struct CutHeader: Sendable {
  /// Shorter header lines are whole lines, not cut ones.
  static let minimumLength = 24
  var text: [UInt8]
  var offset: Int
  var end: Int
  var caller: CallerContext
  var prefixed: Bool
  var fullWidth: Bool

  init(_ buf: UnsafeBufferPointer<UInt8>, _ split: SplitLine, offset: Int, end: Int) {
    text = Array(buf[split.textStart..<split.textEnd])
    self.offset = offset
    self.end = end
    caller = split.caller
    prefixed = split.prefixed
    switch split.textEnd - split.lineStart {
    case 80, 100, 120, 132, 160: fullWidth = true
    default: fullWidth = false
    }
  }
}

/// One line of a report in progress: its text's range (in the report's copied text or in the
/// buffer being scanned) and its `ReportKeyword` bits.
struct ReportLine: Sendable, Equatable {
  var start: Int
  var end: Int
  var flags: UInt8
}

/// A crash report being collected: its prefix-free lines in one buffer, bounded by the
/// detector's limits.
struct ReportInProgress: Sendable {
  var pattern: Int
  var format: Int
  var captures: [String]
  var start: Int
  var end: Int = 0
  var caller: CallerContext
  /// The format's reports end at a "=====" rule (KASAN, KMSAN, KFENCE, UBSAN).
  var endsAtRule = false
  /// Its lines are mixed with another CPU's report (no caller ids to tell them apart).
  var interleaved = false
  /// The lines copied so far, joined by newlines.
  var text: [UInt8] = []
  /// Every line: the first `copied` are ranges of `text`; the rest are ranges of the buffer
  /// `feedLines` is scanning, copied into `text` before it returns. A report that starts and
  /// ends within one buffer (most do) is copied once, into its `ReportBody`.
  var lines: [ReportLine] = []
  var copied = 0
  var lineCount: Int { lines.count }
  /// The report text's size: the lines and a newline between each two.
  private(set) var byteCount = 0

  init(pattern: Int, format: Int, captures: [String], start: Int, caller: CallerContext) {
    self.pattern = pattern
    self.format = format
    self.captures = captures
    self.start = start
    self.caller = caller
  }

  /// Adds the line's text; `deferred`: `buf` is `feedLines`'s buffer, copied later.
  @inline(__always)
  mutating func append(
    _ buf: UnsafeBufferPointer<UInt8>, _ split: SplitLine, end: Int, flags: UInt8, deferred: Bool
  ) {
    byteCount += (lines.isEmpty ? 0 : 1) + split.textEnd - split.textStart
    var layout = split.prefixed ? ReportKeyword.prefixed : 0
    switch split.textEnd - split.lineStart {
    case 80, 100, 120, 132, 160: layout |= ReportKeyword.fullWidth
    default: break
    }
    lines.append(ReportLine(start: split.textStart, end: split.textEnd, flags: flags | layout))
    if !deferred { materialize(buf) }
    self.end = end
  }

  /// The line repeats the report's header after some of the report (a register dump) but
  /// before any stack was printed: the console printed the same message twice (a replayed console buffer, a second console interleaved), not a
  /// second crash.
  func repeatsHeader(
    _ buf: UnsafeBufferPointer<UInt8>, _ split: SplitLine, afterLines minimum: Int = 3
  ) -> Bool {
    guard let first = lines.first, lines.count >= minimum, lines.count < 80,
      !lines.contains(where: { $0.flags & ReportKeyword.stack != 0 })
    else { return false }
    let line = UnsafeBufferPointer(rebasing: buf[split.textStart..<split.textEnd])
    return text.withUnsafeBufferPointer { copiedText in
      let source = copied > 0 ? copiedText : buf
      let header = UnsafeBufferPointer(rebasing: source[first.start..<first.end])
      return header.count == line.count && header.elementsEqual(line)
    }
  }

  /// Copies the lines still in `buf` (before it goes away).
  mutating func materialize(_ buf: UnsafeBufferPointer<UInt8>) {
    while copied < lines.count {
      if copied > 0 { text.append(0x0a) }
      let range = lines[copied].start..<lines[copied].end
      lines[copied].start = text.count
      text.append(contentsOf: UnsafeBufferPointer(rebasing: buf[range]))
      lines[copied].end = text.count
      copied += 1
    }
  }

  /// "---[ end trace ...]---" (and "---[ end Kernel panic") close a report; they start the
  /// message text, so only the line's start is checked.
  /// (Declared mutating, though it changes nothing, so that `current!.ended` is called in
  /// place instead of on a copy of the whole report.)
  mutating func ended(_ buf: UnsafeBufferPointer<UInt8>, _ split: SplitLine) -> Bool {
    var p = split.textStart
    while p < split.textEnd, buf[p] == 0x20 { p += 1 }
    // Sanitizer reports close with a rule of '=' (the opening one precedes the header).
    if endsAtRule, lineCount > 1, split.textEnd - p >= 20, buf[p] == UInt8(ascii: "="),
      (p..<(p + 20)).allSatisfy({ buf[$0] == UInt8(ascii: "=") })
    {
      return true
    }
    guard split.textEnd - p >= 14, buf[p] == UInt8(ascii: "-"), buf[p + 3] == UInt8(ascii: "[")
    else { return false }
    for marker in endMarkers where hasPrefix(buf, p, marker) { return true }
    return false
  }

  /// The report; `buf` holds the pending lines.
  func build(detector: CrashDetector, origin: LogOrigin, buf: UnsafeBufferPointer<UInt8>)
    -> CrashReport
  {
    text.withUnsafeBufferPointer { copiedText in
      var lines: [UnsafeBufferPointer<UInt8>] = []
      lines.reserveCapacity(lineCount)
      for (i, line) in self.lines.enumerated() {
        let source = i < copied ? copiedText : buf
        lines.append(UnsafeBufferPointer(rebasing: source[line.start..<line.end]))
      }
      let lineFlags = self.lines.map(\.flags)
      // The first stack's frames follow the first line holding a stack keyword.
      let stackLine = lineFlags.firstIndex { $0 & ReportKeyword.stack != 0 }
      var framesFrom: Int?
      var terminatorLines: [Int] = []
      // The one copy of the text that the report keeps.
      let bodyText = [UInt8](unsafeUninitializedCapacity: byteCount) { out, count in
        var at = 0
        for (i, line) in lines.enumerated() {
          if i > 0 {
            out[at] = 0x0a
            at += 1
          }
          if let stackLine, i > stackLine {
            if i == stackLine + 1 { framesFrom = at }
            if lineFlags[i] & ReportKeyword.terminator != 0 { terminatorLines.append(at) }
          }
          if let source = line.baseAddress, let target = out.baseAddress {
            (target + at).update(from: source, count: line.count)
          }
          at += line.count
        }
        count = at
      }
      // Without caller ids, a message that prints its own stack (fault injection, an
      // allocation failure) interleaves: the title and frame come from the lines before it
      // (syzkaller's report end).
      if caller.kind == .none, lines.count > 1,
        let cut = lines.indices.dropFirst().prefix(ReportBuilder.analysisLines).first(where: {
          lineFlags[$0] & ReportKeyword.interleaved != 0
        })
      {
        lines.removeSubrange(cut...)
      }
      // Console lines a mail client ran together are split again, wrapped ones joined, for
      // the analysis (the report's text stays as read).
      var analysed = (lines: lines, flags: lineFlags)
      if bodyText.withUnsafeBufferPointer({ LineJoiner.mayHoldEmbeddedStamp($0) }),
        let split = LineJoiner.splitRunTogether(
          lines, lineFlags, detector: detector, limit: ReportBuilder.analysisLines)
      {
        analysed = split
      }
      if let joined = LineJoiner.joinWrapped(
        analysed.lines, analysed.flags, limit: ReportBuilder.analysisLines)
      {
        defer { joined.arena.deallocate() }
        return ReportBuilder(
          detector: detector, report: self, lines: joined.lines, flags: joined.flags
        )
        .build(
          origin: origin, text: bodyText, framesFrom: framesFrom, terminatorLines: terminatorLines)
      }
      if analysed.lines.count != lines.count {
        return ReportBuilder(
          detector: detector, report: self, lines: analysed.lines, flags: analysed.flags
        )
        .build(
          origin: origin, text: bodyText, framesFrom: framesFrom, terminatorLines: terminatorLines)
      }
      return ReportBuilder(detector: detector, report: self, lines: lines, flags: lineFlags).build(
        origin: origin, text: bodyText, framesFrom: framesFrom, terminatorLines: terminatorLines)
    }
  }
}
