import Foundation
import HPTEngine
import Testing

@testable import HPTTarget

/// hostds a dead harness left on a target are killed before the next one starts there; a live
/// harness's, and processes that are not hostd, are left alone. Run against this machine as a
/// local target, with stand-ins named hpthammer-hostd (copies of sleep).
@Suite struct HostdLeftoversTests {
  func fakeHostd(in dir: String, owner: String) throws -> Process {
    let exe = dir + "/hpthammer-hostd-fake"
    if !FileManager.default.fileExists(atPath: exe) {
      try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: exe)
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    // The launch command as a target runs it, with the owner line given.
    p.arguments = [
      "-c", "echo \(HostCommand.shellQuote([owner])) > \(dir)/hostd-$$.owner && exec \(exe) 300",
    ]
    try p.run()
    let tag = "\(dir)/hostd-\(p.processIdentifier).owner"
    let deadline = Date().addingTimeInterval(5)
    while !FileManager.default.fileExists(atPath: tag) && Date() < deadline { usleep(10_000) }
    usleep(50_000)
    return p
  }

  @Test func aDeadHarnesssHostdIsKilledAndALiveOnesIsNot() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "hpthammer-hostd-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let dead = try fakeHostd(
      in: dir,
      owner:
        #"{"boot_id": "another-boot", "controller": "\#(ProcessInfo.processInfo.hostName)", "pid": 1}"#
    )
    let live = try fakeHostd(in: dir, owner: HostdLeftovers.ownerLine)
    let other = try fakeHostd(
      in: dir, owner: #"{"controller": "another-controller.example", "pid": 1}"#)
    defer { [live, other].forEach { if $0.isRunning { $0.terminate() } } }
    // A tag whose hostd ended by itself: removed quietly.
    try #"{"boot_id": "x", "pid": 1}"#.write(
      toFile: "\(dir)/hostd-999999.owner", atomically: true, encoding: .utf8)
    let lines = HostdLeftovers.reap(Target(spec: TargetSpec()), dir: dir)
    #expect(lines.count == 1, "\(lines)")
    #expect(lines.first?.contains("cleaned up hostd PID \(dead.processIdentifier)") == true)
    dead.waitUntilExit()
    #expect(dead.terminationReason == .uncaughtSignal && dead.terminationStatus == SIGKILL)
    #expect(live.isRunning && other.isRunning)
    let tags = try FileManager.default.contentsOfDirectory(atPath: dir).filter {
      $0.hasSuffix(".owner")
    }.sorted()
    #expect(
      tags
        == ["hostd-\(live.processIdentifier).owner", "hostd-\(other.processIdentifier).owner"]
        .sorted())
  }

  @Test func theLaunchCommandTagsThenBecomesHostd() throws {
    let argv = HostdLeftovers.launch("/var/lib/hpthammer/hpthammer-hostd-ppc64le-1", dir: "/d")
    #expect(argv.prefix(2) == ["sh", "-c"])
    #expect(
      argv[2].hasSuffix("/hostd-$$.owner && exec /var/lib/hpthammer/hpthammer-hostd-ppc64le-1"),
      "\(argv[2])")
    let o = HostdLeftovers.owner(HostdLeftovers.ownerLine[...])
    #expect(HarnessProcess.isAlive(owner: o) == true)
  }

  /// One run at a time on a target: the lock is held while this process lives; another
  /// process cannot take it (util-linux flock -n), and the kernel drops it when its holder dies.
  @Test(.enabled(if: HostCommand.which("flock") != nil, "no flock (util-linux)"))
  func aTargetIsLockedForItsRunsLife() throws {
    let name = "test-target-\(UUID().uuidString)"
    try TargetLock.acquire(name)
    try TargetLock.acquire(name)  // again from the same process (the next seed): fine
    let path = TargetLock.path(name)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let busy = HostCommand.run(["flock", "-n", path, "true"], timeoutS: 10)
    #expect(!busy.ok)
    #expect(try String(contentsOfFile: path, encoding: .utf8).contains("hpthammer PID \(getpid())"))
    // A holder that dies (SIGKILL) leaves the lock free.
    let other = "test-target-\(UUID().uuidString)"
    let p = Process()
    // One process holds it: the shell takes the lock on fd 9, then becomes sleep.
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", "exec 9>\"$0\"; flock 9; exec sleep 300", TargetLock.path(other)]
    try p.run()
    usleep(200_000)
    #expect(!HostCommand.run(["flock", "-n", TargetLock.path(other), "true"], timeoutS: 10).ok)
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    #expect(HostCommand.run(["flock", "-n", TargetLock.path(other), "true"], timeoutS: 10).ok)
    try? FileManager.default.removeItem(atPath: TargetLock.path(other))
  }
}
