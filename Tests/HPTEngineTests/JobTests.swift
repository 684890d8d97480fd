import HPTSim
import Testing

@testable import HPTEngine

@Suite struct JobTests {
  @Test func parsesTheDryRunJob() throws {
    let j = try Job.parse(
      """
      name: t
      backend: sim
      host: {kernel: pre-fix, uptime_s: 7}
      guests: {count: 3, memory_mib: 512, vcpus: 4}
      budget: {duration_s: 2.5, resizes: 10}
      seed: 0x10
      resize: {orders: [19, 23], policy: [grow, shrink], commit_before_run: true}
      memory_load: {host_invalidate: false}
      """, file: "t.yaml")
    #expect(j.kernel == "pre-fix" && j.hostUptimeS == 7)
    #expect(j.guestCount == 3 && j.vcpus == 4 && j.guestMemoryMiB == 512)
    #expect(j.seed == 16 && j.durationS == 2.5 && j.resizeBudget == 10)
    #expect(j.policies == [.grow, .shrink] && j.orderMin == 19 && j.orderMax == 23)
    #expect(j.invalidateEveryMs == nil && j.commitBeforeRun)
    #expect(j.bootOrder == 22)  // QEMU: log2(512 MiB) - 7
  }

  /// A job as the command line loads it: parsed, its host.kernel checked against the
  /// simulator's models (which the command line registers; the engine knows none).
  func error(_ yaml: String) -> JobError? {
    do {
      let job = try Job.parse(yaml, file: "bad.yaml")
      try job.checkKernel(models: KernelModel.allNames) { KernelModel.named($0) != nil }
      return nil
    } catch {
      return error
    }
  }

  @Test func unknownKeyNamesFileLineKeyAndAllowed() {
    let e = error("name: x\nguests:\n  count: 2\n  memroy_mib: 5\n")
    #expect(e?.line == 4)
    #expect(e?.key == "guests.memroy_mib")
    #expect(e?.description.contains("allowed: count, memory_mib, vcpus, hpt_order") == true)
    #expect(e?.description.hasPrefix("bad.yaml:4: guests.memroy_mib") == true)
  }

  @Test func hostMMIsForRealHostsAndDriversDoOnlyTheirPolicies() {
    let base = """
      name: t
      guests: {count: 1, memory_mib: 512, vcpus: 1}
      resize: {orders: [19, 23], policy: random-walk}
      """
    let sim = error(base + "\nbackend: sim\nmemory_load: {host_mm: {ksm: true}}")
    #expect(sim?.key == "memory_load.host_mm")
    #expect(
      error(base + "\nbackend: libvirt\nmemory_load: {host_mm: {ksm: true, thp: true}}") == nil)
    #expect(error(base + "\nbackend: raw\nmemory_load: {host_mm: {kms: true}}") != nil)
    let policy = error(
      base.replacingOccurrences(of: "random-walk", with: "[grow, reboot]") + "\nbackend: libvirt")
    #expect(policy?.key == "resize.policy" && policy?.message.contains("'reboot'") == true)
    let before = error(
      base.replacingOccurrences(of: "random-walk}", with: "random-walk, commit_before_run: true}")
        + "\nbackend: libvirt")
    #expect(before?.key == "resize.commit_before_run")
  }

  /// The design's test: `jump` is one enum case and one line of Hammer.walk (it needs no new
  /// driver method), and every backend whose driver changes orders takes it.
  @Test func aNewPolicyLoadsOnEveryBackendThatCanDoIt() {
    let base = """
      name: t
      guests: {count: 1, memory_mib: 512, vcpus: 1}
      resize: {orders: [19, 23], policy: [jump, grow]}
      """
    for backend in BackendKind.allCases {
      #expect(error(base + "\nbackend: \(backend.rawValue)") == nil, "\(backend)")
      #expect(backend.resizePolicies.contains(.jump))
    }
  }

  @Test func orderOutOfRange() {
    let e = error("resize:\n  orders: [17, 30]\n")
    #expect(e?.key == "resize.orders")
    #expect(e?.description.contains("18...46") == true)
  }

  @Test func unknownKernelAndBackendAndPolicy() {
    #expect(
      error("host: {kernel: 9.9}")?.description.contains("allowed: 4.14.0-rc4, 4.14, 4.15, 6.1")
        == true)
    #expect(error("backend: qemu-tcg")?.description.contains("allowed: sim") == true)
    #expect(error("resize: {policy: wobble}")?.description.contains("random-walk") == true)
  }

  @Test func malformedYAMLHasALine() {
    let e = error("name: x\nguests: [\n  count: 2\n")
    #expect(e != nil)
    #expect(e?.message.hasPrefix("malformed YAML") == true)
    #expect(e?.line != nil)
  }

  @Test func libvirtJob() throws {
    let j = try Job.parse(
      """
      backend: libvirt
      libvirt: {uri: "qemu+ssh://p9/system", churn: false, hotplug_every_s: 5, order_sequence: [17, 25]}
      resize: {policy: same-order}
      """, file: "l.yaml")
    #expect(j.backend == .libvirt && j.libvirt.uri == "qemu+ssh://p9/system" && !j.libvirt.churn)
    #expect(j.libvirt.hotplugEveryS == 5 && j.libvirt.orderSequence == [17, 25])
    let e = error("backend: libvirt\nresize: {policy: cancel-during-prepare}\n")
    #expect(e?.description.contains("not available with backend libvirt") == true)
    #expect(
      error("libvirt: {resizing: sometimes}")?.description.contains(
        "allowed: required, enabled, disabled") == true)
  }

  /// The balloon is a libvirt guest's device and leaves the guest at least half its memory;
  /// advice migrate and the lab's sockets parse.
  @Test func balloonAndMigrationKeys() throws {
    let base = "name: t\nguests: {count: 1, memory_mib: 512, vcpus: 1}\n"
    let j = try Job.parse(
      base + "backend: libvirt\nlibvirt: {balloon_every_s: 5, balloon_mib: 128}", file: "b.yaml")
    #expect(j.libvirt.balloonEveryS == 5 && j.libvirt.balloonMiB == 128)
    #expect(
      error(base + "backend: raw\nlibvirt: {balloon_every_s: 5}")?.key == "libvirt.balloon_every_s")
    let big = error(base + "backend: libvirt\nlibvirt: {balloon_every_s: 5, balloon_mib: 300}")
    #expect(big?.key == "libvirt.balloon_mib" && big?.message.contains("more than half") == true)
    let m = try Job.parse(
      base
        + "backend: raw\nmemory_load: {host_invalidate: {every_ms: 20, pages: 4, advice: migrate}}\n"
        + "target: {kind: lab, lab: {cpus: 4, sockets: 2}}", file: "m.yaml")
    #expect(m.invalidateAdvice == .migrate && m.target.spec.lab.sockets == 2)
    #expect(
      error(base + "backend: raw\ntarget: {kind: lab, lab: {cpus: 3, sockets: 2}}")?.key
        == "target.lab.sockets")
  }

  @Test func durationsParseAndEmptyBudgetFails() {
    #expect(error("budget: {}")?.key == "budget")
  }
}

