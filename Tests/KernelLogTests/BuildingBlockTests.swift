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
    // At most two blanks after the prefix go with it; the text keeps its indentation.
    #expect(split("[   12.345678]     __fput+0x1/0x2") == ("   __fput+0x1/0x2", nil))
    #expect(split("[   12.345678]\u{a0}\u{a0} x") == ("\u{a0} x", nil))
    // (Two bytes of blanks at most: a no-break space after a space is cut, as it always was.)
    #expect(split("[   12.345678] \u{a0} x") == ("\u{fffd} x", nil))
    #expect(split("[   12.345678]  x") == ("x", nil))
    #expect(split("[   12.345678] \u{c2}x") == ("\u{c2}x", nil))
    #expect(split("[   12.345678] ") == ("", nil))
  }

  /// printk's stamp read eight bytes at a time gives what reading it byte by byte gives, and
  /// leaves every other prefix to that: over stamps of every width and every one-byte change
  /// of them (a letter, a second dot or bracket, a no-break space, a short line).
  @Test func wordWiseStampAgreesWithBytes() {
    var seeds: [String] = []
    for width in 1...8 {
      for seconds in ["0", "7", "12", "345", "6789", "12345", "123456"] where seconds.count <= width
      {
        let pad = String(repeating: " ", count: width - seconds.count)
        for fraction in ["1", "123", "000100", "1234567"] {
          seeds.append("[" + pad + seconds + "." + fraction + "] text follows here")
        }
      }
    }
    let changes: [UInt8] = [0x20, 0x2e, 0x5d, 0x5b, 0x41, 0x30, 0x39, 0x2f, 0x3a, 0xc2, 0xa0, 0x0a]
    var cases = 0
    var fast = 0
    for seed in seeds {
      let bytes = Array(seed.utf8)
      var variants = [bytes]
      for i in 1..<min(bytes.count, 18) {
        for c in changes {
          var v = bytes
          v[i] = c
          variants.append(v)
        }
        variants.append(Array(bytes[..<i]))
      }
      for v in variants {
        v.withUnsafeBufferPointer { buf in
          let word = printkTimestampEnd(buf, 0, buf.count)
          let byBytes = timestampEndByBytes(buf, 0, buf.count)
          if let word {
            fast += 1
            #expect(word == byBytes, "\(String(decoding: v, as: UTF8.self))")
          }
          cases += 1
        }
      }
    }
    // printk's "[%5lu.%06lu]" stamps all take the word-wise path.
    for seed in seeds where seed.dropFirst(6).hasPrefix(".") && seed.dropFirst(13).hasPrefix("]") {
      let bytes = Array(seed.utf8)
      #expect(bytes.withUnsafeBufferPointer { printkTimestampEnd($0, 0, $0.count) } == 14)
    }
    #expect(cases > 10_000 && fast > 200)
  }

  @Test func callerIdsAreRead() {
    #expect(split("[   12.345678][ T1070] x") == ("x", "T1070"))
    #expect(split("[   12.345678][    C0]   x") == (" x", "C0"))
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
  /// The word-wise digit mask agrees with a byte-by-byte test over every byte value.
  @Test func digitMaskAgreesWithBytes() {
    for b in 0...255 {
      let word = UInt64(b) &* 0x0101_0101_0101_0101
      #expect((digitBytes(word) != 0) == (b >= 0x30 && b <= 0x39), "byte \(b)")
      #expect((equalBytes(word, 0x20) != 0) == (b == 0x20), "byte \(b)")
    }
  }

  /// arm32's ") from [" found with one word load per ')' where the general search finds it.
  @Test func armFromIsFoundWhereTheGeneralSearchFindsIt() {
    let needle = Array(") from [".utf8)
    let lines = [
      "[<80165504>] (kthread_stop) from [<8163f8d8>] (caller+0x88/0x3a0)",
      "[<c0013b48>] (dump_backtrace+0x0/0x10c) from [<c04dd0b4>] (dump_stack+0x18/0x1c)",
      ") from [", ") from", "x) from [y", "(a)) from [", "(a) from (b) from [",
      "__fput+0x355/0x8b0",
      "f) fro", "", "))))) from [[[",
    ]
    for text in lines {
      let bytes = Array(text.utf8)
      bytes.withUnsafeBufferPointer { line in
        for from in 0...line.count {
          #expect(
            armFromIndex(line, from: from) == indexOf(line, needle, from: from), "\(text) \(from)")
        }
      }
    }
  }

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
