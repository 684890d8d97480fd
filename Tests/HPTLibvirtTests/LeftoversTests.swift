import Foundation
import Testing

@testable import HPTEngine
@testable import HPTLibvirt
@testable import HPTTarget
@testable import Libvirt

/// A dead run's domains are cleaned up; a live run's, another controller's and domains
/// HPTHammer never made are not. Against libvirt's test driver (a real libvirt, no daemon).
@Suite(.serialized) struct LeftoversTests {
  func define(_ c: LibvirtConnection, _ name: String, _ owner: DomainOwner?) throws {
    var xml = "<domain type='test'><name>\(name)</name><memory unit='MiB'>64</memory>"
    if let owner {
      xml +=
        "<metadata><hpthammer:owner xmlns:hpthammer='\(DomainOwner.namespace)'"
        + owner.element.dropFirst("<owner".count) + "</metadata>"
    }
    xml += "<os><type arch='x86_64'>hvm</type></os></domain>"
    try c.defineDomain(xml: xml).start()
  }

  /// A process that has exited: its PID no longer names it.
  func deadPID() throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/true")
    try p.run()
    p.waitUntilExit()
    return p.processIdentifier
  }

  @Test func onlyADeadRunsDomainsAreCleaned() throws {
    let c = try LibvirtConnection(uri: "test:///default")
    let me = Leftovers.me(runID: "now")
    #expect(me.startTicks > 0)
    var dead = me
    dead.runID = "dead"
    dead.pid = try deadPID()
    var reused = me  // this very PID, but a different start: the PID was reused
    reused.runID = "reused"
    reused.startTicks += 1
    var rebooted = me
    rebooted.runID = "rebooted"
    rebooted.bootID = "another-boot"
    var live = me
    live.runID = "live"
    var remote = dead
    remote.runID = "remote"
    remote.controller = "another-controller"
    try define(c, "hpthammer-left-dead", dead)
    try define(c, "hpthammer-left-reused", reused)
    try define(c, "hpthammer-left-rebooted", rebooted)
    try define(c, "hpthammer-left-live", live)
    try define(c, "hpthammer-left-remote", remote)
    try define(c, "hpthammer-left-untagged", nil)
    defer {
      for n in ["live", "remote", "untagged"] {
        let d = try? c.lookupDomain(name: "hpthammer-left-\(n)")
        try? d?.destroy()
        try? d?.undefine()
      }
    }
    let lines = Leftovers.reap(c, me: me)
    let names = try c.domainNames()
    for gone in ["dead", "reused", "rebooted"] {
      #expect(!names.contains("hpthammer-left-\(gone)"))
      #expect(
        lines.contains {
          $0.hasPrefix("cleaned up domain hpthammer-left-\(gone), left by run \(gone)")
        })
    }
    for kept in ["live", "remote", "untagged"] { #expect(names.contains("hpthammer-left-\(kept)")) }
    #expect(lines.count == 3)
  }

  @Test func procStatNumbersFieldsAsProcDoes() throws {
    let me = try #require(ProcStat(pid: getpid()))
    #expect(me.isLive)
    #expect(["R", "S"].contains(me.field(3)))  // running, or asleep in a read
    #expect(me.field(14).flatMap { Int($0) } != nil)  // utime
    #expect(me.field(22).flatMap { UInt64($0) } == Leftovers.me(runID: "x").startTicks)
    #expect(me.field(2) == nil && me.field(99) == nil)
    #expect(ProcStat(pid: try deadPID()) == nil)
  }

  @Test func theOwnerElementRoundTrips() {
    let o = DomainOwner(runID: "r'1&<", controller: "h\"x", bootID: "b", pid: 42, startTicks: 7)
    #expect(DomainOwner(element: o.element) == o)
    #expect(DomainOwner(element: "<owner run='x'/>") == nil)
    let spec = HPTDomainSpec(
      name: "g", type: .qemu, memoryMiB: 256, vcpus: 1, kernel: "k", initrd: "i",
      consoleLog: "/tmp/c", owner: o)
    #expect(spec.xml.contains("<metadata>"))
    #expect(spec.xml.contains("xmlns:hpthammer='\(DomainOwner.namespace)'"))
  }
}

/// The host's KSM and THP knobs: what is saved is put back, and nothing but the kernel's own
/// words and numbers is ever written back to /sys.
@Suite struct HostMMTests {
  @Test func savedSettingsAreRestoredAndNothingElse() {
    let saved = HostMM.parse(
      "ksm_run=0 ksm_pages_to_scan=100 ksm_sleep_millisecs=20\nthp_enabled=madvise thp_shmem_enabled=never evil=$(reboot) thp_scan_sleep_millisecs=x;reboot"
    )
    let script = HostMM.restoreScript(saved)
    #expect(script.contains("echo 0 >/sys/kernel/mm/ksm/run"))
    #expect(script.contains("echo madvise >/sys/kernel/mm/transparent_hugepage/enabled"))
    #expect(script.contains("echo never >/sys/kernel/mm/transparent_hugepage/shmem_enabled"))
    #expect(!script.contains("reboot"))
    #expect(script.split(separator: "\n").count == 5)
  }

  @Test func countersAreDeltasAndGaugesTheirPeakWhileTheGuestsRan() {
    // At the end the guests are gone and KSM is dropping their pages: the peak is the figure.
    var peak = HostMM.peak([:], ["ksm_pages_sharing": 25, "ksm_full_scans": 4])
    peak = HostMM.peak(peak, ["ksm_pages_sharing": 300, "ksm_pages_shared": 9])
    peak = HostMM.peak(peak, ["ksm_pages_sharing": 120, "ksm_pages_shared": 2])
    #expect(peak == ["ksm_pages_sharing": 300, "ksm_pages_shared": 9])
    let f = HostMM.figures(
      start: ["ksm_pages_sharing": 10, "ksm_full_scans": 3, "thp_split_pmd": 7],
      end: [
        "ksm_pages_sharing": 0, "ksm_pages_shared": 0, "ksm_full_scans": 9, "thp_split_pmd": 8,
      ],
      peak: peak)
    #expect(
      f == [
        "host_mm_ksm_pages_sharing_peak": 300, "host_mm_ksm_pages_shared_peak": 9,
        "host_mm_ksm_full_scans": 6, "host_mm_thp_split_pmd": 1,
      ])
  }

  @Test func theScriptsParseUnderAPlainShell() {
    var s = HostMMSettings()
    s.ksm = true
    s.thp = true
    for script in [HostMM.applyScript(s), HostMM.countersScript] {
      let r = HostCommand.run(["sh", "-n", "-c", script], timeoutS: 10)
      #expect(r.ok, "\(r.stderr)")
    }
  }
}
