import ArgumentParser
import Foundation
import KVMHost
import KVMSys
import Libvirt

/// `hpthammer doctor [--json] [--connect URI] [--ioctls [--arch A]]`: can this host run the raw /dev/kvm
/// backend, and if not, what to fix. Every answer comes from the host itself (/dev/kvm's
/// ioctls, /proc, /sys, libvirt's capabilities). Exit 0 when both backends can run on KVM-HV,
/// 125 (could not test, for `git bisect run`) otherwise.
struct Doctor: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "doctor",
    abstract: "Check that this host can run the raw /dev/kvm backend, and say what to fix.",
    discussion: """
      Exit codes: 0 when the host can run both backends on KVM-HV (HPT resizing through
      /dev/kvm, KVM_CAP_SPAPR_RESIZE_HPT; libvirt offering ppc64le guests of type kvm), 125
      when it cannot.
      """)

  /// The ioctl layouts `--ioctls` can print, named as `uname -m` names the machines.
  enum ArchName: String, ExpressibleByArgument, CaseIterable {
    case ppc64le
    case x86_64
    var arch: Arch { self == .ppc64le ? .powerpc : .generic }
  }

  @Flag(help: "Print the checklist as JSON.")
  var json = false

  @Option(
    help:
      "The libvirt URI the libvirt backend would use (qemu+ssh://host/system for a remote host).")
  var connect = "qemu:///system"

  @Flag(help: "Print one 'NAME 0xHEX' line per ioctl the raw backend uses, and exit.")
  var ioctls = false

  @Option(help: "With --ioctls: the architecture whose numbers to print (default: this host's).")
  var arch: ArchName?

  func validate() throws {
    if arch != nil && !ioctls { throw ValidationError("--arch only applies to --ioctls") }
  }

  func run() throws {
    if ioctls {
      let a = arch?.arch ?? .host
      for ioctl in KVMIoctl.all {
        print("\(ioctl.name) 0x\(String(ioctl.number(for: a), radix: 16))")
      }
      return
    }
    let report = DoctorReport.probe(libvirtURI: connect)
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
      print(String(decoding: try encoder.encode(report), as: UTF8.self))
    } else {
      print(report.text)
    }
    if !report.ready { throw ExitCode(Exit.couldNotTest) }
  }
}

/// One line of the checklist.
struct DoctorCheck: Codable, Equatable {
  enum Status: String, Codable {
    case ok
    case warn
    case fail
    case info
    case notChecked = "not checked"
  }
  var id: String
  var title: String
  var status: Status
  var detail: String
  /// What to do about a warn or fail.
  var fix: String?
}

struct DoctorReport: Codable {
  /// True when both backends can run on KVM-HV here.
  var ready: Bool
  /// The raw backend can run: /dev/kvm opens, API 12, KVM_CAP_SPAPR_RESIZE_HPT.
  var rawReady: Bool
  /// The libvirt backend can run HPT guests with domain type kvm.
  var libvirtReady: Bool
  var verdict: String
  var machine: String
  var checks: [DoctorCheck]

  var text: String {
    var lines = [
      "hpthammer doctor: can this host run the raw and libvirt backends on KVM-HV? (\(machine))"
    ]
    for c in checks {
      let tag =
        switch c.status {
        case .ok: "[ok]         "
        case .warn: "[warn]       "
        case .fail: "[FAIL]       "
        case .info: "[info]       "
        case .notChecked: "[not checked]"
        }
      lines.append("\(tag) \(c.title): \(c.detail)")
      if let fix = c.fix { lines.append("              fix: \(fix)") }
    }
    lines.append(verdict)
    return lines.joined(separator: "\n")
  }

  static var machine: String {
    #if arch(powerpc64le)
      "ppc64le"
    #elseif arch(powerpc64)
      "ppc64"
    #elseif arch(x86_64)
      "x86_64"
    #elseif arch(arm64)
      "aarch64"
    #else
      "unknown"
    #endif
  }

  static var isPOWER: Bool { Arch.host == .powerpc }

