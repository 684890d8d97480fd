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
/// A four-byte window is hashed at every second position into a bit set holding each
/// needle's windows at its offsets 0 and 1 (so every occurrence has one of its windows
/// checked); three windows come from one eight-byte load and share one branch. A hit is
/// verified against the needles sharing the first two bytes at the two starts it covers.
/// Needles under four bytes fall back to a bit set over first byte pairs.
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

  /// `list` in priority order: where two needles start at one position, the first wins.
  init(_ list: [(bytes: [UInt8], id: Int)]) {
    var store: [UInt8] = []
    var needles: [(start: Int32, count: Int32, id: Int32)] = []
    var lists = [[Int32]](repeating: [], count: 65536)
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
      lists[pair].append(Int32(needles.count))
      needles.append((Int32(store.count), Int32(bytes.count), Int32(id)))
      store += bytes
      pairBits[pair >> 6] |= 1 << UInt64(pair & 63)
      guard bytes.count >= 4 else {
        short = true
        continue
      }
      add(Array(bytes[0..<4]))
      if bytes.count >= 5 {
        add(Array(bytes[1..<5]))
      } else {
        // The window after a four-byte needle's first byte ends past it: every next byte.
        for next in 0...255 { add(Array(bytes[1..<4]) + [UInt8(next)]) }
      }
    }
    var byPair: [Int32] = []
    var pairStart = [Int32](repeating: 0, count: 65537)
    for pair in 0..<65536 {
      pairStart[pair] = Int32(byPair.count)
      byPair += lists[pair]
    }
    pairStart[65536] = Int32(byPair.count)
    self.store = store
    self.needles = needles
    self.byPair = byPair
    self.pairStart = pairStart
    self.pairBits = pairBits
    self.quadBits = quadBits
    self.short = short
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
    /// A window at `p` hit: a needle may start at p - 1 or p.
    @inline(__always) func verify(_ p: Int) -> (id: Int, position: Int)? {
      if p > from, let id = tables.at(base, p &- 1, to, accept) { return (id, p &- 1) }
      if let id = tables.at(base, p, to, accept) { return (id, p) }
      return nil
    }
    var p = from
    while p &+ 8 <= to {
      let w = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt64.self))
      if (bit(w) | bit(w &>> 16) | bit(w &>> 32)) & 1 != 0 {
        for k in 0..<3 where bit(w &>> UInt64(16 * k)) & 1 != 0 {
          if let found = verify(p &+ 2 &* k) { return found }
        }
      }
      p &+= 6
    }
    while p &+ 4 <= to {
      let x = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt32.self))
      if bit(UInt64(x)) & 1 != 0, let found = verify(p) { return found }
      p &+= 2
    }
    // The one start no window covers: four bytes before the end, off the stride.
    let last = to &- 4
    if last > from, (last &- from) & 1 == 1, let id = tables.at(base, last, to, accept) {
      return (id, last)
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

/// Fibonacci hashing of four bytes into 17 bits. A 64-bit product: the top bits of a 32-bit
/// one barely depend on the fourth byte, so windows sharing three bytes would collide.
@inline(__always) func quadHash(_ x: UInt32) -> Int {
  Int(truncatingIfNeeded: (UInt64(x) &* 0x9E37_79B9_7F4A_7C15) &>> 47)
}
