/// Writes oopses, BUGs and WARNINGs the way a powerpc host kernel prints them
/// (arch/powerpc/mm/fault.c, kernel/traps.c, kernel/process.c; formats in
/// ../shared/reference/kvm-hpt-resize.md section 7), so the harness's detector reads the
/// simulator exactly as it reads a real POWER host.

/// A kernel function as the oops names it.
public struct KernelSymbol: Sendable, Hashable {
  public var name: String
  public var module: String?  // nil: built into vmlinux
  public var offset: UInt64  // from the text base (vmlinux) or the module base
  public var size: UInt64
}

/// Symbols of the code paths the simulator runs. vmlinux addresses and the seed oops's
/// module offsets are taken from the seed report; the rest are placed nearby.
public enum KernelSymbols {
  static let table: [String: KernelSymbol] = {
    let list: [KernelSymbol] = [
      .init(name: "system_call", module: nil, offset: 0xb888, size: 0x6c),
      .init(name: "ret_from_kernel_thread", module: nil, offset: 0xb5dc, size: 0x5c),
      .init(name: "kvmppc_add_revmap_chain", module: nil, offset: 0xe25f0, size: 0x120),
      .init(name: "process_one_work", module: nil, offset: 0x12c4a0, size: 0x5a0),
      .init(name: "worker_thread", module: nil, offset: 0x12cb20, size: 0x5e0),
      .init(name: "kthread", module: nil, offset: 0x135a80, size: 0x1a0),
      .init(name: "mutex_lock", module: nil, offset: 0xa3e8c0, size: 0x80),
      .init(name: "memset", module: nil, offset: 0x95ec8, size: 0x104),
      .init(name: "__kmem_cache_alloc_node", module: nil, offset: 0x468cc0, size: 0x590),
      .init(name: "kmalloc_trace", module: nil, offset: 0x3ce2e0, size: 0x150),
      .init(name: "do_vfs_ioctl", module: nil, offset: 0x383210, size: 0x8c0),
      .init(name: "SyS_ioctl", module: nil, offset: 0x383ad0, size: 0x130),
      .init(
        name: "__mmu_notifier_invalidate_range_start", module: nil, offset: 0x2f7c30, size: 0xf0),
      .init(name: "migrate_pages", module: nil, offset: 0x30a6e0, size: 0x9b0),
      .init(name: "compact_zone", module: nil, offset: 0x2b5f10, size: 0xa10),
      .init(name: "kcompactd", module: nil, offset: 0x2b7a40, size: 0x2c0),
      .init(name: "kvmppc_vcpu_run", module: "kvm", offset: 0x24890, size: 0x50),
      .init(name: "kvm_arch_vcpu_ioctl_run", module: "kvm", offset: 0x20c40, size: 0x2a0),
      .init(name: "kvm_vcpu_ioctl", module: "kvm", offset: 0x13440, size: 0x7a0),
      .init(name: "kvm_arch_vm_ioctl", module: "kvm", offset: 0x22f10, size: 0x6e0),
      .init(name: "kvm_vm_ioctl", module: "kvm", offset: 0x14c80, size: 0x9e0),
      .init(
        name: "kvm_mmu_notifier_invalidate_range_start", module: "kvm", offset: 0x11d30, size: 0x120
      ),
      .init(name: "kvm_unmap_hva_range", module: "kvm", offset: 0x232a0, size: 0x60),
      .init(name: "kvmppc_book3s_hv_page_fault", module: "kvm_hv", offset: 0x16d8e0, size: 0xc40),
      .init(name: "kvmppc_vcpu_run_hv", module: "kvm_hv", offset: 0x169280, size: 0x1300),
      .init(name: "kvm_arch_vm_ioctl_hv", module: "kvm_hv", offset: 0x16a580, size: 0x4f0),
      .init(
        name: "kvm_vm_ioctl_resize_hpt_prepare", module: "kvm_hv", offset: 0x170e40, size: 0x2c0),
      .init(
        name: "kvm_vm_ioctl_resize_hpt_commit", module: "kvm_hv", offset: 0x171100, size: 0x4a0),
      .init(name: "resize_hpt_rehash_hpte", module: "kvm_hv", offset: 0x170720, size: 0x3a0),
      .init(name: "resize_hpt_prepare_work", module: "kvm_hv", offset: 0x170ac0, size: 0x180),
      .init(name: "resize_hpt_release", module: "kvm_hv", offset: 0x170c40, size: 0x140),
      .init(name: "kvm_unmap_rmapp", module: "kvm_hv", offset: 0x16e5c0, size: 0x1c0),
      .init(name: "kvm_handle_hva_range", module: "kvm_hv", offset: 0x16e380, size: 0x160),
      .init(name: "kvm_unmap_hva_range_hv", module: "kvm_hv", offset: 0x16e9c0, size: 0x60),
      // lockdep's report of B8: the vCPU's first run and the interrupt controller's release.
      .init(name: "__mutex_lock", module: nil, offset: 0xe98ee0, size: 0x1040),
      .init(name: "__lock_acquire", module: nil, offset: 0x1a8ed0, size: 0x2800),
      .init(name: "lock_acquire", module: nil, offset: 0x1ac100, size: 0x3e0),
      .init(name: "dump_stack_lvl", module: nil, offset: 0xe5b4cc, size: 0xe0),
      .init(name: "print_circular_bug", module: nil, offset: 0x1a6580, size: 0x3c0),
      .init(name: "check_noncircular", module: nil, offset: 0x1a6940, size: 0x1e0),
      .init(name: "__fput", module: nil, offset: 0x5238a0, size: 0x330),
      .init(name: "task_work_run", module: nil, offset: 0x141790, size: 0x110),
      .init(name: "do_notify_resume", module: nil, offset: 0x20aa0, size: 0x480),
      .init(name: "interrupt_exit_user_prepare_main", module: nil, offset: 0x2eb70, size: 0x280),
      .init(name: "syscall_exit_prepare", module: nil, offset: 0x2edf0, size: 0x150),
      .init(name: "system_call_vectored_common", module: nil, offset: 0xc100, size: 0x280),
      .init(name: "system_call_exception", module: nil, offset: 0x2c3a0, size: 0x2f0),
      .init(name: "sys_ioctl", module: nil, offset: 0x58a3c0, size: 0x1550),
      .init(name: "kvmppc_xive_release", module: "kvm", offset: 0x4a158, size: 0x1d0),
      .init(name: "kvm_device_release", module: "kvm", offset: 0x2e518, size: 0xf0),
      .init(name: "kvmhv_setup_mmu", module: "kvm_hv", offset: 0x4a10, size: 0x570),
      .init(name: "kvmhv_run_single_vcpu", module: "kvm_hv", offset: 0x9c40, size: 0x15a0),
      // 6.1's MMU-notifier path (R1, the reset race).
      .init(name: "kvmppc_unmap_hpte", module: "kvm_hv", offset: 0x1c08, size: 0x2d0),
      .init(name: "kvm_unmap_gfn_range_hv", module: "kvm_hv", offset: 0x1f40, size: 0x1a0),
    ]
    return Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0) })
  }()

  public static func lookup(_ name: String) -> KernelSymbol {
    guard let s = table[name] else { preconditionFailure("no simulated symbol \(name)") }
    return s
  }
}

