// The uapi structs the raw backend passes to ioctls, laid out as the kernel's C structs
// (include/uapi/linux/kvm.h and arch/powerpc/include/uapi/asm/kvm.h). Field names are the
// uapi's, so a reader can hold the header next to this file. Fixed C arrays are tuples, which
// Swift lays out contiguously like C arrays. Sizes are checked in KVMSysTests.

import KVMHost

/// struct kvm_create_device (12 bytes): argument of KVM_CREATE_DEVICE; the kernel fills `fd`.
public struct KVMCreateDevice: Sendable, Hashable {
  public var type: UInt32
  public var fd: UInt32 = 0
  public var flags: UInt32 = 0
  /// KVM_DEV_TYPE_XICS: on a POWER9 host with XIVE, KVM's XICS-on-XIVE device.
  public static let KVM_DEV_TYPE_XICS: UInt32 = 3
  public init(type: UInt32) { self.type = type }
}

/// struct kvm_ppc_resize_hpt (16 bytes): argument of KVM_PPC_RESIZE_HPT_PREPARE/COMMIT.
public struct KVMPPCResizeHPT: Sendable, Hashable {
  public var flags: UInt64
  /// The new HPT's order (log2 of its size in bytes); 0 cancels a PREPARE.
  public var shift: UInt32
  public var pad: UInt32
  public init(flags: UInt64 = 0, shift: UInt32, pad: UInt32 = 0) {
    self.flags = flags
    self.shift = shift
    self.pad = pad
  }
}

/// struct kvm_userspace_memory_region (32 bytes): KVM_SET_USER_MEMORY_REGION.
public struct KVMUserspaceMemoryRegion: Sendable, Hashable {
  public var slot: UInt32
  public var flags: UInt32
  public var guest_phys_addr: UInt64
  /// Bytes; 0 deletes the slot.
  public var memory_size: UInt64
  /// Start of the host mapping backing the slot.
  public var userspace_addr: UInt64
  public init(
    slot: UInt32, flags: UInt32 = 0, guest_phys_addr: UInt64, memory_size: UInt64,
    userspace_addr: UInt64
  ) {
    self.slot = slot
    self.flags = flags
    self.guest_phys_addr = guest_phys_addr
    self.memory_size = memory_size
    self.userspace_addr = userspace_addr
  }
}

/// struct kvm_one_reg (16 bytes): KVM_GET_ONE_REG / KVM_SET_ONE_REG.
public struct KVMOneReg: Sendable, Hashable {
  /// KVM_REG_PPC | KVM_REG_SIZE_* | register number.
  public var id: UInt64
  /// Userspace address the kernel reads the value from or writes it to.
  public var addr: UInt64
  public init(id: UInt64, addr: UInt64) {
    self.id = id
    self.addr = addr
  }
}

/// struct kvm_enable_cap (104 bytes): KVM_ENABLE_CAP on a VM or vCPU fd.
public struct KVMEnableCap: Sendable {
  public var cap: UInt32
  public var flags: UInt32
  public var args: (UInt64, UInt64, UInt64, UInt64)
  public var pad: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)  // __u8 pad[64]
  public init(cap: UInt32, flags: UInt32 = 0, args: [UInt64] = []) {
    precondition(args.count <= 4, "kvm_enable_cap has 4 args")
    let a = args + Array(repeating: 0, count: 4 - args.count)
    self.cap = cap
    self.flags = flags
    self.args = (a[0], a[1], a[2], a[3])
    self.pad = (0, 0, 0, 0, 0, 0, 0, 0)
  }
  public init(_ cap: KVMCapability, flags: UInt32 = 0, args: [UInt64] = []) {
    self.init(cap: cap.rawValue, flags: flags, args: args)
  }
}

/// struct kvm_ppc_mmuv3_cfg (16 bytes): KVM_PPC_CONFIGURE_V3_MMU.
public struct KVMPPCMMUv3Cfg: Sendable, Hashable {
  /// KVM_PPC_MMUV3_RADIX (1) | KVM_PPC_MMUV3_GTSE (2); 0 selects HPT.
  public var flags: UInt64
  /// Second doubleword of the partition table entry.
  public var process_table: UInt64
  public static let KVM_PPC_MMUV3_RADIX: UInt64 = 1
  public static let KVM_PPC_MMUV3_GTSE: UInt64 = 2
  public init(flags: UInt64, process_table: UInt64 = 0) {
    self.flags = flags
    self.process_table = process_table
  }
}

