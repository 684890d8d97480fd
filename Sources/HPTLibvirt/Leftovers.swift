import Foundation
import HPTEngine
import Libvirt

/// Domains a dead run left behind. Each domain the harness defines carries its owner (run,
/// controller, boot, PID and the PID's start time); the next run on the same libvirt destroys
/// and undefines those whose controller process is gone, and says so. A live run's domains,
/// a domain of another controller (whose processes cannot be seen from here) and domains
/// without the owner element are never touched.
enum Leftovers {
  /// This process as an owner.
  static func me(runID: String) -> DomainOwner {
    let pid = getpid()
    return DomainOwner(
      runID: runID, controller: ProcessInfo.processInfo.hostName,
      bootID: HarnessProcess.bootID ?? "?", pid: pid,
      startTicks: HarnessProcess.startTicks(of: pid) ?? 0)
  }

  /// Whether the owner's process still runs: nil when it cannot be told from here.
  static func alive(_ o: DomainOwner, seenFrom here: DomainOwner) -> Bool? {
    HarnessProcess.isAlive(
      controller: o.controller, bootID: o.bootID, pid: Int(o.pid), startTicks: o.startTicks,
      seenFrom: (here.controller, here.bootID))
  }

  /// Destroys and undefines the dead runs' domains; one line per domain cleaned (or that
  /// could not be), for the run to print.
  static func reap(_ conn: LibvirtConnection, me: DomainOwner) -> [String] {
    guard let names = try? conn.domainNames() else { return [] }
    var lines: [String] = []
    for name in names {
      guard let d = try? conn.lookupDomain(name: name),
        let el = try? d.metadata(namespace: DomainOwner.namespace),
        let owner = DomainOwner(element: el), owner.runID != me.runID,
        alive(owner, seenFrom: me) == false
      else { continue }
      let why = "left by run \(owner.runID) (PID \(owner.pid) on \(owner.controller) is gone)"
      try? d.destroy()  // a domain that is not running answers OPERATION_INVALID
      do {
        try d.undefine()
        lines.append("cleaned up domain \(name), \(why)")
      } catch {
        lines.append("could not undefine domain \(name), \(why): \(error)")
      }
    }
    return lines
  }
}