/// One frame of a call trace: a function and the offset the return address sits at.
public struct Frame: Sendable {
  public var function: String
  public var offset: UInt64
  public init(_ function: String, _ offset: UInt64) {
    self.function = function
    self.offset = offset
  }
}

/// The host's identity as oopses print it.
public struct HostIdentity: Sendable {
  public var model: KernelModel
  public var modules: [String]
  public var tainted: String  // "G           O" style flags, or "" for "Not tainted"
}

struct OopsWriter {
  let host: HostIdentity
  var rng: SplitMix64

  static let textBase: UInt64 = 0xc000_0000_0000_0000
  static let moduleOffsets: [String: UInt64] = ["kvm": 0x0, "kvm_hv": 0x0]

  func address(of f: Frame) -> UInt64 {
    let s = KernelSymbols.lookup(f.function)
    let base = s.module == nil ? OopsWriter.textBase : host.model.moduleBase
    return base &+ s.offset &+ f.offset
  }

  func describe(_ f: Frame) -> String {
    let s = KernelSymbols.lookup(f.function)
    let mod = s.module.map { " [\($0)]" } ?? ""
    return "\(f.function)+0x\(hex(f.offset))/0x\(hex(s.size))\(mod)"
  }

  func hex(_ x: UInt64, width: Int = 0) -> String {
    let s = String(x, radix: 16)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
  }

