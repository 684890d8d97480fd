import Foundation

/// run.json's `provenance`: exactly what ran where, so a results store can say which kernel
/// broke on which host. On libvirt and lab runs `kernel` names the guest's kernel; the kernel
/// under test is the host's, and that is `host_kernel` here.
public struct RunProvenance: Codable, Sendable, Equatable {
  public struct Kernel: Codable, Sendable, Equatable {
    /// uname -r
    public var release: String
    /// uname -v ("#1 SMP Debian 6.1.106-3 (2024-08-26)")
    public var version: String?
    /// The GNU build ID of the running kernel (/sys/kernel/notes) or of its vmlinux.
    public var build_id: String?
    /// The vmlinux the lab booted (--host-kernel), when one was given.
    public var vmlinux: String?
    /// The simulator's kernel model (`hpthammer sim kernels`).
    public var sim_model: String?
  }
  public struct Host: Codable, Sendable, Equatable {
    public var name: String
    /// /proc/cpuinfo's cpu line: "POWER9 (raw), altivec supported".
    public var cpu: String?
    /// "PowerNV" (bare metal, the hypervisor) or "pSeries" (a guest of PowerVM or KVM).
    public var platform: String?
    /// /proc/cpuinfo's model or machine line.
    public var model: String?
  }
  public var run_id: String
  public var started_at: String
  public var ended_at: String
  public var host_kernel: Kernel
  public var guest_kernel: String?
  public var host: Host
  public var qemu_version: String?
  public var libvirt_version: String?
  public var hpthammer_version: String
  public var hpthammer_commit: String?

  public static let hpthammerVersion = "0.14.0"

  static func timestamp(_ d: Date) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f.string(from: d)
  }
}

extension RunProvenance {
  /// What the run knows at its end. `probe` runs a shell script on the host under test (nil:
  /// the simulator, nothing to ask); a host that died answers nothing and the fields stay
  /// empty but the release the run already had.
  static func collect(
    job: Job, runID: String, started: Date, kernelRelease: String, simModel: HostKernel?,
    guestKernel: String?,
    hostName: String?, vmlinux: String?, probe: ((String) -> String?)?
  ) -> RunProvenance {
    let (version, commit) = (hpthammerVersion, HarnessCommit.current)
    var p = RunProvenance(
      run_id: runID, started_at: timestamp(started), ended_at: timestamp(Date()),
      host_kernel: Kernel(release: kernelRelease), guest_kernel: guestKernel,
      host: Host(name: hostName ?? "localhost"), hpthammer_version: version,
      hpthammer_commit: commit)
    guard let probe else {
      // The simulator: the kernel under test is the model, the host a simulated POWER9.
      let model = simModel
      p.host_kernel = Kernel(
        release: model?.release ?? kernelRelease,
        version: "HPTSim model \(model?.name ?? job.kernel)", sim_model: model?.name ?? job.kernel
      )
      p.host = Host(
        name: hostName ?? "sim-power9", cpu: "POWER9 (simulated)", platform: "PowerNV (simulated)")
      return p
    }
    if let out = probe(HostProbe.script) { HostProbe.apply(out, to: &p) }
    if p.host_kernel.build_id == nil, let vmlinux {
      p.host_kernel.build_id = BuildID.ofELF(path: vmlinux)
    }
    p.host_kernel.vmlinux = vmlinux
    return p
  }
}

/// One round trip to the host under test: names, kernel, CPU, QEMU and libvirt versions.
enum HostProbe {
  static let separator = "@@hpthammer@@"
  static let script = [
    "uname -n", "uname -r", "uname -v",
    "od -An -v -tx1 /sys/kernel/notes 2>/dev/null | tr -d ' \\n'",
    "grep -m1 '^cpu' /proc/cpuinfo", "grep -m1 '^platform' /proc/cpuinfo",
    "grep -m1 -E '^(model|machine)' /proc/cpuinfo",
    "(qemu-system-ppc64 --version || /usr/libexec/qemu-kvm --version) 2>/dev/null | head -1",
    "(libvirtd --version || virtqemud --version) 2>/dev/null | head -1",
  ].joined(separator: "; echo \(separator); ")

  static func apply(_ out: String, to p: inout RunProvenance) {
    let parts = out.components(separatedBy: separator + "\n").map {
      $0.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    guard parts.count >= 9 else { return }
    func value(_ s: String) -> String? {
      // "cpu\t\t: POWER9 (raw), altivec supported" -> "POWER9 (raw), altivec supported"
      let v = s.split(separator: ":", maxSplits: 1).last.map(String.init) ?? s
      let t = v.trimmingCharacters(in: .whitespaces)
      return t.isEmpty ? nil : t
    }
    if !parts[0].isEmpty { p.host.name = parts[0] }
    if !parts[1].isEmpty { p.host_kernel.release = parts[1] }
    p.host_kernel.version = parts[2].isEmpty ? nil : parts[2]
    p.host_kernel.build_id = BuildID.ofNotes(hex: parts[3])
    p.host.cpu = parts[4].isEmpty ? nil : value(parts[4])
    p.host.platform = parts[5].isEmpty ? nil : value(parts[5])
    p.host.model = parts[6].isEmpty ? nil : value(parts[6])
    p.qemu_version = parts[7].isEmpty ? nil : parts[7]
    p.libvirt_version = parts[8].isEmpty ? nil : parts[8]
  }
}

/// The GNU build ID (NT_GNU_BUILD_ID) of a kernel: from /sys/kernel/notes, or from a vmlinux
/// file's PT_NOTE segments.
enum BuildID {
  static func ofNotes(hex: String) -> String? {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(hex.count / 2)
    var it = hex.utf8.makeIterator()
    while let a = it.next(), let b = it.next() {
      guard let v = UInt8(String(decoding: [a, b], as: UTF8.self), radix: 16) else { return nil }
      bytes.append(v)
    }
    return scan(bytes[...], bigEndian: false) ?? scan(bytes[...], bigEndian: true)
  }

