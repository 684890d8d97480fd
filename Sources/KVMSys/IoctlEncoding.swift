/// The `_IOC(dir, type, nr, size)` request encoding. It is not the same everywhere: powerpc
/// (arch/powerpc/include/uapi/asm/ioctl.h) has a 13-bit size field and its own direction bits,
/// while x86_64 and arm64 use include/uapi/asm-generic/ioctl.h. A harness built on x86 must
/// still be able to say what a POWER kernel expects, so the layout is a value, not an #if.
public enum Arch: String, Sendable, CaseIterable, CustomStringConvertible {
  /// powerpc/ppc64/ppc64le: size 13 bits, dir at bit 29, NONE=1 READ=2 WRITE=4.
  case powerpc
  /// asm-generic (x86_64, arm64): size 14 bits, dir at bit 30, NONE=0 WRITE=1 READ=2.
  case generic

  /// The layout of the machine this code was compiled for.
  public static var host: Arch {
    #if arch(powerpc64) || arch(powerpc64le) || arch(powerpc)
      return .powerpc
    #else
      return .generic
    #endif
  }

  public var description: String { rawValue }
}

/// The direction of an ioctl's argument, as the kernel names it (from userspace's view:
/// `_IOR` means the kernel writes, userspace reads).
public enum IoctlDirection: Sendable, Hashable {
  case none  // _IO
  case read  // _IOR
  case write  // _IOW
  case readWrite  // _IOWR
}

public enum IoctlEncoding {
  /// _IOC_NRBITS and _IOC_TYPEBITS are 8 on every architecture.
  static let nrShift: UInt = 0
  static let typeShift: UInt = 8
  static let sizeShift: UInt = 16

  /// _IOC_SIZEBITS.
  public static func sizeBits(_ arch: Arch) -> UInt { arch == .powerpc ? 13 : 14 }

  /// _IOC_DIRSHIFT.
  public static func dirShift(_ arch: Arch) -> UInt { arch == .powerpc ? 29 : 30 }

  /// The value of _IOC_NONE/_IOC_READ/_IOC_WRITE (or READ|WRITE) on `arch`.
  public static func dirBits(_ dir: IoctlDirection, _ arch: Arch) -> UInt {
    switch (arch, dir) {
    case (.powerpc, .none): return 1
    case (.powerpc, .read): return 2
    case (.powerpc, .write): return 4
    case (.powerpc, .readWrite): return 2 | 4
    case (.generic, .none): return 0
    case (.generic, .write): return 1
    case (.generic, .read): return 2
    case (.generic, .readWrite): return 1 | 2
    }
  }

  /// `_IOC(dir, type, nr, size)`. The size must fit the architecture's size field; a larger
  /// struct would silently corrupt the direction bits, so that is a programming error.
  public static func ioc(_ dir: IoctlDirection, type: UInt8, nr: UInt8, size: Int, arch: Arch)
    -> UInt
  {
    precondition(size >= 0 && UInt(size) < (1 << sizeBits(arch)), "ioctl size \(size) too large")
    return dirBits(dir, arch) << dirShift(arch) | UInt(size) << sizeShift
      | UInt(type) << typeShift | UInt(nr) << nrShift
  }

  /// Splits a request number back into its fields (for recording and messages).
  public static func decode(_ request: UInt, arch: Arch) -> (
    dir: IoctlDirection?, type: UInt8, nr: UInt8, size: Int
  ) {
    let size = Int((request >> sizeShift) & ((1 << sizeBits(arch)) - 1))
    let bits = request >> dirShift(arch)
    let dir = [IoctlDirection.none, .read, .write, .readWrite].first {
      dirBits($0, arch) == bits
    }
    return (dir, UInt8((request >> typeShift) & 0xff), UInt8(request & 0xff), size)
  }
}