  /// Runs every check against this host.
  static func probe(libvirtURI: String) -> DoctorReport {
    var checks: [DoctorCheck] = []
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""

    // /dev/kvm and what its ioctls say.
    let kvmPath = "/dev/kvm"
    var kvm: KVMSystemFD?
    if !FileManager.default.fileExists(atPath: kvmPath) {
      checks.append(
        DoctorCheck(
          id: "dev_kvm", title: "/dev/kvm", status: .fail, detail: "absent",
          fix: isPOWER
            ? "load KVM-HV: modprobe kvm-hv (needs a PowerNV host, not an LPAR/pseries guest)"
            : "this is not a POWER host; run the raw backend on a POWER8/9/10 PowerNV host"))
    } else {
      let perms = permissions(kvmPath)
      do {
        kvm = try KVMSystemFD.open(path: kvmPath)
        checks.append(
          DoctorCheck(
            id: "dev_kvm", title: "/dev/kvm", status: .ok,
            detail: "present (\(perms)), opened read/write"))
      } catch {
        checks.append(
          DoctorCheck(
            id: "dev_kvm", title: "/dev/kvm", status: .fail,
            detail: "present (\(perms)) but cannot be opened: \(error.errno.name)",
            fix: "run as root, or add this user to /dev/kvm's group (usually 'kvm')"))
      }
    }

    var apiOK = false
    var resizeHPT = 0
    if let kvm {
      do {
        let v = try kvm.apiVersion()
        apiOK = v == 12
        checks.append(
          DoctorCheck(
            id: "api_version", title: "KVM API version", status: apiOK ? .ok : .fail,
            detail: "\(v)", fix: apiOK ? nil : "KVM_GET_API_VERSION must be 12"))
      } catch {
        checks.append(
          DoctorCheck(
            id: "api_version", title: "KVM API version", status: .fail, detail: "\(error)",
            fix: nil))
      }
      resizeHPT = (try? kvm.checkExtension(.spaprResizeHPT)) ?? 0
      checks.append(
        resizeHPT > 0
          ? DoctorCheck(
            id: "spapr_resize_hpt", title: "KVM_CAP_SPAPR_RESIZE_HPT", status: .ok,
            detail: "\(resizeHPT): HPT resizing is available")
          : DoctorCheck(
            id: "spapr_resize_hpt", title: "KVM_CAP_SPAPR_RESIZE_HPT", status: .fail,
            detail: "0: HPT resizing is not available"
              + (isPOWER ? "" : " (\(machine) KVM has no KVM-HV)"),
            fix: isPOWER
              ? "use KVM-HV (modprobe kvm-hv) on Linux 4.11+; POWER9 hosts need 4.16+"
              : "run on a POWER host with KVM-HV loaded"))
      checks.append(hvOrPR(kvm))
      checks.append(mmuModes(kvm))
    } else {
      for (id, title) in [
        ("api_version", "KVM API version"), ("spapr_resize_hpt", "KVM_CAP_SPAPR_RESIZE_HPT"),
        ("hv_or_pr", "KVM-HV or KVM-PR"), ("mmu_modes", "guest MMU modes"),
      ] {
        checks.append(
          DoctorCheck(
            id: id, title: title, status: .notChecked, detail: "/dev/kvm cannot be opened"))
      }
    }

    checks.append(cpu(cpuinfo))
    checks.append(hostMMU(cpuinfo))
    checks.append(kernel())
    checks.append(hugePages())
    let libvirtCheck = libvirt(uri: libvirtURI)
    checks.append(libvirtCheck)

    let rawReady = kvm != nil && apiOK && resizeHPT > 0
    let libvirtReady = libvirtCheck.status == .ok
    var missing: [String] = []
    if !rawReady {
      missing.append(
        "HPT resizing is not available here"
          + (kvm == nil
            ? " (/dev/kvm cannot be used)" : " (KVM_CAP_SPAPR_RESIZE_HPT = \(resizeHPT))")
          + ", the raw backend cannot run")
    }
    if !libvirtReady {
      missing.append("\(libvirtURI) cannot run HPT guests on KVM-HV, the libvirt backend cannot")
    }
    let ready = missing.isEmpty
    let verdict =
      ready
      ? "Ready: this host can run the raw backend (HPT resizing through /dev/kvm) and the libvirt backend (\(libvirtURI), type kvm)."
      : "Not ready: " + missing.joined(separator: "; ") + ". Exit 125."
    return DoctorReport(
      ready: ready, rawReady: rawReady, libvirtReady: libvirtReady, verdict: verdict,
      machine: machine, checks: checks)
  }

  /// "crw-rw---- root:kvm", from the device node itself.
  static func permissions(_ path: String) -> String {
    guard let a = try? FileManager.default.attributesOfItem(atPath: path) else { return "?" }
    let mode = (a[.posixPermissions] as? NSNumber)?.uint16Value ?? 0
    let type = (a[.type] as? FileAttributeType) == .typeCharacterSpecial ? "c" : "?"
    var s = type
    for shift in stride(from: 6, through: 0, by: -3) {
      let bits = (mode >> UInt16(shift)) & 7
      s += (bits & 4 != 0 ? "r" : "-") + (bits & 2 != 0 ? "w" : "-") + (bits & 1 != 0 ? "x" : "-")
    }
    let owner = a[.ownerAccountName] as? String ?? "?"
    let group = a[.groupOwnerAccountName] as? String ?? "?"
    return "\(s) \(owner):\(group)"
  }

