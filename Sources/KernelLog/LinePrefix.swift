/// Who printed a line: CONFIG_PRINTK_CALLER's "[T123]" (task) or "[C1]" (CPU), or unknown.
/// Reports are assembled from the lines of one caller so that interleaved output from other
/// CPUs does not get mixed in.
public struct CallerContext: Sendable, Hashable {
  public enum Kind: UInt8, Sendable { case none, task, cpu }
  public var kind: Kind
  public var id: UInt32
  public static let none = CallerContext(kind: .none, id: 0)

  public var description: String? {
    switch kind {
    case .none: return nil
    case .task: return "T\(id)"
    case .cpu: return "C\(id)"
    }
  }
}

/// A console line split into its prefix (timestamps, syslog and journal headers) and its text.
struct SplitLine {
  var textStart: Int
  var textEnd: Int
  var caller: CallerContext
  var hasTimestamp: Bool
  /// A console prefix was removed before the text (a timestamp, level, syslog header).
  var prefixed: Bool
  /// Where the line began (before any prefix).
  var lineStart: Int
}

/// Removes what is not the kernel's message: a trailing CR, "<6>" syslog priorities, journal
/// "Nov 25 20:28:25 host kernel: " headers, "[ 1234.567890]" and `dmesg -T` "[Wed Nov 25 ...]"
/// stamps and "[T123]"/"[  C1]" callers. Works on bytes: this runs for every line.
func splitLine(_ buf: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int) -> SplitLine {
  var end = hi
  while end > lo, buf[end - 1] == 0x0d || buf[end - 1] == 0x00 { end -= 1 }
  var p = lo
  var caller = CallerContext.none
  var stamped = false
  var prefixed = false
  // Mail quoting ("> ", ">> ", "> > ") and indentation before a prefix (logs pasted into mail
  // or bug trackers); plain indentation before text is kept.
  if p < end, buf[p] == UInt8(ascii: ">") || buf[p] == 0x20 || buf[p] == 0x09 {
    var q = p
    var quoted = false
    while q < end, q < p + 24, buf[q] == UInt8(ascii: ">") || buf[q] == 0x20 || buf[q] == 0x09 {
      if buf[q] == UInt8(ascii: ">") { quoted = true }
      q += 1
    }
    if quoted || (q < end && (buf[q] == UInt8(ascii: "[") || buf[q] == UInt8(ascii: "<"))) {
      p = q
    }
  }
  // A few rounds: prefixes stack ("<4>[  12.3][T1] ", "Nov 25 ... kernel: [  12.3] ").
  var round = 0
  while round < 4, p < end {
    round += 1
    let b = buf[p]
    if b == UInt8(ascii: "<") {
      var q = p + 1
      while q < end, q < p + 5, isDecimal(buf[q]) { q += 1 }
      if q > p + 1, q < end, buf[q] == UInt8(ascii: ">") {
        p = q + 1
        prefixed = true
        continue
      }
      break
    }
    if b == 0x1b {
      // ANSI escape at line start (serial consoles): ESC [ params final-byte.
      var q = p + 1
      if q < end, buf[q] == UInt8(ascii: "[") {
        q += 1
        while q < end, (buf[q] >= 0x30 && buf[q] <= 0x3f) || buf[q] == 0x20 { q += 1 }
        if q < end { q += 1 }
      }
      p = q
      continue
    }
    if b == UInt8(ascii: "[") {
      if let close = printkTimestampEnd(buf, p, end) ?? timestampEndByBytes(buf, p, end) {
        stamped = true
        prefixed = true
        p = close
        // Optional caller "[T123]" or "[  C1]" right after the stamp.
        if p < end, buf[p] == UInt8(ascii: "[") {
          // (Blanks may be no-break spaces in logs pasted from HTML mail.)
          let q = skipBlanks(buf, p + 1, end)
          if q < end, buf[q] == UInt8(ascii: "T") || buf[q] == UInt8(ascii: "C") {
            let kind: CallerContext.Kind = buf[q] == UInt8(ascii: "T") ? .task : .cpu
            var r = q + 1
            var id: UInt32 = 0
            while r < end, isDecimal(buf[r]), id < 100_000_000 {
              id = id &* 10 &+ UInt32(buf[r] - 0x30)
              r += 1
            }
            if r > q + 1, r < end, buf[r] == UInt8(ascii: "]") {
              caller = CallerContext(kind: kind, id: id)
              p = r + 1
            }
          }
        }
        // At most two blanks go with the prefix: the rest is the text's indentation (a blank
        // may be a two-byte no-break space, so the scan may end one byte further).
        if p < end, buf[p] == 0x20 {
          // (The usual one or two spaces, without the loop below.)
          let second =
            p + 1 < end
            && (buf[p + 1] == 0x20 || (buf[p + 1] == 0xC2 && p + 2 < end && buf[p + 2] == 0xA0))
          p += second ? 2 : 1
        } else if p < end, buf[p] == 0xC2 {
          p = min(skipBlanks(buf, p, min(end, p + 3)), p + 2)
        }
        continue
      }
      break
    }
    if let after = journalPrefixEnd(buf, p, end) {
      p = after
      prefixed = true
      continue
    }
    break
  }
  return SplitLine(
    textStart: p, textEnd: end, caller: caller, hasTimestamp: stamped, prefixed: prefixed,
    lineStart: lo)
}

