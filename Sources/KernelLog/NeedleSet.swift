import CKernelLog

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Many byte strings searched at once, the way the scanner looks for crash headers and report
/// keywords in every byte of a log.
///
/// On x86 (SSSE3 or AVX2) a range of 35 bytes or more goes through Teddy (CKernelLog): the
/// needles' first four bytes in eight buckets, 32 positions tested per step with byte
/// shuffles; each candidate is verified against the needles sharing its first two bytes.
/// Elsewhere, and for shorter ranges (a report line's keywords), a four-byte window is hashed
/// at every third position into a bit set holding each needle's windows at its offsets 0, 1
/// and 2 (so every occurrence has one of its windows checked); two windows come from one
/// eight-byte load and share one branch. A hit is verified the same way at the four starts it
/// covers. Needles under four bytes fall back to a bit set over first byte pairs.
struct NeedleSet: Sendable {
  /// Needle `i` is `store[start..<start+count]`; `id` is the caller's (a header's pattern, a
  /// keyword's flag).
  private let store: [UInt8]
  private let needles: [(start: Int32, count: Int32, id: Int32)]
  /// Needles by first byte pair, in the order given: `pairRange[pair]` indexes `byPair`.
  private let byPair: [Int32]
  private let pairStart: [Int32]
  /// Bit set over the first byte pairs (the fallback filter).
  private let pairBits: [UInt64]
  /// Bit set over hashed four-byte windows (`quadHash`).
  private let quadBits: [UInt64]
  /// Some needle is shorter than four bytes: only the pair filter applies.
  private let short: Bool
  /// Teddy's nibble masks over the needles' first four bytes (`teddyMasks`), when the CPU
  /// has the shuffle and no needle is shorter: then it is the filter.
  private let teddy: [UInt8]?

  /// `list` in priority order: where two needles start at one position, the first wins.
  init(_ list: [(bytes: [UInt8], id: Int)]) {
    var store: [UInt8] = []
    var needles: [(start: Int32, count: Int32, id: Int32)] = []
    var pairOf: [Int] = []
    var pairBits = [UInt64](repeating: 0, count: 1024)
    var quadBits = [UInt64](repeating: 0, count: 2048)
    var short = false
    func add(_ window: [UInt8]) {
      let x = window.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
      let h = quadHash(x)
      quadBits[h >> 6] |= 1 << UInt64(h & 63)
    }
    for (bytes, id) in list where bytes.count >= 2 {
      let pair = Int(bytes[0]) << 8 | Int(bytes[1])
      pairOf.append(pair)
      needles.append((Int32(store.count), Int32(bytes.count), Int32(id)))
      store += bytes
      pairBits[pair >> 6] |= 1 << UInt64(pair & 63)
      guard bytes.count >= 4 else {
        short = true
        continue
      }
      // Windows are checked at every third position, so one of the needle's offsets 0, 1
      // and 2 is checked: its windows there go in. One that would end past the needle takes
      // every possible last byte; a four-byte needle's third uses the window just before it
      // instead (one unknown byte, not two).
      let count = bytes.count
      add(Array(bytes[0..<4]))
      for offset in 1...2 {
        if count >= offset + 4 {
          add(Array(bytes[offset..<(offset + 4)]))
        } else if count == offset + 3 {
          for last in 0...255 { add(Array(bytes[offset..<count]) + [UInt8(last)]) }
        } else {
          for first in 0...255 { add([UInt8(first)] + Array(bytes[0..<3])) }
        }
      }
    }
    let (pairStart, byPair) = groupByKey(pairOf, keys: 65536)
    self.store = store
    self.needles = needles
    self.byPair = byPair
    self.pairStart = pairStart
    self.pairBits = pairBits
    self.quadBits = quadBits
    self.short = short
    self.teddy =
      ckernellog_teddy_level() > 0 && !short
      ? teddyMasks(list.filter { $0.bytes.count >= 2 }.map(\.bytes)) : nil
  }

