import CLibvirt
import Foundation

/// A libvirt error, with libvirt's own code and message (e.g. "Failed to connect socket to
/// '/var/run/libvirt/libvirt-sock': No such file or directory"), and what the harness was doing.
public struct LibvirtError: Error, CustomStringConvertible, Sendable {
  public var operation: String
  public var code: Int32
  public var domain: Int32
  public var message: String

  /// The last error of this thread, which libvirt keeps per thread. It is read before
  /// `operation` is built: building it may call libvirt (virDomainGetName), which resets it.
  static func last(_ operation: @autoclosure () -> String) -> LibvirtError {
    guard let e = virt.virSaveLastError() else {
      return LibvirtError(
        operation: operation(), code: -1, domain: -1, message: "unknown libvirt error")
    }
    defer { virt.virFreeError(e) }
    let message = e.pointee.message.map { String(cString: $0) } ?? "libvirt error \(e.pointee.code)"
    return LibvirtError(
      operation: operation(), code: e.pointee.code, domain: e.pointee.domain, message: message)
  }

  public var description: String { "\(operation): \(message)" }

  /// VIR_ERR_NO_DOMAIN.
  public var isNoDomain: Bool { code == Int32(VIR_ERR_NO_DOMAIN.rawValue) }
  /// VIR_ERR_OPERATION_INVALID (e.g. destroying a domain that is not running).
  public var isOperationInvalid: Bool { code == Int32(VIR_ERR_OPERATION_INVALID.rawValue) }
}

/// libvirt itself, loaded on first use (CLibvirt): only the libvirt backend loads it.
public enum LibvirtLibrary {
  /// The library the harness loads: libvirt's stable ABI (Debian's libvirt0).
  public static let soname = "libvirt.so.0"

  /// libvirt's functions from `soname`, or what went wrong, naming the library and its package.
  public static func load(soname: String) -> Result<clibvirt_functions, LibvirtError> {
    var functions = clibvirt_functions()
    var error = [CChar](repeating: 0, count: 512)
    guard clibvirt_load(soname, &functions, &error, error.count) == 0 else {
      let message = String(
        decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      return .failure(
        LibvirtError(
          operation: "loading libvirt (\(soname); install Debian's libvirt0 package)", code: -1,
          domain: -1, message: message))
    }
    // libvirt prints every error on stderr unless told otherwise; the harness reports them
    // itself.
    functions.virSetErrorFunc(nil) { _, _ in }
    return .success(functions)
  }

  static let loaded = load(soname: soname)

  /// Loads libvirt if it is not loaded: every way into this module (a connection, the event
  /// loop) calls this before any libvirt function.
  static func require() throws(LibvirtError) {
    if case .failure(let error) = loaded { throw error }
  }
}

/// A domain's name (NULL only for a pointer that is not a domain's).
func domainName(_ domain: virDomainPtr) -> String {
  virt.virDomainGetName(domain).map { String(cString: $0) } ?? "(no name)"
}

/// libvirt's functions; reached only after `LibvirtLibrary.require()` succeeded.
var virt: clibvirt_functions {
  guard case .success(let functions) = LibvirtLibrary.loaded else {
    preconditionFailure("libvirt called before LibvirtLibrary.require()")
  }
  return functions
}

/// A connection to a libvirt driver: qemu:///system, qemu+ssh://host/system, test:///default.
public final class LibvirtConnection: @unchecked Sendable {
  let ptr: virConnectPtr
  public let uri: String

  public init(uri: String) throws(LibvirtError) {
    try LibvirtLibrary.require()
    guard let p = virt.virConnectOpen(uri) else { throw LibvirtError.last("connecting to \(uri)") }
    ptr = p
    self.uri = uri
  }

  deinit { _ = virt.virConnectClose(ptr) }

  /// A connection to a libvirtd that may still be starting (a lab or a host that has just
  /// booted resets or refuses the first connections): retries until one connects and its
  /// capabilities satisfy `ready`, or `timeoutS` passes; then the last error is thrown.
  public static func waitingUntilReady(
    uri: String, timeoutS: Double, ready: (String) -> Bool = { _ in true },
    note: (String) -> Void = { _ in }
  ) throws(LibvirtError) -> LibvirtConnection {
    let deadline = Date().addingTimeInterval(timeoutS)
    var tries = 0
    while true {
      tries += 1
      do throws(LibvirtError) {
        let c = try LibvirtConnection(uri: uri)
        if ready(try c.capabilities()) {
          if tries > 1 { note("libvirt at \(uri) answers after \(tries) tries") }
          return c
        }
        if Date() >= deadline {
          throw LibvirtError(
            operation: "waiting for \(uri)", code: -1, domain: -1,
            message: "libvirtd answers but is not ready after \(Int(timeoutS)) s")
        }
      } catch {
        if Date() >= deadline { throw error }
        if tries == 1 { note("libvirt at \(uri) not answering yet (\(error)); retrying") }
      }
      Thread.sleep(forTimeInterval: 1)
    }
  }

