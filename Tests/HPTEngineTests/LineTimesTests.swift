import Testing

@testable import HPTEngine

@Suite struct LineTimesTests {
  @Test func aReportIsTimedByTheLineItStartsIn() {
    var t = LineTimes()
    t.add(offset: 0, ns: 100)
    t.add(offset: 40, ns: 200)
    t.add(offset: 90, ns: 300)
    #expect(t.ns(at: 0) == 100)
    #expect(t.ns(at: 39) == 100)
    #expect(t.ns(at: 40) == 200)
    #expect(t.ns(at: 1000) == 300)
  }

  /// Long runs keep only the recent lines; a report older than those has no time.
  @Test func itStaysBounded() {
    var t = LineTimes()
    for i in 0..<(LineTimes.kept * 5) { t.add(offset: i * 10, ns: UInt64(i)) }
    #expect(t.ns(at: 5) == nil)
    #expect(t.ns(at: (LineTimes.kept * 5 - 1) * 10) == UInt64(LineTimes.kept * 5 - 1))
  }
}
