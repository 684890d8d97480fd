// Benchmark: scan a 256 MiB console log made by repeating corpus logs, side by side with
// `grep -E -c` over the detector's header patterns, and report peak memory (VmHWM).
import Foundation
import KernelLog

struct Options {
  var megabytes = 256
  var corpus: String
  var keep = false

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
      default:
        FileHandle.standardError.write(
          Data("usage: kernellog-bench [--mib N] [--corpus DIR] [--keep]\n".utf8))
        exit(2)
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
  if let data = fm.contents(atPath: options.corpus + "/" + name) { sample.append(consoleLog(data)) }
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
print("input: \(written >> 20) MiB (\(names.count) corpus logs repeated), \(path)")

// Detector, streaming in 1 MiB reads.
let detector = CrashDetector()
let start = now()
var scanner = StreamingCrashScanner(detector: detector)
var crashes = 0
var titles = Set<String>()
let fd = open(path, O_RDONLY)
var buffer = [UInt8](repeating: 0, count: 1 << 20)
while true {
  let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
  if n <= 0 { break }
  let reports = buffer.withUnsafeBufferPointer {
    scanner.feed(chunk: UnsafeBufferPointer(rebasing: $0[0..<n]))
  }
  crashes += reports.count
  if titles.count < 10_000 { for r in reports { titles.insert(r.signature) } }
}
crashes += scanner.finish().count
close(fd)
let scanSeconds = now() - start
let rssKiB = peakRSSKiB()

// grep -E -c over the same header strings.
let pattern = detector.headerStrings.map(ereEscape).joined(separator: "|")
let grep = Process()
grep.executableURL = URL(fileURLWithPath: "/usr/bin/env")
grep.arguments = ["grep", "-E", "-c", pattern, path]
let pipe = Pipe()
grep.standardOutput = pipe
let grepStart = now()
try grep.run()
let grepOutput = pipe.fileHandleForReading.readDataToEndOfFile()
grep.waitUntilExit()
let grepSeconds = now() - grepStart
let grepCount = String(decoding: grepOutput, as: UTF8.self).trimmingCharacters(
  in: .whitespacesAndNewlines)

let mib = Double(written) / Double(1 << 20)
print(
  String(
    format: "detector: %.2f s, %.0f MiB/s, %d crashes (%d distinct signatures)", scanSeconds,
    mib / scanSeconds, crashes, titles.count))
print(
  String(
    format: "grep -E -c (%d header patterns): %.2f s, %.0f MiB/s, %@ matching lines",
    detector.headerStrings.count, grepSeconds, mib / grepSeconds, grepCount))
print(String(format: "speed relative to grep: %.2f (target >= 0.5)", grepSeconds / scanSeconds))
print("peak RSS (VmHWM): \(rssKiB / 1024) MiB (target < 64 MiB)")
if !options.keep { unlink(path) }
