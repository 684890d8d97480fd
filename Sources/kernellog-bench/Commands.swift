// The commands a user runs, timed as whole processes: `hpthammer scan --json LOG > FILE`,
// `hpthammer scan LOG > FILE` and the issue's `grep -E -c '<14 header strings>' LOG > FILE`,
// started in turn (scan --json, scan, grep, scan --json, ...) so that all see the same machine,
// each child's output going to a file (GNU grep stops at its first match when its output is
// /dev/null), its CPU and peak memory from wait4's rusage.
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The grep a user would otherwise run over a console log (the issue's header strings).
let userGrepPattern =
  "BUG:|WARNING:|INFO:|Unable to handle kernel|general protection fault|Kernel panic|kernel BUG|Oops:|watchdog:|Watchdog|UBSAN:|divide error:|invalid opcode:|Internal error:"

struct ChildRun {
  var wall: Double
  var cpu: Double
  var peakKiB: Int
  var status: Int32
}

enum SpawnError: Error, CustomStringConvertible {
  case spawn(String, Int32)
  case failed(String, Int32)
  var description: String {
    switch self {
    case .spawn(let path, let errno):
      return "cannot start \(path): \(String(cString: strerror(errno)))"
    case .failed(let command, let status):
      return "\(command) exited with \(status) (0 or 1 expected)"
    }
  }
}

/// Runs `argv` with stdout to `output` (truncated) and stderr to /dev/null: wall seconds from
/// spawn to reaping, the child's user + system seconds and peak RSS.
func runChild(_ argv: [String], output: String) throws -> ChildRun {
  var actions = posix_spawn_file_actions_t()
  posix_spawn_file_actions_init(&actions)
  defer { posix_spawn_file_actions_destroy(&actions) }
  posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
  var cArgs = argv.map { strdup($0) } + [nil]
  defer { for arg in cArgs { free(arg) } }
  var pid: pid_t = 0
  let start = now()
  // (posix_spawnp: grep is found on PATH, as a shell finds it.)
  let rc = posix_spawnp(&pid, argv[0], &actions, nil, &cArgs, environ)
  guard rc == 0 else { throw SpawnError.spawn(argv[0], rc) }
  var status: Int32 = 0
  var usage = rusage()
  while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
  let wall = now() - start
  let cpu =
    Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
    + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
  // Exit status: WIFEXITED/WEXITSTATUS by hand (the macros are not imported); killed by a
  // signal reads as 128 + the signal, as a shell says it.
  let exited = status & 0x7f == 0
  return ChildRun(
    wall: wall, cpu: cpu, peakKiB: usage.ru_maxrss,
    status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f))
}

func median(_ xs: [Double]) -> Double {
  let s = xs.sorted()
  return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// `rounds` rounds of the three commands; prints each command's median wall, CPU and peak
/// memory, and the median over rounds of grep's wall time over each scan's (the speed ratio;
/// target >= 0.5 for `scan --json`).
func timeUserCommands(hpthammer: String, log: String, rounds: Int) throws {
  let out = NSTemporaryDirectory() + "kernellog-bench-\(getpid()).out"
  defer { unlink(out) }
  let grep = ["grep", "-E", "-c", userGrepPattern, log]
  let commands: [(name: String, argv: [String])] = [
    ("hpthammer scan --json", [hpthammer, "scan", "--json", log]),
    ("hpthammer scan", [hpthammer, "scan", log]),
    ("grep -E -c (14 header strings)", grep),
  ]
  // One untimed round first: the log into the page cache, the binaries loaded.
  for command in commands { _ = try runChild(command.argv, output: out) }
  var runs = Array(repeating: [ChildRun](), count: commands.count)
  for _ in 0..<rounds {
    for (i, command) in commands.enumerated() {
      let run = try runChild(command.argv, output: out)
      // hpthammer scan: 0 no crash, 1 crashes found; grep -c: 0 matches, 1 none.
      guard run.status <= 1 else {
        throw SpawnError.failed(command.name, run.status)
      }
      runs[i].append(run)
    }
  }
  // A child started by posix_spawn shares this process's memory until it execs, and Linux
  // keeps that in the child's peak: no child's peak reads below this process's own.
  let floorMiB = peakRSSKiB() / 1024
  print("whole processes, output to a file, \(rounds) rounds in turn (median):")
  for (i, command) in commands.enumerated() {
    let r = runs[i]
    let peakMiB = (r.map(\.peakKiB).max() ?? 0) / 1024
    print(
      String(
        format: "  %@ %.3f s wall, %.3f s CPU, peak %@",
        command.name.padding(toLength: 32, withPad: " ", startingAt: 0) as NSString,
        median(r.map(\.wall)), median(r.map(\.cpu)),
        (peakMiB > floorMiB
          ? "\(peakMiB) MiB" : "at most \(floorMiB) MiB (this process's own peak)")
          as NSString))
  }
  let grepRuns = runs[2]
  for i in 0..<2 {
    let ratios = zip(grepRuns, runs[i]).map { $0.wall / $1.wall }
    print(
      String(
        format: "  %@ speed relative to grep (wall, median of rounds): %.2fx%@",
        commands[i].name as NSString, median(ratios),
        i == 0 ? " (target >= 0.5)" : ""))
  }
}
