import Foundation
import KVMHost
import KernelLog

/// The host's kernel log from /dev/kmsg, as the engine's log watcher reads it: records
/// written from the start of the run on. Lost records (the ring buffer overwrote them) are
/// counted in `lostRecords`.
public final class KmsgLogSource: KernelLogSource, @unchecked Sendable {
  private let reader: KmsgReader
  private let lock = NSLock()
  private var finished = false
  private var lost: UInt64 = 0

  /// Opens `path` positioned at its end. Throws KmsgError naming the path.
  public init(path: String = "/dev/kmsg", hostName: String) throws {
    reader = try KmsgReader(path: path, start: .end, origin: .host(hostName))
  }

  public func next(timeoutMs: Int) -> KernelLogRecord? {
    let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, timeoutMs)) * 1_000_000
    while true {
      let event: KmsgEvent?
      do {
        event = try lock.withLock { try reader.next() }
      } catch {
        lock.withLock { finished = true }
        return nil
      }
      switch event {
      case .record(let r)?: return r
      case .gap(let n)?:
        lock.withLock { lost += n }
        continue
      case nil:
        if DispatchTime.now().uptimeNanoseconds >= deadline { return nil }
        Thread.sleep(forTimeInterval: 0.002)
      }
    }
  }

  public var isFinished: Bool { lock.withLock { finished } }
  public var lostRecords: UInt64 { lock.withLock { lost } }
}
