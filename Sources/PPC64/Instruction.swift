/// A 64-bit PowerPC general-purpose register, r0...r31.
public struct GPR: Hashable, Sendable, CustomStringConvertible {
  public let number: UInt32
  /// nil outside 0...31.
  public init?(_ number: Int) {
    guard (0..<32).contains(number) else { return nil }
    self.number = UInt32(number)
  }
  private init(unchecked n: UInt32) { number = n }
  public var description: String { "r\(number)" }

  public static let r0 = GPR(unchecked: 0)
  public static let r1 = GPR(unchecked: 1)
  public static let r2 = GPR(unchecked: 2)
  public static let r3 = GPR(unchecked: 3)
  public static let r4 = GPR(unchecked: 4)
  public static let r5 = GPR(unchecked: 5)
  public static let r6 = GPR(unchecked: 6)
  public static let r7 = GPR(unchecked: 7)
  public static let r8 = GPR(unchecked: 8)
  public static let r9 = GPR(unchecked: 9)
  public static let r10 = GPR(unchecked: 10)
  public static let r11 = GPR(unchecked: 11)
  public static let r12 = GPR(unchecked: 12)
  public static let r13 = GPR(unchecked: 13)
  public static let r14 = GPR(unchecked: 14)
  public static let r15 = GPR(unchecked: 15)
  public static let r16 = GPR(unchecked: 16)
  public static let r17 = GPR(unchecked: 17)
  public static let r18 = GPR(unchecked: 18)
  public static let r19 = GPR(unchecked: 19)
  public static let r20 = GPR(unchecked: 20)
  public static let r21 = GPR(unchecked: 21)
  public static let r22 = GPR(unchecked: 22)
  public static let r23 = GPR(unchecked: 23)
  public static let r24 = GPR(unchecked: 24)
  public static let r25 = GPR(unchecked: 25)
  public static let r26 = GPR(unchecked: 26)
  public static let r27 = GPR(unchecked: 27)
  public static let r28 = GPR(unchecked: 28)
  public static let r29 = GPR(unchecked: 29)
  public static let r30 = GPR(unchecked: 30)
  public static let r31 = GPR(unchecked: 31)
}

/// A condition a conditional branch tests in CR0 (after cmpd/cmpld/cmpdi/cmpldi).
public enum BranchCondition: Hashable, Sendable, CaseIterable {
  case lt, ge, gt, le, eq, ne

  /// (BO, BI) of `bc` for CR0: BO 12 branches if the bit is set, 4 if it is clear.
  var boBI: (UInt32, UInt32) {
    switch self {
    case .lt: return (12, 0)
    case .ge: return (4, 0)
    case .gt: return (12, 1)
    case .le: return (4, 1)
    case .eq: return (12, 2)
    case .ne: return (4, 2)
    }
  }
  var mnemonic: String { "b\(self)" }
}

/// An instruction that cannot be encoded: which one, and why.
public struct PPC64Error: Error, Hashable, Sendable, CustomStringConvertible {
  public var instruction: String
  public var message: String
  public var description: String { "\(instruction): \(message)" }
}

