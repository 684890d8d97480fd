import Dispatch

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// A log of known size scanned in chunks on several threads, with the reports of one
/// streaming scan from its start, in the same order.
///
/// The log is cut at the line starts nearest after multiples of `chunkSize`. Each chunk is
/// scanned on a worker thread by its own `StreamingCrashScanner`, started idle at the chunk's
/// first line. A scanner started mid-log may see the log otherwise than the one scan from the
/// start: it did not see a report in progress, the lines since the last report (a panic line
/// after a report's end belongs to it) or a header line a console cut. So the chunks are
/// joined in order on the caller's thread, carrying the one scan's scanner (`truth`) to each
/// chunk's start: it is the previous chunk's final scanner, once that chunk is joined. Where
/// `truth` and a fresh scanner are in the same state at a chunk's start (no report in
/// progress, none just ended, no cut header: most chunk starts), the chunk's reports are the
/// one scan's. Elsewhere both are fed the chunk's lines one by one until their states are
/// equal: `truth`'s reports until that line, the chunk's reports after it. When they never
/// agree within the chunk, `truth` scans the whole chunk itself. Every report is the one
/// scan's report (the state decides all later output), whatever the chunk size or the
/// number of threads.
///
/// Memory: at most `workers + 2` chunks are scanned or waiting to be joined, each holding its
/// formatted reports; a worker reads its chunk in pieces of 128 KiB (a line crossing a
/// multiple of `readSize` whole up to it).
public struct ParallelScan: Sendable {
  public var detector: CrashDetector
  public var origin: LogOrigin
  public var workers: Int
  /// The nominal chunk size in bytes (chunks end at line starts).
  public var chunkSize: Int
  /// The scanners are fed pieces cut at multiples of this, as `scan` reads a file (1 MiB at a
  /// time): a line longer than `StreamingCrashScanner.maxLineBytes` crossing a cut is matched
  /// on its first bytes, as in those reads.
  public var readSize: Int

  /// Reads `buffer.count` bytes at `offset` into `buffer`: the count read (fewer only at the
  /// end of the input), or -errno.
  public typealias Reader =
    @Sendable (_ offset: Int, _ buffer: UnsafeMutableBufferPointer<UInt8>)
    -> Int

  public enum Outcome: Sendable {
    /// The scanner has been fed the input up to its `consumed` (all of it, unless the input
    /// was shorter than said); it is not finished (more input may follow).
    case scanned(StreamingCrashScanner)
    /// A read failed with this errno; the reports before the failed chunk were emitted.
    case failed(Int32)
  }

  public init(
    detector: CrashDetector = CrashDetector(), origin: LogOrigin = .host("localhost"),
    workers: Int, chunkSize: Int = 1 << 20, readSize: Int = 1 << 20
  ) {
    self.detector = detector
    self.origin = origin
    self.workers = max(1, workers)
    self.chunkSize = max(1, chunkSize)
    self.readSize = max(1, readSize)
  }

  /// A log already in memory, scanned in chunks: its reports and the one scan's scanner after
  /// the last byte (nil when a read failed), for tests and the fuzz target.
  public func scan(_ log: [UInt8]) -> (reports: [CrashReport], rest: StreamingCrashScanner?) {
    var reports: [CrashReport] = []
    let outcome = run(
      size: log.count,
      read: { offset, buffer in
        let n = min(buffer.count, log.count - offset)
        for i in 0..<n { buffer[i] = log[offset + i] }
        return n
      }, transform: { $0 }, emit: { reports.append($0) })
    guard case .scanned(let rest) = outcome else { return (reports, nil) }
    return (reports, rest)
  }

  /// Scans the first `size` bytes that `read` gives. `transform` runs on the worker threads
  /// (and the caller's), `emit` on the caller's thread, once per report, in the one scan's order.
  public func run<Item: Sendable>(
    size: Int, read: @escaping Reader, transform: @escaping @Sendable (CrashReport) -> Item,
    emit: (Item) -> Void
  ) -> Outcome {
    let count = (size + chunkSize - 1) / chunkSize
    let pipeline = Pipeline<Item>(window: workers + 2)
    var threads: [pthread_t] = []
    for _ in 0..<min(workers, count) {
      let scan = self
      threads.append(
        startThread {
          var buffers = Buffers(readSize: scan.readSize)
          defer { buffers.deallocate() }
          while let index = pipeline.claim(count: count) {
            var result = ChunkResult<Item>()
            if !pipeline.isCancelled {
              result = scan.scanChunk(
                index, size: size, read: read, transform: transform, buffers: &buffers)
            }
            pipeline.deliver(index, result)
          }
        })
    }
    defer { for thread in threads { pthread_join(thread, nil) } }
    var buffers = Buffers(readSize: readSize)
    defer { buffers.deallocate() }
    var truth = StreamingCrashScanner(detector: detector, origin: origin)
    var failure: Int32?
    for index in 0..<count {
      let result = pipeline.take(index)
      guard failure == nil, !pipeline.isCancelled else { continue }
      if result.error != 0 {
        failure = result.error
        pipeline.cancel()
        continue
      }
      if let scanned = result.scanner {
        if let error = join(
          &truth, result, scanned, read: read, transform: transform, emit: emit,
          buffers: &buffers)
        {
          failure = error
          pipeline.cancel()
          continue
        }
      }
      // The input ended early: the caller reads on from `truth.consumed`.
      if result.short || (result.scanner != nil && truth.consumed != result.end) {
        pipeline.cancel()
      }
    }
    if let failure { return .failed(failure) }
    return .scanned(truth)
  }

