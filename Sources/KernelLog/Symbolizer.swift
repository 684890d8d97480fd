import Foundation

/// Adds source file:line to a report's frames with addr2line, given the kernel's vmlinux
/// (and module .ko files). Uses binutils or the ppc64le cross binutils; without them, or
/// without debug info, the report is left as it was.
public struct Symbolizer: Sendable {
  public var vmlinux: String
  /// Module name (as printed in "[kvm_hv]") to its .ko file.
  public var modules: [String: String]
  public var addr2line: String
  public var nm: String

  /// A frame resolved to source; inlined callers follow their caller's frame.
  public struct Location: Sendable, Hashable {
    public var function: String
    public var file: String
    public var line: Int
    public var inlined: Bool
  }

  public init(
    vmlinux: String, modules: [String: String] = [:], addr2line: String? = nil, nm: String? = nil
  ) {
    self.vmlinux = vmlinux
    self.modules = modules
    // powerpc kernels built elsewhere need the cross tools when present.
    let cross = "/usr/bin/powerpc64le-linux-gnu-addr2line"
    self.addr2line =
      addr2line
      ?? (FileManager.default.isExecutableFile(atPath: cross) ? cross : "/usr/bin/addr2line")
    self.nm =
      nm
      ?? (addr2line == nil && FileManager.default.isExecutableFile(atPath: cross)
        ? "/usr/bin/powerpc64le-linux-gnu-nm" : "/usr/bin/nm")
  }

  struct FrameRef: Hashable {
    var line: Int
    var function: String
    var offset: UInt64
    var module: String?
    var exact: Bool
  }

  /// The report's text with " file:line" after each resolved frame and "[inline]" lines for
  /// inlined callers. Frames that cannot be resolved are kept unchanged.
  public func symbolize(_ report: CrashReport) throws -> (text: String, locations: [[Location]]) {
    let lines = report.report.split(separator: "\n", omittingEmptySubsequences: false).map(
      String.init)
    var refs: [FrameRef] = []
    for (i, line) in lines.enumerated() {
      if let ref = Self.frameRef(line, index: i) { refs.append(ref) }
    }
    var resolved: [Int: [Location]] = [:]
    let byBinary = Dictionary(grouping: refs) { $0.module }
    for module in byBinary.keys.sorted(by: { ($0 ?? "") < ($1 ?? "") }) {
      let path = module.map { modules[$0] } ?? vmlinux
      guard let path, FileManager.default.fileExists(atPath: path), let frames = byBinary[module]
      else { continue }
      let symbols = try symbolAddresses(path, names: Set(frames.map(\.function)))
      var queries: [(FrameRef, UInt64)] = []
      for frame in frames {
        guard let base = symbols[frame.function] else { continue }
        // Trace frames hold return addresses: the call is the instruction before.
        let address = base + frame.offset - (frame.exact || frame.offset == 0 ? 0 : 1)
        queries.append((frame, address))
      }
      guard !queries.isEmpty else { continue }
      var args = ["-f", "-i", "-p", "-e", path]
      if module != nil { args += ["-j", ".text"] }
      args += queries.map { "0x" + String($0.1, radix: 16) }
      let output = try run(addr2line, args)
      let results = Self.parseAddr2line(output)
      for (query, locations) in zip(queries, results) where !locations.isEmpty {
        resolved[query.0.line] = locations
      }
    }
    var out: [String] = []
    var all: [[Location]] = []
    for (i, line) in lines.enumerated() {
      guard let locations = resolved[i], let first = locations.first else {
        out.append(line)
        continue
      }
      all.append(locations)
      out.append(line + " \(first.file):\(first.line)")
      for inlined in locations.dropFirst() {
        out.append("  \(inlined.function) \(inlined.file):\(inlined.line) [inline]")
      }
    }
    return (out.joined(separator: "\n"), all)
  }

  /// "func+0x50/0x120 [kvm_hv]" in a trace or IP line.
  static func frameRef(_ line: String, index: Int) -> FrameRef? {
    let bytes = Array(line.utf8)
    return bytes.withUnsafeBufferPointer { buf -> FrameRef? in
      let t = classifyTraceLine(buf)
      guard t.role == .frame || t.role == .instructionPointer, let range = t.name else {
        return nil
      }
      // The full symbol (with .isra/.constprop suffixes) up to '+'.
      var end = range.upperBound
      while end < buf.count, buf[end] != UInt8(ascii: "+") { end += 1 }
      guard end + 3 < buf.count else { return nil }
      var p = end + 3  // past "+0x"
      var offset: UInt64 = 0
      while p < buf.count, isHexDigit(buf[p]), offset < (1 << 40) {
        offset = offset << 4 | UInt64(hexNibble(buf[p]))
        p += 1
      }
      var module: String?
      if let open = buf[p...].firstIndex(of: UInt8(ascii: "[")),
        let close = buf[open...].firstIndex(of: UInt8(ascii: "]")),
        close > open + 1
      {
        let name = String(decoding: buf[(open + 1)..<close], as: UTF8.self)
        if name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) {
          module = name
        }
      }
      let function = String(decoding: buf[range.lowerBound..<end], as: UTF8.self)
      return FrameRef(
        line: index, function: function, offset: offset, module: module,
        exact: t.role == .instructionPointer)
    }
  }

  /// addr2line -f -i -p output: one line per address, inlined callers as "(inlined by)" lines.
  static func parseAddr2line(_ output: String) -> [[Location]] {
    var results: [[Location]] = []
    for raw in output.split(separator: "\n") {
      var text = Substring(raw)
      var inlined = false
      if text.hasPrefix(" (inlined by) ") {
        text = text.dropFirst(14)
        inlined = true
      }
      var location: Location?
      if let at = byteRange(String(text), " at ") {
        let s = String(text)
        let function = String(s[..<at.lowerBound])
        let place = String(s[at.upperBound...])
        var fileLine = place
        if let paren = byteRange(place, " (discriminator") {
          fileLine = String(place[..<paren.lowerBound])
        }
        if let colon = fileLine.lastIndex(of: ":"),
          let number = Int(fileLine[fileLine.index(after: colon)...]),
          !fileLine.hasPrefix("??")
        {
          location = Location(
            function: function, file: String(fileLine[..<colon]), line: number, inlined: inlined)
        }
      }
      if inlined, !results.isEmpty {
        if let location { results[results.count - 1].append(location) }
      } else {
        results.append(location.map { [$0] } ?? [])
      }
    }
    return results
  }

  private func symbolAddresses(_ path: String, names: Set<String>) throws -> [String: UInt64] {
    var found: [String: UInt64] = [:]
    let output = try run(nm, ["--defined-only", path])
    for line in output.split(separator: "\n") {
      let parts = line.split(separator: " ")
      guard parts.count == 3, names.contains(String(parts[2])),
        let address = UInt64(parts[0], radix: 16)
      else {
        continue
      }
      found[String(parts[2])] = address
    }
    return found
  }

  private func run(_ tool: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
  }
}

@inline(__always) func hexNibble(_ b: UInt8) -> UInt8 {
  switch b {
  case 0x30...0x39: return b - 0x30
  case 0x61...0x66: return b - 0x61 + 10
  default: return b - 0x41 + 10
  }
}
