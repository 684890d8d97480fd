/// The known HPT-resize bugs the simulated kernel can carry
/// (../shared/reference/kvm-hpt-resize.md, section 5).
public enum ResizeBug: String, Sendable, CaseIterable, Codable, Hashable {
  /// COMMIT with nothing prepared: resize_hpt_release(kvm, NULL) dereferences NULL.
  case b0a = "B0a"
  /// The seed: vCPUs re-enter the guest and take hypervisor page faults during COMMIT, so the
  /// rmap keeps indices into the old revmap.
  case b1 = "B1"
  /// PREPARE of another order, or COMMIT, while the worker is queued frees the request under
  /// the worker: use after free.
  case b3 = "B3"
  /// The HPT reallocated at another order (a guest reboot after a resize) without flushing
  /// the TLBs: stale translations reach the wrong host pages, silently.
  case b4 = "B4"
  /// Wrong hash for bolted HPTEs in a secondary group during rehash: BUG_ON fires in COMMIT.
  case b5 = "B5"
  /// On a radix host the rehash sizes a guest's large HPTEs from the host's own HPTE page-size
  /// table, which a radix host never fills: size 0, every HPTE hashes to one group, and growing
  /// the HPT hits the collision BUG_ON in COMMIT.
  case b7 = "B7"
  /// KVM_RUN, holding the vCPU's mutex, takes kvm->lock for the MMU setup, against the order
  /// an interrupt controller's release takes them in: lockdep reports a possible deadlock.
  case b8 = "B8"
  /// Not in the list, found by HPTHammer on Debian's 6.1.187 in the lab: a guest reset
  /// (ALLOCATE_HTAB) frees or clears the HPT before it empties the rmap chains, and the MMU
  /// notifier follows them into the freed revmap. Upstream's kvmppc_alloc_reset_hpt() has the
  /// same order.
  case r1 = "R1"

  public var summary: String {
    switch self {
    case .b0a: return "COMMIT with nothing prepared dereferences a NULL resize request"
    case .b1:
      return "HPT resize races with hypervisor page faults (rmap points into the old revmap)"
    case .b3: return "use after free of the resize request under its prepare worker"
    case .b4:
      return "HPT reallocated at another order without a TLB flush (silent guest memory corruption)"
    case .b5: return "wrong secondary-HPTEG hash when rehashing bolted HPTEs"
    case .b7:
      return
        "on a radix host, large HPTEs rehashed with page size 0 (the host's empty page-size table)"
    case .b8:
      return
        "KVM_RUN takes kvm->lock inside vcpu->mutex for the MMU setup (lockdep: possible deadlock)"
    case .r1:
      return "a guest reset frees the HPT before emptying the rmap chains the MMU notifier follows"
    }
  }

  /// The upstream change that fixed it.
  public var fix: String {
    switch self {
    case .b0a, .b3:
      return
        "\"KVM: PPC: Book3S HV: Fix use after free in case of multiple resize requests\" (v4.15)"
    case .b1:
      return
        "38c53af85306 \"KVM: PPC: Book3S HV: Fix exclusion between HPT resizing and other HPT updates\" (v4.14)"
    case .b4:
      return "\"KVM: PPC: Book3S HV: Always flush TLB in kvmppc_alloc_reset_hpt()\" (v4.15)"
    case .b5:
      return "\"KVM: PPC: Book3S HV: Fix handling of secondary HPTEG in HPT resizing code\" (v4.16)"
    case .b7:
      return
        "ded13fc11b71 \"KVM: PPC: Book3S HV: Fix migration and HPT resizing of HPT guests on radix hosts\" (v4.16)"
    case .b8:
      return "0d4ee88d9288 \"KVM: PPC: Book3S HV: Use new mutex to synchronize MMU setup\" (v5.2)"
    case .r1:
      return "nothing upstream yet (proposed: Guests/lab/fixes/reset-rmap-before-free.patch)"
    }
  }

  /// Kernel versions that carry it.
  public var versions: String {
    switch self {
    case .b0a, .b3: return "v4.11 - v4.14"
    case .b1: return "v4.11 - v4.14-rc"
    case .b4: return "v4.11 - v4.14"
    case .b5: return "v4.11 - v4.15"
    case .b7: return "v4.15 (radix hosts: POWER9 and later); modelled for the lab's 6.1 twin only"
    case .b8: return "v4.11 - v5.1 (reported only by a kernel built with lockdep)"
    case .r1: return "6.1 (Debian's 6.1.187) and upstream since; modelled for the 6.1 kernels only"
    }
  }
}

