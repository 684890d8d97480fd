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

  @Test func goodValuesScan() throws {
    let (rc, _, err) = try CLITests().hpthammer(["scan", "--origin", "guest:vm1", "/dev/null"])
    #expect(rc == 0, "\(err)")
  }
}
