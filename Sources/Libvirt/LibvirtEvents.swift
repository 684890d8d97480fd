import CLibvirt
import Foundation

/// A domain lifecycle event (VIR_DOMAIN_EVENT_*).
public struct LifecycleEvent: Sendable, Equatable {
  public enum Kind: Int32, Sendable {
    case defined = 0
    case undefined, started, suspended, resumed, stopped, shutdown, pmsuspended, crashed
  }
  public var domain: String
  public var kind: Kind
  /// The event's detail (e.g. VIR_DOMAIN_EVENT_STOPPED_CRASHED for `stopped`).
  public var detail: Int32

  /// A guest that died: crashed, or stopped because it crashed or QEMU failed.
  public var isCrash: Bool {
    kind == .crashed
      || (kind == .stopped
        && (detail == Int32(VIR_DOMAIN_EVENT_STOPPED_CRASHED.rawValue)
          || detail == Int32(VIR_DOMAIN_EVENT_STOPPED_FAILED.rawValue)))
  }
}

/// libvirt's default event loop, which is process-wide: registered once, before the first
/// connection that wants events, and run on a thread of its own.
public enum LibvirtEventLoop {
  private static let started: Bool = {
    guard virt.virEventRegisterDefaultImpl() == 0 else { return false }
    let t = Thread {
      while true { _ = virt.virEventRunDefaultImpl() }
    }
    t.name = "libvirt-events"
    t.start()
    return true
  }()

  /// Starts the loop if it is not running; call before `LibvirtConnection(uri:)`.
  public static func start() throws(LibvirtError) {
    try LibvirtLibrary.require()
    guard started else { throw LibvirtError.last("registering libvirt's event loop") }
  }
}

final class LifecycleHandlerBox {
  let handler: @Sendable (LifecycleEvent) -> Void
  init(_ h: @escaping @Sendable (LifecycleEvent) -> Void) { handler = h }
}

/// The C callback: libvirt calls it on the event loop's thread.
private let lifecycleCallback: virConnectDomainEventCallback = { _, dom, event, detail, opaque in
  guard let dom, let opaque else { return 0 }
  let box = Unmanaged<LifecycleHandlerBox>.fromOpaque(opaque).takeUnretainedValue()
  if let kind = LifecycleEvent.Kind(rawValue: event) {
    box.handler(
      LifecycleEvent(domain: domainName(dom), kind: kind, detail: detail))
  }
  return 0
}

extension LibvirtConnection {
  /// Calls `handler` for every lifecycle event of every domain of this connection, until
  /// `removeLifecycleHandler` or the connection closes. Needs `LibvirtEventLoop.start()` first.
  @discardableResult
  public func onLifecycle(_ handler: @escaping @Sendable (LifecycleEvent) -> Void)
    throws(LibvirtError) -> Int32
  {
    let box = Unmanaged.passRetained(LifecycleHandlerBox(handler))
    let id = virt.virConnectDomainEventRegisterAny(
      ptr, nil, Int32(VIR_DOMAIN_EVENT_ID_LIFECYCLE.rawValue),
      unsafeBitCast(lifecycleCallback, to: virConnectDomainEventGenericCallback.self),
      box.toOpaque(),
      { opaque in
        if let opaque { Unmanaged<LifecycleHandlerBox>.fromOpaque(opaque).release() }
      })
    if id < 0 {
      box.release()
      throw LibvirtError.last("registering for domain lifecycle events")
    }
    return id
  }

  public func removeLifecycleHandler(_ id: Int32) {
    _ = virt.virConnectDomainEventDeregisterAny(ptr, id)
  }
}
