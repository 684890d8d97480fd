import Foundation
import Testing

@testable import Libvirt

/// The Swift layer against libvirt's test driver (test:///default: no daemon, a real libvirt).
@Suite(.serialized) struct LibvirtTestDriverTests {
  static let domainXML = """
    <domain type='test'>
      <name>hpthammer-unit-%@</name>
      <memory unit='MiB'>128</memory>
      <os><type arch='x86_64'>hvm</type></os>
    </domain>
    """

  func xml(_ name: String) -> String { Self.domainXML.replacingOccurrences(of: "%@", with: name) }

  @Test func connectListAndCapabilities() throws {
    let c = try LibvirtConnection(uri: "test:///default")
    #expect(try c.domainNames().contains("test"))
    #expect(try c.capabilities().contains("<capabilities>"))
    #expect(try c.libVersion() > 1_000_000)
  }

  @Test func defineStartDestroyUndefine() throws {
    let c = try LibvirtConnection(uri: "test:///default")
    let d = try c.defineDomain(xml: xml("a"))
    #expect(d.name == "hpthammer-unit-a")
    #expect(try d.state().0 == .shutoff)
    try d.start()
    #expect(try d.state().0 == .running)
    try d.destroy()
    #expect(try d.state().0 == .shutoff)
    try d.undefine()
    #expect(throws: LibvirtError.self) { try c.lookupDomain(name: "hpthammer-unit-a") }
  }

  @Test func aMissingLibvirtIsAnErrorNamingItsPackage() {
    guard case .failure(let error) = LibvirtLibrary.load(soname: "libvirt-hpthammer-none.so.0")
    else {
      Issue.record("a library that does not exist was loaded")
      return
    }
    #expect(error.description.contains("libvirt-hpthammer-none.so.0"))
    #expect(error.description.contains("libvirt0"))
    // The library the harness uses loads, with every function it calls.
    guard case .success = LibvirtLibrary.load(soname: LibvirtLibrary.soname) else {
      Issue.record("\(LibvirtLibrary.soname) did not load")
      return
    }
  }

  @Test func errorsSayWhatAndWhy() throws {
    let c = try LibvirtConnection(uri: "test:///default")
    do {
      _ = try c.lookupDomain(name: "no-such-domain")
      Issue.record("lookup of a missing domain succeeded")
    } catch {
      #expect(error.isNoDomain)
      #expect(error.description.hasPrefix("looking up domain no-such-domain: "))
      #expect(!error.message.isEmpty)
    }
    do {
      _ = try LibvirtConnection(uri: "nosuchdriver:///x")
      Issue.record("a bogus URI connected")
    } catch {
      #expect(error.description.hasPrefix("connecting to nosuchdriver:///x: "))
    }
    let d = try c.defineDomain(xml: xml("b"))
    defer { try? d.undefine() }
    #expect(throws: LibvirtError.self) { try d.destroy() }  // not running
  }

  @Test func lifecycleEvents() throws {
    try LibvirtEventLoop.start()
    let c = try LibvirtConnection(uri: "test:///default")
    final class Seen: @unchecked Sendable {
      let lock = NSLock()
      var events: [LifecycleEvent] = []
    }
    let seen = Seen()
    let id = try c.onLifecycle { e in
      seen.lock.lock()
      seen.events.append(e)
      seen.lock.unlock()
    }
    defer { c.removeLifecycleHandler(id) }
    let d = try c.defineDomain(xml: xml("c"))
    try d.start()
    try d.destroy()
    try d.undefine()
    var kinds: [LifecycleEvent.Kind] = []
    for _ in 0..<50 {
      seen.lock.lock()
      kinds = seen.events.filter { $0.domain == "hpthammer-unit-c" }.map(\.kind)
      seen.lock.unlock()
      if kinds.count >= 4 { break }
      Thread.sleep(forTimeInterval: 0.05)
    }
    #expect(kinds == [.defined, .started, .stopped, .undefined])
  }
}

@Suite struct HPTDomainTests {
  static let caps = """
    <capabilities><guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>
    <guest><os_type>hvm</os_type><arch name='ppc64le'><wordsize>64</wordsize><domain type='qemu'/></arch></guest></capabilities>
    """

  @Test func domainTypeFromCapabilities() {
    #expect(DomainType.best(forPPC64LEIn: Self.caps) == .qemu)
    let power = Self.caps.replacingOccurrences(
      of: "<wordsize>64</wordsize><domain type='qemu'/>",
      with: "<domain type='qemu'/><domain type='kvm'/>")
    #expect(DomainType.best(forPPC64LEIn: power) == .kvm)
    #expect(DomainType.best(forPPC64LEIn: "<capabilities></capabilities>") == nil)
  }

  @Test func hptDomainXML() {
    let s = HPTDomainSpec(
      name: "g<0>", type: .qemu, memoryMiB: 1024, vcpus: 2, kernel: "/k", initrd: "/i",
      consoleLog: "/tmp/c.log")
    let x = s.xml
    #expect(x.contains("<hpt resizing='required'>"))
    #expect(x.contains("<maxpagesize unit='KiB'>64</maxpagesize>"))
    #expect(x.contains("<name>g&lt;0&gt;</name>"))
    #expect(x.contains("<cmdline>console=hvc0 disable_radix</cmdline>"))
    #expect(x.contains("<model fallback='forbid'>POWER9</model>"))
    #expect(x.contains("<maxMemory slots='4' unit='MiB'>4096</maxMemory>"))
    #expect(x.contains("x-vof=on"))
    var k = s
    k.type = .kvm
    // KVM-HV on an emulated POWER9 (the lab) needs the spectre capabilities at 'broken' too;
    // TM stays the host's business.
    #expect(k.xml.contains("x-vof=on") && k.xml.contains("host-passthrough"))
    #expect(k.xml.contains("<cfpc value='broken'/>") && !k.xml.contains("<htm"))
    #expect(x.contains("<htm state='off'/>"))
    k.vof = false
    #expect(!k.xml.contains("x-vof"))
  }
}
