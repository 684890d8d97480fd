/// The guilty frame of a powerpc report, named as a powerpc developer names it (the labelling
/// rules of ../shared/corpus/power-linux): powerpc's die() and __warn() print the register
/// dump with an `NIP [addr] function+0xOFF/0xLEN` line (arch/powerpc/kernel/process.c
/// show_regs), xmon prints `pc: addr: function+0xOFF/0xLEN`, and the machine check event log
/// `MCE: CPUn: NIP: [addr] function+0xOFF/0xLEN` (arch/powerpc/kernel/mce.c). The NIP is the
/// first candidate, the link register next, the call trace last.
enum PowerFrameRule: Sendable {
  /// WARNING: the function on the WARNING line (arch/powerpc's __warn prints it), else the NIP.
  case site
  /// kernel BUG, program checks, unrecoverable exceptions, system resets: the NIP, whatever
  /// it is (the BUG_ON's or the trap's own function).
  case instruction
  /// Faults and machine checks: the NIP unless it is a generic helper (copy, string, slab,
  /// lock...), then the LR, then the first non-generic trace entry. An NIP at no symbol, or
  /// at the start of a data object (an instruction fetch from a variable), is a jump there:
  /// the caller in LR is the culprit.
  case fault
  /// Lockups: where the CPU is stuck (the NIP) unless generic (a spinlock, the idle loop).
  case stall
}

/// Which formats take their frame from the powerpc registers, by "pattern/format" id.
let powerFrameRules: [String: PowerFrameRule] = {
  var rules: [String: PowerFrameRule] = [:]
  for id in [
    "warn-file-cpu", "warn-file-at", "warn-at", "warn-at-wrapped", "refcount", "kobject-warn",
    "usercopy-warn", "zero-size-vmalloc", "kmalloc-warn",
  ] {
    rules["warning/" + id] = .site
  }
  for id in [
    "kernel-bug/kernel-bug", "kernel-bug/usercopy", "kernel-bug-x86/kernel-bug-addr",
    "oops/oops-unrecoverable", "oops/oops-unrecoverable-any", "oops/oops-bad-stack",
    "oops/oops-exception",
    "oops/oops-system-reset", "ppc-unrecoverable/unrecoverable",
  ] {
    rules[id] = .instruction
  }
  for id in [
    "kernel-bug/list-debug", "oops/oops-bad-area", "machine-check/ppc-machine-check",
    "machine-check/ppc-machine-check-kernel", "machine-check/ppc-mce-event",
    "machine-check/ppc-oops-machine-check",
  ] {
    rules[id] = .fault
  }
  for id in [
    "ppc-paging-data", "ppc-paging-other", "ppc-data-access", "ppc-data-access-old", "ppc-fetch",
    "ppc-unaligned", "user-memory", "arm-null", "arm-paging", "paging-any", "fault-any",
  ] {
    rules["unable-to-handle/" + id] = .fault
    rules["bug/" + id] = .fault
  }
  for id in ["null-x86", "null-ppc", "null-old", "paging-x86", "paging-x86-old", "x86-fault-any"] {
    rules["bug/" + id] = .fault
  }
  for id in [
    "bug/soft-lockup", "soft-lockup-ppc/soft-lockup-old",
    "hard-lockup/ppc-hard-lockup-self-wrapped", "hard-lockup/ppc-hard-lockup-cpu",
    "hard-lockup/ppc-hard-lockup",
  ] {
    rules[id] = .stall
  }
  return rules
}()

