import ArgumentParser
import Foundation
import HPTEngine

/// `hpthammer runs repair DIR...`: finishes the run directories of a harness that was killed.
struct Runs: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "runs",
    abstract: "Run directories.", subcommands: [Repair.self])

  struct Repair: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "repair",
      abstract:
        "Give a run directory left 'running' (SIGKILL, a crash or a power loss of the controller) its run.json and junit.xml from its timeline: verdict error, interrupted."
    )
    @Argument(help: "Run directories.") var dirs: [String]

    func run() throws {
      var bad = false
      for d in dirs {
        if let pid = RunRepair.liveOwner(URL(fileURLWithPath: d)) {
          FileHandle.standardError.write(
            Data(
              "hpthammer runs repair: \(d): its run is still going (harness PID \(pid)); left as it is\n"
                .utf8))
          bad = true
          continue
        }
        switch RunRepair.repair(URL(fileURLWithPath: d)) {
        case .repaired(let n, let verdict, let interrupted):
          print(
            "\(d): repaired from \(n) timeline events (verdict \(verdict)\(interrupted ? ", interrupted" : ": the run had ended, its end was in the journal"))"
          )
        case .notNeeded: print("\(d): ended normally, nothing to repair")
        case .notARunDirectory(let why):
          FileHandle.standardError.write(Data("hpthammer runs repair: \(why)\n".utf8))
          bad = true
        }
      }
      if bad { throw ExitCode(Exit.usage) }
    }
  }

  /// Before a run under `root`: the directories there, down to `depth` levels (a night's
  /// NIGHT/KERNEL/JOB/seed-N), that a dead harness left "running".
  static func repairAbandoned(under root: String, depth: Int = 1) {
    guard depth > 0, let names = try? FileManager.default.contentsOfDirectory(atPath: root) else {
      return
    }
    for n in names.sorted() {
      let dir = URL(fileURLWithPath: root).appendingPathComponent(n)
      var isDir: ObjCBool = false
      guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue
      else { continue }
      guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("run.json").path)
      else {
        repairAbandoned(under: dir.path, depth: depth - 1)
        continue
      }
      guard RunRepair.isAbandoned(dir),
        case .repaired(let events, let verdict, _) = RunRepair.repair(dir)
      else { continue }
      FileHandle.standardError.write(
        Data(
          "hpthammer: repaired \(dir.path): a run whose harness died (\(events) events kept, verdict \(verdict))\n"
            .utf8))
    }
  }
}
