/// Turns a collected report into a `CrashReport`: picks the format, the guilty frame, the
/// title and the metadata (CPU, PID, comm, taint, version, modules).
typealias Line = UnsafeBufferPointer<UInt8>

@inline(__always) func withLine<R>(_ line: Line, _ body: (Line) -> R) -> R { body(line) }

struct ReportBuilder {
  let detector: CrashDetector
  let report: ReportInProgress
  let lines: [Line]
  /// `ReportKeyword` bits of each line (at least as many as `lines`).
  let flags: [UInt8]

  /// The report; `text` is its lines joined by newlines (kept by the report), its first
  /// stack's frame lines from `framesFrom` on (nil: no stack keyword, or none after it).
  func build(origin: LogOrigin, text: [UInt8], framesFrom: Int?, terminatorLines: [Int] = [])
    -> CrashReport
  {
    let oops = detector.table[report.pattern]
    // The header chose a format; a later one may fit better when this one's extra lines are
    // missing (KASAN without "Read of size").
    var format = oops.formats[report.format]
    var formatIndex = report.format
    var captures = report.captures
    var extraMissing = false
    // The usual case: the header's format needs no further lines; its captures stand.
    for index in report.format..<oops.formats.count where !format.extra.isEmpty {
      let candidate = oops.formats[index]
      guard let headerCaptures = candidate.line.match(lines[0]) else { continue }
      if let extraCaptures = matchExtras(candidate.extra, lines) {
        format = candidate
        formatIndex = index
        captures = headerCaptures + extraCaptures
        extraMissing = false
        break
      }
      extraMissing = true
    }
    // A header cut by a console or mail client: matched again as `LineJoiner` joined it, or
    // joined here with its continuation (a log without console prefixes).
    var headerLine = Array(lines[0])
    if format.id.hasSuffix("-wrapped") {
      let candidates = [headerLine] + (LineJoiner.joinedHeader(lines, flags).map { [$0] } ?? [])
      for candidate in candidates {
        guard
          let (index, joinedCaptures) = candidate.withUnsafeBufferPointer({
            detector.matchFormat(report.pattern, $0)
          }), !oops.formats[index].id.hasSuffix("-wrapped"), oops.formats[index].extra.isEmpty,
          !detector.catchAll[report.pattern][index]
        else { continue }
        headerLine = candidate
        format = oops.formats[index]
        formatIndex = index
        captures = joinedCaptures
        break
      }
    }
    let patternID = detector.patternIDs[report.pattern][formatIndex]
    let stack = stackStart(lines)
    let registers = PowerRegisters.find(lines.prefix(Self.analysisLines))
    let powerpc = registers != nil || hasUnreliableEntry()
    var frame: String?
    switch format.frame {
    case .none: frame = nil
    case .stack(let recipe):
      frame = guiltyFrame(recipe, captures: captures, lines: lines, powerpc: powerpc)
    case .line(let after, let patterns):
      // Lockdep names the function; a generic one (a lock helper, a workqueue dispatcher) is
      // replaced by the first real frame of the stack.
      frame = lineFrame(after: after, patterns: patterns, lines: lines)
      if var f = frame,
        f.withUTF8({ genericSkipSet.matches($0) || stallAnchorSegmentSet.matches($0) })
      {
        frame =
          guiltyFrame(Self.firstFrameRecipe, captures: [], lines: lines, powerpc: powerpc) ?? f
      }
    }
    // powerpc: the register dump names the function (NIP, LR), as a powerpc developer reads it.
    var namedByRegisters = false
    if let rule = powerFrameRules[patternID], let regs = registers {
      var recipeSkips: SkipSet?
      if case .stack(let recipe) = format.frame { recipeSkips = recipe.skipSet }
      if let named = powerFrame(rule, regs, header: headerLine, skips: recipeSkips) {
        frame = named.frame
        namedByRegisters = named.fromRegisters
      }
    }
    // Interleaved with another CPU's report (no caller ids): neither report's register and
    // stack lines can be told apart; the header's own site ("at file:line func+off/len") can.
    if report.interleaved, frame != nil || byteRange(format.title, "$F") != nil,
      let site = headerSite(headerLine)
    {
      frame = site
    }
    frame = frame.map(stripFramePrefix)
    var corruptedReason: String?
    if report.interleaved { corruptedReason = "interleaved with another CPU's report" }
    if format.alwaysCorrupted {
      corruptedReason = corruptedReason ?? "the header alone, the rest of the report is missing"
    }
    if extraMissing { corruptedReason = corruptedReason ?? "expected report lines are missing" }
    var titleTemplate = format.title
    if let index = format.lowAddress, let nullTitle = format.nullTitle, index < captures.count,
      let address = parseAddress(captures[index]), address < 0x10000
    {
      titleTemplate = nullTitle
    }
    if byteRange(titleTemplate, "$F") != nil, frame == nil {
      corruptedReason = corruptedReason ?? "no guilty frame found"
    }
    if corruptedReason == nil, !format.noStackTrace, stack == nil, !namedByRegisters {
      corruptedReason = "no stack trace in report"
    }
    // A "Call Trace:" followed by no frame: the console lost the stack.
    if corruptedReason == nil, !format.noStackTrace, let stack, !hasFrames(after: stack),
      !namedByRegisters
    {
      corruptedReason = "no frames in a stack trace"
    }
    let title = expand(titleTemplate, captures: captures, frame: frame ?? "corrupted")
    var kind = format.kind
    var typeRule = format.type
    if titleTemplate != format.title {
      kind = .nullDeref
      typeRule = .fixed("NULL-POINTER-DEREFERENCE")
    }
    // The CPU/Comm and Modules lines come before the stack; they are parsed on first access.
    let metadataLines = min(lines.count, min(60, max(stack ?? 60, 8)))
    // (A line count of the analysed lines, applied to the text's lines, as it always was.)
    var metadataEnd = text.count
    if metadataLines < report.lines.count {
      metadataEnd = metadataLines - 1
      for line in report.lines.prefix(metadataLines) { metadataEnd += line.end - line.start }
    }
    return CrashReport(
      kind: kind, type: crashType(typeRule, captures), title: title, frame: frame,
      corruptedReason: corruptedReason,
      body: ReportBody(
        text: text, metadataEnd: metadataEnd, framesFrom: framesFrom,
        terminatorLines: terminatorLines),
      start: report.start, end: report.end, origin: origin,
      patternID: patternID)
  }