/// The Power ISA (v3.0, 64-bit) instructions the payload needs, each as its own case with
/// typed operands. `encode()` gives the 32-bit instruction word; `objdumpText(at:)` the text
/// GNU objdump prints for it (extended mnemonics included), which the tests compare.
/// Branch displacements are bytes relative to the branch itself.
public enum Instruction: Hashable, Sendable {
  /// addi RT,RA,SI (RA = r0 means 0: `li`).
  case addi(GPR, GPR, Int16)
  /// addis RT,RA,SI (RA = r0: `lis`).
  case addis(GPR, GPR, Int16)
  /// ori RA,RS,UI (ori r0,r0,0: `nop`).
  case ori(GPR, GPR, UInt16)
  /// oris RA,RS,UI.
  case oris(GPR, GPR, UInt16)
  /// add RT,RA,RB.
  case add(GPR, GPR, GPR)
  /// subf RT,RA,RB: RT = RB - RA.
  case subf(GPR, GPR, GPR)
  /// mulld RT,RA,RB: the low 64 bits of the product.
  case mulld(GPR, GPR, GPR)
  /// xor RA,RS,RB.
  case xor(GPR, GPR, GPR)
  /// and RA,RS,RB.
  case and(GPR, GPR, GPR)
  /// or RA,RS,RB (RS = RB: `mr`).
  case or(GPR, GPR, GPR)
  /// ld RT,DS(RA): DS a multiple of 4.
  case ld(GPR, Int16, GPR)
  /// std RS,DS(RA).
  case std(GPR, Int16, GPR)
  /// ldx RT,RA,RB.
  case ldx(GPR, GPR, GPR)
  /// stdx RS,RA,RB.
  case stdx(GPR, GPR, GPR)
  /// rldicl RA,RS,SH,MB (`srdi`, `rotldi` forms).
  case rldicl(GPR, GPR, sh: UInt32, mb: UInt32)
  /// rldicr RA,RS,SH,ME (`sldi` form).
  case rldicr(GPR, GPR, sh: UInt32, me: UInt32)
  /// cmpd RA,RB (cmp CR0,1,RA,RB).
  case cmpd(GPR, GPR)
  /// cmpld RA,RB (cmpl CR0,1,RA,RB).
  case cmpld(GPR, GPR)
  /// cmpdi RA,SI.
  case cmpdi(GPR, Int16)
  /// cmpldi RA,UI.
  case cmpldi(GPR, UInt16)
  /// mtctr RS (mtspr 9,RS).
  case mtctr(GPR)
  /// mfspr RT,SPR: a special-purpose register (SRR0, SRR1, DAR, DSISR: `SPR`) into RT.
  case mfspr(GPR, UInt32)
  /// b target: displacement in bytes, multiple of 4, within +-32 MiB.
  case b(Int32)
  /// bc on CR0: displacement in bytes, multiple of 4, within +-32 KiB.
  case bc(BranchCondition, Int32)
  /// bdnz: decrement CTR, branch if not zero.
  case bdnz(Int32)
  /// sc LEV: 0 is a system call, 1 a hypervisor call (hcall).
  case sc(lev: UInt32)
  /// trap (tw 31,0,0): an unconditional program interrupt.
  case trap

  static func field(_ v: UInt32, _ shift: UInt32) -> UInt32 { v << shift }

  static func dForm(_ op: UInt32, _ rt: UInt32, _ ra: UInt32, _ imm: UInt16) -> UInt32 {
    op << 26 | rt << 21 | ra << 16 | UInt32(imm)
  }

  static func xForm(_ rs: UInt32, _ ra: UInt32, _ rb: UInt32, _ xo: UInt32) -> UInt32 {
    31 << 26 | rs << 21 | ra << 16 | rb << 11 | xo << 1
  }

  static func mdForm(_ rs: UInt32, _ ra: UInt32, sh: UInt32, mbe: UInt32, xo: UInt32) -> UInt32 {
    30 << 26 | rs << 21 | ra << 16 | (sh & 0x1f) << 11 | ((mbe & 0x1f) << 6 | (mbe & 0x20))
      | xo << 2 | (sh & 0x20) >> 4
  }

