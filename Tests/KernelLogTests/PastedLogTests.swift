import Foundation
import Testing

@testable import KernelLog

/// Logs pasted from HTML mail carry no-break spaces (U+00A0) in their timestamps: the prefix
/// is still a prefix, so the report reads the same as the clean log's. Case 001 of the
/// power-linux corpus is such a post.
@Suite struct PastedLogTests {
  @Test(.enabled(if: PowerCorpusTests.available, "shared power-linux corpus not present"))
  func noBreakSpacesInTimestampsAreBlanks() throws {
    let path = PowerCorpusTests.directory.appendingPathComponent("001.txt").path
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let pasted = String(text[text.range(of: "\n\n")!.upperBound...])
    #expect(pasted.contains("\u{a0}"))
    let clean = pasted.replacingOccurrences(of: "\u{a0}", with: " ")
    let a = CrashDetector().scan(Array(clean.utf8)).first
    let b = CrashDetector().scan(Array(pasted.utf8)).first
    #expect(a?.frame == "add_system_ram_resources")
    #expect(b?.frame == a?.frame, "pasted: \(b?.title ?? "-")")
  }
}
