import Foundation
import HPTEngine
import HPTResults
import HPTSim
import Yams

/// A bad plan file: which file, line and key, what is wrong, and what is allowed.
struct PlanError: Error, CustomStringConvertible {
  var file: String
  var line: Int?
  var key: String?
  var message: String
  var description: String {
    var s = file
    if let line { s += ":\(line)" }
    if let key, !key.isEmpty { s += ": \(key)" }
    return s + ": " + message
  }
}

/// A nightly plan (Jobs/nightly/*.yaml): the matrix of kernels x jobs x seeds one night runs
/// on one target host, where its runs go, and the crashes that are known and do not fail it.
struct NightlyPlan {
  struct Kernel {
    /// The name the night's table and directories use.
    var name: String
    /// sim and raw-sim jobs: the simulated kernel model (`hpthammer sim kernels`).
    var model: String?
    /// The lab: the kernel under test and its modules (`run --host-kernel/--host-modules`).
    var hostKernel: String?
    var hostModules: String?
    /// A command run before this kernel's jobs (install and boot it on the host); a failure
    /// makes each of its runs an error.
    var boot: [String]?
    var line: Int?
  }

  /// A crash that does not fail the night: its title holds `title`, and its guilty frame is
  /// `frame` when one is given.
  struct Known {
    var title: String
    var frame: String?
    var why: String?

    func matches(title t: String, frame f: String?) -> Bool {
      t.contains(title) && (frame == nil || frame == f)
    }
  }

  enum Target {
    /// The jobs' own target: sections.
    case jobs
    /// `run --target local|lab`.
    case flag(String)
    /// A remote host: this mapping replaces each job's target: section.
    case section(Node)
  }

  var file: String
  var name: String
  var kernels: [Kernel] = []
  var jobs: [(path: String, job: Job)] = []
  var seeds: [UInt64] = [1]
  var duration: String?
  var target: Target = .jobs
  var out = "runs/nightly"
  var report: String?
  var reportSince = "30d"
  var known: [Known] = []

  /// Every run of the night, in the order they run: kernel by kernel (a kernel is booted
  /// once), each job, each seed.
  var matrix: [(kernel: Kernel, job: String, seed: UInt64)] {
    kernels.flatMap { k in jobs.flatMap { j in seeds.map { (k, j.path, $0) } } }
  }

  static let keys = [
    "name", "kernels", "jobs", "seeds", "duration", "target", "out", "report", "report_since",
    "known",
  ]

  static func load(path: String) throws(PlanError) -> NightlyPlan {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw PlanError(
        file: path, line: nil, key: nil, message: "cannot read the plan file (does it exist?)")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw PlanError(file: path, line: nil, key: nil, message: "the plan file is not UTF-8 text")
    }
    let root: Node
    do {
      guard let n = try Yams.compose(yaml: text) else {
        throw PlanError(
          file: path, line: nil, key: nil,
          message: "the plan is empty; see Jobs/nightly/sim.yaml for an example")
      }
      root = n
    } catch let e as PlanError {
      throw e
    } catch let e as YamlError {
      throw PlanError(
        file: path, line: Job.yamlLine(e, text: text), key: nil,
        message: "malformed YAML: \(Job.yamlMessage(e, oneDocument: "a plan file holds one plan"))")
    } catch {
      throw PlanError(file: path, line: nil, key: nil, message: "malformed YAML: \(error)")
    }
    var p = PlanParser(file: path)
    return try p.plan(root)
  }
}

/// Walks the plan's YAML, every key checked, every error naming the file, line and key.
struct PlanParser {
  let file: String

  func fail(_ node: Node?, _ key: String, _ message: String) -> PlanError {
    PlanError(file: file, line: node?.mark?.line, key: key, message: message)
  }

  func mapping(_ node: Node, _ key: String, allowed: [String]) throws(PlanError) -> [(
    String, Node
  )] {
    guard case .mapping(let m) = node else {
      throw fail(node, key, "expected a mapping (key: value lines)")
    }
    var out: [(String, Node)] = []
    for (k, v) in m {
      guard let name = k.scalar?.string else { throw fail(k, key, "a key must be a plain word") }
      let full = key.isEmpty ? name : "\(key).\(name)"
      guard allowed.contains(name) else {
        throw fail(k, full, "unknown key; allowed: \(allowed.joined(separator: ", "))")
      }
      out.append((name, v))
    }
    return out
  }

