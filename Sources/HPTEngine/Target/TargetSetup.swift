import Foundation

/// Makes a job's target ready to use: a remote host must answer ssh; the lab is built (cached),
/// started unless it already runs the same kernel, and waited for until ssh and libvirtd answer.
public enum TargetSetup {
  /// Figures of the last setup (lab boot to ssh-ready and to libvirt-ready).
  nonisolated(unsafe) static var lastFigures: [String: Int] = [:]

  static func open(_ job: TargetJob, progress: ProgressPrinter) throws(TargetError) -> Target {
    lastFigures = [:]
    let spec = job.spec
    switch spec.kind {
    case .local:
      return Target(spec: spec)
    case .remote:
      let t = Target(spec: spec)
      if spec.ssh != nil {
        let r = t.run(["true"], timeoutS: 30)
        guard r.ok else {
          throw TargetError(
            "\(t.name) does not answer ssh: \(r.lastLine.isEmpty ? "timeout" : r.lastLine)")
        }
      }
      return t
    case .lab:
      progress.note("lab: building or reusing the lab image (Guests/lab/build.sh)")
      let artifacts = try LabMachine.build(spec: spec.lab)
      let lab = LabMachine(
        spec: spec.lab, artifacts: artifacts, stateDir: LabMachine.cacheDir + "/run")
      let start = Date()
      let started = try lab.startIfNeeded()
      progress.note(
        started
          ? "lab: started \(spec.lab.machine) (console \(lab.consoleLog), QMP \(lab.qmpSocket))"
          : "lab: reusing the running \(spec.lab.machine)")
      var s = spec
      s.name = s.name ?? "lab-\(spec.lab.machine)"
      let t = Target(spec: s, lab: lab)
      try t.waitReady(timeoutS: spec.bootTimeoutS, libvirt: false)
      let sshMs = Int(-start.timeIntervalSinceNow * 1000)
      try t.waitReady(timeoutS: spec.bootTimeoutS, libvirt: true)
      let libvirtMs = Int(-start.timeIntervalSinceNow * 1000)
      if started {
        lastFigures = ["lab_boot_to_ssh_ms": sshMs, "lab_boot_to_libvirt_ms": libvirtMs]
      }
      progress.note("lab: ssh after \(sshMs / 1000) s, libvirtd after \(libvirtMs / 1000) s")
      return t
    }
  }
}