/// A simulated host kernel: a version, the bugs it carries, and the shapes of its messages
/// (oops wording and lock names changed across versions).
public struct KernelModel: Sendable, Hashable {
  public var name: String
  /// `uname -r` as the oops prints it.
  public var release: String
  public var bugs: Set<ResizeBug>
  public var description: String
  /// 5.0 and later print "BUG: Unable to handle kernel data access ..." instead of
  /// "Unable to handle kernel paging request for data at address ...".
  public var modernOopsFormat: Bool
  /// kvm->lock (4.11-5.1) or kvm->arch.mmu_setup_lock (5.2+) serialises resizing.
  public var mmuLockName: String
  /// hpte_setup_done (before 4.15) or mmu_ready.
  public var mmuReadyName: String
  /// Kernel modules are mapped at 0xd000... before 4.20 (vmalloc) and 0xc008... after.
  public var moduleBase: UInt64
  /// How the kernel was built and booted, which decides where a bug shows:
  /// SLUB poisoning on (slub_debug=P: a freed request reads 0x6b...; without it the worker's
  /// writes into the freed request corrupt the slab freelist and the next kmalloc faults);
  public var slubPoison = true
  /// resize_hpt_release() inlined into COMMIT (the NULL dereference of B0a shows there);
  public var inlinesRelease = true
  /// resize_hpt_rehash_hpte() inlined into COMMIT (B5's BUG_ON shows there).
  public var inlinesRehash = false
  /// Built with PROVE_LOCKING (Guests/lab/lockdep.config): lock-order inversions are reported.
  public var lockdep = false

  public func has(_ bug: ResizeBug) -> Bool { bugs.contains(bug) }

  /// Debian's 6.1 as the emulated lab builds it (Guests/lab/kernel.sh: no slub_debug, gcc 12
  /// inlines the rehash into COMMIT but not resize_hpt_release), with one bug brought back by
  /// Guests/lab/bugs/ID.patch: the simulator's twin of each bug-benchmark kernel, checked
  /// against it (the same crash titles). Like every 6.1 it also carries R1.
  static func lab(_ bug: ResizeBug) -> KernelModel {
    // B8's kernel is built with lockdep (Guests/lab/lockdep.config), which reports it.
    KernelModel(
      name: "6.1-\(bug.rawValue)", release: "6.1.187-lab-\(bug.rawValue)+", bugs: [bug, .r1],
      description:
        "Debian's 6.1 in the lab with Guests/lab/bugs/\(bug.rawValue).patch: \(bug.summary)",
      modernOopsFormat: true,
      mmuLockName: bug == .b8 ? "kvm->lock" : "kvm->arch.mmu_setup_lock", mmuReadyName: "mmu_ready",
      moduleBase: 0xc008_0000_0243_0000, slubPoison: false, inlinesRelease: false,
      inlinesRehash: true, lockdep: bug == .b8)
  }

  public static let all: [KernelModel] =
    [
      KernelModel(
        name: "4.14.0-rc4", release: "4.14.0-rc4", bugs: [.b1, .b0a, .b3, .b4, .b5, .b8],
        description: "the seed report's kernel: before 38c53af85306 (B1), with B0a, B3, B4 and B5",
        modernOopsFormat: false, mmuLockName: "kvm->lock", mmuReadyName: "hpte_setup_done",
        moduleBase: 0xd000_0000_0c20_0000),
      KernelModel(
        name: "4.14", release: "4.14.0", bugs: [.b0a, .b3, .b4, .b5, .b8],
        description: "v4.14: the seed's fix (38c53af85306) applied; B0a, B3, B4 and B5 remain",
        modernOopsFormat: false, mmuLockName: "kvm->lock", mmuReadyName: "hpte_setup_done",
        moduleBase: 0xd000_0000_0c20_0000),
      KernelModel(
        name: "4.15", release: "4.15.0", bugs: [.b5, .b8],
        description: "v4.15: B0a, B3 and B4 fixed; B5 remains",
        modernOopsFormat: false, mmuLockName: "kvm->lock", mmuReadyName: "mmu_ready",
        moduleBase: 0xd000_0000_0c20_0000),
      KernelModel(
        name: "6.1", release: "6.1.0-50-powerpc64le", bugs: [.r1],
        description:
          "Debian 12's kernel: none of the listed resize bugs; R1, the reset race, HPTHammer found",
        modernOopsFormat: true, mmuLockName: "kvm->arch.mmu_setup_lock", mmuReadyName: "mmu_ready",
        moduleBase: 0xc008_0000_0c20_0000),
      KernelModel(
        name: "6.1-reset-fix", release: "6.1.187-lab-reset-fix+", bugs: [],
        description:
          "Debian's 6.1 in the lab with Guests/lab/fixes/reset-rmap-before-free.patch: R1 fixed",
        modernOopsFormat: true, mmuLockName: "kvm->arch.mmu_setup_lock", mmuReadyName: "mmu_ready",
        moduleBase: 0xc008_0000_0243_0000, slubPoison: false, inlinesRelease: false,
        inlinesRehash: true),
      KernelModel(
        name: "6.1-lockdep", release: "6.1.187-lab-lockdep+", bugs: [.r1],
        description:
          "Debian's 6.1 in the lab built with Guests/lab/lockdep.config: the control for B8",
        modernOopsFormat: true, mmuLockName: "kvm->arch.mmu_setup_lock", mmuReadyName: "mmu_ready",
        moduleBase: 0xc008_0000_0243_0000, slubPoison: false, inlinesRelease: false,
        inlinesRehash: true, lockdep: true),
    ] + [ResizeBug.b0a, .b1, .b3, .b4, .b5, .b7, .b8].map(lab)

  /// Aliases a job may use for the two kernels every developer asks for first.
  public static let aliases: [String: String] = ["pre-fix": "4.14.0-rc4", "fixed": "6.1"]

  public static func named(_ name: String) -> KernelModel? {
    let resolved = aliases[name] ?? name
    return all.first { $0.name == resolved }
  }

  public static var allNames: [String] { all.map(\.name) + aliases.keys.sorted() }
}