  public func hostname() throws(LibvirtError) -> String {
    guard let c = virt.virConnectGetHostname(ptr) else {
      throw LibvirtError.last("virConnectGetHostname")
    }
    defer { free(c) }
    return String(cString: c)
  }

  /// The capabilities XML: which guest architectures and domain types (kvm, qemu) exist.
  public func capabilities() throws(LibvirtError) -> String {
    guard let c = virt.virConnectGetCapabilities(ptr) else {
      throw LibvirtError.last("virConnectGetCapabilities")
    }
    defer { free(c) }
    return String(cString: c)
  }

  /// libvirt's version as major * 1,000,000 + minor * 1,000 + release.
  public func libVersion() throws(LibvirtError) -> UInt {
    var v: UInt = 0
    guard virt.virConnectGetLibVersion(ptr, &v) == 0 else {
      throw LibvirtError.last("virConnectGetLibVersion")
    }
    return v
  }

  public func defineDomain(xml: String) throws(LibvirtError) -> LibvirtDomain {
    guard let d = virt.virDomainDefineXML(ptr, xml) else {
      throw LibvirtError.last("defining a domain")
    }
    return LibvirtDomain(d, connection: self)
  }

  public func lookupDomain(name: String) throws(LibvirtError) -> LibvirtDomain {
    guard let d = virt.virDomainLookupByName(ptr, name) else {
      throw LibvirtError.last("looking up domain \(name)")
    }
    return LibvirtDomain(d, connection: self)
  }

  /// Whether the daemon still answers: the connection is open (virConnectIsAlive; the event
  /// loop closes it when the daemon's socket does) and a call to the daemon returns.
  public var answers: Bool {
    virt.virConnectIsAlive(ptr) == 1 && (try? libVersion()) != nil
  }

  /// Every domain, defined or running.
  public func domainNames() throws(LibvirtError) -> [String] {
    var list: UnsafeMutablePointer<virDomainPtr?>?
    let n = virt.virConnectListAllDomains(ptr, &list, 0)
    guard n >= 0, let list else { throw LibvirtError.last("listing domains") }
    defer { free(list) }
    var names: [String] = []
    for i in 0..<Int(n) {
      if let d = list[i] {
        names.append(domainName(d))
        _ = virt.virDomainFree(d)
      }
    }
    return names.sorted()
  }
}

/// Lifecycle states (virDomainState).
public enum DomainState: Int32, Sendable, CustomStringConvertible {
  case nostate = 0
  case running, blocked, paused, shutdown, shutoff, crashed, pmsuspended
  public var description: String {
    [
      "no state", "running", "blocked", "paused", "shutting down", "shut off", "crashed",
      "suspended",
    ][Int(rawValue)]
  }
}

public final class LibvirtDomain: @unchecked Sendable {
  let ptr: virDomainPtr
  public let connection: LibvirtConnection

  init(_ p: virDomainPtr, connection: LibvirtConnection) {
    ptr = p
    self.connection = connection
  }

  deinit { _ = virt.virDomainFree(ptr) }

  public var name: String { domainName(ptr) }

  /// virDomainCreate: start a defined domain.
  public func start() throws(LibvirtError) {
    guard virt.virDomainCreate(ptr) == 0 else { throw LibvirtError.last("starting domain \(name)") }
  }

  /// virDomainDestroy: power it off at once.
  public func destroy() throws(LibvirtError) {
    guard virt.virDomainDestroy(ptr) == 0 else {
      throw LibvirtError.last("destroying domain \(name)")
    }
  }

  public func undefine() throws(LibvirtError) {
    guard virt.virDomainUndefine(ptr) == 0 else {
      throw LibvirtError.last("undefining domain \(name)")
    }
  }

  public func state() throws(LibvirtError) -> (DomainState, reason: Int32) {
    var state: Int32 = 0
    var reason: Int32 = 0
    guard virt.virDomainGetState(ptr, &state, &reason, 0) == 0 else {
      throw LibvirtError.last("state of \(name)")
    }
    return (DomainState(rawValue: state) ?? .nostate, reason)
  }

