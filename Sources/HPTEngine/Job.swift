import Foundation
import KVMHost
import Yams

/// A bad job file: which file, line and key, what is wrong, and what is allowed.
public struct JobError: Error, CustomStringConvertible, Sendable {
  public var file: String
  public var line: Int?
  public var key: String?
  public var message: String

  public init(file: String, line: Int?, key: String?, message: String) {
    self.file = file
    self.line = line
    self.key = key
    self.message = message
  }

  public var description: String {
    var s = file
    if let line { s += ":\(line)" }
    if let key { s += ": \(key)" }
    return s + ": " + message
  }
}

/// How the hammer picks each resize.
public enum ResizePolicy: String, CaseIterable, Sendable, Codable {
  case grow, shrink
  case sameOrder = "same-order"
  case randomWalk = "random-walk"
  case cancelDuringPrepare = "cancel-during-prepare"
  case commitWithoutPrepare = "commit-without-prepare"
  /// Reboot the guest: QEMU's reset reallocates the HPT at the boot order (ALLOCATE_HTAB).
  case reboot
  /// Straight to any order of the range in one PREPARE/COMMIT: a rehash into a table several
  /// orders larger or smaller (the guest's own resizes on hotplug jump so).
  case jump
}

public enum BackendKind: String, CaseIterable, Sendable, Codable {
  case sim
  /// HPT guests through libvirt (TCG here, KVM-HV on POWER), resized from inside.
  case libvirt
  /// The raw VMM (RawKVM) on this host's /dev/kvm: HPT guests running the ppc64 payload,
  /// resized through the VM fd. Needs a POWER KVM-HV host (KVM_CAP_SPAPR_RESIZE_HPT).
  case raw
  /// The raw VMM's code over SimSyscalls: the same ioctls, answered by the simulated kernel
  /// (host.kernel picks the model, as for sim).
  case rawSim = "raw-sim"

  /// Whether host.kernel names a simulated kernel model for this backend.
  public var usesKernelModel: Bool { self == .sim || self == .rawSim }
}

/// What only the libvirt backend uses.
public struct LibvirtJob: Sendable, Equatable {
  public init() {}
  public var uri = "qemu:///system"
  /// Guest kernel and initramfs; nil: built by Guests/build.sh (cached).
  public var kernelImage: String?
  public var initrd: String?
  public var cpuModel = "POWER9"
  /// <hpt resizing='...'>.
  public var resizing = "required"
  public var bootTimeoutS = 180.0
  public var heartbeatTimeoutS = 30.0
  public var loadThreads = 2
  public var loadMiBPerThread = 64
  /// The agent gives every 8th page back (MADV_DONTNEED) before rewriting it, so pages fault
  /// in again and get new HPTEs while the HPT is resized.
  public var churn = true
  /// Memory hotplug: a dimm of this size attached, then detached, every `hotplugEveryS`.
  public var hotplugEveryS: Double?
  public var hotplugMiB = 256
  /// The balloon (virtio-balloon): inflated by `balloonMiB`, then deflated, every
  /// `balloonEveryS`. The guest hands the pages to QEMU, which gives them back to the host
  /// (MADV_DONTNEED): the MMU notifier drops their HPTEs; deflated, the guest faults them in.
  public var balloonEveryS: Double?
  public var balloonMiB = 64
  /// Explicit orders to try, in turn, instead of the policy (negative tests: 17, 25...).
  public var orderSequence: [UInt32]?
  /// Make guest0 crash (echo c > /proc/sysrq-trigger) this long after the start: checks that a
  /// guest crash is seen, reported and extracted.
  public var injectGuestCrashAfterS: Double?
}