  var taintWords: String { host.tainted.isEmpty ? "Not tainted" : "Tainted: \(host.tainted)" }

  /// The register block, NIP/LR lines, call trace and trailer shared by every report.
  mutating func body(
    cpu: Int, pid: Int, comm: String, trap: String, nip: Frame, lr: Frame, trace: [Frame],
    dar: UInt64?, dsisr: UInt64?, r3: UInt64, instructions: [UInt32]
  ) -> [String] {
    var lines: [String] = []
    let m = host.model
    lines.append(
      m.modernOopsFormat
        ? "LE PAGE_SIZE=64K MMU=Hash SMP NR_CPUS=2048 NUMA PowerNV"
        : "LE SMP NR_CPUS=2048 NUMA PowerNV")
    lines.append("Modules linked in: " + host.modules.joined(separator: " "))
    if m.modernOopsFormat {
      lines.append(
        "CPU: \(cpu) PID: \(pid) Comm: \(comm) \(taintWords) \(m.release) #1  Debian 6.1.176-1")
      lines.append(
        "Hardware name: 8335-GTW POWER9 (raw) 0x4e1202 opal:skiboot-v6.5.3-35-g1851b2a06 PowerNV")
    } else {
      lines.append("CPU: \(cpu) PID: \(pid) Comm: \(comm) \(taintWords) \(m.release) #1")
    }
    let stack = 0xc000_0000_0280_0000 &+ (UInt64(rng.below(0x40000)) << 8)
    let task = 0xc000_0007_a400_0000 &+ (UInt64(rng.below(0x10000)) << 10)
    if !m.modernOopsFormat {
      lines.append("task: \(hex(task, width: 16)) task.stack: \(hex(stack & ~0x3fff, width: 16))")
    }
    let nipAddr = address(of: nip)
    let lrAddr = address(of: lr)
    let ctr = nipAddr &- nip.offset
    lines.append(
      "NIP:  \(hex(nipAddr, width: 16)) LR: \(hex(lrAddr, width: 16)) CTR: \(hex(ctr, width: 16))")
    lines.append(
      "REGS: \(hex(stack &+ 0x35d0, width: 16)) TRAP: \(trap)   \(taintWords)  (\(m.release))")
    lines.append(
      "MSR:  900000010280b033 <SF,HV,VEC,VSX,EE,FP,ME,IR,DR,RI,LE,TM[E]>  CR: 44022422  XER: 00000000"
    )
    var cfar = "CFAR: \(hex(lrAddr &- 0x20, width: 16))"
    if let dar { cfar += " DAR: \(hex(dar, width: 16))" }
    if let dsisr { cfar += " DSISR: \(hex(dsisr, width: 8))" }
    cfar += m.modernOopsFormat ? " IRQMASK: 0 " : " SOFTE: 1 "
    lines.append(cfar)
    var gprs: [UInt64] = (0..<32).map { _ in rng.next() & 0xc000_0007_ffff_fff8 }
    gprs[0] = lrAddr
    gprs[1] = stack &+ 0x3850
    gprs[3] = r3
    for row in 0..<8 {
      let regs = (0..<4).map { hex(gprs[row * 4 + $0], width: 16) }.joined(separator: " ")
      let label = row * 4 < 10 ? "0\(row * 4)" : "\(row * 4)"
      lines.append("GPR\(label): \(regs) ")
    }
    lines.append("NIP [\(hex(nipAddr, width: 16))] \(describe(nip))")
    lines.append("LR [\(hex(lrAddr, width: 16))] \(describe(lr))")
    lines.append("Call Trace:")
    var sp = stack &+ 0x3850
    lines.append(
      "[\(hex(sp, width: 16))] [\(hex(sp &+ 0x60, width: 16))] 0x\(hex(sp &+ 0x60)) (unreliable)")
    for f in trace {
      sp &+= UInt64(0x60 + rng.below(16) * 0x10)
      lines.append("[\(hex(sp, width: 16))] [\(hex(address(of: f), width: 16))] \(describe(f))")
    }
    lines.append("Instruction dump:")
    var words = instructions
    while words.count < 16 { words.append(UInt32(truncatingIfNeeded: rng.next() | 0x3800_0000)) }
    let fmt = words.map { hex(UInt64($0), width: 8) }
    lines.append(fmt[0..<8].joined(separator: " "))
    lines.append(
      fmt[8..<12].joined(separator: " ") + " <" + fmt[12] + "> "
        + fmt[13..<16].joined(separator: " "))
    lines.append("---[ end trace \(hex(m.modernOopsFormat ? 0 : rng.next(), width: 16)) ]---")
    return lines
  }