/// Past spaces, and the no-break spaces (U+00A0, C2 A0) that logs pasted from HTML mail carry
/// in their timestamps ("[\u{a0} \u{a0} 0.043203]").
@inline(__always) private func skipBlanks(
  _ buf: UnsafeBufferPointer<UInt8>, _ from: Int, _ end: Int
)
  -> Int
{
  var q = from
  while q < end {
    if buf[q] == 0x20 {
      q += 1
    } else if buf[q] == 0xC2, q + 1 < end, buf[q + 1] == 0xA0 {
      q += 2
    } else {
      break
    }
  }
  return q
}

/// "[ 1234.567890]" or `dmesg -T`'s "[Wed Nov 25 20:28:25 2026]", read byte by byte: index
/// past ']' or nil.
@inline(__always) func timestampEndByBytes(_ buf: UnsafeBufferPointer<UInt8>, _ p: Int, _ end: Int)
  -> Int?
{
  var q = skipBlanks(buf, p + 1, end)
  let digitsStart = q
  while q < end, isDecimal(buf[q]) { q += 1 }
  if q > digitsStart, q < end, buf[q] == UInt8(ascii: ".") {
    q += 1
    let frac = q
    while q < end, isDecimal(buf[q]) { q += 1 }
    if q > frac, q < end, buf[q] == UInt8(ascii: "]") { return q + 1 }
    return nil
  }
  // dmesg -T: "[Www Mmm dd hh:mm:ss yyyy]" is 26 bytes.
  if q == digitsStart, p + 25 < end, buf[p + 25] == UInt8(ascii: "]"), buf[p + 4] == 0x20,
    buf[p + 8] == 0x20, buf[p + 14] == UInt8(ascii: ":"), buf[p + 17] == UInt8(ascii: ":")
  {
    return p + 26
  }
  return nil
}

/// printk's own stamp, "[%5lu.%06lu]" (14 bytes, uptime under 100,000 s), read as two
/// overlapping eight-byte words: the index past its ']', as `timestampEndByBytes` gives it;
/// nil for every other prefix, which that then reads. Nearly every line of a console log
/// starts with one, and read byte by byte it was a third of the line split.
@inline(__always) func printkTimestampEnd(
  _ buf: UnsafeBufferPointer<UInt8>, _ p: Int, _ end: Int
) -> Int? {
  guard end - p >= 14, let base = buf.baseAddress else { return nil }
  let raw = UnsafeRawPointer(base + p)
  // Bytes 6-13: ".dddddd]".
  let fraction = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 6, as: UInt64.self))
  guard fraction & 0xff00_0000_0000_00ff == 0x5d00_0000_0000_002e,
    digitBytes(fraction) & 0x0080_8080_8080_8000 == 0x0080_8080_8080_8000
  else { return nil }
  // Bytes 1-5: the seconds, right-aligned: spaces, then digits up to byte 5 (no space after
  // a digit: the digit bytes smeared towards byte 7 meet no space).
  let head = UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self))
  let digits = digitBytes(head)
  let spaces = equalBytes(head, 0x20)
  var smeared = digits | digits &<< 8
  smeared |= smeared &<< 16
  smeared |= smeared &<< 32
  let seconds: UInt64 = 0x0000_8080_8080_8000
  guard head & 0xff == 0x5b, digits & 0x0000_8000_0000_0000 != 0,
    (digits | spaces) & seconds == seconds, spaces & smeared == 0
  else { return nil }
  return p + 14
}

private let kernelTag: [UInt8] = Array(" kernel: ".utf8)

/// journalctl short/syslog forms: "Nov 25 20:28:25 host kernel: " or
/// "2026-11-25T20:28:25+0000 host kernel: ". Only looks when the line starts like a date.
@inline(__always) private func journalPrefixEnd(
  _ buf: UnsafeBufferPointer<UInt8>, _ p: Int, _ end: Int
) -> Int? {
  guard end - p > 16 else { return nil }
  let b0 = buf[p]
  let monthLike =
    b0 >= 0x41 && b0 <= 0x5a && buf[p + 3] == 0x20 && buf[p + 1] >= 0x61 && buf[p + 1] <= 0x7a
    && buf[p + 9] == UInt8(ascii: ":") && buf[p + 12] == UInt8(ascii: ":")
  let isoLike = isDecimal(b0) && buf[p + 4] == UInt8(ascii: "-") && buf[p + 10] == UInt8(ascii: "T")
  guard monthLike || isoLike else { return nil }
  let limit = min(end, p + 160)
  var q = p + 15
  while q + kernelTag.count <= limit {
    if buf[q] == 0x20, buf[q + 1] == UInt8(ascii: "k") {
      var ok = true
      for k in 0..<kernelTag.count where buf[q + k] != kernelTag[k] {
        ok = false
        break
      }
      if ok { return q + kernelTag.count }
    }
    q += 1
  }
  return nil
}
