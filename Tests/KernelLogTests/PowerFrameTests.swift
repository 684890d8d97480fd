import Foundation
import Testing

@testable import KernelLog

/// powerpc frames from the register dump, the line joiner and the catch-all headers (issue 11).
@Suite struct PowerFrameTests {
  let detector = CrashDetector()

  func scan(_ log: String) -> [CrashReport] { detector.scan(log) }

  static let faultRegs = """
    [   10.000000] BUG: Kernel NULL pointer dereference on read at 0x00000160
    [   10.000001] Faulting instruction address: 0xc0000000000c3a60
    [   10.000002] Oops: Kernel access of bad area, sig: 11 [#1]
    [   10.000003] NIP:  c0000000000c3a60 LR: c000000000039944 CTR: c0000000000398e0
    [   10.000004] NIP [c0000000000c3a60] memcpy_power7+0x200/0x7d0
    [   10.000005] LR [c000000000039944] ppr_get+0x64/0xb0
    [   10.000006] Call Trace:
    [   10.000007] [c000000004183650] [c000000000039920] ppr_get+0x40/0xb0 (unreliable)
    [   10.000008] [c000000004183690] [c0000000001e5e80] __regset_get+0x180/0x1f0
    [   10.000009] ---[ end trace 0000000000000000 ]---

    """

  /// A fault in a generic copy helper is its caller's: the LR names it.
  @Test func faultInGenericHelperNamesTheLinkRegister() {
    let r = scan(Self.faultRegs).first
    #expect(r?.frame == "ppr_get")
    #expect(r?.corrupted == false)
  }

  /// An instruction fetch at a symbol's first byte is a jump there: the caller in LR.
  @Test func instructionFetchAtSymbolStartNamesTheCaller() {
    let log = """
      [  148.255099] BUG: Unable to handle kernel instruction fetch
      [  148.255122] Faulting instruction address: 0xc0000000016804ac
      [  148.255136] Oops: Kernel access of bad area, sig: 11 [#1]
      [  148.255494] NIP [c0000000016804ac] sysctl_net_busy_read+0x0/0x4
      [  148.255516] LR [c00800000fa60408] find_free_cb+0x8/0x30 [loop]
      [  148.255528] Call Trace:
      [  148.255538] [c0000010a6fafc90] [c0000000009732c0] idr_for_each+0xf0/0x170 (unreliable)

      """
    #expect(scan(log).first?.frame == "find_free_cb")
  }

  /// kernel BUG names the NIP's function itself, even a helper (the BUG_ON is there).
  @Test func kernelBugNamesTheNIP() {
    let log = """
      [   38.650264] kernel BUG at mm/usercopy.c:101!
      [   38.650267] Oops: Exception in kernel mode, sig: 5 [#1]
      [   38.650366] NIP [c00000000056d870] usercopy_abort+0xb0/0xc0
      [   38.650373] LR [c00000000056d86c] usercopy_abort+0xac/0xc0
      [   38.650377] Call Trace:
      [   38.650384] [c0000000ba6e7be0] [c0000000005178f0] __check_heap_object+0xf0/0x120

      """
    let r = scan(log).first
    #expect(r?.frame == "usercopy_abort")
    #expect(r?.corrupted == false)
  }

  /// xmon prints "pc:"/"lr:" instead of NIP/LR.
  @Test func xmonRegisters() {
    let log = """
      kernel BUG at arch/powerpc/kvm/book3s_64_mmu_radix.c:43!
          pc: c000000000161b30: __kvmhv_copy_tofrom_guest_radix+0x130/0x1f0
          lr: c000000000161d5c: kvmhv_copy_from_guest_radix+0x3c/0x80

      """
    let r = scan(log).first
    #expect(r?.frame == "__kvmhv_copy_tofrom_guest_radix")
    #expect(r?.corrupted == false)
  }

  /// A WARNING names the function on its own line (arch/powerpc's __warn prints it).
  @Test func warningNamesItsSite() {
    let log = """
      [   7.896890] WARNING: CPU: 1 PID: 1 at lib/refcount.c:28 refcount_warn_saturate+0x224/0x240
      [   7.948882] NIP:  c000000000936f44 LR: c000000000936f40 CTR: 0000000000000000
      [   7.948900] NIP [c000000000936f44] refcount_warn_saturate+0x224/0x240
      [   7.948910] LR [c000000000936f40] refcount_warn_saturate+0x220/0x240
      [   7.948920] Call Trace:
      [   8.151034] [c0000000052e3a30] [c000000001057c40] kobject_put+0x180/0x240
      [   8.151035] ---[ end trace 0000000000000000 ]---

      """
    #expect(scan(log).first?.frame == "refcount_warn_saturate")
  }

  /// Lines a mail client ran together are split at their timestamps: the NIP inside one counts.
  @Test func runTogetherLinesAreSplit() {
    let log = """
      [  103.269589] BUG: Kernel NULL pointer dereference on read at 0x00000018
      [  103.269599] Oops: Kernel access of bad area, sig: 11 [#1]
      [  103.269669] CFAR: c0000000009dd2b8 IRQMASK: 0  [  103.269669] GPR00: c0000000009dd2bc c0000000a113f7b0  [  103.269700] NIP [c0000000009dcf34] tpm_try_transmit+0x74/0x300
      [  103.269713] LR [c0000000009dd2bc] tpm_transmit+0xfc/0x190
      [  103.269717] Call Trace:

      """
    #expect(scan(log).first?.frame == "tpm_try_transmit")
  }