  public func xml() throws(LibvirtError) -> String {
    guard let c = virt.virDomainGetXMLDesc(ptr, 0) else {
      throw LibvirtError.last("XML of \(name)")
    }
    defer { free(c) }
    return String(cString: c)
  }

  /// The `<metadata>` element under `namespace` (virDomainGetMetadata), nil when it has none.
  public func metadata(namespace: String) throws(LibvirtError) -> String? {
    let type = Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue)
    guard let c = virt.virDomainGetMetadata(ptr, type, namespace, 0) else {
      let e = LibvirtError.last("metadata of \(name)")
      if e.code == Int32(VIR_ERR_NO_DOMAIN_METADATA.rawValue) { return nil }
      throw e
    }
    defer { free(c) }
    return String(cString: c)
  }

  /// Hotplug (live) a device such as a dimm: `<memory model='dimm'>...`.
  public func attachDevice(xml: String) throws(LibvirtError) {
    guard virt.virDomainAttachDeviceFlags(ptr, xml, VIR_DOMAIN_AFFECT_LIVE.rawValue) == 0 else {
      throw LibvirtError.last("attaching a device to \(name)")
    }
  }

  public func detachDevice(xml: String) throws(LibvirtError) {
    guard virt.virDomainDetachDeviceFlags(ptr, xml, VIR_DOMAIN_AFFECT_LIVE.rawValue) == 0 else {
      throw LibvirtError.last("detaching a device from \(name)")
    }
  }

  /// virDomainSetMemoryFlags(LIVE): the balloon's target, the memory the guest may keep.
  public func setMemory(kib: UInt) throws(LibvirtError) {
    guard virt.virDomainSetMemoryFlags(ptr, kib, VIR_DOMAIN_AFFECT_LIVE.rawValue) == 0 else {
      throw LibvirtError.last("setting the balloon of \(name) to \(kib) KiB")
    }
  }

  /// The memory the guest has now, by the balloon driver's own count (virDomainMemoryStats'
  /// ACTUAL_BALLOON, KiB); nil when the domain reports none.
  public func balloonKiB() throws(LibvirtError) -> UInt64? {
    var stats = [virDomainMemoryStatStruct](
      repeating: virDomainMemoryStatStruct(), count: Int(VIR_DOMAIN_MEMORY_STAT_NR.rawValue))
    let n = virt.virDomainMemoryStats(ptr, &stats, UInt32(stats.count), 0)
    guard n >= 0 else { throw LibvirtError.last("memory stats of \(name)") }
    let tag = Int32(VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON.rawValue)
    return stats.prefix(Int(n)).first { $0.tag == tag }.map { UInt64($0.val) }
  }

  /// The domain's console as a byte stream (virDomainOpenConsole). `read` blocks.
  public func openConsole() throws(LibvirtError) -> ConsoleStream {
    guard let st = virt.virStreamNew(connection.ptr, 0) else {
      throw LibvirtError.last("console stream for \(name)")
    }
    guard virt.virDomainOpenConsole(ptr, nil, st, UInt32(VIR_DOMAIN_CONSOLE_FORCE.rawValue)) == 0
    else {
      let e = LibvirtError.last("opening the console of \(name)")
      _ = virt.virStreamFree(st)
      throw e
    }
    return ConsoleStream(st, domain: self)
  }
}

public final class ConsoleStream: @unchecked Sendable {
  let ptr: OpaquePointer
  let domain: LibvirtDomain

  init(_ p: OpaquePointer, domain: LibvirtDomain) {
    ptr = p
    self.domain = domain
  }

  deinit {
    _ = virt.virStreamAbort(ptr)
    _ = virt.virStreamFree(ptr)
  }

  /// Up to `max` bytes; empty at the end of the stream (the domain stopped).
  public func read(max: Int = 4096) throws(LibvirtError) -> [UInt8] {
    var buf = [UInt8](repeating: 0, count: max)
    let n = buf.withUnsafeMutableBytes {
      virt.virStreamRecv(ptr, $0.baseAddress!.assumingMemoryBound(to: CChar.self), max)
    }
    if n < 0 { throw LibvirtError.last("reading the console of \(domain.name)") }
    return Array(buf[0..<Int(n)])
  }

  public func write(_ bytes: [UInt8]) throws(LibvirtError) {
    var off = 0
    while off < bytes.count {
      let n = bytes[off...].withUnsafeBytes {
        virt.virStreamSend(ptr, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count)
      }
      if n < 0 { throw LibvirtError.last("writing to the console of \(domain.name)") }
      off += Int(n)
    }
  }
}