  /// The instruction word (to be stored in the guest's byte order).
  public func encode() throws(PPC64Error) -> UInt32 {
    switch self {
    case .addi(let rt, let ra, let si):
      return Self.dForm(14, rt.number, ra.number, UInt16(bitPattern: si))
    case .addis(let rt, let ra, let si):
      return Self.dForm(15, rt.number, ra.number, UInt16(bitPattern: si))
    case .ori(let ra, let rs, let ui): return Self.dForm(24, rs.number, ra.number, ui)
    case .oris(let ra, let rs, let ui): return Self.dForm(25, rs.number, ra.number, ui)
    case .add(let rt, let ra, let rb): return Self.xForm(rt.number, ra.number, rb.number, 266)
    case .subf(let rt, let ra, let rb): return Self.xForm(rt.number, ra.number, rb.number, 40)
    case .mulld(let rt, let ra, let rb): return Self.xForm(rt.number, ra.number, rb.number, 233)
    case .xor(let ra, let rs, let rb): return Self.xForm(rs.number, ra.number, rb.number, 316)
    case .and(let ra, let rs, let rb): return Self.xForm(rs.number, ra.number, rb.number, 28)
    case .or(let ra, let rs, let rb): return Self.xForm(rs.number, ra.number, rb.number, 444)
    case .ld(let rt, let ds, let ra), .std(let rt, let ds, let ra):
      guard ds % 4 == 0 else {
        throw PPC64Error(
          instruction: objdumpText(at: 0), message: "displacement \(ds) is not a multiple of 4")
      }
      let op: UInt32
      if case .ld = self { op = 58 } else { op = 62 }
      return Self.dForm(op, rt.number, ra.number, UInt16(bitPattern: ds) & 0xfffc)
    case .ldx(let rt, let ra, let rb): return Self.xForm(rt.number, ra.number, rb.number, 21)
    case .stdx(let rs, let ra, let rb): return Self.xForm(rs.number, ra.number, rb.number, 149)
    case .rldicl(let ra, let rs, let sh, let mb), .rldicr(let ra, let rs, let sh, let mb):
      guard sh < 64, mb < 64 else {
        throw PPC64Error(
          instruction: objdumpText(at: 0), message: "shift and mask bounds must be in 0...63")
      }
      let xo: UInt32
      if case .rldicl = self { xo = 0 } else { xo = 1 }
      return Self.mdForm(rs.number, ra.number, sh: sh, mbe: mb, xo: xo)
    case .cmpd(let ra, let rb): return Self.xForm(1, ra.number, rb.number, 0)
    case .cmpld(let ra, let rb): return Self.xForm(1, ra.number, rb.number, 32)
    case .cmpdi(let ra, let si): return Self.dForm(11, 1, ra.number, UInt16(bitPattern: si))
    case .cmpldi(let ra, let ui): return Self.dForm(10, 1, ra.number, ui)
    case .mtctr(let rs): return Self.xForm(rs.number, 9, 0, 467)
    case .mfspr(let rt, let spr):
      guard spr < 1024 else {
        throw PPC64Error(instruction: "mfspr", message: "SPR \(spr) does not fit 10 bits")
      }
      // The SPR field holds the number's two 5-bit halves swapped.
      return Self.xForm(rt.number, spr & 0x1f, spr >> 5, 339)
    case .b(let d):
      guard d % 4 == 0, d >= -(1 << 25), d < (1 << 25) else {
        throw PPC64Error(
          instruction: "b", message: "displacement \(d) is not a multiple of 4 within +-32 MiB")
      }
      return 18 << 26 | (UInt32(bitPattern: d) & 0x03ff_fffc)
    case .bc(let c, let d):
      let (bo, bi) = c.boBI
      return try Self.bcForm(bo, bi, d, c.mnemonic)
    case .bdnz(let d): return try Self.bcForm(16, 0, d, "bdnz")
    case .sc(let lev):
      guard lev < 128 else {
        throw PPC64Error(instruction: "sc", message: "LEV \(lev) does not fit 7 bits")
      }
      return 17 << 26 | lev << 5 | 2
    case .trap: return Self.xForm(31, 0, 0, 4)
    }
  }

  static func bcForm(_ bo: UInt32, _ bi: UInt32, _ d: Int32, _ name: String) throws(PPC64Error)
    -> UInt32
  {
    guard d % 4 == 0, d >= -(1 << 15), d < (1 << 15) else {
      throw PPC64Error(
        instruction: name, message: "displacement \(d) is not a multiple of 4 within +-32 KiB")
    }
    return 16 << 26 | bo << 21 | bi << 16 | (UInt32(bitPattern: d) & 0xfffc)
  }

