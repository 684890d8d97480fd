import Foundation

/// libvirt domain type: KVM on a POWER host with kvm_hv, TCG ('qemu') anywhere else.
public enum DomainType: String, Sendable {
  case kvm, qemu

  /// The best type the host offers for ppc64le guests, from its capabilities XML; nil when it
  /// has no ppc64le emulator at all.
  public static func best(forPPC64LEIn capabilities: String) -> DomainType? {
    // <guest>...<arch name='ppc64le'>...<domain type='kvm'/>...</arch></guest>
    var best: DomainType?
    for guest in capabilities.components(separatedBy: "<guest>").dropFirst() {
      guard let archStart = guest.range(of: "<arch name='ppc64le'>") else { continue }
      let arch = guest[archStart.upperBound...].components(separatedBy: "</arch>").first ?? ""
      if arch.contains("<domain type='kvm'") { return .kvm }
      if arch.contains("<domain type='qemu'") { best = .qemu }
    }
    return best
  }
}

/// An HPT-mode pseries guest (hashed page table, resizable), as libvirt defines it.
public struct HPTDomainSpec: Sendable, Equatable {
  public var name: String
  public var type: DomainType
  public var memoryMiB: Int
  /// Room for memory hotplug: maxMemory with this many dimm slots up to this size.
  public var maxMemoryMiB: Int
  public var hotplugSlots: Int
  public var vcpus: Int
  /// POWER9 or POWER8 (type qemu); type kvm uses the host's CPU.
  public var cpuModel: String
  public var kernel: String
  public var initrd: String
  public var cmdline: String
  /// <hpt resizing='...'>: required, enabled or disabled.
  public var resizing: String
  /// A copy of everything the console prints (a path on the host that runs QEMU).
  public var consoleLog: String
  /// Boot through QEMU's VOF instead of SLOF (-machine x-vof=on, QEMU >= 6.0).
  public var vof: Bool
  /// The run that made it (domain metadata), so that a dead run's domains can be found.
  public var owner: DomainOwner?
  /// A virtio balloon (the guest needs the virtio_pci and virtio_balloon drivers).
  public var balloon = false

  public init(
    name: String, type: DomainType, memoryMiB: Int, maxMemoryMiB: Int? = nil, hotplugSlots: Int = 4,
    vcpus: Int, cpuModel: String = "POWER9", kernel: String, initrd: String,
    cmdline: String = "console=hvc0",
    resizing: String = "required", consoleLog: String, vof: Bool = true, owner: DomainOwner? = nil
  ) {
    self.vof = vof
    self.owner = owner
    self.name = name
    self.type = type
    self.memoryMiB = memoryMiB
    self.maxMemoryMiB = maxMemoryMiB ?? memoryMiB * 4
    self.hotplugSlots = hotplugSlots
    self.vcpus = vcpus
    self.cpuModel = cpuModel
    self.kernel = kernel
    self.initrd = initrd
    self.cmdline = cmdline
    self.resizing = resizing
    self.consoleLog = consoleLog
  }

  static func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "'", with: "&apos;")
      .replacingOccurrences(of: "\"", with: "&quot;")
  }

  /// A POWER9 guest runs radix unless told otherwise; HPT resizing needs the hash MMU.
  public var effectiveCmdline: String {
    cpuModel == "POWER9" && !cmdline.contains("disable_radix")
      ? cmdline + " disable_radix" : cmdline
  }

  public var xml: String {
    let e = Self.escape
    var x =
      "<domain type='\(type.rawValue)' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
    x += "  <name>\(e(name))</name>\n"
    if let owner {
      x += "  <metadata>\n    <hpthammer:owner xmlns:hpthammer='\(DomainOwner.namespace)'"
      x += owner.element.dropFirst("<owner".count) + "\n  </metadata>\n"
    }
    x += "  <maxMemory slots='\(hotplugSlots)' unit='MiB'>\(maxMemoryMiB)</maxMemory>\n"
    x += "  <memory unit='MiB'>\(memoryMiB)</memory>\n"
    x += "  <vcpu>\(vcpus)</vcpu>\n"
    x += "  <os>\n    <type arch='ppc64le' machine='pseries'>hvm</type>\n"
    x += "    <kernel>\(e(kernel))</kernel>\n    <initrd>\(e(initrd))</initrd>\n"
    x += "    <cmdline>\(e(effectiveCmdline))</cmdline>\n  </os>\n"
    x += "  <features>\n"
    x +=
      "    <hpt resizing='\(resizing)'>\n      <maxpagesize unit='KiB'>64</maxpagesize>\n    </hpt>\n"
    // TCG cannot emulate these spectre capabilities, and neither can KVM-HV on an emulated
    // POWER9 (the lab: "Requested safe cache capability level not supported by KVM"); QEMU
    // refuses to start without them. 'broken' is the lowest level, which any host grants.
    if type == .qemu { x += "    <htm state='off'/>\n" }
    x += "    <ccf-assist state='off'/>\n"
    x += "    <cfpc value='broken'/>\n    <sbbc value='broken'/>\n    <ibs value='broken'/>\n"
    x += "  </features>\n"
    if type == .qemu {
      x +=
        "  <cpu mode='custom' match='exact'>\n    <model fallback='forbid'>\(e(cpuModel))</model>\n"
    } else {
      x += "  <cpu mode='host-passthrough'>\n"
    }
    // Memory hotplug on pseries needs a NUMA cell holding the boot memory.
    x +=
      "    <numa>\n      <cell id='0' cpus='0-\(vcpus - 1)' memory='\(memoryMiB)' unit='MiB'/>\n    </numa>\n"
    x += "  </cpu>\n"
    x += "  <on_crash>destroy</on_crash>\n"
    x += "  <devices>\n"
    x += "    <serial type='pty'>\n      <log file='\(e(consoleLog))' append='off'/>\n"
    x +=
      "      <target type='spapr-vio-serial' port='0'>\n        <model name='spapr-vty'/>\n      </target>\n"
    x += "    </serial>\n"
    x += "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n"
    x += balloon ? "    <memballoon model='virtio'/>\n" : "    <memballoon model='none'/>\n"
    x += "  </devices>\n"
    if vof {
      // SLOF takes ~10 s under TCG (and in the lab); QEMU's VOF (>= 6.0) boots the kernel directly.
      x +=
        "  <qemu:commandline>\n    <qemu:arg value='-machine'/>\n    <qemu:arg value='x-vof=on'/>\n  </qemu:commandline>\n"
    }
    x += "</domain>\n"
    return x
  }

  /// A dimm for hotplug (virDomainAttachDeviceFlags).
  public static func dimmXML(sizeMiB: Int) -> String {
    "<memory model='dimm'><target><size unit='MiB'>\(sizeMiB)</size><node>0</node></target></memory>"
  }
}
