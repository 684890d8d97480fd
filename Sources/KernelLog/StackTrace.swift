#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// What one report line says about the stack.
struct TraceLine: Equatable {
  enum Role: Equatable {
    /// "RIP: 0010:f+0x", "NIP [c...] f+0x", "pc : f+0x", "PC is at f+0x": the faulting function.
    case instructionPointer
    /// "LR [..] f", "lr : f": the caller, already present in the trace.
    case linkRegister
    case frame
    /// "--- interrupt: 900 at f", "<IRQ>", "</IRQ>", "<NMI>", "<TASK>": boundaries, not frames.
    case boundary
    case text
  }
  var role: Role
  /// Where the function name is in the line (up to its first '.').
  var name: Range<Int>?
  /// x86 " ? f+0x" guesses and powerpc "(unreliable)" frames.
  var questionable: Bool

  func function(in line: UnsafeBufferPointer<UInt8>) -> String? {
    name.map { string(line, $0.lowerBound, $0.upperBound) }
  }

  func nameBytes(in line: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8>? {
    name.map { UnsafeBufferPointer(rebasing: line[$0]) }
  }
}

private let ipPrefixes: [[UInt8]] = [
  "RIP: ", "EIP: ", "IP: ", "NIP [", "pc : ", "PC is at ", "epc : ", "ERA: ",
].map {
  Array($0.utf8)
}
private let lrPrefixes: [[UInt8]] = ["LR [", "lr : ", "LR is at ", "ra : "].map { Array($0.utf8) }
private let boundaryPrefixes: [[UInt8]] = [
  "--- interrupt:", "<IRQ>", "</IRQ>", "<EOI>", "<NMI>", "</NMI>", "<TASK>", "</TASK>",
  "Exception stack(", "<SOFTIRQ>", "</SOFTIRQ>",
].map { Array($0.utf8) }
private let irqsLast = Array("irqs last".utf8)
/// The first bytes of `ipPrefixes` ("RIP: ", "EIP: ", "IP: ", "NIP [", "pc : ", "PC is at ",
/// "epc : ", "ERA: "), as a bit test: this runs for most report lines (a global array's
/// `contains` cost a lazy-initialisation check and a loop per line).
@inline(__always) private func mayStartIPPrefix(_ b: UInt8) -> Bool {
  let set: UInt64 =
    1 << (UInt64(UInt8(ascii: "R")) - 64) | 1 << (UInt64(UInt8(ascii: "E")) - 64)
    | 1 << (UInt64(UInt8(ascii: "I")) - 64) | 1 << (UInt64(UInt8(ascii: "N")) - 64)
    | 1 << (UInt64(UInt8(ascii: "p")) - 64) | 1 << (UInt64(UInt8(ascii: "P")) - 64)
    | 1 << (UInt64(UInt8(ascii: "e")) - 64)
  return b >= 64 && b < 128 && (set &>> UInt64(b &- 64)) & 1 != 0
}

func hasPrefix(_ line: UnsafeBufferPointer<UInt8>, _ from: Int, _ prefix: [UInt8]) -> Bool {
  guard line.count - from >= prefix.count else { return false }
  for k in 0..<prefix.count where line[from + k] != prefix[k] { return false }
  return true
}

func contains(_ line: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
  indexOf(line, needle, from: 0) != nil
}

/// `needle`'s first position in `line`, both raw bytes.
func indexOf(_ line: UnsafeBufferPointer<UInt8>, _ needle: UnsafeBufferPointer<UInt8>) -> Int? {
  indexOf(line, needle, from: 0)
}

func indexOf(_ line: UnsafeBufferPointer<UInt8>, _ needle: [UInt8], from: Int) -> Int? {
  needle.withUnsafeBufferPointer { indexOf(line, $0, from: from) }
}

func indexOf(_ line: UnsafeBufferPointer<UInt8>, _ needle: UnsafeBufferPointer<UInt8>, from: Int)
  -> Int?
{
  guard !needle.isEmpty, from >= 0, line.count - from >= needle.count, let base = line.baseAddress
  else {
    return nil
  }
  // memchr (vectorised) finds candidates for the first byte; this runs on every report line.
  let first = Int32(needle[0])
  let last = line.count - needle.count
  var i = from
  while i <= last {
    guard let hit = memchr(base + i, first, last - i + 1) else { return nil }
    let at = UnsafeRawPointer(hit) - UnsafeRawPointer(base)
    var k = 1
    while k < needle.count, line[at + k] == needle[k] { k += 1 }
    if k == needle.count { return at }
    i = at + 1
  }
  return nil
}

private let openParen: [UInt8] = [UInt8(ascii: "(")]

/// The first ") from [" (arm32's link to the caller) in `line` at or after `from`. It is eight
/// bytes: a candidate ')' is checked with one load (this runs on most report lines, and
/// `indexOf` with a global needle cost twice as much).
@inline(__always) func armFromIndex(_ line: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
  guard let base = line.baseAddress else { return nil }
  let pattern: UInt64 = 0x5b20_6d6f_7266_2029  // ") from [" as a little-endian word
  var i = from
  while line.count - i >= 8 {
    guard let hit = memchr(base + i, 0x29, line.count - 7 - i) else { return nil }
    let at = UnsafeRawPointer(hit) - UnsafeRawPointer(base)
    if UInt64(littleEndian: UnsafeRawPointer(base + at).loadUnaligned(as: UInt64.self)) == pattern {
      return at
    }
    i = at + 1
  }
  return nil
}

/// Whether the line starts like an instruction pointer or link register line ("RIP: ",
/// "NIP [", "LR [", "pc : "...): a cheap test before `classifyTraceLine`.
func mayBeRegisterLine(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
  var p = 0
  while p < line.count, line[p] == 0x20 || line[p] == 0x09 { p += 1 }
  guard p < line.count else { return false }
  let first = line[p]
  if mayStartIPPrefix(first) {
    for prefix in ipPrefixes where hasPrefix(line, p, prefix) { return true }
  }
  if first == UInt8(ascii: "L") || first == UInt8(ascii: "l") || first == UInt8(ascii: "r") {
    for prefix in lrPrefixes where hasPrefix(line, p, prefix) { return true }
  }
  return false
}

/// Classifies a prefix-free report line. Frames are found by their "sym+0xoff" shape, which
/// every architecture's unwinder prints, so x86, arm64 and powerpc traces all parse.
/// `mayBeArm`: false when the caller knows the line holds no ") from [" (an arm32 entry).
/// `firstOffset`: where the line's first "+0x<hex>" is, when the caller found it (no '+'
/// before it can start a symbol's offset, so the search for one starts there).
func classifyTraceLine(
  _ line: UnsafeBufferPointer<UInt8>, mayBeArm: Bool = true, firstOffset: Int = 0
) -> TraceLine {
  var p = 0
  while p < line.count, line[p] == 0x20 || line[p] == 0x09 { p += 1 }
  guard p < line.count else { return TraceLine(role: .text, name: nil, questionable: false) }
  // Prefix tables are consulted only when the first byte can start one of them.
  let first = line[p]
  if first == UInt8(ascii: "-") || first == UInt8(ascii: "<") || first == UInt8(ascii: "E") {
    for prefix in boundaryPrefixes where hasPrefix(line, p, prefix) {
      return TraceLine(role: .boundary, name: nil, questionable: false)
    }
  }
  // Lockdep's "hardirqs last enabled at (N): [<..>] f+0x" lines name functions but are not frames.
  // ("hard" or "soft" then "irqs last").
  if first == UInt8(ascii: "h") || first == UInt8(ascii: "s"), hasPrefix(line, p + 4, irqsLast) {
    return TraceLine(role: .text, name: nil, questionable: false)
  }
  var role = TraceLine.Role.frame
  if mayStartIPPrefix(first) {
    for prefix in ipPrefixes where hasPrefix(line, p, prefix) {
      role = .instructionPointer
      break
    }
  }
  if role == .frame,
    first == UInt8(ascii: "L") || first == UInt8(ascii: "l") || first == UInt8(ascii: "r")
  {
    for prefix in lrPrefixes where hasPrefix(line, p, prefix) {
      role = .linkRegister
      break
    }
  }
  // arm32: "[<80165504>] (kthread_stop) from [<8163f8d8>] (caller+0x88/0x3a0)": the frame is
  // the first parenthesised name, the one after "from" is its caller.
  if role == .frame, mayBeArm, let from = armFromIndex(line, from: p),
    let open = indexOf(line, openParen, from: p), open < from
  {
    var e = open + 1
    while e < from, isSymbolByte(line[e]), line[e] != UInt8(ascii: ".") { e += 1 }
    if e > open + 1 {
      return TraceLine(role: .frame, name: (open + 1)..<e, questionable: false)
    }
  }
  guard let name = firstSymbolWithOffset(line, from: p, plusFrom: firstOffset) else {
    return TraceLine(role: role == .frame ? .text : role, name: nil, questionable: false)
  }
  // powerpc appends "(unreliable)" at the end of the line.
  var e = line.count
  while e > 0, line[e - 1] == 0x20 { e -= 1 }
  // (The ')' first: the global's lazy-initialisation check costs more than the test.)
  var questionable =
    e > 0 && line[e - 1] == UInt8(ascii: ")") && e >= unreliableMark.count
    && hasPrefix(line, e - unreliableMark.count, unreliableMark)
  if name.lowerBound >= 2, line[name.lowerBound - 1] == 0x20,
    line[name.lowerBound - 2] == UInt8(ascii: "?")
  {
    questionable = true
  }
  return TraceLine(role: role, name: name, questionable: questionable)
}

/// The first "name+0xhex" in the line at or after `from`: (name up to its first '.', start
/// index). `plusFrom`: where to start looking for the '+', when after `from`.
func firstSymbolWithOffset(_ line: UnsafeBufferPointer<UInt8>, from: Int, plusFrom: Int = 0)
  -> Range<Int>?
{
  var i = max(from, plusFrom)
  let count = line.count
  guard let base = line.baseAddress else { return nil }
  let symbolBytes = symbolByteTable
  while i + 3 < count {
    // Jump to the next '+' with memchr.
    guard let hit = memchr(base + i, Int32(UInt8(ascii: "+")), count - 3 - i) else { return nil }
    i = UnsafeRawPointer(hit) - UnsafeRawPointer(base)
    if line[i] == UInt8(ascii: "+"), line[i + 1] == UInt8(ascii: "0"),
      line[i + 2] == UInt8(ascii: "x"),
      isHexDigit(line[i + 3])
    {
      // Back to the name's start, noting its two leftmost '.'s on the way (the name ends at
      // its first '.', after a leading one).
      var s = i
      var firstDot = -1
      var secondDot = -1
      while s > from, symbolBytes[Int(line[s &- 1])] {
        s &-= 1
        if line[s] == UInt8(ascii: ".") {
          secondDot = firstDot
          firstDot = s
        }
      }
      if s < i {
        let before: UInt8 = s > 0 ? line[s - 1] : 0x20
        // Accept names after a space, bracket, paren, colon or at line start.
        if before == 0x20 || before == 0x09 || before == UInt8(ascii: "]")
          || before == UInt8(ascii: "(")
          || before == UInt8(ascii: ":") || before == UInt8(ascii: "[") || s == from
        {
          // 64-bit big-endian powerpc (ELFv1) prints a function's code as ".name".
          var s = s
          var dot = firstDot
          if line[s] == UInt8(ascii: "."), s + 1 < i {
            s += 1
            dot = secondDot
          }
          let e = dot >= 0 ? dot : i
          if e > s, !(line[s] == UInt8(ascii: "0") && e - s > 1 && line[s + 1] == UInt8(ascii: "x"))
          {
            return s..<e
          }
        }
      }
    }
    i += 1
  }
  return nil
}

/// `isSymbolByte` of each byte value: one load per byte where names are scanned byte by byte
/// (a frame name's start is found backwards from its "+0x"). Written once, then only read.
nonisolated(unsafe) let symbolByteTable: UnsafePointer<Bool> = {
  let table = UnsafeMutablePointer<Bool>.allocate(capacity: 256)
  for b in 0..<256 { table[b] = isSymbolByte(UInt8(b)) }
  return UnsafePointer(table)
}()

let defaultStartMarkers = ["Call Trace:", "Call trace:", "Backtrace:", "backtrace:"]

/// How to pick a report's guilty frame. (A struct: as a class in `FrameSource`'s payload its
/// reference is stored with the enum's tag bits, which LeakSanitizer cannot follow.)
struct StackRecipe: Sendable, Hashable {
  enum Extractor: Sendable, Hashable {
    /// The first frame that is not a generic helper.
    case first
    /// Stalls and lockups: the frame just above the first dispatcher (syscall entry, workqueue,
    /// timer, softirq), since the top of the stack is wherever the loop happened to be.
    case stall
    /// Hung tasks: the first frame that is not scheduling, locking or waiting.
    case hung
  }
  /// Use the faulting instruction pointer line (RIP/NIP/pc) before the trace.
  let useIP: Bool
  /// Consider the function captured by the header pattern (capture index) first.
  let headerCapture: Int?
  /// Frames count only after a line containing one of these ("Call Trace:"); empty: anywhere.
  let startMarkers: [String]
  /// The markers are the default ones, which the scanner flags per line
  /// (`ReportKeyword.startMarker`).
  let defaultMarkers: Bool
  /// Precomputed forms, so analysing a report allocates nothing for them.
  let startMarkerBytes: [[UInt8]]
  let skipSet: SkipSet
  /// Entries of `skip` written "name$": names ending with that text are skipped.
  let skipSuffixes: [[UInt8]]
  /// Extra names to skip for this format, on top of the generic helpers.
  let skip: [String]
  let extractor: Extractor
  /// Look at the call trace after the header and IP (false: header capture and IP only).
  let useTrace: Bool