  /// The frame by a powerpc rule; `fromRegisters`: named by the NIP, LR or header line.
  private func powerFrame(
    _ rule: PowerFrameRule, _ regs: PowerRegisters, header: [UInt8], skips: SkipSet?
  ) -> (frame: String, fromRegisters: Bool)? {
    func generic(_ name: String) -> Bool {
      var name = name
      return name.withUTF8 { n in
        genericSkipSet.matches(n) || powerSkipSet.matches(n) || (skips?.matches(n) ?? false)
      }
    }
    switch rule {
    case .site:
      if let site = headerSite(header) { return (site, true) }
      if let nip = regs.nip { return (nip, true) }
    case .instruction:
      // A list-debug check that BUGs on its caller's list (the "kernel BUG at
      // lib/list_debug.c" line may be lost): the caller is the culprit, as for a fault.
      if var nip = regs.nip, !nip.withUTF8({ powerCheckerSet.matches($0) }) { return (nip, true) }
      if let nip = regs.nip, !generic(nip) { return (nip, true) }
      if let lr = regs.lr, !generic(lr) { return (lr, true) }
    case .fault, .stall:
      if let nip = regs.nip, !(rule == .fault && regs.nipInDataSymbol), !generic(nip) {
        return (nip, true)
      }
      if let lr = regs.lr, !generic(lr) { return (lr, true) }
    }
    return powerTraceFrame(generic).map { ($0, false) }
  }

  /// The function a header names with its offset ("WARNING: ... at file:line func+off/len").
  private func headerSite(_ header: [UInt8]) -> String? {
    header.withUnsafeBufferPointer { h in
      firstSymbolWithOffset(h, from: 0).map { string(h, $0.lowerBound, $0.upperBound) }
    }
  }

