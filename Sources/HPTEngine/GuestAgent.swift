import Foundation
import KVMHost
import Synchronization

/// One line of the guest agent's protocol (Guests/agent/PROTOCOL.md): "@hpth VERB ARGS *XX",
/// XX the XOR of every byte before " *XX". Lines without the prefix are the guest's own console
/// output (kernel messages); lines with a wrong checksum were garbled by an interleaved printk.
public struct AgentLine: Equatable, Sendable {
  public var verb: String
  public var args: [String]

  public static let prefix = "@hpth "

  /// nil when the line is not an intact agent line.
  public static func parse(_ raw: String) -> AgentLine? {
    var line = Substring(raw)
    while let c = line.last, c == "\r" || c == " " || c == "\n" { line = line.dropLast() }
    guard let start = line.range(of: prefix) else { return nil }
    line = line[start.lowerBound...]
    let bytes = Array(line.utf8)
    guard bytes.count >= prefix.utf8.count + 4, bytes[bytes.count - 4] == UInt8(ascii: " "),
      bytes[bytes.count - 3] == UInt8(ascii: "*"),
      let sum = UInt8(String(decoding: bytes[(bytes.count - 2)...], as: UTF8.self), radix: 16)
    else { return nil }
    var x: UInt8 = 0
    for b in bytes[..<(bytes.count - 4)] { x ^= b }
    guard x == sum else { return nil }
    let body = String(decoding: bytes[prefix.utf8.count..<(bytes.count - 4)], as: UTF8.self)
    let words = body.split(separator: " ").map(String.init)
    guard let verb = words.first else { return nil }
    return AgentLine(verb: verb, args: Array(words.dropFirst()))
  }

  /// A command for the agent, with its checksum.
  public static func command(_ text: String) -> String {
    let line = prefix + text
    var x: UInt8 = 0
    for b in line.utf8 { x ^= b }
    let hex = String(x, radix: 16)
    return line + " *" + (hex.count == 1 ? "0" + hex : hex) + "\n"
  }

  public func int(_ i: Int) -> Int? { i < args.count ? Int(args[i]) : nil }
}

/// What a `resized` line reports: one write to the guest's hpt_order file.
public struct GuestResize: Equatable, Sendable {
  public var order: Int
  /// 0, or the errno the write failed with.
  public var errno: Int32
  public var totalMs: Int
  /// From the kernel's "HPT resize to shift N complete (P ms / C ms)"; -1 when not seen.
  public var prepareMs: Int
  public var commitMs: Int

  public init?(_ l: AgentLine) {
    guard l.verb == "resized", let o = l.int(0), let e = l.int(1), let t = l.int(2),
      let p = l.int(3), let c = l.int(4)
    else { return nil }
    order = o
    errno = Int32(e)
    totalMs = t
    prepareMs = p
    commitMs = c
  }
}

/// Real threads and the monotonic clock: the executor of every backend but the simulator.
public final class ThreadExecutor: AgentExecutor, @unchecked Sendable {
  private let lock = NSLock()
  private var stop = false
  private let start = DispatchTime.now().uptimeNanoseconds

  public init() {}

  /// Once a stop is requested, agents get this long to return; one blocked in a call to a host
  /// that died (a libvirt RPC, an ssh command) is left behind rather than hanging the run.
  public var stopGraceS = 60.0
  /// Agents still running this long after the stop are blocked on the host (a vCPU whose
  /// KVM_RUN died in a host oops never answers): `onStalled` runs once then, to cut the
  /// channel they wait on, so a run that has its answer ends in seconds, not in `stopGraceS`.
  /// A vCPU of a live host returns from KVM_RUN at its payload's next report: seconds in the
  /// emulated lab under load; after a host crash (`hostCrashed`) none will.
  public var stalledAfterS = 15.0
  public var stalledAfterCrashS = 1.0
  public var onStalled: (@Sendable () -> Void)?
  private var crashed = false
  public func hostCrashed() { lock.locked { crashed = true } }
  /// The agents that had not returned when `run` gave up waiting for them.
  public private(set) var abandoned: [String] = []

  public func run(_ agents: [Agent]) {
    let group = DispatchGroup()
    let running = Mutex(Set<String>())
    for (i, a) in agents.enumerated() {
      group.enter()
      let key = "\(a.name)#\(i)"
      running.withLock { _ = $0.insert(key) }
      let t = Thread {
        a.body()
        running.withLock { _ = $0.remove(key) }
        group.leave()
      }
      t.name = a.name
      t.start()
    }
    var stopSeen: DispatchTime?
    var stalledCalled = false
    while group.wait(timeout: .now() + 0.2) == .timedOut {
      guard stopRequested else { continue }
      let since = stopSeen ?? .now()
      stopSeen = since
      let waitedS = Double(DispatchTime.now().uptimeNanoseconds - since.uptimeNanoseconds) / 1e9
      let stallS = lock.locked { crashed } ? stalledAfterCrashS : stalledAfterS
      if waitedS > stallS && !stalledCalled, let onStalled {
        stalledCalled = true
        onStalled()
      }
      if waitedS > stopGraceS {
        let left = running.withLock { $0.map { String($0.split(separator: "#")[0]) }.sorted() }
        lock.locked { abandoned = left }
        return
      }
    }
  }

  public var nowNs: UInt64 { DispatchTime.now().uptimeNanoseconds - start }

  public func sleep(ms: Int) {
    // Sleep in slices so a stop request is seen promptly.
    var left = ms
    while left > 0 && !stopRequested {
      let slice = min(left, 50)
      Thread.sleep(forTimeInterval: Double(slice) / 1000)
      left -= slice
    }
  }

  public func requestStop() { lock.locked { stop = true } }
  public var stopRequested: Bool { lock.locked { stop } }
}