/// struct kvm_get_htab_fd (32 bytes): KVM_PPC_GET_HTAB_FD.
public struct KVMGetHTABFD: Sendable, Hashable {
  /// KVM_GET_HTAB_BOLTED_ONLY (1) | KVM_GET_HTAB_WRITE (2).
  public var flags: UInt64
  public var start_index: UInt64
  public var reserved: (UInt64, UInt64)
  public static let KVM_GET_HTAB_BOLTED_ONLY: UInt64 = 1
  public static let KVM_GET_HTAB_WRITE: UInt64 = 2
  public init(flags: UInt64, start_index: UInt64 = 0) {
    self.flags = flags
    self.start_index = start_index
    self.reserved = (0, 0)
  }
  public static func == (a: Self, b: Self) -> Bool {
    a.flags == b.flags && a.start_index == b.start_index && a.reserved == b.reserved
  }
  public func hash(into h: inout Hasher) {
    h.combine(flags)
    h.combine(start_index)
  }
}

/// struct kvm_ppc_one_page_size (8 bytes).
public struct KVMPPCOnePageSize: Sendable, Hashable {
  public var page_shift: UInt32  // 0 marks an unused entry
  public var pte_enc: UInt32
}

/// struct kvm_ppc_one_seg_page_size (72 bytes): a segment page size and the actual page
/// sizes it can hold.
public struct KVMPPCOneSegPageSize: Sendable {
  public var page_shift: UInt32
  public var slb_enc: UInt32
  public var enc:
    (
      KVMPPCOnePageSize, KVMPPCOnePageSize, KVMPPCOnePageSize, KVMPPCOnePageSize,
      KVMPPCOnePageSize, KVMPPCOnePageSize, KVMPPCOnePageSize, KVMPPCOnePageSize
    )
  /// The used entries of `enc`.
  public var pageSizes: [KVMPPCOnePageSize] {
    withUnsafeBytes(of: enc) { Array($0.bindMemory(to: KVMPPCOnePageSize.self)) }
      .filter { $0.page_shift != 0 }
  }
}

/// struct kvm_ppc_smmu_info (592 bytes): KVM_PPC_GET_SMMU_INFO, the hash MMU's page sizes.
public struct KVMPPCSMMUInfo: Sendable {
  /// KVM_PPC_PAGE_SIZES_REAL (1) | KVM_PPC_1T_SEGMENTS (2) | KVM_PPC_NO_HASH (4).
  public var flags: UInt64
  public var slb_size: UInt32
  public var data_keys: UInt16
  public var instr_keys: UInt16
  public var sps:
    (
      KVMPPCOneSegPageSize, KVMPPCOneSegPageSize, KVMPPCOneSegPageSize, KVMPPCOneSegPageSize,
      KVMPPCOneSegPageSize, KVMPPCOneSegPageSize, KVMPPCOneSegPageSize, KVMPPCOneSegPageSize
    )
  public static let KVM_PPC_PAGE_SIZES_REAL: UInt64 = 1
  public static let KVM_PPC_1T_SEGMENTS: UInt64 = 2
  public static let KVM_PPC_NO_HASH: UInt64 = 4
  /// The used entries of `sps`.
  public var segmentPageSizes: [KVMPPCOneSegPageSize] {
    withUnsafeBytes(of: sps) { Array($0.bindMemory(to: KVMPPCOneSegPageSize.self)) }
      .filter { $0.page_shift != 0 }
  }
  /// All zeroes, for the kernel to fill in.
  public static var zero: KVMPPCSMMUInfo {
    withUnsafeTemporaryAllocation(of: KVMPPCSMMUInfo.self, capacity: 1) { p in
      UnsafeMutableRawBufferPointer(p).initializeMemory(as: UInt8.self, repeating: 0)
      return p[0]
    }
  }
}

/// One SLB entry of kvm_sregs.u.s.ppc64.slb[].
public struct KVMPPCSLBEntry: Sendable, Hashable {
  public var slbe: UInt64
  public var slbv: UInt64
  public init(slbe: UInt64 = 0, slbv: UInt64 = 0) {
    self.slbe = slbe
    self.slbv = slbv
  }
}

/// kvm_sregs.u.s.ppc32 (192 bytes).
public struct KVMSregsPPC32: Sendable {
  public var sr:
    (
      UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32,
      UInt32,
      UInt32, UInt32, UInt32, UInt32
    )
  public var ibat: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
  public var dbat: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
}

/// struct kvm_sregs on powerpc (1232 bytes): Book3S's view of the union `u.s`
/// (sdr1, the 64 SLB entries, the 32-bit segment registers and BATs). The Book E view `u.e`
/// and `u.pad[1020]` are smaller, so `u.s` alone sets the union's size.
public struct KVMSregs: Sendable {
  public var pvr: UInt32
  var _align: UInt32 = 0  // C puts the union at offset 8 (it holds __u64s)
  public var sdr1: UInt64
  public var slb:
    (
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry,
      KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry, KVMPPCSLBEntry
    )
  public var ppc32: KVMSregsPPC32

