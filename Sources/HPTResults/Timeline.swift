import Foundation

/// A JSON value as read from run.json or a timeline line.
public enum JSONValue: Codable, Sendable, Equatable {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  public init(from decoder: any Decoder) throws {
    let c = try decoder.singleValueContainer()
    if c.decodeNil() {
      self = .null
    } else if let b = try? c.decode(Bool.self) {
      self = .bool(b)
    } else if let d = try? c.decode(Double.self) {
      self = .number(d)
    } else if let s = try? c.decode(String.self) {
      self = .string(s)
    } else if let a = try? c.decode([JSONValue].self) {
      self = .array(a)
    } else {
      self = .object(try c.decode([String: JSONValue].self))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    switch self {
    case .null: try c.encodeNil()
    case .bool(let b): try c.encode(b)
    case .number(let d): try c.encode(d)
    case .string(let s): try c.encode(s)
    case .array(let a): try c.encode(a)
    case .object(let o): try c.encode(o)
    }
  }

  /// A value from JSONSerialization.
  public init(any v: Any) {
    switch v {
    case let s as String: self = .string(s)
    case let n as NSNumber:
      // JSONSerialization's booleans are NSNumbers of type "c" (true, false); its numbers are
      // "q" or "d".
      if n.objCType.pointee == CChar(UInt8(ascii: "c")) {
        self = .bool(n.boolValue)
      } else {
        self = .number(n.doubleValue)
      }
    case let b as Bool: self = .bool(b)
    case let a as [Any]: self = .array(a.map(JSONValue.init(any:)))
    case let o as [String: Any]: self = .object(o.mapValues(JSONValue.init(any:)))
    default: self = .null
    }
  }

  public subscript(key: String) -> JSONValue? {
    if case .object(let o) = self { return o[key] }
    return nil
  }
  public var string: String? {
    switch self {
    case .string(let s): return s
    case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
    case .bool(let b): return String(b)
    default: return nil
    }
  }
  public var double: Double? {
    switch self {
    case .number(let d): return d
    case .string(let s): return Double(s)
    default: return nil
    }
  }
  public var int: Int? { double.map { Int($0) } }
  public var bool: Bool? {
    if case .bool(let b) = self { return b }
    return nil
  }
  public var array: [JSONValue] {
    if case .array(let a) = self { return a }
    return []
  }
  public var object: [String: JSONValue]? {
    if case .object(let o) = self { return o }
    return nil
  }
}

/// One line of a run's timeline.jsonl (written by the engine as the run goes): "t" is host
/// seconds since the run started, "event" its kind: start, phase, resize, crash, finding,
/// rates, end, resize-summary (what a long run's resizes were aggregated into).
public struct TimelineEvent: Sendable {
  public var t: Double
  public var event: String
  public var fields: [String: JSONValue]

  public subscript(key: String) -> JSONValue? { fields[key] }
}

public enum Timeline {
  public static let fileName = "timeline.jsonl"

  /// The events of `dir`'s timeline; none when it has none (a run directory from before the
  /// timeline existed). A line cut short by a kill, or not JSON, is skipped.
  public static func read(_ dir: URL) -> [TimelineEvent] {
    guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(fileName).path)
    else { return [] }
    return parse(data)
  }

  public static func parse(_ data: Data) -> [TimelineEvent] {
    // One parse of the whole file as a JSON array (JSONSerialization: several times faster
    // than a Decodable walk of 100,000 lines); a bad line makes it fail, and then the lines
    // are read one by one and the bad ones skipped.
    var whole = Data("[".utf8)
    whole.reserveCapacity(data.count + 2)
    var first = true
    for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
      if !first { whole.append(UInt8(ascii: ",")) }
      whole.append(contentsOf: line)
      first = false
    }
    whole.append(UInt8(ascii: "]"))
    if let all = try? JSONSerialization.jsonObject(with: whole) as? [Any] {
      return all.compactMap { ($0 as? [String: Any]).flatMap(event) }
    }
    return data.split(separator: UInt8(ascii: "\n")).compactMap { line in
      (try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]).flatMap(event)
    }
  }

  /// What an import needs of a timeline without reading every line: how many events, the
  /// last one's time, and the crashes (the only lines decoded besides the last).
  public struct Summary: Sendable {
    public var count = 0
    public var lastT: Double?
    public var crashes: [TimelineEvent] = []
  }

  public static func summary(_ dir: URL) -> Summary {
    guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(fileName).path)
    else { return Summary() }
    var s = Summary()
    var lastLine: Range<Int>?
    var crashLines: [Range<Int>] = []
    data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
      guard let base = buf.baseAddress else { return }
      var start = 0
      while start < buf.count {
        let rest = buf.count - start
        let nl = memchr(base + start, 0x0A, rest).map {
          $0 - UnsafeMutableRawPointer(mutating: base)
        }
        let end = nl ?? buf.count
        // A complete event ends with "}" (a line cut by a kill does not count).
        if end > start, buf[end - 1] == UInt8(ascii: "}") {
          s.count += 1
          lastLine = start..<end
          // Only crash lines hold the word (resize, start and end lines have no such key or
          // value): the only lines decoded besides the last.
          if contains(base, start..<end, "crash") { crashLines.append(start..<end) }
        }
        start = end + 1
      }
    }
    for r in crashLines {
      if let o = try? JSONSerialization.jsonObject(with: data[r]) as? [String: Any],
        let e = event(o), e.event == "crash"
      {
        s.crashes.append(e)
      }
    }
    if let r = lastLine, let o = try? JSONSerialization.jsonObject(with: data[r]) as? [String: Any]
    {
      s.lastT = event(o)?.t
    }
    return s
  }

  /// Whether bytes `r` of `base` hold `word` (memchr for its first byte, then a compare).
  static func contains(_ base: UnsafeRawPointer, _ r: Range<Int>, _ word: StaticString) -> Bool {
    let w = UnsafeRawPointer(word.utf8Start)
    let n = word.utf8CodeUnitCount
    var i = r.lowerBound
    while r.upperBound - i >= n {
      guard let hit = memchr(base + i, Int32(w.load(as: UInt8.self)), r.upperBound - i - n + 1)
      else { return false }
      if memcmp(hit, w, n) == 0 { return true }
      i = UnsafeRawPointer(hit) - base + 1
    }
    return false
  }

  static func event(_ o: [String: Any]) -> TimelineEvent? {
    guard let t = (o["t"] as? NSNumber)?.doubleValue, let e = o["event"] as? String else {
      return nil
    }
    return TimelineEvent(t: t, event: e, fields: o.mapValues(JSONValue.init(any:)))
  }

}
