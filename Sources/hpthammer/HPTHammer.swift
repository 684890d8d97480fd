import ArgumentParser
import Foundation

/// Exit codes, fit for `git bisect run`.
enum Exit {
  static let pass: Int32 = 0
  static let bug: Int32 = 1
  static let usage: Int32 = 2
  static let couldNotTest: Int32 = 125
}

@main
struct HPTHammer: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hpthammer",
    abstract: "Hammer KVM-HV HPT resizing on POWER and catch the kernel when it breaks.",
    discussion: """
      Exit codes: 0 pass, 1 bug found, 125 could not test, 2 usage error (git bisect run).
      """,
    subcommands: [
      Run.self, Sim.self, Scan.self, Doctor.self, Bisect.self, Verdict.self, Runs.self,
      Results.self, Report.self, Nightly.self,
    ])

  static func main() {
    // A peer that dies (libvirtd, ssh to a host, hostd, a child's pipe) must come back as a
    // write error the backend can name, not kill the harness by SIGPIPE before it writes
    // run.json (libvirt asks its clients to ignore SIGPIPE).
    signal(SIGPIPE, SIG_IGN)
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch let e as ExitCode {
      Foundation.exit(e.rawValue)
    } catch {
      let code = exitCode(for: error)
      if code == .success {
        print(fullMessage(for: error))
        Foundation.exit(0)
      }
      FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
      // ArgumentParser says 64 for usage errors; bisect scripts expect 2.
      Foundation.exit(code == .validationFailure ? Exit.usage : code.rawValue)
    }
  }
}

/// Prints a usage error naming the input and exits 2.
func usageError(_ message: String) -> ExitCode {
  FileHandle.standardError.write(Data(("hpthammer: \(message)\n").utf8))
  return ExitCode(Exit.usage)
}
