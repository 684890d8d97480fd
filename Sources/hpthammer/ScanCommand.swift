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
/// memory (a regular file in parallel chunks, with the same output: see `ParallelScan`). Exit
/// status 1 when a crash is found, 0 when none, 2 when a file cannot be read.
struct Scan: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "scan",
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
    var output = OutputBuffer()
    defer { output.flush() }
    for file in files.isEmpty ? ["-"] : files {
      let fd: Int32 = file == "-" ? 0 : open(file, O_RDONLY)
      guard fd >= 0 else {
        let reason = String(cString: strerror(errno))
        output.flush()
        printError("hpthammer scan: cannot read \(file): \(reason)")
        throw ExitCode(2)
      }
      defer { if fd != 0 { close(fd) } }
      var scanner = StreamingCrashScanner(origin: logOrigin)
      var status = stat()
      if file != "-", !report, vmlinux == nil, fstat(fd, &status) == 0,
        status.st_mode & S_IFMT == S_IFREG, Int(status.st_size) >= 2 * Self.chunkSize,
        Self.threads > 1
      {
        // A file: scanned in chunks on several threads, with the output of one scan (see
        // ParallelScan); what it gained since its size was taken is read as below.
        let json = self.json
        let outcome = ParallelScan(
          origin: logOrigin, workers: Self.threads, chunkSize: Self.chunkSize
        ).run(
          size: Int(status.st_size),
          read: { offset, buffer in readFully(fd, buffer, at: offset) },
          transform: { crash in
            // Room for most lines at once (a JSON line is about 650 bytes), not regrown as built.
            var line = ByteWriter(capacity: json ? 1024 : 256)
            Self.appendLine(crash, file: file, json: json, reportText: nil, to: &line)
            return line.array
          },
          emit: { line in
            output.bytes += line
            found += 1
            if output.bytes.count >= OutputBuffer.flushSize { output.flush() }
          })
        switch outcome {
        case .failed(let error):
          output.flush()
          printError("hpthammer scan: cannot read \(file): \(String(cString: strerror(error)))")
          throw ExitCode(2)
        case .scanned(let scanned):
          scanner = scanned
          lseek(fd, off_t(scanned.consumed), SEEK_SET)
        }
      }
      var buffer = [UInt8](repeating: 0, count: 1 << 20)
      while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
          if errno == EINTR { continue }
          let reason = String(cString: strerror(errno))
          output.flush()
          printError("hpthammer scan: cannot read \(file): \(reason)")
          throw ExitCode(2)
        }
        if n == 0 { break }
        let reports = buffer.withUnsafeBufferPointer {
          scanner.feed(chunk: UnsafeBufferPointer(rebasing: $0[0..<n]))
        }
        for report in reports { emit(report, file: file, into: &output) }
        found += reports.count
      }
      let reports = scanner.finish()
      for report in reports { emit(report, file: file, into: &output) }
      found += reports.count
    }
    output.flush()
    if found > 0 { throw ExitCode(1) }
  }

  /// Threads for a file's chunks: one per processor, at most 8 (memory: each chunk waiting
  /// to be joined holds its formatted reports). HPTHAMMER_SCAN_THREADS sets it (1: one streaming scan).
  static let threads: Int = {
    if let value = getenv("HPTHAMMER_SCAN_THREADS").flatMap({ Int(String(cString: $0)) }) {
      return max(1, value)
    }
    return min(8, max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
  }()

  /// A chunk's nominal size: a multiple of the 1 MiB reads. HPTHAMMER_SCAN_CHUNK sets it in
  /// bytes (the tests' tiny chunks).
  static let chunkSize: Int = {
    if let value = getenv("HPTHAMMER_SCAN_CHUNK").flatMap({ Int(String(cString: $0)) }) {
      return max(1, value)
    }
    return 2 << 20
  }()

  /// A report's line: its JSON object (with `reportText` as its report, if any) or its human
  /// line, and the newline.
  static func appendLine(
    _ crash: CrashReport, file: String, json: Bool, reportText: String?, to bytes: inout ByteWriter
  ) {
    if json {
      ScanOutput.appendJSON(crash, file: file, report: reportText, to: &bytes)
    } else {
      ScanOutput.appendHuman(crash, file: file, to: &bytes)
    }
    bytes.append(0x0a)
  }

  private func emit(_ crash: CrashReport, file: String, into output: inout OutputBuffer) {
    var text: String?
    if report || vmlinux != nil {
      text = crash.report
      if report || json, let symbolizer, let symbolized = try? symbolizer.symbolize(crash) {
        text = symbolized.text
      }
    }
    var line = ByteWriter()
    Self.appendLine(
      crash, file: file, json: json, reportText: report || vmlinux != nil ? text : nil,
      to: &line)
    line.withBytes { output.bytes.append(contentsOf: $0) }
    if !json, report, let text {
      output.bytes +=
        text.split(separator: "\n", omittingEmptySubsequences: false).map {
          "    " + $0
        }.joined(separator: "\n").utf8
      output.bytes.append(0x0a)
    }
    if output.bytes.count >= OutputBuffer.flushSize { output.flush() }
  }

  private func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
  }
}

