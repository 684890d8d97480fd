import Foundation

/// One process's /proc/PID/stat on this machine, split after the comm's closing parenthesis
/// (a comm may hold spaces and parentheses), so `field(n)` is stat's field n as proc(5)
/// numbers them (3 = state, 14 = utime, 15 = stime, 22 = starttime).
public struct ProcStat {
  private let fields: [Substring]

  public init?(pid: some CustomStringConvertible) {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return nil }
    fields = stat[stat.index(after: close)...].split(separator: " ")
  }

  public func field(_ n: Int) -> Substring? { n - 3 < fields.count && n >= 3 ? fields[n - 3] : nil }

  /// Running or sleeping: not a zombie waiting to be reaped, not dead.
  public var isLive: Bool { field(3).map { $0 != "Z" && $0 != "X" } ?? false }
}
