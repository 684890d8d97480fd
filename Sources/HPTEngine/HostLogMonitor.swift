import Foundation
import KernelLog

/// The host's kernel log as every run keeps it, whichever backend: each record goes to
/// host.log as it arrives (so it survives a crash of the harness or the host), the detector
/// scans it, and a report is timed by the arrival of its first line, not of its end. What a
/// report means (expected, a host crash, a reason to stop) is the runner's to decide.
public final class HostLogMonitor: @unchecked Sendable {
  let recorder: RunRecorder
  let file: FileHandle?
  var scanner: StreamingCrashScanner
  var lineTimes = LineTimes()

  /// Creates (empties) outDir/host.log; throws when it cannot be opened for writing.
  public init(outDir: URL, origin: LogOrigin, recorder: RunRecorder) throws {
    let url = outDir.appendingPathComponent("host.log")
    FileManager.default.createFile(atPath: url.path, contents: nil)
    file = try FileHandle(forWritingTo: url)
    scanner = StreamingCrashScanner(origin: origin)
    self.recorder = recorder
  }

  /// Writes one record to host.log and returns the reports its line completes.
  public func consume(_ r: KernelLogRecord, atNs ns: UInt64) -> [CrashReport] {
    let line = r.dmesgLine
    recorder.append(Data((line + "\n").utf8), to: file, file: "host.log")
    lineTimes.add(offset: scanner.offset, ns: ns)
    return scanner.feed(line: line)
  }

  /// A report begun and not yet ended (a panic that stopped the machine has no end line).
  public var crashInProgress: Bool { scanner.crashInProgress }

  /// The reports still open at the end of the log; host.log is synced.
  public func finish() -> [CrashReport] {
    defer { try? file?.synchronize() }
    return scanner.finish()
  }

  /// When the first line of `report` arrived (nil when that line is no longer kept).
  public func arrivalNs(of report: CrashReport) -> UInt64? { lineTimes.ns(at: report.start) }
}

/// Arrival times of the last lines of a log, by byte offset (bounded: a report spans far fewer
/// lines than are kept).
public struct LineTimes {
  public init() {}
  private var offsets: [Int] = []
  private var times: [UInt64] = []
  static let kept = 16384

  public mutating func add(offset: Int, ns: UInt64) {
    if offsets.count >= Self.kept * 2 {
      offsets.removeFirst(Self.kept)
      times.removeFirst(Self.kept)
    }
    offsets.append(offset)
    times.append(ns)
  }

  /// The arrival time of the line holding `offset` (the latest line starting at or before it);
  /// nil when that line is no longer kept.
  public func ns(at offset: Int) -> UInt64? {
    var lo = 0
    var hi = offsets.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if offsets[mid] <= offset { lo = mid + 1 } else { hi = mid }
    }
    return lo == 0 ? nil : times[lo - 1]
  }
}
