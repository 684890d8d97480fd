import Foundation
import HPTEngine

/// The emulated POWER lab host (Guests/lab/): QEMU >= 8.1 emulating a PowerNV POWER9/10 (TCG)
/// that boots Debian's ppc64el kernel, or the developer's, with kvm_hv, dropbear and libvirtd.
/// Guests/lab/run.sh builds (cached) and starts it; the harness then drives it like any lab
/// machine: the serial console is a file written from the first byte, QMP is the power switch
/// (system_reset) and off switch (quit), ssh and libvirt reach it on loopback ports.
///
/// The machine outlives one `hpthammer run`: a later job (after a crash and a power cycle, say)
/// finds it running and reuses it; run.sh restarts it when another kernel is asked for.
public final class LabMachine: @unchecked Sendable {
  public let spec: LabSpec
  /// run.sh's access lines (HPTHAMMER_LAB_*, prefix dropped).
  public let access: [String: String]
  /// True when this boot started L0 (false: it was running already).
  public let started: Bool

  public var consoleLog: String { access["CONSOLE_LOG"] ?? "" }
  public var qmpSocket: String { access["QMP"] ?? "" }
  public var libvirtURI: String { access["URI"] ?? "" }
  /// Where the guest image of Guests/build.sh sits inside the lab.
  public var guestImage: (kernel: String, initrd: String)? {
    guard let k = access["GUEST_KERNEL"], let i = access["GUEST_INITRD"] else { return nil }
    return (k, i)
  }

  public var ssh: SSHEndpoint {
    var e = SSHEndpoint(
      host: "127.0.0.1", port: Int(access["SSH_PORT"] ?? "") ?? 10022, user: "root",
      identityFile: access["KEY"])
    // The lab's host key is fixed but lives in run/known_hosts; not worth a second file here.
    e.checkHostKey = false
    return e
  }

  init(spec: LabSpec, access: [String: String], started: Bool) {
    self.spec = spec
    self.access = access
    self.started = started
  }

  static func parseAccess(_ text: String) -> [String: String] {
    scriptLines(text, prefix: "HPTHAMMER_LAB_")
  }

  /// The environment run.sh reads: machine, size, kernel under test.
  static func environment(_ spec: LabSpec) -> [String] {
    var env = [
      "HPTHAMMER_LAB_MACHINE=\(spec.machine)",
      "HPTHAMMER_LAB_SMP=\(spec.cpus)" + (spec.sockets > 1 ? ",sockets=\(spec.sockets)" : ""),
      "HPTHAMMER_LAB_MEM=\(spec.memoryMiB)M",
    ]
    if let k = spec.hostKernel { env.append("HPTHAMMER_LAB_HOST_KERNEL=\(k)") }
    if let m = spec.hostModules { env.append("HPTHAMMER_LAB_HOST_MODULES=\(m)") }
    return env
  }

  /// `run.sh boot`: builds the lab (cached), starts it unless it runs already, waits for ssh
  /// and for libvirt to offer domain type kvm.
  public static func boot(
    _ spec: LabSpec, script: String = "Guests/lab/run.sh", timeoutS: Double = 1800
  ) throws(TargetError) -> LabMachine {
    guard FileManager.default.fileExists(atPath: script) else {
      throw TargetError("the lab's \(script) is not here: run hpthammer from its checkout")
    }
    let r = HostCommand.run(
      ["env"] + environment(spec) + ["bash", script, "boot"], timeoutS: timeoutS)
    guard r.ok else {
      let why =
        r.stderr.split(separator: "\n").last { $0.contains("error") } ?? Substring(r.lastLine)
      throw TargetError("the lab did not boot (\(script) boot): \(why)")
    }
    let access = parseAccess(r.stdout)
    guard access["QMP"] != nil, access["KEY"] != nil, access["URI"] != nil else {
      throw TargetError("\(script) boot printed no access lines (HPTHAMMER_LAB_QMP, _KEY, _URI)")
    }
    return LabMachine(spec: spec, access: access, started: !r.stderr.contains("already running"))
  }

  /// `run.sh stop`: QMP quit.
  public static func stop(script: String = "Guests/lab/run.sh") -> CommandResult {
    HostCommand.run(["bash", script, "stop"], timeoutS: 60)
  }

  /// The lab's own QEMU (L0), from run.sh's qemu.pid beside the console log.
  var emulatorPID: Int32? {
    guard let log = access["CONSOLE_LOG"] else { return nil }
    let file = (log as NSString).deletingLastPathComponent + "/qemu.pid"
    return (try? String(contentsOfFile: file, encoding: .utf8)).flatMap {
      Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
    }
  }

