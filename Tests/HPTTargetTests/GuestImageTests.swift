import Foundation
import Testing

@testable import HPTTarget

/// Where a libvirt run's guest kernel and initramfs come from, in order: the job, the
/// environment, Guests/build.sh of the checkout.
@Suite struct GuestImageTests {
  let env = ["HPTHAMMER_GUEST_KERNEL": "/env/vmlinux", "HPTHAMMER_GUEST_INITRD": "/env/initrd"]

  func checkout(buildScript: String?) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "guest-image-\(UUID().uuidString)")
    try FileManager.default.createDirectory(
      at: dir.appendingPathComponent("Guests"), withIntermediateDirectories: true)
    if let buildScript {
      try buildScript.write(
        to: dir.appendingPathComponent("Guests/build.sh"), atomically: true, encoding: .utf8)
    }
    return dir
  }

  @Test func theJobsImageWinsThenTheEnvironments() throws {
    let none = try checkout(buildScript: nil)
    let job = try GuestImage.resolve(
      kernel: "/job/k", initrd: "/job/i", environment: env, checkout: none)
    #expect(job.kernel == "/job/k" && job.initrd == "/job/i")
    let fromEnv = try GuestImage.resolve(kernel: nil, initrd: nil, environment: env, checkout: none)
    #expect(fromEnv.kernel == "/env/vmlinux" && fromEnv.initrd == "/env/initrd")
  }

  @Test func withoutEitherItAsksGuestsBuildSh() throws {
    let built = try checkout(
      buildScript:
        "echo building >&2\necho HPTHAMMER_GUEST_KERNEL=/cache/vmlinux\necho HPTHAMMER_GUEST_INITRD=/cache/initrd.cpio.gz\n"
    )
    let image = try GuestImage.resolve(kernel: nil, initrd: nil, environment: [:], checkout: built)
    #expect(image.kernel == "/cache/vmlinux" && image.initrd == "/cache/initrd.cpio.gz")
  }

  @Test func noImageAndAFailedBuildSayWhatToDo() throws {
    let none = try checkout(buildScript: nil)
    #expect {
      try GuestImage.resolve(kernel: nil, initrd: nil, environment: [:], checkout: none)
    } throws: { "\($0)".contains("set libvirt.kernel and libvirt.initrd") }
    let failing = try checkout(buildScript: "exit 125\n")
    #expect {
      try GuestImage.resolve(kernel: nil, initrd: nil, environment: [:], checkout: failing)
    } throws: { "\($0)".contains("Guests/build.sh failed (exit 125)") }
  }
}
