import Testing

@testable import KernelLog

@Suite struct SeedTests {
  static let seed = """
    [91652.628516] Unable to handle kernel paging request for data at address 0xd0000000157fb10c
    [91652.628668] Faulting instruction address: 0xc0000000000e2640
    [91652.628736] Oops: Kernel access of bad area, sig: 11 [#1]
    [91652.628789] LE SMP NR_CPUS=1024 NUMA PowerNV
    [91652.629566] CPU: 136 PID: 41315 Comm: CPU 21/KVM Tainted: G O 4.14.0-1.rc4.dev.gitb27fc5c.el7.centos.ppc64le #1
    [91652.630735] NIP [c0000000000e2640] kvmppc_add_revmap_chain+0x50/0x120
    [91652.630806] LR [d00000000c36e498] kvmppc_book3s_hv_page_fault+0xbb8/0xc40 [kvm_hv]
    [91652.630884] Call Trace:
    [91652.630913] [c0000000028db850] [c0000000028db8b0] 0xc0000000028db8b0 (unreliable)
    [91652.630996] [c0000000028db8b0] [d00000000c36e498] kvmppc_book3s_hv_page_fault+0xbb8/0xc40 [kvm_hv]
    [91652.631959] ---[ end trace ac85ba6db72e5b2e ]---
    [91652.631960] Kernel panic - not syncing: Fatal exception
    """

  @Test func seedOopsIsTitledAndLocated() {
    let reports = CrashDetector().scan(Self.seed)
    #expect(reports.count == 1)
    let r = try! #require(reports.first)
    #expect(r.title == "BUG: unable to handle kernel paging request in kvmppc_add_revmap_chain")
    #expect(r.frame == "kvmppc_add_revmap_chain")
    #expect(r.kind == .pagingFault)
    #expect(r.cpu == 136 && r.pid == 41315 && r.comm == "CPU 21/KVM")
    #expect(r.start == 0)
    let bytes = Array(Self.seed.utf8)
    let endLine = "---[ end trace ac85ba6db72e5b2e ]---\n"
    #expect(String(decoding: bytes[..<r.end], as: UTF8.self).hasSuffix(endLine))
  }

  @Test func streamingMatchesWholeScan() {
    var scanner = StreamingCrashScanner()
    var reports: [CrashReport] = []
    var sawInProgress = false
    for line in Self.seed.split(separator: "\n", omittingEmptySubsequences: false) {
      reports += scanner.feed(line: String(line))
      sawInProgress = sawInProgress || scanner.crashInProgress
    }
    reports += scanner.finish()
    #expect(sawInProgress)
    #expect(reports == CrashDetector().scan(Self.seed))
  }
}
