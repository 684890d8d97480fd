import Foundation

/// The guest kernel and initramfs a libvirt run boots: the job's own, the environment's
/// (HPTHAMMER_GUEST_KERNEL and HPTHAMMER_GUEST_INITRD, as scripts/tcg-ci.sh sets them), or
/// built and cached by Guests/build.sh in the HPTHammer checkout the run starts in.
public enum GuestImage {
  public struct Unavailable: Error, CustomStringConvertible {
    public let description: String
  }

  public static func resolve(
    kernel: String?, initrd: String?,
    environment: [String: String] = ProcessInfo.processInfo.environment,
    checkout: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
  ) throws(Unavailable) -> (kernel: String, initrd: String) {
    if let kernel, let initrd { return (kernel, initrd) }
    if let k = environment["HPTHAMMER_GUEST_KERNEL"], let i = environment["HPTHAMMER_GUEST_INITRD"]
    {
      return (k, i)
    }
    let script = checkout.appendingPathComponent("Guests/build.sh")
    guard FileManager.default.fileExists(atPath: script.path) else {
      throw Unavailable(
        description:
          "no guest image: set libvirt.kernel and libvirt.initrd, or run from the HPTHammer checkout (Guests/build.sh)"
      )
    }
    return try build(script)
  }

  /// Runs Guests/build.sh (cached: seconds once built) and reads its HPTHAMMER_GUEST_* lines.
  static func build(_ script: URL) throws(Unavailable) -> (kernel: String, initrd: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = [script.path]
    let out = Pipe()
    p.standardOutput = out
    do { try p.run() } catch {
      throw Unavailable(description: "cannot run \(script.path): \(error)")
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let lines = scriptLines(String(decoding: data, as: UTF8.self), prefix: "HPTHAMMER_GUEST_")
    guard p.terminationStatus == 0, let kernel = lines["KERNEL"], let initrd = lines["INITRD"]
    else {
      throw Unavailable(
        description:
          "Guests/build.sh failed (exit \(p.terminationStatus)); run it by hand to see why")
    }
    return (kernel, initrd)
  }
}

/// A script's `PREFIX_KEY=value` lines (Guests/build.sh's, Guests/lab/run.sh's), by KEY.
func scriptLines(_ text: String, prefix: String) -> [String: String] {
  var v: [String: String] = [:]
  for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
    let kv = line.split(separator: "=", maxSplits: 1)
    if kv.count == 2 { v[String(kv[0].dropFirst(prefix.count))] = String(kv[1]) }
  }
  return v
}