  func string(_ node: Node, _ key: String) throws(PlanError) -> String {
    guard let s = node.scalar?.string, !s.isEmpty else {
      throw fail(node, key, "expected a non-empty text value")
    }
    return s
  }

  func strings(_ node: Node, _ key: String) throws(PlanError) -> [String] {
    guard case .sequence(let seq) = node, !seq.isEmpty else {
      throw fail(node, key, "expected a non-empty list")
    }
    var out: [String] = []
    for (i, n) in seq.enumerated() { out.append(try string(n, "\(key)[\(i)]")) }
    return out
  }

  func seed(_ node: Node, _ key: String) throws(PlanError) -> UInt64 {
    let s = node.scalar?.string ?? ""
    guard let v = UInt64(s) ?? (s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : nil)
    else {
      throw fail(node, key, "'\(s)' is not a seed (a whole number, decimal or 0x hex)")
    }
    return v
  }

  func fileMustExist(_ node: Node, _ key: String, _ path: String) throws(PlanError) {
    guard FileManager.default.fileExists(atPath: path) else {
      throw fail(node, key, "\(path): no such file or directory")
    }
  }

  mutating func plan(_ root: Node) throws(PlanError) -> NightlyPlan {
    var plan = NightlyPlan(file: file, name: "")
    var seen: Set<String> = []
    var kernelsNode: Node?
    for (k, v) in try mapping(root, "", allowed: NightlyPlan.keys) {
      seen.insert(k)
      switch k {
      case "name":
        plan.name = try string(v, k)
        guard plan.name.range(of: "^[A-Za-z0-9._-]+$", options: .regularExpression) != nil else {
          throw fail(v, k, "'\(plan.name)': use letters, digits, '.', '_' and '-' only")
        }
      case "kernels":
        kernelsNode = v
        plan.kernels = try kernels(v)
      case "jobs":
        for (i, path) in try strings(v, k).enumerated() {
          let n = v.sequence?[i] ?? v
          do {
            plan.jobs.append((path, try Backends.loadJob(path: path)))
          } catch {
            throw fail(n, "jobs[\(i)]", error.description)
          }
        }
      case "seeds":
        switch v {
        case .sequence(let seq):
          guard !seq.isEmpty else { throw fail(v, k, "expected at least one seed") }
          plan.seeds = []
          for (i, n) in seq.enumerated() { plan.seeds.append(try seed(n, "seeds[\(i)]")) }
        case .mapping:
          var first: UInt64 = 1
          var count = 1
          for (sk, sv) in try mapping(v, k, allowed: ["first", "count"]) {
            if sk == "first" { first = try seed(sv, "seeds.first") }
            if sk == "count" {
              guard let c = sv.int, (1...10_000).contains(c) else {
                throw fail(sv, "seeds.count", "expected a whole number from 1 to 10000")
              }
              count = c
            }
          }
          guard first <= UInt64.max - UInt64(count - 1) else {
            throw fail(v, k, "the seeds from \(first) would pass 2^64-1")
          }
          plan.seeds = (0..<UInt64(count)).map { first + $0 }
        default:
          throw fail(v, k, "expected a list of seeds ([1, 2, 3]) or {first: 1, count: 3}")
        }
      case "duration":
        let d = try string(v, k)
        guard let s = parseDuration(d), s <= Job.maxDurationS else {
          throw fail(v, k, "'\(d)' is not a duration; examples: 500ms, 30s, 2m, 1h")
        }
        plan.duration = d
      case "target":
        if let s = v.scalar?.string {
          guard ["local", "lab"].contains(s) else {
            throw fail(
              v, k, "'\(s)'; allowed: local, lab, or a target: section for a remote host")
          }
          plan.target = .flag(s)
        } else {
          guard case .mapping = v, let kind = v["kind"]?.scalar?.string else {
            throw fail(
              v, k,
              "expected local, lab, or a job's target: section (kind: remote, ssh:, console:, power:)"
            )
          }
          guard kind == "remote" else {
            throw fail(v["kind"], "target.kind", "'\(kind)'; a section here is for kind: remote")
          }
          plan.target = .section(v)
        }
      case "out": plan.out = try string(v, k)
      case "report": plan.report = try string(v, k)
      case "report_since":
        let s = try string(v, k)
        guard Format.since(s) != nil else {
          throw fail(v, k, "'\(s)' is neither an age (30d, 12h, 2w) nor a date (2026-11-01)")
        }
        plan.reportSince = s
      case "known":
        guard case .sequence(let seq) = v else {
          throw fail(v, k, "expected a list of {title:, frame:, why:}")
        }
        for (i, n) in seq.enumerated() {
          let key = "known[\(i)]"
          var entry = NightlyPlan.Known(title: "")
          for (ek, ev) in try mapping(n, key, allowed: ["title", "frame", "why"]) {
            switch ek {
            case "title": entry.title = try string(ev, "\(key).title")
            case "frame": entry.frame = try string(ev, "\(key).frame")
            default: entry.why = try string(ev, "\(key).why")
            }
          }
          guard !entry.title.isEmpty else { throw fail(n, key, "give the crash's title") }
          plan.known.append(entry)
        }
      default: break
      }
    }
    for required in ["name", "kernels", "jobs"] where !seen.contains(required) {
      throw fail(root, required, "missing; a plan needs name:, kernels: and jobs:")
    }
    // Each kernel must make sense for each job: a model for the simulator, both lab files.
    for (i, kernel) in plan.kernels.enumerated() {
      let node = kernelsNode?.sequence?[i] ?? kernelsNode
      for (path, job) in plan.jobs {
        if job.backend.usesKernelModel {
          let model = kernel.model ?? kernel.name
          guard KernelModel.named(model) != nil else {
            throw fail(
              node, "kernels[\(i)]",
              "\(path) runs on the simulator: '\(model)' is not a kernel model; give model: one of \(KernelModel.allNames.joined(separator: ", "))"
            )
          }
        }
        if kernel.hostKernel != nil {
          let lab: Bool
          if case .flag(let t) = plan.target {
            lab = t == "lab"
          } else {
            lab = job.target.spec.kind == .lab
          }
          guard lab else {
            throw fail(
              node, "kernels[\(i)].host_kernel",
              "boots the emulated lab, but \(path) does not run there: add target: lab")
          }
        }
      }
    }
    if case .flag("lab") = plan.target {
      for (path, job) in plan.jobs where ![.libvirt, .raw].contains(job.backend) {
        throw fail(
          nil, "target",
          "the lab runs the libvirt or raw backend; \(path) is \(job.backend.rawValue)")
      }
    }
    return plan
  }

