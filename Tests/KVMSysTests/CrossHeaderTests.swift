import Foundation
import Testing

@testable import KVMSys

/// The cross compiler and qemu-user, when installed.
enum CrossTools {
  static let sysroot = "/usr/powerpc64le-linux-gnu"

  static let found: (gcc: String, qemu: String)? = {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
    func find(_ name: String) -> String? {
      path.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
    guard let gcc = find("powerpc64le-linux-gnu-gcc"), let qemu = find("qemu-ppc64le-static"),
      FileManager.default.fileExists(atPath: sysroot + "/include/linux/kvm.h")
    else { return nil }
    return (gcc, qemu)
  }()
}

/// The ioctl numbers and struct sizes from the real ppc64el kernel headers: a C program that
/// prints them, built with powerpc64le-linux-gnu-gcc and run under qemu-user. Skipped, with
/// the reason, when the cross tools are not installed (apt-get install
/// gcc-powerpc64le-linux-gnu linux-libc-dev-ppc64el-cross qemu-user-static).
@Suite(
  .enabled(
    if: CrossTools.found != nil,
    "powerpc64le-linux-gnu-gcc, qemu-ppc64le-static or the ppc64el kernel headers are absent"))
struct CrossHeaderTests {
  /// Swift struct sizes against their C structs.
  static let structs: [(String, Int)] = [
    ("struct kvm_ppc_resize_hpt", MemoryLayout<KVMPPCResizeHPT>.size),
    ("struct kvm_userspace_memory_region", MemoryLayout<KVMUserspaceMemoryRegion>.size),
    ("struct kvm_one_reg", MemoryLayout<KVMOneReg>.size),
    ("struct kvm_enable_cap", MemoryLayout<KVMEnableCap>.size),
    ("struct kvm_ppc_mmuv3_cfg", MemoryLayout<KVMPPCMMUv3Cfg>.size),
    ("struct kvm_get_htab_fd", MemoryLayout<KVMGetHTABFD>.size),
    ("struct kvm_ppc_smmu_info", MemoryLayout<KVMPPCSMMUInfo>.size),
    ("struct kvm_sregs", MemoryLayout<KVMSregs>.size),
    ("struct kvm_regs", MemoryLayout<KVMRegs>.size),
  ]

  /// ONE_REG ids.
  static let regs: [(String, UInt64)] = [
    ("KVM_REG_PPC_LPCR_64", KVMReg.KVM_REG_PPC_LPCR_64),
    ("KVM_REG_PPC_ARCH_COMPAT", KVMReg.KVM_REG_PPC_ARCH_COMPAT),
  ]

  func run(_ executable: String, _ args: [String]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
  }

  @Test func numbersAndSizesMatchThePPC64ELHeaders() throws {
    let (gcc, qemu) = try #require(CrossTools.found)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "kvmsys-cross-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    // The names come from KVMIoctl.all: a misspelt one does not compile.
    var c = "#include <stdio.h>\n#include <linux/kvm.h>\nint main(void) {\n"
    for ioctl in KVMIoctl.all {
      c += "  printf(\"\(ioctl.name) 0x%lx\\n\", (unsigned long)\(ioctl.name));\n"
    }
    for (name, _) in Self.structs {
      c += "  printf(\"\(name) %zu\\n\", sizeof(\(name)));\n"
    }
    for (name, _) in Self.regs {
      c += "  printf(\"\(name) 0x%llx\\n\", (unsigned long long)\(name));\n"
    }
    c += "  return 0;\n}\n"
    let source = dir.appendingPathComponent("ioctls.c")
    let binary = dir.appendingPathComponent("ioctls")
    try c.write(to: source, atomically: true, encoding: .utf8)
    let (cc, ccOut) = try run(gcc, ["-O0", "-o", binary.path, source.path])
    try #require(cc == 0, "\(ccOut)")
    let (rc, out) = try run(qemu, ["-L", CrossTools.sysroot, binary.path])
    try #require(rc == 0, "\(out)")
    let lines = Set(out.split(separator: "\n").map(String.init))
    for ioctl in KVMIoctl.all {
      let expected = "\(ioctl.name) 0x\(String(ioctl.number(for: .powerpc), radix: 16))"
      #expect(lines.contains(expected), "\(expected) not in:\n\(out)")
    }
    for (name, size) in Self.structs {
      #expect(lines.contains("\(name) \(size)"), "sizeof(\(name)) != \(size):\n\(out)")
    }
    for (name, id) in Self.regs {
      #expect(lines.contains("\(name) 0x\(String(id, radix: 16))"), "\(name):\n\(out)")
    }
  }
}
