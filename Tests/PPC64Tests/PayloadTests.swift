import Foundation
import Testing

@testable import PPC64

@Suite struct PayloadTests {
  static let params = PayloadParameters(
    base: 0x30_0000, size: 0x8_0000, patternSeed: 0x1234_5678_9abc_def0, pagesPerReport: 4,
    pageBytes: 0x1_0000, hcallNumber: 0xF100)

  /// Harness/run_payload.c built statically for ppc64le in a new temporary directory: the
  /// qemu-user binary, the directory (the caller removes it) and the program.
  static func harness() throws -> (qemu: String, dir: URL, binary: URL) {
    let gcc = try #require(Tools.gcc)
    let qemu = try #require(Tools.qemu)
    let dir = try Tools.tempDir()
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("Harness/run_payload.c")
    let binary = dir.appendingPathComponent("run_payload")
    let (cc, ccOut) = try Tools.run(gcc, ["-O1", "-static", "-o", binary.path, source.path])
    try #require(cc == 0, "\(ccOut)")
    return (qemu, dir, binary)
  }

  @Test func parameterBlockRoundTrips() throws {
    let p = try Payload(loadAddress: 0x1_0000, parameters: Self.params)
    #expect(p.entry == 0x1_0080)
    let back = p.image.withUnsafeBytes { Payload.parameters(fromBlock: $0) }
    #expect(back == Self.params)
    var broken = p.image
    broken[0] ^= 1
    #expect(broken.withUnsafeBytes { Payload.parameters(fromBlock: $0) } == nil)
    #expect(Array(p.image[0..<8]) == Array("HPTHPAY1".utf8))
  }

  @Test func badParametersAreRefusedWithTheReason() {
    var p = Self.params
    p.size = 0x8_0001
    #expect(throws: PPC64Error.self) { try Payload(loadAddress: 0x1_0000, parameters: p) }
    p = Self.params
    p.pagesPerReport = 0
    #expect(throws: PPC64Error.self) { try Payload(loadAddress: 0x1_0000, parameters: p) }
    p = Self.params
    p.pageBytes = 3000
    #expect(throws: PPC64Error.self) { try Payload(loadAddress: 0x1_0000, parameters: p) }
    do {
      _ = try Payload(loadAddress: 0x30_0000, parameters: Self.params)
      Issue.record("an image inside the walked range was accepted")
    } catch {
      #expect(error.description.contains("overlaps"), "\(error)")
    }
  }

  @Test func patternDependsOnSeedAddressAndPass() {
    let a = Payload.pattern(seed: 1, gpa: 0x10000, pass: 0)
    #expect(a & 1 == 1)
    #expect(a != Payload.pattern(seed: 2, gpa: 0x10000, pass: 0))
    #expect(a != Payload.pattern(seed: 1, gpa: 0x20000, pass: 0))
    #expect(a != Payload.pattern(seed: 1, gpa: 0x10000, pass: 1))
    #expect(a == Payload.pattern(seed: 1, gpa: 0x10000, pass: 0))
  }

  /// The whole payload, as objdump reads it, is the instruction list the builder made, and it
  /// has the parts the design needs (one `sc 1`, loads of the block, the loop branches).
  @Test(.enabled(if: Tools.objdump != nil, "powerpc64le-linux-gnu-objdump is not installed"))
  func objdumpReadsTheWholePayload() throws {
    let p = try Payload(loadAddress: 0x1_0000, parameters: Self.params)
    let code = Array(p.image[Int(Payload.parameterBlockSize)...])
    let texts = try Tools.disassemble(code, .littleEndian)
    try #require(texts.count == p.instructions.count, "\(texts.count) vs \(p.instructions.count)")
    for (i, inst) in p.instructions.enumerated() {
      #expect(squeeze(texts[i]) == squeeze(inst.objdumpText(at: UInt64(i * 4))), "at +\(i * 4)")
    }
    #expect(texts.filter { $0.hasPrefix(".long") }.isEmpty)
    #expect(texts.filter { squeeze($0) == "sc 1" }.count == 1)
    #expect(texts.contains { squeeze($0) == "ld r21,8(r20)" })
    #expect(texts.contains { squeeze($0) == "std r3,0(r17)" })
    // The trap flavour differs only in the report instruction.
    let t = try Payload(loadAddress: 0x1_0000, parameters: Self.params, report: .trap)
    let diff = zip(t.instructions, p.instructions).filter { $0 != $1 }
    #expect(diff.count == 1 && diff[0].0 == .trap && diff[0].1 == .sc(lev: 1))
  }