  /// A trace entry marked "(unreliable)": powerpc's unwinder prints one (stacks without a
  /// register dump: sleep in atomic, hung tasks, lockdep).
  /// Only lines whose keyword flags hold "(unreliable)" are looked at (the scanner's search
  /// found it; most reports are x86 ones without it).
  private func hasUnreliableEntry() -> Bool {
    for index in lines.indices.prefix(Self.analysisLines).dropFirst()
    where flags[index] & ReportKeyword.unreliable != 0 {
      let line = lines[index]
      var e = line.count
      while e > 0, line[e - 1] == 0x20 || line[e - 1] == 0x09 { e -= 1 }
      if e > unreliableMark.count, line[e - 1] == UInt8(ascii: ")"),
        hasPrefix(line, e - unreliableMark.count, unreliableMark)
      {
        return true
      }
    }
    return false
  }

  /// The first trace entry that is not generic; powerpc's "(unreliable)" first entry (the LR
  /// save slot of the faulting frame) counts.
  private func powerTraceFrame(_ generic: (String) -> Bool) -> String? {
    let analysed = lines.prefix(Self.analysisLines)
    guard
      let start = analysed.indices.first(where: {
        flags[$0] & (ReportKeyword.stack | ReportKeyword.startMarker) != 0
      })
    else { return nil }
    var seen = 0
    for index in analysed.indices.dropFirst(start + 1) {
      let line = analysed[index]
      let t = classifyTraceLine(line)
      guard let name = t.function(in: line), t.role == .frame else {
        if seen > 0, flags[index] & ReportKeyword.terminator != 0 { break }
        continue
      }
      seen += 1
      if seen > 64 { break }
      if !generic(name) { return name }
    }
    return nil
  }

  private func matchExtras(_ extras: [LinePattern], _ lines: [Line]) -> [String]? {
    var captures: [String] = []
    var index = 1
    for pattern in extras {
      var found = false
      while index < lines.count {
        defer { index += 1 }
        if let c = pattern.match(lines[index]) {
          captures += c
          found = true
          break
        }
      }
      if !found { return nil }
    }
    return captures
  }

