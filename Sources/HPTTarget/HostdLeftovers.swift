import Foundation
import HPTEngine

/// hostd processes a dead run left on a target. hostd exits when its ssh channel closes, but a
/// harness killed outright can leave its ssh (and so hostd, maybe stuck in a syscall on a sick
/// host) behind. Each hostd is started with a tag file, DIR/hostd-PID.owner, naming the
/// harness that started it (controller, PID, boot id, start time); before the next hostd
/// starts on that target, the hostds whose harness is gone are killed and their tags removed,
/// each with a line saying so. A live harness's hostd, another controller's, and any process
/// that is not hpthammer-hostd are never touched.
enum HostdLeftovers {
  static let dir = "/var/lib/hpthammer"

  /// The tag's content: this harness as the interim run.json records it, one JSON line.
  static var ownerLine: String {
    let data = try? JSONSerialization.data(withJSONObject: HarnessProcess.me, options: .sortedKeys)
    return data.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
  }

  static func owner(_ line: Substring) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
  }

  /// The remote command that tags, then becomes, hostd (`exec` keeps the tag's PID).
  static func launch(_ remote: String, dir: String = dir) -> [String] {
    let tag = HostCommand.shellQuote([dir]) + "/hostd-$$.owner"
    return [
      "sh", "-c",
      "echo \(HostCommand.shellQuote([ownerLine])) > \(tag) && exec \(HostCommand.shellQuote([remote]))",
    ]
  }

  /// Each tag as "PID RUNNING OWNER...": RUNNING is 1 when that PID is still an hpthammer-hostd.
  static func listScript(dir: String) -> String {
    """
    for f in \(HostCommand.shellQuote([dir]))/hostd-*.owner; do
      [ -e "$f" ] || continue
      p=${f##*/hostd-}; p=${p%.owner}
      r=0; tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q hpthammer-hostd && r=1
      echo "$p $r $(cat "$f")"
    done
    """
  }

  /// Kills the dead harnesses' hostds on `target`; one line per hostd cleaned.
  static func reap(_ target: Target, dir: String = dir) -> [String] {
    let r = target.run(["sh", "-c", listScript(dir: dir)], timeoutS: 30)
    guard r.ok else { return [] }
    var lines: [String] = []
    for line in r.stdout.split(separator: "\n") {
      let f = line.split(separator: " ", maxSplits: 2)
      guard f.count == 3, let pid = Int(f[0]) else { continue }
      let o = owner(f[2])
      guard HarnessProcess.isAlive(owner: o) == false else { continue }
      let tag = "\(dir)/hostd-\(pid).owner"
      if f[1] == "1" {
        let k = target.run(["sh", "-c", "kill -9 \(pid) && rm -f \(tag)"], timeoutS: 30)
        lines.append(
          (k.ok
            ? "cleaned up hostd PID \(pid) on \(target.name)"
            : "could not kill hostd PID \(pid) on \(target.name): \(k.lastLine)")
            + ", left by a harness that is gone (PID \(o["pid"] ?? "?") on \(o["controller"] ?? "?"))"
        )
      } else {
        _ = target.run(["rm", "-f", tag], timeoutS: 30)  // ended by itself: only its tag is left
      }
    }
    return lines
  }
}
