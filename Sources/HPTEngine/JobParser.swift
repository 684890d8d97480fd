import Foundation
import KVMHost
import Yams

/// Walks a job file's YAML node tree, checking every key against the allowed ones: the
/// primitives here, one function per section below (and `target:` in TargetJob.swift). A new
/// key is one line in its section's allowed list and one case in its function.
struct Parser {
  let file: String

  func fail(_ node: Node?, _ key: String, _ message: String) -> JobError {
    JobError(file: file, line: node?.mark?.line, key: key, message: message)
  }

  func mapping(_ node: Node, _ key: String, allowed: [String]) throws(JobError) -> [(String, Node)]
  {
    guard case .mapping(let m) = node else {
      throw fail(node, key, "expected a mapping with keys \(allowed.joined(separator: ", "))")
    }
    var out: [(String, Node)] = []
    for (k, v) in m {
      guard let name = k.string else { throw fail(k, key, "keys must be strings") }
      let full = key.isEmpty ? name : "\(key).\(name)"
      guard allowed.contains(name) else {
        throw fail(k, full, "unknown key; allowed: \(allowed.joined(separator: ", "))")
      }
      out.append((name, v))
    }
    return out
  }

  func int(_ node: Node, _ key: String, _ range: ClosedRange<Int>) throws(JobError) -> Int {
    guard let s = node.scalar?.string, let v = Int(s) else {
      throw fail(node, key, "expected a whole number in \(range.lowerBound)...\(range.upperBound)")
    }
    guard range.contains(v) else {
      throw fail(
        node, key, "\(v) is out of range; allowed: \(range.lowerBound)...\(range.upperBound)")
    }
    return v
  }

  func double(_ node: Node, _ key: String, min: Double, max: Double = 1e12) throws(JobError)
    -> Double
  {
    guard let s = node.scalar?.string, let v = Double(s), v >= min, v <= max else {
      throw fail(node, key, "expected a number from \(min) to \(Int(max))")
    }
    return v
  }

  func bool(_ node: Node, _ key: String) throws(JobError) -> Bool {
    guard let b = node.bool else { throw fail(node, key, "expected true or false") }
    return b
  }

  func string(_ node: Node, _ key: String) throws(JobError) -> String {
    guard let s = node.scalar?.string else { throw fail(node, key, "expected a string") }
    return s
  }

  func order(_ node: Node, _ key: String) throws(JobError) -> HPTOrder {
    let r = HPTOrder.validRange
    return HPTOrder(rawValue: UInt32(try int(node, key, Int(r.lowerBound)...Int(r.upperBound))))!
  }

  /// The whole job: each top-level key to its section's parser, then the checks across them.
  func job(_ root: Node) throws(JobError) -> Job {
    var job = Job(
      name: (file as NSString).lastPathComponent.replacingOccurrences(of: ".yaml", with: ""))
    for (k, v) in try mapping(root, "", allowed: Job.topKeys) {
      switch k {
      case "name": job.name = try name(v)
      case "backend": job.backend = try backend(v)
      case "seed": job.seed = try seed(v)
      case "fail_on_unexpected": job.failOnUnexpected = try bool(v, k)
      case "lifecycle": try lifecycle(v, into: &job)
      case "target": job.target = try target(v)
      case "libvirt": try libvirt(v, into: &job.libvirt)
      case "host": try host(v, into: &job)
      case "guests": try guests(v, into: &job)
      case "budget": try budget(v, into: &job)
      case "resize": try resize(v, into: &job)
      case "memory_load": try memoryLoad(v, into: &job)
      default: break
      }
    }
    if job.target.spec.kind != .local && ![.libvirt, .raw].contains(job.backend) {
      throw JobError(
        file: file, line: nil, key: "target.kind",
        message:
          "a \(job.target.spec.kind.rawValue) target is driven through the libvirt or raw backend; backend \(job.backend.rawValue) runs on this machine"
      )
    }
    try job.checkBackendLimits(file: file)
    return job
  }

  // MARK: - the top-level scalars

  /// It names the run directory and is printed on terminals.
  func name(_ v: Node) throws(JobError) -> String {
    let name = try string(v, "name")
    if name.isEmpty
      || name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
    {
      throw fail(
        v, "name",
        "must be non-empty text on one line, without control characters (newline, escape)"
      )
    }
    return name
  }

  func backend(_ v: Node) throws(JobError) -> BackendKind {
    try choice(v, "backend", what: "unknown backend ")
  }