  private func expand(_ template: String, captures: [String], frame: String) -> String {
    var template = template
    var out: [UInt8] = []
    out.reserveCapacity(template.utf8.count + 48)
    template.withUTF8 { t in
      // The text between placeholders is copied a run at a time.
      var run = 0
      var i = 0
      while i + 1 < t.count {
        guard t[i] == UInt8(ascii: "$") else {
          i += 1
          continue
        }
        let c = t[i + 1]
        let digit = Int(c) - 0x30
        var value: String?
        if c == UInt8(ascii: "F") {
          value = frame
        } else if digit >= 1, digit <= 9, digit <= captures.count {
          value = TitleNormalizer.normalize(captures[digit - 1])
        }
        guard let value else {
          i += 1
          continue
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: t[run..<i]))
        out += value.utf8
        i += 2
        run = i
      }
      out.append(contentsOf: UnsafeBufferPointer(rebasing: t[run...]))
    }
    return String(decoding: out, as: UTF8.self)
  }

  private func crashType(_ rule: CrashTypeRule, _ captures: [String]) -> String {
    switch rule {
    case .fixed(let type): return type
    case .sanitizer(let prefix, let bug, let access):
      let bugClass = bug < captures.count ? captures[bug] : ""
      let accessWord =
        access.flatMap { $0 < captures.count ? captures[$0].uppercased() : nil } ?? "READ"
      if (byteRange(bugClass, "free") != nil) && !(byteRange(bugClass, "after-free") != nil) {
        return "\(prefix)-INVALID-FREE"
      }
      if byteRange(bugClass, "use-after-free") != nil {
        return "\(prefix)-USE-AFTER-FREE-\(accessWord)"
      }
      if byteRange(bugClass, "uninit") != nil { return "\(prefix)-UNINIT-VALUE" }
      if (byteRange(bugClass, "memory-corruption") != nil) || bugClass == "memory" {
        return "\(prefix)-MEMORY-CORRUPTION"
      }
      return "\(prefix)-\(accessWord)"
    }
  }

  /// Lines examined for the title and frame: a stack is at the report's start, and long
  /// reports (all-CPU backtraces) would otherwise cost time for nothing.
  static let analysisLines = 300
  static let firstFrameRecipe = StackRecipe(useIP: false)

  private func hasFrames(after stack: Int) -> Bool {
    for i in lines.indices.dropFirst(stack + 1).prefix(15) {
      let t = classifyTraceLine(lines[i])
      if t.name != nil, t.role == .frame || t.role == .instructionPointer { return true }
      if flags[i] & ReportKeyword.noStack != 0 { return true }
    }
    return false
  }

  /// Index of the first line naming a stack ("Call Trace:", "backtrace:"), if any.
  private func stackStart(_ lines: [Line]) -> Int? {
    lines.indices.prefix(Self.analysisLines).first { flags[$0] & ReportKeyword.stack != 0 }
  }

  func guiltyFrame(_ recipe: StackRecipe, captures: [String], lines: [Line], powerpc: Bool = false)
    -> String?
  {
    let extraSkips = recipe.skipSet
    let suffixes = recipe.skipSuffixes
    func skipped(_ name: Line) -> Bool {
      genericSkipSet.matches(name) || extraSkips.matches(name)
        || (powerpc && powerSkipSet.matches(name))
        || (!suffixes.isEmpty && suffixes.contains { hasSuffix(name, $0) })
    }
    func skipped(_ name: String) -> Bool {
      var name = name
      return name.withUTF8 { skipped($0) }
    }
    let analysed = lines.prefix(Self.analysisLines)
    if let index = recipe.headerCapture, index < captures.count, !skipped(captures[index]) {
      return captures[index]
    }
    // The faulting instruction pointer, wherever it is printed.
    if recipe.useIP, recipe.extractor == .first {
      var ipUnsymbolized = false
      for i in analysed.indices.dropFirst() where mayBeRegisterLine(analysed[i]) {
        let line = analysed[i]
        let t = classifyTraceLine(line)
        // "NIP [c000...]" with the symbol wrapped to the next line by a console or a mail
        // client: the entry is the two lines together.
        let wrapped =
          t.name == nil && i + 1 < analysed.endIndex ? continuedSymbol(analysed[i + 1]) : nil
        if t.role == .linkRegister, ipUnsymbolized {
          // A jump to a bad address: the caller in the link register is the culprit.
          if let name = t.nameBytes(in: line), !skipped(name) { return t.function(in: line) }
          if let wrapped, !skipped(wrapped) { return wrapped }
          break
        }
        guard t.role == .instructionPointer else { continue }
        if let name = t.nameBytes(in: line) {
          if !skipped(name) { return t.function(in: line) }
          break
        }
        if let wrapped {
          if !skipped(wrapped) { return wrapped }
          break
        }
        ipUnsymbolized = true
      }
    }
    guard recipe.useTrace else { return nil }
    // Frames after the start marker (or after the header).
    var startIndex: Int? = recipe.startMarkers.isEmpty ? 1 : nil
    if startIndex == nil, recipe.defaultMarkers {
      startIndex = analysed.indices.dropFirst().first { flags[$0] & ReportKeyword.startMarker != 0 }
    } else if startIndex == nil {
      let markers = recipe.startMarkerBytes
      for (i, line) in analysed.enumerated().dropFirst()
      where markers.contains(where: { indexOf(line, $0, from: 0) != nil }) {
        // The marker line itself may be a frame (an IP line, "apic_timer_interrupt+0x").
        startIndex = i
        break
      }
    }
    guard let startIndex, startIndex < analysed.count else { return nil }
    var seen = 0
    // Frames kept by the stall and hung extractors, as (line, name range): strings are made
    // only for the frame returned.
    var previous: (line: Int, name: Range<Int>)?
    var firstKept: (line: Int, name: Range<Int>)?
    var hungAnchor: (line: Int, name: Range<Int>)?
    func text(_ kept: (line: Int, name: Range<Int>)) -> String {
      string(analysed[kept.line], kept.name.lowerBound, kept.name.upperBound)
    }
    for index in startIndex..<analysed.count {
      let line = analysed[index]
      let t = classifyTraceLine(line)
      guard let range = t.name else {
        if seen > 0, flags[index] & ReportKeyword.terminator != 0 { break }
        continue
      }
      let name = UnsafeBufferPointer(rebasing: line[range])
      guard !t.questionable else { continue }
      // Fault injection prints its own stack into the report: what follows is not this
      // crash's stack (syzkaller's corrupted lines).
      if t.role == .frame, isFaultInjectionFrame(name) { break }
      guard t.role == .frame || (recipe.extractor == .stall && t.role == .instructionPointer) else {
        continue
      }
      seen += 1
      if seen > 128 { break }
      switch recipe.extractor {
      case .first:
        if !skipped(name) { return t.function(in: line) }
      case .stall:
        let skip = skipped(name)
        if firstKept == nil, !skip,
          let collapse = stallCollapseBytes.first(where: { hasPrefix(name, 0, $0.prefix) })
        {
          return collapse.name
        }
        if isStallAnchor(name) {
          if let previous { return stripSyscallPrefix(text(previous)) }
          continue
        }
        if !skip {
          previous = (index, range)
          firstKept = firstKept ?? previous
        }
      case .hung:
        if hasPrefix(name, 0, rtnlLock) { return "rtnl_lock" }
        if synchronizers.contains(where: { hasPrefix(name, 0, $0) }) { return "synchronize_rcu" }
        if hungAnchor == nil, !hungSkipBytes.contains(where: { indexOf(name, $0, from: 0) != nil }),
          !skipped(name)
        {
          hungAnchor = (index, range)
        }
      }
    }
    if recipe.extractor == .hung { return hungAnchor.map(text) }
    return firstKept.map { stripSyscallPrefix(text($0)) }
  }

  private func stripSyscallPrefix(_ name: String) -> String {
    var n = name
    for prefix in syscallPrefixes where n.hasPrefix(prefix) {
      n.removeFirst(prefix.count)
    }
    if n.hasPrefix("se_sys_") { n.removeFirst(3) }
    return n
  }

  private func lineFrame(after: String, patterns: [LinePattern], lines: [Line]) -> String? {
    let marker = Array(after.utf8)
    var armed = marker.isEmpty
    var budget = 40
    for line in lines.dropFirst() {
      if !armed {
        armed = withLine(line) { indexOf($0, marker, from: 0) != nil }
        continue
      }
      for pattern in patterns {
        if let c = pattern.match(line), let f = c.first, !f.isEmpty { return f }
      }
      // Newer kernels print the function alone on the next line: " ipmr_mfc_seq_stop+0xdd/0x140".
      let t = classifyTraceLine(line)
      if t.role == .frame, !t.questionable, let f = t.function(in: line) { return f }
      budget -= 1
      if budget == 0 { break }
    }
    return nil
  }

  private func parseAddress(_ text: String) -> UInt64? {
    var t = Substring(text)
    if t.hasPrefix("0x") || t.hasPrefix("0X") { t = t.dropFirst(2) }
    while let last = t.last, !last.isHexDigit { t = t.dropLast() }
    return UInt64(t, radix: 16)
  }

}

