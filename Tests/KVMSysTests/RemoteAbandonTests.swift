import Foundation
import KVMHost
import Synchronization
import Testing

@testable import KVMSys

/// A host whose kernel died under a call never answers it: `abandon()` must free the caller.
@Suite struct RemoteAbandonTests {
  @Test(.enabled(if: RemoteSyscallsTests.which("cc") != nil, "no C compiler"))
  func abandonFreesACallTheHostNeverAnswers() throws {
    let bin = try RemoteSyscallsTests.build(RemoteSyscallsTests.which("cc")!)
    defer { try? FileManager.default.removeItem(atPath: bin) }
    let (remote, p, _) = try RemoteSyscallsTests.connect([bin], arch: .host)
    defer {
      kill(p.processIdentifier, SIGKILL)
      p.waitUntilExit()
    }
    #expect(throws: Never.self) { try remote.open("/dev/null").get() }
    // hostd frozen: the channel stays open and the next call gets no answer, as with a
    // KVM_RUN on a host that oopsed.
    kill(p.processIdentifier, SIGSTOP)
    let answered = DispatchSemaphore(value: 0)
    let result = Mutex<Result<Int32, Errno>?>(nil)
    Thread {
      let r = remote.open("/dev/null")
      result.withLock { $0 = r }
      answered.signal()
    }.start()
    #expect(answered.wait(timeout: .now() + 0.3) == .timedOut, "a frozen hostd answered")
    remote.abandon()
    #expect(answered.wait(timeout: .now() + 5) == .success, "abandon() left the caller waiting")
    #expect(result.withLock { $0 } == .failure(.hostDown))
    #expect(remote.isClosed)
  }
}