  /// All zeroes, for the kernel to fill in.
  public static var zero: KVMSregs {
    withUnsafeTemporaryAllocation(of: KVMSregs.self, capacity: 1) { p in
      UnsafeMutableRawBufferPointer(p).initializeMemory(as: UInt8.self, repeating: 0)
      return p[0]
    }
  }

  /// kvm_sregs.u.s.ppc64.slb[i].
  public subscript(slb i: Int) -> KVMPPCSLBEntry {
    get {
      precondition((0..<64).contains(i))
      return withUnsafeBytes(of: slb) { $0.load(fromByteOffset: i * 16, as: KVMPPCSLBEntry.self) }
    }
    set {
      precondition((0..<64).contains(i))
      withUnsafeMutableBytes(of: &slb) {
        $0.storeBytes(of: newValue, toByteOffset: i * 16, as: KVMPPCSLBEntry.self)
      }
    }
  }
}

/// struct kvm_regs on powerpc (392 bytes): KVM_GET_REGS / KVM_SET_REGS. The only way to set a
/// Book3S vCPU's PC and MSR (ONE_REG has no id for them).
public struct KVMRegs: Sendable {
  public var pc: UInt64
  public var cr: UInt64
  public var ctr: UInt64
  public var lr: UInt64
  public var xer: UInt64
  public var msr: UInt64
  public var srr0: UInt64
  public var srr1: UInt64
  public var pid: UInt64
  public var sprg: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
  public var gpr:
    (
      UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
      UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
      UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
    )

  /// All zeroes, for the kernel to fill in.
  public static var zero: KVMRegs {
    withUnsafeTemporaryAllocation(of: KVMRegs.self, capacity: 1) { p in
      UnsafeMutableRawBufferPointer(p).initializeMemory(as: UInt8.self, repeating: 0)
      return p[0]
    }
  }

  /// kvm_regs.gpr[i].
  public subscript(gpr i: Int) -> UInt64 {
    get {
      precondition((0..<32).contains(i))
      return withUnsafeBytes(of: gpr) { $0.load(fromByteOffset: i * 8, as: UInt64.self) }
    }
    set {
      precondition((0..<32).contains(i))
      withUnsafeMutableBytes(of: &gpr) {
        $0.storeBytes(of: newValue, toByteOffset: i * 8, as: UInt64.self)
      }
    }
  }
}

/// The fixed head of struct kvm_run (32 bytes), shared by every architecture; the exit
/// union follows at `KVMRun.exitUnionOffset`. kvm_run itself is the vCPU fd's mmap
/// (KVM_GET_VCPU_MMAP_SIZE bytes), so it is read in place, never copied whole.
public struct KVMRunHead: Sendable {
  public var request_interrupt_window: UInt8
  public var immediate_exit: UInt8
  public var padding1: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)
  public var exit_reason: UInt32
  public var ready_for_interrupt_injection: UInt8
  public var if_flag: UInt8
  public var flags: UInt16
  public var cr8: UInt64
  public var apic_base: UInt64
}

/// kvm_run.papr_hcall (88 bytes): the hcall KVM hands to userspace (KVM_EXIT_PAPR_HCALL).
public struct KVMRunPAPRHcall: Sendable {
  public var nr: UInt64
  /// Written by userspace: the hcall's return value when the vCPU runs again.
  public var ret: UInt64
  public var args: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
}

/// Offsets and exit reasons of struct kvm_run.
public enum KVMRun {
  /// offsetof(struct kvm_run, immediate_exit).
  public static let immediateExitOffset = 1
  /// offsetof(struct kvm_run, exit_reason).
  public static let exitReasonOffset = 8
  /// The exit union starts after the 32-byte head.
  public static let exitUnionOffset = 32

  public static let KVM_EXIT_UNKNOWN: UInt32 = 0
  public static let KVM_EXIT_DEBUG: UInt32 = 4
  public static let KVM_EXIT_HLT: UInt32 = 5
  public static let KVM_EXIT_MMIO: UInt32 = 6
  public static let KVM_EXIT_SHUTDOWN: UInt32 = 8
  public static let KVM_EXIT_FAIL_ENTRY: UInt32 = 9
  public static let KVM_EXIT_INTR: UInt32 = 10
  public static let KVM_EXIT_INTERNAL_ERROR: UInt32 = 17
  public static let KVM_EXIT_PAPR_HCALL: UInt32 = 19
}
