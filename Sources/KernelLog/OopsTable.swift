// The crash knowledge: which console lines start a kernel crash report and how each is titled.
// Titles follow syzkaller's conventions so that results compare with its corpus and dashboards.

/// The faulting instruction alone names the culprit (double faults, divide errors).
private let ipOnly = FrameSource.stack(StackRecipe(useIP: true, useTrace: false))
private func stack(
  header: Int? = nil, ip: Bool = true, skip: [String] = [], after: [String]? = nil,
  _ extractor: StackRecipe.Extractor = .first
) -> FrameSource {
  .stack(
    StackRecipe(
      useIP: ip, headerCapture: header, startMarkers: after ?? defaultStartMarkers, skip: skip,
      extractor: extractor))
}
/// Lockdep names the guilty function in "at: func" lines after a phrase.
private func lockdepLine(after: String) -> FrameSource {
  .line(
    after: after,
    patterns: [LinePattern("at: [<{X}>] {F}"), LinePattern("at: {X} {F}"), LinePattern("at: {F}")])
}
/// Interrupt entries after which a stalled CPU's own frames begin.
private let stallStarts = [
  "apic_timer_interrupt", "</IRQ>", "--- interrupt: 900", "--- interrupt: 901",
  "--- interrupt: 980",
  "el1_irq", "el1_interrupt", "Exception stack",
]

/// Helpers that WARN on behalf of their caller: the caller is the bug.
private let warnHelpers = [
  "alloc_pages", "__alloc_pages", "__alloc_frozen_pages", "kmalloc", "__kmalloc", "kvmalloc",
  "__local_bh_enable",
  "local_bh_enable", "__seqprop_assert", "__virt_to_phys", "ref_tracker", "rollback_registered",
  "devres_release",
  "sysfs_remove", "add_uevent_var", "kobject_", "drop_nlink", "mark_buffer_dirty",
  "__do_kernel_fault",
  "get_device_parent", "device_add", "__switch_to", "unregister_netdevice", "unregister_netdev",
  "device_release",
  "put_device", "__unregister_client", "alloc_page", "device_for_each_child",
]

/// Messages a powerpc kernel prints with pr_warn() and a literal "WARNING: " prefix, not WARN():
/// boot-time firmware, NVRAM and command-line notes that come with no report (taken from the
/// printk formats of arch/powerpc, init and fs in Debian's 6.1 tree, up to the first
/// conversion). A pseries guest under QEMU prints the NVRAM one on every boot.
private let informationalPowerWarnings = [
  "WARNING: nvram corruption detected", "WARNING: nvram partition checksum",
  "WARNING: Can't find string index for", "WARNING: Ignoring cmdline option",
  "WARNING: ibm,arch-vec-5-platform-support longer than expected",
  "WARNING: Estimating decrementer frequency", "WARNING: Estimating processor frequency",
  "WARNING: ignoring large property", "WARNING: F/W using newer",
  "WARNING: Failed to read OPAL base & entry values", "WARNING: OPAL regions count",
  "WARNING: If the unsaved regions contain kernel pages",
  "WARNING: Kernel metadata format mismatch identified",
  "WARNING: appending only crashing CPU's register data", "WARNING: DTL deregistration for cpu",
  "WARNING: SLB shadow buffer deregistration", "WARNING: VPA deregistration for cpu",
  "WARNING: DTL registration of cpu", "WARNING: SLB shadow buffer registration for",
  "WARNING: VPA registration for cpu", "WARNING: 'bootconfig' found on the kernel command line",
  "WARNING: the dlm DLM_LSFL_TIMEWARN flag is being deprecated",
  "WARNING: the lkb timeout feature is being deprecated",
  "WARNING: memory leak will occur if overlay removed",
]

/// A locked-up CPU's frames start at its instruction pointer.
private let lockupStarts = [
  "RIP: ", "NIP [", "pc : ", "PC is at ", "EIP: ", "Call Trace:", "Call trace:",
]

/// panic() and what calls it on a report's behalf: the panic's caller is the frame.
private let panicHelpers = [
  "panic", "vpanic", "nmi_panic", "dump_stack", "show_stack", "do_exit", "make_task_dead",
  "oops_end", "die", "check_panic_on_warn",
]

/// Helpers whose BUG_ON() checks the caller's arguments: the caller is the bug.
private let bugHelpers = [
  "skb_put", "skb_push", "skb_pull", "skb_over_panic", "skb_under_panic", "__phys_addr",
  "folio_unlock",
  "unlock_page", "__skb_", "kfree_skb", "put_page", "__free_pages",
]

private let paging = "BUG: unable to handle kernel paging request in $F"
private let nullDeref = "BUG: unable to handle kernel NULL pointer dereference in $F"
private let memorySafety = CrashTypeRule.fixed("MEMORY_SAFETY_BUG")
private let nullType = CrashTypeRule.fixed("NULL-POINTER-DEREFERENCE")
private let lockdepType = CrashTypeRule.fixed("LOCKDEP")
private let hang = CrashTypeRule.fixed("HANG")
private let dos = CrashTypeRule.fixed("DoS")
private let bugType = CrashTypeRule.fixed("BUG")
private let warningType = CrashTypeRule.fixed("WARNING")
private let atomicSleep = CrashTypeRule.fixed("ATOMIC_SLEEP")

/// Faults in every form: powerpc before 5.0 ("for data at address"), 5.0+ ("BUG: Unable to
/// handle kernel data access [on read|write] at"), x86 and arm64. Low addresses are NULL
/// dereferences whatever the wording.
private let faultFormats: [OopsFormat] = [
  OopsFormat(
    "ppc-paging-data", "Unable to handle kernel paging request for data at address {W}",
    title: paging, kind: .pagingFault, type: memorySafety, lowAddress: 0, nullTitle: nullDeref),
  OopsFormat(
    "ppc-paging-other", "Unable to handle kernel paging request for {R}", title: paging,
    kind: .pagingFault,
    type: memorySafety),
  OopsFormat(
    "ppc-data-access", "Unable to handle kernel data access on {W} at {W}", title: paging,
    kind: .pagingFault,
    type: memorySafety, lowAddress: 1, nullTitle: nullDeref),
  OopsFormat(
    "ppc-data-access-old", "Unable to handle kernel data access at {W}", title: paging,
    kind: .pagingFault,
    type: memorySafety, lowAddress: 0, nullTitle: nullDeref),
  OopsFormat(
    "ppc-fetch", "Unable to handle kernel instruction fetch", title: paging, kind: .pagingFault,
    type: memorySafety),
  OopsFormat(
    "ppc-unaligned", "Unable to handle kernel unaligned access", title: paging, kind: .pagingFault,
    type: memorySafety),
  OopsFormat(
    "user-memory", "Unable to handle kernel access to user memory",
    title: "BUG: unable to handle kernel access to user memory in $F", kind: .accessFault,
    type: memorySafety),
  OopsFormat(
    "arm-null", "Unable to handle kernel NULL pointer dereference", title: nullDeref,
    kind: .nullDeref,
    type: nullType),
  OopsFormat(
    "arm-paging", "Unable to handle kernel paging request at virtual address {W}", title: paging,
    kind: .pagingFault, type: memorySafety, lowAddress: 0, nullTitle: nullDeref),
  OopsFormat(
    "paging-any", "Unable to handle kernel paging request", title: paging, kind: .pagingFault,
    type: memorySafety),
  OopsFormat(
    "fault-any", "Unable to handle kernel {R}", title: "BUG: unable to handle kernel",
    kind: .accessFault,
    type: memorySafety, corrupted: true),
]

