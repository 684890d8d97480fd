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
/// formatted reports; a worker's buffer is one chunk.
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
          var buffers = Buffers(chunk: scan.chunkSize + 1, readSize: scan.readSize)
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
    var buffers = Buffers(chunk: 0, readSize: readSize)
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

  /// A thread's read buffers: a chunk, and the pieces read past it.
  struct Buffers {
    let chunk: UnsafeMutableBufferPointer<UInt8>
    let small: UnsafeMutableBufferPointer<UInt8>
    let readSize: Int
    var large: UnsafeMutableBufferPointer<UInt8>?

    init(chunk: Int, readSize: Int) {
      self.chunk = .allocate(capacity: chunk)
      small = .allocate(capacity: min(readSize, 1 << 16))
      self.readSize = readSize
    }

    func deallocate() {
      chunk.deallocate()
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
    let from = max(lo - 1, 0)
    var result = ChunkResult<Item>()
    let buffer = UnsafeMutableBufferPointer(rebasing: buffers.chunk[0..<(hi - from)])
    let n = read(from, buffer)
    if n < 0 {
      result.error = Int32(-n)
      return result
    }
    let got = from + n
    result.short = got < hi
    var start = 0
    if index > 0 {
      // The first line starting at or after `lo`: after a newline at lo - 1 or later.
      guard let newline = memchrNewline(UnsafePointer(buffer.baseAddress!), n),
        from + newline + 1 < got
      else { return result }
      start = from + newline + 1
    }
    var scanner = StreamingCrashScanner(detector: detector, origin: origin, offset: start)
    var items: [Item] = []
    // The lines ending in the chunk, cut at multiples of `readSize` as read from the start;
    // the line going on past the chunk is read with what follows it.
    var feedEnd = n
    if !result.short, hi < size {
      let begin = start - from
      feedEnd =
        lastNewline(UnsafePointer(buffer.baseAddress! + begin), n - begin).map {
          begin + $0 + 1
        } ?? begin
    }
    var p = start - from
    while p < feedEnd {
      let cut = min(feedEnd, p + readSize - (from + p) % readSize)
      for report in scanner.feed(chunk: UnsafeBufferPointer(rebasing: buffer[p..<cut])) {
        items.append(transform(report))
      }
      p = cut
    }
    var end = from + feedEnd
    if end < hi {
      let read = forEachLine(from: end, to: size, read: read, buffers: &buffers) { part in
        for report in scanner.feed(chunk: part) { items.append(transform(report)) }
        return part.last != 0x0a
      }
      if let error = read.error {
        result.error = error
        return result
      }
      end = read.at
      result.short = read.short
    }
    result.start = start
    result.end = end
    result.items = items
    result.scanner = scanner
    return result
  }

  /// Reads the input from `from` up to `end`, passing each line to `body` (a line crossing a
  /// multiple of `readSize`, in its parts on either side), until `body` returns false. Returns
  /// where it stopped, a read's errno, and whether the input ended before `end`.
  private func forEachLine(
    from: Int, to end: Int, read: Reader, buffers: inout Buffers,
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
      let usable = m < want || at + m == blockEnd ? m : last! + 1
      var p = 0
      while p < usable {
        let lineEnd =
          memchrNewline(UnsafePointer(buffer.baseAddress! + p), usable - p).map { p + $0 + 1 }
          ?? usable
        let more = body(UnsafeBufferPointer(rebasing: buffer[p..<lineEnd]))
        p = lineEnd
        if !more { return (at + p, nil, false) }
      }
      at += usable
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
    let read = forEachLine(from: result.start, to: result.end, read: read, buffers: &buffers) {
      line in
      for report in truth.feed(chunk: line) { emit(transform(report)) }
      skipped += fresh.feed(chunk: line).count
      agreed = truth.sameState(as: fresh)
      return !agreed
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
