// Benchmark: scan a 256 MiB console log made by repeating corpus logs. First in-process (the
// scanner alone, no output; its peak memory), beside `grep -E -c` over the detector's header
// patterns; then as a user runs it (Commands.swift): whole `hpthammer scan --json` and
// `hpthammer scan` processes against the issue's `grep -E -c`, each writing to a file.
import Foundation
import KernelLog

struct Options {
  var megabytes = 256
  var corpus: String
  var keep = false
  /// Only the corpus logs without a crash: the speed of following a healthy kernel's log.
  var quiet = false
  /// Rounds of the whole-process commands (0: the in-process figures only).
  var rounds = 5
  /// The hpthammer binary whose `scan` is timed: by default the one built beside this one.
  var hpthammer = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent("hpthammer").path

  static func usage() -> Never {
    FileHandle.standardError.write(
      Data(
        "usage: kernellog-bench [--mib N] [--corpus DIR] [--quiet] [--keep] [--rounds N] [--hpthammer PATH]\n"
          .utf8))
    exit(2)
  }

  init() {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent()
      .deletingLastPathComponent()
    corpus =
      root.deletingLastPathComponent().appendingPathComponent("shared/corpus/syzkaller-linux").path
    var args = CommandLine.arguments.dropFirst()
    while let arg = args.popFirst() {
      switch arg {
      case "--mib": megabytes = Int(args.popFirst() ?? "") ?? megabytes
      case "--corpus": corpus = args.popFirst() ?? corpus
      case "--keep": keep = true
      case "--quiet": quiet = true
      case "--rounds":
        guard let n = args.popFirst().flatMap({ Int($0) }), n >= 0 else { Self.usage() }
        rounds = n
      case "--hpthammer": hpthammer = args.popFirst() ?? hpthammer
      default: Self.usage()
      }
    }
  }
}

/// The console log part of a corpus file (after the headers, before "REPORT:").
func consoleLog(_ data: Data) -> Data {
  var bytes = [UInt8](data)
  if let blank = bytes.indices.dropLast().first(where: {
    bytes[$0] == 0x0a && bytes[$0 + 1] == 0x0a
  }) {
    bytes.removeSubrange(0...(blank + 1))
  }
  if let range = Data(bytes).range(of: Data("\nREPORT:\n".utf8)) {
    bytes.removeSubrange((range.lowerBound + 1)...)
  }
  return Data(bytes)
}

func peakRSSKiB() -> Int {
  guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else {
    return -1
  }
  for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
  }
  return -1
}

/// CPU seconds (user + system) of this process or of its waited-for children: unlike wall
/// time, not inflated by other work on a shared machine.
func cpuSeconds(_ who: __rusage_who) -> Double {
  var usage = rusage()
  getrusage(Int32(who.rawValue), &usage)
  return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
    + Double(usage.ru_stime.tv_sec)
    + Double(usage.ru_stime.tv_usec) / 1e6
}

func now() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// grep -E needs metacharacters escaped.
func ereEscape(_ s: String) -> String {
  var out = ""
  for c in s {
    if "\\^$.|?*+()[]{}".contains(c) { out.append("\\") }
    out.append(c)
  }
  return out
}

let options = Options()
let fm = FileManager.default
guard let names = try? fm.contentsOfDirectory(atPath: options.corpus), !names.isEmpty else {
  print("kernellog-bench: corpus not found at \(options.corpus)")
  exit(2)
}
var sample = Data()
for name in names.sorted() {
  guard let data = fm.contents(atPath: options.corpus + "/" + name) else { continue }
  if options.quiet,
    data.starts(with: Data("TITLE:".utf8)) || data.range(of: Data("\nTITLE:".utf8)) != nil
  {
    continue
  }
  sample.append(consoleLog(data))
}
let target = options.megabytes << 20
let path = NSTemporaryDirectory() + "kernellog-bench-\(getpid()).log"
fm.createFile(atPath: path, contents: nil)
let out = FileHandle(forWritingAtPath: path)!
var written = 0
while written < target {
  let chunk = sample.prefix(target - written)
  out.write(chunk)
  written += chunk.count
}
out.closeFile()
sample = Data()
print(
  "input: \(written >> 20) MiB (\(options.quiet ? "crash-free " : "")corpus logs repeated), \(path)"
)

