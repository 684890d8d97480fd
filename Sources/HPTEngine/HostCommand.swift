import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// What a command run on a target host (or on the controller) answered.
public struct CommandResult: Sendable, Equatable {
  /// Exit status; nil when the command was killed at its deadline.
  public var status: Int32?
  public var stdout: String
  public var stderr: String

  public init(status: Int32?, stdout: String, stderr: String) {
    self.status = status
    self.stdout = stdout
    self.stderr = stderr
  }

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
  /// posix_spawn and waitpid directly: the command's exit is what counts, not the end of its
  /// output (a daemon it starts, like the lab's QEMU, may keep the pipes open for hours).
  public static func run(_ argv: [String], stdin: Data? = nil, timeoutS: Double) -> CommandResult {
    precondition(!argv.isEmpty, "an empty command line")
    var outPipe: [Int32] = [0, 0]
    var errPipe: [Int32] = [0, 0]
    var inPipe: [Int32] = [0, 0]
    func cloexecPipe(_ p: inout [Int32]) -> Bool {
      guard pipe(&p) == 0 else { return false }
      for fd in p { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
      return true
    }
    guard cloexecPipe(&outPipe), cloexecPipe(&errPipe), cloexecPipe(&inPipe) else {
      return CommandResult(
        status: 127, stdout: "", stderr: "pipe: \(String(cString: strerror(errno)))")
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    // Its own process group, so a deadline kills what it started too.
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK))
    posix_spawnattr_setpgroup(&attr, 0)
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attr, &noSignals)
    var pid: pid_t = 0
    let cargs = argv.map { strdup($0) } + [nil]
    defer { cargs.forEach { free($0) } }
    let rc = posix_spawnp(&pid, argv[0], &actions, &attr, cargs, environ)
    for fd in [inPipe[0], outPipe[1], errPipe[1]] { close(fd) }
    guard rc == 0 else {
      for fd in [inPipe[1], outPipe[0], errPipe[0]] { close(fd) }
      return CommandResult(
        status: 127, stdout: "", stderr: "cannot run \(argv[0]): \(String(cString: strerror(rc)))")
    }
    // stdin from its own thread, so a command that does not read cannot block us.
    let writeFD = inPipe[1]
    if let stdin {
      Thread.detachNewThread {
        stdin.withUnsafeBytes { b in
          var off = 0
          while off < b.count {
            let n = write(writeFD, b.baseAddress! + off, b.count - off)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            off += n
          }
        }
        close(writeFD)
      }
    } else {
      close(writeFD)
    }
    var out: [UInt8] = []
    var err: [UInt8] = []
    var open: [Int32: Bool] = [outPipe[0]: true, errPipe[0]: true]
    let deadline = Date().addingTimeInterval(timeoutS)
    var status: Int32?
    var exited = false
    var killed = false
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
      var fds = open.filter(\.value).keys.sorted().map {
        pollfd(fd: $0, events: Int16(POLLIN), revents: 0)
      }
      _ = poll(&fds, nfds_t(fds.count), exited ? 0 : 20)
      for f in fds where f.revents != 0 {
        let n = buf.withUnsafeMutableBytes { read(f.fd, $0.baseAddress, $0.count) }
        if n > 0 {
          if f.fd == outPipe[0] { out += buf[..<n] } else { err += buf[..<n] }
        } else if n == 0 || errno != EINTR {
          open[f.fd] = false
        }
      }
      if exited {
        // What was written before the exit has been read; a daemon's copy of the pipes stays.
        if fds.allSatisfy({ $0.revents == 0 }) { break }
        continue
      }
      var st: Int32 = 0
      if waitpid(pid, &st, WNOHANG) == pid {
        exited = true
        if !killed { status = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f) }
        continue
      }
      if !open.values.contains(true) {
        // Output closed but still running: wait for it without spinning.
        Thread.sleep(forTimeInterval: 0.01)
      }
      if Date() >= deadline && !killed {
        killed = true
        kill(-pid, SIGTERM)
        Thread.sleep(forTimeInterval: 0.2)
        kill(-pid, SIGKILL)
      }
    }
    for fd in [outPipe[0], errPipe[0]] { close(fd) }
    return CommandResult(
      status: killed ? nil : status,
      stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
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
