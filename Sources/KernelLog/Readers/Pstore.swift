import Foundation

/// One crash dump saved by pstore (ramoops, EFI variables, powerpc nvram), reassembled from
/// its dmesg-* parts.
public struct PstoreDump: Sendable, Hashable {
  /// "Oops", "Panic", "Emergency", ... from the "Oops#1 Part1" header.
  public var reason: String
  /// The dump's count (the N in "Oops#N").
  public var count: Int
  /// Backend name from the file name ("ramoops", "efi", "nvram").
  public var backend: String
  /// Part files, oldest text first.
  public var files: [String]
  public var records: [KernelLogRecord]
}

public enum Pstore {
  /// Reads /sys/fs/pstore (or a copy): dumps newest first, each with its parts in log order.
  public static func read(
    directory: String = "/sys/fs/pstore", origin: LogOrigin = .host("localhost")
  ) throws
    -> [PstoreDump]
  {
    let fm = FileManager.default
    let names = try fm.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("dmesg-") }
    var parts: [(name: String, text: String, modified: Date)] = []
    for name in names where !name.hasSuffix(".enc.z") {
      let path = directory + "/" + name
      guard let data = fm.contents(atPath: path) else { continue }
      let modified = (try? fm.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? nil
      parts.append((name, String(decoding: data, as: UTF8.self), modified ?? .distantPast))
    }
    return assemble(parts, origin: origin)
  }

  /// Groups parts into dumps by backend, reason and count. Part1 holds the end of the log, so
  /// parts are joined from the highest part number down. Dumps are ordered newest first.
  public static func assemble(
    _ parts: [(name: String, text: String, modified: Date)], origin: LogOrigin
  )
    -> [PstoreDump]
  {
    struct Key: Hashable {
      var backend: String
      var reason: String
      var count: Int
    }
    var groups: [Key: [(part: Int, name: String, body: Substring, modified: Date)]] = [:]
    var order: [Key] = []
    for part in parts {
      let components = part.name.split(separator: "-")
      let backend = components.count > 1 ? String(components[1]) : "unknown"
      var body = Substring(part.text)
      var reason = "Unknown"
      var count = 0
      var number = 1
      if let newline = body.firstIndex(of: "\n") {
        let header = body[..<newline]
        // "Oops#1 Part1" (ramoops, efi) or "Panic#2 Part3".
        if let hash = header.firstIndex(of: "#"), let space = header.firstIndex(of: " "),
          hash < space
        {
          reason = String(header[..<hash])
          count = Int(header[header.index(after: hash)..<space]) ?? 0
          let partText = header[header.index(after: space)...]
          if partText.hasPrefix("Part") { number = Int(partText.dropFirst(4)) ?? 1 }
          body = body[body.index(after: newline)...]
        }
      }
      let key = Key(backend: backend, reason: reason, count: count)
      if groups[key] == nil { order.append(key) }
      groups[key, default: []].append((number, part.name, body, part.modified))
    }
    var dumps: [(PstoreDump, Date)] = []
    for key in order {
      let members = groups[key]!.sorted { $0.part > $1.part }
      var records: [KernelLogRecord] = []
      for member in members {
        records += DmesgText.parse(text: String(member.body), origin: origin)
      }
      let newest = members.map(\.modified).max() ?? .distantPast
      dumps.append(
        (
          PstoreDump(
            reason: key.reason, count: key.count, backend: key.backend, files: members.map(\.name),
            records: records), newest
        ))
    }
    return dumps.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0.count > $1.0.count }.map(\.0)
  }
}

/// kdump's vmcore-dmesg.txt (and makedumpfile --dump-dmesg): dmesg text of the crashed kernel.
public enum VmcoreDmesg {
  public static func read(path: String, origin: LogOrigin = .host("localhost")) throws
    -> [KernelLogRecord]
  {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    return DmesgText.parse(text: text, origin: origin)
  }
}
