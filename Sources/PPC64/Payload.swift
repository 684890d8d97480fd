/// What the guest payload is told, in the parameter block at the start of its image.
public struct PayloadParameters: Hashable, Sendable {
  /// Guest-physical (in real mode: effective) address of the first page the payload walks.
  public var base: UInt64
  /// Bytes walked; a multiple of `pageBytes`.
  public var size: UInt64
  public var patternSeed: UInt64
  /// Pages visited between two reports.
  public var pagesPerReport: UInt64
  /// The step between two visited dwords: the guest page size (64 KiB on KVM-HV hosts).
  public var pageBytes: UInt64
  /// The hcall number the report is made with (r3 of `sc 1`).
  public var hcallNumber: UInt64
  /// Bolted HPTEs the payload enters into secondary groups (H_ENTER) before it starts
  /// walking, as a Linux guest's bolted linear mapping does when a primary group is full.
  /// They are what HPT resizing must rehash with the secondary hash (bug B5).
  public var boltedSecondaryHPTEs: UInt64
  /// Guest-physical address of the "taken" table (0: none): one dword per page of the walked
  /// range, which the host sets to 1 just before it frees the page (MADV_REMOVE) and which
  /// stays set. A page that reads back 0 with its dword set was taken away by the host, not
  /// corrupted: the payload counts it as taken and writes it again. Only the host writes the
  /// table: a flag the guest cleared could erase the host's mark for a removal still to come
  /// (seen on the lab: the stock kernel "corrupted" a page the host had just freed).
  public var takenTable: UInt64

  public init(
    base: UInt64, size: UInt64, patternSeed: UInt64, pagesPerReport: UInt64,
    pageBytes: UInt64 = 65536, hcallNumber: UInt64, boltedSecondaryHPTEs: UInt64 = 0,
    takenTable: UInt64 = 0
  ) {
    self.base = base
    self.size = size
    self.patternSeed = patternSeed
    self.pagesPerReport = pagesPerReport
    self.pageBytes = pageBytes
    self.hcallNumber = hcallNumber
    self.boltedSecondaryHPTEs = boltedSecondaryHPTEs
    self.takenTable = takenTable
  }
}

/// How the payload hands a report to its VMM.
public enum PayloadReport: Sendable, Hashable {
  /// `sc 1`: a hypervisor call. KVM-HV does not handle the number, so KVM_RUN returns
  /// KVM_EXIT_PAPR_HCALL with r3 in papr_hcall.nr and r4... in args (book3s_hv.c,
  /// kvmppc_handle_exit_hv, BOOK3S_INTERRUPT_SYSCALL); the next KVM_RUN puts papr_hcall.ret
  /// in r3 and papr_hcall.args back in r4...r12 (powerpc.c, kvm_arch_vcpu_ioctl_run,
  /// hcall_needed), and the guest goes on after the `sc`. The payload keeps its state in
  /// r14...r31, which neither touches.
  case hcall
  /// `trap`: for running the payload as a user program (qemu-user), where a SIGTRAP handler
  /// reads r3...r8 and steps over the instruction.
  case trap
}

