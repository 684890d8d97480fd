import Foundation
import Testing

/// `hpthammer doctor` end to end, through the real binary and this machine's /dev/kvm.
extension CLITests {
  static let isPOWER: Bool = {
    #if arch(powerpc64le) || arch(powerpc64)
      true
    #else
      false
    #endif
  }()

  @Test(.enabled(if: !isPOWER, "this test expects a host without KVM-HV"))
  func doctorSaysHPTResizingIsNotAvailableOffPOWERAndExits125() throws {
    let (code, out, _) = try hpthammer(["doctor"])
    #expect(code == 125)
    let line = out.split(separator: "\n").first { $0.contains("KVM_CAP_SPAPR_RESIZE_HPT:") }
    #expect(line?.contains("[FAIL]") == true, "\(out)")
    #expect(line?.contains("HPT resizing is not available") == true)
    if FileManager.default.fileExists(atPath: "/dev/kvm") {
      #expect(out.contains("KVM API version: 12"))
    }
    #expect(out.contains("Not ready: HPT resizing is not available"))
  }

  @Test(.enabled(if: !isPOWER, "this test expects a host without KVM-HV"))
  func doctorJSONIsTheSameChecklist() throws {
    let (code, out, _) = try hpthammer(["doctor", "--json"])
    #expect(code == 125)
    let json = try #require(
      try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
    #expect(json["ready"] as? Bool == false)
    let checks = try #require(json["checks"] as? [[String: Any]])
    let ids = checks.compactMap { $0["id"] as? String }
    #expect(
      ids == [
        "dev_kvm", "api_version", "spapr_resize_hpt", "hv_or_pr", "mmu_modes", "cpu", "host_mmu",
        "kernel", "huge_pages", "libvirt",
      ])
    let resize = checks.first { $0["id"] as? String == "spapr_resize_hpt" }
    #expect(
      resize?["status"] as? String
        == (FileManager.default.fileExists(atPath: "/dev/kvm") ? "fail" : "not checked"))
  }

  /// The libvirt side counts toward the exit code: libvirt's test driver is reachable but has no
  /// ppc64le guests, so the libvirt backend cannot run there.
  @Test func doctorCountsLibvirtThroughTheGivenURI() throws {
    let (code, out, _) = try hpthammer(["doctor", "--json", "--connect", "test:///default"])
    #expect(code == 125)
    let json = try #require(
      try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
    #expect(json["libvirtReady"] as? Bool == false)
    let checks = try #require(json["checks"] as? [[String: Any]])
    let libvirt = try #require(checks.first { $0["id"] as? String == "libvirt" })
    #expect(libvirt["status"] as? String == "fail")
    #expect((libvirt["detail"] as? String)?.contains("test:///default reachable") == true)
    #expect((libvirt["detail"] as? String)?.contains("no ppc64le guests") == true)
    #expect(
      (json["verdict"] as? String)?.contains(
        "test:///default cannot run HPT guests on KVM-HV") == true)
  }

  @Test func doctorIoctlsPrintsThePOWERNumbers() throws {
    let (code, out, _) = try hpthammer(["doctor", "--ioctls", "--arch", "ppc64le"])
    #expect(code == 0)
    let lines = out.split(separator: "\n")
    #expect(lines.contains("KVM_PPC_RESIZE_HPT_PREPARE 0x4010aead"))
    #expect(lines.contains("KVM_PPC_ALLOCATE_HTAB 0xc004aea7"))
    #expect(lines.contains("KVM_CREATE_VM 0x2000ae01"))
    #expect(lines.contains("KVM_SET_REGS 0x8188ae82"))
    #expect(lines.contains("KVM_CREATE_DEVICE 0xc00caee0"))
    #expect(lines.count == 21)
    let (_, x86, _) = try hpthammer(["doctor", "--ioctls", "--arch", "x86_64"])
    #expect(x86.split(separator: "\n").contains("KVM_PPC_RESIZE_HPT_PREPARE 0x8010aead"))
  }

  @Test func doctorArchWithoutIoctlsIsAUsageError() throws {
    let (code, _, err) = try hpthammer(["doctor", "--arch", "ppc64le"])
    #expect(code == 2)
    #expect(err.contains("--arch only applies to --ioctls"))
  }
}
