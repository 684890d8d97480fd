/// Where a kernel log record came from: the host under test or one of its guests.
public enum LogOrigin: Sendable, Hashable, Codable, CustomStringConvertible {
  case host(String)
  case guest(String)

  public var description: String {
    switch self {
    case .host(let name): return "host:\(name)"
    case .guest(let name): return "guest:\(name)"
    }
  }
}

/// One kernel log record, whatever reader produced it (/dev/kmsg, dmesg text, console,
/// pstore, journal, or a simulated kernel). Fields a source does not carry are nil.
public struct KernelLogRecord: Sendable, Hashable {
  /// printk sequence number (/dev/kmsg "seq"), when the source has one.
  public var sequence: UInt64?
  /// Time since boot in microseconds (printk's timestamp).
  public var timestampMicros: UInt64?
  /// Console log level 0 (KERN_EMERG) ... 7 (KERN_DEBUG).
  public var level: Int?
  /// syslog facility (0 = kernel).
  public var facility: Int?
  /// printk caller context: "T123" (task) or "C1" (CPU), from CONFIG_PRINTK_CALLER.
  public var caller: String?
  /// The message text, without timestamp or prefix.
  public var text: String
  /// Continuation lines (/dev/kmsg " KEY=value" dictionary lines, or text continued by
  /// pr_cont that the reader could not join).
  public var continuation: [String]
  public var origin: LogOrigin

  public init(
    sequence: UInt64? = nil, timestampMicros: UInt64? = nil, level: Int? = nil,
    facility: Int? = nil, caller: String? = nil, text: String,
    continuation: [String] = [], origin: LogOrigin = .host("localhost")
  ) {
    self.sequence = sequence
    self.timestampMicros = timestampMicros
    self.level = level
    self.facility = facility
    self.caller = caller
    self.text = text
    self.continuation = continuation
    self.origin = origin
  }

  /// The record as `dmesg` prints it: "[ 1234.567890] text". This is the form host.log keeps.
  public var dmesgLine: String {
    guard let us = timestampMicros else { return text }
    let secs = String(us / 1_000_000)
    var frac = String(us % 1_000_000)
    frac = String(repeating: "0", count: 6 - frac.count) + frac
    let pad = secs.count < 5 ? String(repeating: " ", count: 5 - secs.count) : ""
    return "[\(pad)\(secs).\(frac)] \(text)"
  }
}
