/// Handlers for a real-mode guest's interrupt vectors. The payload never expects an interrupt:
/// it runs with MSR_EE clear and touches only its own memory. One that comes anyway says the
/// host broke the guest's memory (a data or instruction storage interrupt that KVM reflects when
/// it finds no HPTE for a VRMA address; an illegal instruction where the payload's code was).
/// With empty vectors such a guest spins on the program vector (0x700 holds zeroes, itself an
/// illegal instruction) and only its registers, read from outside, hint at what came first;
/// with these it reports the first interrupt by hcall, with SRR0, SRR1, DAR and DSISR.
///
/// Layout, at `address` (0x100) in guest memory: one 32-byte slot per possible vector from
/// 0x100 to 0xfe0 (every Book III vector starts at a multiple of 32), each `li r4,VECTOR` and
/// `b common`; `common` at 0x1000: r5 = SRR0, r6 = SRR1, r7 = DAR, r8 = DSISR, r3 = the hcall
/// number, `sc 1`, then back to `common`: a guest that took one stays there. (No `trap`
/// flavour, unlike Payload: mfspr of SRR0 is privileged, so the handler cannot run as a user
/// program.)
public struct InterruptVectors: Sendable {
  /// The first vector (system reset).
  public static let address: UInt64 = 0x100
  /// Where the slots end and `common` begins.
  public static let common: UInt64 = 0x1000
  static let slotBytes: UInt64 = 32

  /// The code from `address` on, in the guest's byte order.
  public let image: [UInt8]
  public let instructions: [Instruction]

  public init(hcallNumber: UInt64) throws(PPC64Error) {
    var a = Assembler()
    let common = a.newLabel()
    let perSlot = Int(Self.slotBytes / 4)
    for vector in stride(from: Self.address, to: Self.common, by: Int(Self.slotBytes)) {
      a.emit(.li(.r4, Int16(vector)))
      a.b(common)
      for _ in 2..<perSlot { a.emit(.nop) }
    }
    a.bind(common)
    for (r, spr) in [(GPR.r5, SPR.srr0), (.r6, SPR.srr1), (.r7, SPR.dar), (.r8, SPR.dsisr)] {
      a.emit(.mfspr(r, spr))
    }
    a.load64(.r3, hcallNumber)
    a.emit(.sc(lev: 1))
    a.b(common)
    instructions = try a.instructions()
    image = try instructions.encoded(.littleEndian)
  }

  /// Guest-physical end of the image.
  public var end: UInt64 { Self.address + UInt64(image.count) }
}
