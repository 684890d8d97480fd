import Foundation
import Yams

/// The job file's `target:` section: which host runs KVM and how to reach it.
///
///     target:
///       kind: remote                      # local (default), remote, lab
///       name: p9-lab-3
///       ssh: {host: p9-lab-3, user: root, port: 22, identity: ~/.ssh/hpthammer}
///       libvirt_uri: qemu+ssh://root@p9-lab-3/system   # default: from ssh
///       console: {command: [ipmitool, -I, lanplus, -H, p9-bmc, -U, ADMIN, -f, /etc/bmc.pw, sol, activate]}
///       power: {ipmitool: [-I, lanplus, -H, p9-bmc, -U, ADMIN, -f, /etc/bmc.pw]}
///       host_log: console                 # kmsg, ssh, console, none
///       hung_after_s: 120
///       inject_host_crash_after_s: 60     # sysrq c over ssh: checks the crash path
///       lab: {machine: powernv9, cpus: 2, memory_mib: 4096}
public struct TargetJob: Sendable, Equatable {
  public var spec = TargetSpec()
  /// Trace the host's resize ioctls (kretprobes) while the job runs.
  public var traceResizes = true
  public var injectHostCrashAfterS: Double?
  /// Lab only: freeze the lab's CPUs (QMP stop) after this long: no console, no ssh, the way
  /// a hard-hung host looks from outside; checks hang detection and the power cycle.
  public var injectHostHangAfterS: Double?
  public init() {}
}

extension Parser {
  static let targetKeys = [
    "kind", "name", "ssh", "libvirt_uri", "console", "power", "host_log", "hung_after_s",
    "recover", "boot_timeout_s", "trace_resizes", "inject_host_crash_after_s",
    "inject_host_hang_after_s", "lab",
  ]

  func target(_ node: Node) throws(JobError) -> TargetJob {
    var t = TargetJob()
    for (k, v) in try mapping(node, "target", allowed: Self.targetKeys) {
      let key = "target.\(k)"
      switch k {
      case "kind":
        let s = try string(v, key)
        guard let kind = TargetKind(rawValue: s) else {
          throw fail(
            v, key,
            "unknown target kind '\(s)'; allowed: \(TargetKind.allCases.map(\.rawValue).joined(separator: ", "))"
          )
        }
        t.spec.kind = kind
      case "name": t.spec.name = try string(v, key)
      case "ssh":
        var host: String?
        var e = SSHEndpoint(host: "")
        for (sk, sv) in try mapping(
          v, key, allowed: ["host", "port", "user", "identity", "check_host_key"])
        {
          let skey = "\(key).\(sk)"
          switch sk {
          case "host": host = try string(sv, skey)
          case "port": e.port = try int(sv, skey, 1...65535)
          case "user": e.user = try string(sv, skey)
          case "identity": e.identityFile = (try string(sv, skey) as NSString).expandingTildeInPath
          default: e.checkHostKey = try bool(sv, skey)
          }
        }
        guard let host, !host.isEmpty else {
          throw fail(v, "\(key).host", "give the host's name or address")
        }
        e.host = host
        t.spec.ssh = e
      case "libvirt_uri": t.spec.libvirtURI = try string(v, key)
      case "console":
        let m = try mapping(v, key, allowed: ["file", "command"])
        guard m.count == 1, let (ck, cv) = m.first else {
          throw fail(v, key, "give exactly one of file: PATH or command: [argv...]")
        }
        t.spec.console =
          ck == "file"
          ? .file(try string(cv, "\(key).file")) : .command(try argv(cv, "\(key).command"))
      case "power":
        let m = try mapping(v, key, allowed: ["ipmitool", "redfish"])
        guard m.count == 1, let (pk, pv) = m.first else {
          throw fail(
            v, key,
            "give exactly one of ipmitool: [args...] or redfish: {url, user, password_file, system}"
          )
        }
        if pk == "ipmitool" {
          t.spec.power = .ipmitool(try argv(pv, "\(key).ipmitool"))
        } else {
          var f: [String: String] = [:]
          for (rk, rv) in try mapping(
            pv, "\(key).redfish", allowed: ["url", "user", "password_file", "system"])
          {
            f[rk] = try string(rv, "\(key).redfish.\(rk)")
          }
          guard let url = f["url"], let user = f["user"], let pw = f["password_file"] else {
            throw fail(
              pv, "\(key).redfish", "give url, user and password_file (system defaults to 1)")
          }
          t.spec.power = .redfish(
            url: url, user: user, passwordFile: pw, system: f["system"] ?? "1")
        }
      case "host_log":
        let s = try string(v, key)
        guard let h = HostLogSpec(rawValue: s) else {
          throw fail(
            v, key,
            "'\(s)'; allowed: \(HostLogSpec.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        t.spec.hostLog = h
      case "hung_after_s": t.spec.hungAfterS = try double(v, key, min: 5)
      case "recover": t.spec.recover = try bool(v, key)
      case "boot_timeout_s": t.spec.bootTimeoutS = try double(v, key, min: 10)
      case "trace_resizes": t.traceResizes = try bool(v, key)
      case "inject_host_crash_after_s": t.injectHostCrashAfterS = try double(v, key, min: 0)
      case "inject_host_hang_after_s": t.injectHostHangAfterS = try double(v, key, min: 0)
      default:
        for (lk, lv) in try mapping(
          v, key,
          allowed: ["machine", "cpus", "sockets", "memory_mib", "host_kernel", "host_modules"])
        {
          let lkey = "\(key).\(lk)"
          switch lk {
          case "machine":
            let m = try string(lv, lkey)
            guard ["powernv9", "powernv10"].contains(m) else {
              throw fail(lv, lkey, "'\(m)'; allowed: powernv9, powernv10")
            }
            t.spec.lab.machine = m
          case "cpus": t.spec.lab.cpus = try int(lv, lkey, 1...16)
          case "sockets": t.spec.lab.sockets = try int(lv, lkey, 1...4)
          case "memory_mib": t.spec.lab.memoryMiB = try int(lv, lkey, 1024...65536)
          case "host_kernel": t.spec.lab.hostKernel = try string(lv, lkey)
          default: t.spec.lab.hostModules = try string(lv, lkey)
          }
        }
      }
    }
    if t.spec.lab.cpus % t.spec.lab.sockets != 0 {
      throw fail(
        node, "target.lab.sockets",
        "\(t.spec.lab.sockets) sockets do not divide \(t.spec.lab.cpus) cpus (each chip gets as many)"
      )
    }
    if t.injectHostHangAfterS != nil && t.spec.kind != .lab {
      throw fail(node, "target.inject_host_hang_after_s", "only the lab can be frozen (QMP stop)")
    }
    do { try t.spec.validate() } catch {
      throw fail(node, "target", error.description)
    }
    return t
  }

  /// A non-empty list of strings: a command line, one element per argument.
  func argv(_ node: Node, _ key: String) throws(JobError) -> [String] {
    guard case .sequence(let s) = node else {
      throw fail(node, key, "expected a list, one element per argument (no shell string)")
    }
    var out: [String] = []
    for n in s { out.append(try string(n, key)) }
    guard !out.isEmpty else { throw fail(node, key, "give at least one argument") }
    return out
  }
}
