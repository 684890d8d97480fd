import CKernelLog
import Testing

@testable import KernelLog

/// The scanner's multi-needle search skips positions (a window at every third one); these
/// tests compare it with a plain search at every alignment, near both ends and with needles of
/// four, five and six bytes (the lengths whose windows pass the needle's end).
@Suite struct NeedleSetTests {
  /// The first position where a needle accepted by `accept` starts, and the first such needle
  /// in list order: what `NeedleSet.first` must return.
  static func naive(
    _ text: [UInt8], _ list: [(bytes: [UInt8], id: Int)], from: Int, to: Int,
    _ accept: (Int) -> Bool
  ) -> (id: Int, position: Int)? {
    guard from < to else { return nil }
    for i in from..<to {
      for (bytes, id) in list where accept(id) && bytes.count >= 2 && i + bytes.count <= to {
        if Array(text[i..<(i + bytes.count)]) == bytes { return (id, i) }
      }
    }
    return nil
  }

  /// Expects `set.first` over [from, to) of `text` to find what `naive` finds; whether that
  /// is a needle.
  static func expectFirstAsNaive(
    _ set: NeedleSet, _ list: [(bytes: [UInt8], id: Int)], _ text: [UInt8], from: Int, to: Int,
    _ accept: (Int) -> Bool
  ) -> Bool {
    let want = naive(text, list, from: from, to: to, accept)
    let got = text.withUnsafeBufferPointer { set.first($0.baseAddress!, from, to, accept) }
    #expect(
      got?.id == want?.id && got?.position == want?.position,
      "\(String(decoding: text, as: UTF8.self).debugDescription) [\(from), \(to))")
    return want != nil
  }

  /// A small deterministic generator (no seeds from the clock: failures must repeat).
  struct Generator {
    var state: UInt64
    mutating func next(_ bound: Int) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int((state >> 33) % UInt64(bound))
    }
  }

  @Test func findsWhatAPlainSearchFinds() {
    let words = ["BUG:", "INFO:", "Oops: ", "WARNING:", "Call Trace", "Stack:", "UG:x", "BUGS"]
    let list = words.enumerated().map { (bytes: Array($0.element.utf8), id: $0.offset) }
    let set = NeedleSet(list)
    let alphabet = Array("BUGINFOops:WARNCal Trcek\n x".utf8)
    var g = Generator(state: 42)
    var found = 0
    for round in 0..<3000 {
      var text = (0..<(g.next(60) + 1)).map { _ in alphabet[g.next(alphabet.count)] }
      // Plant a needle (or a needle cut short) somewhere, often near an end.
      if round % 4 != 3 {
        var word = Array(words[g.next(words.count)].utf8)
        if round % 7 == 0 { word.removeLast() }
        let at = round % 3 == 0 ? max(0, text.count - word.count) : g.next(text.count)
        text.insert(contentsOf: word, at: min(at, text.count))
      }
      let from = g.next(min(text.count, 5))
      let to = text.count - g.next(min(text.count - from, 3) + 1)
      let accept: (Int) -> Bool = round % 5 == 0 ? { $0 % 2 == 0 } : { _ in true }
      if Self.expectFirstAsNaive(set, list, text, from: from, to: to, accept) { found += 1 }
    }
    // The test means something only if most rounds had a needle to find.
    #expect(found > 1200)
  }

  @Test func headerAtEveryAlignmentOfAQuietLine() {
    let detector = CrashDetector()
    for pad in 0..<12 {
      for tail in ["", "x", " trailing text"] {
        let line = Array((String(repeating: " ", count: pad) + "BUG: KASAN" + tail).utf8)
        let hit = line.withUnsafeBufferPointer {
          detector.nextHeaderBytes($0.baseAddress!, 0, $0.count)
        }
        #expect(hit?.position == pad, "pad \(pad) tail \(tail.debugDescription)")
      }
    }
  }

  @Test func keywordFlagsPerLine() {
    let detector = CrashDetector()
    func flags(_ text: String) -> UInt8 {
      let bytes = Array(text.utf8)
      return bytes.withUnsafeBufferPointer { detector.keywordFlags($0, 0, $0.count) }
    }
    #expect(flags("Call Trace:") == ReportKeyword.stack | ReportKeyword.startMarker)
    #expect(flags(" Call Trace") == ReportKeyword.stack)
    #expect(flags("Allocated by task 1:") == ReportKeyword.stack | ReportKeyword.terminator)
    #expect(flags(" ? do_syscall_64+0x1/0x2") == 0)
    #expect(flags("FAULT_INJECTION: forcing a failure.") == ReportKeyword.interleaved)
    #expect(flags("(stack is not available)") == ReportKeyword.noStack)
  }

  /// Ranges of 35 bytes and more go through Teddy's SIMD filter (on x86 with SSSE3 or AVX2):
  /// the detector's own needles planted in long lines of log-like text, found where a plain
  /// search finds them, including a needle ending at the range's last byte (the filter's
  /// last block overlaps the one before it).
  @Test func longRangesFindWhatAPlainSearchFinds() {
    let detector = CrashDetector()
    let list = detector.needleList
    let set = NeedleSet(list)
    let filler = Array(
      "[  12.345678] CPU: 3 PID: 1 Comm: swapper Not tainted 6.1.0 Call BUG WARN\n".utf8)
    var g = Generator(state: 7)
    var found = 0
    for round in 0..<2000 {
      var text = (0..<(35 + g.next(300))).map { _ in filler[g.next(filler.count)] }
      if round % 5 != 4 {
        let word = list[g.next(list.count)].bytes
        let at = round % 3 == 0 ? text.count : g.next(text.count)
        text.insert(contentsOf: word, at: at)
      }
      let from = g.next(40)
      let to = text.count - (round % 3 == 0 ? 0 : g.next(5))
      if Self.expectFirstAsNaive(set, list, text, from: from, to: to, { _ in true }) {
        found += 1
      }
    }
    #expect(found > 1300)
  }

  /// Teddy's three forms (AVX2, SSSE3, scalar: each the CPU has) give the candidates of its
  /// definition: every position whose four bytes pass some bucket's nibble masks.
  @Test func teddyFormsAgreeWithTheDefinition() {
    let masks = teddyMasks(CrashDetector().needleList.map(\.bytes))
    let alphabet = Array("BUGWARNINFOCall Trace:Kkernel panic\n 0123456789abcdef[]".utf8)
    var g = Generator(state: 99)
    for _ in 0..<500 {
      let text = (0..<g.next(200)).map { _ in alphabet[g.next(alphabet.count)] }
      let from = g.next(10)
      let to = max(from, text.count - g.next(4))
      var want: [Int] = []
      if to - from >= 4 {
        for p in from...(to - 4) {
          var bits: UInt8 = 0xff
          for j in 0..<4 {
            let c = Int(text[p + j])
            bits &= masks[32 * j + c & 15] & masks[32 * j + 16 + c >> 4]
          }
          if bits != 0 { want.append(p) }
        }
      }
      for level in 0...Int(ckernellog_teddy_level()) {
        var got: [Int] = []
        text.withUnsafeBufferPointer { buf in
          masks.withUnsafeBufferPointer { m in
            var i = from
            var hits: UInt32 = 0
            while true {
              let block = ckernellog_teddy_next_using(
                Int32(level), buf.baseAddress!, i, to, m.baseAddress!, &hits)
              guard block >= 0 else { break }
              for k in 0..<32 where hits & (1 << UInt32(k)) != 0 { got.append(block + k) }
              i = block + 32
            }
          }
        }
        #expect(got == want, "level \(level), [\(from), \(to)) of \(text.count)")
      }
    }
  }

  /// Buckets are chosen from the needles alone: every prefix is in exactly one of the eight.
  @Test func teddyBucketsHoldEveryPrefixOnce() {
    let prefixes = CrashDetector().needleList.map { Array($0.bytes.prefix(4)) }
    let buckets = teddyBuckets(prefixes)
    #expect(buckets.count == 8)
    let all = buckets.flatMap { $0 }
    #expect(all.count == Set(prefixes).count && Set(all) == Set(prefixes))
  }
}