  /// A data access fault (TRAP 0300): the message differs before and after 5.0.
  mutating func dataFault(
    address dar: UInt64, write: Bool, cpu: Int, pid: Int, comm: String, nip: Frame, lr: Frame,
    trace: [Frame], r3: UInt64, instructions: [UInt32] = []
  ) -> [String] {
    var lines: [String] = []
    let nipAddr = address(of: nip)
    if host.model.modernOopsFormat {
      if dar < 0x1000 {
        lines.append(
          "BUG: Kernel NULL pointer dereference on \(write ? "write" : "read") at 0x\(hex(dar, width: 8))"
        )
      } else {
        lines.append(
          "BUG: Unable to handle kernel data access on \(write ? "write" : "read") at 0x\(hex(dar, width: 16))"
        )
      }
      lines.append("Faulting instruction address: 0x\(hex(nipAddr, width: 16))")
    } else {
      lines.append(
        "Unable to handle kernel paging request for data at address 0x\(hex(dar, width: 8))")
      lines.append("Faulting instruction address: 0x\(hex(nipAddr, width: 8))")
    }
    lines.append("Oops: Kernel access of bad area, sig: 11 [#1]")
    lines += body(
      cpu: cpu, pid: pid, comm: comm, trap: "0300", nip: nip, lr: lr, trace: trace, dar: dar,
      dsisr: write ? 0x4200_0000 : 0x4000_0000, r3: r3, instructions: instructions)
    return lines
  }

  /// BUG_ON / BUG(): a trap (TRAP 0700) reported as "kernel BUG at file:line!".
  mutating func bug(
    file: String, line: Int, cpu: Int, pid: Int, comm: String, nip: Frame, lr: Frame,
    trace: [Frame], r3: UInt64
  ) -> [String] {
    var lines = ["------------[ cut here ]------------", "kernel BUG at \(file):\(line)!"]
    lines.append("Oops: Exception in kernel mode, sig: 5 [#1]")
    lines += body(
      cpu: cpu, pid: pid, comm: comm, trap: "0700", nip: nip, lr: lr, trace: trace, dar: nil,
      dsisr: nil, r3: r3, instructions: [])
    return lines
  }

  /// WARN_ON: the kernel goes on after it.
  mutating func warning(
    file: String, line: Int, cpu: Int, pid: Int, comm: String, nip: Frame, lr: Frame,
    trace: [Frame], r3: UInt64
  ) -> [String] {
    var lines = ["------------[ cut here ]------------"]
    lines.append("WARNING: CPU: \(cpu) PID: \(pid) at \(file):\(line) \(describe(nip))")
    var rest = body(
      cpu: cpu, pid: pid, comm: comm, trap: "0700", nip: nip, lr: lr, trace: trace, dar: nil,
      dsisr: nil, r3: r3, instructions: [])
    // WARN's register dump has no "Oops:" line and no platform line.
    rest.removeFirst()
    lines += rest
    return lines
  }
}