  /// What a worker found in one chunk.
  struct ChunkResult<Item: Sendable>: Sendable {
    /// The chunk's first line start and the end of its last line.
    var start = 0
    var end = 0
    var items: [Item] = []
    /// The chunk's scanner after its last line; nil when no line starts in the chunk.
    var scanner: StreamingCrashScanner?
    var error: Int32 = 0
    /// The input ended before the chunk's end (a file truncated while scanned).
    var short = false
  }

  /// A thread's read buffers: pieces small enough to stay in the processor's cache while
  /// scanned, and a whole read for a long line.
  struct Buffers {
    static let pieceSize = 128 << 10
    let small: UnsafeMutableBufferPointer<UInt8>
    let readSize: Int
    var large: UnsafeMutableBufferPointer<UInt8>?

    init(readSize: Int) {
      small = .allocate(capacity: min(readSize, Self.pieceSize))
      self.readSize = readSize
    }

    func deallocate() {
      small.deallocate()
      large?.deallocate()
    }
  }

  /// Chunk `index`: the lines starting in it, the last one read to its end.
  func scanChunk<Item: Sendable>(
    _ index: Int, size: Int, read: Reader, transform: (CrashReport) -> Item,
    buffers: inout Buffers
  ) -> ChunkResult<Item> {
    let lo = index * chunkSize
    let hi = min(size, lo + chunkSize)
    var result = ChunkResult<Item>()
    var start = 0
    if index > 0 {
      // The first line starting at or after `lo`: after the first newline at lo - 1 or later.
      var at = lo - 1
      var newline: Int?
      let probe = UnsafeMutableBufferPointer(
        rebasing: buffers.small[0..<min(4096, buffers.small.count)])
      while at < hi, newline == nil {
        let want = min(probe.count, hi - at)
        let m = read(at, UnsafeMutableBufferPointer(rebasing: probe[0..<want]))
        if m < 0 {
          result.error = Int32(-m)
          return result
        }
        newline = memchrNewline(UnsafePointer(probe.baseAddress!), m).map { at + $0 }
        if newline == nil, m < want {
          result.short = true
          return result
        }
        at += m
      }
      guard let newline, newline + 1 < hi else { return result }
      start = newline + 1
    }
    var scanner = StreamingCrashScanner(detector: detector, origin: origin, offset: start)
    var items: [Item] = []
    let read = forEachPart(
      from: start, to: size, endingAfter: hi, read: read, buffers: &buffers
    ) { part in
      for report in scanner.feed(chunk: part) { items.append(transform(report)) }
      return true
    }
    if let error = read.error {
      result.error = error
      return result
    }
    result.short = read.short
    result.start = start
    result.end = read.at
    result.items = items
    result.scanner = scanner
    return result
  }

  /// Reads the input from the line start `from` towards `end` and passes it to `body` in
  /// parts of whole lines (a line crossing a multiple of `readSize` in its two parts, as reads
  /// from the start cut it), until `body` returns false or the line holding byte `limit - 1`
  /// has been passed. Returns where it stopped, a read's errno, and whether the input ended
  /// before `end`.
  private func forEachPart(
    from: Int, to end: Int, endingAfter limit: Int, read: Reader, buffers: inout Buffers,
    _ body: (UnsafeBufferPointer<UInt8>) -> Bool
  ) -> (at: Int, error: Int32?, short: Bool) {
    var at = from
    while at < end {
      let blockEnd = min(end, at - at % readSize + readSize)
      var buffer = buffers.small
      var want = min(buffer.count, blockEnd - at)
      var m = read(at, UnsafeMutableBufferPointer(rebasing: buffer[0..<want]))
      if m < 0 { return (at, Int32(-m), false) }
      var last = lastNewline(UnsafePointer(buffer.baseAddress!), m)
      if last == nil, m == want, at + m < blockEnd {
        // A long line: the rest of the block at once, so that it is cut where a read would.
        if buffers.large == nil { buffers.large = .allocate(capacity: readSize) }
        buffer = buffers.large!
        want = blockEnd - at
        m = read(at, UnsafeMutableBufferPointer(rebasing: buffer[0..<want]))
        if m < 0 { return (at, Int32(-m), false) }
        last = lastNewline(UnsafePointer(buffer.baseAddress!), m)
      }
      var usable = m < want || at + m == blockEnd ? m : last! + 1
      var done = false
      if at + usable >= limit {
        // Up to the first newline at limit - 1 or later.
        let from = max(0, limit - 1 - at)
        if from < usable,
          let newline = memchrNewline(UnsafePointer(buffer.baseAddress! + from), usable - from)
        {
          usable = from + newline + 1
          done = true
        }
      }
      let more = body(UnsafeBufferPointer(rebasing: buffer[0..<usable]))
      at += usable
      if done || !more { return (at, nil, false) }
      if m < want { return (at, nil, true) }
    }
    return (at, nil, false)
  }

