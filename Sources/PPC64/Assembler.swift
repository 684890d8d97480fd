/// A place in the code a branch can target.
public struct Label: Hashable, Sendable {
  let id: Int
}

/// Collects instructions and branches to labels, then resolves the displacements.
public struct Assembler: Sendable {
  enum Item: Sendable {
    case fixed(Instruction)
    case b(Label)
    case bc(BranchCondition, Label)
    case bdnz(Label)
  }
  var items: [Item] = []
  var bound: [Int: Int] = [:]
  var labelCount = 0

  public init() {}

  /// Byte offset of the next instruction from the start of the code.
  public var offset: Int { items.count * 4 }

  public mutating func newLabel() -> Label {
    labelCount += 1
    return Label(id: labelCount)
  }

  /// Binds `label` to the next instruction. A label is bound once.
  public mutating func bind(_ label: Label) {
    precondition(bound[label.id] == nil, "label bound twice")
    bound[label.id] = items.count
  }

  public mutating func emit(_ i: Instruction) { items.append(.fixed(i)) }
  public mutating func b(_ l: Label) { items.append(.b(l)) }
  public mutating func bc(_ c: BranchCondition, _ l: Label) { items.append(.bc(c, l)) }
  public mutating func bdnz(_ l: Label) { items.append(.bdnz(l)) }

  /// Any 64-bit constant in five instructions (lis, ori, sldi 32, oris, ori), always five, so
  /// the code's layout does not depend on the values it carries.
  public mutating func load64(_ r: GPR, _ v: UInt64) {
    emit(.addis(r, .r0, Int16(bitPattern: UInt16(truncatingIfNeeded: v >> 48))))
    emit(.ori(r, r, UInt16(truncatingIfNeeded: v >> 32)))
    emit(.sldi(r, r, 32))
    emit(.oris(r, r, UInt16(truncatingIfNeeded: v >> 16)))
    emit(.ori(r, r, UInt16(truncatingIfNeeded: v)))
  }

  /// The instructions with every branch resolved; an unbound label or a branch out of range is
  /// an error naming it.
  public func instructions() throws(PPC64Error) -> [Instruction] {
    var out: [Instruction] = []
    out.reserveCapacity(items.count)
    for (i, item) in items.enumerated() {
      func displacement(_ l: Label) throws(PPC64Error) -> Int32 {
        guard let t = bound[l.id] else {
          throw PPC64Error(instruction: "branch at +\(i * 4)", message: "label never bound")
        }
        return Int32((t - i) * 4)
      }
      let inst: Instruction
      switch item {
      case .fixed(let f): inst = f
      case .b(let l): inst = .b(try displacement(l))
      case .bc(let c, let l): inst = .bc(c, try displacement(l))
      case .bdnz(let l): inst = .bdnz(try displacement(l))
      }
      _ = try inst.encode()  // range checks
      out.append(inst)
    }
    return out
  }
}

/// The byte order of the guest the code is for. The harness's guests run little-endian
/// (MSR_LE set), as ppc64le Linux does; big-endian is kept for the encoder's tests.
public enum ByteOrder: Sendable, Hashable {
  case littleEndian, bigEndian
}

extension Array where Element == Instruction {
  /// The instruction words in `order`.
  public func encoded(_ order: ByteOrder) throws(PPC64Error) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count * 4)
    for i in self {
      let w = try i.encode()
      let v = order == .littleEndian ? w.littleEndian : w.bigEndian
      Swift.withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) }
    }
    return bytes
  }
}