  /// The first position in [from, to) where a needle accepted by `accept` (given its id)
  /// occurs in full, with that needle's id.
  @inline(__always)
  func first(
    _ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int, _ accept: (Int) -> Bool
  ) -> (id: Int, position: Int)? {
    guard to - from >= 2 else { return nil }
    return store.withUnsafeBufferPointer { s in
      needles.withUnsafeBufferPointer { n in
        byPair.withUnsafeBufferPointer { b in
          pairStart.withUnsafeBufferPointer { ps in
            let tables = Tables(store: s, needles: n, byPair: b, pairStart: ps)
            // Teddy's blocks are 35 bytes: a shorter range (a report line's keyword search)
            // is hashed.
            if let teddy, to &- from >= 35 {
              return teddy.withUnsafeBufferPointer {
                firstByTeddy(base, from, to, $0.baseAddress!, tables, accept)
              }
            }
            if short {
              return pairBits.withUnsafeBufferPointer {
                firstByPair(base, from, to, $0.baseAddress!, tables, accept)
              }
            }
            return quadBits.withUnsafeBufferPointer {
              firstByQuad(base, from, to, $0.baseAddress!, tables, accept)
            }
          }
        }
      }
    }
  }

  /// Calls `body` with the id of every needle that occurs at `i` (and ends by `to`).
  func all(at i: Int, _ base: UnsafePointer<UInt8>, _ to: Int, _ body: (Int) -> Void) {
    guard i + 1 < to else { return }
    store.withUnsafeBufferPointer { s in
      needles.withUnsafeBufferPointer { n in
        byPair.withUnsafeBufferPointer { b in
          pairStart.withUnsafeBufferPointer { ps in
            let pair = Int(base[i]) << 8 | Int(base[i + 1])
            for k in Int(ps[pair])..<Int(ps[pair + 1]) {
              let needle = n[Int(b[k])]
              let count = Int(needle.count)
              if i + count <= to,
                memcmp(base + i, s.baseAddress! + Int(needle.start), count) == 0
              {
                body(Int(needle.id))
              }
            }
          }
        }
      }
    }
  }

  private struct Tables {
    let store: UnsafeBufferPointer<UInt8>
    let needles: UnsafeBufferPointer<(start: Int32, count: Int32, id: Int32)>
    let byPair: UnsafeBufferPointer<Int32>
    let pairStart: UnsafeBufferPointer<Int32>

    /// The first accepted needle that starts at `i` and ends by `to`.
    @inline(__always)
    func at(_ base: UnsafePointer<UInt8>, _ i: Int, _ to: Int, _ accept: (Int) -> Bool) -> Int? {
      guard i &+ 1 < to else { return nil }
      let pair = Int(base[i]) &<< 8 | Int(base[i &+ 1])
      var k = Int(pairStart[pair])
      let end = Int(pairStart[pair &+ 1])
      while k < end {
        let needle = needles[Int(byPair[k])]
        let count = Int(needle.count)
        if i &+ count <= to, accept(Int(needle.id)),
          memcmp(base + i, store.baseAddress! + Int(needle.start), count) == 0
        {
          return Int(needle.id)
        }
        k &+= 1
      }
      return nil
    }
  }

  /// Teddy's candidates in order, each verified as the quad filter's hits are.
  @inline(__always)
  private func firstByTeddy(
    _ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int, _ masks: UnsafePointer<UInt8>,
    _ tables: Tables, _ accept: (Int) -> Bool
  ) -> (id: Int, position: Int)? {
    var i = from
    var hits: UInt32 = 0
    while true {
      let block = ckernellog_teddy_next(base, i, to, masks, &hits)
      guard block >= 0 else { return nil }
      while hits != 0 {
        let candidate = block &+ hits.trailingZeroBitCount
        hits &= hits &- 1
        if let id = tables.at(base, candidate, to, accept) { return (id, candidate) }
      }
      i = block &+ 32
    }
  }

