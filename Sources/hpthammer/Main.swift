import ArgumentParser

/// Minimal root command for the kernellog worktree; main's checkout has the real one.
@main
struct HPTHammer: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hpthammer", abstract: "KVM HPT-resize hammer and kernel crash detector.",
    subcommands: [Scan.self])
}
