import Foundation
import KernelLog
import Testing

@testable import HPTEngine
@testable import HPTTarget

/// The target-host layer: job parsing, argv-only commands, ssh command lines, QMP against a
/// real QEMU, host log streams from files and commands, the resize trace.
@Suite struct TargetTests {
  func jobError(_ yaml: String) -> JobError? {
    do {
      _ = try Job.parse(yaml, file: "t.yaml")
      return nil
    } catch { return error }
  }

  @Test func parsesARemoteTarget() throws {
    let j = try Job.parse(
      """
      backend: libvirt
      target:
        kind: remote
        name: p9-3
        ssh: {host: p9-3.lab, user: kt, port: 2222, identity: /keys/id}
        console: {command: [ipmitool, -I, lanplus, -H, p9-3-bmc, sol, activate]}
        power: {ipmitool: [-I, lanplus, -H, p9-3-bmc, -U, ADMIN, -f, /etc/bmc.pw]}
        hung_after_s: 90
        inject_host_crash_after_s: 30
      """, file: "t.yaml")
    let t = j.target
    #expect(t.spec.kind == .remote && t.spec.name == "p9-3" && t.spec.hungAfterS == 90)
    #expect(
      t.spec.ssh == SSHEndpoint(host: "p9-3.lab", port: 2222, user: "kt", identityFile: "/keys/id"))
    #expect(
      t.spec.console
        == .command(["ipmitool", "-I", "lanplus", "-H", "p9-3-bmc", "sol", "activate"]))
    #expect(
      t.spec.power
        == .ipmitool(["-I", "lanplus", "-H", "p9-3-bmc", "-U", "ADMIN", "-f", "/etc/bmc.pw"]))
    #expect(t.spec.effectiveHostLog == .console)
    #expect(t.injectHostCrashAfterS == 30 && t.traceResizes)
    #expect(
      Target(spec: t.spec).libvirtURI == "qemu+ssh://kt@p9-3.lab:2222/system?keyfile=/keys/id")
  }

  @Test func targetErrorsNameTheKey() {
    #expect(
      jobError("backend: libvirt\ntarget: {kind: cloud}")?.description.contains(
        "target.kind: unknown target kind 'cloud'; allowed: local, remote, lab") == true)
    // A console command is an argv list, never a shell string.
    #expect(
      jobError(
        "backend: libvirt\ntarget: {kind: remote, ssh: {host: h}, console: {command: 'ipmitool sol activate; rm -rf /'}}"
      )?
      .description.contains("target.console.command: expected a list, one element per argument")
        == true)
    #expect(
      jobError("backend: libvirt\ntarget: {kind: remote}")?.description.contains(
        "a remote target needs target.ssh") == true)
    #expect(
      jobError("backend: libvirt\ntarget: {kind: lab, ssh: {host: h}}")?.description.contains(
        "set only target.lab") == true)
    #expect(
      jobError("backend: sim\ntarget: {kind: lab}")?.description.contains(
        "a lab target is driven through the libvirt or raw backend") == true)
    #expect(
      jobError("backend: libvirt\ntarget: {kind: lab, lab: {machine: powernv8}}")?.description
        .contains("allowed: powernv9, powernv10") == true)
    #expect(
      jobError("backend: libvirt\ntarget: {kind: remote, ssh: {host: h}, host_log: kmsg}")?
        .description
        .contains("kmsg is this machine's") == true)
  }

  @Test func onlyTheLabCanBeFrozen() throws {
    #expect(
      jobError(
        "backend: libvirt\ntarget: {kind: remote, ssh: {host: h}, inject_host_hang_after_s: 5}")?
        .description.contains("only the lab can be frozen") == true)
    let j = try Job.parse(
      "backend: libvirt\ntarget: {kind: lab, inject_host_hang_after_s: 15, hung_after_s: 30}",
      file: "t.yaml")
    #expect(j.target.injectHostHangAfterS == 15 && j.target.spec.hungAfterS == 30)
  }

  /// Hostile arguments survive a real shell unchanged and run nothing.
  @Test func shellQuotingKeepsEveryArgumentWhole() throws {
    let marker = FileManager.default.temporaryDirectory.appendingPathComponent(
      "hpthammer-quote-\(UUID())"
    ).path
    let args = [
      "plain", "two words", "it's", "$(touch \(marker))", "; touch \(marker)", "", "a\"b", "*",
      "\\n",
    ]
    let r = HostCommand.run(
      [
        "sh", "-c",
        "for a in " + HostCommand.shellQuote(args) + "; do printf '[%s]\\n' \"$a\"; done",
      ], timeoutS: 10)
    #expect(r.ok, "\(r.stderr)")
    #expect(r.stdout == args.map { "[\($0)]\n" }.joined())
    #expect(!FileManager.default.fileExists(atPath: marker))
  }

  @Test func hostCommandKillsAtItsDeadlineAndFeedsStdin() {
    let slow = HostCommand.run(["sleep", "5"], timeoutS: 0.3)
    #expect(slow.timedOut)
    let cat = HostCommand.run(["cat"], stdin: Data("to the host\n".utf8), timeoutS: 10)
    #expect(cat.ok && cat.stdout == "to the host\n")
    let missing = HostCommand.run(["hpthammer-no-such-program"], timeoutS: 10)
    #expect(missing.status == 127)
    // A daemon it leaves behind keeps the pipes open (the lab's QEMU): the exit still counts.
    let t0 = Date()
    let daemon = HostCommand.run(["sh", "-c", "sleep 20 & echo started; exit 3"], timeoutS: 15)
    #expect(daemon.status == 3 && daemon.stdout == "started\n")
    #expect(-t0.timeIntervalSinceNow < 5)
  }

  @Test func sshCommandLineIsBatchModeWithOneQuotedRemoteCommand() {
    var e = SSHEndpoint(host: "127.0.0.1", port: 10022, user: "root", identityFile: "/k")
    e.checkHostKey = false
    let a = e.argv(["sh", "-c", "echo $1", "x", "a b"])
    #expect(
      a.first == "ssh" && a.contains("BatchMode=yes") && a.contains("StrictHostKeyChecking=no"))
    #expect(a.suffix(3) == ["root@127.0.0.1", "--", "sh -c 'echo $1' x 'a b'"])
    #expect(e.libvirtURI == "qemu+ssh://root@127.0.0.1:10022/system?keyfile=/k&no_verify=1")
  }

  /// A remote target with nothing listening: commands fail fast with ssh's own message.
  @Test func unreachableRemoteHostDoesNotAnswer() {
    var spec = TargetSpec()
    spec.kind = .remote
    spec.ssh = SSHEndpoint(host: "127.0.0.1", port: 1)
    let t = Target(spec: spec)
    let r = t.run(["true"], timeoutS: 20)
    #expect(!r.ok)
    #expect(r.lastLine.contains("Connection refused") || r.lastLine.contains("port 1"), "\(r)")
    #expect(!t.answers(timeoutS: 20))
  }

  static let qemu =
    HostCommand.which("qemu-system-ppc64") ?? HostCommand.which("qemu-system-x86_64")

  /// Starts `qemu` with `args` and QMP on a socket in a fresh directory; returns the process,
  /// the socket and the directory (the caller removes it and stops the process).
  static func qemuWithQMP(_ qemu: String, _ args: [String]) throws -> (Process, String, String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "qmp-\(UUID().uuidString.prefix(8))"
    ).path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let sock = dir + "/qmp.sock"
    let p = Process()
    p.executableURL = URL(fileURLWithPath: qemu)
    p.arguments =
      args + ["-display", "none", "-monitor", "none", "-qmp", "unix:\(sock),server=on,wait=off"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    return (p, sock, dir)
  }

  /// QMP against a real QEMU: the lab's power and off switches.
  @Test(.enabled(if: qemu != nil, "no QEMU installed"))
  func qmpTalksToARealQEMU() throws {
    let (p, sock, dir) = try Self.qemuWithQMP(Self.qemu!, ["-M", "none"])
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // SIGKILL: the child inherits the test thread's signal mask, which may block SIGTERM.
    defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
    var client: QMPClient?
    for _ in 0..<100 where client == nil {
      client = try? QMPClient(socketPath: sock)
      if client == nil { Thread.sleep(forTimeInterval: 0.05) }
    }
    let qmp = try #require(client)
    let status = try #require(try qmp.execute("query-status") as? [String: Any])
    #expect(status["status"] as? String != nil)
    #expect(throws: TargetError.self) { try qmp.execute("no-such-command") }
    try qmp.execute("quit")
    p.waitUntilExit()
    #expect(!p.isRunning)
    // Nothing listens any more: a clear error naming the socket.
    do {
      _ = try QMPClient(socketPath: sock, timeoutS: 1)
      Issue.record("connected to a dead QEMU")
    } catch { #expect(error.description.contains(sock)) }
  }

  /// `info registers -a` through QMP on a real (paused) ppc64 QEMU: what the harness saves
  /// when a lab host hangs.
  @Test(.enabled(if: HostCommand.which("qemu-system-ppc64") != nil, "no qemu-system-ppc64"))
  func registerDumpOfAPausedPOWERMachine() throws {
    let (p, sock, dir) = try Self.qemuWithQMP(
      HostCommand.which("qemu-system-ppc64")!, ["-M", "pseries", "-smp", "2", "-S", "-nodefaults"])
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // SIGKILL: the child inherits the test thread's signal mask, which may block SIGTERM.
    defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
    for _ in 0..<100 where !FileManager.default.fileExists(atPath: sock) {
      Thread.sleep(forTimeInterval: 0.05)
    }
    let lab = LabMachine(spec: LabSpec(), access: ["QMP": sock], started: false)
    let dump = try lab.registerDump(vmlinux: nil)
    let lines = dump.split(separator: "\n")
    #expect(lines.first?.hasPrefix("CPU 0: NIP 0x") == true, "\(dump.prefix(300))")
    #expect(lines.contains { $0.hasPrefix("CPU 1: NIP 0x") })
    #expect(
      LabMachine.symbolize(0xc000_0000_0023_2dd0, [(0xc000_0000_0023_2c50, "second_overflow")])
        == "second_overflow+0x180 (0xc000000000232dd0)")
  }

  /// A console file QEMU appends to: only what is written after the stream opened, as records.
  @Test func consoleFileStreamFollowsNewLines() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "console-\(UUID()).log"
    ).path
    try "old line from before the run\n".write(toFile: path, atomically: false, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let s = try HostLogStream.file(path, origin: .host("lab"))
    defer { s.stop() }
    let h = try #require(FileHandle(forWritingAtPath: path))
    h.seekToEndOfFile()
    h.write(
      Data(
        "[   12.345678] sysrq: Trigger a crash\r\n[   12.345700] Kernel panic - not syncing: sysrq triggered crash\r\n"
          .utf8))
    try h.close()
    var got: [KernelLogRecord] = []
    let deadline = Date().addingTimeInterval(5)
    while got.count < 2 && Date() < deadline {
      if let r = s.next(timeoutMs: 100) { got.append(r) }
    }
    #expect(
      got.map(\.text) == [
        "sysrq: Trigger a crash", "Kernel panic - not syncing: sysrq triggered crash",
      ])
    #expect(got.first?.origin == .host("lab"))
    #expect(s.quietS < 5)
  }

  /// `cat /dev/kmsg` over ssh, here from a local command: records, their dictionary lines,
  /// and the ring buffer's history left out.
  @Test func kmsgCommandStreamParsesRecordsAndSkipsHistory() {
    let text =
      [
        "6,100,1000000,-;booted long ago",
        "4,101,50000000,-;WARNING: CPU: 3 PID: 77 at arch/powerpc/kvm/book3s_64_mmu_hv.c:1400",
        " SUBSYSTEM=kvm",
        "6,102,50000100,-;second record",
      ].joined(separator: "\n") + "\n"
    let s = HostLogStream.command(
      ["printf", "%s", text], format: .kmsg, origin: .host("p9"), skipBeforeMicros: 2_000_000)
    var got: [KernelLogRecord] = []
    while let r = s.next(timeoutMs: 2000) { got.append(r) }
    #expect(got.map(\.sequence) == [101, 102])
    #expect(got.first?.continuation == ["SUBSYSTEM=kvm"])
    #expect(s.isFinished)
  }

  @Test func traceCountsParseFromHistAndFromUniq() {
    let hist = """
      == kvm_vm_ioctl_resize_hpt_prepare
      { ret:          0 } hitcount:         12
      { ret:        100 } hitcount:         13
      == kvm_vm_ioctl_resize_hpt_commit
            11 0
             2 -28
      """
    let c = HostTrace.parse(hist)
    #expect(c["kvm_vm_ioctl_resize_hpt_prepare"] == ["0": 12, "100": 13])
    #expect(c["kvm_vm_ioctl_resize_hpt_commit"] == ["0": 11, "-28": 2])
    #expect(HostTrace.parse("== f\n")["f"] == [:])
  }

  /// On this machine's real kernel: the probes cannot be set (not POWER, or no kprobe
  /// events), and the reason says which. On a POWER host with kvm_hv this asserts the other way.
  @Test func resizeTraceOnThisHostSaysWhyOrWorks() throws {
    let t = Target(spec: TargetSpec())
    let trace = HostTrace()
    let hasKVMHV = FileManager.default.fileExists(atPath: "/sys/module/kvm_hv")
    do {
      let method = try trace.setUp(on: t)
      defer { trace.tearDown(on: t) }
      #expect(hasKVMHV, "probes set on a host without kvm_hv")
      #expect(["hist", "trace"].contains(method))
    } catch {
      #expect(!hasKVMHV, "\(error)")
      let why = error.description
      #expect(
        why.contains("kprobe_events") || why.contains("not in /proc/kallsyms")
          || why.contains("tracefs") || why.contains("Permission denied"), "\(why)")
    }
  }
}
