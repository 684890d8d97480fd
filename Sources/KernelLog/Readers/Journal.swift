import Foundation

/// journald's kernel messages: `journalctl -k -o json` objects and the short text forms.
public enum Journal {
  /// One line of `journalctl -o json`. MESSAGE may be a string or, when not valid UTF-8, an
  /// array of byte values.
  public static func parseJSON(line: String, origin: LogOrigin? = nil) -> KernelLogRecord? {
    guard let data = line.data(using: .utf8),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return nil }
    let text: String
    if let message = object["MESSAGE"] as? String {
      text = message
    } else if let bytes = object["MESSAGE"] as? [Any] {
      text = String(
        decoding: bytes.compactMap {
          ($0 as? NSNumber).map { UInt8(truncatingIfNeeded: $0.intValue) }
        }, as: UTF8.self)
    } else {
      return nil
    }
    func number(_ key: String) -> UInt64? {
      if let s = object[key] as? String { return UInt64(s) }
      if let n = object[key] as? NSNumber { return n.uint64Value }
      return nil
    }
    let host = object["_HOSTNAME"] as? String
    // The kernel's own timestamp when journald kept it, else the journal's monotonic time.
    let micros = number("_SOURCE_MONOTONIC_TIMESTAMP") ?? number("__MONOTONIC_TIMESTAMP")
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let first = lines.isEmpty ? "" : lines.removeFirst()
    return KernelLogRecord(
      sequence: nil, timestampMicros: micros, level: number("PRIORITY").map { Int($0) },
      facility: number("SYSLOG_FACILITY").map { Int($0) }, caller: nil, text: first,
      continuation: lines,
      origin: origin ?? .host(host ?? "localhost"))
  }

  /// `journalctl -k` short forms: "Nov 25 20:28:25 host kernel: text",
  /// "2026-11-25T20:28:25+0000 host kernel: text" (short-iso) or
  /// "[ 1234.567890] host kernel: text" (short-monotonic). nil for non-kernel lines.
  public static func parseShort(line: String, origin: LogOrigin? = nil) -> KernelLogRecord? {
    guard let tag = line.firstRange(of: " kernel: ") else { return nil }
    let head = line[..<tag.lowerBound]
    let text = String(line[tag.upperBound...])
    guard let space = head.lastIndex(of: " ") else { return nil }
    let host = String(head[head.index(after: space)...])
    var micros: UInt64?
    if head.hasPrefix("[") {
      let bytes = Array(head.utf8)
      micros = DmesgText.parseTimestamp(bytes, 0)?.0
    }
    // The kernel's own "[ ts]" may follow the tag when printk time is on.
    var record = DmesgText.parse(line: text, origin: origin ?? .host(host))
    record.timestampMicros = record.timestampMicros ?? micros
    record.facility = record.facility ?? 0
    return record
  }
}