  init(
    useIP: Bool = true, headerCapture: Int? = nil,
    startMarkers: [String] = defaultStartMarkers,
    skip: [String] = [], extractor: Extractor = .first, useTrace: Bool = true
  ) {
    self.useIP = useIP
    self.headerCapture = headerCapture
    self.startMarkers = startMarkers
    self.skip = skip
    self.extractor = extractor
    self.useTrace = useTrace
    startMarkerBytes = startMarkers.map { Array($0.utf8) }
    defaultMarkers = startMarkers == defaultStartMarkers
    skipSet = SkipSet(skip.filter { !$0.hasSuffix("$") })
    skipSuffixes = skip.filter { $0.hasSuffix("$") }.map { Array($0.dropLast().utf8) }
  }
}

/// `name` ends with `suffix`.
func hasSuffix(_ name: UnsafeBufferPointer<UInt8>, _ suffix: [UInt8]) -> Bool {
  guard name.count >= suffix.count else { return false }
  let start = name.count - suffix.count
  for k in 0..<suffix.count where name[start + k] != suffix[k] { return false }
  return true
}

/// Generic helpers that are never the bug: sanitizer and report plumbing, locking, string and
/// copy primitives, printk, list and refcount helpers, trap entry. Each entry matches a name
/// that starts with it, or has it right after an '_' ("_raw_spin_lock" matches "spin_lock",
/// "vhci_shutdown_connection" does not match "down").
let genericSkips: [String] = [
  // syzkaller's newer page-cache, timer, I/O-port and iterator helpers, and the workqueue's
  // own queueing (KASAN records an aux stack there on the caller's behalf).
  "insert_work", "__queue_delayed_work", "queue_delayed_work_on", "ida_free",
  "do_read_cache_folio", "read_cache_page", "find_lock_entries", "truncate_inode_pages_range",
  "sk_stop_timer_sync", "__timer_delete_sync", "logic_in", "logic_out", "copy_from_iter",
  "copy_to_iter", "copy_page_to_iter", "copy_page_from_iter", "copy_folio_to_iter",
  "print_tainted",
  "__sanitizer", "asan", "kasan", "msan", "kmsan", "kcsan", "ubsan", "check_memory_region",
  "kfence", "print_address_description", "print_report", "report_bug", "read_word_at_a_time",
  "panic", "invalid_op", "fixup_bug", "do_error", "do_trap", "handle_bug", "exc_invalid_op",
  "dump_stack", "show_stack", "warn_slowpath", "warn_alloc", "warn", "debug_object",
  "lockdep", "lock_acquire", "lock_release", "lock_class", "reacquire_held_locks", "spin_lock",
  "spin_trylock", "spin_unlock", "raw_read_lock", "raw_write_lock", "read_lock", "write_lock",
  "down", "down_read", "down_write", "up_read", "up_write", "mutex_lock", "mutex_trylock",
  "mutex_unlock", "osq_lock", "refcount_", "memcpy", "memcmp", "memset", "memchr", "memmove",
  "strcmp", "strncmp", "strcpy", "strlcpy", "strncpy", "strscpy", "strlen", "strnlen", "strchr",
  "strnstr", "copy_to_user", "copy_from_user", "copy_user", "put_user", "get_user",
  "might_fault", "might_sleep", "list_add", "list_del", "list_replace", "list_move",
  "list_splice", "indirect_thunk", "string", "pointer", "vsnprintf", "snprintf", "scnprintf",
  "kasprintf", "kvasprintf", "printk", "vprintk", "dev_printk", "dev_info", "dev_warn", "dev_err",
  "program_check_exception", "program_check_common", "bad_page_fault", "do_page_fault",
  "hash__do_page_fault", "handle_page_fault", "data_access_common", "instruction_access_common",
  "page_fault_oops", "kernelmode_fixup_or_oops", "no_context", "bad_area", "die", "oops_end",
  "read_once_word", "arch_stack_walk", "stack_trace_save", "save_stack", "kmem_cache_free_bulk",
  // The slab allocator itself, generic like memcpy: a fault or WARN inside it is its
  // caller's (a corrupted cache or a bad argument).
  "kmem_cache_alloc", "kmem_cache_destroy", "kmalloc", "__kmalloc", "krealloc", "__krealloc",
  "trace_hardirqs", "check_preemption_disabled", "preempt_count", "debug_smp_processor_id",
  "should_fail", "fail_dump", "asm_exc_", "exc_page_fault", "error_entry", "kthread_stop",
  "flush_work",
  "cancel_work_sync", "__cancel_work", "del_timer", "timer_delete", "try_to_grab_pending",
  "flush_workqueue",
  "drain_workqueue", "destroy_workqueue", "finish_wait", "kobject_put", "kobject_del",
  "kobject_uevent",
  "device_del", "device_unregister", "device_destroy", "sysfs_remove", "device_remove_file",
  "__wake_up", "queue_work", "__queue_work", "mod_timer", "__mod_timer",
  "dump_backtrace", "walk_stackframe", "stack_trace_consume_entry", "show_stack", "hwasan", "rb_",
  "__rb_",
  "vscnprintf", "hex_dump", "crc", "strstr", "memdup_user", "kfree", "kmem_cache_free",
  "mutex_remove_waiter",
  "atomic_dec_and_lock", "_atomic_dec_and_lock", "console_unlock", "xas_", "rhashtable_", "idr_",
  "bitmap_", "kstrto", "sprintf", "aes", "lock_timer_base",
  "native_queued_spin_lock", "queued_spin_lock", "do_raw_spin", "check_memory_region",
  "__do_kernel_fault", "do_bad_area", "do_tag_check_fault", "do_mem_abort", "el1_abort",
  "el1h_64_sync",
  "el1_da", "do_translation_fault", "__kernel_fault", "report_tag_fault", "kobject_cleanup",
  "kobject_release", "wait_for_completion", "get_device_parent", "device_add", "device_release",
  "put_device",
  "device_register", "mutex_optimistic_spin", "__mutex_lock", "rwsem_", "__down", "osq_",
  "timer_is_static_object",
  "work_is_static_object", "print_usage_bug", "mark_lock", "valid_state", "mark_held_locks",
  "__bad_stack",
  "el1_sync", "el1h_64_sync_handler", "print_circular_bug", "check_noncircular", "check_prev_add",
  "check_prevs_add", "validate_chain", "iput", "__raw_read", "__raw_write", "usb_control_msg",
  "usb_start_wait_urb", "usb_kill_urb", "rt_mutex", "i2c_del_adapter", "raw_spin_rq_", "rq_lock",
  "rq_unlock", "usb_submit_urb", "usb_bulk_msg", "usb_interrupt_msg",
]

/// Where execution was dispatched from (syscall entry, workqueue, timers, softirq, kthreads);
/// a stall is attributed to the frame just above the first of these.
let stallAnchors: [String] = [
  "process_one_work", "do_syscall_", "do_fast_syscall_", "system_call", "sysenter_dispatch",
  "netif_receive_skb", "do_softirq", "handle_softirqs", "call_timer_fn", "run_timer_softirq",
  "run_ksoftirqd", "smpboot_thread_fn", "kthread", "start_secondary", "cpu_startup_entry",
  "ret_from_fork", "vfs_write", "vfs_read", "vfs_ioctl", "do_vfs_ioctl", "blkdev_ioctl",
  "call_read_iter", "call_write_iter", "do_iter_readv_writev", "mmap_region", "do_mmap",
  "do_dentry_open", "vfs_open", "sock_sendmsg", "sock_recvmsg", "sock_release", "sock_ioctl",
  "sock_do_ioctl", "__sys_setsockopt", "__sys_connect", "__sys_accept", "nfnetlink_rcv_msg",
  "__do_fault", "do_page_fault", "task_work_run", "exit_to_user",
  "exit_to_usermode", "__fput", "tasklet_action", "__run_timers", "expire_timers",
  "ksys_ioctl", "el0_svc", "invoke_syscall", "el0_svc_common", "sys_ioctl", "SyS_ioctl",
  "SYSC_ioctl", "sys_connect", "SyS_connect", "SYSC_connect", "sys_socketpair", "rtnetlink_rcv_msg",
  "genl_rcv_msg", "sock_common_setsockopt", "kernel_setsockopt", "sys_setsockopt",
]

/// Anchors compared without their leading underscores, like the names.
let stallAnchorSet = SkipSet(stallAnchors.map { String($0.drop { $0 == "_" }) })

/// Dispatchers that syzkaller's stall extractor finds anywhere in a name (its unanchored
/// `linuxStallAnchorFrames`): a driver's "..._compat_ioctl" is the compat ioctl dispatch, so
/// the stall is in the ioctl handler it called.
let stallSegmentAnchors: [String] = [
  "compat_ioctl", "compat_sys_ioctl", "vfs_iter_read", "vfs_iter_write", "do_iter_read",
  "do_iter_write", "new_sync_read", "new_sync_write", "blkdev_driver_ioctl", "hrtimer_run",
  "tasklet_hi_action", "run_timers", "el0_svc_handler", "tracesys_phase2", "ret_fast_syscall",
  "kernel_listen", "kernel_accept", "sk_common_release",
]
let stallSegmentAnchorSet = SkipSet(stallSegmentAnchors)

/// Syscall wrapper prefixes an anchor may follow ("__x64_sys_ioctl" is "sys_ioctl").
private let wrapperPrefixes: [[UInt8]] = ["x64_", "ia32_", "arm64_", "se_", "do_", "compat_"].map {
  Array($0.utf8)
}

/// Anchors match a name's start (after underscores and a syscall wrapper prefix), not any
/// segment: "llcp_sock_sendmsg" is not the dispatcher "sock_sendmsg".
func isStallAnchor(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
  if stallSegmentAnchorSet.matches(name) { return true }
  var p = 0
  while true {
    while p < name.count, name[p] == UInt8(ascii: "_") { p += 1 }
    if stallAnchorSet.matchesAt(name, p) { return true }
    // Wrappers nest: "__ia32_compat_sys_ioctl".
    guard let prefix = wrapperPrefixes.first(where: { hasPrefix(name, p, $0) }) else {
      return false
    }
    p += prefix.count
  }
}

/// Where a stalled CPU is seen waiting for others (IPIs), the stall is named after the wait so
/// reports collapse: prefix of the interrupted function and the name used.
let stallCollapses: [(prefix: String, name: String)] = [
  ("smp_call_function", "smp_call_function")
]

/// Syscall entry prefixes removed from stall frames ("__x64_sys_futex" -> "sys_futex").
/// A C++ (Itanium ABI) mangled plain function name, "_Z8fakeNameiii", is named without its
/// parameter types ("fakeName"), as syzkaller's demangling filter does.
func demangledPlainName(_ name: String) -> String? {
  let b = Array(name.utf8)
  guard b.count > 3, b[0] == UInt8(ascii: "_"), b[1] == UInt8(ascii: "Z") else { return nil }
  var i = 2
  var length = 0
  while i < b.count, b[i] >= 0x30, b[i] <= 0x39, length < 10_000 {
    length = length * 10 + Int(b[i] - 0x30)
    i += 1
  }
  guard i > 2, length > 0, i + length <= b.count else { return nil }
  return String(decoding: b[i..<(i + length)], as: UTF8.self)
}

/// Architecture syscall wrappers (syzkaller's stripFramePrefixes as its corpus titles them):
/// "__arm64_sys_x" is "sys_x", "__se_sys_x" is "x". The longest matching prefix goes.
let framePrefixes: [String] = [
  "__x64_", "__ia32_", "__arm64_", "__se_sys_", "__do_sys_",
]

func stripFramePrefix(_ name: String) -> String {
  if let plain = demangledPlainName(name) { return plain }
  var best = name[...]
  for prefix in framePrefixes where name.hasPrefix(prefix) && name.count - prefix.count < best.count
  {
    best = name.dropFirst(prefix.count)
  }
  return best.isEmpty ? name : String(best)
}

let syscallPrefixes: [String] = [
  "__x64_", "__ia32_", "__arm64_", "__se_", "__do_", "SYSC_", "SyS_", "compat_SYSC_", "compat_SyS_",
]

/// Frames that hide the real waiter of a hung task.
let hungSkips: [String] = [
  "sched", "_lock", "lock_", "_slowlock", "down", "completion", "kthread", "wait", "synchronize",
  "context_switch", "__switch_to", "cancel_delayed_work", "rcu_barrier", "flush_work",
  "flush_workqueue", "io_schedule", "bit_wait", "mutex", "rwsem", "percpu_", "msleep",
  "schedule_timeout", "rt_mutex", "freezer",
]

/// Skip entries matched at a name's segment starts (its start, after each '_', and at each
/// '_'): a name is compared only with the entries that share the two bytes at a start.
struct SkipSet: Sendable, Hashable {
  /// The entries' bytes, for equality (the search uses `table`).
  private let key: [UInt8]
  private let table: SkipTable