/// `buffer.count` bytes at `offset` (fewer at the end of the file), or -errno.
private func readFully(_ fd: Int32, _ buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int)
  -> Int
{
  var done = 0
  while done < buffer.count {
    let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
    if n < 0 {
      if errno == EINTR { continue }
      return -Int(errno)
    }
    if n == 0 { break }
    done += n
  }
  return done
}

/// Standard output in large writes (a report line each through `print` cost more than the scan).
struct OutputBuffer {
  static let flushSize = 1 << 16
  var bytes: [UInt8] = []

  init() { bytes.reserveCapacity(Self.flushSize + 4096) }

  mutating func flush() {
    var at = 0
    while at < bytes.count {
      let n = bytes[at...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
      if n < 0 {
        if errno == EINTR { continue }
        // The reader is gone (`scan ... | head`): end as a pipe's writer does by default.
        if errno == EPIPE { Self.dieOfSIGPIPE() }
        break
      }
      at += n
    }
    bytes.removeAll(keepingCapacity: true)
  }

  /// main() ignores SIGPIPE; standard output's reader closing still ends a scan quietly.
  static func dieOfSIGPIPE() -> Never {
    signal(SIGPIPE, SIG_DFL)
    raise(SIGPIPE)
    _exit(128 + SIGPIPE)
  }
}

/// Output formats of `scan`, kept apart from I/O so tests can check them. Written as bytes,
/// with the report's metadata parsed once.
enum ScanOutput {
  static func humanLine(_ r: CrashReport, file: String) -> String {
    var out = ByteWriter()
    appendHuman(r, file: file, to: &out)
    return out.string
  }

  static func appendHuman(_ r: CrashReport, file: String, to out: inout ByteWriter) {
    out.append(contentsOf: file)
    out.append(UInt8(ascii: ":"))
    appendNumber(r.start, to: &out)
    out.append(UInt8(ascii: "-"))
    appendNumber(r.end, to: &out)
    out.append(": ")
    out.append(contentsOf: r.title)
    out.append(" [")
    out.append(contentsOf: r.type)
    out.append(UInt8(ascii: "]"))
    if r.corrupted {
      out.append(" (corrupted: ")
      out.append(contentsOf: r.corruptedReason ?? "yes")
      out.append(UInt8(ascii: ")"))
    }
    let context = r.context
    if let cpu = context.cpu {
      out.append(" cpu=")
      appendNumber(cpu, to: &out)
    }
    if let pid = context.pid {
      out.append(" pid=")
      appendNumber(pid, to: &out)
    }
    if let comm = context.comm {
      out.append(" comm=")
      out.append(contentsOf: comm)
    }
    if let version = context.kernelVersion {
      out.append(" kernel=")
      out.append(contentsOf: version)
    }
    out.append(" sig=")
    out.append(contentsOf: r.signature)
  }

  static func jsonLine(_ r: CrashReport, file: String, report: String? = nil) -> String {
    var out = ByteWriter()
    appendJSON(r, file: file, report: report, to: &out)
    return out.string
  }

