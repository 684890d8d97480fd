import Foundation
import Testing

@testable import HPTEngine

/// run.json's provenance as read from a host: the probe's answer taken apart, and kernels'
/// GNU build IDs from /sys/kernel/notes and from an ELF file.
@Suite struct ProvenanceTests {
  static func probeAnswer(_ lines: [String]) -> String {
    lines.map { $0 + "\n" }.joined(separator: HostProbe.separator + "\n")
  }

  /// A GNU build-id note (namesz 4, descsz 20, type 3, "GNU\0", the id), little-endian.
  static func note(id: [UInt8]) -> [UInt8] {
    func le(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xff) } }
    return le(4) + le(UInt32(id.count)) + le(3) + Array("GNU\0".utf8) + id
  }

  @Test func aPOWER9PowerNVHostIsReadWhole() {
    let id: [UInt8] = (0..<20).map { UInt8($0 * 7 & 0xff) }
    // Another note before the build ID (Xen's, as /sys/kernel/notes can hold), then ours.
    let notes =
      [UInt8](repeating: 0, count: 0) + [4, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0]
      + Array("Xen\0".utf8) + [1, 2, 3, 4] + Self.note(id: id)
    let out = Self.probeAnswer([
      "power9-lab", "6.1.0-57-powerpc64le", "#1 SMP Debian 6.1.192-1 (2026-11-20)",
      notes.map { String(format: "%02x", $0) }.joined(),
      "cpu\t\t: POWER9 (raw), altivec supported", "platform\t: PowerNV",
      "machine\t\t: PowerNV 9006-22P",
      "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)",
      "libvirtd (libvirt) 9.0.0",
    ])
    var p = RunProvenance(
      run_id: "r", started_at: "s", ended_at: "e", host_kernel: .init(release: "?"),
      host: .init(name: "x"), hpthammer_version: "v")
    HostProbe.apply(out, to: &p)
    #expect(p.host.name == "power9-lab")
    #expect(p.host_kernel.release == "6.1.0-57-powerpc64le")
    #expect(p.host_kernel.version == "#1 SMP Debian 6.1.192-1 (2026-11-20)")
    #expect(p.host_kernel.build_id == id.map { String(format: "%02x", $0) }.joined())
    #expect(p.host.cpu == "POWER9 (raw), altivec supported")
    #expect(p.host.platform == "PowerNV")
    #expect(p.host.model == "PowerNV 9006-22P")
    #expect(p.qemu_version?.hasPrefix("QEMU emulator version 7.2.19") == true)
    #expect(p.libvirt_version == "libvirtd (libvirt) 9.0.0")
  }

  @Test func aPSeriesGuestWithoutQEMUOrLibvirtLeavesThoseEmpty() {
    let out = Self.probeAnswer([
      "lpar1", "6.1.0-57-powerpc64le", "#1 SMP", "",
      "cpu\t\t: POWER10 (architected), altivec supported",
      "platform\t: pSeries", "model\t\t: IBM,9080-HEX", "", "",
    ])
    var p = RunProvenance(
      run_id: "r", started_at: "s", ended_at: "e", host_kernel: .init(release: "?"),
      host: .init(name: "x"), hpthammer_version: "v")
    HostProbe.apply(out, to: &p)
    #expect(p.host.platform == "pSeries" && p.host.model == "IBM,9080-HEX")
    #expect(p.host.cpu == "POWER10 (architected), altivec supported")
    #expect(p.host_kernel.build_id == nil && p.qemu_version == nil && p.libvirt_version == nil)
    // A short answer (the host died mid-probe) changes nothing.
    var q = p
    HostProbe.apply("lpar2\n" + HostProbe.separator + "\n", to: &q)
    #expect(q == p)
  }

  /// An ELF file's build ID, read from its PT_NOTE segments, agrees with binutils' readelf.
  @Test(
    .enabled(
      if: FileManager.default.isExecutableFile(atPath: "/usr/bin/readelf"), "no readelf (binutils)"
    ))
  func anELFBuildIDAgreesWithReadelf() throws {
    let path = "/bin/true"
    let r = HostCommand.run(["readelf", "-n", path], timeoutS: 10)
    let line = try #require(r.stdout.split(separator: "\n").first { $0.contains("Build ID:") })
    let expected = line.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)
    #expect(BuildID.ofELF(path: path) == expected)
    #expect(BuildID.ofELF(path: "/etc/hostname") == nil)
  }
}
