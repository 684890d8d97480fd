import Foundation
import HPTEngine
import KVMSys

/// hpthammer-hostd (Guests/hostd/) on a target host: built here for the host's architecture
/// (static, with the cross compiler), copied over ssh, started over ssh, spoken to through
/// `RemoteSyscalls`. This is how the raw backend (the Swift VMM and hammer) drives a POWER
/// host's /dev/kvm from a controller that survives the host's crash.
public final class Hostd: @unchecked Sendable {
  public let syscalls: RemoteSyscalls
  let process: Process

  /// The C compiler for each `uname -m`, and whether the result can be static.
  static let compilers: [String: [String]] = [
    "ppc64le": ["powerpc64le-linux-gnu-gcc", "-static"],
    "x86_64": ["cc", "-static"],
  ]

  /// Builds (cached by source hash) hostd for `machine`; returns the binary's path.
  public static func build(for machine: String, source: String = "Guests/hostd/hpthammer-hostd.c")
    throws(TargetError) -> String
  {
    guard let cc = compilers[machine] else {
      throw TargetError(
        "no compiler known for a \(machine) host (hostd is built for ppc64le, x86_64)")
    }
    guard HostCommand.which(cc[0]) != nil else {
      throw TargetError(
        "\(cc[0]) is not installed: apt-get install -y gcc-powerpc64le-linux-gnu (scripts/test.sh does)"
      )
    }
    guard let text = FileManager.default.contents(atPath: source) else {
      throw TargetError("\(source) is not here: run hpthammer from its checkout")
    }
    let dir = hpthammerCache("hostd")
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let out = "\(dir)/hpthammer-hostd-\(machine)-\(Target.fnv1a(text))"
    if FileManager.default.isExecutableFile(atPath: out) { return out }
    let r = HostCommand.run(
      cc + ["-O2", "-Wall", "-pthread", "-o", out + ".tmp", source], timeoutS: 300)
    guard r.ok else { throw TargetError("building hostd for \(machine): \(r.lastLine)") }
    _ = try? FileManager.default.moveItem(atPath: out + ".tmp", toPath: out)
    return out
  }

  /// Copies hostd to the target and starts it there, over ssh.
  public static func start(on target: Target) throws(TargetError) -> Hostd {
    guard let ssh = target.sshEndpoint else {
      throw TargetError("the raw backend on \(target.name) needs ssh (target.ssh)")
    }
    let uname = target.run(["uname", "-m"], timeoutS: 30)
    guard uname.ok else { throw TargetError("\(target.name): uname -m: \(uname.lastLine)") }
    let machine = uname.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    let binary = try build(for: machine)
    let remote = try target.stage(binary, directory: "/var/lib/hpthammer")
    let chmod = target.run(["chmod", "755", remote], timeoutS: 30)
    guard chmod.ok else { throw TargetError("\(target.name): chmod \(remote): \(chmod.lastLine)") }
    let cleaned = HostdLeftovers.reap(target)
    let argv = ssh.argv(HostdLeftovers.launch(remote))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    let toHost = Pipe()
    let fromHost = Pipe()
    p.standardInput = toHost
    p.standardOutput = fromHost
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { throw TargetError("starting ssh for hostd: \(error)") }
    do {
      let sys = try RemoteSyscalls(
        readFD: fromHost.fileHandleForReading.fileDescriptor,
        writeFD: toHost.fileHandleForWriting.fileDescriptor,
        arch: machine.hasPrefix("ppc64") ? .powerpc : .generic)
      let h = Hostd(syscalls: sys, process: p, pipes: [toHost, fromHost])
      h.cleaned = cleaned
      return h
    } catch {
      p.terminate()
      throw TargetError("hostd on \(target.name) did not answer: \(error)")
    }
  }

  private let pipes: [Pipe]
  /// What the start cleaned up on the target first (HostdLeftovers), one line each.
  public internal(set) var cleaned: [String] = []
  init(syscalls: RemoteSyscalls, process: Process, pipes: [Pipe]) {
    self.syscalls = syscalls
    self.process = process
    self.pipes = pipes
  }

  deinit { if process.isRunning { process.terminate() } }
}