  @inline(__always)
  private func firstByQuad(
    _ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int, _ bits: UnsafePointer<UInt64>,
    _ tables: Tables, _ accept: (Int) -> Bool
  ) -> (id: Int, position: Int)? {
    let raw = UnsafeRawPointer(base)
    @inline(__always) func bit(_ window: UInt64) -> UInt64 {
      let h = quadHash(UInt32(truncatingIfNeeded: window))
      return bits[h &>> 6] &>> UInt64(h & 63)
    }
    // A window at w hit: a needle may start at w - 2 ... w + 1 (offsets 2, 1, 0 and the
    // window before a four-byte needle). Windows are every third position from `from`,
    // checked in order, whatever the loop that tests them.
    var w = from
    // Windows w, w + 3, w + 6 and w + 9 from two eight-byte loads, one branch for the four
    // (most of the log is searched here: fewer instructions per byte than one load).
    while w &+ 14 <= to {
      let x = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: w, as: UInt64.self))
      let y = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: w &+ 6, as: UInt64.self))
      let (a, b, c, d) = (bit(x), bit(x &>> 24), bit(y), bit(y &>> 24))
      if (a | b | c | d) & 1 != 0 {
        let hits = a & 1 | (b & 1) &<< 1 | (c & 1) &<< 2 | (d & 1) &<< 3
        if let found = verifyWindows(base, from, to, w, hits, tables, accept) { return found }
      }
      w &+= 12
    }
    // Windows w and w + 3 from one eight-byte load.
    while w &+ 8 <= to {
      let x = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: w, as: UInt64.self))
      let (a, b) = (bit(x), bit(x &>> 24))
      if (a | b) & 1 != 0 {
        let hits = a & 1 | (b & 1) &<< 1
        if let found = verifyWindows(base, from, to, w, hits, tables, accept) { return found }
      }
      w &+= 6
    }
    while w &+ 4 <= to {
      let x = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: w, as: UInt32.self))
      if bit(UInt64(x)) & 1 != 0,
        let found = Self.verify(base, from, to, w &- 2, w &+ 1, tables, accept)
      {
        return found
      }
      w &+= 3
    }
    // Starts whose window would pass the end: each checked directly.
    return Self.verify(base, from, to, w &- 2, to &- 2, tables, accept)
  }

  /// The windows at w, w + 3, w + 6 and w + 9 whose bits are set in `hits` (bit k: window
  /// w + 3k): each one's starts are verified, in order. (Out of line: the search loop keeps
  /// its registers.)
  @inline(never)
  private func verifyWindows(
    _ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int, _ w: Int, _ hits: UInt64,
    _ tables: Tables, _ accept: (Int) -> Bool
  ) -> (id: Int, position: Int)? {
    var hits = hits
    while hits != 0 {
      let at = w &+ 3 &* hits.trailingZeroBitCount
      hits &= hits &- 1
      if let found = Self.verify(base, from, to, at &- 2, at &+ 1, tables, accept) { return found }
    }
    return nil
  }

  /// Needles starting at `s` and after, up to `last` (not before `from`), in order.
  @inline(__always)
  private static func verify(
    _ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int, _ s: Int, _ last: Int,
    _ tables: Tables, _ accept: (Int) -> Bool
  ) -> (id: Int, position: Int)? {
    var i = Swift.max(s, from)
    while i <= last {
      if let id = tables.at(base, i, to, accept) { return (id, i) }
      i &+= 1
    }
    return nil
  }

  private func firstByPair(
    _ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int, _ bits: UnsafePointer<UInt64>,
    _ tables: Tables, _ accept: (Int) -> Bool
  ) -> (id: Int, position: Int)? {
    let last = to - 1
    guard from < last else { return nil }
    var i = from
    var previous = base[i]
    while i < last {
      let next = base[i + 1]
      let pair = Int(previous) << 8 | Int(next)
      if bits[pair >> 6] & (1 << UInt64(pair & 63)) != 0, let id = tables.at(base, i, to, accept) {
        return (id, i)
      }
      previous = next
      i += 1
    }
    return nil
  }
}

