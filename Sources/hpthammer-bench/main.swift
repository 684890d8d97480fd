import Foundation
import HPTBisect
import HPTEngine
import HPTSim
import KVMHost

// Benchmarks of issue 2, printed as figures:
//   hpthammer-bench detect [SEEDS]     time to detection per bug model
//   hpthammer-bench fp [SEEDS] [HOST_S] false positives of the fixed kernel on the default job
//   hpthammer-bench speed              order-24 rehash and a resize/fault rate on an order-24 guest
//   hpthammer-bench bisect [TRIALS] [N] [P,...]  the statistical bisection against today's rules
//   hpthammer-bench bisect-engine TRIALS N P,... [expensive|cheap] [FALSE_ALARM] [MEASURE] [runs-only] [known-p] [wrong] [flat-stop] [reference] [confidence=C]
//                                     the engine alone, to compare variants
// Build with -c release for meaningful numbers.

func loadJob(_ path: String) -> Job {
  do {
    let job = try Job.load(path: path)
    try job.checkKernel(models: KernelModel.allNames) { KernelModel.named($0) != nil }
    return job
  } catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(2)
  }
}

func runOnce(_ job: Job) -> (RunReport, Double) {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
    "hpthammer-bench-\(UUID().uuidString)")
  let model = KernelModel.named(job.kernel)!
  let host = SimHost(model: model, seed: job.seed, bootUptimeS: job.hostUptimeS)
  let t0 = Date()
  let r = Runner(
    job: job, host: host, kernel: HostKernel(name: model.name, release: model.release),
    outDir: dir, progress: false, reproduce: ""
  ).run()
  let wall = Date().timeIntervalSince(t0)
  try? FileManager.default.removeItem(at: dir)
  return (r, wall)
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
  guard !xs.isEmpty else { return .nan }
  let s = xs.sorted()
  return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
}

struct Case {
  var bug: String
  var job: Job
}

func detectionCases() -> [Case] {
  var b1 = loadJob("Jobs/dry-run.yaml")
  b1.kernel = "pre-fix"
  var b0a = loadJob("Jobs/dry-run.yaml")
  b0a.kernel = "4.14"
  b0a.policies = [.randomWalk, .commitWithoutPrepare]
  var b3 = loadJob("Jobs/dry-run.yaml")
  b3.kernel = "4.14"
  b3.policies = [.randomWalk, .cancelDuringPrepare]
  var b4 = loadJob("Jobs/dry-run.yaml")
  b4.kernel = "4.14"
  b4.policies = [.randomWalk, .randomWalk, .reboot]
  var b5 = loadJob("Jobs/crowded-hpt.yaml")
  b5.kernel = "4.15"
  return [
    Case(bug: "B1", job: b1), Case(bug: "B0a", job: b0a), Case(bug: "B3", job: b3),
    Case(bug: "B4", job: b4), Case(bug: "B5", job: b5),
  ]
}

func detect(seeds: Int) {
  print("Time to detection over \(seeds) seeds (wall s and resize cycles to the verdict):")
  print("bug   found    wall-p50  wall-p90  cycles-p50  cycles-p90  titles")
  for c in detectionCases() {
    var walls: [Double] = []
    var cycles: [Double] = []
    var titles: [String: Int] = [:]
    var found = 0
    for s in 0..<seeds {
      var j = c.job
      j.seed = UInt64(1000 + s)
      let (r, wall) = runOnce(j)
      if r.verdict == .bug {
        found += 1
        walls.append(wall)
        cycles.append(Double(r.resizes.attempted))
        titles[r.crashes.first { !$0.expected }?.title ?? "?", default: 0] += 1
      }
    }
    let t = titles.sorted { $0.value > $1.value }.map { "\($0.value)x \($0.key)" }.joined(
      separator: "; ")
    print(
      String(
        format: "%-5@ %3d/%-3d  %8.3f  %8.3f  %10.0f  %10.0f  %@", c.bug, found, seeds,
        percentile(walls, 0.5),
        percentile(walls, 0.9), percentile(cycles, 0.5), percentile(cycles, 0.9), t))
  }
}