/// The harness's guest payload in ppc64 machine code (little-endian, MSR_LE set; real mode,
/// MSR_IR and MSR_DR clear, so effective addresses are guest-physical and every access goes
/// through the VRMA's HPTEs).
///
/// Image layout, at `loadAddress` in guest memory:
///
///     +0   parameter block, 128 bytes, little-endian dwords:
///          magic "HPTHPAY1", base, size, patternSeed, pagesPerReport, pageBytes,
///          hcallNumber, boltedSecondaryHPTEs, takenTable, pages taken (the payload counts
///          here), then zeroes
///     +128 code; the vCPU's PC starts here (`entry`)
///
/// First, if asked, the code enters `boltedSecondaryHPTEs` bolted HPTEs into secondary
/// groups with H_ENTER (`boltedSecondaryHPTE(k)`: r3 = H_ENTER, r4 = flags, r5 = PTE index,
/// r6 = HPTE dword 0, r7 = dword 1), one `sc 1` (or `trap`) each; KVM answers H_ENTER itself.
/// Then it walks [base, base+size) one `pageBytes` step at a time, pass after pass. At
/// each step it reads the dword at the page's start: from pass 1 on it must hold
/// `pattern(seed, gpa, pass - 1)`, what the previous pass wrote (a verified page; a different
/// value is a mismatch, and the first one is remembered, unless it is 0 and the page's dword
/// in the taken table is set: then the host freed the page, and the payload counts it as
/// taken); then it writes
/// `pattern(seed, gpa, pass)`. Every `pagesPerReport` steps it reports: r3 = hcallNumber,
/// r4 = pages verified, r5 = mismatches (both since the start), r6 = first bad address (0:
/// none), r7 = the value expected there, r8 = the value found, r9 = the pass, r10 = the offset
/// of the next page to visit (every page below it holds this pass's pattern, every page from
/// it on the previous pass's: what the VMM checks through its own mapping), r11 = pages
/// taken. It never ends.
///
/// The parameter block is also how a VMM that cannot run the code (the simulated kernel
/// behind SimSyscalls) learns what the payload does: it reads the block at PC - 64.
public struct Payload: Sendable {
  /// "HPTHPAY1" as a little-endian dword.
  public static let magic: UInt64 = 0x3159_4150_4854_5048
  public static let parameterBlockSize: UInt64 = 128
  /// Byte offsets of parameter-block dwords the code reads or writes.
  static let takenTableAt: Int16 = 64
  static let takenCountAt: Int16 = 72
  /// Registers the code keeps its state in (non-volatile in the ELF ABI and untouched by
  /// KVM's hcall exit, which only sets r3 on return).
  static let mul2 = GPR.r14, mul1 = GPR.r15, golden = GPR.r16, gpa = GPR.r17
  static let offset = GPR.r18, sinceReport = GPR.r19, block = GPR.r20, base = GPR.r21
  static let size = GPR.r22, seed = GPR.r23, perReport = GPR.r24, step = GPR.r25
  static let pass = GPR.r26, verified = GPR.r27, mismatches = GPR.r28, badGPA = GPR.r29
  static let badExpected = GPR.r30, badFound = GPR.r31

  /// SplitMix64's constants.
  static let goldenGamma: UInt64 = 0x9E37_79B9_7F4A_7C15
  static let mix1: UInt64 = 0xBF58_476D_1CE4_E5B9
  static let mix2: UInt64 = 0x94D0_49BB_1331_11EB

  public let loadAddress: UInt64
  public let parameters: PayloadParameters
  public let instructions: [Instruction]
  /// Parameter block and code, in the guest's byte order.
  public let image: [UInt8]
  /// Where the vCPU starts: right after the parameter block.
  public var entry: UInt64 { loadAddress + Payload.parameterBlockSize }

  /// The value the payload writes at `gpa` in pass `pass`: SplitMix64's output function of
  /// (pass * golden ^ seed ^ gpa), with bit 0 set so it is never 0.
  public static func pattern(seed: UInt64, gpa: UInt64, pass: UInt64) -> UInt64 {
    var z = ((pass &* goldenGamma) ^ seed ^ gpa) &+ goldenGamma
    z = (z ^ (z >> 30)) &* mix1
    z = (z ^ (z >> 27)) &* mix2
    z ^= z >> 31
    return z | 1
  }

  /// H_ENTER (PAPR).
  public static let hEnter: UInt64 = 0x08
  /// At most this many bolted secondary HPTEs: one per group, groups 1, 3, 5, ... (KVM's
  /// smallest HPT, order 18, has 2048 groups).
  public static let maxBoltedSecondaryHPTEs: UInt64 = 64

  /// The H_ENTER arguments (flags, PTE index, HPTE dwords 0 and 1, in the pre-ISA-3.0 format
  /// the hcall takes) of the k-th bolted secondary HPTE that maps the 4 KiB page at `gpa`:
  /// a 1 TB segment of VSID 0x1000 + k, valid, bolted, H = 1 (secondary), put in group
  /// 2k + 1 (no H_EXACT: KVM picks a free slot of that group).
  public static func boltedSecondaryHPTE(_ k: UInt64, gpa: UInt64) -> (
    flags: UInt64, pteIndex: UInt64, v: UInt64, r: UInt64
  ) {
    let ssize1TB: UInt64 = 1 << 62
    let bolted: UInt64 = 0x10
    let secondary: UInt64 = 0x2
    let valid: UInt64 = 0x1
    let avpn = (0x1000 + k) << 17  // VSID << 17: segment offset 0
    let memoryCoherent: UInt64 = 0x10
    let readWrite: UInt64 = 0x2
    return (
      0, (2 * k + 1) * 8, ssize1TB | (avpn << 7) | bolted | secondary | valid,
      (gpa & ~0xfff) | memoryCoherent | readWrite
    )
  }