/// A job file (Jobs/*.yaml): what to run, on which host, for how long, with which load.
public struct Job: Sendable {
  public var name: String
  public var backend: BackendKind = .sim
  public var kernel: String = "fixed"
  /// Where host.kernel was given (file, line), for an error naming a kernel no host has.
  var kernelMark: (file: String, line: Int?)?
  public var hostUptimeS: UInt64 = 120
  public var guestCount = 2
  public var guestMemoryMiB = 256
  public var vcpus = 2
  /// Bolted HPTEs in secondary groups each guest's first vCPU enters before it starts (the
  /// raw payload, H_ENTER): what resizing must rehash with the secondary hash (bug B5).
  public var boltedSecondaryHPTEs = 0
  /// The guests' HPT order at boot; nil: QEMU's rule (RAM/128).
  public var hptOrder: HPTOrder?
  public var durationS: Double? = 60
  public var resizeBudget: Int?
  public var seed: UInt64 = 1
  /// resize.orders: every resize the hammer chooses stays within them.
  public var orderMin: HPTOrder = 18
  public var orderMax: HPTOrder = 24
  public var policies: [ResizePolicy] = [.randomWalk]
  public var prepareTimeoutMs = 10_000
  public var pauseMs = 0
  /// Before the guests run, PREPARE and COMMIT once: the kernel must WARN and answer EIO.
  public var commitBeforeRun = false
  public var guestWriters = true
  public var pagesPerReport = 256
  public var invalidateEveryMs: Double? = 10
  public var invalidatePages = 16
  /// How the host takes the pages away (raw backend; the simulator models both as migration).
  public var invalidateAdvice: HostInvalidation = .dontneed
  /// At each payload report, this many of the pages just written are read back through the
  /// VMM's own mapping and compared with what the guest wrote (raw backend): a stale
  /// translation shows there even when the guest's own reads look right. 0: off.
  public var hostViewPages = 2
  /// The target host's KSM and THP turned on for the run (HostMM).
  public var hostMM = HostMMSettings()
  public var failOnUnexpected = true
  /// VM lifecycle churn: every `lifecycleEveryMs` a short-lived VM is created beside the
  /// guests (RAM, HPT, optionally an in-kernel interrupt controller, one vCPU that runs the
  /// payload to its first reports) and destroyed again. nil: off.
  public var lifecycleEveryMs: Double?
  public var lifecycleIRQChip = false
  public var libvirt = LibvirtJob()
  /// Where KVM runs (target:); local unless the job says otherwise.
  public var target = TargetJob()

  public init(name: String) { self.name = name }

  /// QEMU's initial order: log2(pow2ceil(RAM)) - 7, clamped to 18...46.
  public var bootOrder: HPTOrder {
    if let hptOrder { return hptOrder }
    let bytes = UInt64(guestMemoryMiB) << 20
    var log2 = 0
    while (UInt64(1) << UInt64(log2)) < bytes { log2 += 1 }
    let r = HPTOrder.validRange
    return HPTOrder(rawValue: UInt32(min(Int(r.upperBound), max(Int(r.lowerBound), log2 - 7))))!
  }

  /// Longest budget a job may ask for (a year of host time): a longer one is a typo.
  public static let maxDurationS = 365.0 * 86400

  /// Every resize stays within resize.orders, and so must the order the guests boot at (set,
  /// or QEMU's default for their memory): the walk starts there.
  func checkOrders(file: String) throws(JobError) {
    guard !(orderMin...orderMax).contains(bootOrder) else { return }
    throw JobError(
      file: file, line: nil, key: hptOrder == nil ? "guests.memory_mib" : "guests.hpt_order",
      message: hptOrder == nil
        ? "\(guestMemoryMiB) MiB guests boot at order \(bootOrder) (QEMU's default), outside resize.orders \(orderMin)...\(orderMax): set guests.hpt_order within resize.orders, or widen them"
        : "boot order \(bootOrder) is outside resize.orders \(orderMin)...\(orderMax)")
  }

  /// The smallest order whose VRMA (one 64 KiB page per HPTE group) covers `memoryMiB`.
  public static func vrmaOrder(memoryMiB: Int) -> UInt32 {
    var order: UInt32 = 18
    while (1 << (Int(order) - 7)) * 64 / 1024 < memoryMiB { order += 1 }
    return order
  }

  /// What a backend cannot do with this job, checked again when --backend overrides the file.
  public func checkBackendLimits(file: String) throws(JobError) {
    try checkOrders(file: file)
    // What the backend's resize driver can do (ResizeDriver.policies).
    let can = backend.resizePolicies
    if let p = policies.first(where: { !can.contains($0) }) {
      let allowed = ResizePolicy.allCases.filter(can.contains).map(\.rawValue)
      throw JobError(
        file: file, line: nil, key: "resize.policy",
        message:
          "'\(p.rawValue)' is not available with backend \(backend.rawValue)\(backend == .libvirt ? " (the guest resizes through hpt_order, PREPARE and COMMIT together)" : ""); allowed: \(allowed.joined(separator: ", "))"
      )
    }
    if commitBeforeRun && backend == .libvirt {
      throw JobError(
        file: file, line: nil, key: "resize.commit_before_run",
        message: "COMMIT before run needs the VM fd (backends sim, raw, raw-sim), not libvirt")
    }
    if hostMM.any && backend.usesKernelModel {
      throw JobError(
        file: file, line: nil, key: "memory_load.host_mm",
        message:
          "KSM and THP act on a real host's memory (backends raw and libvirt); the simulator has no such host"
      )
    }
    if lifecycleEveryMs != nil && backend == .libvirt {
      throw JobError(
        file: file, line: nil, key: "lifecycle",
        message:
          "VM lifecycle churn is done by the raw VMM (backends sim, raw, raw-sim), not libvirt")
    }
    if libvirt.balloonEveryS != nil && backend != .libvirt {
      throw JobError(
        file: file, line: nil, key: "libvirt.balloon_every_s",
        message:
          "the balloon is a libvirt guest's device (backend libvirt); the raw VMM takes pages with memory_load.host_invalidate"
      )
    }
    if libvirt.balloonEveryS != nil && libvirt.balloonMiB * 2 > guestMemoryMiB {
      throw JobError(
        file: file, line: nil, key: "libvirt.balloon_mib",
        message:
          "\(libvirt.balloonMiB) MiB is more than half of guests.memory_mib (\(guestMemoryMiB)): the guest's agent and load need the rest"
      )
    }
    if boltedSecondaryHPTEs > 0 && backend != .raw && backend != .rawSim {
      throw JobError(
        file: file, line: nil, key: "guests.bolted_secondary_hptes",
        message:
          "only the raw payload enters HPTEs itself (backend raw or raw-sim); with backend \(backend.rawValue) the guest kernel decides where its bolted HPTEs go"
      )
    }
    guard backend == .raw || backend == .rawSim else { return }
    // The raw VMM's payload runs in real mode, through the VRMA, which KVM maps with one
    // bolted HPTE per HPTE group (kvmppc_map_vrma: "Can't use more than 1 HPTE per HPTEG"):
    // at order N it covers 2^(N-7) pages of 64 KiB. Guest RAM past that is unreachable.
    let coveredMiB = bootOrder.groupCount * 64 / 1024
    if guestMemoryMiB > coveredMiB {
      throw JobError(
        file: file, line: nil, key: "guests.memory_mib",
        message:
          "\(guestMemoryMiB) MiB is more than the VRMA covers at boot order \(bootOrder) (\(coveredMiB) MiB: one 64 KiB page per HPTE group); with backend \(backend.rawValue) raise guests.hpt_order to at least \(Job.vrmaOrder(memoryMiB: guestMemoryMiB)) or lower memory_mib"
      )
    }
  }