/// The fault forms printed after "BUG: " (powerpc 5.0+); the others have no "BUG:" prefix.
private let bugPrefixedFaults: Set<String> = [
  "ppc-data-access", "ppc-data-access-old", "ppc-fetch", "ppc-unaligned", "user-memory",
  "fault-any",
]

let defaultOopsTable: [OopsPattern] = [
  OopsPattern(
    "bug", header: "BUG:", suppress: ["BUG: no syscalls can create resource"],
    [
      OopsFormat(
        "kasan-invalid-free", "BUG: KASAN: double-free or invalid-free in {F}",
        title: "KASAN: invalid-free in $F",
        kind: .kasan, type: .fixed("KASAN-INVALID-FREE"),
        frame: stack(skip: ["kmem_", "slab_", "kfree", "vunmap", "vfree", "kvfree"])),
      OopsFormat(
        "kasan-double-free", "BUG: KASAN: double-free in {F}", title: "KASAN: invalid-free in $F",
        kind: .kasan,
        type: .fixed("KASAN-INVALID-FREE"),
        frame: stack(skip: ["kmem_", "slab_", "kfree", "vunmap", "vfree", "kvfree"])),
      OopsFormat(
        "kasan-free", "BUG: KASAN: invalid-free in {F}", title: "KASAN: invalid-free in $F",
        kind: .kasan,
        type: .fixed("KASAN-INVALID-FREE"),
        frame: stack(skip: ["kmem_", "slab_", "kfree", "vunmap", "vfree", "kvfree"])),
      OopsFormat(
        "kasan-access", "BUG: KASAN: {W} in {F}", extra: ["^{W} of size {N}"],
        title: "KASAN: $1 $3 in $F",
        kind: .kasan, type: .sanitizer(prefix: "KASAN", bug: 0, access: 2), frame: stack(header: 1)),
      OopsFormat(
        "kasan-tag-access", "BUG: KASAN: {W} in {F}", extra: ["^{W} at addr"],
        title: "KASAN: $1 $3 in $F",
        kind: .kasan, type: .sanitizer(prefix: "KASAN", bug: 0, access: 2), frame: stack(header: 1)),
      OopsFormat(
        "kasan-old-addr", "BUG: KASAN: {W} in {F} at addr {X}",
        title: "KASAN: $1 in $F at addr ADDR", kind: .kasan,
        type: .sanitizer(prefix: "KASAN", bug: 0, access: nil), frame: stack(header: 1)),
      OopsFormat(
        "kasan", "BUG: KASAN: {W} in {F}", title: "KASAN: $1 in $F", kind: .kasan,
        type: .sanitizer(prefix: "KASAN", bug: 0, access: nil), frame: stack(header: 1)),
      OopsFormat(
        "kasan-corrupted", "BUG: KASAN: {R}", title: "KASAN: $1", kind: .kasan, type: memorySafety,
        corrupted: true),
      OopsFormat(
        "kmsan-infoleak", "BUG: KMSAN: kernel-{W}infoleak in {F}",
        title: "KMSAN: kernel-$1infoleak in $F",
        kind: .kmsan, type: .fixed("KMSAN-INFO-LEAK"),
        frame: stack(
          header: 1,
          skip: ["copy_to_user", "copyout", "instrument_copy", "_copy", "usb_submit_urb"], after: []
        )),
      OopsFormat(
        "kmsan", "BUG: KMSAN: {W} in {F}", title: "KMSAN: $1 in $F", kind: .kmsan,
        type: .sanitizer(prefix: "KMSAN", bug: 0, access: nil),
        // syzkaller's KMSAN skips: generic crypto (where uninit keys and data are used, not
        // where they come from) and netlink/skb plumbing.
        frame: stack(
          header: 1,
          skip: [
            "alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$", "crypto_", "cipher_",
            "drbg_", "rng_",
          ], after: [])),
      OopsFormat(
        "kfence-access", "BUG: KFENCE: {W} {W} in {F}", title: "KFENCE: $1 $2 in $F", kind: .kfence,
        type: .sanitizer(prefix: "KFENCE", bug: 0, access: 1), frame: stack(header: 2)),
      OopsFormat(
        "kfence", "BUG: KFENCE: {*} in {F}", title: "KFENCE: $F", kind: .kfence, type: memorySafety,
        frame: stack(header: 0)),
      // The function wrapped to the next line: the stack's first frame names it.
      OopsFormat(
        "kfence-wrapped", "BUG: KFENCE: {W} {W} in{$}", title: "KFENCE: $1 $2 in $F",
        kind: .kfence, type: .sanitizer(prefix: "KFENCE", bug: 0, access: 1), frame: stack()),
      OopsFormat(
        "kcsan-race", "BUG: KCSAN: {W} in {F} / {F}", title: "KCSAN: $1 in $2 / $3", kind: .kcsan,
        type: .fixed("KCSAN-DATARACE"), frame: .none, noStack: true),
      OopsFormat(
        "kcsan-assert", "BUG: KCSAN: assert: {W} in {F}", title: "KCSAN: assert: $1 in $2",
        kind: .kcsan,
        type: .fixed("KCSAN-ASSERT"), frame: .none, noStack: true),
      OopsFormat(
        "kcsan", "BUG: KCSAN: {R}", title: "KCSAN: $1", kind: .kcsan,
        type: .fixed("KCSAN-DATARACE"), noStack: true),
      OopsFormat(
        "null-x86", "BUG: kernel NULL pointer dereference", title: nullDeref, kind: .nullDeref,
        type: nullType),
      OopsFormat(
        "null-ppc", "BUG: Kernel NULL pointer dereference", title: nullDeref, kind: .nullDeref,
        type: nullType),
      OopsFormat(
        "null-old", "BUG: unable to handle kernel NULL pointer dereference", title: nullDeref,
        kind: .nullDeref,
        type: nullType),
      OopsFormat(
        "paging-x86", "BUG: unable to handle page fault for address: {W}", title: paging,
        kind: .pagingFault,
        type: memorySafety, lowAddress: 0, nullTitle: nullDeref),
      OopsFormat(
        "paging-x86-old", "BUG: unable to handle kernel paging request", title: paging,
        kind: .pagingFault,
        type: memorySafety),
      // The second half of the header is a separate printk that may be lost.
      OopsFormat(
        "x86-fault-any", "BUG: unable to handle kernel", title: "BUG: unable to handle kernel",
        kind: .accessFault, type: memorySafety, corrupted: true),
      OopsFormat(
        "invalid-wait-context", "[ BUG: Invalid wait context ]",
        title: "WARNING: locking bug in $F", kind: .lockdep, type: lockdepType,
        frame: stack(ip: false, skip: ["lock_", "__lock", "might_", "__might_"])),
    ] + faultFormats.filter { bugPrefixedFaults.contains($0.id) } + [
      OopsFormat(
        "spinlock", "BUG: spinlock {W} {W} on CPU", title: "BUG: spinlock $1 $2 in $F",
        kind: .lockdep,
        type: lockdepType, frame: stack(skip: ["spin_", "do_raw_spin", "task_rq_lock", "rq_lock"])),
      OopsFormat(
        "spinlock-recursion", "BUG: spinlock recursion", title: "BUG: spinlock recursion in $F",
        kind: .lockdep,
        type: lockdepType, frame: stack(skip: ["spin_", "do_raw_spin", "task_rq_lock", "rq_lock"])),
      OopsFormat(
        "soft-lockup", "BUG: soft lockup", title: "BUG: soft lockup in $F", kind: .softLockup,
        type: hang,
        frame: stack(after: lockupStarts, .stall)),
      OopsFormat(
        "locks-held", "BUG: {*}still has locks held!", title: "BUG: still has locks held in $F",
        kind: .lockdep,
        type: lockdepType, frame: lockdepLine(after: "")),
      OopsFormat(
        "lock-held-user", "BUG: lock held when returning to user space",
        title: "BUG: lock held when returning to user space in $F", kind: .lockdep,
        type: lockdepType,
        frame: lockdepLine(after: "leaving the kernel with locks still held"), noStack: true),
      OopsFormat(
        "bad-unlock", "BUG: bad unlock balance detected!", title: "BUG: bad unlock balance in $F",
        kind: .lockdep,
        type: lockdepType, frame: lockdepLine(after: "is trying to release lock")),
      OopsFormat(
        "held-lock-freed", "BUG: held lock freed!", title: "BUG: held lock freed in $F",
        kind: .lockdep,
        type: lockdepType, frame: lockdepLine(after: "")),
      OopsFormat(
        "rss-counter", "BUG: Bad rss-counter state", title: "BUG: Bad rss-counter state",
        kind: .badRSSCounter,
        type: bugType, frame: .none, noStack: true),
      OopsFormat(
        "nr-ptes", "BUG: non-zero {W} on freeing mm", title: "BUG: non-zero $1 on freeing mm",
        kind: .badRSSCounter,
        type: bugType, frame: .none, noStack: true),
      OopsFormat(
        "dentry", "BUG: Dentry {*}still in use", title: "BUG: Dentry still in use in unmount",
        kind: .bug,
        type: bugType, frame: .none, noStack: true),
      OopsFormat(
        "bad-page-state", "BUG: Bad page state", title: "BUG: Bad page state in $F",
        kind: .badPageState,
        type: memorySafety,
        frame: stack(
          ip: false,
          skip: [
            "bad_page", "free_page", "free_pages", "__free_", "free_pcp", "free_unref",
            "release_pages", "put_page", "folio_put", "__folio_put", "free_one_page", "page_pool",
            "check_new_page", "prep_new_page", "get_page_from_freelist", "alloc_page",
            "alloc_pages", "folio_alloc", "__put_page", "free_tail_page", "check_free_page",
            "free_the_page", "destroy_large_folio", "__page_cache_release", "folios_put", "rmqueue",
            "__alloc_pages", "post_alloc_hook", "filemap_alloc_folio", "__filemap_get_folio",
            "pagecache_get_page",
          ],
          // With page_owner the page's allocation stack names who got the page (as syzkaller
          // reads it); without it, the stack of whoever freed or checked it.
          after: ["page last allocated via", "Call Trace:", "Call trace:"])),
      OopsFormat(
        "bad-page-map", "BUG: Bad page map", title: "BUG: Bad page map", kind: .badPageState,
        type: memorySafety,
        frame: .none, noStack: true),
      OopsFormat(
        "workqueue-lockup", "BUG: workqueue lockup", title: "BUG: workqueue lockup",
        kind: .workqueueLockup,
        type: hang, frame: .none, noStack: true),
      OopsFormat(
        "might-sleep", "BUG: sleeping function called from invalid context",
        title: "BUG: sleeping function called from invalid context in $F", kind: .sleepInAtomic,
        type: atomicSleep,
        frame: stack(
          ip: false,
          skip: [
            "might_sleep", "might_resched", "might_fault", "cond_resched", "__might_",
            "might_alloc", "slab_pre_alloc", "kmalloc", "kmem_cache_alloc", "mutex_lock", "down_",
            "lock_sock", "__kmalloc", "slab_alloc", "kzalloc", "__alloc_pages", "alloc_pages",
            "prepare_alloc_pages",
          ])),
      OopsFormat(
        "sched-atomic", "BUG: scheduling while atomic", title: "BUG: scheduling while atomic in $F",
        kind: .sleepInAtomic, type: atomicSleep,
        frame: stack(
          ip: false,
          skip: [
            "schedule", "__schedule", "schedule_debug", "preempt_schedule", "__schedule_bug",
            "do_task_dead", "do_exit", "do_group_exit",
          ])),
      OopsFormat(
        "this-cpu", "BUG: using __this_cpu_{W}() in preemptible",
        title: "BUG: using __this_cpu_$1() in preemptible code in $F", kind: .preemptible,
        type: lockdepType,
        frame: stack(ip: false, skip: ["preempt", "preemption"])),
      OopsFormat(
        "smp-processor-id", "BUG: using smp_processor_id() in preemptible",
        title: "BUG: using smp_processor_id() in preemptible code in $F", kind: .preemptible,
        type: lockdepType,
        frame: stack(
          ip: false,
          skip: [
            "preempt_count", "preempt_schedule", "check_preemption", "debug_smp_processor_id",
            "__this_cpu_preempt_check",
          ])),
      OopsFormat(
        "wq-leak", "BUG: workqueue leaked lock or atomic",
        title: "BUG: workqueue leaked lock or atomic in $F",
        kind: .lockdep, type: lockdepType,
        frame: .line(after: "", patterns: [LinePattern("last function: {F}")]), noStack: true),
      OopsFormat(
        "memory-leak", "BUG: memory leak", title: "memory leak in $F", kind: .memoryLeak,
        type: .fixed("LEAK"),
        frame: stack(
          ip: false,
          skip: [
            "kmemleak", "kmalloc", "kcalloc", "kzalloc", "kvmalloc", "kvzalloc", "vmalloc", "mmap",
            "kmem", "slab", "alloc", "create_object", "kobject_", "pcpu_", "idr_get",
            "list_lru_init", "kasprintf",
            "kvasprintf", "pcpu_create", "strdup", "strndup", "memdup", "kstrdup", "kmemdup",
            "krealloc", "__kmalloc", "__vmalloc", "__alloc", "__kvmalloc",
          ], after: ["backtrace"])),
      OopsFormat(
        "stack-guard", "BUG: {*}stack guard page was hit at",
        title: "BUG: stack guard page was hit in $F",
        kind: .stackCorruption, type: dos, frame: stack(), noStack: true),
      OopsFormat(
        "too-low", "BUG: {W} too low!", title: "BUG: $1 too low!", kind: .lockdep,
        type: lockdepType, frame: .none,
        noStack: true),
      OopsFormat(
        "bug-empty", "BUG:{$}", title: "BUG: corrupted", kind: .bug, type: bugType, frame: .none,
        corrupted: true),
      // Never miss what grep sees: a header line no format above takes apart is still a crash,
      // titled by its own text.
      OopsFormat(
        "bug-catchall", "BUG: {R}", title: "BUG: $1", kind: .bug, type: bugType, frame: .none,
        corrupted: true),
    ]),
  OopsPattern(
    "warning", header: "WARNING:",
    // Informational "WARNING:" lines of pr_warn() and of user space, not WARN() (syzkaller's
    // list): every other WARNING line is a crash, as grep would say.
    suppress: [
      "WARNING: /etc/ssh/moduli does not exist", "WARNING: workqueue cpumask: online intersect",
      "WARNING: The mand mount option", "WARNING: the mand mount option",
      "WARNING: Unsupported flag value(s) of 0x%x in DT_FLAGS_1",
      "WARNING: Unprivileged eBPF is enabled with eIBRS", "WARNING: fbcon: Driver '",
      "WARNING: See https", "WARNING: kernel not compiled with CPU_SRSO", "XFS ({W}): WARNING",
    ] + informationalPowerWarnings,
    [
      OopsFormat(
        "odebug", "WARNING: {*}lib/debugobjects.c{*} debug_{W}", title: "WARNING: ODEBUG bug in $F",
        kind: .debugObjects, type: warningType,
        frame: stack(skip: [
          "debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "kmem_", "slab_", "kfree",
          "vunmap", "vfree", "__free_", "debug_check", "kobject_", "destroy_", "kvfree",
          "call_rcu", "__flush_work", "__cancel_work", "cancel_", "flush_", "del_timer",
          "try_to_del_timer", "timer_delete", "shutdown_timer",
        ])),
      OopsFormat(
        "usercopy-warn", "WARNING: {*}mm/usercopy.c{*} usercopy_warn",
        title: "WARNING: bad usercopy in $F",
        kind: .badUsercopy, type: warningType,
        frame: stack(skip: ["usercopy", "__check", "check_"])),
      OopsFormat(
        "kobject-warn", "WARNING: {*}lib/kobject.c{*} kobject_",
        title: "WARNING: kobject bug in $F",
        kind: .warning, type: warningType, frame: stack(skip: ["kobject_"])),
      OopsFormat(
        "refcount", "WARNING: {*}lib/refcount.c{*} refcount_", title: "WARNING: refcount bug in $F",
        kind: .refcount,
        type: .fixed("REFCOUNT_WARNING"), frame: stack(skip: ["refcount", "kobject_", "kref_"])),
      OopsFormat(
        "list-debug-warn", "WARNING: {*}lib/list_debug.c", title: "BUG: corrupted list in $F",
        kind: .listCorruption,
        type: memorySafety, frame: stack(skip: ["list_", "__list"])),
      OopsFormat(
        "lockdep-warn", "WARNING: {*}kernel/locking/lockdep.c{*} ",
        title: "WARNING: locking bug in $F",
        kind: .lockdep, type: lockdepType,
        frame: stack(skip: ["lock_sock", "release_sock", "__lock", "lock_"])),
      OopsFormat(
        "lock-held-user", "WARNING: lock held when returning to user space",
        title: "WARNING: lock held when returning to user space in $F", kind: .lockdep,
        type: lockdepType,
        frame: lockdepLine(after: "leaving the kernel with locks still held"), noStack: true),
      OopsFormat(
        "zero-size-vmalloc", "WARNING: {*}mm/vmalloc.c{*} __vmalloc_node",
        title: "WARNING: zero-size vmalloc in $F",
        kind: .warning, type: warningType,
        frame: stack(skip: ["vmalloc", "__vmalloc", "kvmalloc", "vzalloc", "kvzalloc"])),
      OopsFormat(
        "kmalloc-warn", "WARNING: {*}mm/{*} {*}malloc", title: "WARNING: kmalloc bug in $F",
        kind: .warning,
        type: warningType,
        frame: stack(skip: [
          "kmalloc", "kcalloc", "kzalloc", "krealloc", "vmalloc", "slab", "kmem", "kvmalloc",
          "__kmalloc", "__alloc", "alloc_pages", "__kvmalloc", "kvzalloc", "kvcalloc",
        ])),
      OopsFormat(
        "usb-submit-urb", "WARNING: {*} usb_submit_urb", title: "WARNING in $F/usb_submit_urb",
        kind: .warning,
        type: warningType,
        frame: stack(skip: [
          "usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg",
          "usb_control_msg",
        ])),
      // 6.18+: "WARNING: fs/ext4/xattr.c:1058 at 0x0, CPU#0: comm/pid"; the IP names the function.
      OopsFormat(
        "warn-file-cpu", "WARNING: {S} at {*}CPU#{N}: ", title: "WARNING in $F", kind: .warning,
        type: warningType, frame: stack(skip: warnHelpers)),
      OopsFormat(
        "warn-file-at", "WARNING: {S} at {F}", title: "WARNING in $F", kind: .warning,
        type: warningType,
        frame: stack(skip: warnHelpers)),
      OopsFormat(
        "warn-at", "WARNING: {*}at {S} {F}", title: "WARNING in $F", kind: .warning,
        type: warningType,
        frame: stack(skip: warnHelpers)),
      // The same header cut by an 80-column console or a mail client after the file, after
      // "at", or after the PID: the function is on the next line or nowhere; the report's
      // NIP line or stack names it.
      OopsFormat(
        "warn-at-wrapped", "WARNING: CPU: {N} PID: {N}", title: "WARNING in $F", kind: .warning,
        type: warningType,
        frame: stack(skip: warnHelpers)),
      OopsFormat(
        "circular-locking", "WARNING: possible circular locking dependency detected",
        extra: ["is trying to acquire lock"],
        title: "possible deadlock in $F",
        kind: .lockdep, type: lockdepType, frame: lockdepLine(after: "is trying to acquire lock"),
        noStack: true),
      OopsFormat(
        "circular-locking-short", "WARNING: possible circular locking dependency detected",
        title: "WARNING: possible circular locking dependency detected", kind: .lockdep,
        type: warningType, frame: .none, corrupted: true),
      OopsFormat(
        "irq-inversion", "WARNING: possible irq lock inversion dependency detected",
        title: "possible deadlock in $F", kind: .lockdep, type: lockdepType,
        frame: lockdepLine(after: "just changed the state of lock"), noStack: true),
      OopsFormat(
        "lock-order", "WARNING: {*}-safe -> {*}-unsafe lock order detected",
        title: "possible deadlock in $F",
        kind: .lockdep, type: lockdepType, frame: stack(ip: false, after: ["which became"]),
        noStack: true),
      OopsFormat(
        "recursive-locking", "WARNING: possible recursive locking detected",
        title: "possible deadlock in $F",
        kind: .lockdep, type: lockdepType, frame: lockdepLine(after: "is trying to acquire lock"),
        noStack: true),
      OopsFormat(
        "inconsistent", "WARNING: inconsistent lock state", title: "inconsistent lock state in $F",
        kind: .lockdep,
        type: lockdepType, frame: lockdepLine(after: "takes"), noStack: true),
      OopsFormat(
        "suspicious-rcu", "WARNING: suspicious RCU usage", extra: ["{S} "],
        title: "WARNING: suspicious RCU usage in $F",
        kind: .suspiciousRCU, type: lockdepType,
        frame: stack(
          ip: false,
          skip: [
            "rcu", "kmem", "slab", "kmalloc", "vmalloc", "kcalloc", "kzalloc",
            "lockdep_rcu_suspicious", "rcu_read_lock_held",
          ])),
      OopsFormat(
        "suspicious-rcu-short", "WARNING: suspicious RCU usage",
        title: "WARNING: suspicious RCU usage", kind: .suspiciousRCU, type: lockdepType,
        frame: .none, corrupted: true),
      OopsFormat(
        "stack-regs", "WARNING: kernel stack regs at {*} has bad",
        title: "WARNING: kernel stack regs has bad value",
        kind: .stackCorruption, type: warningType, frame: .none, noStack: true),
      OopsFormat(
        "stack-fp", "WARNING: kernel stack frame pointer at {*} has bad value",
        title: "WARNING: kernel stack frame pointer has bad value", kind: .stackCorruption,
        type: warningType,
        frame: .none, noStack: true),
      OopsFormat(
        "bad-unlock", "WARNING: bad unlock balance detected!",
        title: "WARNING: bad unlock balance in $F",
        kind: .lockdep, type: lockdepType, frame: lockdepLine(after: "is trying to release lock")),
      OopsFormat(
        "held-lock-freed", "WARNING: held lock freed!", title: "WARNING: held lock freed in $F",
        kind: .lockdep,
        type: lockdepType, frame: lockdepLine(after: "")),
      OopsFormat(
        "nested-lock", "WARNING: Nested lock was not taken",
        title: "WARNING: nested lock was not taken in $F",
        kind: .lockdep, type: lockdepType,
        frame: lockdepLine(after: "is trying to lock")),
      OopsFormat(
        "nested-lock2", "WARNING: nested lock was not taken",
        title: "WARNING: nested lock was not taken in $F",
        kind: .lockdep, type: lockdepType,
        frame: lockdepLine(after: "is trying to lock")),
      OopsFormat(
        "locks-held", "WARNING: {*}still has locks held!",
        title: "WARNING: still has locks held in $F",
        kind: .lockdep, type: lockdepType, frame: lockdepLine(after: "")),
      OopsFormat(
        "warn-empty", "WARNING:{$}", title: "WARNING: corrupted", kind: .warning, type: warningType,
        frame: .none,
        corrupted: true),
      // Never miss what grep sees: a WARNING line no format above takes apart, titled by its
      // own text (syzkaller's rule; the informational ones are suppressed above). Only at the
      // start of a message: mid-line it is a mail subject or a test's expected-output line.
      OopsFormat(
        "warn-catchall", "^WARNING: {R}", title: "WARNING: $1", kind: .warning, type: warningType,
        frame: .none, noStack: true),
    ]),
  OopsPattern(
    "info", header: "INFO:",
    suppress: [
      "INFO: lockdep is turned off", "INFO: Stall ended before state dump start",
      "INFO: NMI handler",
      "INFO: recovery required on readonly filesystem", "took too long", "INFO: sys_",
      "INFO: no syscalls can create resource", "INFO: Slab ", "INFO: Object ",
    ],
    [
      OopsFormat(
        "circular-locking", "INFO: possible circular locking dependency detected",
        title: "possible deadlock in $F",
        kind: .lockdep, type: lockdepType, frame: lockdepLine(after: "is trying to acquire lock"),
        noStack: true),
      OopsFormat(
        "irq-inversion", "INFO: possible irq lock inversion dependency detected",
        title: "possible deadlock in $F",
        kind: .lockdep, type: lockdepType,
        frame: lockdepLine(after: "just changed the state of lock"), noStack: true),
      OopsFormat(
        "lock-order", "INFO: {*}-safe -> {*}-unsafe lock order detected",
        title: "possible deadlock in $F",
        kind: .lockdep, type: lockdepType, frame: lockdepLine(after: "is trying to acquire"),
        noStack: true),
      OopsFormat(
        "recursive-locking", "INFO: possible recursive locking detected",
        title: "possible deadlock in $F",
        kind: .lockdep, type: lockdepType, frame: lockdepLine(after: "is trying to acquire lock"),
        noStack: true),
      OopsFormat(
        "inconsistent", "INFO: inconsistent lock state", title: "inconsistent lock state in $F",
        kind: .lockdep,
        type: lockdepType, frame: lockdepLine(after: "takes"), noStack: true),
      OopsFormat(
        "rcu-stall", "INFO: rcu_{W} {*}detected{*} stall", title: "INFO: rcu detected stall in $F",
        kind: .rcuStall,
        type: hang,
        frame: stack(
          skip: ["rcu", "apic_timer_interrupt", "sysvec_apic_timer"], after: stallStarts, .stall)),
      OopsFormat(
        "rcu-stall-old", "INFO: rcu_{W} detected stalls", title: "INFO: rcu detected stall in $F",
        kind: .rcuStall,
        type: hang, frame: stack(skip: ["rcu"], after: stallStarts, .stall)),
      OopsFormat(
        "non-static-key", "INFO: trying to register non-static key",
        title: "INFO: trying to register non-static key in $F", kind: .lockdep, type: lockdepType,
        frame: stack(
          ip: false,
          skip: [
            "stack", "lock", "IRQ", "register_lock_class", "__lock_acquire", "assign_lock_key",
            "look_up_lock_class", "complete",
          ])),
      OopsFormat(
        "suspicious-rcu", "INFO: suspicious RCU usage", title: "INFO: suspicious RCU usage in $F",
        kind: .suspiciousRCU, type: lockdepType,
        frame: stack(
          ip: false,
          skip: [
            "rcu", "kmem", "slab", "kmalloc", "vmalloc", "kcalloc", "kzalloc",
            "lockdep_rcu_suspicious",
          ])),
      OopsFormat(
        // "task{*}": a log that lost the space after "task" (a mail client's rewrap) still is one.
        "hung-task", "INFO: task{*} blocked {*}for more than {N} seconds",
        title: "INFO: task hung in $F",
        kind: .hungTask, type: hang, frame: stack(ip: false, .hung)),
      OopsFormat(
        "cant-die", "INFO: task {*} can't die for more than {N} seconds",
        title: "INFO: task can't die in $F",
        kind: .taskCantDie, type: hang, frame: stack(ip: false, .hung)),
      // Old SLUB debugging prints these when a KASAN-less kernel catches a use after free.
      OopsFormat(
        "slub-allocated", "INFO: Allocated in {F} {R}", title: "INFO: Allocated in $1 $2",
        kind: .kasan,
        type: memorySafety, frame: .none, corrupted: true, noStack: true),
      OopsFormat(
        "slub-freed", "INFO: Freed in {F} {R}", title: "INFO: Freed in $1 $2", kind: .kasan,
        type: memorySafety,
        frame: .none, corrupted: true, noStack: true),
      OopsFormat(
        "info-empty", "INFO:{$}", title: "INFO: corrupted", kind: .other, type: bugType,
        frame: .none,
        corrupted: true),
    ]),
  OopsPattern("unable-to-handle", header: "Unable to handle kernel", faultFormats),
  OopsPattern(
    "gpf", header: "general protection fault",
    [
      OopsFormat(
        "gpf", "general protection fault", title: "general protection fault in $F",
        kind: .generalProtection,
        type: dos)
    ]),
  OopsPattern(
    "stack-segment", header: "stack segment: ",
    [
      OopsFormat(
        "stack-segment", "stack segment: ", title: "stack segment fault in $F", kind: .stackSegment,
        type: dos)
    ]),
  OopsPattern(
    "kernel-panic", header: "Kernel panic - not syncing", followsReport: true,
    neverEndsReport: true,
    [
      OopsFormat(
        "stack-protector",
        "Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {F}",
        title: "kernel panic: stack is corrupted in $F", kind: .stackCorruption, type: dos,
        frame: .stack(StackRecipe(useIP: false, headerCapture: 0, useTrace: false)),
        noStack: true),
      OopsFormat(
        "stack-protector-addr", "Kernel panic - not syncing: stack-protector:",
        title: "kernel panic: stack is corrupted in $F", kind: .stackCorruption, type: dos,
        frame: stack(skip: ["stack_chk"])),
      OopsFormat(
        "stack-end", "Kernel panic - not syncing: corrupted stack end",
        title: "kernel panic: corrupted stack end in $F", kind: .stackCorruption, type: dos,
        frame: stack(
          ip: false, skip: ["schedule", "retint_kernel", "preempt_schedule", "__schedule"], .stall)),
      OopsFormat(
        "kill-init", "Kernel panic - not syncing: Attempted to kill init!",
        title: "kernel panic: Attempted to kill init!", kind: .panic, type: dos, frame: .none,
        noStack: true),
      OopsFormat(
        "n-tty", "Kernel panic - not syncing: Couldn't open N_TTY ldisc",
        title: "kernel panic: Couldn't open N_TTY ldisc",
        kind: .panic, type: dos, frame: .none, noStack: true),
      OopsFormat(
        "fatal-exception", "Kernel panic - not syncing: Fatal exception",
        title: "kernel panic: Fatal exception",
        kind: .panic, type: dos, frame: .none, corrupted: true, noStack: true),
      OopsFormat(
        "panic-on-warn", "Kernel panic - not syncing: panic_on_warn set",
        title: "kernel panic: panic_on_warn set",
        kind: .panic, type: dos, frame: .none, corrupted: true, noStack: true),
      OopsFormat(
        "hung-task-panic", "Kernel panic - not syncing: hung_task: blocked tasks",
        title: "kernel panic: hung_task: blocked tasks", kind: .panic, type: dos, frame: .none,
        corrupted: true,
        noStack: true),
      OopsFormat(
        "machine-check-panic", "Kernel panic - not syncing: {*}achine check",
        title: "kernel panic: $1",
        kind: .machineCheck, type: dos, frame: .none, noStack: true),
      OopsFormat(
        "stack-overflow", "Kernel panic - not syncing: kernel stack overflow",
        title: "kernel stack overflow in $F", kind: .stackCorruption, type: dos,
        frame: stack(skip: [
          "handle_stack_overflow", "handle_bad_stack", "exc_double_fault", "asm_exc_double_fault",
        ])),
      OopsFormat(
        "panic", "Kernel panic - not syncing: {R}", title: "kernel panic: $1", kind: .panic,
        type: dos, frame: stack(ip: false, skip: panicHelpers),
        noStack: true),
      // The message wrapped to the next line: the stack says where it panicked.
      OopsFormat(
        "panic-wrapped", "Kernel panic - not syncing:{$}", title: "kernel panic in $F",
        kind: .panic, type: dos, frame: stack(ip: false, skip: ["panic", "dump_stack"])),
    ]),
  OopsPattern(
    "double-fault", header: "PANIC: double fault", followsReport: true, neverEndsReport: true,
    [
      OopsFormat(
        "double-fault", "PANIC: double fault", title: "PANIC: double fault in $F",
        kind: .doubleFault, type: dos,
        frame: ipOnly)
    ]),
  OopsPattern(
    "kernel-bug", header: "kernel BUG at",
    [
      OopsFormat(
        "usercopy", "kernel BUG at mm/usercopy.c", title: "BUG: bad usercopy in $F",
        kind: .badUsercopy,
        type: bugType, frame: stack(skip: ["usercopy", "__check", "check_", "__phys_addr"])),
      OopsFormat(
        "list-debug", "kernel BUG at lib/list_debug.c", title: "BUG: corrupted list in $F",
        kind: .listCorruption,
        type: memorySafety, frame: stack(skip: ["list_", "__list"])),
      OopsFormat(
        "kernel-bug", "kernel BUG at {R}", title: "kernel BUG in $F", kind: .bug, type: bugType,
        frame: stack(skip: bugHelpers)),
    ]),
  OopsPattern(
    "kernel-bug-x86", header: "Kernel BUG at",
    [
      OopsFormat(
        "kernel-bug-addr", "Kernel BUG at {R}", title: "kernel BUG in $F", kind: .bug, type: bugType
      )
    ]),
  OopsPattern(
    "object-free", header: "Object already free",
    [
      OopsFormat(
        "object-free", "BUG {*}: Object already free", title: "BUG: Object already free",
        kind: .kasan, type: dos,
        frame: stack(
          ip: false,
          skip: [
            "print_trailer", "object_err", "free_debug_processing", "free_consistency_checks",
            "on_freelist", "slab_", "__slab_free", "do_slab_free", "kfree", "kmem_cache_free",
          ]), noStack: true)
    ]),
  OopsPattern(
    "divide-error", header: "divide error: ",
    [
      OopsFormat(
        "divide-error", "divide error: ", title: "divide error in $F", kind: .divideError,
        type: dos, frame: ipOnly)
    ]),
  OopsPattern(
    "invalid-opcode", header: "invalid opcode: ", followsReport: true, neverEndsReport: true,
    [
      OopsFormat(
        "invalid-opcode", "invalid opcode: ", title: "invalid opcode in $F", kind: .invalidOpcode,
        type: dos,
        frame: ipOnly)
    ]),
  OopsPattern(
    "internal-error", header: "Internal error: ", followsReport: true,
    [
      OopsFormat(
        "internal-error", "Internal error: ", title: "Internal error in $F", kind: .internalError,
        type: dos,
        frame: stack())
    ]),
  OopsPattern(
    "unhandled-fault", header: "Unhandled fault: ",
    [
      OopsFormat(
        "unhandled-fault", "Unhandled fault: ", title: "Unhandled fault in $F", kind: .accessFault,
        type: dos,
        frame: stack())
    ]),
  OopsPattern(
    "alignment-trap", header: "Alignment trap: ",
    [
      OopsFormat(
        "alignment-trap", "Alignment trap: ", title: "Alignment trap in $F", kind: .alignmentTrap,
        type: dos,
        frame: stack())
    ]),
  OopsPattern(
    "ubsan", header: "UBSAN: ",
    [
      OopsFormat(
        "ubsan-old", "UBSAN: Undefined behaviour in {S}", title: "UBSAN: undefined-behaviour in $F",
        kind: .ubsan,
        type: .fixed("UBSAN"), frame: stack(ip: false, skip: ["ubsan", "__ubsan", "handle_"])),
      OopsFormat(
        "ubsan-bounds", "UBSAN: array-index-out-of-bounds in {S}",
        title: "UBSAN: array-index-out-of-bounds in $F",
        kind: .ubsan, type: .fixed("MEMORY_SAFETY_UBSAN"),
        frame: stack(ip: false, skip: ["ubsan", "__ubsan", "handle_"])),
      OopsFormat(
        "ubsan", "UBSAN: {W} in {S}", title: "UBSAN: $1 in $F", kind: .ubsan, type: .fixed("UBSAN"),
        frame: stack(ip: false, skip: ["ubsan", "__ubsan", "handle_"])),
      // The file wrapped to the next line.
      OopsFormat(
        "ubsan-wrapped", "UBSAN: {W} in{$}", title: "UBSAN: $1 in $F", kind: .ubsan,
        type: .fixed("UBSAN"), frame: stack(ip: false, skip: ["ubsan", "__ubsan", "handle_"])),
      OopsFormat(
        "ubsan-catchall", "UBSAN: {R}", title: "UBSAN: $1", kind: .ubsan, type: .fixed("UBSAN"),
        frame: .none, corrupted: true),
    ]),
  OopsPattern(
    "soft-lockup-ppc", header: "soft lockup - CPU#",
    [
      // Covered by "BUG:" when the kernel prints "watchdog: BUG: soft lockup"; older kernels
      // print "NMI watchdog: soft lockup - CPU#..." without it.
      OopsFormat(
        "soft-lockup-old", "soft lockup - CPU#", title: "BUG: soft lockup in $F", kind: .softLockup,
        type: hang,
        frame: stack(after: [], .stall))
    ]),
  OopsPattern(
    // followsReport: the per-CPU lines right after "detected hard LOCKUP on other CPUs" are
    // that report's, not new ones.
    "hard-lockup", header: "LOCKUP", followsReport: true,
    [
      OopsFormat(
        "ppc-hard-lockup-self", "watchdog: CPU {N} self-detected hard LOCKUP @ {F}",
        title: "BUG: hard lockup in $F",
        kind: .hardLockup, type: hang, frame: stack(header: 1, after: [], .stall)),
      // The same line cut after "@" (a wrapped console), and the per-CPU report of the
      // powerpc watchdog on a CPU that another one found stuck: the stack names the function.
      OopsFormat(
        "ppc-hard-lockup-self-wrapped", "watchdog: CPU {N} self-detected hard LOCKUP",
        title: "BUG: hard lockup in $F",
        kind: .hardLockup, type: hang, frame: stack(after: [], .stall)),
      OopsFormat(
        "ppc-hard-lockup-cpu", "watchdog: CPU {N} Hard LOCKUP", title: "BUG: hard lockup in $F",
        kind: .hardLockup, type: hang, frame: stack(after: [], .stall)),
      OopsFormat(
        "ppc-hard-lockup", "Watchdog CPU:{N} Hard LOCKUP", title: "BUG: hard lockup in $F",
        kind: .hardLockup,
        type: hang, frame: stack(after: [], .stall)),
      OopsFormat(
        "ppc-hard-lockup-other", "watchdog: CPU {N} detected hard LOCKUP on other CPUs",
        title: "BUG: hard lockup",
        kind: .hardLockup, type: hang, frame: .none, noStack: true),
      OopsFormat(
        "hard-lockup", "Watchdog detected hard LOCKUP on cpu", title: "BUG: hard lockup in $F",
        kind: .hardLockup,
        type: hang, frame: stack(after: [], .stall)),
    ]),
  OopsPattern(
    "machine-check", headers: ["Machine check", "Machine Check", "MCE: CPU"], followsReport: true,
    suppress: [
      "Kernel panic - not syncing", "mce: CPU{*}supported", "Machine check events logged",
      "MCE: In-kernel MCE decoding",
    ],
    [
      OopsFormat(
        "ppc-machine-check", "Severe Machine check interrupt", title: "machine check in $F",
        kind: .machineCheck,
        type: dos),
      OopsFormat(
        "ppc-machine-check-kernel", "Machine check in kernel mode", title: "machine check in $F",
        kind: .machineCheck, type: dos),
      // powerpc's machine check event log (arch/powerpc/kernel/mce.c): one per event,
      // recovered or not; its NIP line names the function.
      OopsFormat(
        "ppc-mce-event", "MCE: CPU{N}: machine check (", title: "machine check in $F",
        kind: .machineCheck, type: dos),
      // powerpc's die() on an unrecovered machine check: "Oops: Machine check, sig: 7".
      OopsFormat(
        "ppc-oops-machine-check", "Oops: Machine check", title: "machine check in $F",
        kind: .machineCheck, type: dos),
      OopsFormat(
        "machine-check-exception", "Machine Check Exception", title: "machine check exception",
        kind: .machineCheck,
        type: dos, frame: .none, noStack: true),
    ]),
  OopsPattern(
    "checkstop", headers: ["Checkstop", "checkstop"],
    [
      OopsFormat(
        "checkstop", "heckstop", title: "checkstop", kind: .checkstop, type: dos, frame: .none,
        noStack: true)
    ]),
  // powerpc: an exception the kernel cannot return from (bad MSR[RI], bad stack pointer).
  OopsPattern(
    "ppc-unrecoverable", header: "Unrecoverable exception ",
    [
      OopsFormat(
        "unrecoverable", "Unrecoverable exception {W} at {X}",
        title: "unrecoverable exception in $F",
        kind: .internalError, type: dos)
    ]),
  OopsPattern(
    "netdev-leak", header: "unregister_netdevice: waiting for ", followsReport: true,
    neverEndsReport: true,
    [
      OopsFormat(
        "netdev-leak", "unregister_netdevice: waiting for {W} to become free",
        title: "unregister_netdevice: waiting for DEV to become free", kind: .netdevLeak, type: dos,
        frame: .none,
        noStack: true)
    ]),
  OopsPattern(
    "file-count", header: "VFS: Close: file count is ",
    [
      OopsFormat(
        "file-count", "VFS: Close: file count is {W}",
        title: "VFS: Close: file count is zero (use-after-free)",
        kind: .fileCount, type: dos, frame: .none, noStack: true)
    ]),
  OopsPattern(
    "oops", header: "Oops: ", followsReport: true,
    [
      OopsFormat(
        "oops-unrecoverable", "Oops: Unrecoverable exception",
        title: "unrecoverable exception in $F",
        kind: .internalError, type: dos),
      // die()'s other unrecoverable forms (arch/powerpc/kernel/traps.c): "Unrecoverable FP
      // Unavailable Exception", "... VMX/Altivec ...", "... TM ...", "Unrecoverable nested
      // System Reset", "Unrecoverable Machine check".
      OopsFormat(
        "oops-unrecoverable-any", "Oops: Unrecoverable {R}", title: "unrecoverable exception in $F",
        kind: .internalError, type: dos),
      OopsFormat(
        "oops-bad-stack", "Oops: Bad kernel stack pointer", title: "bad kernel stack pointer in $F",
        kind: .stackCorruption, type: dos),
      OopsFormat(
        "oops-bad-area", "Oops: Kernel access of bad area", title: paging, kind: .pagingFault,
        type: memorySafety),
      OopsFormat(
        "oops-exception", "Oops: Exception in kernel mode", title: "kernel BUG in $F", kind: .bug,
        type: bugType),
      // A system reset (NMI) that the kernel could not return from: a CPU stopped where NIP says.
      OopsFormat(
        "oops-system-reset", "Oops: System Reset", title: "system reset in $F",
        kind: .internalError, type: dos),
      OopsFormat(
        "oops-catchall", "Oops: {R}", title: "Oops: $1 in $F", kind: .other, type: dos,
        corrupted: true),
    ]),
  // Trusty (the secure-world OS beside Android kernels) panics, printed by the kernel's trusty
  // driver: syzkaller's "trusty: panic" forms, titled by the assertion or the panic message.
  OopsPattern(
    "trusty", header: "trusty: panic",
    [
      OopsFormat(
        "trusty-assert", "trusty: panic ({*}){*} ASSERT FAILED at ({*}): {R}",
        title: "trusty: ASSERT FAILED: $1", kind: .panic, type: dos, frame: .none, noStack: true),
      OopsFormat(
        "trusty-panic", "trusty: panic ({*}): {R}", title: "trusty: panic: $1", kind: .panic,
        type: dos, frame: .none, noStack: true),
    ]),
  // kvm_hv's own word that a guest's hashed page table is not what it must be: the VRMA is
  // mapped into an HPT that "is empty and no vcpus are using it" (kvmppc_map_vrma), so an
  // H_ENTER that fails there (H_PTEG_FULL, -6) means an entry survived the HPT's reset. It
  // prints no stack, and the guest then faults in real mode past the failed page or never runs.
  OopsPattern(
    "kvm-hpt", header: "KVM: map_vrma at",
    [
      OopsFormat(
        "kvm-map-vrma", "KVM: map_vrma at {X} failed, ret={*}", title: "KVM: map_vrma failed",
        kind: .other, type: bugType, frame: .none, noStack: true)
    ]),
  // The Go runtime's fatal errors at the start of a line (syzkaller's own tools dying on the
  // console: "go runtime error", as syzkaller titles them); ALSA's "seq fatal error" is not one.
  OopsPattern(
    "go-runtime", header: "fatal error:",
    suppress: ["ALSA", "fatal error: cannot create timer"],
    [
      OopsFormat(
        "go-runtime", "^fatal error:{R}", title: "go runtime error", kind: .userspaceFailure,
        type: dos, frame: .none, noStack: true)
    ]),
  // syzkaller's executor reports its own failures this way (a userspace failure, not a kernel
  // crash, but the run is over).
  OopsPattern(
    "syzfail", header: "SYZFAIL:",
    [
      OopsFormat(
        "syzfail", "^SYZFAIL:{R}", title: "SYZFAIL: $1", kind: .userspaceFailure,
        type: .fixed("SYZ_FAILURE"), frame: .none, noStack: true)
    ]),
]
