import ArgumentParser
import Foundation
import HPTEngine

/// `hpthammer runs repair DIR...`: finishes the run directories of a harness that was killed.
struct Runs: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run directories.", subcommands: [Repair.self])

  struct Repair: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract:
        "Give a run directory left 'running' (SIGKILL, a crash or a power loss of the controller) its run.json and junit.xml from its timeline: verdict error, interrupted."
    )
    @Argument(help: "Run directories.") var dirs: [String]

    func run() throws {
      var bad = false
      for d in dirs {
        switch RunRepair.repair(URL(fileURLWithPath: d)) {
        case .repaired(let n):
          print("\(d): repaired from \(n) timeline events (verdict error, interrupted)")
        case .notNeeded: print("\(d): ended normally, nothing to repair")
        case .notARunDirectory(let why):
          FileHandle.standardError.write(Data("hpthammer runs repair: \(why)\n".utf8))
          bad = true
        }
      }
      if bad { throw ExitCode(Exit.usage) }
    }
  }

  /// Before a run under `root`: the directories there that a dead harness left "running".
  static func repairAbandoned(under root: String) {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return }
    for n in names.sorted() {
      let dir = URL(fileURLWithPath: root).appendingPathComponent(n)
      guard RunRepair.isAbandoned(dir), case .repaired(let events) = RunRepair.repair(dir) else {
        continue
      }
      FileHandle.standardError.write(
        Data(
          "hpthammer: repaired \(dir.path): a run whose harness died (\(events) events kept)\n".utf8
        ))
    }
  }
}
