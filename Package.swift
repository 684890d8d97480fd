// swift-tools-version: 6.0
// KernelLog worktree package: the kernel-log library, its tests, the scan command and its benchmark.
// (main's Package.swift has these same targets plus the rest of HPTHammer.)
import PackageDescription

let package = Package(
  name: "HPTHammer",
  platforms: [.macOS(.v13)],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
  ],
  targets: [
    .target(name: "KernelLog"),
    .executableTarget(
      name: "hpthammer",
      dependencies: ["KernelLog", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
    .executableTarget(name: "kernellog-bench", dependencies: ["KernelLog"]),
    .testTarget(
      name: "KernelLogTests", dependencies: ["KernelLog", "hpthammer"],
      // Read through #filePath, like the shared corpus, so they stay plain files.
      exclude: ["Fixtures"]),
  ]
)
