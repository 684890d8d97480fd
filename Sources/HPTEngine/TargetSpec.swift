import Foundation
import KVMHost
import KernelLog

/// Where KVM runs and how the controller reaches it, apart from which backend drives it. The
/// host under test may crash (that is the point), so everything the harness needs from it —
/// commands, its kernel log, its power — has a path that does not depend on the host's own
/// userspace when one exists: the console and the power switch.
public enum TargetKind: String, Sendable, Codable, CaseIterable {
  /// This machine.
  case local
  /// Another machine: ssh for commands, a libvirt URI, a console (IPMI SOL, console server),
  /// a power switch (ipmitool, Redfish).
  case remote
  /// The emulated POWER lab (QEMU powernv running the real kvm_hv; Guests/lab/): a remote host
  /// whose console is L0's serial port and whose power switch is QMP.
  case lab
}

/// ssh to a target host. Commands are argv lists; see `HostCommand.shellQuote`.
public struct SSHEndpoint: Sendable, Equatable, Codable {
  public var host: String
  public var port: Int = 22
  public var user: String = "root"
  public var identityFile: String?
  /// The lab's host key changes with every image: it is not checked there.
  public var checkHostKey = true

  public init(host: String, port: Int = 22, user: String = "root", identityFile: String? = nil) {
    self.host = host
    self.port = port
    self.user = user
    self.identityFile = identityFile
  }

  /// `ssh ... user@host -- 'quoted' 'argv'`: BatchMode so a missing key fails at once instead
  /// of prompting, keepalives so a dead host is noticed within ~15 s.
  public func argv(_ remote: [String], connectTimeoutS: Int = 10) -> [String] {
    var a = [
      "ssh", "-p", String(port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=\(connectTimeoutS)",
      "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR",
    ]
    if let identityFile { a += ["-i", identityFile, "-o", "IdentitiesOnly=yes"] }
    if !checkHostKey {
      a += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    }
    return a + ["\(user)@\(host)", "--", HostCommand.shellQuote(remote)]
  }

  /// qemu+ssh://user@host:port/system with the key, for libvirt's own ssh transport.
  public var libvirtURI: String {
    var q: [String] = []
    if let identityFile { q.append("keyfile=\(identityFile)") }
    if !checkHostKey { q.append("no_verify=1") }
    return "qemu+ssh://\(user)@\(host):\(port)/system"
      + (q.isEmpty ? "" : "?" + q.joined(separator: "&"))
  }
}

/// Where the host's console comes from.
public enum ConsoleSpec: Sendable, Equatable {
  /// A file something else writes (QEMU's serial logfile, a conserver log).
  case file(String)
  /// A command whose output is the console: `ipmitool -I lanplus -H bmc ... sol activate`,
  /// `nc console-server 7001`.
  case command([String])
}

/// How to power-cycle the host.
public enum PowerSpec: Sendable, Equatable {
  /// ipmitool with its connection arguments (`-I lanplus -H bmc -U user -f passwordfile`);
  /// the harness appends `chassis power cycle` / `chassis power status`.
  case ipmitool([String])
  /// Redfish: POST {"ResetType": "ForceRestart"} to
  /// `url`/redfish/v1/Systems/`system`/Actions/ComputerSystem.Reset (through curl).
  case redfish(url: String, user: String, passwordFile: String, system: String)
  /// QEMU's monitor (the lab): system_reset.
  case qmp(socket: String)
}

/// Where the host's kernel log is read from while a job runs.
public enum HostLogSpec: String, Sendable, Equatable, CaseIterable {
  /// This machine's /dev/kmsg.
  case kmsg
  /// `cat /dev/kmsg` over ssh: complete records, lost when the host dies.
  case ssh
  /// The console: what a dying kernel prints last reaches it.
  case console
  /// No host log (a remote host with neither).
  case none
}

public struct TargetError: Error, CustomStringConvertible, Sendable {
  public var description: String
  public init(_ d: String) { description = d }
}

/// A host under test, as the job (or the command line) describes it.
public struct TargetSpec: Sendable, Equatable {
  public var kind: TargetKind = .local
  public var name: String?
  public var ssh: SSHEndpoint?
  /// Overrides the URI derived from ssh (qemu+ssh://...) or qemu:///system.
  public var libvirtURI: String?
  public var console: ConsoleSpec?
  public var power: PowerSpec?
  /// Where the host log comes from; nil picks: local kmsg, else console if any, else ssh.
  public var hostLog: HostLogSpec?
  /// No console output and no ssh answer for this long: the host is hung.
  public var hungAfterS: Double = 120
  /// Power-cycle the host after it crashed or hung, and wait for it to come back.
  public var recover = true
  /// How long a power-cycled host gets to answer ssh again.
  public var bootTimeoutS: Double = 600
  /// Lab only: the L0 machine, its size, and a kernel under test.
  public var lab = LabSpec()

  public init() {}

  public var effectiveHostLog: HostLogSpec {
    if let hostLog { return hostLog }
    if kind == .local { return .kmsg }
    if console != nil || kind == .lab { return .console }
    return ssh != nil ? .ssh : .none
  }

  /// Checks that the fields fit together; the message names the job key to fix.
  public func validate() throws(TargetError) {
    switch kind {
    case .local:
      if ssh != nil {
        throw TargetError("target.ssh: a local target is this machine; use kind: remote")
      }
    case .remote:
      if ssh == nil && libvirtURI == nil {
        throw TargetError(
          "target: a remote target needs target.ssh (host, user, port, identity) or target.libvirt_uri"
        )
      }
    case .lab:
      if ssh != nil || power != nil || console != nil {
        throw TargetError(
          "target: the lab's ssh, console and power are the ones it starts; set only target.lab")
      }
    }
    if effectiveHostLog == .ssh && ssh == nil {
      throw TargetError("target.host_log: ssh needs target.ssh")
    }
    if effectiveHostLog == .console && console == nil && kind != .lab {
      throw TargetError("target.host_log: console needs target.console (file or command)")
    }
    if effectiveHostLog == .kmsg && kind != .local {
      throw TargetError(
        "target.host_log: kmsg is this machine's; a remote host's is ssh or console")
    }
  }
}

/// The emulated POWER lab's knobs (Guests/lab/).
public struct LabSpec: Sendable, Equatable {
  /// powernv9 or powernv10.
  public var machine = "powernv9"
  public var cpus = 2
  /// POWER chips; each is a NUMA node with its share of the memory (QEMU's powernv gives each
  /// chip a memory range). Two let the host migrate pages between nodes.
  public var sockets = 1
  public var memoryMiB = 4096
  /// A kernel the developer built (vmlinux, PowerNV-capable) and its modules directory
  /// (lib/modules/VERSION with kvm.ko and kvm-hv.ko); nil: Debian's.
  public var hostKernel: String?
  public var hostModules: String?
  public init() {}
}
