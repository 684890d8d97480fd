import Foundation

/// The emulated POWER lab host: QEMU (>= 8.1, TCG) emulating a PowerNV POWER9/10 machine that
/// boots Debian's ppc64el kernel (or the developer's) with kvm_hv, dropbear and libvirtd
/// (Guests/lab/). The harness drives it like a lab machine: the serial console goes to a file
/// from the first byte, QMP is the power switch (system_reset) and off switch (quit), ssh and
/// libvirt reach it through QEMU's user network on loopback ports.
///
/// The machine outlives one `hpthammer run`: a later job (after a crash and a power cycle, say)
/// finds it through its state directory and reuses it when it boots the same kernel.
public final class LabMachine: @unchecked Sendable {
  /// What Guests/lab/build.sh produced (its HPTHAMMER_LAB_* lines).
  public struct Artifacts: Sendable, Equatable, Codable {
    public var qemu: String
    public var qemuLibraryPath: String?
    public var kernel: String
    public var initrd: String
    public var append: String
    public var sshKey: String
    public var disk: String?
    /// Extra QEMU arguments the recipe needs (firmware paths, ...).
    public var extraArgs: [String]
  }

  public let spec: LabSpec
  public let artifacts: Artifacts
  public let stateDir: String
  public let sshPort: Int

  public var consoleLog: String { stateDir + "/console.log" }
  public var qmpSocket: String { stateDir + "/qmp.sock" }
  var pidFile: String { stateDir + "/qemu.pid" }
  var identityFile: String { stateDir + "/identity.json" }

  public var ssh: SSHEndpoint {
    var e = SSHEndpoint(
      host: "127.0.0.1", port: sshPort, user: "root", identityFile: artifacts.sshKey)
    e.checkHostKey = false
    return e
  }

  public init(spec: LabSpec, artifacts: Artifacts, stateDir: String, sshPort: Int = 10022) {
    self.spec = spec
    self.artifacts = artifacts
    self.stateDir = stateDir
    self.sshPort = sshPort
  }

  public static var cacheDir: String {
    let env = ProcessInfo.processInfo.environment
    if let d = env["HPTHAMMER_LAB_CACHE"] { return d }
    let home = env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")
    return home + "/hpthammer/lab"
  }

  /// Runs the recipe (it caches) and reads what it built.
  public static func build(spec: LabSpec, recipe: String = "Guests/lab/build.sh")
    throws(TargetError)
    -> Artifacts
  {
    guard FileManager.default.fileExists(atPath: recipe) else {
      throw TargetError(
        "the lab recipe \(recipe) is not here: run from the HPTHammer checkout")
    }
    var argv = ["bash", recipe]
    if let k = spec.hostKernel { argv += ["--host-kernel", k] }
    if let m = spec.hostModules { argv += ["--host-modules", m] }
    let r = HostCommand.run(argv, timeoutS: 3600)
    guard r.ok else {
      throw TargetError("building the lab (\(recipe)) failed: \(r.lastLine)")
    }
    return try parseArtifacts(r.stdout)
  }

  static func parseArtifacts(_ text: String) throws(TargetError) -> Artifacts {
    var v: [String: String] = [:]
    for line in text.split(separator: "\n") where line.hasPrefix("HPTHAMMER_LAB_") {
      let kv = line.split(separator: "=", maxSplits: 1)
      if kv.count == 2 { v[String(kv[0].dropFirst("HPTHAMMER_LAB_".count))] = String(kv[1]) }
    }
    func need(_ k: String) throws(TargetError) -> String {
      guard let x = v[k], !x.isEmpty else {
        throw TargetError("the lab recipe printed no HPTHAMMER_LAB_\(k)= line")
      }
      return x
    }
    return Artifacts(
      qemu: try need("QEMU"), qemuLibraryPath: v["QEMU_LD_LIBRARY_PATH"],
      kernel: try need("KERNEL"), initrd: try need("INITRD"), append: v["APPEND"] ?? "console=hvc0",
      sshKey: try need("SSH_KEY"), disk: v["DISK"],
      extraArgs: (v["QEMU_ARGS"] ?? "").split(separator: " ").map(String.init))
  }

  /// L0's command line: everything but the console and QMP is the recipe's.
  public var qemuArgv: [String] {
    var a = [
      artifacts.qemu, "-M", spec.machine, "-accel", "tcg,thread=multi", "-smp", String(spec.cpus),
      "-m", "\(spec.memoryMiB)M", "-display", "none", "-monitor", "none",
      "-chardev", "file,id=con0,path=\(consoleLog),append=on", "-serial", "chardev:con0",
      "-qmp", "unix:\(qmpSocket),server=on,wait=off",
      "-kernel", artifacts.kernel, "-initrd", artifacts.initrd, "-append", artifacts.append,
      "-device", "e1000e,netdev=n0,bus=pcie.0",
      "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:\(sshPort)-:22",
      "-daemonize", "-pidfile", pidFile,
    ]
    if let disk = artifacts.disk {
      a += [
        "-drive", "file=\(disk),if=none,id=d0,format=raw,snapshot=on",
        "-device", "nvme,drive=d0,serial=hpthammer,bus=pcie.1",
      ]
    }
    return a + artifacts.extraArgs
  }

  /// The running L0's pid, if its pidfile names a live QEMU.
  public var runningPID: Int32? {
    guard let s = try? String(contentsOfFile: pidFile, encoding: .utf8),
      let pid = Int32(s.trimmingCharacters(in: .whitespacesAndNewlines)), kill(pid, 0) == 0
    else { return nil }
    return pid
  }

  /// Reuses a running lab booted from the same artifacts, or starts one.
  public func startIfNeeded() throws(TargetError) -> Bool {
    let wanted = try? JSONEncoder().encode(IdentityRecord(spec: "\(spec)", artifacts: artifacts))
    if runningPID != nil {
      if let have = FileManager.default.contents(atPath: identityFile), have == wanted {
        return false
      }
      stop()
    }
    try? FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
    try? FileManager.default.removeItem(atPath: qmpSocket)
    let env = artifacts.qemuLibraryPath.map { ["env", "LD_LIBRARY_PATH=\($0)"] } ?? []
    let r = HostCommand.run(env + qemuArgv, timeoutS: 60)
    guard r.ok else { throw TargetError("starting the lab's QEMU: \(r.lastLine)") }
    if let wanted { FileManager.default.createFile(atPath: identityFile, contents: wanted) }
    return true
  }

  /// quit over QMP; SIGKILL if QEMU does not go.
  public func stop() {
    let pid = runningPID
    if let qmp = try? QMPClient(socketPath: qmpSocket, timeoutS: 5) { _ = try? qmp.execute("quit") }
    if let pid {
      for _ in 0..<50 where kill(pid, 0) == 0 { Thread.sleep(forTimeInterval: 0.1) }
      if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
    }
    try? FileManager.default.removeItem(atPath: identityFile)
  }

  struct IdentityRecord: Codable {
    var spec: String
    var artifacts: Artifacts
  }
}