  /// Joins a chunk to the one scan, which `truth` has carried to its start (see the type's
  /// comment). Returns an errno when a read failed.
  private func join<Item: Sendable>(
    _ truth: inout StreamingCrashScanner, _ result: ChunkResult<Item>,
    _ scanned: StreamingCrashScanner, read: Reader, transform: (CrashReport) -> Item,
    emit: (Item) -> Void, buffers: inout Buffers
  ) -> Int32? {
    var fresh = StreamingCrashScanner(detector: detector, origin: origin, offset: result.start)
    precondition(truth.consumed == result.start, "chunks out of step")
    if truth.sameState(as: fresh) {
      for item in result.items { emit(item) }
      truth = scanned
      return nil
    }
    // Line by line until they agree.
    var skipped = 0
    var agreed = false
    let read = forEachPart(
      from: result.start, to: result.end, endingAfter: result.end, read: read, buffers: &buffers
    ) { part in
      var p = 0
      while p < part.count {
        let lineEnd =
          memchrNewline(part.baseAddress! + p, part.count - p).map { p + $0 + 1 } ?? part.count
        let line = UnsafeBufferPointer(rebasing: part[p..<lineEnd])
        for report in truth.feed(chunk: line) { emit(transform(report)) }
        skipped += fresh.feed(chunk: line).count
        p = lineEnd
        if truth.sameState(as: fresh) {
          agreed = true
          return false
        }
      }
      return true
    }
    if let error = read.error { return error }
    if agreed {
      for item in result.items.dropFirst(skipped) { emit(item) }
      truth = scanned
    }
    return nil
  }
}

/// The chunks between the workers and the joining thread: at most `window` claimed and not
/// yet taken.
private final class Pipeline<Item: Sendable>: @unchecked Sendable {
  let window: Int
  let slots: UnsafeMutablePointer<ParallelScan.ChunkResult<Item>?>
  let ready: [DispatchSemaphore]
  let room: DispatchSemaphore
  let lock = DispatchSemaphore(value: 1)
  var next = 0
  var cancelled = false

  init(window: Int) {
    self.window = window
    slots = .allocate(capacity: window)
    slots.initialize(repeating: nil, count: window)
    ready = (0..<window).map { _ in DispatchSemaphore(value: 0) }
    room = DispatchSemaphore(value: window)
  }

  deinit {
    slots.deinitialize(count: window)
    slots.deallocate()
  }

  /// The next chunk to scan, once there is room for its result; nil when none is left.
  func claim(count: Int) -> Int? {
    room.wait()
    lock.wait()
    let index = next
    if index < count { next += 1 }
    lock.signal()
    if index >= count {
      room.signal()
      return nil
    }
    return index
  }

  func deliver(_ index: Int, _ result: ParallelScan.ChunkResult<Item>) {
    slots[index % window] = result
    ready[index % window].signal()
  }

  func take(_ index: Int) -> ParallelScan.ChunkResult<Item> {
    ready[index % window].wait()
    let result = slots[index % window].take()!
    room.signal()
    return result
  }

  var isCancelled: Bool {
    lock.wait()
    defer { lock.signal() }
    return cancelled
  }

  func cancel() {
    lock.wait()
    cancelled = true
    lock.signal()
  }
}

private final class ThreadBody {
  let body: () -> Void
  init(_ body: @escaping () -> Void) { self.body = body }
}

/// A POSIX thread running `body` (joined by the caller).
private func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
  let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
  #if canImport(Darwin)
    var thread: pthread_t?
  #else
    var thread = pthread_t()
  #endif
  let status = pthread_create(
    &thread, nil,
    { raw in
      #if canImport(Darwin)
        let body = Unmanaged<ThreadBody>.fromOpaque(raw).takeRetainedValue()
      #else
        let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
      #endif
      body.body()
      return nil
    }, box)
  precondition(status == 0, "pthread_create: \(status)")
  #if canImport(Darwin)
    return thread!
  #else
    return thread
  #endif
}