  init(_ list: [String]) {
    let entries = list.filter { !$0.isEmpty }.map { Array($0.utf8) }
    key = entries.flatMap { $0 + [0] }
    table = SkipTable(entries)
  }

  static func == (a: SkipSet, b: SkipSet) -> Bool { a.key == b.key }
  func hash(into hasher: inout Hasher) { hasher.combine(key) }

  /// An entry starts exactly at `i`.
  func matchesAt(_ n: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
    guard i < n.count else { return false }
    return table.matchesAt(n, i)
  }

  func matches(_ n: UnsafeBufferPointer<UInt8>) -> Bool {
    let t = table
    var i = 0
    while i < n.count {
      // Segment starts: the name's start (after leading underscores) and after each '_'; an
      // entry that itself starts with '_' may also begin at an underscore.
      if i == 0 || n[i &- 1] == UInt8(ascii: "_") || n[i] == UInt8(ascii: "_") {
        if t.matchesAt(n, i) { return true }
      }
      i &+= 1
    }
    return false
  }
}

/// A skip set's search tables in memory of their own, read without reference counting per
/// name (a frame name is checked against several sets, for every frame of every report).
/// Immutable after init.
final class SkipTable: @unchecked Sendable {
  /// Entries of two or more bytes, bucketed by a hash of their first two: `order[h]..<order[h
  /// + 1]` index `entries`, each `(start, count)` in `store`.
  private let store: UnsafeMutablePointer<UInt8>
  private let entries: UnsafeMutablePointer<(start: Int32, count: Int32)>
  private let order: UnsafeMutablePointer<Int32>
  /// Bit set over the first byte pairs of those entries: most starts end at one bit test.
  private let pairBits: UnsafeMutablePointer<UInt64>
  /// One-byte entries, by byte.
  private let single: UnsafeMutablePointer<Bool>

