import Foundation
import HPTEngine
import KVMHost
import KernelLog
import Libvirt

/// A host under test, ready to use: commands, its libvirt URI, its kernel log, its power.
/// Local, remote and lab hosts differ only in the paths these take.
public final class Target: @unchecked Sendable {
  public let spec: TargetSpec
  /// The lab's machine when this is a lab target (it supplies ssh, console and QMP).
  public let lab: LabMachine?

  public init(spec: TargetSpec, lab: LabMachine? = nil) {
    self.spec = spec
    self.lab = lab
  }

  public var name: String {
    spec.name ?? ssh?.host ?? (spec.kind == .local ? "localhost" : "target")
  }

  var ssh: SSHEndpoint? { lab?.ssh ?? spec.ssh }
  public var sshEndpoint: SSHEndpoint? { ssh }
  var console: ConsoleSpec? { lab.map { .file($0.consoleLog) } ?? spec.console }
  var power: PowerSpec? { lab.map { .qmp(socket: $0.qmpSocket) } ?? spec.power }

  public var libvirtURI: String {
    spec.libvirtURI ?? lab?.libvirtURI ?? ssh?.libvirtURI ?? "qemu:///system"
  }

  /// Runs `argv` on the host: locally, or through ssh.
  public func run(_ argv: [String], stdin: Data? = nil, timeoutS: Double = 60) -> CommandResult {
    if spec.kind == .local { return HostCommand.run(argv, stdin: stdin, timeoutS: timeoutS) }
    guard let ssh else {
      return CommandResult(
        status: 255, stdout: "", stderr: "\(name): no ssh configured (target.ssh)")
    }
    return HostCommand.run(ssh.argv(argv), stdin: stdin, timeoutS: timeoutS)
  }

  /// Does the host answer a trivial command within a few seconds.
  public func answers(timeoutS: Double = 15) -> Bool {
    run(["true"], timeoutS: timeoutS).ok
  }

