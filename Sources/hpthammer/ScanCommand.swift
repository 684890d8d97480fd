import ArgumentParser
import KernelLog

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// `hpthammer scan [--json] FILE...|-`: finds kernel crashes in logs, streaming, in constant
/// memory. Exit status 1 when a crash is found, 0 when none, 2 when a file cannot be read.
struct Scan: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Scan kernel logs (dmesg, console, journal, pstore) for crashes.")

  @Flag(help: "Print one JSON object per crash per line.")
  var json = false

  @Option(help: "Origin recorded in reports: host:NAME or guest:NAME.")
  var origin: String = "host:localhost"

  @Flag(help: "Also print each report's text (symbolized when --vmlinux is given).")
  var report = false

  @Option(help: "vmlinux with debug info: adds file:line to frames (addr2line).")
  var vmlinux: String?

  @Option(
    name: .customLong("module"),
    help: "A module's .ko for symbolization, as NAME=PATH (repeatable).")
  var modules: [String] = []

  @Argument(help: "Log files; '-' reads standard input.")
  var files: [String] = ["-"]

  /// Option values it does not understand are usage errors (exit 2), never ignored.
  func validate() throws {
    let parts = origin.split(separator: ":", maxSplits: 1)
    guard parts.count == 2, ["host", "guest"].contains(parts[0]), !parts[1].isEmpty else {
      throw ValidationError(
        "--origin '\(origin)': expected host:NAME or guest:NAME (e.g. host:p9-3, guest:vm1)")
    }
    for (flag, path) in [("--vmlinux", vmlinux)]
      + modules.map({ ("--module", $0.split(separator: "=", maxSplits: 1).last.map(String.init)) })
    {
      guard let path else { continue }
      guard access(path, R_OK) == 0 else {
        throw ValidationError("\(flag) \(path): \(String(cString: strerror(errno)))")
      }
    }
    for entry in modules where !entry.contains("=") {
      throw ValidationError("--module '\(entry)': expected NAME=PATH (e.g. kvm_hv=kvm-hv.ko)")
    }
  }

  private var symbolizer: Symbolizer? {
    guard let vmlinux else { return nil }
    var map: [String: String] = [:]
    for entry in modules {
      let parts = entry.split(separator: "=", maxSplits: 1)
      if parts.count == 2 { map[String(parts[0])] = String(parts[1]) }
    }
    return Symbolizer(vmlinux: vmlinux, modules: map)
  }

  func run() throws {
    let logOrigin: LogOrigin =
      origin.hasPrefix("guest:")
      ? .guest(String(origin.dropFirst(6))) : .host(String(origin.drop { $0 != ":" }.dropFirst()))
    var found = 0
    for file in files.isEmpty ? ["-"] : files {
      let fd: Int32 = file == "-" ? 0 : open(file, O_RDONLY)
      guard fd >= 0 else {
        let reason = String(cString: strerror(errno))
        printError("hpthammer scan: cannot read \(file): \(reason)")
        throw ExitCode(2)
      }
      defer { if fd != 0 { close(fd) } }
      var scanner = StreamingCrashScanner(origin: logOrigin)
      var buffer = [UInt8](repeating: 0, count: 1 << 20)
      while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
          if errno == EINTR { continue }
          let reason = String(cString: strerror(errno))
          printError("hpthammer scan: cannot read \(file): \(reason)")
          throw ExitCode(2)
        }
        if n == 0 { break }
        let reports = buffer.withUnsafeBufferPointer {
          scanner.feed(chunk: UnsafeBufferPointer(rebasing: $0[0..<n]))
        }
        for report in reports { emit(report, file: file) }
        found += reports.count
      }
      let reports = scanner.finish()
      for report in reports { emit(report, file: file) }
      found += reports.count
    }
    if found > 0 { throw ExitCode(1) }
  }

  private func emit(_ crash: CrashReport, file: String) {
    var text = crash.report
    if report || json, let symbolizer, let symbolized = try? symbolizer.symbolize(crash) {
      text = symbolized.text
    }
    if json {
      print(
        ScanOutput.jsonLine(crash, file: file, report: report || symbolizer != nil ? text : nil))
    } else {
      print(ScanOutput.humanLine(crash, file: file))
      if report {
        print(
          text.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(
            separator: "\n"))
      }
    }
  }

  private func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
  }
}

/// Output formats of `scan`, kept apart from I/O so tests can check them.
enum ScanOutput {
  static func humanLine(_ r: CrashReport, file: String) -> String {
    var line = "\(file):\(r.start)-\(r.end): \(r.title) [\(r.type)]"
    if r.corrupted { line += " (corrupted: \(r.corruptedReason ?? "yes"))" }
    var context: [String] = []
    if let cpu = r.cpu { context.append("cpu=\(cpu)") }
    if let pid = r.pid { context.append("pid=\(pid)") }
    if let comm = r.comm { context.append("comm=\(comm)") }
    if let version = r.kernelVersion { context.append("kernel=\(version)") }
    context.append("sig=\(r.signature)")
    return line + " " + context.joined(separator: " ")
  }

  static func jsonLine(_ r: CrashReport, file: String, report: String? = nil) -> String {
    var fields: [(String, String)] = [
      ("file", quote(file)), ("title", quote(r.title)), ("type", quote(r.type)),
      ("kind", quote(r.kind.rawValue)),
      ("frame", r.frame.map(quote) ?? "null"), ("corrupted", r.corrupted ? "true" : "false"),
      ("corruptedReason", r.corruptedReason.map(quote) ?? "null"), ("start", String(r.start)),
      ("end", String(r.end)), ("signature", quote(r.signature)),
      ("origin", quote(r.origin.description)),
    ]
    if let cpu = r.cpu { fields.append(("cpu", String(cpu))) }
    if let pid = r.pid { fields.append(("pid", String(pid))) }
    if let comm = r.comm { fields.append(("comm", quote(comm))) }
    if let taint = r.taint { fields.append(("taint", quote(taint))) }
    if let version = r.kernelVersion { fields.append(("kernelVersion", quote(version))) }
    fields.append(("modules", "[" + r.modules.map(quote).joined(separator: ",") + "]"))
    fields.append(("frames", "[" + r.frames.map(quote).joined(separator: ",") + "]"))
    if let report { fields.append(("report", quote(report))) }
    return "{" + fields.map { "\(quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
  }

  static func quote(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if scalar.value < 0x20 {
          let hex = String(scalar.value, radix: 16)
          out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out + "\""
  }
}
