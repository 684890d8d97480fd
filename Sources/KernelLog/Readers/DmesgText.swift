/// Parses one line of `dmesg` text into a record: "[ 1234.567890] text", with an optional
/// "<6>" level (`dmesg -r`), "[T123]"/"[C1]" caller (CONFIG_PRINTK_CALLER), or `dmesg -T`
/// wall-clock stamps "[Wed Nov 25 20:28:25 2026]" (which carry no boot time). Also the form
/// kdump's vmcore-dmesg.txt and pstore dmesg-* parts use.
public enum DmesgText {
  public static func parse(line: String, origin: LogOrigin = .host("localhost")) -> KernelLogRecord
  {
    var bytes = Array(line.utf8)
    while let last = bytes.last, last == 0x0d || last == 0x0a { bytes.removeLast() }
    var p = 0
    var level: Int?
    var facility: Int?
    if p < bytes.count, bytes[p] == UInt8(ascii: "<") {
      var q = p + 1
      var value = 0
      while q < bytes.count, q < p + 5, isDecimal(bytes[q]) {
        value = value * 10 + Int(bytes[q] - 0x30)
        q += 1
      }
      if q > p + 1, q < bytes.count, bytes[q] == UInt8(ascii: "]") || bytes[q] == UInt8(ascii: ">")
      {
        level = value & 7
        facility = value >> 3
        p = q + 1
      }
    }
    var timestamp: UInt64?
    var caller: String?
    if p < bytes.count, bytes[p] == UInt8(ascii: "[") {
      if let (micros, end) = parseTimestamp(bytes, p) {
        timestamp = micros
        p = end
      } else if bytes.count >= p + 26, bytes[p + 25] == UInt8(ascii: "]"),
        bytes[p + 14] == UInt8(ascii: ":")
      {
        p += 26  // dmesg -T: wall-clock time, not time since boot.
      }
      if p < bytes.count, bytes[p] == UInt8(ascii: "[") {
        var q = p + 1
        while q < bytes.count, bytes[q] == 0x20 { q += 1 }
        let idStart = q
        if q < bytes.count, bytes[q] == UInt8(ascii: "T") || bytes[q] == UInt8(ascii: "C") {
          q += 1
          while q < bytes.count, isDecimal(bytes[q]) { q += 1 }
          if q > idStart + 1, q < bytes.count, bytes[q] == UInt8(ascii: "]") {
            caller = String(decoding: bytes[idStart..<q], as: UTF8.self)
            p = q + 1
          }
        }
      }
      if p < bytes.count, bytes[p] == 0x20 { p += 1 }
    }
    let text = String(decoding: bytes[p...], as: UTF8.self)
    return KernelLogRecord(
      timestampMicros: timestamp, level: level, facility: facility ?? (level != nil ? 0 : nil),
      caller: caller,
      text: text, origin: origin)
  }

  public static func parse(text: String, origin: LogOrigin = .host("localhost"))
    -> [KernelLogRecord]
  {
    text.split(separator: "\n", omittingEmptySubsequences: true).map {
      parse(line: String($0), origin: origin)
    }
  }

  /// "[ 1234.567890]" at `p`: microseconds and the index past ']'.
  static func parseTimestamp(_ bytes: [UInt8], _ p: Int) -> (UInt64, Int)? {
    var q = p + 1
    while q < bytes.count, bytes[q] == 0x20 { q += 1 }
    var seconds: UInt64 = 0
    let start = q
    while q < bytes.count, isDecimal(bytes[q]), q - start < 12 {
      seconds = seconds * 10 + UInt64(bytes[q] - 0x30)
      q += 1
    }
    guard q > start, q < bytes.count, bytes[q] == UInt8(ascii: ".") else { return nil }
    q += 1
    var fraction: UInt64 = 0
    var digits = 0
    while q < bytes.count, isDecimal(bytes[q]) {
      if digits < 6 {
        fraction = fraction * 10 + UInt64(bytes[q] - 0x30)
        digits += 1
      }
      q += 1
    }
    guard digits > 0, q < bytes.count, bytes[q] == UInt8(ascii: "]") else { return nil }
    while digits < 6 {
      fraction *= 10
      digits += 1
    }
    return (seconds * 1_000_000 + fraction, q + 1)
  }
}
