/// What a report says about where it happened: parsed from its first lines on first access.
struct ReportMetadata: Sendable, Hashable {
  var cpu: Int?
  var pid: Int?
  var comm: String?
  var taint: String?
  var kernelVersion: String?
  var modules: [String] = []
}

/// A found report's bytes, shared by the copies of its `CrashReport`, immutable. The text and
/// metadata are made from them on each access (no cache, so no lock: reports cross threads,
/// and most are never asked for either).
final class ReportBody: Sendable {
  /// The report's lines joined by newlines, log prefixes removed.
  let text: [UInt8]
  /// How many leading lines may hold the CPU/Comm, Modules and Tainted lines (they come
  /// before the stack).
  let metadataLines: Int

  init(text: [UInt8], metadataLines: Int) {
    self.text = text
    self.metadataLines = metadataLines
  }

  var reportString: String { String(decoding: text, as: UTF8.self) }

  var metadata: ReportMetadata {
    text.withUnsafeBufferPointer { parseMetadata($0, lineLimit: metadataLines) }
  }
}

/// Frames of the first stack in a report's text, innermost first (at most 24).
func stackFrames(_ buf: UnsafeBufferPointer<UInt8>) -> [String] {
  var frames: [String] = []
  // The first stack keyword, each searched once over the whole text (not per line).
  var first: Int?
  for keyword in stackKeywordList {
    // Only where it would come before the earliest keyword found so far.
    let limit = min(buf.count, first.map { $0 + keyword.count } ?? buf.count)
    if let at = indexOf(UnsafeBufferPointer(rebasing: buf[0..<limit]), keyword, from: 0),
      at < (first ?? Int.max)
    {
      first = at
    }
  }
  guard let first, let base = buf.baseAddress else { return frames }
  // The lines after the keyword's line.
  guard let newline = memchrNewline(base + first, buf.count - first) else { return frames }
  var start = first + newline + 1
  while start <= buf.count, frames.count < 24 {
    let end = memchrNewline(base + start, buf.count - start).map { start + $0 } ?? buf.count
    let line = UnsafeBufferPointer(rebasing: buf[start..<end])
    let t = classifyTraceLine(line)
    if t.role == .frame, !t.questionable, let f = t.function(in: line) { frames.append(f) }
    start = end + 1
  }
  return frames
}
