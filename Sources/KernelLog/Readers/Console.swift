/// Cleans a serial console (QEMU/libvirt console files, IPMI SOL) into kernel records: CRLF
/// and lone CRs, ANSI escape sequences and other control bytes are removed; lines without a
/// printk timestamp are userspace (login prompts, init) and are kept with no level; a kernel
/// line interrupted by another printk ("[ 1.1] BUG: unab[ 1.2] other\nle to handle") is split
/// at the embedded timestamp and the orphan tail joined back to the interrupted record.
public struct ConsoleReader: Sendable {
  public let origin: LogOrigin
  private var pending: [UInt8] = []
  /// Index in `records` handed out last time whose text was cut by an embedded timestamp.
  private var cutRecord: KernelLogRecord?
  public static let maxLineBytes = 64 * 1024

  public init(origin: LogOrigin = .host("localhost")) {
    self.origin = origin
  }

  /// Feeds console bytes; returns the records completed so far.
  public mutating func feed(_ bytes: [UInt8]) -> [KernelLogRecord] {
    var out: [KernelLogRecord] = []
    for b in bytes {
      if b == 0x0a || b == 0x0d {
        if !pending.isEmpty { out += finishLine() }
        continue
      }
      if pending.count < Self.maxLineBytes { pending.append(b) }
    }
    return out
  }

  /// End of input.
  public mutating func finish() -> [KernelLogRecord] {
    var out = pending.isEmpty ? [] : finishLine()
    if let cut = cutRecord {
      out.append(cut)
      cutRecord = nil
    }
    return out
  }

  private mutating func finishLine() -> [KernelLogRecord] {
    var line = Self.stripEscapes(pending)
    while let last = line.last, last == 0x20 || last == 0x09 { line.removeLast() }
    pending.removeAll(keepingCapacity: true)
    guard !line.isEmpty else { return [] }
    var out: [KernelLogRecord] = []
    let pieces = Self.splitAtTimestamps(line)
    for (i, piece) in pieces.enumerated() {
      let text = String(decoding: piece, as: UTF8.self)
      let startsWithStamp =
        piece.first == UInt8(ascii: "[") && DmesgText.parseTimestamp(piece, 0) != nil
      if i == 0, let cut = cutRecord {
        cutRecord = nil
        if !startsWithStamp {
          // The tail of a line another printk interrupted.
          var joined = cut
          joined.text += text
          out.append(joined)
          continue
        }
        out.append(cut)
      }
      var record = DmesgText.parse(line: text, origin: origin)
      if !startsWithStamp, record.level == nil { record.facility = 1 }  // userspace (LOG_USER)
      // The first record of a line that holds another was cut short; its tail may follow.
      if i == 0, pieces.count > 1, startsWithStamp {
        cutRecord = record
        continue
      }
      out.append(record)
    }
    return out
  }

  /// Removes CSI ("ESC [ ... final"), OSC ("ESC ] ... BEL|ST") and other control bytes.
  static func stripEscapes(_ line: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(line.count)
    var i = 0
    while i < line.count {
      let b = line[i]
      if b == 0x1b {
        i += 1
        guard i < line.count else { break }
        if line[i] == UInt8(ascii: "[") {
          i += 1
          while i < line.count, !(line[i] >= 0x40 && line[i] <= 0x7e) { i += 1 }
          i += 1
        } else if line[i] == UInt8(ascii: "]") {
          while i < line.count, line[i] != 0x07, !(line[i] == 0x1b) { i += 1 }
          i += line.count > i && line[i] == 0x1b ? 2 : 1
        } else {
          i += 1
        }
        continue
      }
      if b < 0x20 && b != 0x09 || b == 0x7f {
        i += 1
        continue
      }
      out.append(b)
      i += 1
    }
    return out
  }

  /// Splits a line before each printk timestamp that is not at its start.
  static func splitAtTimestamps(_ line: [UInt8]) -> [[UInt8]] {
    var pieces: [[UInt8]] = []
    var start = 0
    var i = 1
    while i < line.count {
      if line[i] == UInt8(ascii: "["), DmesgText.parseTimestamp(line, i) != nil {
        pieces.append(Array(line[start..<i]))
        start = i
      }
      i += 1
    }
    pieces.append(Array(line[start...]))
    return pieces
  }
}