/// The CPU, PID, comm, taint, kernel version and modules from a report's first lines (`text`
/// ends with the last line that may hold them). Only the lines holding a tag are looked at:
/// each tag is searched once over the text, not line by line.
func parseMetadata(_ text: UnsafeBufferPointer<UInt8>) -> ReportMetadata {
  var result = ReportMetadata()
  guard let base = text.baseAddress else { return result }
  var needCPU = true
  var needModules = true
  var needVersion = true
  // The next position of each tag, searched again once passed.
  var next = (cpu: -1, modules: -1, taint: -1, notTainted: -1)
  func find(_ tag: [UInt8], _ from: Int) -> Int { indexOf(text, tag, from: from) ?? text.count }
  var start = 0
  while start < text.count, needCPU || needModules || needVersion {
    var hit = text.count
    if needCPU {
      if next.cpu < start { next.cpu = find(cpuTag, start) }
      hit = next.cpu
    }
    if needModules {
      if next.modules < start { next.modules = find(modulesTag, start) }
      hit = min(hit, next.modules)
    }
    if needVersion {
      if next.taint < start { next.taint = find(taintTag, start) }
      if next.notTainted < start { next.notTainted = find(notTaintedTag, start) }
      hit = min(hit, next.taint, next.notTainted)
    }
    guard hit < text.count else { break }
    let lineStart = lastNewline(base + start, hit - start).map { start + $0 + 1 } ?? start
    let end = memchrNewline(base + hit, text.count - hit).map { hit + $0 } ?? text.count
    parseMetadataLine(
      UnsafeBufferPointer(rebasing: text[lineStart..<end]), &result,
      needCPU: &needCPU, needModules: &needModules, needVersion: &needVersion)
    start = end + 1
  }
  return result
}

