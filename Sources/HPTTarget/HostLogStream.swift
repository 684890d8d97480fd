import Foundation
import HPTEngine
import KVMHost
import KernelLog

/// A host's kernel log as records, read on a background thread from wherever the target keeps
/// it: this machine's /dev/kmsg, a console file QEMU or a console server writes, or a
/// command's output (`ssh host cat /dev/kmsg`, `ipmitool ... sol activate`). It also knows when
/// the host last printed anything, which with ssh tells a hung host from a quiet one.
public final class HostLogStream: KernelLogSource, @unchecked Sendable {
  public enum Format: Sendable { case kmsg, console }

  private let lock = NSLock()
  private let cond = NSCondition()
  private var queue: [KernelLogRecord] = []
  private var head = 0
  private var finished = false
  private var stopped = false
  private var lastOutput = Date()
  private var process: Process?
  public let origin: LogOrigin

  init(origin: LogOrigin) { self.origin = origin }

  deinit { stop() }

  /// This machine's /dev/kmsg, from now on.
  public static func kmsg(origin: LogOrigin) throws(TargetError) -> HostLogStream {
    let reader: KmsgReader
    do { reader = try KmsgReader(start: .end, origin: origin) } catch {
      throw TargetError("host log: /dev/kmsg: \(error) (run as root, or pick target.host_log)")
    }
    let s = HostLogStream(origin: origin)
    nonisolated(unsafe) let r = reader
    Thread.detachNewThread {
      while !s.isStopped {
        let events = (try? r.drain()) ?? []
        var got = false
        for case .record(let rec) in events {
          s.push([rec])
          got = true
        }
        if !got { Thread.sleep(forTimeInterval: 0.05) }
      }
      s.finish()
    }
    return s
  }

  /// A console file something else writes, from its current end.
  public static func file(_ path: String, origin: LogOrigin) throws(TargetError) -> HostLogStream {
    if !FileManager.default.fileExists(atPath: path) {
      _ = FileManager.default.createFile(atPath: path, contents: nil)
    }
    let follower: FileFollower
    do { follower = try FileFollower(path: path, fromEnd: true) } catch {
      throw TargetError("host console \(path): \(error)")
    }
    let s = HostLogStream(origin: origin)
    nonisolated(unsafe) let f = follower
    Thread.detachNewThread {
      var console = ConsoleReader(origin: origin)
      while !s.isStopped {
        let lines = (try? f.poll()) ?? []
        if lines.isEmpty {
          Thread.sleep(forTimeInterval: 0.05)
          continue
        }
        s.touch()
        for l in lines { s.push(console.feed(Array((l + "\n").utf8))) }
      }
      s.push(console.finish())
      s.finish()
    }
    return s
  }

  /// A command's standard output; the stream finishes when the command exits.
  public static func command(
    _ argv: [String], format: Format, origin: LogOrigin, skipBeforeMicros: UInt64? = nil
  ) -> HostLogStream {
    let s = HostLogStream(origin: origin)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    p.standardInput = FileHandle.nullDevice
    do { try p.run() } catch {
      s.finish()
      return s
    }
    s.lock.locked { s.process = p }
    let h = out.fileHandleForReading
    Thread.detachNewThread {
      var console = ConsoleReader(origin: origin)
      var kmsg = KmsgLineAssembler(origin: origin)
      while true {
        let d = h.availableData
        if d.isEmpty { break }
        s.touch()
        switch format {
        case .console: s.push(console.feed(Array(d)))
        case .kmsg:
          // /dev/kmsg starts with the whole ring buffer: records stamped before the host's
          // uptime when the stream opened are history, not this run.
          let recs = kmsg.feed(Array(d))
          s.push(recs.filter { ($0.timestampMicros ?? .max) >= (skipBeforeMicros ?? 0) })
        }
      }
      if format == .console { s.push(console.finish()) } else { s.push(kmsg.finish()) }
      s.finish()
    }
    return s
  }

  /// A host with no log the harness can read.
  public static func silent(origin: LogOrigin) -> HostLogStream {
    let s = HostLogStream(origin: origin)
    s.finish()
    return s
  }

  // MARK: KernelLogSource

  public func next(timeoutMs: Int) -> KernelLogRecord? {
    let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
    cond.lock()
    defer { cond.unlock() }
    while head == queue.count && !finished {
      if !cond.wait(until: deadline) { break }
    }
    guard head < queue.count else { return nil }
    let r = queue[head]
    head += 1
    if head > 4096 {
      queue.removeFirst(head)
      head = 0
    }
    return r
  }

  public var isFinished: Bool {
    cond.lock()
    defer { cond.unlock() }
    return finished && head == queue.count
  }

  /// Seconds since the host last printed anything on this stream.
  public var quietS: Double { lock.locked { -lastOutput.timeIntervalSinceNow } }

  public func stop() {
    lock.locked { stopped = true }
    if let p = lock.locked({ process }), p.isRunning { p.terminate() }
  }

  var isStopped: Bool { lock.locked { stopped } }

  func touch() { lock.locked { lastOutput = Date() } }

  func push(_ records: [KernelLogRecord]) {
    guard !records.isEmpty else { return }
    cond.lock()
    queue += records
    cond.broadcast()
    cond.unlock()
  }

  func finish() {
    cond.lock()
    finished = true
    cond.broadcast()
    cond.unlock()
  }
}

/// Groups `cat /dev/kmsg` output into records: a record line, then its " KEY=value" lines.
struct KmsgLineAssembler {
  let origin: LogOrigin
  private var partial: [UInt8] = []
  private var pending: [UInt8]?
  init(origin: LogOrigin) { self.origin = origin }

  mutating func feed(_ bytes: [UInt8]) -> [KernelLogRecord] {
    partial += bytes
    var out: [KernelLogRecord] = []
    while let nl = partial.firstIndex(of: 10) {
      let line = Array(partial[...nl])
      partial.removeFirst(nl + 1)
      if line.first == 0x20, pending != nil {
        pending! += line
        continue
      }
      if let p = pending, let r = KmsgRecord.parse(p, origin: origin) { out.append(r) }
      pending = line
    }
    // A record's dictionary lines arrive in the same read as the record: flush it.
    if partial.isEmpty, let p = pending, let r = KmsgRecord.parse(p, origin: origin) {
      out.append(r)
      pending = nil
    }
    return out
  }

  mutating func finish() -> [KernelLogRecord] {
    defer { pending = nil }
    if let p = pending, let r = KmsgRecord.parse(p, origin: origin) { return [r] }
    return []
  }
}
