/// One KVM ioctl request: the kernel's name and the fields of its `_IO*` definition. Every
/// number the raw backend sends comes from `number(for:)`, so one table serves both the host
/// it runs on and the POWER host it describes (`hpthammer doctor --ioctls --arch ppc64le`).
public struct KVMIoctl: Hashable, Sendable, CustomStringConvertible {
  /// The name as include/uapi/linux/kvm.h spells it ("KVM_PPC_RESIZE_HPT_PREPARE").
  public let name: String
  public let dir: IoctlDirection
  public let nr: UInt8
  /// sizeof the argument type in the `_IO*` macro (0 for `_IO`).
  public let size: Int

  /// KVMIO, the type byte of every KVM ioctl.
  public static let KVMIO: UInt8 = 0xAE

  init(_ name: String, _ dir: IoctlDirection, _ nr: UInt8, size: Int = 0) {
    self.name = name
    self.dir = dir
    self.nr = nr
    self.size = size
  }

  /// The request number on `arch`.
  public func number(for arch: Arch) -> UInt {
    IoctlEncoding.ioc(dir, type: KVMIoctl.KVMIO, nr: nr, size: size, arch: arch)
  }

  public var description: String { name }

  // System fd (/dev/kvm).
  /// _IO(KVMIO, 0x00)
  public static let KVM_GET_API_VERSION = KVMIoctl("KVM_GET_API_VERSION", .none, 0x00)
  /// _IO(KVMIO, 0x01); the argument is the VM type.
  public static let KVM_CREATE_VM = KVMIoctl("KVM_CREATE_VM", .none, 0x01)
  /// _IO(KVMIO, 0x03); system or VM fd.
  public static let KVM_CHECK_EXTENSION = KVMIoctl("KVM_CHECK_EXTENSION", .none, 0x03)
  /// _IO(KVMIO, 0x04)
  public static let KVM_GET_VCPU_MMAP_SIZE = KVMIoctl("KVM_GET_VCPU_MMAP_SIZE", .none, 0x04)

  // VM fd.
  /// _IO(KVMIO, 0x41); the argument is the vCPU id.
  public static let KVM_CREATE_VCPU = KVMIoctl("KVM_CREATE_VCPU", .none, 0x41)
  /// _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region)
  public static let KVM_SET_USER_MEMORY_REGION = KVMIoctl(
    "KVM_SET_USER_MEMORY_REGION", .write, 0x46, size: MemoryLayout<KVMUserspaceMemoryRegion>.size)
  /// _IOW(KVMIO, 0xa3, struct kvm_enable_cap); VM or vCPU fd.
  public static let KVM_ENABLE_CAP = KVMIoctl(
    "KVM_ENABLE_CAP", .write, 0xa3, size: MemoryLayout<KVMEnableCap>.size)
  /// _IOR(KVMIO, 0xa6, struct kvm_ppc_smmu_info)
  public static let KVM_PPC_GET_SMMU_INFO = KVMIoctl(
    "KVM_PPC_GET_SMMU_INFO", .read, 0xa6, size: MemoryLayout<KVMPPCSMMUInfo>.size)
  /// _IOWR(KVMIO, 0xa7, __u32): in, the wanted order (0: the kernel's default); out, the order.
  public static let KVM_PPC_ALLOCATE_HTAB = KVMIoctl(
    "KVM_PPC_ALLOCATE_HTAB", .readWrite, 0xa7, size: MemoryLayout<UInt32>.size)
  /// _IOW(KVMIO, 0xaa, struct kvm_get_htab_fd); returns a new fd.
  public static let KVM_PPC_GET_HTAB_FD = KVMIoctl(
    "KVM_PPC_GET_HTAB_FD", .write, 0xaa, size: MemoryLayout<KVMGetHTABFD>.size)
  /// _IOR(KVMIO, 0xad, struct kvm_ppc_resize_hpt). `_IOR` although userspace writes the
  /// struct: the kernel only reads it, but the uapi says READ, and the number is what counts.
  public static let KVM_PPC_RESIZE_HPT_PREPARE = KVMIoctl(
    "KVM_PPC_RESIZE_HPT_PREPARE", .read, 0xad, size: MemoryLayout<KVMPPCResizeHPT>.size)
  /// _IOR(KVMIO, 0xae, struct kvm_ppc_resize_hpt)
  public static let KVM_PPC_RESIZE_HPT_COMMIT = KVMIoctl(
    "KVM_PPC_RESIZE_HPT_COMMIT", .read, 0xae, size: MemoryLayout<KVMPPCResizeHPT>.size)
  /// _IOWR(KVMIO, 0xe0, struct kvm_create_device); the device's fd comes back in the struct.
  public static let KVM_CREATE_DEVICE = KVMIoctl(
    "KVM_CREATE_DEVICE", .readWrite, 0xe0, size: MemoryLayout<KVMCreateDevice>.size)
  /// _IOW(KVMIO, 0xaf, struct kvm_ppc_mmuv3_cfg)
  public static let KVM_PPC_CONFIGURE_V3_MMU = KVMIoctl(
    "KVM_PPC_CONFIGURE_V3_MMU", .write, 0xaf, size: MemoryLayout<KVMPPCMMUv3Cfg>.size)