/// One streaming pass over the file in 1 MiB reads: (wall s, CPU s, crashes, signatures).
func scanOnce(_ detector: CrashDetector) -> (Double, Double, Int, Int) {
  let wall = now()
  let cpu = cpuSeconds(RUSAGE_SELF)
  var scanner = StreamingCrashScanner(detector: detector)
  var crashes = 0
  var signatures = Set<String>()
  let fd = open(path, O_RDONLY)
  var buffer = [UInt8](repeating: 0, count: 1 << 20)
  while true {
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    if n <= 0 { break }
    let reports = buffer.withUnsafeBufferPointer {
      scanner.feed(chunk: UnsafeBufferPointer(rebasing: $0[0..<n]))
    }
    crashes += reports.count
    if signatures.count < 10_000 { for r in reports { signatures.insert(r.signature) } }
  }
  crashes += scanner.finish().count
  close(fd)
  return (now() - wall, cpuSeconds(RUSAGE_SELF) - cpu, crashes, signatures.count)
}

/// grep -E -c over the same header strings: (wall s, CPU s, matching lines).
func grepOnce(_ pattern: String) throws -> (Double, Double, String) {
  let grep = Process()
  grep.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  grep.arguments = ["grep", "-E", "-c", pattern, path]
  let pipe = Pipe()
  grep.standardOutput = pipe
  let wall = now()
  let cpu = cpuSeconds(RUSAGE_CHILDREN)
  try grep.run()
  let output = pipe.fileHandleForReading.readDataToEndOfFile()
  grep.waitUntilExit()
  let count = String(decoding: output, as: UTF8.self).trimmingCharacters(
    in: .whitespacesAndNewlines)
  return (now() - wall, cpuSeconds(RUSAGE_CHILDREN) - cpu, count)
}

// Best of three runs each, alternating, so both see the same machine load.
let detector = CrashDetector()
let pattern = detector.headerStrings.map(ereEscape).joined(separator: "|")
var scan = (wall: Double.infinity, cpu: Double.infinity, crashes: 0, signatures: 0)
var grepBest = (wall: Double.infinity, cpu: Double.infinity, count: "")
for _ in 0..<3 {
  let s = scanOnce(detector)
  scan = (min(scan.wall, s.0), min(scan.cpu, s.1), s.2, s.3)
  let g = try grepOnce(pattern)
  grepBest = (min(grepBest.wall, g.0), min(grepBest.cpu, g.1), g.2)
}
let rssKiB = peakRSSKiB()
let mib = Double(written) / Double(1 << 20)
print(
  String(
    format:
      "detector: %.2f s wall, %.2f s CPU, %.0f MiB/s (CPU), %d crashes (%d distinct signatures)",
    scan.wall,
    scan.cpu, mib / scan.cpu, scan.crashes, scan.signatures))
print(
  String(
    format:
      "grep -E -c (%d header patterns): %.2f s wall, %.2f s CPU, %.0f MiB/s (CPU), %@ matching lines",
    detector.headerStrings.count, grepBest.wall, grepBest.cpu, mib / grepBest.cpu, grepBest.count))
print(
  String(
    format: "speed relative to grep: %.2f by CPU time, %.2f by wall time (target >= 0.5)",
    grepBest.cpu / scan.cpu,
    grepBest.wall / scan.wall))
print("peak RSS (VmHWM): \(rssKiB / 1024) MiB (target < 64 MiB)")
if options.rounds > 0 {
  guard access(options.hpthammer, X_OK) == 0 else {
    FileHandle.standardError.write(
      Data(
        ("kernellog-bench: no hpthammer binary at \(options.hpthammer) to time; build it "
          + "(swift build -c release --product hpthammer), pass --hpthammer PATH, or --rounds 0\n")
          .utf8))
    if !options.keep { unlink(path) }
    exit(2)
  }
  do {
    try timeUserCommands(hpthammer: options.hpthammer, log: path, rounds: options.rounds)
  } catch {
    FileHandle.standardError.write(Data("kernellog-bench: \(error)\n".utf8))
    if !options.keep { unlink(path) }
    exit(1)
  }
}
if !options.keep { unlink(path) }