func falsePositives(seeds: Int, hostS: Double, firstSeed: Int) {
  var job = loadJob("Jobs/dry-run-fixed.yaml")
  job.durationS = hostS
  var crashes = 0
  var bugs = 0
  var resizes = 0
  var unexpected = 0
  let t0 = Date()
  for s in 0..<seeds {
    job.seed = UInt64(s + firstSeed)
    let (r, _) = runOnce(job)
    crashes += r.crashes.filter { !$0.expected }.count
    if r.verdict != .pass { bugs += 1 }
    resizes += r.resizes.succeeded
    unexpected += r.resizes.failed_unexpected
    if r.verdict != .pass {
      print(
        "  seed \(job.seed): \(r.verdict.rawValue) \(r.crashes.first?.title ?? r.error ?? r.unexpected.first.map { "\($0.op) \($0.answer)" } ?? "")"
      )
    }
    if (s + 1) % 50 == 0 {
      print("  after \(s + 1) seeds: \(bugs) non-pass, \(crashes) crashes, \(resizes) resizes")
      fflush(nil)
    }
  }
  print(
    "False positives: fixed kernel, default job (\(hostS) s of host time each), \(seeds) seeds from \(firstSeed): "
      + "\(bugs) non-pass verdicts, \(crashes) crashes, \(unexpected) unexpected answers, \(resizes) resizes, "
      + String(format: "%.1f s wall", Date().timeIntervalSince(t0)))
}

func speed() {
  let (rate, inUse, total) = SimBenchmarks.rehash(order: 24, memoryMiB: 2048)
  print(
    String(
      format: "Rehash, order 24: %d HPTEs (%d in use): %.1f M HPTEs/s", total, inUse, rate / 1e6))

  var job = loadJob("Jobs/dry-run-fixed.yaml")
  job.guestCount = 1
  job.guestMemoryMiB = 2048
  job.hptOrder = 24
  job.orderMin = 24
  job.orderMax = 24
  job.policies = [.sameOrder]
  job.durationS = 3
  let (r, wall) = runOnce(job)
  let faults = r.figures?["hypervisor_faults"] ?? 0
  print(
    String(
      format:
        "Order-24 guest (2 GiB, same-order rehash): %d resize cycles, %d hypervisor faults in %.2f s wall: %.1f resize cycles/s, %.0f faults/s",
      r.resizes.succeeded, faults, wall, Double(r.resizes.succeeded) / wall, Double(faults) / wall))
}

let args = CommandLine.arguments.dropFirst()
switch args.first {
case "detect": detect(seeds: args.dropFirst().first.flatMap { Int($0) } ?? 100)
case "fp":
  falsePositives(
    seeds: args.dropFirst().first.flatMap { Int($0) } ?? 1000,
    hostS: args.dropFirst(2).first.flatMap { Double($0) } ?? 60,
    firstSeed: args.dropFirst(3).first.flatMap { Int($0) } ?? 1)
case "speed": speed()
case "bisect":
  bisectBench(
    trials: args.dropFirst().first.flatMap { Int($0) } ?? 200,
    count: args.dropFirst(2).first.flatMap { Int($0) } ?? 1000,
    ps: args.dropFirst(3).first.map { $0.split(separator: ",").compactMap { Double($0) } }
      ?? [1, 0.5, 0.3, 0.2, 0.1, 0.05])
case "bisect-engine":
  let a = Array(args.dropFirst())
  let confidenceArg = a.first { $0.hasPrefix("confidence=") }
  let confidence = confidenceArg.map { Double($0.dropFirst(11)) ?? .nan } ?? 0.99
  guard confidence > 0 && confidence < 1 else {
    print("hpthammer-bench: \(confidenceArg ?? ""): give confidence=C with C between 0 and 1")
    exit(2)
  }
  bisectEngineBench(
    trials: a.first.flatMap { Int($0) } ?? 40,
    count: a.dropFirst().first.flatMap { Int($0) } ?? 1000,
    ps: a.dropFirst(2).first.map { $0.split(separator: ",").compactMap { Double($0) } }
      ?? [0.5, 0.2, 0.1, 0.05],
    model: a.dropFirst(3).first ?? "expensive",
    falseAlarm: a.dropFirst(4).first.flatMap { Double($0) } ?? 0,
    measure: a.dropFirst(5).first.flatMap { GainMeasure(rawValue: $0) } ?? .culprit,
    runsOnly: a.contains("runs-only"), knownP: a.contains("known-p"),
    listWrong: a.contains("wrong"), flatStop: a.contains("flat-stop"),
    reference: a.contains("reference"), confidence: confidence)
default:
  print(
    "usage: hpthammer-bench detect [SEEDS] | fp [SEEDS] [HOST_S] [FIRST_SEED] | speed | bisect [TRIALS] [N] [P,P,...] | bisect-engine TRIALS N P,P,... [MODEL] [FALSE_ALARM] [MEASURE] [runs-only] [known-p] [wrong] [flat-stop] [reference] [confidence=C]"
  )
  exit(2)
}
