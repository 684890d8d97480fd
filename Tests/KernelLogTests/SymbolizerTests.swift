import Foundation
import Testing

@testable import KernelLog

@Suite(
  .enabled(
    if: FileManager.default.isExecutableFile(atPath: "/usr/bin/addr2line")
      && FileManager.default.isExecutableFile(atPath: "/usr/bin/cc"), "no addr2line or cc"))
struct SymbolizerTests {
  /// A small program with debug info stands in for vmlinux.
  func buildBinary() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("symbolize-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let source = dir.appendingPathComponent("hpt.c")
    try """
    int helper(int x) {
      return x * 3;
    }
    int resize_hpt_rehash_hpte(int a) {
      int b = helper(a);
      return b + 1;
    }
    int main(void) { return resize_hpt_rehash_hpte(2); }

    """.write(to: source, atomically: true, encoding: .utf8)
    let binary = dir.appendingPathComponent("vmlinux").path
    let cc = Process()
    cc.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
    cc.arguments = ["-g", "-O0", "-o", binary, source.path]
    try cc.run()
    cc.waitUntilExit()
    #expect(cc.terminationStatus == 0)
    return binary
  }

  @Test func framesGetFileAndLine() throws {
    let vmlinux = try buildBinary()
    let log = """
      [ 1502.118409] kernel BUG at arch/powerpc/kvm/book3s_64_mmu_hv.c:1234!
      [ 1502.119310] NIP [c008000008f44c30] resize_hpt_rehash_hpte+0x10/0x40
      [ 1502.119431] Call Trace:
      [ 1502.119453] [c00000002a5bb990] [c008000008f45c10] main+0x9/0x14
      [ 1502.119522] [c00000002a5bba40] [c008000008f3b7c8] kvm_arch_vm_ioctl_hv+0x3e8/0x5d0 [kvm_hv]
      """
    let report = try #require(CrashDetector().scan(log).first)
    let (text, locations) = try Symbolizer(vmlinux: vmlinux).symbolize(report)
    let lines = text.split(separator: "\n").map(String.init)
    let nip = try #require(lines.first { $0.hasPrefix("NIP [") })
    #expect(nip.contains("hpt.c:"))
    #expect(locations.first?.first?.function == "resize_hpt_rehash_hpte")
    #expect((4...6).contains(locations.first?.first?.line ?? 0))
    #expect(lines.contains { $0.contains("main+0x9/0x14") && $0.contains("hpt.c:8") })
    // A module frame without its .ko stays as it was.
    #expect(lines.contains { $0.hasSuffix("kvm_arch_vm_ioctl_hv+0x3e8/0x5d0 [kvm_hv]") })
  }

  @Test func missingVmlinuxLeavesReportUnchanged() throws {
    let report = try #require(CrashDetector().scan(SeedTests.seed).first)
    let (text, locations) = try Symbolizer(vmlinux: "/nonexistent/vmlinux").symbolize(report)
    #expect(text == report.report)
    #expect(locations.isEmpty)
  }

  @Test func addr2lineOutputWithInlinedCallers() {
    let out = """
      resize_hpt_rehash at arch/powerpc/kvm/book3s_64_mmu_hv.c:1380
       (inlined by) kvm_vm_ioctl_resize_hpt_commit at arch/powerpc/kvm/book3s_64_mmu_hv.c:1456
      ?? ??:0
      kvmppc_add_revmap_chain at arch/powerpc/kvm/book3s_hv_rm_mmu.c:102 (discriminator 3)

      """
    let parsed = Symbolizer.parseAddr2line(out)
    #expect(parsed.count == 3)
    #expect(parsed[0].map(\.line) == [1380, 1456])
    #expect(parsed[0][1].inlined)
    #expect(parsed[1].isEmpty)
    #expect(parsed[2].first?.file == "arch/powerpc/kvm/book3s_hv_rm_mmu.c")
  }
}