/// powerpc's generic helpers, on top of `genericSkips`: a fault or a lockup inside one of
/// these is its caller's. Copy and page primitives, allocator internals, bitmap/cpumask and
/// per-CPU helpers, notifier and CPU-hotplug callback walkers, JIT-compiled BPF programs, the
/// exception entry and exit paths, the workqueue worker, and data symbols a stray pointer
/// lands in.
let powerSkips: [String] = [
  // Copy, string and page primitives (arch/powerpc/lib).
  "copy_4K_page", "copy_page", "copy_tofrom_user", "__copy_tofrom_user", "copy_mc_",
  "memcpy_power7", "memcpy_mcsafe", "copy_from_user_nofault", "copy_to_user_nofault",
  "clear_user", "__clear_user", "strncpy_from_user", "csum_partial",
  // Page allocator and per-CPU memory.
  "get_page_from_freelist", "__alloc_pages", "alloc_pages", "free_pages", "__free_pages",
  "free_unref_page", "free_pcppages_bulk", "put_page", "__put_page", "folio_put",
  "pcpu_", "free_percpu", "__alloc_percpu", "___slab_alloc", "__slab_free",
  // Bitmaps and CPU masks.
  "find_next_bit", "find_first_bit", "_find_next_bit", "_find_first_bit", "__bitmap_",
  "cpumask_", "alloc_cpumask_var", "zalloc_cpumask_var", "free_cpumask_var",
  // Callback walkers: the callback (or the walker's caller) is the culprit.
  "notifier_call_chain", "cpuhp_invoke_callback", "cpuhp_issue_call", "cpuhp_setup_state",
  "cpuhp_state_remove_instance", "cpuhp_state_add_instance", "__cpuhp_",
  // JIT-compiled BPF programs are not kernel functions.
  "bpf_prog_", "bpf_dispatcher_",
  // Exception entry and exit.
  "interrupt_return", "interrupt_exit_kernel_prepare", "interrupt_exit_user_prepare",
  "ret_from_except", "fast_exception_return", "exc_", "hardware_interrupt_common",
  "decrementer_common", "do_IRQ", "__do_irq", "call_do_irq", "arch_local_irq_restore",
  "machine_check_common", "system_reset_common", "program_check_common",
  // The workqueue worker and kernel thread entry. (Not the idle loop: a CPU whose watchdog
  // fires in do_idle is stuck there.)
  "worker_thread", "process_one_work", "ret_from_kernel_thread", "ret_from_kernel_user_thread",
  "start_kernel_thread",
  // Data symbols: a pointer into them is not a function.
  "jiffies", "init_task", "init_thread_union", "swapper_pg_dir", "__per_cpu_offset",
]

let powerSkipSet = SkipSet(powerSkips)

/// Checks that BUG on behalf of their caller (the caller passed the bad list).
let powerCheckers = [
  "__list_add_valid", "__list_del_entry_valid", "list_add_valid", "list_del_entry_valid",
]
let powerCheckerSet = SkipSet(powerCheckers)

/// What the report's first register dump says.
struct PowerRegisters {
  /// The NIP's function, and whether the address is the first byte of a symbol too small to
  /// be a function (a data object: "sysctl_net_busy_read+0x0/0x4").
  var nip: String?
  var nipInDataSymbol = false
  /// An NIP line was found but named no kernel function (user address, 0, unknown).
  var nipUnsymbolized = false
  var lr: String?

  /// The first NIP (and the LR after it) in `lines`, or nil when the report has none (not
  /// powerpc).
  static func find(_ lines: ArraySlice<Line>) -> PowerRegisters? {
    var regs: PowerRegisters?
    for i in lines.indices {
      let line = lines[i]
      guard let (kind, from) = registerLine(line) else { continue }
      if kind == .otherArchitecture { return nil }
      let wrapped = i + 1 < lines.endIndex ? continuedSymbol(lines[i + 1]) : nil
      let symbol = firstSymbolWithOffset(line, from: from)
      let name = symbol.map { string(line, $0.lowerBound, $0.upperBound) } ?? wrapped
      switch kind {
      case .dump:
        // "NIP:  c000... LR: c000... CTR: ...": the report is powerpc's.
        if regs == nil { regs = PowerRegisters() }
      case .nip:
        if regs?.nip != nil || regs?.nipUnsymbolized == true { return regs }
        if regs == nil { regs = PowerRegisters() }
        if let name {
          regs!.nip = name
          if let symbol {
            let offset = skipSuffix(line, symbol.upperBound)
            regs!.nipInDataSymbol =
              hasPrefix(line, offset, plusZeroSlash)
              && (symbolSize(line, offset + plusZeroSlash.count).map { $0 <= 8 } ?? false)
          }
        } else {
          regs!.nipUnsymbolized = true
        }
      case .otherArchitecture:
        return nil
      case .lr:
        guard regs != nil, regs!.nip != nil || regs!.nipUnsymbolized else { continue }
        if regs!.lr == nil { regs!.lr = name }
        return regs
      }
    }
    return regs
  }

