import Foundation
import Testing

/// The engine depends only on the kernel-facing interface and the log library (and the seeded
/// generator, the guest payload's pattern, its YAML and histogram libraries): a backend or a
/// target imported into Sources/HPTEngine fails here.
@Suite struct EngineLayerTests {
  static let allowed: Set<String> = [
    "Foundation", "Dispatch", "Glibc", "Synchronization",
    "KVMHost", "KernelLog", "HPTRandom", "PPC64", "Yams", "Histogram",
  ]
  static let backends: Set<String> = [
    "HPTSim", "KVMSys", "CKVMSys", "RawKVM", "SimKVMSys", "Libvirt", "CLibvirt", "HPTTarget",
    "HPTLibvirt",
  ]

  /// Every module a Swift file imports (`import X`, `@testable import X`, `import struct X.Y`).
  static func imports(of text: String) -> [String] {
    text.split(separator: "\n").compactMap { line in
      let words = line.trimmingCharacters(in: .whitespaces).split(separator: " ")
      guard let i = words.firstIndex(of: "import"), i + 1 < words.count,
        words[..<i].allSatisfy({ $0.hasPrefix("@") })
      else { return nil }
      let kinds: Set<Substring> = [
        "struct", "class", "enum", "protocol", "func", "var", "typealias",
      ]
      let name = kinds.contains(words[i + 1]) && i + 2 < words.count ? words[i + 2] : words[i + 1]
      return String(name.split(separator: ".")[0])
    }
  }

  @Test func theEngineImportsNoBackend() throws {
    let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
        "Sources/HPTEngine")
    let files = try #require(FileManager.default.enumerator(atPath: dir.path))
      .compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
    #expect(!files.isEmpty)
    for file in files {
      let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
      for module in Self.imports(of: text) {
        #expect(!Self.backends.contains(module), "HPTEngine/\(file) imports the backend \(module)")
        #expect(Self.allowed.contains(module), "HPTEngine/\(file) imports \(module)")
      }
    }
  }

  @Test func importsAreReadAsTheCompilerReadsThem() {
    let text =
      "import Foundation\n@testable import HPTSim\nimport struct Libvirt.Domain\n// import X"
    #expect(Self.imports(of: text) == ["Foundation", "HPTSim", "Libvirt"])
  }
}