  /// Notes: namesz, descsz, type (4 bytes each), the name and the desc, each padded to 4.
  static func scan(_ b: ArraySlice<UInt8>, bigEndian: Bool) -> String? {
    var i = b.startIndex
    func u32(_ at: Int) -> Int {
      let w = b[at..<at + 4].enumerated().reduce(0) { acc, e in
        acc | Int(e.element) << (8 * (bigEndian ? 3 - e.offset : e.offset))
      }
      return w
    }
    while i + 12 <= b.endIndex {
      let namesz = u32(i)
      let descsz = u32(i + 4)
      let type = u32(i + 8)
      let name = i + 12
      let desc = name + (namesz + 3) & ~3
      guard namesz < 256, descsz < 4096, desc + descsz <= b.endIndex else { return nil }
      if type == 3 && namesz == 4 && Array(b[name..<name + 4]) == Array("GNU\0".utf8) {
        return b[desc..<desc + descsz].map { String(format: "%02x", $0) }.joined()
      }
      i = desc + (descsz + 3) & ~3
    }
    return nil
  }

  /// An ELF64 file's build ID, from its program headers' PT_NOTE segments.
  static func ofELF(path: String) -> String? {
    guard let h = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? h.close() }
    guard let ehdr = try? h.read(upToCount: 64), ehdr.count == 64,
      ehdr.prefix(4) == Data([0x7f, 0x45, 0x4c, 0x46]), ehdr[4] == 2
    else { return nil }
    let big = ehdr[5] == 2
    func num(_ d: Data, _ at: Int, _ n: Int) -> Int {
      (0..<n).reduce(0) { acc, k in
        acc | Int(d[d.startIndex + at + k]) << (8 * (big ? n - 1 - k : k))
      }
    }
    let phoff = num(ehdr, 32, 8)
    let phentsize = num(ehdr, 54, 2)
    let phnum = num(ehdr, 56, 2)
    for k in 0..<min(phnum, 64) {
      guard (try? h.seek(toOffset: UInt64(phoff + k * phentsize))) != nil,
        let ph = try? h.read(upToCount: 56), ph.count == 56, num(ph, 0, 4) == 4
      else { continue }
      let off = num(ph, 8, 8)
      let size = min(num(ph, 32, 8), 1 << 16)
      guard (try? h.seek(toOffset: UInt64(off))) != nil, let notes = try? h.read(upToCount: size)
      else { continue }
      if let id = scan([UInt8](notes)[...], bigEndian: big) { return id }
    }
    return nil
  }
}

/// HPTHammer's own commit: $HPTHAMMER_COMMIT if set; else the git work tree the executable was
/// built in (with -dirty for uncommitted changes); else, for an installed binary
/// (PREFIX/bin/hpthammer), the commit its install step wrote to PREFIX/share/hpthammer/commit.
enum HarnessCommit {
  static let current: String? = {
    if let c = ProcessInfo.processInfo.environment["HPTHAMMER_COMMIT"], !c.isEmpty { return c }
    var exeDir = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
      .deletingLastPathComponent()
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
      exeDir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    }
    if let c = fromWorkTree(above: exeDir) { return c }
    let installed = exeDir.deletingLastPathComponent().appendingPathComponent(
      "share/hpthammer/commit")
    guard let text = try? String(contentsOf: installed, encoding: .utf8) else { return nil }
    let c = text.trimmingCharacters(in: .whitespacesAndNewlines)
    return c.isEmpty ? nil : c
  }()

  private static func fromWorkTree(above start: URL) -> String? {
    var dir = start
    while dir.path != "/" {
      if FileManager.default.fileExists(atPath: dir.appendingPathComponent(".git").path) {
        let head = HostCommand.run(["git", "-C", dir.path, "rev-parse", "HEAD"], timeoutS: 10)
        guard head.ok else { return nil }
        let dirty = HostCommand.run(
          ["git", "-C", dir.path, "status", "--porcelain", "--untracked-files=no"], timeoutS: 10)
        let sha = head.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return sha + (dirty.ok && !dirty.stdout.isEmpty ? "-dirty" : "")
      }
      dir = dir.deletingLastPathComponent()
    }
    return nil
  }
}
