import Foundation
import HPTEngine
import HPTTarget
import KVMHost
import Synchronization

/// One line of the guest agent's protocol (Guests/agent/PROTOCOL.md): "@hpth VERB ARGS *XX",
/// XX the XOR of every byte before " *XX". Lines without the prefix are the guest's own console
/// output (kernel messages); lines with a wrong checksum were garbled by an interleaved printk.
public struct AgentLine: Equatable, Sendable {
  public var verb: String
  public var args: [String]

  public static let prefix = "@hpth "

  /// nil when the line is not an intact agent line.
  public static func parse(_ raw: String) -> AgentLine? {
    var line = Substring(raw)
    while let c = line.last, c == "\r" || c == " " || c == "\n" { line = line.dropLast() }
    guard let start = line.range(of: prefix) else { return nil }
    line = line[start.lowerBound...]
    let bytes = Array(line.utf8)
    guard bytes.count >= prefix.utf8.count + 4, bytes[bytes.count - 4] == UInt8(ascii: " "),
      bytes[bytes.count - 3] == UInt8(ascii: "*"),
      let sum = UInt8(String(decoding: bytes[(bytes.count - 2)...], as: UTF8.self), radix: 16)
    else { return nil }
    var x: UInt8 = 0
    for b in bytes[..<(bytes.count - 4)] { x ^= b }
    guard x == sum else { return nil }
    let body = String(decoding: bytes[prefix.utf8.count..<(bytes.count - 4)], as: UTF8.self)
    let words = body.split(separator: " ").map(String.init)
    guard let verb = words.first else { return nil }
    return AgentLine(verb: verb, args: Array(words.dropFirst()))
  }

  /// A command for the agent, with its checksum.
  public static func command(_ text: String) -> String {
    let line = prefix + text
    var x: UInt8 = 0
    for b in line.utf8 { x ^= b }
    let hex = String(x, radix: 16)
    return line + " *" + (hex.count == 1 ? "0" + hex : hex) + "\n"
  }

  public func int(_ i: Int) -> Int? { i < args.count ? Int(args[i]) : nil }
}

/// Puts back an agent line that a whole kernel printk line split in two: the console then
/// reads "@hpth resized ... OK [  13.27] hrtimer: interrupt took 24913091 ns" and, on the next
/// line, the rest ("*20"). The start is kept (for a few lines) and joined with the first line
/// that is neither a kernel message nor another agent line; the checksum decides.
public struct AgentLineAssembler: Sendable {
  /// The start of an agent line, without its end yet, and the lines seen since.
  private var start: String?
  private var linesSince = 0
  static let maxLinesBetween = 4

  public init() {}

  /// The agent line `raw` completes or is, and the kernel text it holds (nil: none).
  public mutating func feed(_ raw: String) -> (agent: AgentLine?, kernel: String?) {
    if let line = AgentLine.parse(raw) {
      start = nil
      return (line, nil)
    }
    let trimmed = raw.trimmingCharacters(in: CharacterSet(charactersIn: "\r\n"))
    if let kept = start, !trimmed.hasPrefix("["), !trimmed.contains(AgentLine.prefix) {
      start = nil
      if let line = AgentLine.parse(kept + trimmed) { return (line, nil) }
    }
    if let at = trimmed.range(of: AgentLine.prefix) {
      // The start, then whatever the printk put after it (a kernel message).
      let tail = trimmed[at.lowerBound...]
      if let bracket = tail.range(of: "[") {
        start = String(tail[..<bracket.lowerBound])
        linesSince = 0
        return (nil, String(tail[bracket.lowerBound...]))
      }
      start = String(tail)
      linesSince = 0
      return (nil, nil)
    }
    if start != nil {
      linesSince += 1
      if linesSince > Self.maxLinesBetween { start = nil }
    }
    return (nil, raw)
  }
}

/// What a `resized` line reports: one write to the guest's hpt_order file.
public struct GuestResize: Equatable, Sendable {
  public var order: Int
  /// 0, or the errno the write failed with.
  public var errno: Int32
  public var totalMs: Int
  /// From the kernel's "HPT resize to shift N complete (P ms / C ms)"; -1 when not seen.
  public var prepareMs: Int
  public var commitMs: Int

  public init?(_ l: AgentLine) {
    guard l.verb == "resized", let o = l.int(0), let e = l.int(1), let t = l.int(2),
      let p = l.int(3), let c = l.int(4)
    else { return nil }
    order = o
    errno = Int32(e)
    totalMs = t
    prepareMs = p
    commitMs = c
  }
}
