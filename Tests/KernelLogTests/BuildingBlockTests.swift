import Testing

@testable import KernelLog

@Suite struct LinePatternTests {
  @Test func functionCaptureDropsOffsetsAndSuffixes() {
    let p = LinePattern("WARNING: {*}at {S} {F}")
    let c = p.match(
      "WARNING: CPU: 3 PID: 4242 at arch/powerpc/kvm/book3s_64_mmu_hv.c:1456 kvm_vm_ioctl_resize_hpt_commit.isra.0+0x2ac/0x4b0 [kvm_hv]"
    )
    #expect(c == ["arch/powerpc/kvm/book3s_64_mmu_hv.c", "kvm_vm_ioctl_resize_hpt_commit"])
  }

  @Test func addressesAreNotFunctions() {
    let p = LinePattern("corrupted in: {F}")
    #expect(p.match("Kernel stack is corrupted in: ffffffff8343632e") == nil)
    #expect(p.match("Kernel stack is corrupted in: 0x0") == nil)
    #expect(p.match("Kernel stack is corrupted in: ip6_xmit+0x1/0x2") == ["ip6_xmit"])
  }

  @Test func wordsShrinkToLetTheNextLiteralMatch() {
    #expect(
      LinePattern("BUG: using __this_cpu_{W}() in").match(
        "BUG: using __this_cpu_add() in preemptible") == ["add"])
    #expect(LinePattern("^{W} of size {N}").match("Read of size 8 at addr ffff") == ["Read", "8"])
    #expect(LinePattern("^{W} of size {N}").match("  Read of size 8") == nil)
  }

  @Test func endOfLineAndRest() {
    #expect(LinePattern("BUG:{$}").match("BUG:   ") == [])
    #expect(LinePattern("BUG:{$}").match("BUG: soft lockup") == nil)
    #expect(
      LinePattern("Kernel panic - not syncing: {R}").match(
        "Kernel panic - not syncing: Fatal exception  ") == ["Fatal exception"])
  }
}

@Suite struct LinePrefixTests {
  func split(_ line: String) -> (String, String?) {
    let bytes = Array(line.utf8)
    return bytes.withUnsafeBufferPointer { buf in
      let s = splitLine(buf, 0, buf.count)
      return (String(decoding: buf[s.textStart..<s.textEnd], as: UTF8.self), s.caller.description)
    }
  }

  @Test func prefixesAreRemoved() {
    #expect(split("<4>[  12.345678][ T4242] WARNING: x\r") == ("WARNING: x", "T4242"))
    #expect(split("[    0.000100][    C0] rcu: INFO: stall") == ("rcu: INFO: stall", "C0"))
    #expect(split("Nov 25 20:28:25 p9host kernel: [ 1.0] BUG: x") == ("BUG: x", nil))
    #expect(split("2026-11-25T20:28:25+0000 p9host kernel: Oops: x") == ("Oops: x", nil))
    #expect(split("[Wed Nov 25 20:11:42 2026] Oops: x") == ("Oops: x", nil))
    #expect(split("\u{1b}[0;32mplain console text") == ("plain console text", nil))
    #expect(split("no prefix at all") == ("no prefix at all", nil))
  }
}

@Suite struct SignatureTests {
  @Test func addressesAndNumbersDoNotSplitDuplicates() {
    #expect(
      TitleNormalizer.normalize("INFO: Allocated in fasync_helper age=1 cpu=3 pid=6024")
        == "INFO: Allocated in fasync_helper age=NUM cpu=NUM pid=NUM")
    #expect(
      TitleNormalizer.normalize(
        "KASAN: slab-out-of-bounds in ip6_fragment at addr ffff8801c1afdb5c")
        == "KASAN: slab-out-of-bounds in ip6_fragment at addr ADDR")
    #expect(TitleNormalizer.normalize("WARNING in ip6_fragment") == "WARNING in ip6_fragment")
    let a = CrashReport.signature(kind: .kasan, title: "KASAN: x in f at addr ffff8801c1afdb5c")
    let b = CrashReport.signature(kind: .kasan, title: "KASAN: x in f at addr ffff8801c1afd000")
    let c = CrashReport.signature(kind: .kasan, title: "KASAN: x in g at addr ffff8801c1afd000")
    #expect(a == b && a != c)
  }

  @Test func sameOopsOnAnotherCPUHasTheSameSignature() {
    let one = CrashDetector().scan(SeedTests.seed).first
    let other = CrashDetector().scan(
      SeedTests.seed.replacingOccurrences(of: "CPU: 136 PID: 41315", with: "CPU: 7 PID: 99")
        .replacingOccurrences(of: "0xd0000000157fb10c", with: "0xd0000000157fc000")
    ).first
    #expect(one?.signature == other?.signature)
    #expect(one?.cpu == 136 && other?.cpu == 7)
  }
}

@Suite struct TraceNameTests {
  func name(_ line: String, hint: Int = 0) -> String? {
    let bytes = Array(line.utf8)
    return bytes.withUnsafeBufferPointer { buf in
      firstSymbolWithOffset(buf, from: 0, plusFrom: hint).map {
        String(decoding: buf[$0], as: UTF8.self)
      }
    }
  }

  /// A name ends at its first '.'; powerpc's ELFv1 ".name" loses its leading dot first.
  @Test func aNameEndsAtItsFirstDot() {
    #expect(name(" kvmppc_hv_run+0x1c/0x40 [kvm_hv]") == "kvmppc_hv_run")
    #expect(name(" tcp_sendmsg.isra.0+0x2ac/0x4b0") == "tcp_sendmsg")
    #expect(name("[c000000000123456] .kvmppc_run_core+0x10/0x20") == "kvmppc_run_core")
    #expect(name("[c000000000123456] .foo.part.1+0x10/0x20") == "foo")
    #expect(name(" .+0x10/0x20") == nil)
    #expect(name(" 0x1234+0x10/0x20") == nil)
    #expect(name("[c0000000] [c0000000] +0x10/0x20 lr_caller+0x4/0x8") == "lr_caller")
  }

  /// The search for the offset may start at the first "+0x" the caller found: a '+' before it
  /// that starts no offset changes nothing.
  @Test func aHintAtTheFirstOffsetGivesTheSameName() {
    for line in [
      " a+b f+0x10/0x20", " x+1 .g.cold+0x1/0x2", "RIP: 0010:h+0x3/0x4",
      " ? k+0x5/0x6 (unreliable)",
    ] {
      let first = Array(line.utf8).indices.first { i in
        let b = Array(line.utf8)
        return i + 3 < b.count && b[i] == 0x2b && b[i + 1] == 0x30 && b[i + 2] == 0x78
      }!
      #expect(name(line, hint: first) == name(line), "\(line)")
      #expect(name(line) != nil, "\(line)")
    }
  }
}
