// libFuzzer target: hostile input (invalid UTF-8, NULs, huge lines, truncated records) must
// never crash the detector, the streaming scanner or the readers.
// Built by scripts/fuzz-scan.sh together with Sources/KernelLog.

@_cdecl("LLVMFuzzerTestOneInput")
public func scanFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  let detector = CrashDetector()
  let whole = detector.scan(bytes)
  for report in whole {
    precondition(report.start >= 0 && report.start <= report.end && report.end <= bytes.count + 1)
  }
  // The same input streamed in uneven chunks gives the same reports.
  var scanner = StreamingCrashScanner(detector: detector)
  var streamed: [CrashReport] = []
  var offset = 0
  var chunk = 1
  while offset < bytes.count {
    let end = min(bytes.count, offset + chunk)
    streamed += bytes[offset..<end].withUnsafeBufferPointer { scanner.feed(chunk: $0) }
    offset = end
    chunk = chunk * 3 % 997 + 1
  }
  streamed += scanner.finish()
  precondition(streamed.map(\.title) == whole.map(\.title), "chunked scan differs")
  precondition(streamed.map(\.start) == whole.map(\.start), "chunked offsets differ")
  // Scanned in parallel chunks (cut anywhere, reads cut at 64 bytes), the same reports too.
  let parallel = ParallelScan(
    detector: detector, workers: 2, chunkSize: 1 + bytes.count / 5, readSize: 64)
  var (chunked, rest) = parallel.scan(bytes)
  guard var rest else { preconditionFailure("read failed") }
  chunked += rest.finish()
  precondition(chunked.map(\.title) == whole.map(\.title), "parallel scan differs")
  precondition(chunked.map(\.start) == whole.map(\.start), "parallel offsets differ")
  // Readers on the same bytes.
  _ = KmsgRecord.parse(bytes)
  var console = ConsoleReader()
  _ = console.feed(bytes) + console.finish()
  let text = String(decoding: bytes, as: UTF8.self)
  for line in text.split(separator: "\n").prefix(64) {
    _ = DmesgText.parse(line: String(line))
    _ = Journal.parseShort(line: String(line))
  }
  return 0
}