  /// KVM-HV runs guests in hypervisor mode and is the one with HPT resizing; KVM-PR (a
  /// user-mode emulation) answers KVM_CAP_PPC_GET_PVINFO, which QEMU uses to tell them apart.
  static func hvOrPR(_ kvm: KVMSystemFD) -> DoctorCheck {
    let fm = FileManager.default
    let hv = fm.fileExists(atPath: "/sys/module/kvm_hv")
    let pr = fm.fileExists(atPath: "/sys/module/kvm_pr")
    let pvinfo = (try? kvm.checkExtension(.ppcGetPVInfo)) ?? 0
    let modules = [hv ? "kvm_hv" : nil, pr ? "kvm_pr" : nil].compactMap { $0 }
    let detail =
      "modules loaded: \(modules.isEmpty ? "neither kvm_hv nor kvm_pr" : modules.joined(separator: ", "))"
      + "; KVM_CAP_PPC_GET_PVINFO = \(pvinfo)"
    if hv {
      return DoctorCheck(
        id: "hv_or_pr", title: "KVM-HV or KVM-PR", status: .ok, detail: "HV, " + detail)
    }
    return DoctorCheck(
      id: "hv_or_pr", title: "KVM-HV or KVM-PR", status: .fail,
      detail: (pr ? "PR only, " : "") + detail,
      fix: isPOWER
        ? "modprobe kvm-hv (KVM-PR has no HPT resizing; HV needs a PowerNV host)"
        : "KVM-HV exists only on POWER PowerNV hosts")
  }

  /// Which guest MMUs KVM offers: HPT guests need KVM_CAP_PPC_ALLOC_HTAB (and on ISA 3.0,
  /// KVM_CAP_PPC_MMU_HASH_V3); radix is POWER9+.
  static func mmuModes(_ kvm: KVMSystemFD) -> DoctorCheck {
    let hashV3 = (try? kvm.checkExtension(.ppcMMUHashV3)) ?? 0
    let radix = (try? kvm.checkExtension(.ppcMMURadix)) ?? 0
    let allocHTAB = (try? kvm.checkExtension(.ppcAllocHTAB)) ?? 0
    let detail =
      "KVM_CAP_PPC_MMU_HASH_V3 = \(hashV3), KVM_CAP_PPC_MMU_RADIX = \(radix), KVM_CAP_PPC_ALLOC_HTAB = \(allocHTAB)"
    if allocHTAB > 0 {
      return DoctorCheck(
        id: "mmu_modes", title: "guest MMU modes", status: .ok,
        detail: detail + (radix > 0 ? " (radix host: HPT guests via CONFIGURE_V3_MMU)" : ""))
    }
    return DoctorCheck(
      id: "mmu_modes", title: "guest MMU modes", status: .fail,
      detail: detail + ": no HPT guests", fix: "HPT guests need KVM-HV on POWER")
  }

  /// The first "key : value" of /proc/cpuinfo with this key.
  static func cpuinfoValue(_ cpuinfo: String, _ key: String) -> String? {
    for line in cpuinfo.split(separator: "\n") {
      let parts = line.split(separator: ":", maxSplits: 1)
      if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == key {
        return parts[1].trimmingCharacters(in: .whitespaces)
      }
    }
    return nil
  }

  /// POWER: "cpu : POWER9 (raw), altivec supported", "revision : 2.2 (pvr 004e 1202)".
  /// POWER9 before DD2.2 cannot run HPT guests on a radix host.
  static func cpu(_ cpuinfo: String) -> DoctorCheck {
    if let cpu = cpuinfoValue(cpuinfo, "cpu"), cpu.hasPrefix("POWER") {
      let model = String(cpu.prefix { $0 != " " && $0 != "," })
      let revision = cpuinfoValue(cpuinfo, "revision") ?? "?"
      let dd = revision.split(separator: " ").first.flatMap { Double($0) }
      let detail = "\(model), DD level \(revision)"
      if model == "POWER9", let dd, dd < 2.2 {
        return DoctorCheck(
          id: "cpu", title: "CPU", status: .warn, detail: detail,
          fix: "POWER9 before DD2.2 runs HPT guests only on a hash host (boot with disable_radix)")
      }
      let known = ["POWER8", "POWER8E", "POWER8NVL", "POWER9", "POWER10"].contains(model)
      return DoctorCheck(
        id: "cpu", title: "CPU", status: known ? .ok : .warn, detail: detail,
        fix: known ? nil : "HPT resizing on KVM-HV is tested on POWER8, POWER9 and POWER10")
    }
    let name = cpuinfoValue(cpuinfo, "model name") ?? "unknown"
    return DoctorCheck(
      id: "cpu", title: "CPU", status: .fail, detail: "not POWER: \(name)",
      fix: "the raw backend needs a POWER8/9/10 host")
  }