  /// Set when the lab's own QEMU (L0) no longer runs: the lab host then vanished with its
  /// emulator (killed, out of memory), which is the infrastructure failing, not its kernel.
  public var emulatorGone: String? {
    guard let pid = emulatorPID else { return nil }
    // A process that no longer runs may linger as a zombie until reaped (a container's init
    // may never reap it): only a /proc entry in a live state counts.
    if ProcStat(pid: pid)?.isLive == true { return nil }
    return
      "the lab's QEMU (L0, PID \(pid)) is gone: the lab host vanished with its emulator, not by a kernel crash; Guests/lab/run.sh boot starts it again, then rerun"
  }

  /// ssh_ready_s / libvirt_kvm_ready_s of the last boot, from run/boot.times.
  public var bootTimes: [String: Double] {
    guard let log = access["CONSOLE_LOG"] else { return [:] }
    let file = (log as NSString).deletingLastPathComponent + "/boot.times"
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return [:] }
    var out: [String: Double] = [:]
    for line in text.split(separator: "\n") {
      let kv = line.split(separator: "=", maxSplits: 1)
      if kv.count == 2, let v = Double(kv[1]) { out[String(kv[0])] = v }
    }
    return out
  }
}

extension LabMachine {
  /// Every CPU's NIP and LR from QEMU's monitor (`info registers -a`): where a hung lab host
  /// is stuck, even when its kernel can print nothing. Symbolized from the lab kernel's
  /// symbols when `vmlinux` is given and nm can read it.
  public func registerDump(vmlinux: String?) throws(TargetError) -> String {
    let qmp = try QMPClient(socketPath: qmpSocket)
    let raw =
      try qmp.execute("human-monitor-command", arguments: ["command-line": "info registers -a"])
      as? String ?? ""
    let symbols = vmlinux.map(Self.symbols(of:)) ?? []
    var lines: [String] = []
    var cpu = 0
    for line in raw.split(whereSeparator: \.isNewline) where line.hasPrefix("NIP ") {
      let f = line.split(separator: " ", omittingEmptySubsequences: true)
      guard f.count >= 4, let nip = UInt64(f[1], radix: 16), let lr = UInt64(f[3], radix: 16)
      else { continue }
      lines.append(
        "CPU \(cpu): NIP \(Self.symbolize(nip, symbols)) LR \(Self.symbolize(lr, symbols))")
      cpu += 1
    }
    return lines.joined(separator: "\n") + "\n\n" + raw
  }

  /// (address, name) sorted, from `nm -n`; empty when no nm reads the file.
  static func symbols(of vmlinux: String) -> [(UInt64, String)] {
    for nm in ["powerpc64le-linux-gnu-nm", "nm"] where HostCommand.which(nm) != nil {
      let r = HostCommand.run([nm, "-n", vmlinux], timeoutS: 60)
      guard r.ok else { continue }
      var out: [(UInt64, String)] = []
      for l in r.stdout.split(separator: "\n") {
        let p = l.split(separator: " ")
        if p.count >= 3, let a = UInt64(p[0], radix: 16) { out.append((a, String(p[2]))) }
      }
      return out
    }
    return []
  }

  static func symbolize(_ a: UInt64, _ symbols: [(UInt64, String)]) -> String {
    let hex = "0x" + String(a, radix: 16)
    guard a >= 0xc000_0000_0000_0000, let first = symbols.first, a >= first.0 else { return hex }
    var lo = 0
    var hi = symbols.count - 1
    while lo < hi {
      let mid = (lo + hi + 1) / 2
      if symbols[mid].0 <= a { lo = mid } else { hi = mid - 1 }
    }
    return "\(symbols[lo].1)+0x\(String(a - symbols[lo].0, radix: 16)) (\(hex))"
  }

  /// The lab kernel: the developer's, or the Debian one the recipe cached.
  public var vmlinux: String? {
    if let k = spec.hostKernel { return k }
    if let k = access["KERNEL"] { return k }
    let dir = LabMachine.cacheDir
    return (try? FileManager.default.contentsOfDirectory(atPath: dir))?
      .filter { $0.hasPrefix("vmlinux-") }.sorted().last.map { dir + "/" + $0 }
  }

  public static var cacheDir: String {
    ProcessInfo.processInfo.environment["HPTHAMMER_LAB_CACHE"] ?? hpthammerCache("lab")
  }

  /// Boot figures for run.json when this boot started L0 (none when it was reused).
  public var bootFigures: [String: Int] {
    guard started else { return [:] }
    let times = bootTimes
    return [
      "lab_boot_to_ssh_ms": Int((times["ssh_ready_s"] ?? 0) * 1000),
      "lab_boot_to_libvirt_ms": Int((times["libvirt_kvm_ready_s"] ?? 0) * 1000),
    ]
  }
}

/// ~/.cache/hpthammer/NAME (XDG_CACHE_HOME respected): where built parts are kept.
func hpthammerCache(_ name: String) -> String {
  let env = ProcessInfo.processInfo.environment
  return (env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/hpthammer/" + name
}