  public init(loadAddress: UInt64, parameters p: PayloadParameters, report: PayloadReport = .hcall)
    throws(PPC64Error)
  {
    func bad(_ m: String) -> PPC64Error { PPC64Error(instruction: "payload", message: m) }
    guard p.pageBytes >= 8, p.pageBytes & (p.pageBytes - 1) == 0 else {
      throw bad("pageBytes \(p.pageBytes) must be a power of two, at least 8")
    }
    guard p.size > 0, p.size % p.pageBytes == 0, p.base % p.pageBytes == 0 else {
      throw bad(
        "base 0x\(String(p.base, radix: 16)) and size 0x\(String(p.size, radix: 16)) must be non-empty multiples of pageBytes \(p.pageBytes)"
      )
    }
    guard p.pagesPerReport >= 1 else { throw bad("pagesPerReport must be at least 1") }
    guard p.boltedSecondaryHPTEs <= Self.maxBoltedSecondaryHPTEs else {
      throw bad(
        "boltedSecondaryHPTEs \(p.boltedSecondaryHPTEs) is more than \(Self.maxBoltedSecondaryHPTEs)"
      )
    }
    guard loadAddress % 8 == 0 else {
      throw bad("loadAddress 0x\(String(loadAddress, radix: 16)) is not 8-byte aligned")
    }
    self.loadAddress = loadAddress
    self.parameters = p
    var a = Assembler()
    Self.emitBoltedSecondaryHPTEs(&a, p.boltedSecondaryHPTEs, gpa: loadAddress, report: report)
    Self.emitCode(
      &a, loadAddress: loadAddress, pageShift: Self.pageShift(p.pageBytes), report: report)
    instructions = try a.instructions()
    let imageEnd = loadAddress + Payload.parameterBlockSize + UInt64(instructions.count * 4)
    guard imageEnd <= p.base || loadAddress >= p.base + p.size else {
      throw bad(
        "the image at 0x\(String(loadAddress, radix: 16))...0x\(String(imageEnd, radix: 16)) overlaps the range it walks"
      )
    }
    var bytes: [UInt8] = []
    for v in [
      Payload.magic, p.base, p.size, p.patternSeed, p.pagesPerReport, p.pageBytes, p.hcallNumber,
      p.boltedSecondaryHPTEs, p.takenTable, 0, 0, 0, 0, 0, 0, 0,
    ] {
      withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    bytes += try instructions.encoded(.littleEndian)
    image = bytes
  }

  /// Reads a parameter block (64 bytes, little-endian); nil without the magic.
  public static func parameters(fromBlock block: UnsafeRawBufferPointer) -> PayloadParameters? {
    guard block.count >= Int(parameterBlockSize) else { return nil }
    func dword(_ i: Int) -> UInt64 {
      UInt64(littleEndian: block.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
    }
    guard dword(0) == magic else { return nil }
    return PayloadParameters(
      base: dword(1), size: dword(2), patternSeed: dword(3), pagesPerReport: dword(4),
      pageBytes: dword(5), hcallNumber: dword(6), boltedSecondaryHPTEs: dword(7),
      takenTable: dword(8))
  }

  static func pageShift(_ pageBytes: UInt64) -> UInt32 { UInt32(pageBytes.trailingZeroBitCount) }

  /// One H_ENTER per bolted secondary HPTE, each mapping the image's own page. The answer is
  /// not checked: a group that is full (H_PTEG_FULL) only means one HPTE fewer.
  static func emitBoltedSecondaryHPTEs(
    _ a: inout Assembler, _ count: UInt64, gpa: UInt64, report: PayloadReport
  ) {
    for k in 0..<count {
      let h = boltedSecondaryHPTE(k, gpa: gpa)
      for (r, v) in [(GPR.r3, hEnter), (.r4, h.flags), (.r5, h.pteIndex), (.r6, h.v), (.r7, h.r)] {
        a.load64(r, v)
      }
      a.emit(report == .hcall ? .sc(lev: 1) : .trap)
    }
  }

  /// r3 = pattern(seed, gpa, r3); r5 is clobbered.
  static func emitPattern(_ a: inout Assembler) {
    a.emit(.mulld(.r3, .r3, golden))
    a.emit(.xor(.r3, .r3, seed))
    a.emit(.xor(.r3, .r3, gpa))
    a.emit(.add(.r3, .r3, golden))
    for (shift, mul) in [(UInt32(30), Optional(mul1)), (27, mul2), (31, nil)] {
      a.emit(.srdi(.r5, .r3, shift))
      a.emit(.xor(.r3, .r3, .r5))
      if let mul { a.emit(.mulld(.r3, .r3, mul)) }
    }
    a.emit(.ori(.r3, .r3, 1))
  }

  static func emitCode(
    _ a: inout Assembler, loadAddress: UInt64, pageShift: UInt32, report: PayloadReport
  ) {
    a.load64(block, loadAddress)
    for (r, i) in [(base, 1), (size, 2), (seed, 3), (perReport, 4), (step, 5)] {
      a.emit(.ld(r, Int16(i * 8), block))
    }
    a.load64(golden, goldenGamma)
    a.load64(mul1, mix1)
    a.load64(mul2, mix2)
    for r in [pass, verified, mismatches, badGPA, badExpected, badFound, sinceReport] {
      a.emit(.li(r, 0))
    }
    let passLoop = a.newLabel()
    let pageLoop = a.newLabel()
    let write = a.newLabel()
    let next = a.newLabel()
    let record = a.newLabel()
    a.bind(passLoop)
    a.emit(.li(offset, 0))
    a.bind(pageLoop)
    a.emit(.add(gpa, base, offset))
    // From the second pass on: verify what the previous pass wrote.
    a.emit(.cmpdi(pass, 0))
    a.bc(.eq, write)
    a.emit(.addi(.r3, pass, -1))
    emitPattern(&a)
    a.emit(.ld(.r4, 0, gpa))
    a.emit(.addi(verified, verified, 1))
    a.emit(.cmpd(.r3, .r4))
    a.bc(.eq, write)
    // A 0 where the taken table says the host freed the page: taken, not corrupted.
    a.emit(.cmpdi(.r4, 0))
    a.bc(.ne, record)
    a.emit(.ld(.r6, takenTableAt, block))
    a.emit(.cmpdi(.r6, 0))
    a.bc(.eq, record)
    a.emit(pageShift > 3 ? .srdi(.r7, offset, pageShift - 3) : .mr(.r7, offset))
    a.emit(.ldx(.r8, .r6, .r7))
    a.emit(.cmpdi(.r8, 0))
    a.bc(.eq, record)
    a.emit(.ld(.r8, takenCountAt, block))
    a.emit(.addi(.r8, .r8, 1))
    a.emit(.std(.r8, takenCountAt, block))
    a.b(write)
    a.bind(record)
    a.emit(.addi(mismatches, mismatches, 1))
    a.emit(.cmpdi(badGPA, 0))
    a.bc(.ne, write)
    a.emit(.mr(badGPA, gpa))
    a.emit(.mr(badExpected, .r3))
    a.emit(.mr(badFound, .r4))
    a.bind(write)
    a.emit(.mr(.r3, pass))
    emitPattern(&a)
    a.emit(.std(.r3, 0, gpa))
    a.emit(.add(offset, offset, step))
    a.emit(.addi(sinceReport, sinceReport, 1))
    a.emit(.cmpld(sinceReport, perReport))
    a.bc(.lt, next)
    a.emit(.li(sinceReport, 0))
    a.emit(.ld(.r3, 48, block))
    for (arg, r) in [
      (GPR.r4, verified), (.r5, mismatches), (.r6, badGPA), (.r7, badExpected), (.r8, badFound),
      (.r9, pass), (.r10, offset),
    ] {
      a.emit(.mr(arg, r))
    }
    a.emit(.ld(.r11, takenCountAt, block))
    a.emit(report == .hcall ? .sc(lev: 1) : .trap)
    a.bind(next)
    a.emit(.cmpld(offset, size))
    a.bc(.lt, pageLoop)
    a.emit(.addi(pass, pass, 1))
    a.b(passLoop)
  }
}