/// Teddy's masks for `needles` (each of four bytes or more): for needle byte j, 16 bytes by
/// low nibble then 16 by high nibble, bit b for bucket b (`teddyBuckets`).
func teddyMasks(_ needles: [[UInt8]]) -> [UInt8] {
  var masks = [UInt8](repeating: 0, count: 128)
  for (b, bucket) in teddyBuckets(needles.map { Array($0.prefix(4)) }).enumerated() {
    for prefix in bucket {
      for (j, byte) in prefix.enumerated() {
        masks[32 * j + Int(byte & 15)] |= 1 << UInt8(b)
        masks[32 * j + 16 + Int(byte >> 4)] |= 1 << UInt8(b)
      }
    }
  }
  return masks
}

/// The distinct four-byte prefixes in eight buckets. A bucket accepts every byte whose
/// nibbles are among its members' at each position, so its share of all positions is the
/// product over j of (low nibbles x high nibbles) / 256: each prefix goes where it adds least
/// to that sum, then moves while a move lowers it (what the filter lets through, estimated
/// from the needles alone, not from any log).
func teddyBuckets(_ prefixes: [[UInt8]]) -> [[[UInt8]]] {
  func share(_ members: [[UInt8]]) -> Double {
    guard !members.isEmpty else { return 0 }
    var product = 1.0
    for j in 0..<4 {
      var low: UInt16 = 0
      var high: UInt16 = 0
      for m in members {
        low |= 1 << UInt16(m[j] & 15)
        high |= 1 << UInt16(m[j] >> 4)
      }
      product *= Double(low.nonzeroBitCount * high.nonzeroBitCount) / 256
    }
    return product
  }
  var buckets = [[[UInt8]]](repeating: [], count: 8)
  let distinct = Set(prefixes).sorted { $0.lexicographicallyPrecedes($1) }
  for prefix in distinct {
    let b = buckets.indices.min {
      share(buckets[$0] + [prefix]) - share(buckets[$0]) < share(buckets[$1] + [prefix])
        - share(buckets[$1])
    }!
    buckets[b].append(prefix)
  }
  for _ in 0..<4 {
    var moved = false
    for b in buckets.indices {
      for prefix in buckets[b] {
        let rest = buckets[b].filter { $0 != prefix }
        let saved = share(buckets[b]) - share(rest)
        if let c = buckets.indices.first(where: {
          $0 != b && share(buckets[$0] + [prefix]) - share(buckets[$0]) < saved - 1e-12
        }) {
          buckets[b] = rest
          buckets[c].append(prefix)
          moved = true
          break
        }
      }
    }
    if !moved { break }
  }
  return buckets
}

/// Fibonacci hashing of four bytes into 17 bits. A 64-bit product: the top bits of a 32-bit
/// one barely depend on the fourth byte, so windows sharing three bytes would collide.
@inline(__always) func quadHash(_ x: UInt32) -> Int {
  Int(truncatingIfNeeded: (UInt64(x) &* 0x9E37_79B9_7F4A_7C15) &>> 47)
}

/// The positions of `keys` grouped by key, in their order within a key:
/// `indices[starts[k]..<starts[k + 1]]` hold key k's (each key < `keys`). A counting sort, not
/// a list per key: the detector's tables are built this way when a scan starts.
func groupByKey(_ list: [Int], keys: Int) -> (starts: [Int32], indices: [Int32]) {
  var starts = [Int32](repeating: 0, count: keys + 1)
  for key in list { starts[key + 1] += 1 }
  for key in 0..<keys { starts[key + 1] += starts[key] }
  var next = Array(starts[0..<keys])
  var indices = [Int32](repeating: 0, count: list.count)
  for (index, key) in list.enumerated() {
    indices[Int(next[key])] = Int32(index)
    next[key] += 1
  }
  return (starts, indices)
}