  /// One JSON object; the field order and spelling are `scan --json`'s interface.
  static func appendJSON(_ r: CrashReport, file: String, report: String?, to out: inout ByteWriter)
  {
    // A key is written with its punctuation as one literal (`,"title":`).
    func string(_ s: String?) {
      if let s { appendQuoted(s, to: &out) } else { out.append("null") }
    }
    func byteStrings(_ forEach: ((UnsafeBufferPointer<UInt8>) -> Void) -> Void) {
      out.append(UInt8(ascii: "["))
      var first = true
      forEach { bytes in
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        appendQuoted(bytes, to: &out)
      }
      out.append(UInt8(ascii: "]"))
    }
    out.append("{\"file\":")
    string(file)
    out.append(",\"title\":")
    string(r.title)
    out.append(",\"type\":")
    string(r.type)
    out.append(",\"kind\":")
    string(r.kind.rawValue)
    out.append(",\"frame\":")
    string(r.frame)
    out.append(",\"corrupted\":")
    out.append(r.corrupted ? "true" : "false")
    out.append(",\"corruptedReason\":")
    string(r.corruptedReason)
    out.append(",\"start\":")
    appendNumber(r.start, to: &out)
    out.append(",\"end\":")
    appendNumber(r.end, to: &out)
    out.append(",\"signature\":")
    string(r.signature)
    out.append(",\"origin\":")
    string(r.origin.description)
    let context = r.context
    if let cpu = context.cpu {
      out.append(",\"cpu\":")
      appendNumber(cpu, to: &out)
    }
    if let pid = context.pid {
      out.append(",\"pid\":")
      appendNumber(pid, to: &out)
    }
    if let comm = context.comm {
      out.append(",\"comm\":")
      string(comm)
    }
    if let taint = context.taint {
      out.append(",\"taint\":")
      string(taint)
    }
    if let version = context.kernelVersion {
      out.append(",\"kernelVersion\":")
      string(version)
    }
    // Module and frame names are copied out as bytes: a String each cost more than the scan.
    out.append(",\"modules\":")
    byteStrings { context.moduleList.forEach($0) }
    out.append(",\"frames\":")
    byteStrings { r.forEachFrame($0) }
    if let report {
      out.append(",\"report\":")
      string(report)
    }
    out.append(UInt8(ascii: "}"))
  }

  static func appendNumber(_ n: Int, to out: inout ByteWriter) {
    if n < 0 {
      out.append(contentsOf: String(n))
      return
    }
    var digits:
      (
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
      ) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var count = 0
    var v = n
    withUnsafeMutableBytes(of: &digits) { d in
      repeat {
        d[19 - count] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
        v /= 10
        count += 1
      } while v > 0
      let digitBytes = d.bindMemory(to: UInt8.self)
      out.append(UnsafeBufferPointer(rebasing: digitBytes[(20 - count)...]))
    }
  }

  static func quote(_ s: String) -> String {
    var out = ByteWriter()
    appendQuoted(s, to: &out)
    return out.string
  }

  private static let hex = Array("0123456789abcdef".utf8)

  /// A JSON string: '"', '\\' and control characters escaped, other bytes (valid UTF-8, as
  /// Swift strings are) copied.
  static func appendQuoted(_ s: String, to out: inout ByteWriter) {
    var s = s
    s.withUTF8 { appendQuoted($0, to: &out) }
  }

  /// `bytes` (valid UTF-8) as a JSON string.
  static func appendQuoted(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout ByteWriter) {
    out.append(UInt8(ascii: "\""))
    // Most strings (names, titles) need no escape: found eight bytes at a time, copied at once
    // (one copy for the whole string when nothing in it needs escaping).
    var run = 0
    for i in firstEscape(bytes)..<bytes.count {
      let b = bytes[i]
      guard b < 0x20 || b == 0x22 || b == 0x5c else { continue }
      out.append(UnsafeBufferPointer(rebasing: bytes[run..<i]))
      run = i + 1
      switch b {
      case 0x22: out.append("\\\"")
      case 0x5c: out.append("\\\\")
      case 0x0a: out.append("\\n")
      case 0x0d: out.append("\\r")
      case 0x09: out.append("\\t")
      default:
        out.append("\\u00")
        out.append(hex[Int(b >> 4)])
        out.append(hex[Int(b & 15)])
      }
    }
    out.append(UnsafeBufferPointer(rebasing: bytes[run...]))
    out.append(UInt8(ascii: "\""))
  }

  /// The start of the first eight-byte word holding a byte to escape (a control byte, '"' or
  /// '\\'), or of the tail after the last whole word: no byte before it needs escaping.
  private static func firstEscape(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
    guard let base = bytes.baseAddress else { return 0 }
    let ones: UInt64 = 0x0101_0101_0101_0101
    let highs: UInt64 = 0x8080_8080_8080_8080
    // Some byte of `x` is below `n` (n <= 128; exact as a test of any byte).
    @inline(__always) func hasLess(_ x: UInt64, _ n: UInt64) -> Bool {
      ((x &- ones &* n) & ~x & highs) != 0
    }
    var i = 0
    while i + 8 <= bytes.count {
      let x = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
      if hasLess(x, 0x20) || hasLess(x ^ (ones &* 0x22), 1) || hasLess(x ^ (ones &* 0x5c), 1) {
        return i
      }
      i += 8
    }
    return i
  }
}