  /// Whether the host's kernel has oopsed since it booted (TAINT_DIE, 'D', in
  /// /proc/sys/kernel/tainted): an oops in a vCPU thread kills the thread, not the host, and
  /// what it left behind (a corrupted rmap, a held lock) would be the next job's finding.
  public func hasOopsed() -> Bool {
    let r = run(["cat", "/proc/sys/kernel/tainted"], timeoutS: 20)
    guard r.ok, let v = Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
      return false
    }
    return v & (1 << 7) != 0
  }

  /// The host's kernel release (uname -r).
  public func kernelRelease() -> String {
    let r = run(["uname", "-r"], timeoutS: 20)
    return r.ok ? r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : "?"
  }

  /// Copies a local file to `directory` on the host under a content-derived name, unless it is
  /// there already; returns the host's path. Local targets need no copy.
  public func stage(_ localPath: String, directory: String) throws(TargetError) -> String {
    if spec.kind == .local { return localPath }
    guard let data = FileManager.default.contents(atPath: localPath) else {
      throw TargetError("cannot read \(localPath) to copy it to \(name)")
    }
    let base = URL(fileURLWithPath: localPath).lastPathComponent
    let remote = "\(directory)/\(data.count)-\(Self.fnv1a(data))-\(base)"
    if run(["test", "-s", remote], timeoutS: 30).ok { return remote }
    let mk = run(["mkdir", "-p", directory], timeoutS: 30)
    guard mk.ok else { throw TargetError("\(name): mkdir -p \(directory): \(mk.lastLine)") }
    // cat on the host side: dropbear and busybox hosts have no sftp server.
    let put = run(
      ["sh", "-c", "cat > \"$1\".part && mv \"$1\".part \"$1\"", "sh", remote], stdin: data,
      timeoutS: 600)
    guard put.ok else {
      throw TargetError("\(name): copying \(localPath) to \(remote): \(put.lastLine)")
    }
    return remote
  }

  static func fnv1a(_ d: Data) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in d {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    return String(h, radix: 16)
  }

  /// Opens the host's kernel log as the spec says.
  public func openHostLog() throws(TargetError) -> HostLogStream {
    let origin = LogOrigin.host(name)
    switch spec.effectiveHostLog {
    case .kmsg:
      return try HostLogStream.kmsg(origin: origin)
    case .ssh:
      guard let ssh else { throw TargetError("host log over ssh needs target.ssh") }
      let up = run(["cat", "/proc/uptime"], timeoutS: 20)
      let uptimeS = up.stdout.split(separator: " ").first.flatMap { Double($0) }
      return HostLogStream.command(
        ssh.argv(["cat", "/dev/kmsg"]), format: .kmsg, origin: origin,
        skipBeforeMicros: uptimeS.map { UInt64($0 * 1e6) })
    case .console:
      switch console {
      case .file(let path): return try HostLogStream.file(path, origin: origin)
      case .command(let argv): return HostLogStream.command(argv, format: .console, origin: origin)
      case nil: throw TargetError("host log from the console needs target.console")
      }
    case .none:
      return HostLogStream.silent(origin: origin)
    }
  }

  public var canPowerCycle: Bool { power != nil }

  /// Power-cycles the host (a hard reset: the host is crashed or hung).
  public func powerCycle() throws(TargetError) {
    switch power {
    case nil:
      throw TargetError("\(name) has no power switch (target.power: ipmitool or redfish)")
    case .qmp(let socket):
      let qmp = try QMPClient(socketPath: socket)
      try qmp.execute("system_reset")
      // A frozen machine (QMP stop) stays frozen through a reset: let it run.
      try qmp.execute("cont")
    case .ipmitool(let base):
      let r = HostCommand.run(["ipmitool"] + base + ["chassis", "power", "cycle"], timeoutS: 60)
      guard r.ok else { throw TargetError("ipmitool chassis power cycle: \(r.lastLine)") }
    case .redfish(let url, let user, let passwordFile, let system):
      guard let pw = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
        throw TargetError("Redfish: cannot read the password file \(passwordFile)")
      }
      // The credentials go to curl on stdin (-K -), not on its command line.
      let config = "user = \"\(user):\(pw.trimmingCharacters(in: .newlines))\"\n"
      let r = HostCommand.run(
        [
          "curl", "-sS", "-k", "--fail", "-K", "-", "-H", "Content-Type: application/json",
          "-X", "POST", "-d", #"{"ResetType": "ForceRestart"}"#,
          "\(url)/redfish/v1/Systems/\(system)/Actions/ComputerSystem.Reset",
        ], stdin: Data(config.utf8), timeoutS: 60)
      guard r.ok else { throw TargetError("Redfish ComputerSystem.Reset: \(r.lastLine)") }
    }
  }

  /// Power-cycles the host and waits until ssh and libvirtd answer again. The lab gets a warm
  /// reset (QMP system_reset) first; if it does not come back within 120 s (an emulated
  /// POWER9 whose timebase ran far ahead of its starved vCPUs can stall in timekeeping after a
  /// reset), its QEMU is quit and started again: a cold power cycle.
  public func powerCycleAndWait(timeoutS: Double) throws(TargetError) {
    try powerCycle()
    guard let lab else {
      try waitReady(timeoutS: timeoutS, libvirt: true)
      return
    }
    do {
      try waitReady(timeoutS: min(timeoutS, 120), libvirt: true)
    } catch {
      _ = LabMachine.stop()
      _ = try LabMachine.boot(lab.spec, timeoutS: timeoutS)
      try waitReady(timeoutS: timeoutS, libvirt: true)
    }
  }

  /// Waits until the host answers ssh (and, when `libvirt`, libvirtd answers too).
  public func waitReady(timeoutS: Double, libvirt: Bool) throws(TargetError) {
    let deadline = Date().addingTimeInterval(timeoutS)
    var last = ""
    while Date() < deadline {
      if spec.kind == .local || answers(timeoutS: 10) {
        if !libvirt { return }
        // From the controller's side, through the URI the runner will use.
        do {
          let c = try LibvirtConnection(uri: libvirtURI)
          _ = try c.capabilities()
          return
        } catch { last = error.message }
      }
      Thread.sleep(forTimeInterval: 2)
    }
    throw TargetError(
      "\(name) did not come back within \(Int(timeoutS)) s"
        + (last.isEmpty ? "" : " (libvirt: \(last))"))
  }
}
