import Foundation

/// Times, durations and JSON as the results commands show them.
public enum Format {
  /// "30d", "12h", "90m", "2w", or a date ("2026-11-01", "2026-11-01T02:00:00Z"): Unix seconds.
  public static func since(_ s: String, now: Date = Date()) -> Double? {
    let units: [(String, Double)] = [
      ("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1),
    ]
    for (u, scale) in units where s.hasSuffix(u) {
      if let v = Double(s.dropLast(u.count)), v >= 0 {
        return now.timeIntervalSince1970 - v * scale
      }
    }
    if let d = RunRecord.date(s) { return d }
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd"
    return f.date(from: s)?.timeIntervalSince1970
  }

  /// "1d", "12h", "90m", "2w", "30s": seconds.
  public static func age(_ s: String) -> Double? {
    since(s, now: Date(timeIntervalSince1970: 0)).flatMap { $0 <= 0 ? -$0 : nil }
  }

  /// "2026-12-04 02:13 UTC"
  public static func time(_ t: Double) -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd HH:mm"
    return f.string(from: Date(timeIntervalSince1970: t)) + " UTC"
  }

  /// "2026-12-04": the night a run belongs to (UTC day of its start).
  public static func day(_ t: Double) -> String { String(time(t).prefix(10)) }

  public static func json<T: Encodable>(_ value: T) -> String {
    let enc = JSONEncoder()
    enc.keyEncodingStrategy = .convertToSnakeCase
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return (try? enc.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
  }

  /// Columns padded to their widest cell; the last column is not padded.
  public static func table(_ rows: [[String]]) -> String {
    guard let n = rows.map(\.count).max() else { return "" }
    var widths = Array(repeating: 0, count: n)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    return rows.map { r in
      r.enumerated().map { i, c in
        i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
      }.joined(separator: "  ")
    }.joined(separator: "\n")
  }

  public static func ms(_ v: Double?) -> String {
    guard let v else { return "-" }
    return String(format: v < 10 ? "%.2f" : "%.0f", v)
  }
}