  /// A header cut by an 80-column console (mid-word) or a mail client (at a blank) continues
  /// on the next line, which lost the prefix: joined, it is a crash, reported from the cut line.
  @Test(arguments: [
    (
      "Dec 21 13:26:30 hydra kernel: INFO: task txg_sync:3301 blocked for more than 122",
      " seconds."
    ),
    (
      "Dec 21 13:26:30 hydra kernel: INFO: task txg_sync:3301 blocked for more", "than 122 seconds."
    ),
  ])
  func cutHeaderIsJoined(_ head: String, _ rest: String) {
    let log = """
      Dec 21 13:26:29 hydra kernel: zfs: loaded
      \(head)
      \(rest)
      Dec 21 13:26:30 hydra kernel: Call Trace:
      Dec 21 13:26:30 hydra kernel: [c00000006cb935a0] [c00000000001b470] __switch_to+0x1e0/0x300
      Dec 21 13:26:30 hydra kernel: [c00000006cb93880] [c00800001f95a1d4] txg_sync_thread+0x20c/0x2c0 [zfs]

      """
    let reports = scan(log)
    #expect(reports.count == 1)
    #expect(reports.first?.kind == .hungTask)
    #expect(reports.first?.start == Array("Dec 21 13:26:29 hydra kernel: zfs: loaded\n".utf8).count)
    // Fed line by line and in odd chunks: the same report at the same offset.
    var scanner = StreamingCrashScanner()
    var streamed: [CrashReport] = []
    for line in log.split(separator: "\n", omittingEmptySubsequences: false) {
      streamed += scanner.feed(line: String(line))
    }
    streamed += scanner.finish()
    #expect(streamed.map(\.title) == reports.map(\.title))
    #expect(streamed.map(\.start) == reports.map(\.start))
    var chunked = StreamingCrashScanner()
    var fromChunks: [CrashReport] = []
    let bytes = Array(log.utf8)
    var at = 0
    while at < bytes.count {
      let end = min(bytes.count, at + 7)
      fromChunks += bytes[at..<end].withUnsafeBufferPointer { chunked.feed(chunk: $0) }
      at = end
    }
    fromChunks += chunked.finish()
    #expect(fromChunks.map(\.title) == reports.map(\.title))
    #expect(fromChunks.map(\.start) == reports.map(\.start))
  }

  /// The console printed the header twice before the stack: one report, named by its NIP.
  @Test func repeatedHeaderContinuesTheReport() {
    let log = """
      [ 1650.801625] BUG: Kernel NULL pointer dereference on read at 0x00000108
      [ 1650.801652] Oops: Kernel access of bad area, sig: 11 [#1]
      [ 1650.801748] NIP:  c000000000036154 LR: c0000000006f67b4 CTR: c000000000036140
      [ 1650.801755] BUG: Kernel NULL pointer dereference on read at 0x00000108
      [ 1650.801927] NIP [c000000000036154] tm_cgpr_active+0x14/0x40
      [ 1650.801939] LR [c0000000006f67b4] fill_thread_core_info+0x1d4/0x290
      [ 1650.801951] Call Trace:
      [ 1650.801955] [c00000004eb7b720] [c0000000006f673c] fill_thread_core_info+0x15c/0x290 (unreliable)

      """
    let reports = scan(log)
    #expect(reports.count == 1)
    #expect(reports.first?.frame == "tm_cgpr_active")
  }

  /// A header line no format takes apart is still a crash (grep would count it), titled by its
  /// own text; a specific header later in the same line wins.
  @Test func catchAllHeaders() {
    let odd = scan("[    1.0] BUG: looking up invalid subclass: 8\n")
    #expect(odd.count == 1)
    #expect(odd.first?.corrupted == true)
    #expect(odd.first?.title.hasPrefix("BUG: looking up invalid subclass") == true)
    let gpf = scan(
      "[  1.0] Oops: general protection fault, probably for non-canonical address 0xdffffc0000000000: 0000 [#1] SMP KASAN\n[  1.1] RIP: 0010:mremap_to+0x1a/0x300\n"
    )
    #expect(gpf.first?.title == "general protection fault in mremap_to")
  }

  /// Mail quoting ("> ") and indentation before the console prefix are not the message.
  @Test func quotedAndIndentedLogs() {
    let quoted = Self.faultRegs.split(separator: "\n", omittingEmptySubsequences: false)
      .map { "> " + $0 }.joined(separator: "\n")
    #expect(scan(quoted).first?.frame == "ppr_get")
    let indented = Self.faultRegs.split(separator: "\n", omittingEmptySubsequences: false)
      .map { "    " + $0 }.joined(separator: "\n")
    #expect(scan(indented).first?.frame == "ppr_get")
  }
}