  /// `otherArchitecture`: an x86 "RIP: " or arm64 "pc : " line, so the report is not powerpc's.
  enum LineKind { case dump, nip, lr, otherArchitecture }
  private static let nipDump = Array("NIP:".utf8)
  private static let mceNIP = Array("NIP: [".utf8)
  private static let mce = Array("MCE: CPU".utf8)
  private static let plusZeroSlash = Array("+0x0/".utf8)

  /// The "0xLEN" at `from`, if any.
  private static func symbolSize(_ line: Line, _ from: Int) -> Int? {
    guard from + 2 < line.count, line[from] == UInt8(ascii: "0"),
      line[from + 1] == UInt8(ascii: "x")
    else { return nil }
    var p = from + 2
    var value = 0
    while p < line.count, p < from + 18, let digit = hexValue(line[p]) {
      value = value << 4 | digit
      p += 1
    }
    return p > from + 2 ? value : nil
  }

  private static func hexValue(_ b: UInt8) -> Int? {
    switch b {
    case 0x30...0x39: return Int(b - 0x30)
    case 0x61...0x66: return Int(b - 0x61 + 10)
    case 0x41...0x46: return Int(b - 0x41 + 10)
    default: return nil
    }
  }

  /// ".name.isra.0+0x0/": past the suffixes to the offset.
  private static func skipSuffix(_ line: Line, _ from: Int) -> Int {
    var p = from
    while p < line.count, line[p] != UInt8(ascii: "+"), line[p] != 0x20 { p += 1 }
    return p
  }

  /// "NIP [", "NIP func+", "NIP:  hex", "LR [", "LR  func+", "pc: ", "lr: ", "MCE: CPUn: NIP: [".
  static func registerLine(_ line: Line) -> (LineKind, Int)? {
    var p = 0
    while p < line.count, line[p] == 0x20 || line[p] == 0x09 { p += 1 }
    guard line.count - p >= 4 else { return nil }
    let b = line[p]
    if b == UInt8(ascii: "N"), line[p + 1] == UInt8(ascii: "I"), line[p + 2] == UInt8(ascii: "P") {
      let c = line[p + 3]
      if c == UInt8(ascii: ":") { return (.dump, p + 4) }
      if c == 0x20 || c == UInt8(ascii: "[") { return (.nip, p + 3) }
      return nil
    }
    if b == UInt8(ascii: "L"), line[p + 1] == UInt8(ascii: "R"),
      line[p + 2] == 0x20 || line[p + 2] == UInt8(ascii: "[")
    {
      return (.lr, p + 2)
    }
    // xmon: "pc: c008000000d4ddb0: function+0x68/0xd0".
    if b == UInt8(ascii: "p") || b == UInt8(ascii: "l"),
      line[p + 1] == (b == UInt8(ascii: "p") ? UInt8(ascii: "c") : UInt8(ascii: "r")),
      line[p + 2] == UInt8(ascii: ":"), line[p + 3] == 0x20
    {
      return (b == UInt8(ascii: "p") ? .nip : .lr, p + 4)
    }
    if b == UInt8(ascii: "R"), line[p + 1] == UInt8(ascii: "I"), line[p + 2] == UInt8(ascii: "P"),
      line[p + 3] == UInt8(ascii: ":")
    {
      return (.otherArchitecture, p)
    }
    if b == UInt8(ascii: "p"), line[p + 1] == UInt8(ascii: "c"), line[p + 2] == 0x20,
      line[p + 3] == UInt8(ascii: ":")
    {
      return (.otherArchitecture, p)
    }
    if b == UInt8(ascii: "M"), hasPrefix(line, p, mce), let at = indexOf(line, mceNIP, from: p) {
      return (.nip, at + 5)
    }
    return nil
  }
}
