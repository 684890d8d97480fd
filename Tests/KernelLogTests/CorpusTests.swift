import Foundation
import Testing

@testable import KernelLog

/// One test case file: "KEY: value" headers, a blank line, the log (and optionally a blank
/// line, "REPORT:" and the expected report, which is not part of the log).
struct CorpusCase: Sendable, CustomStringConvertible {
  var name: String
  var headers: [(String, String)]
  var log: [UInt8]

  var description: String { name }

  func values(_ key: String) -> [String] { headers.filter { $0.0 == key }.map(\.1) }
  func value(_ key: String) -> String? { values(key).first }

  init(name: String, contents: [UInt8]) {
    self.name = name
    var headers: [(String, String)] = []
    var pos = 0
    while pos < contents.count {
      var end = pos
      while end < contents.count, contents[end] != 0x0a { end += 1 }
      let line = String(decoding: contents[pos..<end], as: UTF8.self)
      pos = min(end + 1, contents.count)
      if line.isEmpty { break }
      if let colon = line.firstIndex(of: ":") {
        let key = String(line[..<colon])
        let value = line[line.index(after: colon)...].drop { $0 == " " }
        headers.append((key, String(value)))
      }
    }
    var log = Array(contents[pos...])
    // The expected report follows "\nREPORT:\n"; it is not console output.
    let marker = Array("\nREPORT:\n".utf8)
    if log.count >= marker.count {
      for i in 0...(log.count - marker.count)
      where log[i] == 0x0a && Array(log[i..<(i + marker.count)]) == marker {
        log = Array(log[..<(i + 1)])
        break
      }
    }
    self.headers = headers
    self.log = log
  }

  static func load(_ directory: URL) -> [CorpusCase] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else {
      return []
    }
    return names.sorted().compactMap { name in
      guard
        let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path)
      else {
        return nil
      }
      return CorpusCase(name: name, contents: [UInt8](data))
    }
  }
}

/// The shared corpus lives next to the repository: <repo root>/../shared/corpus.
enum CorpusLocation {
  static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent()
    .deletingLastPathComponent()
  static let syzkaller = repoRoot.deletingLastPathComponent().appendingPathComponent(
    "shared/corpus/syzkaller-linux")
  static var available: Bool { FileManager.default.fileExists(atPath: syzkaller.path) }
}

struct Agreement {
  var agree = 0
  var total = 0
  var rate: Double { total == 0 ? 1 : Double(agree) / Double(total) }
  mutating func count(_ ok: Bool) {
    total += 1
    if ok { agree += 1 }
  }
  var text: String { String(format: "%.1f%% (%d/%d)", rate * 100, agree, total) }
}

/// The frame a syzkaller title names: FRAME header, else the title's " in FUNC" tail.
func expectedFrame(_ c: CorpusCase) -> String? {
  if let frame = c.value("FRAME") { return frame }
  guard let title = c.value("TITLE"), let range = title.range(of: " in ", options: .backwards)
  else { return nil }
  var frame = String(title[range.upperBound...])
  if let slash = frame.firstIndex(of: "/") { frame = String(frame[..<slash]) }
  if frame == "corrupted" || frame.contains(" ") { return nil }
  return frame
}

@Suite struct CorpusTests {
  @Test(.enabled(if: CorpusLocation.available, "shared corpus not present (../shared/corpus)"))
  func syzkallerCorpusAgreement() throws {
    let cases = CorpusCase.load(CorpusLocation.syzkaller)
    #expect(cases.count > 400)
    let detector = CrashDetector()
    var crash = Agreement()
    var title = Agreement()
    var frame = Agreement()
    var type = Agreement()
    var corrupted = Agreement()
    var mismatches: [String] = []
    var worseThanGrep: [String] = []
    for c in cases {
      let reports = detector.scan(c.log)
      // An empty TITLE is a log without a crash (as syzkaller's report tests read it).
      let expected = c.value("TITLE").flatMap { $0.isEmpty ? nil : $0 }
      crash.count((expected != nil) == !reports.isEmpty)
      if expected != nil && reports.isEmpty && PowerCorpusTests.grepFinds(c.log) {
        worseThanGrep.append(c.name)
      }
      guard let expected else {
        if let r = reports.first {
          mismatches.append("\(c.name): expected no crash, got '\(r.title)'")
        }
        continue
      }
      let got = reports.first
      let titles = [expected] + c.values("ALT")
      let titleOK = got.map { titles.contains($0.title) } ?? false
      title.count(titleOK)
      if !titleOK {
        mismatches.append("\(c.name): title '\(got?.title ?? "-")' want '\(expected)'")
      }
      if let want = expectedFrame(c) {
        frame.count(got?.frame == want)
        if got?.frame != want {
          mismatches.append("\(c.name): frame '\(got?.frame ?? "-")' want '\(want)'")
        }
      }
      if let got { corrupted.count(got.corrupted == (c.value("CORRUPTED") == "Y")) }
      if let want = c.value("TYPE") {
        type.count(got?.type == want)
        if got != nil, got?.type != want {
          mismatches.append("\(c.name): type \(got!.type) want \(want)")
        }
      }
      // Invariant: re-scanning from the report's start finds the same title.
      if let got, got.start < c.log.count {
        let again = detector.scan(Array(c.log[got.start...])).first
        #expect(again?.title == got.title, "\(c.name): rescan from start")
      }
    }
    print("corpus: \(cases.count) cases")
    print("crash-or-not agreement: \(crash.text)")
    print("title agreement: \(title.text)")
    print("frame agreement: \(frame.text)")
    print("type agreement: \(type.text)")
    print("corrupted flag agreement: \(corrupted.text)")
    print("crashes grep sees and the detector misses: \(worseThanGrep.count) \(worseThanGrep)")
    if let path = ProcessInfo.processInfo.environment["KERNELLOG_MISMATCHES"] {
      try mismatches.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }
    // Thresholds from measured agreement; raise them as the detector improves.
    #expect(crash.rate >= 0.998)
    #expect(title.rate >= 0.954)
    #expect(frame.rate >= 0.939)
    #expect(type.rate >= 0.97)
    #expect(corrupted.rate >= 0.90)
    // Never worse than grep: every crash a plain grep sees, the detector reports.
    #expect(worseThanGrep.isEmpty)
  }
}