  func seed(_ v: Node) throws(JobError) -> UInt64 {
    guard let s = v.scalar?.string,
      let n = UInt64(s) ?? (s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : nil)
    else {
      throw fail(v, "seed", "expected a whole number (decimal or 0x hex) >= 0")
    }
    return n
  }

  // MARK: - sections

  func lifecycle(_ v: Node, into job: inout Job) throws(JobError) {
    for (k, lv) in try mapping(v, "lifecycle", allowed: ["every_ms", "irqchip"]) {
      if k == "every_ms" {
        job.lifecycleEveryMs = try double(lv, "lifecycle.every_ms", min: 1)
      } else {
        job.lifecycleIRQChip = try bool(lv, "lifecycle.irqchip")
      }
    }
  }

  static let libvirtKeys = [
    "uri", "kernel", "initrd", "cpu_model", "resizing", "boot_timeout_s", "heartbeat_timeout_s",
    "load_threads", "load_mib_per_thread", "hotplug_every_s", "hotplug_mib", "order_sequence",
    "inject_guest_crash_after_s", "churn", "balloon_every_s", "balloon_mib",
  ]

  func libvirt(_ v: Node, into lv: inout LibvirtJob) throws(JobError) {
    for (k, n) in try mapping(v, "libvirt", allowed: Self.libvirtKeys) {
      let key = "libvirt.\(k)"
      switch k {
      case "uri": lv.uri = try string(n, key)
      case "kernel": lv.kernelImage = try string(n, key)
      case "initrd": lv.initrd = try string(n, key)
      case "cpu_model":
        lv.cpuModel = try oneOf(
          n, key, ["POWER8", "POWER9", "POWER10"], what: "unknown CPU model ")
      case "resizing": lv.resizing = try oneOf(n, key, ["required", "enabled", "disabled"])
      case "boot_timeout_s": lv.bootTimeoutS = try double(n, key, min: 1)
      case "heartbeat_timeout_s": lv.heartbeatTimeoutS = try double(n, key, min: 2)
      case "load_threads": lv.loadThreads = try int(n, key, 0...64)
      case "churn": lv.churn = try bool(n, key)
      case "load_mib_per_thread": lv.loadMiBPerThread = try int(n, key, 1...65536)
      case "hotplug_every_s": lv.hotplugEveryS = try double(n, key, min: 0.1)
      case "hotplug_mib": lv.hotplugMiB = try int(n, key, 256...65536)
      case "balloon_every_s": lv.balloonEveryS = try double(n, key, min: 0.5)
      case "balloon_mib": lv.balloonMiB = try int(n, key, 16...65536)
      case "inject_guest_crash_after_s": lv.injectGuestCrashAfterS = try double(n, key, min: 0)
      default: lv.orderSequence = try orderSequence(n, key)
      }
    }
  }

  /// Any order the guest can be asked for, invalid ones included (negative tests).
  func orderSequence(_ v: Node, _ key: String) throws(JobError) -> [UInt32] {
    var orders: [UInt32] = []
    for n in v.array() { orders.append(UInt32(try int(n, key, 0...64))) }
    guard !orders.isEmpty else { throw fail(v, key, "give at least one order") }
    return orders
  }

  /// A string that must be one of `allowed`; `what` starts the message ("unknown CPU model ").
  func oneOf(_ v: Node, _ key: String, _ allowed: [String], what: String = "") throws(JobError)
    -> String
  {
    let s = try string(v, key)
    guard allowed.contains(s) else {
      throw fail(v, key, "\(what)'\(s)'; allowed: \(allowed.joined(separator: ", "))")
    }
    return s
  }

  /// One of an enum's raw values, refused as `oneOf` refuses.
  func choice<E: RawRepresentable & CaseIterable>(_ v: Node, _ key: String, what: String)
    throws(JobError) -> E where E.RawValue == String
  {
    E(rawValue: try oneOf(v, key, E.allCases.map(\.rawValue), what: what))!
  }

  func host(_ v: Node, into job: inout Job) throws(JobError) {
    for (k, n) in try mapping(v, "host", allowed: ["kernel", "uptime_s"]) {
      let key = "host.\(k)"
      switch k {
      case "kernel":
        job.kernel = try string(n, key)
        job.kernelMark = (file, n.mark?.line)
      default: job.hostUptimeS = UInt64(try int(n, key, 0...100_000_000))
      }
    }
  }

