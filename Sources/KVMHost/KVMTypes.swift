/// The KVM capabilities the harness asks about or enables, the one list for every layer
/// (include/uapi/linux/kvm.h, KVM_CAP_*): KVM_CHECK_EXTENSION on the system or VM fd,
/// KVM_ENABLE_CAP on a vCPU.
public enum KVMCapability: UInt32, Sendable, CaseIterable, CustomStringConvertible {
  case userMemory = 3  // KVM_CAP_USER_MEMORY
  /// KVM-PR only: QEMU's way of telling PR from HV.
  case ppcGetPVInfo = 57  // KVM_CAP_PPC_GET_PVINFO
  /// Enabled on each vCPU: KVM-HV runs PAPR (pseries) guests only.
  case ppcPAPR = 68  // KVM_CAP_PPC_PAPR
  case oneReg = 70  // KVM_CAP_ONE_REG
  case ppcAllocHTAB = 80  // KVM_CAP_PPC_ALLOC_HTAB
  case ppcHTABFD = 84  // KVM_CAP_PPC_HTAB_FD
  case spaprResizeHPT = 133  // KVM_CAP_SPAPR_RESIZE_HPT
  case ppcMMURadix = 134  // KVM_CAP_PPC_MMU_RADIX
  case ppcMMUHashV3 = 135  // KVM_CAP_PPC_MMU_HASH_V3
  case immediateExit = 136  // KVM_CAP_IMMEDIATE_EXIT

  public var description: String {
    switch self {
    case .userMemory: return "KVM_CAP_USER_MEMORY"
    case .ppcGetPVInfo: return "KVM_CAP_PPC_GET_PVINFO"
    case .ppcPAPR: return "KVM_CAP_PPC_PAPR"
    case .oneReg: return "KVM_CAP_ONE_REG"
    case .ppcAllocHTAB: return "KVM_CAP_PPC_ALLOC_HTAB"
    case .ppcHTABFD: return "KVM_CAP_PPC_HTAB_FD"
    case .spaprResizeHPT: return "KVM_CAP_SPAPR_RESIZE_HPT"
    case .ppcMMURadix: return "KVM_CAP_PPC_MMU_RADIX"
    case .ppcMMUHashV3: return "KVM_CAP_PPC_MMU_HASH_V3"
    case .immediateExit: return "KVM_CAP_IMMEDIATE_EXIT"
    }
  }
}

/// The log2 of an HPT's size in bytes. The kernel accepts 18...46 (PPC_MIN_HPT_ORDER ...
/// PPC_MAX_HPT_ORDER); the uapi struct calls the same number `shift`.
public struct HPTOrder: RawRepresentable, Hashable, Comparable, Sendable, Codable,
  CustomStringConvertible
{
  public static let validRange: ClosedRange<UInt32> = 18...46
  public let rawValue: UInt32
  public init?(rawValue: UInt32) {
    guard HPTOrder.validRange.contains(rawValue) else { return nil }
    self.rawValue = rawValue
  }
  public static func < (a: HPTOrder, b: HPTOrder) -> Bool { a.rawValue < b.rawValue }
  public var description: String { String(rawValue) }
  /// Number of HPTEs (16 bytes each).
  public var hpteCount: Int { 1 << (Int(rawValue) - 4) }
  /// Number of HPTE groups (8 HPTEs each).
  public var groupCount: Int { 1 << (Int(rawValue) - 7) }

  /// One order up, but not above `limit` (an order already above it comes down to it).
  public func grown(upTo limit: HPTOrder) -> HPTOrder {
    HPTOrder(rawValue: Swift.min(limit.rawValue, rawValue + 1))!
  }

  /// One order down, but not below `limit` (never below 18: no wrap-around).
  public func shrunk(downTo limit: HPTOrder) -> HPTOrder {
    HPTOrder(rawValue: Swift.max(limit.rawValue, rawValue - 1))!
  }
}

/// A literal order in code (`job.orderMax = 24`); one outside 18...46 is a programming error.
extension HPTOrder: ExpressibleByIntegerLiteral {
  public init(integerLiteral value: UInt32) {
    guard let order = HPTOrder(rawValue: value) else {
      preconditionFailure("HPT order \(value) is outside \(HPTOrder.validRange)")
    }
    self = order
  }
}

/// KVM_PPC_RESIZE_HPT_PREPARE's positive answers: 0 (the new HPT is ready) or a number of
/// milliseconds after which to ask again (the kernel says 100 while its worker allocates).
public enum PrepareStatus: Hashable, Sendable {
  case ready
  case pending(estimateMs: Int)
}

/// KVM_CREATE_VM's type argument on powerpc.
public enum VMType: UInt, Sendable {
  case `default` = 0  // HV if kvm_hv is loaded, else PR
  case hv = 1  // KVM_VM_PPC_HV
  case pr = 2  // KVM_VM_PPC_PR
}

/// Why KVM_RUN returned to userspace.
public enum VCPUExit: Hashable, Sendable {
  /// KVM_EXIT_PAPR_HCALL: an hcall the kernel leaves to userspace (nr, args[0...]).
  case paprHcall(nr: UInt64, args: [UInt64])
  /// KVM_EXIT_INTR: a signal or immediate_exit made the run return.
  case interrupted
  /// KVM_EXIT_SHUTDOWN or an internal error: the vCPU cannot run again.
  case shutdown(reason: String)
  case unsupported(UInt32)
}

/// What the harness's guest payload does on every vCPU: walk a range of guest memory,
/// writing a pattern into each page and verifying what it wrote before, and report through
/// an hcall (HPTHammerHcall.report) every `pagesPerReport` pages.
public struct GuestPayload: Hashable, Sendable {
  /// Guest-physical range the vCPU walks; vCPUs of one VM get disjoint ranges.
  public var base: UInt64
  public var size: UInt64
  public var patternSeed: UInt64
  public var pagesPerReport: Int
  /// Bolted HPTEs in secondary groups the vCPU enters (H_ENTER) before it starts (bug B5's
  /// reach); one vCPU per VM is enough.
  public var boltedSecondaryHPTEs: Int
  /// Guest-physical address of the vCPU's taken table (PayloadParameters.takenTable), where
  /// the VMM marks the pages it frees; 0: none.
  public var takenTable: UInt64
  public init(
    base: UInt64, size: UInt64, patternSeed: UInt64, pagesPerReport: Int,
    boltedSecondaryHPTEs: Int = 0, takenTable: UInt64 = 0
  ) {
    self.takenTable = takenTable
    self.base = base
    self.size = size
    self.patternSeed = patternSeed
    self.pagesPerReport = pagesPerReport
    self.boltedSecondaryHPTEs = boltedSecondaryHPTEs
  }
}

/// The hcall numbers the harness's payload uses to talk to its VMM. They sit in the range
/// PAPR leaves to the platform (above KVM's own and QEMU's), so the kernel hands them to
/// userspace as KVM_EXIT_PAPR_HCALL.
public enum HPTHammerHcall {
  /// args: pages verified, mismatches, first bad guest-physical address, expected, found.
  public static let report: UInt64 = 0xF100
  /// From the interrupt vectors (PPC64.InterruptVectors): the guest took an interrupt.
  /// args: the vector, SRR0, SRR1, DAR, DSISR.
  public static let interrupt: UInt64 = 0xF101
}
