import Foundation

/// Who created a domain: the harness run and the controller process behind it, kept in the
/// domain's `<metadata>` so that the next run can tell a dead run's leftovers from a live run's
/// guests (and from domains HPTHammer never made, which carry no such element).
public struct DomainOwner: Sendable, Equatable {
  public static let namespace = "https://hpthammer.dev/xmlns/owner/1"
  public var runID: String
  /// The controller machine (its hostname) and its boot (/proc/sys/kernel/random/boot_id).
  public var controller: String
  public var bootID: String
  public var pid: Int32
  /// The process's start time in clock ticks since boot (/proc/PID/stat field 22): with the
  /// boot id, a PID reused by another process is not taken for the run.
  public var startTicks: UInt64

  public init(runID: String, controller: String, bootID: String, pid: Int32, startTicks: UInt64) {
    self.runID = runID
    self.controller = controller
    self.bootID = bootID
    self.pid = pid
    self.startTicks = startTicks
  }

  /// The `<metadata>` child libvirt stores under the namespace (virDomainGetMetadata returns it).
  public var element: String {
    let e = HPTDomainSpec.escape
    return
      "<owner run='\(e(runID))' controller='\(e(controller))' boot='\(e(bootID))' pid='\(pid)' start='\(startTicks)'/>"
  }

  /// Reads the element back; nil when it is not ours or not whole.
  public init?(element: String) {
    func attr(_ name: String) -> String? {
      guard let r = element.range(of: " \(name)=") else { return nil }
      let rest = element[r.upperBound...]
      guard let q = rest.first, q == "'" || q == "\"" else { return nil }
      let body = rest.dropFirst()
      guard let end = body.firstIndex(of: q) else { return nil }
      return String(body[..<end]).replacingOccurrences(of: "&apos;", with: "'")
        .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&lt;", with: "<")
        .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
    }
    guard element.contains("<owner"), let run = attr("run"), let controller = attr("controller"),
      let boot = attr("boot"), let pid = attr("pid").flatMap({ Int32($0) }),
      let start = attr("start").flatMap({ UInt64($0) })
    else { return nil }
    self.init(runID: run, controller: controller, bootID: boot, pid: pid, startTicks: start)
  }
}
