import Foundation
import Testing

/// Infrastructure faults are never kernel bugs (issue 13): each is injected for real and must
/// end in exit 125, a message naming the component and what to do, and a whole run directory
/// (run.json with verdict error, junit.xml).
@Suite struct InfraFaultTests {
  let hostile = HostileRunTests()

  func expectInfraError(
    _ rc: Int32, _ out: String, _ err: String, dir: String, naming words: [String]
  ) throws {
    #expect(rc == 125, "exit \(rc)\n\(out)\n\(err)")
    let run = try hostile.runJSON("\(dir)/run.json")
    #expect(run["verdict"] as? String == "error")
    let why = run["error"] as? String ?? ""
    for w in words { #expect(why.contains(w), "run.json error: \(why)") }
    let junit = try String(contentsOfFile: "\(dir)/junit.xml", encoding: .utf8)
    #expect(junit.contains("<testsuite") && junit.contains("</testsuite>"))
  }

  static let canDropPrivileges =
    geteuid() == 0 && FileManager.default.fileExists(atPath: "/dev/kvm")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")

  /// /dev/kvm refused (EACCES): the raw backend run as a user outside its group. CAP_SYSLOG is
  /// kept so that /dev/kmsg opens and /dev/kvm is what refuses.
  @Test(.enabled(if: canDropPrivileges, "needs root, /dev/kvm and setpriv to drop privileges"))
  func devKVMRefusedIsAnInfrastructureError() throws {
    // The binary and the job copied where `nobody` can read them (under /tmp: a checkout under
    // /root is not), into a directory it may write.
    let dir = try hostile.scratch()
    chmod(dir, 0o777)
    let fm = FileManager.default
    try fm.copyItem(atPath: hostile.cli.binary.path, toPath: "\(dir)/hpthammer")
    try fm.copyItem(
      atPath: CLITests.repo.appendingPathComponent("Jobs/raw-sim-dry-run.yaml").path,
      toPath: "\(dir)/job.yaml")
    chmod("\(dir)/hpthammer", 0o755)
    chmod("\(dir)/job.yaml", 0o644)
    let (rc, out, err) = try hostile.exec(
      [
        "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        "--inh-caps", "+syslog", "--ambient-caps", "+syslog",
        "\(dir)/hpthammer", "run", "\(dir)/job.yaml", "--backend", "raw", "--out", "\(dir)/r",
        "--no-progress", "--no-db",
      ], in: dir)
    try expectInfraError(
      rc, out, err, dir: "\(dir)/r", naming: ["/dev/kvm", "EACCES", "group that owns /dev/kvm"])
  }

  /// ssh to a remote target refused (nothing listens on port 1), raw and libvirt backends.
  @Test(
    .enabled(
      if: FileManager.default.isExecutableFile(atPath: "/usr/bin/ssh"), "needs an ssh client"),
    arguments: ["raw", "libvirt"])
  func sshRefusedIsAnInfrastructureError(backend: String) throws {
    let dir = try hostile.scratch([
      "refused.yaml": """
      name: ssh-refused
      backend: \(backend)
      target:
        kind: remote
        name: nowhere-\(backend)
        ssh: {host: 127.0.0.1, port: 1, user: root}
      guests: {count: 1, memory_mib: 256, vcpus: 1}
      budget: {duration_s: 10}
      resize: {orders: [19, 21], policy: random-walk}
      """
    ])
    let (rc, out, err) = try hostile.run(
      ["run", "refused.yaml", "--out", "\(dir)/r", "--no-progress", "--no-db"], in: dir)
    try expectInfraError(
      rc, out, err, dir: "\(dir)/r",
      naming: ["nowhere-\(backend) does not answer ssh", "Connection refused", "is it up"])
  }
}
