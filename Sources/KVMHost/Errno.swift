/// A Linux errno value, as the kernel returns it (negated) from an ioctl.
/// Kept as its own type so that every error the harness reports carries the kernel's own code.
public struct Errno: Error, RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
  public var rawValue: Int32
  public init(rawValue: Int32) { self.rawValue = rawValue }

  public static let EPERM = Errno(rawValue: 1)
  public static let ENOENT = Errno(rawValue: 2)
  public static let EINTR = Errno(rawValue: 4)
  public static let EIO = Errno(rawValue: 5)
  public static let ENXIO = Errno(rawValue: 6)
  public static let E2BIG = Errno(rawValue: 7)
  public static let EBADF = Errno(rawValue: 9)
  public static let EAGAIN = Errno(rawValue: 11)
  public static let ENOMEM = Errno(rawValue: 12)
  public static let EACCES = Errno(rawValue: 13)
  public static let EFAULT = Errno(rawValue: 14)
  public static let EBUSY = Errno(rawValue: 16)
  public static let EEXIST = Errno(rawValue: 17)
  public static let ENODEV = Errno(rawValue: 19)
  public static let EINVAL = Errno(rawValue: 22)
  public static let ENOTTY = Errno(rawValue: 25)
  public static let ENOSPC = Errno(rawValue: 28)
  public static let ENOSYS = Errno(rawValue: 38)
  public static let ETIMEDOUT = Errno(rawValue: 110)
  /// Not a kernel errno: the host stopped answering (it crashed, or the connection to it died).
  /// Chosen outside the kernel's range so it can never be confused with a real answer.
  public static let hostDown = Errno(rawValue: 4096)

  static let names: [Int32: String] = [
    1: "EPERM", 2: "ENOENT", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 9: "EBADF",
    11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST",
    19: "ENODEV", 22: "EINVAL", 25: "ENOTTY", 28: "ENOSPC", 38: "ENOSYS", 110: "ETIMEDOUT",
    4096: "HOST_DOWN",
  ]

  /// The C name ("ENOSPC"), or "errno N" for one this table does not know.
  public var name: String { Errno.names[rawValue] ?? "errno \(rawValue)" }
  public var description: String { name }
}

/// An ioctl that failed, with the errno the kernel gave at that call.
public struct KVMError: Error, Hashable, Sendable, CustomStringConvertible {
  public var ioctl: String
  public var errno: Errno
  public init(_ ioctl: String, _ errno: Errno) {
    self.ioctl = ioctl
    self.errno = errno
  }
  public var description: String { "\(ioctl): \(errno.name) (\(errno.rawValue))" }
}
