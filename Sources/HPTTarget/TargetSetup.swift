import Foundation
import HPTEngine

/// Makes a job's target ready to use: a remote host must answer ssh; the lab is built (cached),
/// started unless it already runs the same kernel, and waited for until ssh and libvirtd answer.
public enum TargetSetup {
  public static func open(_ job: TargetJob, progress: ProgressPrinter) throws(TargetError) -> Target
  {
    let spec = job.spec
    switch spec.kind {
    case .local:
      return Target(spec: spec)
    case .remote:
      let t = Target(spec: spec)
      try TargetLock.acquire(t.name)
      if spec.ssh != nil {
        let r = t.run(["true"], timeoutS: 30)
        guard r.ok else {
          throw TargetError(
            "\(t.name) does not answer ssh: \(r.lastLine.isEmpty ? "timeout" : r.lastLine) (is it up, does sshd run there, and does it take the key of target.ssh for its user?)"
          )
        }
        try powerCycleIfDamaged(t, answers: true, progress: progress)
      }
      return t
    case .lab:
      try TargetLock.acquire(spec.name ?? "lab-\(spec.lab.machine)")
      progress.note("lab: building or reusing the lab (Guests/lab/run.sh boot)")
      let start = Date()
      let lab = try LabMachine.boot(spec.lab, timeoutS: spec.bootTimeoutS + 1800)
      var s = spec
      s.name = s.name ?? "lab-\(spec.lab.machine)"
      let t = Target(spec: s, lab: lab)
      if !lab.started {
        try powerCycleIfDamaged(t, answers: t.answers(timeoutS: 20), progress: progress)
      }
      progress.note(
        (lab.started
          ? "lab: started \(spec.lab.machine)" : "lab: reusing the running \(spec.lab.machine)")
          + " in \(Int(-start.timeIntervalSinceNow)) s (console \(lab.consoleLog), QMP \(lab.qmpSocket), libvirt \(lab.libvirtURI))"
      )
      return t
    }
  }

  /// A host an earlier run left crashed or hung (`answers` false) or whose kernel has oopsed
  /// since boot (tainted D) is power-cycled before use: what it left behind would be this
  /// job's finding.
  static func powerCycleIfDamaged(_ t: Target, answers: Bool, progress: ProgressPrinter)
    throws(TargetError)
  {
    let why =
      !answers
      ? "does not answer ssh" : t.hasOopsed() ? "has a kernel that oopsed (tainted D)" : nil
    // The lab is the harness's own to reset, whatever target.recover says.
    guard let why, t.canPowerCycle, t.spec.recover || t.lab != nil else { return }
    progress.note("\(t.name) \(why); power-cycling it")
    try t.powerCycleAndWait(timeoutS: t.spec.bootTimeoutS)
  }
}