  func kernels(_ node: Node) throws(PlanError) -> [NightlyPlan.Kernel] {
    guard case .sequence(let seq) = node, !seq.isEmpty else {
      throw fail(node, "kernels", "expected a non-empty list of kernels")
    }
    var out: [NightlyPlan.Kernel] = []
    for (i, n) in seq.enumerated() {
      let key = "kernels[\(i)]"
      if let name = n.scalar?.string {
        out.append(NightlyPlan.Kernel(name: name, line: n.mark?.line))
        continue
      }
      var k = NightlyPlan.Kernel(name: "", line: n.mark?.line)
      for (kk, kv) in try mapping(
        n, key, allowed: ["name", "model", "host_kernel", "host_modules", "boot"])
      {
        let sub = "\(key).\(kk)"
        switch kk {
        case "name": k.name = try string(kv, sub)
        case "model": k.model = try string(kv, sub)
        case "host_kernel":
          k.hostKernel = try string(kv, sub)
          try fileMustExist(kv, sub, k.hostKernel!)
        case "host_modules":
          k.hostModules = try string(kv, sub)
          try fileMustExist(kv, sub, k.hostModules!)
        default: k.boot = try strings(kv, sub)
        }
      }
      guard !k.name.isEmpty else { throw fail(n, key, "give the kernel a name:") }
      guard k.name.range(of: "^[A-Za-z0-9._+-]+$", options: .regularExpression) != nil else {
        throw fail(n, "\(key).name", "'\(k.name)': use letters, digits, '.', '_', '+' and '-'")
      }
      guard (k.hostKernel == nil) == (k.hostModules == nil) else {
        throw fail(
          n, key, "give host_kernel and host_modules together (kvm-hv.ko must match the kernel)")
      }
      if out.contains(where: { $0.name == k.name }) {
        throw fail(n, "\(key).name", "'\(k.name)' is given twice")
      }
      out.append(k)
    }
    return out
  }
}