/// What one of the report's first lines says (a line without a tag says nothing).
private func parseMetadataLine(
  _ line: UnsafeBufferPointer<UInt8>, _ result: inout ReportMetadata, needCPU: inout Bool,
  needModules: inout Bool, needVersion: inout Bool
) {
  if needCPU, indexOf(line, cpuTag, from: 0) != nil,
    let c = cpuLine.match(line) ?? (result.cpu == nil ? warnCPULine.match(line) : nil),
    result.pid == nil || Int(c[1]) == result.pid
  {
    // (A CPU line naming another task than the header did is another CPU's report's,
    // interleaved with this one; the same task may have moved to another CPU.)
    result.cpu = Int(c[0])
    result.pid = Int(c[1])
    if c.count > 2 {
      parseCommAndTaint(c[2], into: &result)
      needCPU = false
    }
  }
  if needModules, indexOf(line, modulesTag, from: 0) != nil, let m = modulesLine.match(line) {
    var list = m[0]
    if let bracket = byteRange(list, " [last unloaded") {
      list = String(list[..<bracket.lowerBound])
    }
    // Split when the names are asked for (as bytes: a Character split of a long module
    // list cost more than the rest of the metadata).
    result.moduleList = ModuleList(printed: list)
    needModules = false
  }
  if result.kernelVersion != nil { needVersion = false }
  if needVersion,
    indexOf(line, taintTag, from: 0) != nil || indexOf(line, notTaintedTag, from: 0) != nil
  {
    if isASCII(line) {
      parseCommAndTaintASCII(line, into: &result)
    } else {
      parseCommAndTaint(String(decoding: line, as: UTF8.self), into: &result)
    }
    needVersion = result.kernelVersion == nil
  }
}

private func parseCommAndTaint(_ rest: String, into result: inout ReportMetadata) {
  var bytes = rest
  if bytes.withUTF8({ isASCII($0) }) {
    return bytes.withUTF8 { parseCommAndTaintASCII($0, into: &result) }
  }
  var comm = rest
  var tail = ""
  if let r = byteRange(rest, " Tainted: ") {
    comm = String(rest[..<r.lowerBound])
    tail = String(rest[r.upperBound...])
    var flags: [Substring] = []
    for bytes in tail.utf8.split(separator: 0x20) {
      let word = Substring(bytes)
      if startsWithNumber(word), bytes.contains(0x2e) {
        result.kernelVersion = result.kernelVersion ?? String(word)
        break
      }
      flags.append(word)
    }
    if result.taint == nil, !flags.isEmpty { result.taint = flags.joined(separator: " ") }
  } else if let r = byteRange(rest, " Not tainted ") ?? byteRange(rest, "Not tainted ") {
    comm = String(rest[..<r.lowerBound])
    tail = String(rest[r.upperBound...])
    if let word = tail.utf8.split(separator: 0x20, maxSplits: 1).first {
      result.kernelVersion = result.kernelVersion ?? String(Substring(word))
    }
  }
  if result.comm == nil, byteRange(rest, "Comm:") == nil, !comm.isEmpty,
    comm != rest || !tail.isEmpty
  {
    result.comm = comm.trimmingSpaces()
  }
}

