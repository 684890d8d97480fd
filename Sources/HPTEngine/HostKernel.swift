import Foundation

/// The kernel under test as its host reports it: a simulated model by its name and release,
/// a real host by its release (uname -r), which also names it.
public struct HostKernel: Sendable, Equatable {
  public var name: String
  public var release: String

  public init(name: String, release: String) {
    self.name = name
    self.release = release
  }

  /// A real host's kernel: named by its release, or by the host when it gave none.
  public static func real(release: String, hostName: String) -> HostKernel {
    HostKernel(name: release.isEmpty ? hostName : release, release: release)
  }

  /// uname -r of the machine the harness runs on.
  public static func thisMachineRelease() -> String {
    var u = utsname()
    guard uname(&u) == 0 else { return "" }
    return withUnsafeBytes(of: &u.release) { b in
      String(decoding: b.prefix { $0 != 0 }, as: UTF8.self)
    }
  }
}
