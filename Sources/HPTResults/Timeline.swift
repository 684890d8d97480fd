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
    let dec = JSONDecoder()
    // One decode of the whole file as a JSON array is ~5x faster than one per line; a bad
    // line makes it fail, and then the lines are read one by one.
    var whole = Data("[".utf8)
    whole.reserveCapacity(data.count + 2)
    var first = true
    for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
      if !first { whole.append(UInt8(ascii: ",")) }
      whole.append(contentsOf: line)
      first = false
    }
    whole.append(UInt8(ascii: "]"))
    if let all = try? dec.decode([[String: JSONValue]].self, from: whole) {
      return all.compactMap(event)
    }
    return data.split(separator: UInt8(ascii: "\n")).compactMap {
      (try? dec.decode([String: JSONValue].self, from: Data($0))).flatMap(event)
    }
  }

  static func event(_ o: [String: JSONValue]) -> TimelineEvent? {
    guard let t = o["t"]?.double, let e = o["event"]?.string else { return nil }
    return TimelineEvent(t: t, event: e, fields: o)
  }
}