/// `parseCommAndTaint` on ASCII text, as bytes: a String per piece cost more than finding the
/// lines (on ASCII, Characters are bytes, so the results are the same).
private func parseCommAndTaintASCII(
  _ rest: UnsafeBufferPointer<UInt8>, into result: inout ReportMetadata
) {
  var commEnd: Int?
  if let at = indexOf(rest, taintedTag, from: 0) {
    commEnd = at
    var flags: [UInt8] = []
    forEachWord(rest, from: at + taintedTag.count) { word in
      if isDecimal(word[0]), word.contains(0x2e) {
        result.kernelVersion = result.kernelVersion ?? String(decoding: word, as: UTF8.self)
        return false
      }
      if !flags.isEmpty { flags.append(0x20) }
      flags += word
      return true
    }
    if result.taint == nil, !flags.isEmpty { result.taint = String(decoding: flags, as: UTF8.self) }
  } else if let (at, count) = indexOf(rest, spacedNotTainted, from: 0).map({
    ($0, spacedNotTainted.count)
  }) ?? indexOf(rest, notTaintedWord, from: 0).map({ ($0, notTaintedWord.count) }) {
    commEnd = at
    forEachWord(rest, from: at + count) { word in
      result.kernelVersion = result.kernelVersion ?? String(decoding: word, as: UTF8.self)
      return false
    }
  }
  guard result.comm == nil, let commEnd, commEnd > 0, indexOf(rest, commTag, from: 0) == nil
  else { return }
  var s = 0
  var e = commEnd
  while s < e, rest[s] == 0x20 { s += 1 }
  while e > s, rest[e - 1] == 0x20 { e -= 1 }
  result.comm = string(rest, s, e)
}

/// The words (runs of bytes other than spaces) of `text` from `from` on, until `body` returns false.
private func forEachWord(
  _ text: UnsafeBufferPointer<UInt8>, from: Int, _ body: (UnsafeBufferPointer<UInt8>) -> Bool
) {
  var start = from
  var i = from
  while i <= text.count {
    if i == text.count || text[i] == 0x20 {
      if i > start, !body(UnsafeBufferPointer(rebasing: text[start..<i])) { return }
      start = i + 1
    }
    i += 1
  }
}

@inline(__always) func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
  var any: UInt8 = 0
  for b in bytes { any |= b }
  return any < 0x80
}

private let taintedTag = Array(" Tainted: ".utf8)
private let spacedNotTainted = Array(" Not tainted ".utf8)
private let notTaintedWord = Array("Not tainted ".utf8)
private let commTag = Array("Comm:".utf8)

/// The word starts with a digit (an ASCII one without decoding a Character).
private func startsWithNumber(_ word: Substring) -> Bool {
  guard let first = word.utf8.first else { return false }
  if first < 0x80 { return first >= 0x30 && first <= 0x39 }
  return word.first?.isNumber ?? false
}

private let shouldFail = Array("should_fail".utf8)
let unreliableMark = Array("(unreliable)".utf8)
private let shouldFailSlab = Array("should_failslab".utf8)

/// "should_fail+0x", "should_failslab.cold+0x": a fault-injection stack, not the crash's.
func isFaultInjectionFrame(_ name: Line) -> Bool {
  name.elementsEqual(shouldFail) || name.elementsEqual(shouldFailSlab)
}

let stackNotAvailable = Array("(stack is not available)".utf8)
private let rtnlLock = Array("rtnl_lock".utf8)
private let synchronizers = [
  "synchronize_rcu", "synchronize_srcu", "synchronize_net", "synchronize_sched",
]
.map { Array($0.utf8) }
private let hungSkipBytes = hungSkips.map { Array($0.utf8) }
private let stallCollapseBytes = stallCollapses.map {
  (prefix: Array($0.prefix.utf8), name: $0.name)
}
private let cpuTag = Array("CPU: ".utf8)
private let modulesTag = Array("Modules linked in:".utf8)
private let taintTag = Array("Tainted: ".utf8)
private let notTaintedTag = Array("Not tainted".utf8)
private let cpuLine = LinePattern("CPU: {N} PID: {N} Comm: {R}")
private let warnCPULine = LinePattern("CPU: {N} PID: {N} at ")
private let modulesLine = LinePattern("Modules linked in:{R}")
let stackKeywordList: [[UInt8]] = [
  "Call Trace", "Call trace:", "Backtrace:", "backtrace:", "Stack:", "Allocated by task",
].map {
  Array($0.utf8)
}
let frameTerminators: [[UInt8]] = [
  "Instruction dump:", "---[ end trace", "Allocated by task", "Freed by task",
  "The buggy address",
  "Memory state around", "Modules linked in", "irq event stamp", "Showing all locks",
  "Kernel Offset:",
  "Dumping ftrace buffer", "Uninit was created", "Uninit was stored", "Local variable",
].map { Array($0.utf8) }

