import Foundation
import HPTEngine
import Synchronization

/// One run at a time on a lab or remote target: an flock on a file per target
/// (~/.cache/hpthammer/locks/NAME.lock), held for the life of the process. The kernel drops it
/// when the process dies, SIGKILL included, so a dead run never blocks the next one; a live one
/// does, and the refused run names it (exit 125).
public enum TargetLock {
  private static let held = Mutex<[String: Int32]>([:])

  public static func path(_ name: String) -> String {
    hpthammerCache("locks") + "/\(RunDirectory.component(name)).lock"
  }

  public static func acquire(_ name: String) throws(TargetError) {
    if held.withLock({ $0[name] != nil }) { return }  // this process's earlier run (--seeds)
    let p = path(name)
    try? FileManager.default.createDirectory(
      atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    // O_CLOEXEC: ssh, run.sh and the lab's daemonized QEMU must not inherit the lock.
    let fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw TargetError("cannot open the target lock \(p): \(String(cString: strerror(errno)))")
    }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
      usleep(100_000)  // a holder that has just taken the lock writes its name next
      let owner =
        (try? String(contentsOfFile: p, encoding: .utf8))?
        .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
      close(fd)
      throw TargetError(
        "\(name) is in use by another run (\(owner.isEmpty ? "?" : owner)); one run at a time on a target: wait for it to end, or stop it"
      )
    }
    let line =
      "hpthammer PID \(getpid()) on \(ProcessInfo.processInfo.hostName) since \(ISO8601DateFormatter().string(from: Date()))\n"
    _ = ftruncate(fd, 0)
    _ = line.withCString { write(fd, $0, strlen($0)) }
    held.withLock { $0[name] = fd }
  }
}
