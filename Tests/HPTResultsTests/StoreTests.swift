import Foundation
import HPTResults
import Testing

/// The SQLite store, on real files and real run directories.
@Suite struct StoreTests {
  @Test func importingTheSameRunTwiceStoresItOnce() throws {
    let (store, _) = try Fixtures.store()
    let dir = try Fixtures.run(seed: 1)
    let first = try store.record(runDir: dir)
    guard case .stored = first else {
      Issue.record("first import: \(first)")
      return
    }
    #expect(try store.record(runDir: dir) == .alreadyStored)
    // The same run from another place (a CI artifact unpacked elsewhere) is the same run.
    let elsewhere = Fixtures.scratch("elsewhere") + "/r"
    try FileManager.default.copyItem(atPath: dir, toPath: elsewhere)
    #expect(try store.record(runDir: elsewhere) == .alreadyStored)
    let n = try store.count()
    #expect(n.runs == 1)
    #expect(n.crashes == 1)
    #expect(n.signatures == 1)
  }
}
