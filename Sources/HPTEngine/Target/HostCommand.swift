import Foundation

/// What a command run on a target host (or on the controller) answered.
public struct CommandResult: Sendable, Equatable {
  /// Exit status; nil when the command was killed at its deadline.
  public var status: Int32?
  public var stdout: String
  public var stderr: String
  public var ok: Bool { status == 0 }
  public var timedOut: Bool { status == nil }
  /// The last non-empty line of stderr (or stdout), for error messages.
  public var lastLine: String {
    let pick = stderr.isEmpty ? stdout : stderr
    return pick.split(separator: "\n").last { !$0.isEmpty }.map(String.init) ?? ""
  }
}

/// Runs programs from argv lists, never through a shell on the controller. A command for a
/// remote host still reaches the remote shell as one string (that is how ssh works), so it is
/// built by `shellQuote`, which quotes every argument: job fields can never become syntax.
public enum HostCommand {
  /// Runs `argv` (argv[0] looked up in PATH), feeding `stdin`, killing it after `timeoutS`.
  public static func run(_ argv: [String], stdin: Data? = nil, timeoutS: Double) -> CommandResult {
    precondition(!argv.isEmpty, "an empty command line")
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    let out = Pipe()
    let err = Pipe()
    let input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = stdin == nil ? FileHandle.nullDevice : input
    do { try p.run() } catch {
      return CommandResult(status: 127, stdout: "", stderr: "cannot run \(argv[0]): \(error)")
    }
    // Readers on their own threads so a chatty command cannot fill a pipe and stall.
    let collected = CollectedOutput()
    let group = DispatchGroup()
    for (h, isErr) in [(out.fileHandleForReading, false), (err.fileHandleForReading, true)] {
      group.enter()
      Thread.detachNewThread {
        let d = h.readDataToEndOfFile()
        collected.set(d, isErr: isErr)
        group.leave()
      }
    }
    if let stdin {
      Thread.detachNewThread {
        try? input.fileHandleForWriting.write(contentsOf: stdin)
        try? input.fileHandleForWriting.close()
      }
    }
    let deadline = Date().addingTimeInterval(timeoutS)
    var killed = false
    while p.isRunning {
      if Date() >= deadline {
        killed = true
        p.terminate()
        Thread.sleep(forTimeInterval: 0.2)
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        break
      }
      Thread.sleep(forTimeInterval: 0.01)
    }
    p.waitUntilExit()
    _ = group.wait(timeout: .now() + 5)
    let (o, e) = collected.get()
    return CommandResult(
      status: killed ? nil : p.terminationStatus,
      stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
  }

  /// POSIX shell quoting: every argument in single quotes, a quote inside as '\''.
  public static func shellQuote(_ argv: [String]) -> String {
    argv.map { arg in
      if !arg.isEmpty, arg.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0) }) {
        return arg
      }
      return "'" + arg.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }.joined(separator: " ")
  }

  /// Whether `name` is an executable in PATH.
  public static func which(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(name)" }
      .first { FileManager.default.isExecutableFile(atPath: $0) }
  }
}

private final class CollectedOutput: @unchecked Sendable {
  private let lock = NSLock()
  private var out = Data()
  private var err = Data()
  func set(_ d: Data, isErr: Bool) {
    lock.lock()
    if isErr { err = d } else { out = d }
    lock.unlock()
  }
  func get() -> (Data, Data) {
    lock.lock()
    defer { lock.unlock() }
    return (out, err)
  }
}