  static let buckets = 1024
  @inline(__always) static func bucket(_ pair: Int) -> Int { (pair &* 0x9E37) >> 6 & 1023 }

  init(_ list: [[UInt8]]) {
    single = .allocate(capacity: 256)
    single.initialize(repeating: false, count: 256)
    pairBits = .allocate(capacity: 1024)
    pairBits.initialize(repeating: 0, count: 1024)
    var long: [[UInt8]] = []
    var buckets: [Int] = []
    for bytes in list where !bytes.isEmpty {
      if bytes.count == 1 {
        single[Int(bytes[0])] = true
        continue
      }
      let pair = Int(bytes[0]) << 8 | Int(bytes[1])
      pairBits[pair >> 6] |= 1 << UInt64(pair & 63)
      long.append(bytes)
      buckets.append(Self.bucket(pair))
    }
    let (starts, byBucket) = groupByKey(buckets, keys: Self.buckets)
    order = .allocate(capacity: Self.buckets + 1)
    order.initialize(from: starts, count: Self.buckets + 1)
    store = .allocate(capacity: max(1, long.reduce(0) { $0 + $1.count }))
    entries = .allocate(capacity: max(1, long.count))
    var at = 0
    for (k, index) in byBucket.enumerated() {
      let bytes = long[Int(index)]
      for (j, b) in bytes.enumerated() { store[at + j] = b }
      entries[k] = (Int32(at), Int32(bytes.count))
      at += bytes.count
    }
  }

