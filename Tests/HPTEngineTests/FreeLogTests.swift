import Testing

@testable import HPTEngine

/// The host-view check skips a page only when its free may have come after the guest's write:
/// the free began or ended after the vCPU's previous report.
@Suite struct FreeLogTests {
  @Test func aPageFreedBeforeThePreviousReportIsChecked() {
    let log = FreeLog(pages: 16)
    log.freeing(2..<4) {}
    let previous = log.tick()
    #expect(!log.freed(page: 2, after: previous))
    #expect(!log.freed(page: 3, after: previous))
  }

  @Test func aPageFreedSinceThePreviousReportIsSkipped() {
    let log = FreeLog(pages: 16)
    let previous = log.tick()
    log.freeing(2..<4) {}
    #expect(log.freed(page: 2, after: previous))
    #expect(!log.freed(page: 4, after: previous))
  }

  @Test func aFreeInProgressIsSkippedWhateverItsStart() {
    let log = FreeLog(pages: 16)
    log.freeing(5..<6) {
      let previous = log.tick()
      #expect(log.freed(page: 5, after: previous))
      #expect(log.freed(page: 5, after: .max - 1))
    }
  }

  @Test func aFailedFreeStillCounts() {
    struct Refused: Error {}
    let log = FreeLog(pages: 16)
    let previous = log.tick()
    #expect(throws: Refused.self) { try log.freeing(0..<1) { throw Refused() } }
    #expect(log.freed(page: 0, after: previous))
  }

  @Test func aPageNeverFreedOrOutsideRAMIsChecked() {
    let log = FreeLog(pages: 4)
    log.freeing(2..<9) {}  // clipped to the guest's RAM
    #expect(!log.freed(page: 0, after: 0))
    #expect(log.freed(page: 3, after: 0))
    #expect(!log.freed(page: 8, after: 0))
    #expect(!log.freed(page: -1, after: 0))
  }
}