/// What the scanner notes about each report line (bits of `ReportInProgress.lineFlags`), found
/// by the same search that looks for crash headers, so report building needs no keyword
/// searches of its own.
enum ReportKeyword {
  /// A `stackKeywordList` entry: a stack starts.
  static let stack: UInt8 = 1 << 0
  /// A default `StackRecipe` start marker ("Call Trace:").
  static let startMarker: UInt8 = 1 << 1
  /// An `interleavedStackMessages` entry (fault injection and the like).
  static let interleaved: UInt8 = 1 << 2
  /// A `frameTerminators` entry.
  static let terminator: UInt8 = 1 << 3
  /// "(stack is not available)".
  static let noStack: UInt8 = 1 << 4
  /// Not a keyword: the line had a prefix (timestamp, caller id, syslog header) before its
  /// text, so an unprefixed line after it is a wrapped continuation (`LineJoiner`).
  static let prefixed: UInt8 = 1 << 5
  /// Not a keyword: the whole line, prefix included, is as wide as a console (80, 100, 120,
  /// 132 or 160 columns): a line after it without a prefix continues it mid-word.
  static let fullWidth: UInt8 = 1 << 6
  /// "(unreliable)": a powerpc trace entry may end with it (`hasUnreliableEntry`).
  static let unreliable: UInt8 = 1 << 7
}

/// The needles of each `ReportKeyword` bit, in bit order.
let reportKeywords: [[[UInt8]]] = [
  stackKeywordList, defaultStartMarkers.map { Array($0.utf8) }, interleavedStackMessages,
  frameTerminators, [stackNotAvailable], [], [], [unreliableMark],
]

/// `needle`'s range in `text`, by bytes (String.firstRange goes through Foundation here).
func byteRange(_ text: String, _ needle: String) -> Range<String.Index>? {
  // Native strings are contiguous UTF-8: no copies (this runs for every report).
  var text = text
  var needle = needle
  let at = text.withUTF8 { h in needle.withUTF8 { n in indexOf(h, n) } }
  guard let at else { return nil }
  let lower = text.utf8.index(text.utf8.startIndex, offsetBy: at)
  let upper = text.utf8.index(lower, offsetBy: needle.utf8.count)
  return lower..<upper
}

extension String {
  func trimmingSpaces() -> String {
    var s = Substring(self)
    while s.first == " " { s = s.dropFirst() }
    while s.last == " " { s = s.dropLast() }
    return String(s)
  }
}

/// A line that is only the symbol part of a wrapped trace entry ("  f+0x1a/0x2b", ".f+0x1a"):
/// the function's name (up to its first '.', ELFv1's leading '.' dropped), else nil.
func continuedSymbol(_ line: UnsafeBufferPointer<UInt8>) -> String? {
  var p = 0
  while p < line.count, line[p] == 0x20 || line[p] == 0x09 { p += 1 }
  if p < line.count, line[p] == UInt8(ascii: ".") { p += 1 }
  let start = p
  while p < line.count, isSymbolByte(line[p]), line[p] != UInt8(ascii: ".") { p += 1 }
  guard p > start, !isDecimal(line[start]) else { return nil }
  var q = p
  while q < line.count, line[q] == UInt8(ascii: ".") || isSymbolByte(line[q]) { q += 1 }
  guard q + 2 < line.count, line[q] == UInt8(ascii: "+"), line[q + 1] == UInt8(ascii: "0"),
    line[q + 2] == UInt8(ascii: "x")
  else { return nil }
  return string(line, start, p)
}