  /// /proc/cpuinfo's "MMU : Hash|Radix" (POWER only).
  static func hostMMU(_ cpuinfo: String) -> DoctorCheck {
    guard let mmu = cpuinfoValue(cpuinfo, "MMU") else {
      return DoctorCheck(
        id: "host_mmu", title: "host MMU", status: .notChecked,
        detail: "no MMU line in /proc/cpuinfo (not a POWER host)")
    }
    return DoctorCheck(
      id: "host_mmu", title: "host MMU", status: .info,
      detail: mmu == "Radix"
        ? "Radix: HPT guests need ALLOCATE_HTAB or CONFIGURE_V3_MMU(flags 0) first"
        : mmu)
  }

  /// The running kernel: HPT resizing exists from 4.11; the seed's fix is in 4.14.
  static func kernel() -> DoctorCheck {
    let release =
      (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?
      .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
    let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
    let tooOld = parts.count == 2 && (parts[0], parts[1]) < (4, 11)
    return DoctorCheck(
      id: "kernel", title: "kernel version", status: tooOld ? .fail : .info, detail: release,
      fix: tooOld ? "KVM_PPC_RESIZE_HPT_* need Linux 4.11 or later" : nil)
  }

  /// Huge pages from /proc/meminfo: guest RAM can be backed by them.
  static func hugePages() -> DoctorCheck {
    let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
    let total = cpuinfoValue(meminfo, "HugePages_Total") ?? "?"
    let free = cpuinfoValue(meminfo, "HugePages_Free") ?? "?"
    let size = cpuinfoValue(meminfo, "Hugepagesize") ?? "?"
    return DoctorCheck(
      id: "huge_pages", title: "huge pages", status: .info,
      detail: "HugePages_Total \(total), HugePages_Free \(free), Hugepagesize \(size)")
  }

  /// Can the libvirt backend run HPT guests on KVM-HV through `uri`: reachable, and its
  /// capabilities offer ppc64le guests with domain type 'kvm'. TCG only ('qemu') is a warning:
  /// the libvirt backend runs there (the CI's rung), but the kernel under test is not KVM's.
  static func libvirt(uri: String) -> DoctorCheck {
    let conn: LibvirtConnection
    do { conn = try LibvirtConnection(uri: uri) } catch {
      return DoctorCheck(
        id: "libvirt", title: "libvirt", status: .fail,
        detail: "\(uri) not reachable: \(error.message)",
        fix: uri.hasPrefix("qemu:///")
          ? "start libvirtd (or virtqemud) and virtlogd; scripts/libvirt-up.sh does it on Debian"
          : "check the URI, ssh access and that libvirtd runs on the remote host")
    }
    let version =
      (try? conn.libVersion()).map { v in
        "libvirt \(v / 1_000_000).\(v / 1000 % 1000).\(v % 1000)"
      } ?? "libvirt"
    let capabilities: String
    do { capabilities = try conn.capabilities() } catch {
      return DoctorCheck(
        id: "libvirt", title: "libvirt", status: .fail,
        detail: "\(uri) reachable but its capabilities cannot be read: \(error.message)",
        fix: nil)
    }
    switch DomainType.best(forPPC64LEIn: capabilities) {
    case .kvm:
      return DoctorCheck(
        id: "libvirt", title: "libvirt", status: .ok,
        detail: "\(uri) reachable (\(version)): ppc64le guests with domain type kvm")
    case .qemu:
      return DoctorCheck(
        id: "libvirt", title: "libvirt", status: .fail,
        detail:
          "\(uri) reachable (\(version)): ppc64le guests only under TCG (domain type qemu), not KVM-HV",
        fix: isPOWER
          ? "modprobe kvm-hv, then restart libvirtd so it sees /dev/kvm"
          : "TCG runs the libvirt backend's dry runs; KVM-HV needs a POWER host")
    case nil:
      return DoctorCheck(
        id: "libvirt", title: "libvirt", status: .fail,
        detail: "\(uri) reachable (\(version)) but offers no ppc64le guests",
        fix: "install qemu-system-ppc on that host and restart libvirtd")
    }
  }
}