  // MARK: - parsing

  static let topKeys = [
    "libvirt", "target",
    "name", "backend", "host", "guests", "budget", "seed", "resize", "memory_load",
    "fail_on_unexpected", "lifecycle",
  ]

  /// host.kernel must name one of `models` (the simulator's kernels, which the command line
  /// registers): the error names the file and line it was given at.
  public func checkKernel(models: [String], known: (String) -> Bool) throws(JobError) {
    guard !known(kernel) else { return }
    throw JobError(
      file: kernelMark?.file ?? "", line: kernelMark?.line, key: "host.kernel",
      message: "unknown kernel model '\(kernel)'; allowed: \(models.joined(separator: ", "))")
  }

  /// Parses a job file's text. `file` names it in errors.
  public static func parse(_ text: String, file: String) throws(JobError) -> Job {
    let root: Node
    do {
      guard let n = try Yams.compose(yaml: text) else {
        throw JobError(
          file: file, line: nil, key: nil,
          message: "the file is empty; see Jobs/dry-run.yaml for an example")
      }
      root = n
    } catch let e as JobError {
      throw e
    } catch let e as YamlError {
      throw JobError(
        file: file, line: yamlLine(e, text: text), key: nil,
        message: "malformed YAML: \(yamlMessage(e))")
    } catch {
      throw JobError(file: file, line: nil, key: nil, message: "malformed YAML: \(error)")
    }
    return try Parser(file: file).job(root)
  }

  public static func load(path: String) throws(JobError) -> Job {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw JobError(
        file: path, line: nil, key: nil, message: "cannot read the job file (does it exist?)")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw JobError(file: path, line: nil, key: nil, message: "the job file is not UTF-8 text")
    }
    return try parse(text, file: path)
  }

  /// The line a YAML error is at (for a key given twice: the key's second use).
  public static func yamlLine(_ e: YamlError, text: String) -> Int? {
    switch e {
    case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
      return mark.line
    case .duplicatedKeysInMapping(let keys, let context):
      // Yams marks the mapping; the line that matters is the key's second use in it.
      let indent = String(repeating: " ", count: max(0, context.mark.column - 1))
      let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
      for key in keys {
        let uses = lines.indices.filter { i in
          i + 1 >= context.mark.line && lines[i].hasPrefix(indent + key)
            && lines[i].dropFirst(indent.count + key.count).drop { $0 == " " }.first == ":"
        }
        if uses.count > 1 { return uses[1] + 1 }
      }
      return context.mark.line
    default: return nil
    }
  }

  /// A YAML error in words; `oneDocument` says what a file of this kind holds.
  public static func yamlMessage(
    _ e: YamlError, oneDocument: String = "a job file holds one job"
  ) -> String {
    switch e {
    case .scanner(_, let problem, _, _), .parser(_, let problem, _, _):
      return problem
    case .composer(_, let problem, _, _):
      return problem.contains("single document")
        ? "more than one YAML document (a '---' line); \(oneDocument)" : problem
    case .duplicatedKeysInMapping(let keys, _):
      return "key \(keys.map { "'\($0)'" }.joined(separator: ", ")) given twice; keep one"
    default: return "\(e)"
    }
  }
}
