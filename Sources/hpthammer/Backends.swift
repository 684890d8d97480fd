import Foundation
import HPTEngine
import HPTLibvirt
import HPTSim
import HPTTarget
import KVMHost
import KVMSys
import RawKVM
import SimKVMSys

/// The backends as the command line opens them: each gives the engine a host and the kernel
/// that host reports. The engine knows none of them.
enum Backends {
  /// A job file, its host.kernel checked against the simulator's kernel models.
  static func loadJob(path: String) throws(JobError) -> Job {
    let job = try Job.load(path: path)
    try job.checkKernel(models: KernelModel.allNames) { KernelModel.named($0) != nil }
    try checkSimulatorMemory(job, file: path)
    return job
  }

  /// Bytes the simulated kernel holds for one HPT of `order`: per 16-byte HPTE, its two
  /// doublewords, its revmap entry and the VPN the simulator keeps beside it.
  static func simulatedHPTBytes(order: UInt32) -> UInt64 {
    (UInt64(1) << UInt64(order - 4)) * UInt64(3 * 8 + MemoryLayout<RevmapEntry>.stride)
  }

  /// The simulator's HPTs, known before it starts: each guest's largest, twice while a resize
  /// holds the old and the new. A job that cannot fit in half this machine's available memory
  /// is refused rather than left to the OOM killer.
  static func checkSimulatorMemory(_ job: Job, file: String) throws(JobError) {
    guard job.backend.usesKernelModel else { return }
    let order = max(job.orderMax, job.bootOrder)
    let need = UInt64(job.guestCount) * 2 * simulatedHPTBytes(order: order.rawValue)
    guard let avail = availableMemoryBytes(), need > avail / 2 else { return }
    throw JobError(
      file: file, line: nil, key: "resize.orders, guests.count",
      message:
        "the simulator would need \(need >> 20) MiB for \(job.guestCount) guest(s) at order \(order), more than half of the \(avail >> 20) MiB available here: lower resize.orders or guests.count"
    )
  }

  /// MemAvailable from /proc/meminfo; nil where there is none.
  static func availableMemoryBytes() -> UInt64? {
    guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
      let kb = UInt64(line.split(separator: " ").dropFirst().first ?? "")
    else { return nil }
    return kb * 1024
  }

  /// The simulator's kernel, as the simulated host reports it.
  static func kernel(of model: KernelModel) -> HostKernel {
    HostKernel(name: model.name, release: model.release)
  }

  /// One run of `job` on its backend; a backend that cannot be opened is the run's error.
  static func run(
    _ job: Job, model: KernelModel, dir: URL, progress: Bool, reproduce: String,
    current: CurrentRunner, onBegin: (@Sendable (URL) -> Void)?
  ) -> RunReport {
    switch job.backend {
    case .sim:
      let host = SimHost(model: model, seed: job.seed, bootUptimeS: job.hostUptimeS)
      let runner = Runner(
        job: job, host: host, kernel: kernel(of: model), outDir: dir, progress: progress,
        reproduce: reproduce)
      return run(runner, current: current, onBegin: onBegin)
    case .raw, .rawSim:
      let opened: RawHost
      do {
        opened = try rawHost(job, model: model)
      } catch {
        // Infrastructure, never a kernel bug: the directory says why, the exit is 125.
        let why = "cannot use the \(job.backend.rawValue) backend: \(error)"
        FileHandle.standardError.write(Data("hpthammer: \(why)\n".utf8))
        return SetupFailedRun.report(
          job: job, kernel: job.backend.usesKernelModel ? kernel(of: model) : nil, outDir: dir,
          reproduce: reproduce, error: why + SetupFailedRun.hint(for: "\(error)"))
      }
      let machine = opened.target.map(TargetMachine.init)
      let runner = Runner(
        job: job, host: opened.host, kernel: opened.kernel, outDir: dir, progress: progress,
        reproduce: reproduce, machine: machine,
        memoryHost: job.backend == .raw
          ? machine ?? TargetMachine(Target(spec: TargetSpec())) : nil)
      return run(runner, current: current, onBegin: onBegin)
    case .libvirt:
      let runner = Runner(
        job: job, fleet: LibvirtFleet(), outDir: dir, progress: progress, reproduce: reproduce)
      return run(runner, current: current, onBegin: onBegin)
    }
  }

  static func run(_ runner: Runner, current: CurrentRunner, onBegin: (@Sendable (URL) -> Void)?)
    -> RunReport
  {
    current.set { runner.interrupt(by: $0) }
    runner.onBegin = onBegin
    return runner.run()
  }

  /// The raw VMM's host, the kernel it reports, and the target it is on when that is not
  /// this machine.
  struct RawHost {
    var host: RawKVMSystem
    var kernel: HostKernel
    var target: Target?
  }

  /// The raw VMM on this host's /dev/kvm (real threads, /dev/kmsg), or over the simulated
  /// kernel (its scheduler and log, so a seed reproduces the run).
  static func rawHost(_ job: Job, model: KernelModel) throws -> RawHost {
    if job.backend == .rawSim {
      let sys = SimSyscalls(
        host: SimHost(model: model, seed: job.seed, bootUptimeS: job.hostUptimeS))
      let host = try RawKVMSystem(
        syscalls: sys, executor: sys.executor, kernelLog: sys.kernelLog,
        hostName: sys.host.hostName, statistics: { sys.statistics })
      return RawHost(host: host, kernel: kernel(of: model))
    }
    if job.target.spec.kind != .local { return try remoteRawHost(job) }
    let name = ProcessInfo.processInfo.hostName
    let log = try KmsgLogSource(path: "/dev/kmsg", hostName: name)
    let host = try RawKVMSystem(
      syscalls: LinuxSyscalls(), executor: ThreadExecutor(), kernelLog: log, hostName: name,
      kicker: SignalKicker(), statistics: { ["kmsg_records_lost": Int(log.lostRecords)] })
    return RawHost(
      host: host,
      kernel: .real(release: HostKernel.thisMachineRelease(), hostName: host.hostName))
  }

  /// The host under test is another machine (or the lab): the VMM and the hammer stay here,
  /// the syscalls go to hpthammer-hostd on the host over ssh, the host log is its console.
  static func remoteRawHost(_ job: Job) throws -> RawHost {
    let progress = ProgressPrinter(
      console: .standardError, logURL: URL(fileURLWithPath: "/dev/null"))
    let target = try TargetSetup.open(job.target, progress: progress)
    let hostd = try Hostd.start(on: target)
    for line in hostd.cleaned { progress.note(line, always: true) }
    progress.note("raw backend on \(target.name) through \(hostd.syscalls.hello)")
    let log = try target.openHostLog()
    let executor = ThreadExecutor()
    executor.onStalled = { [hostd] in hostd.syscalls.abandon() }
    let host = try RawKVMSystem(
      syscalls: hostd.syscalls, executor: executor, kernelLog: log,
      hostName: target.name, kicker: RemoteKicker(hostd.syscalls),
      statistics: { [hostd] in hostd.syscalls.closedByHost ? ["hostd_gone": 1] : [:] })
    return RawHost(
      host: host, kernel: .real(release: target.kernelRelease(), hostName: host.hostName),
      target: target)
  }
}
