import Foundation
import Testing

/// `hpthammer scan` refuses option values it does not understand (exit 2, naming the option)
/// rather than ignoring them.
@Suite struct ScanOptionsTests {
  @Test(arguments: [
    (["--origin", "bogus"], "--origin"), (["--origin", "host:"], "--origin"),
    (["--vmlinux", "/nonexistent/vmlinux"], "--vmlinux"),
    (["--module", "kvm_hv=/nonexistent.ko"], "--module"), (["--module", "kvm_hv"], "--module"),
  ])
  func badValuesAreUsageErrors(args: [String], option: String) throws {
    let (rc, out, err) = try CLITests().hpthammer(["scan"] + args + ["/dev/null"])
    #expect(rc == 2, "\(args): exit \(rc)")
    #expect(err.contains(option) && out.isEmpty, "\(args): \(err)")
  }

  /// libvirt is loaded by the libvirt backend alone: `scan` neither loads it nor needs it
  /// installed (the dynamic loader lists every library it opens under LD_DEBUG=files).
  @Test func scanDoesNotLoadLibvirt() throws {
    let cli = CLITests()
    let (rc, _, err) = try CLITests.exec(
      ["/usr/bin/env", "LD_DEBUG=files", cli.binary.path, "scan", "/dev/null"],
      in: CLITests.repo.path)
    #expect(rc == 0, "\(err)")
    #expect(err.contains("libc.so"), "LD_DEBUG listed no library: \(err.prefix(500))")
    #expect(!err.contains("libvirt"), "scan loaded libvirt")
  }

  @Test func goodValuesScan() throws {
    let (rc, _, err) = try CLITests().hpthammer(["scan", "--origin", "guest:vm1", "/dev/null"])
    #expect(rc == 0, "\(err)")
  }
}
