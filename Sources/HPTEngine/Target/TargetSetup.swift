import Foundation

/// Makes a job's target ready to use: a remote host must answer ssh; the lab is built (cached),
/// started unless it already runs the same kernel, and waited for until ssh and libvirtd answer.
public enum TargetSetup {
  /// Figures of the last setup (lab boot to ssh-ready and to libvirt-ready).
  nonisolated(unsafe) static var lastFigures: [String: Int] = [:]

  public static func open(_ job: TargetJob, progress: ProgressPrinter) throws(TargetError) -> Target
  {
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
        if t.hasOopsed() && t.canPowerCycle && spec.recover {
          progress.note("\(t.name): its kernel has oopsed since boot (tainted D); power-cycling it")
          try t.powerCycleAndWait(timeoutS: spec.bootTimeoutS)
        }
      }
      return t
    case .lab:
      progress.note("lab: building or reusing the lab (Guests/lab/run.sh boot)")
      let start = Date()
      let lab = try LabMachine.boot(spec.lab, timeoutS: spec.bootTimeoutS + 1800)
      var s = spec
      s.name = s.name ?? "lab-\(spec.lab.machine)"
      let t = Target(spec: s, lab: lab)
      if !lab.started && !t.answers(timeoutS: 20) {
        // Left crashed or hung by an earlier run: power-cycle it first.
        progress.note("lab: the running lab does not answer ssh; power-cycling it")
        try t.powerCycleAndWait(timeoutS: spec.bootTimeoutS)
      } else if !lab.started && t.hasOopsed() {
        progress.note("lab: the running lab's kernel has oopsed (tainted D); power-cycling it")
        try t.powerCycleAndWait(timeoutS: spec.bootTimeoutS)
      }
      if lab.started {
        let times = lab.bootTimes
        lastFigures = [
          "lab_boot_to_ssh_ms": Int((times["ssh_ready_s"] ?? 0) * 1000),
          "lab_boot_to_libvirt_ms": Int((times["libvirt_kvm_ready_s"] ?? 0) * 1000),
        ]
      }
      progress.note(
        (lab.started
          ? "lab: started \(spec.lab.machine)" : "lab: reusing the running \(spec.lab.machine)")
          + " in \(Int(-start.timeIntervalSinceNow)) s (console \(lab.consoleLog), QMP \(lab.qmpSocket), libvirt \(lab.libvirtURI))"
      )
      return t
    }
  }
}