  /// The interrupt vectors, as objdump reads them at their guest address: every 32-byte slot
  /// from 0x100 names itself in r4 and branches to 0x1000, which reads SRR0, SRR1, DAR and
  /// DSISR into r5-r8 before the hcall and goes back to itself after it.
  @Test(.enabled(if: Tools.objdump != nil, "powerpc64le-linux-gnu-objdump is not installed"))
  func interruptVectorsReportWhichAndWhere() throws {
    let v = try InterruptVectors(hcallNumber: 0xF101)
    let texts = try Tools.disassemble(v.image, .littleEndian).map(squeeze)
    try #require(texts.count == v.instructions.count)
    for (i, inst) in v.instructions.enumerated() {
      #expect(texts[i] == squeeze(inst.objdumpText(at: UInt64(i * 4))), "at +\(i * 4)")
    }
    for vector in [0x100, 0x300, 0x380, 0x400, 0x700, 0xe00, 0xfe0] {
      let i = (vector - 0x100) / 4
      #expect(texts[i] == "li r4,\(vector)")
      // objdump's target is relative to the start of what it was given (0x100).
      #expect(texts[i + 1] == "b 0xf00", "\(texts[i + 1]) at \(vector)")
    }
    let common = Array(texts[((0x1000 - 0x100) / 4)...])
    #expect(
      Array(common.prefix(4)) == ["mfsrr0 r5", "mfsrr1 r6", "mfdar r7", "mfdsisr r8"])
    #expect(common.filter { $0 == "sc 1" }.count == 1)
    #expect(common.last == "b 0xf00")
    #expect(v.end == 0x1000 + UInt64(common.count * 4))
  }

  /// Runs the payload's loop for real, as a ppc64le user program under qemu-user: reports come
  /// with the counts the design says, a dword changed behind its back is reported with its
  /// address, expected and found values, and memory ends up holding the patterns.
  @Test(
    .enabled(
      if: Tools.gcc != nil && Tools.qemu != nil,
      "powerpc64le-linux-gnu-gcc or qemu-ppc64le-static is not installed"))
  func theLoopWritesAndVerifiesMemoryUnderQEMU() throws {
    let (qemu, dir, binary) = try Self.harness()
    defer { try? FileManager.default.removeItem(at: dir) }

    let load: UInt64 = 0x2000_0000
    let base: UInt64 = 0x3000_0000
    let pages: UInt64 = 8
    let page: UInt64 = 0x1000
    let seed: UInt64 = 0xfeed_5eed
    let params = PayloadParameters(
      base: base, size: pages * page, patternSeed: seed, pagesPerReport: 4, pageBytes: page,
      hcallNumber: 0xF100)
    let payload = try Payload(loadAddress: load, parameters: params, report: .trap)
    let image = dir.appendingPathComponent("payload.bin")
    try Data(payload.image).write(to: image)
    // 6 reports of 4 pages: passes 0-2 of 8 pages; page 2 corrupted after report 4 (the end
    // of pass 1), found in pass 2.
    let (rc, out) = try Tools.run(
      qemu,
      [
        binary.path, image.path, "0x\(String(load, radix: 16))", "0x\(String(base, radix: 16))",
        "\(pages * page)", "6", "4", "\(2 * page)",
      ])
    try #require(rc == 0, "\(out)")
    let reports = out.split(separator: "\n").filter { $0.hasPrefix("report ") }.map {
      $0.split(separator: " ").dropFirst().map(String.init)
    }
    try #require(reports.count == 6, "\(out)")
    func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
    let expectedVerified = ["0", "0", "4", "8", "12", "16"]
    for (k, r) in reports.enumerated() {
      #expect(r[0] == "61696", "hcall number in r3")  // 0xF100
      #expect(r[1] == expectedVerified[k], "report \(k + 1): verified \(r[1])")
    }
    #expect(reports[3][2] == "0" && reports[3][3] == "0x0")
    let bad = base + 2 * page
    #expect(reports[4][2] == "1", "mismatches: \(reports[4])")
    #expect(reports[4][3] == hex(bad))
    #expect(reports[4][4] == hex(Payload.pattern(seed: seed, gpa: bad, pass: 1)))
    #expect(reports[4][5] == "0xdead")
    #expect(reports[5][2] == "1", "the page is rewritten in pass 2: no new mismatch")
    // After report 6 pass 2 is complete: every page holds pattern(.., pass 2).
    let memory = out.split(separator: "\n").filter { $0.hasPrefix("page ") }.map {
      $0.split(separator: " ").dropFirst().map(String.init)
    }
    try #require(memory.count == Int(pages))
    for (i, m) in memory.enumerated() {
      let gpa = base + UInt64(i) * page
      #expect(m[0] == hex(gpa))
      #expect(m[1] == hex(Payload.pattern(seed: seed, gpa: gpa, pass: 2)), "page \(i)")
    }
  }

  /// With boltedSecondaryHPTEs, the payload first makes that many H_ENTER calls with the
  /// arguments boltedSecondaryHPTE(k) gives (valid, bolted, H = 1, group 2k + 1, 4 KiB page of
  /// the image), then walks memory as before. Run for real under qemu-user: each `trap` is
  /// printed with r3...r8.
  @Test(
    .enabled(
      if: Tools.gcc != nil && Tools.qemu != nil,
      "powerpc64le-linux-gnu-gcc or qemu-ppc64le-static is not installed"))
  func boltedSecondaryHPTEsAreEnteredFirst() throws {
    let (qemu, dir, binary) = try Self.harness()
    defer { try? FileManager.default.removeItem(at: dir) }
    let load: UInt64 = 0x2000_0000
    let base: UInt64 = 0x3000_0000
    let params = PayloadParameters(
      base: base, size: 8 * 0x1000, patternSeed: 7, pagesPerReport: 4, pageBytes: 0x1000,
      hcallNumber: 0xF100, boltedSecondaryHPTEs: 3)
    let payload = try Payload(loadAddress: load, parameters: params, report: .trap)
    #expect(payload.image.withUnsafeBytes { Payload.parameters(fromBlock: $0) } == params)
    let image = dir.appendingPathComponent("payload.bin")
    try Data(payload.image).write(to: image)
    let (rc, out) = try Tools.run(
      qemu,
      [
        binary.path, image.path, "0x\(String(load, radix: 16))", "0x\(String(base, radix: 16))",
        "\(8 * 0x1000)", "5", "0", "0",
      ])
    try #require(rc == 0, "\(out)")
    let traps = out.split(separator: "\n").filter { $0.hasPrefix("report ") }.map {
      $0.split(separator: " ").dropFirst().map(String.init)
    }
    try #require(traps.count == 5, "\(out)")
    func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
    for k in 0..<3 {
      let h = Payload.boltedSecondaryHPTE(UInt64(k), gpa: load)
      // r3 r4 r5 are printed in decimal, r6 r7 in hex (run_payload.c).
      #expect(traps[k][0] == "8", "H_ENTER")
      #expect(traps[k][1] == "0" && traps[k][2] == "\((2 * k + 1) * 8)")
      #expect(traps[k][3] == hex(h.v) && traps[k][4] == hex(h.r))
      #expect(h.v & 0x13 == 0x13, "valid, bolted, secondary")
      #expect(h.r & ~0xfff == load)
    }
    #expect(traps[3][0] == "61696" && traps[4][0] == "61696", "then the walk's reports: \(traps)")
    var tooMany = params
    tooMany.boltedSecondaryHPTEs = Payload.maxBoltedSecondaryHPTEs + 1
    #expect(throws: PPC64Error.self) { try Payload(loadAddress: load, parameters: tooMany) }
  }

  /// A page the host freed (MADV_REMOVE) reads back 0. With its dword set in the taken table,
  /// the payload counts it as taken (r11), leaves the dword as the host set it and writes the
  /// page again: no mismatch. The same 0 without the dword set is a mismatch. Run under qemu-user.
  @Test(
    .enabled(
      if: Tools.gcc != nil && Tools.qemu != nil,
      "powerpc64le-linux-gnu-gcc or qemu-ppc64le-static is not installed"))
  func aPageTheHostTookIsNotACorruption() throws {
    let (qemu, dir, binary) = try Self.harness()
    defer { try? FileManager.default.removeItem(at: dir) }
    let load: UInt64 = 0x2000_0000
    let table = load + 0x8000
    let base: UInt64 = 0x3000_0000
    let page: UInt64 = 0x1000
    func run(table: UInt64) throws -> (reports: [[String]], taken: [String]) {
      let params = PayloadParameters(
        base: base, size: 8 * page, patternSeed: 9, pagesPerReport: 4, pageBytes: page,
        hcallNumber: 0xF100, takenTable: table)
      let payload = try Payload(loadAddress: load, parameters: params, report: .trap)
      let image = dir.appendingPathComponent("payload.bin")
      try Data(payload.image).write(to: image)
      var args = [
        binary.path, image.path, "0x\(String(load, radix: 16))", "0x\(String(base, radix: 16))",
        "\(8 * page)", "6", "4", "\(2 * page)",
      ]
      if table != 0 { args.append("0x\(String(table, radix: 16))") }
      let (rc, out) = try Tools.run(qemu, args)
      try #require(rc == 0, "\(out)")
      let lines = out.split(separator: "\n")
      return (
        lines.filter { $0.hasPrefix("report ") }.map {
          $0.split(separator: " ").dropFirst().map(String.init)
        },
        lines.filter { $0.hasPrefix("taken ") }.map { String($0.split(separator: " ")[2]) }
      )
    }
    // Page 2 taken after report 4 (end of pass 1); pass 2 reads 0 there in report 5.
    let taken = try run(table: table)
    try #require(taken.reports.count == 6)
    #expect(taken.reports[4][2] == "0" && taken.reports[5][2] == "0", "no mismatch: \(taken)")
    #expect(taken.reports[4][8] == "1", "one page taken (r11): \(taken.reports[4])")
    // Only the host writes the table: the mark stays.
    #expect(taken.taken == ["0", "0", "1", "0", "0", "0", "0", "0"], "\(taken.taken)")
    // r9 = pass, r10 = offset of the next page: report 5 is pass 2 after 4 pages.
    #expect(taken.reports[4][6] == "2" && taken.reports[4][7] == "\(4 * page)")
    // The same 0 with no taken table: corruption.
    var corrupt = try run(table: 0)
    corrupt.reports = corrupt.reports.map { $0 }
    #expect(corrupt.reports[4][2] == "1", "0xdead found: \(corrupt.reports[4])")
  }
}
