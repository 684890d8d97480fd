import Foundation
import Testing

@testable import PPC64

/// binutils for powerpc64le and qemu-user, when installed (apt-get install
/// binutils-powerpc64le-linux-gnu gcc-powerpc64le-linux-gnu qemu-user-static).
enum Tools {
  static func find(_ name: String) -> String? {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
    return path.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
  }
  static let objdump = find("powerpc64le-linux-gnu-objdump")
  static let gcc = find("powerpc64le-linux-gnu-gcc")
  static let qemu = find("qemu-ppc64le-static")

  static func run(_ executable: String, _ args: [String]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
  }

  static func tempDir() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "ppc64-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
  }

  /// objdump's text for each instruction word of `bytes`: "mnemonic operands", in order.
  static func disassemble(_ bytes: [UInt8], _ order: ByteOrder) throws -> [String] {
    let objdump = try #require(objdump)
    let dir = try tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let file = dir.appendingPathComponent("code.bin")
    try Data(bytes).write(to: file)
    let (rc, out) = try run(
      objdump,
      [
        "-D", "-b", "binary", "-m", "powerpc:common64", order == .littleEndian ? "-EL" : "-EB",
        file.path,
      ])
    try #require(rc == 0, "\(out)")
    // "   4:\t44 00 00 22 \tsc      1"
    return out.split(separator: "\n").compactMap { line -> String? in
      let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
      guard parts.count >= 3, parts[0].hasSuffix(":") else { return nil }
      return parts[2...].joined(separator: "\t").trimmingCharacters(in: .whitespaces)
    }
  }
}

/// Normalizes objdump's and the encoder's texts the same way (runs of blanks to one space).
func squeeze(_ s: String) -> String {
  s.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
}

@Suite struct EncoderTests {
  /// At least one of every instruction the encoder offers, with edge operands.
  static let every: [Instruction] = [
    .addi(.r3, .r4, -1), .addi(.r31, .r0, 32767), .li(.r5, -32768),
    .addis(.r3, .r4, 0x1234), .addis(.r3, .r0, -32768),
    .ori(.r3, .r3, 0xf100), .ori(.r0, .r0, 0), .nop, .oris(.r20, .r21, 0xbf58),
    .add(.r17, .r21, .r18), .subf(.r3, .r4, .r5), .mulld(.r3, .r3, .r16),
    .xor(.r3, .r3, .r23), .and(.r4, .r3, .r5), .or(.r4, .r3, .r5), .mr(.r29, .r17),
    .ld(.r21, 8, .r20), .ld(.r3, -32768, .r1), .std(.r3, 0, .r17), .std(.r31, 32764, .r2),
    .ldx(.r3, .r4, .r5), .stdx(.r3, .r4, .r5),
    .srdi(.r5, .r3, 30), .srdi(.r5, .r3, 1), .srdi(.r5, .r3, 63), .sldi(.r20, .r20, 32),
    .sldi(.r1, .r2, 1), .rldicl(.r4, .r3, sh: 5, mb: 0), .rldicl(.r4, .r3, sh: 5, mb: 7),
    .rldicr(.r4, .r3, sh: 5, me: 7), .rldicr(.r4, .r3, sh: 40, me: 60),
    .cmpd(.r3, .r4), .cmpld(.r18, .r22), .cmpdi(.r26, 0), .cmpdi(.r3, -1), .cmpldi(.r3, 65535),
    .mtctr(.r3), .mfspr(.r5, SPR.srr0), .mfspr(.r6, SPR.srr1), .mfspr(.r7, SPR.dar),
    .mfspr(.r8, SPR.dsisr), .mfspr(.r9, 1000), .b(-16), .b(0x1fffffc), .b(-0x2000000),
    .bc(.lt, 8), .bc(.ge, 8), .bc(.gt, -8), .bc(.le, 12), .bc(.eq, 32764), .bc(.ne, -32768),
    .bdnz(-8), .sc(lev: 0), .sc(lev: 1), .trap,
  ]

  static func caseName(_ i: Instruction) -> String {
    Mirror(reflecting: i).children.first?.label ?? "\(i)"
  }