  /// What `objdump -D -m powerpc:common64` prints for this instruction at byte `address` of
  /// the image (branch targets are printed as absolute addresses).
  public func objdumpText(at address: UInt64) -> String {
    func op(_ m: String, _ args: [String]) -> String {
      args.isEmpty
        ? m : m + String(repeating: " ", count: max(1, 8 - m.count)) + args.joined(separator: ",")
    }
    func target(_ d: Int32) -> String {
      "0x" + String(UInt64(bitPattern: Int64(address) &+ Int64(d)), radix: 16)
    }
    switch self {
    case .addi(let rt, let ra, let si):
      return ra == .r0 ? op("li", ["\(rt)", "\(si)"]) : op("addi", ["\(rt)", "\(ra)", "\(si)"])
    case .addis(let rt, let ra, let si):
      return ra == .r0 ? op("lis", ["\(rt)", "\(si)"]) : op("addis", ["\(rt)", "\(ra)", "\(si)"])
    case .ori(let ra, let rs, let ui):
      return ra == .r0 && rs == .r0 && ui == 0 ? "nop" : op("ori", ["\(ra)", "\(rs)", "\(ui)"])
    case .oris(let ra, let rs, let ui): return op("oris", ["\(ra)", "\(rs)", "\(ui)"])
    case .add(let a, let b, let c): return op("add", ["\(a)", "\(b)", "\(c)"])
    case .subf(let a, let b, let c): return op("subf", ["\(a)", "\(b)", "\(c)"])
    case .mulld(let a, let b, let c): return op("mulld", ["\(a)", "\(b)", "\(c)"])
    case .xor(let a, let b, let c): return op("xor", ["\(a)", "\(b)", "\(c)"])
    case .and(let a, let b, let c): return op("and", ["\(a)", "\(b)", "\(c)"])
    case .or(let a, let b, let c):
      return b == c ? op("mr", ["\(a)", "\(b)"]) : op("or", ["\(a)", "\(b)", "\(c)"])
    case .ld(let rt, let ds, let ra): return op("ld", ["\(rt)", "\(ds)(\(ra))"])
    case .std(let rs, let ds, let ra): return op("std", ["\(rs)", "\(ds)(\(ra))"])
    case .ldx(let a, let b, let c): return op("ldx", ["\(a)", "\(b)", "\(c)"])
    case .stdx(let a, let b, let c): return op("stdx", ["\(a)", "\(b)", "\(c)"])
    case .rldicl(let ra, let rs, let sh, let mb):
      if mb == 0 { return op("rotldi", ["\(ra)", "\(rs)", "\(sh)"]) }
      if sh != 0 && sh + mb == 64 { return op("srdi", ["\(ra)", "\(rs)", "\(mb)"]) }
      return op("rldicl", ["\(ra)", "\(rs)", "\(sh)", "\(mb)"])
    case .rldicr(let ra, let rs, let sh, let me):
      if sh + me == 63 { return op("sldi", ["\(ra)", "\(rs)", "\(sh)"]) }
      return op("rldicr", ["\(ra)", "\(rs)", "\(sh)", "\(me)"])
    case .cmpd(let a, let b): return op("cmpd", ["\(a)", "\(b)"])
    case .cmpld(let a, let b): return op("cmpld", ["\(a)", "\(b)"])
    case .cmpdi(let a, let si): return op("cmpdi", ["\(a)", "\(si)"])
    case .cmpldi(let a, let ui): return op("cmpldi", ["\(a)", "\(ui)"])
    case .mtctr(let rs): return op("mtctr", ["\(rs)"])
    case .mfspr(let rt, let spr):
      if let name = SPR.names[spr] { return op("mf\(name)", ["\(rt)"]) }
      return op("mfspr", ["\(rt)", "\(spr)"])
    case .b(let d): return op("b", [target(d)])
    case .bc(let c, let d): return op(c.mnemonic, [target(d)])
    case .bdnz(let d): return op("bdnz", [target(d)])
    case .sc(let lev): return lev == 0 ? "sc" : op("sc", ["\(lev)"])
    case .trap: return "trap"
    }
  }

  /// `srdi RA,RS,n` = rldicl RA,RS,64-n,n (n in 1...63).
  public static func srdi(_ ra: GPR, _ rs: GPR, _ n: UInt32) -> Instruction {
    .rldicl(ra, rs, sh: (64 - n) & 63, mb: n)
  }
  /// `sldi RA,RS,n` = rldicr RA,RS,n,63-n.
  public static func sldi(_ ra: GPR, _ rs: GPR, _ n: UInt32) -> Instruction {
    .rldicr(ra, rs, sh: n, me: 63 - n)
  }
  /// `li RT,SI` = addi RT,0,SI.
  public static func li(_ rt: GPR, _ si: Int16) -> Instruction { .addi(rt, .r0, si) }
  /// `mr RA,RS` = or RA,RS,RS.
  public static func mr(_ ra: GPR, _ rs: GPR) -> Instruction { .or(ra, rs, rs) }
  public static let nop = Instruction.ori(.r0, .r0, 0)
}

/// Special-purpose register numbers (Power ISA, Book III) the payload reads.
public enum SPR {
  public static let dsisr: UInt32 = 18
  public static let dar: UInt32 = 19
  public static let srr0: UInt32 = 26
  public static let srr1: UInt32 = 27
  /// objdump's extended mnemonics (mfsrr0 ...).
  static let names: [UInt32: String] = [18: "dsisr", 19: "dar", 26: "srr0", 27: "srr1"]
}