  deinit {
    store.deallocate()
    entries.deallocate()
    order.deallocate()
    pairBits.deallocate()
    single.deallocate()
  }

  /// An entry starts exactly at `i` (< n.count).
  @inline(__always) func matchesAt(_ n: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
    if single[Int(n[i])] { return true }
    let room = n.count &- i
    guard room >= 2 else { return false }
    let pair = Int(n[i]) << 8 | Int(n[i &+ 1])
    guard pairBits[pair >> 6] & (1 << UInt64(pair & 63)) != 0 else { return false }
    let h = Self.bucket(pair)
    var k = Int(order[h])
    let end = Int(order[h &+ 1])
    while k < end {
      let start = Int(entries[k].start)
      let count = Int(entries[k].count)
      if count <= room {
        var j = 0
        while j < count, n[i &+ j] == store[start &+ j] { j &+= 1 }
        if j == count { return true }
      }
      k &+= 1
    }
    return false
  }
}

let genericSkipSet = SkipSet(genericSkips)
/// `stallAnchors` matched like skip entries (at a name's start or after an '_').
let stallAnchorSegmentSet = SkipSet(stallAnchors)

func nameMatchesSkip(_ name: UnsafeBufferPointer<UInt8>, _ skips: SkipSet) -> Bool {
  skips.matches(name)
}

func nameMatchesSkip(_ name: String, _ skips: [String]) -> Bool {
  var name = name
  return name.withUTF8 { n in
    for entry in skips {
      var entry = entry
      if entry.withUTF8({ matchesSegment(n, $0) }) { return true }
    }
    return false
  }
}

/// `entry` occurs at the start of `name` or right after an underscore, ignoring leading
/// underscores of `name`.
func matchesSegment(_ name: String, _ entry: String) -> Bool {
  var name = name
  var entry = entry
  return name.withUTF8 { n in entry.withUTF8 { e in matchesSegment(n, e) } }
}

func matchesSegment(_ n: UnsafeBufferPointer<UInt8>, _ e: UnsafeBufferPointer<UInt8>) -> Bool {
  guard !e.isEmpty, n.count >= e.count else { return false }
  var i = 0
  while i + e.count <= n.count {
    if i == 0 || n[i - 1] == UInt8(ascii: "_") || e[0] == UInt8(ascii: "_") {
      var k = 0
      while k < e.count, n[i + k] == e[k] { k += 1 }
      if k == e.count { return true }
    }
    i += 1
  }
  return false
}