  @Test func theTableCoversEveryCase() {
    let covered = Set(Self.every.map(Self.caseName))
    let all: Set<String> = [
      "addi", "addis", "ori", "oris", "add", "subf", "mulld", "xor", "and", "or", "ld", "std",
      "ldx", "stdx", "rldicl", "rldicr", "cmpd", "cmpld", "cmpdi", "cmpldi", "mtctr", "mfspr", "b",
      "bc",
      "bdnz", "sc", "trap",
    ]
    #expect(covered == all)
  }

  @Test(
    .enabled(if: Tools.objdump != nil, "powerpc64le-linux-gnu-objdump is not installed"),
    arguments: [ByteOrder.bigEndian, .littleEndian])
  func objdumpAgreesWithEveryEncoding(_ order: ByteOrder) throws {
    let bytes = try Self.every.encoded(order)
    let texts = try Tools.disassemble(bytes, order)
    try #require(texts.count == Self.every.count, "\(texts)")
    for (i, inst) in Self.every.enumerated() {
      let mine = squeeze(inst.objdumpText(at: UInt64(i * 4)))
      let word = String(try inst.encode(), radix: 16)
      #expect(squeeze(texts[i]) == mine, "\(inst) = 0x\(word): objdump says '\(texts[i])'")
    }
  }

  /// A few words written out by hand from the ISA, so the encoder and its own text cannot be
  /// wrong together without a test noticing.
  @Test func knownWords() throws {
    #expect(try Instruction.sc(lev: 1).encode() == 0x4400_0022)
    #expect(try Instruction.trap.encode() == 0x7fe0_0008)
    #expect(try Instruction.nop.encode() == 0x6000_0000)
    #expect(try Instruction.addi(.r3, .r3, -1).encode() == 0x3863_ffff)
    #expect(try Instruction.cmpd(.r3, .r4).encode() == 0x7c23_2000)
    #expect(try Instruction.mtctr(.r3).encode() == 0x7c69_03a6)
    #expect(try Instruction.mfspr(.r4, SPR.srr0).encode() == 0x7c9a_02a6)
  }

  @Test func badOperandsAreErrorsNamingThem() {
    #expect(throws: PPC64Error.self) { try Instruction.ld(.r3, 6, .r4).encode() }
    #expect(throws: PPC64Error.self) { try Instruction.b(2).encode() }
    #expect(throws: PPC64Error.self) { try Instruction.b(1 << 25).encode() }
    #expect(throws: PPC64Error.self) { try Instruction.bc(.eq, 1 << 15).encode() }
    #expect(throws: PPC64Error.self) { try Instruction.rldicl(.r3, .r3, sh: 64, mb: 0).encode() }
    #expect(throws: PPC64Error.self) { try Instruction.sc(lev: 128).encode() }
    #expect(throws: PPC64Error.self) { try Instruction.mfspr(.r3, 1024).encode() }
    #expect(GPR(32) == nil)
    #expect(GPR(31) == .r31)
    do {
      _ = try Instruction.std(.r3, 2, .r4).encode()
      Issue.record("no error")
    } catch {
      #expect(error.description.contains("multiple of 4"), "\(error)")
    }
  }

  @Test func unboundLabelIsAnError() {
    var a = Assembler()
    let l = a.newLabel()
    a.b(l)
    #expect(throws: PPC64Error.self) { try a.instructions() }
  }

  @Test func load64IsAlwaysFiveInstructions() throws {
    for v: UInt64 in [0, 1, 0xffff_ffff_ffff_ffff, 0x8000_0000_0000_0000, 0x9E37_79B9_7F4A_7C15] {
      var a = Assembler()
      a.load64(.r3, v)
      let code = try a.instructions()
      #expect(code.count == 5)
      // Evaluate the sequence: lis sign-extends, the rest are plain bit operations.
      var r: UInt64 = 0
      for i in code {
        switch i {
        case .addis(_, _, let si): r = UInt64(bitPattern: Int64(si) << 16)
        case .ori(_, _, let ui): r |= UInt64(ui)
        case .oris(_, _, let ui): r |= UInt64(ui) << 16
        case .rldicr(_, _, let sh, _): r <<= UInt64(sh)
        default: Issue.record("unexpected \(i)")
        }
      }
      #expect(r == v, "0x\(String(v, radix: 16))")
    }
  }
}
