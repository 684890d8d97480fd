/// Bits of an HPTE's first doubleword (arch/powerpc/include/asm/book3s/64/mmu-hash.h and
/// KVM's software bits in kvm_book3s_64.h).
public enum HPTEV {
  public static let valid: UInt64 = 0x1  // HPTE_V_VALID
  public static let secondary: UInt64 = 0x2  // HPTE_V_SECONDARY
  public static let large: UInt64 = 0x4  // HPTE_V_LARGE
  public static let bolted: UInt64 = 0x10  // HPTE_V_BOLTED
  public static let absent: UInt64 = 0x20  // HPTE_V_ABSENT: guest-valid, host page not mapped
  public static let hvLock: UInt64 = 0x40  // HPTE_V_HVLOCK
  public static let avpnShift: UInt64 = 7
  public static let segment1T: UInt64 = 1 << 62  // HPTE_V_1TB_SEG (ssize 1)
  /// AVPN field: bits 7..61.
  public static let avpnMask: UInt64 = ((1 << 55) - 1) << 7

  public static func avpn(_ v: UInt64) -> UInt64 { (v & avpnMask) >> avpnShift }
}

/// rmap word per guest page (KVMPPC_RMAP_*): PRESENT plus the index of the first HPTE of the
/// page's chain in the revmap.
public enum RMAP {
  public static let present: UInt64 = 0x1_0000_0000
  public static let indexMask: UInt64 = 0xffff_ffff
}

/// struct revmap_entry: the guest's view of the HPTE's second doubleword and the chain links
/// through all HPTEs mapping the same guest page.
public struct RevmapEntry: Sendable, Hashable {
  public var guestRpte: UInt64 = 0
  public var forw: UInt32 = 0
  public var back: UInt32 = 0
}

/// struct kvm_hpt_info plus its tables: the HPT of 2^order bytes (2^(order-4) HPTEs of two
/// doublewords) and the revmap array of the same number of entries.
public final class HashPageTable: @unchecked Sendable {
  public let order: Int
  public var v: [UInt64]
  public var r: [UInt64]
  public var rev: [RevmapEntry]
  /// The virtual page number each HPTE translates. The hardware derives it from the HPTE and
  /// its group (tlbie needs it); the simulator keeps it beside the table.
  public var vpn: [UInt64]
  /// Where the kernel would have the table (linear map) and the revmap (vmalloc): the
  /// addresses an oops prints.
  public let virt: UInt64
  public let revBase: UInt64
  /// kvmppc_free_hpt() has run: the table and its revmap went back to the allocators. A
  /// caller that still holds them (a stale pointer) faults on its next access.
  public var freed = false

  public init(order: Int, virt: UInt64, revBase: UInt64) {
    self.order = order
    let n = 1 << (order - 4)
    v = Array(repeating: 0, count: n)
    r = Array(repeating: 0, count: n)
    rev = Array(repeating: RevmapEntry(), count: n)
    vpn = Array(repeating: 0, count: n)
    self.virt = virt
    self.revBase = revBase
  }

  public var hpteCount: Int { v.count }
  /// kvmppc_hpt_mask(): number of HPTE groups - 1.
  public var hashMask: UInt64 { (1 << UInt64(order - 7)) - 1 }

  public var validOrAbsentCount: Int {
    var n = 0
    for x in v where x & (HPTEV.valid | HPTEV.absent) != 0 { n += 1 }
    return n
  }
}

/// Hashing of the hashed page table (ISA v2.07/v3.0 Book III-S, 64K base pages).
public enum HPTHash {
  public static let pageShift: UInt64 = 16
  public static let pageSize: UInt64 = 1 << 16
  /// VRMA_VSID, the VSID of the virtual real-mode area (1T segment).
  public static let vrmaVSID: UInt64 = 0x1ff_ffff

  /// Primary hash of a page in a 256M segment.
  public static func hash256M(vsid: UInt64, ea: UInt64) -> UInt64 {
    vsid ^ ((ea & 0x0fff_ffff) >> pageShift)
  }
  /// Primary hash of a page in a 1T segment.
  public static func hash1T(vsid: UInt64, segmentOffset: UInt64) -> UInt64 {
    vsid ^ (vsid << 25) ^ (segmentOffset >> pageShift)
  }
  /// AVPN (va >> 23) of a page in a 256M segment.
  public static func avpn256M(vsid: UInt64, ea: UInt64) -> UInt64 {
    ((vsid << 28) | (ea & 0x0fff_ffff)) >> 23
  }
  /// AVPN of a page in a 1T segment.
  public static func avpn1T(vsid: UInt64, segmentOffset: UInt64) -> UInt64 {
    ((vsid << 40) | segmentOffset) >> 23
  }
  /// Linux's proto-VSID scramble for a 256M segment (VSID_MULTIPLIER_256M, 37-bit modulus).
  public static func vsid256M(context: UInt64, esid: UInt64) -> UInt64 {
    let proto = (context << 19) | (esid & 0x7ffff)
    return (proto &* 12_538_073) % ((1 << 37) - 1)
  }
}

/// One core's TLB: direct-mapped, tagged with the LPID, caching VPN -> host page.
struct TLB {
  static let size = 1024
  var tag = [UInt64](repeating: 0, count: size)  // vpn | valid bit; 0 = empty
  var lpid = [UInt32](repeating: 0, count: size)
  var pfn = [Int32](repeating: 0, count: size)

  static func slot(_ vpn: UInt64) -> Int { Int((vpn ^ (vpn >> 10) ^ (vpn >> 20)) % UInt64(size)) }

  func lookup(vpn: UInt64, lpid l: UInt32) -> Int32? {
    let i = TLB.slot(vpn)
    return tag[i] == vpn | (1 << 63) && lpid[i] == l ? pfn[i] : nil
  }

  mutating func fill(vpn: UInt64, lpid l: UInt32, pfn p: Int32) {
    let i = TLB.slot(vpn)
    tag[i] = vpn | (1 << 63)
    lpid[i] = l
    pfn[i] = p
  }

  mutating func invalidate(vpn: UInt64, lpid l: UInt32) {
    let i = TLB.slot(vpn)
    if tag[i] == vpn | (1 << 63) && lpid[i] == l { tag[i] = 0 }
  }

  mutating func flush(lpid l: UInt32) {
    for i in 0..<TLB.size where lpid[i] == l { tag[i] = 0 }
  }
}