  // vCPU fd.
  /// _IO(KVMIO, 0x80)
  public static let KVM_RUN = KVMIoctl("KVM_RUN", .none, 0x80)
  /// _IOR(KVMIO, 0x81, struct kvm_regs): powerpc's kvm_regs (PC, MSR, GPRs...).
  public static let KVM_GET_REGS = KVMIoctl(
    "KVM_GET_REGS", .read, 0x81, size: MemoryLayout<KVMRegs>.size)
  /// _IOW(KVMIO, 0x82, struct kvm_regs)
  public static let KVM_SET_REGS = KVMIoctl(
    "KVM_SET_REGS", .write, 0x82, size: MemoryLayout<KVMRegs>.size)
  /// _IOR(KVMIO, 0x83, struct kvm_sregs): powerpc's kvm_sregs (x86's differs; this
  /// backend only ever sends powerpc's).
  public static let KVM_GET_SREGS = KVMIoctl(
    "KVM_GET_SREGS", .read, 0x83, size: MemoryLayout<KVMSregs>.size)
  /// _IOW(KVMIO, 0x84, struct kvm_sregs)
  public static let KVM_SET_SREGS = KVMIoctl(
    "KVM_SET_SREGS", .write, 0x84, size: MemoryLayout<KVMSregs>.size)
  /// _IOW(KVMIO, 0xab, struct kvm_one_reg): `_IOW` for both GET and SET, as in the uapi.
  public static let KVM_GET_ONE_REG = KVMIoctl(
    "KVM_GET_ONE_REG", .write, 0xab, size: MemoryLayout<KVMOneReg>.size)
  /// _IOW(KVMIO, 0xac, struct kvm_one_reg)
  public static let KVM_SET_ONE_REG = KVMIoctl(
    "KVM_SET_ONE_REG", .write, 0xac, size: MemoryLayout<KVMOneReg>.size)

  /// Every request the raw backend uses, in the kernel header's order of nr within each fd.
  public static let all: [KVMIoctl] = [
    KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE,
    KVM_CREATE_VCPU, KVM_SET_USER_MEMORY_REGION, KVM_ENABLE_CAP, KVM_PPC_GET_SMMU_INFO,
    KVM_PPC_ALLOCATE_HTAB, KVM_PPC_GET_HTAB_FD, KVM_PPC_RESIZE_HPT_PREPARE,
    KVM_PPC_RESIZE_HPT_COMMIT, KVM_PPC_CONFIGURE_V3_MMU, KVM_CREATE_DEVICE,
    KVM_RUN, KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS, KVM_GET_ONE_REG,
    KVM_SET_ONE_REG,
  ]

  /// The request whose number on `arch` is `number`, for recorded calls and messages.
  public static func named(number: UInt, arch: Arch) -> KVMIoctl? {
    all.first { $0.number(for: arch) == number }
  }
}

/// ONE_REG ids (include/uapi/linux/kvm.h, arch/powerpc/include/uapi/asm/kvm.h).
public enum KVMReg {
  public static let KVM_REG_PPC: UInt64 = 0x1000_0000_0000_0000
  public static let KVM_REG_SIZE_SHIFT: UInt64 = 52
  public static let KVM_REG_SIZE_MASK: UInt64 = 0x00f0_0000_0000_0000
  public static let KVM_REG_SIZE_U32: UInt64 = 0x0020_0000_0000_0000
  public static let KVM_REG_SIZE_U64: UInt64 = 0x0030_0000_0000_0000
  /// KVM_REG_PPC_DAR and _DSISR: the guest's data address and status of its last storage
  /// interrupt.
  public static let KVM_REG_PPC_DAR = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xc
  public static let KVM_REG_PPC_DSISR = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0xd
  /// KVM_REG_PPC_LPCR_64: the guest's LPCR (HV sets the parts a guest may choose).
  public static let KVM_REG_PPC_LPCR_64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xb5
  /// KVM_REG_PPC_ARCH_COMPAT: the compatibility PVR the guest runs as.
  public static let KVM_REG_PPC_ARCH_COMPAT = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0xb7

  /// The register's size in bytes, from the id's KVM_REG_SIZE field.
  public static func size(of id: UInt64) -> Int {
    1 << Int((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT)
  }
}
