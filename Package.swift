// swift-tools-version: 6.0
import PackageDescription

// Layers, each importing only the ones below it:
//   KernelLog  - kernel log records, readers and the crash detector (only CKernelLog, its SIMD
//                needle filter in C)
//   KVMHost    - the kernel-facing interface every backend implements (KVM-HV ioctls + host log)
//   KVMSys     - the raw /dev/kvm ioctl layer: per-arch request numbers, uapi structs, fd handles
//                (CKVMSys: a header-only shim, since Swift cannot call the variadic ioctl(2))
//   PPC64      - a ppc64 instruction encoder (typed registers) and the guest payload builder
//                (no dependencies)
//   HPTRandom  - the seeded generator (SplitMix64): one root seed per run, split per consumer
//   HPTSim     - the deterministic simulated KVM-HV kernel behind KVMHost
//   RawKVM     - a minimal VMM for HPT guests: KVMHost implemented on the KVMSys handles
//                (guest RAM, memslot, HTAB, real-mode vCPUs running the PPC64 payload)
//   SimKVMSys  - a KVMSys `Syscalls` backed by HPTSim: fake /dev/kvm, VM and vCPU fds, so
//                RawKVM's code runs unchanged against the simulated kernel
//   Libvirt    - libvirt's C API (CLibvirt: libvirt-dev's headers, the library loaded with dlopen
//                on first use): connections, domains, consoles, events
//   HPTEngine  - jobs, the one resize hammer over ResizeDrivers, the one Runner over a
//                GuestFleet (IoctlFleet: the ioctl backends' VMs and memory load), the host's
//                log and host monitor, run output. It imports only the kernel-facing interface (KVMHost), the
//                log library (KernelLog), HPTRandom and the guest payload's pattern (PPC64): no
//                backend (HPTSim, KVMSys, RawKVM, SimKVMSys, Libvirt; EngineLayerTests checks).
//                A host reports its own kernel (HostKernel); a host that is a machine of its own
//                is a HostMachine
//   HPTTarget  - the hosts under test: local, remote over ssh, the lab (QMP), hostd, the host
//                log streams, kprobes (HostTrace), KSM/THP (HostMM), last words; HostMachine
//   HPTLibvirt - the libvirt backend: LibvirtFleet (domains, consoles, hotplug, balloon), its
//                guest agents and AgentResizeDriver, leftover domains
//   HPTBisect  - the statistical bisection and patch verdicts (pure math, no I/O, no dependencies)
//   HPTResults - the results history: run directories imported into SQLite (GRDB) or PostgreSQL
//                (postgres-nio), crashes deduplicated across runs, the HTML report, KCIDB,
//                junit and Prometheus exports (reads run directories; no dependency on the
//                engine)
//   hpthammer  - the command line; its Backends.swift opens each backend and target for the
//                engine
let package = Package(
  name: "HPTHammer",
  platforms: [.macOS(.v13)],
  products: [
    .executable(name: "hpthammer", targets: ["hpthammer"]),
    .executable(name: "hpthammer-bench", targets: ["hpthammer-bench"]),
    .executable(name: "kernellog-bench", targets: ["kernellog-bench"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
    .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
  ],
  targets: [
    // KernelLog's one C helper: the SIMD many-needle filter (x86's byte shuffle).
    .target(name: "CKernelLog"),
    .target(name: "KernelLog", dependencies: ["CKernelLog"]),
    .target(name: "KVMHost", dependencies: ["KernelLog"]),
    .target(name: "CKVMSys"),
    .target(name: "KVMSys", dependencies: ["KVMHost", "CKVMSys"]),
    // The seeded generator: one root seed per run, split per consumer.
    .target(name: "HPTRandom"),
    .target(name: "HPTSim", dependencies: ["KVMHost", "KernelLog", "HPTRandom"]),
    .target(name: "PPC64"),
    .target(name: "HPTBisect"),
    .target(
      name: "HPTResults",
      dependencies: [
        .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
      ]),
    .target(name: "RawKVM", dependencies: ["KVMHost", "KVMSys", "PPC64", "KernelLog"]),
    .target(name: "SimKVMSys", dependencies: ["KVMHost", "KVMSys", "HPTSim", "PPC64"]),
    // libvirt's C API (libvirt-dev's headers; the library loaded with dlopen, so that only the
    // libvirt backend pays for loading it), and a small Swift layer over it.
    .target(name: "CLibvirt", linkerSettings: [.linkedLibrary("dl")]),
    .target(name: "Libvirt", dependencies: ["CLibvirt", "KernelLog"]),
    .target(
      name: "HPTEngine",
      dependencies: [
        "KVMHost", "KernelLog", "HPTRandom", "PPC64",
        .product(name: "Yams", package: "Yams"),
        .product(name: "Histogram", package: "hdrhistogram-swift"),
      ]),
    .target(
      name: "HPTTarget", dependencies: ["HPTEngine", "KVMHost", "KernelLog", "KVMSys", "Libvirt"]),
    .target(
      name: "HPTLibvirt",
      dependencies: ["HPTEngine", "HPTTarget", "HPTRandom", "KVMHost", "KernelLog", "Libvirt"]),
    .executableTarget(
      name: "hpthammer",
      dependencies: [
        "HPTEngine", "HPTTarget", "HPTLibvirt", "HPTSim", "KernelLog", "KVMHost", "KVMSys",
        "Libvirt", "RawKVM", "SimKVMSys", "HPTBisect", "HPTResults",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Yams", package: "Yams"),
      ]),
    .executableTarget(
      name: "hpthammer-bench",
      dependencies: ["HPTEngine", "HPTSim", "KernelLog", "KVMHost", "HPTBisect"]),
    .executableTarget(name: "kernellog-bench", dependencies: ["KernelLog"]),
    .testTarget(
      name: "KernelLogTests", dependencies: ["KernelLog", "hpthammer"], exclude: ["Fixtures"]),
    .testTarget(name: "KVMHostTests", dependencies: ["KVMHost"]),
    .testTarget(name: "HPTBisectTests", dependencies: ["HPTBisect"]),
    .testTarget(name: "LibvirtTests", dependencies: ["Libvirt"]),
    .testTarget(name: "KVMSysTests", dependencies: ["KVMSys", "KVMHost"]),
    .testTarget(name: "HPTSimTests", dependencies: ["HPTSim", "KVMHost", "KernelLog"]),
    .testTarget(
      name: "HPTEngineTests", dependencies: ["HPTEngine", "HPTSim", "KVMHost", "KernelLog"]),
    .testTarget(
      name: "HPTTargetTests", dependencies: ["HPTTarget", "HPTEngine", "KVMHost", "KernelLog"]),
    .testTarget(
      name: "HPTLibvirtTests", dependencies: ["HPTLibvirt", "HPTTarget", "HPTEngine", "Libvirt"]),
    .testTarget(name: "CLITests", dependencies: ["hpthammer"]),
    .testTarget(name: "HPTResultsTests", dependencies: ["HPTResults", "hpthammer"]),
    .testTarget(name: "PPC64Tests", dependencies: ["PPC64"], exclude: ["Harness"]),
    .testTarget(
      name: "RawKVMTests", dependencies: ["RawKVM", "KVMSys", "KVMHost", "PPC64", "KernelLog"]),
    .testTarget(
      name: "SimKVMSysTests",
      dependencies: ["SimKVMSys", "RawKVM", "KVMSys", "KVMHost", "HPTSim", "HPTEngine", "PPC64"]),
  ]
)