@Suite struct RawJobTests {
  @Test func rawBackendsParse() throws {
    for b in ["raw", "raw-sim"] {
      let j = try Job.parse("backend: \(b)\nguests: {memory_mib: 256}\n", file: "r.yaml")
      #expect(j.backend.rawValue == b)
    }
    #expect(BackendKind.rawSim.usesKernelModel && !BackendKind.raw.usesKernelModel)
  }

  /// Guest RAM the real-mode payload cannot reach (past the VRMA of the boot order) is refused
  /// with the order that would do.
  @Test func memoryPastTheVRMAIsAClearError() throws {
    #expect(Job.vrmaOrder(memoryMiB: 128) == 18)
    #expect(Job.vrmaOrder(memoryMiB: 256) == 19)
    let text =
      "backend: raw\nguests: {memory_mib: 1024, hpt_order: 19}\nresize: {orders: [18, 22]}\n"
    do {
      _ = try Job.parse(text, file: "r.yaml")
      Issue.record("accepted")
    } catch {
      #expect(error.key == "guests.memory_mib")
      #expect(error.description.contains("at least 21"), "\(error)")
    }
    // The same job on the simulator (no real mode to reach) is fine.
    _ = try Job.parse(text.replacingOccurrences(of: "raw", with: "sim"), file: "r.yaml")
  }

  @Test func boltedSecondaryHPTEsAreForTheRawPayloadOnly() throws {
    let raw = """
      backend: raw-sim
      guests: {count: 1, memory_mib: 256, vcpus: 1, bolted_secondary_hptes: 8}
      """
    #expect(try Job.parse(raw, file: "j.yaml").boltedSecondaryHPTEs == 8)
    for bad in [
      "backend: sim\nguests: {bolted_secondary_hptes: 2}", "guests: {bolted_secondary_hptes: 65}",
    ] {
      #expect(throws: JobError.self) { try Job.parse(bad, file: "j.yaml") }
      do {
        _ = try Job.parse(bad, file: "j.yaml")
      } catch {
        #expect(error.key == "guests.bolted_secondary_hptes", "\(error)")
      }
    }
  }

  @Test func lifecycleParsesAndIsRefusedOnLibvirt() throws {
    let j = try Job.parse(
      "backend: raw-sim\nlifecycle: {every_ms: 250, irqchip: true}", file: "j.yaml")
    #expect(j.lifecycleEveryMs == 250 && j.lifecycleIRQChip)
    #expect(try Job.parse("backend: sim", file: "j.yaml").lifecycleEveryMs == nil)
    for bad in [
      "lifecycle: {every_ms: 0}", "lifecycle: {often: 1}",
      "backend: libvirt\nlifecycle: {every_ms: 100}",
    ] {
      #expect(throws: JobError.self, "\(bad)") { try Job.parse(bad, file: "j.yaml") }
    }
  }
}
