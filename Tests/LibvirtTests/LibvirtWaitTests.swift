import Foundation
import Synchronization
import Testing

@testable import Libvirt

/// Waiting for a libvirtd that is still starting (a freshly booted lab resets the first
/// connections), against real libvirt: the test driver, and a port where nothing listens.
@Suite struct LibvirtWaitTests {
  @Test func aReadyDaemonIsTakenAtOnce() throws {
    let notes = Mutex<[String]>([])
    let c = try LibvirtConnection.waitingUntilReady(
      uri: "test:///default", timeoutS: 5, ready: { $0.contains("<capabilities>") },
      note: { n in notes.withLock { $0.append(n) } })
    #expect(c.uri == "test:///default")
    #expect(notes.withLock { $0 }.isEmpty)
  }

  /// Nothing answers: it retries (saying so once) until the deadline, then throws libvirt's
  /// own error, not a hang.
  @Test func noDaemonRetriesUntilTheDeadlineThenThrows() {
    let notes = Mutex<[String]>([])
    let t0 = Date()
    #expect(throws: LibvirtError.self) {
      _ = try LibvirtConnection.waitingUntilReady(
        uri: "qemu+tcp://127.0.0.1:1/system", timeoutS: 2.5,
        note: { n in notes.withLock { $0.append(n) } })
    }
    let took = Date().timeIntervalSince(t0)
    #expect(took >= 2.5 && took < 30, "gave up after \(took) s")
    #expect(notes.withLock { $0 }.count == 1)
  }

  /// A daemon that answers but never offers what the run needs: an error that says so.
  @Test func notReadyBeforeTheDeadlineSaysSo() {
    do {
      _ = try LibvirtConnection.waitingUntilReady(
        uri: "test:///default", timeoutS: 1.5, ready: { _ in false })
      Issue.record("a daemon that is never ready was taken")
    } catch {
      #expect(error.description.contains("not ready"))
    }
  }
}