  func guests(_ v: Node, into job: inout Job) throws(JobError) {
    let allowed = ["count", "memory_mib", "vcpus", "hpt_order", "bolted_secondary_hptes"]
    for (k, n) in try mapping(v, "guests", allowed: allowed) {
      let key = "guests.\(k)"
      switch k {
      case "count": job.guestCount = try int(n, key, 1...64)
      case "memory_mib": job.guestMemoryMiB = try int(n, key, 64...65536)
      case "vcpus": job.vcpus = try int(n, key, 1...64)
      case "bolted_secondary_hptes": job.boltedSecondaryHPTEs = try int(n, key, 0...64)
      default: job.hptOrder = try order(n, key)
      }
    }
  }

  func budget(_ v: Node, into job: inout Job) throws(JobError) {
    job.durationS = nil
    for (k, n) in try mapping(v, "budget", allowed: ["duration_s", "resizes"]) {
      if k == "duration_s" {
        job.durationS = try double(n, "budget.duration_s", min: 0.001, max: Job.maxDurationS)
      } else {
        job.resizeBudget = try int(n, "budget.resizes", 1...100_000_000)
      }
    }
    if job.durationS == nil && job.resizeBudget == nil {
      throw fail(v, "budget", "give duration_s, resizes, or both")
    }
  }

  func resize(_ v: Node, into job: inout Job) throws(JobError) {
    let allowed = ["orders", "policy", "prepare_timeout_ms", "pause_ms", "commit_before_run"]
    for (k, n) in try mapping(v, "resize", allowed: allowed) {
      let key = "resize.\(k)"
      switch k {
      case "orders": (job.orderMin, job.orderMax) = try orderRange(n, key)
      case "policy": job.policies = try policies(n, key)
      case "prepare_timeout_ms": job.prepareTimeoutMs = try int(n, key, 1...600_000)
      case "commit_before_run": job.commitBeforeRun = try bool(n, key)
      default: job.pauseMs = try int(n, key, 0...600_000)
      }
    }
  }

  func orderRange(_ v: Node, _ key: String) throws(JobError) -> (HPTOrder, HPTOrder) {
    let items = v.array()
    guard items.count == 2 else { throw fail(v, key, "expected [min, max], orders within 18...46") }
    let (lo, hi) = (try order(items[0], key), try order(items[1], key))
    guard lo <= hi else { throw fail(v, key, "min \(lo) is above max \(hi)") }
    return (lo, hi)
  }

  /// One policy or a list of them.
  func policies(_ v: Node, _ key: String) throws(JobError) -> [ResizePolicy] {
    var names: [(String, Node)] = []
    if case .sequence(let s) = v {
      for n in s { names.append((try string(n, key), n)) }
    } else {
      names = [(try string(v, key), v)]
    }
    guard !names.isEmpty else { throw fail(v, key, "give at least one policy") }
    var policies: [ResizePolicy] = []
    for (_, n) in names { policies.append(try choice(n, key, what: "unknown policy ")) }
    return policies
  }

  func memoryLoad(_ v: Node, into job: inout Job) throws(JobError) {
    let allowed = [
      "guest_writers", "pages_per_report", "host_invalidate", "host_view_pages", "host_mm",
    ]
    for (k, n) in try mapping(v, "memory_load", allowed: allowed) {
      let key = "memory_load.\(k)"
      switch k {
      case "guest_writers": job.guestWriters = try bool(n, key)
      case "pages_per_report": job.pagesPerReport = try int(n, key, 1...1_000_000)
      case "host_view_pages": job.hostViewPages = try int(n, key, 0...64)
      case "host_mm":
        for (hk, hv) in try mapping(n, key, allowed: ["ksm", "thp"]) {
          if hk == "ksm" {
            job.hostMM.ksm = try bool(hv, "\(key).ksm")
          } else {
            job.hostMM.thp = try bool(hv, "\(key).thp")
          }
        }
      default: try hostInvalidate(n, key, into: &job)
      }
    }
  }

  /// memory_load.host_invalidate: false, or {every_ms, pages, advice}.
  func hostInvalidate(_ v: Node, _ key: String, into job: inout Job) throws(JobError) {
    if v.bool == false {
      job.invalidateEveryMs = nil
      return
    }
    for (k, n) in try mapping(v, key, allowed: ["every_ms", "pages", "advice"]) {
      switch k {
      case "every_ms": job.invalidateEveryMs = try double(n, "\(key).every_ms", min: 0.01)
      case "advice":
        guard let s = n.string, let a = HostInvalidation(rawValue: s) else {
          throw fail(
            n, "\(key).advice",
            "unknown advice '\(n.string ?? "")'; allowed: \(HostInvalidation.allCases.map(\.rawValue).joined(separator: ", "))"
          )
        }
        job.invalidateAdvice = a
      default: job.invalidatePages = try int(n, "\(key).pages", 1...1_000_000)
      }
    }
  }
}
