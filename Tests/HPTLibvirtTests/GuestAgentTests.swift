import Testing

@testable import HPTEngine
@testable import HPTLibvirt

@Suite struct GuestAgentTests {
  @Test func commandsCarryTheirChecksumAndParseBack() throws {
    let c = AgentLine.command("resize 23")
    #expect(c.hasPrefix("@hpth resize 23 *") && c.hasSuffix("\n"))
    let l = try #require(AgentLine.parse(c))
    #expect(l.verb == "resize" && l.args == ["23"])
  }

  @Test func garbledOrForeignLinesAreRejected() {
    let good = AgentLine.command("hb 7 1234").dropLast()
    #expect(AgentLine.parse(String(good)) != nil)
    // A printk landed in the middle of the line.
    #expect(
      AgentLine.parse(String(good).replacingOccurrences(of: "hb 7", with: "hb [  12.3] 7")) == nil)
    #expect(AgentLine.parse("[   1.234] lpar: Attempting to resize HPT to shift 23") == nil)
    #expect(AgentLine.parse("@hpth hb 7 1234") == nil)  // no checksum
  }

  /// A whole printk line inside an agent line (seen in CI: the reply lost, "no answer in 60 s").
  @Test func anAgentLineSplitByAPrintkLineIsPutBack() {
    let good = String(AgentLine.command("resized 23 0 141 114 25 OK").dropLast())
    let cut = good.index(good.endIndex, offsetBy: -3)
    var a = AgentLineAssembler()
    let first = a.feed(good[..<cut] + "[   13.278053] hrtimer: interrupt took 24913091 ns\r")
    #expect(first.agent == nil)
    #expect(first.kernel == "[   13.278053] hrtimer: interrupt took 24913091 ns")
    let second = a.feed(String(good[cut...]) + "\r")
    #expect(second.agent?.verb == "resized" && second.agent?.args.last == "OK")
    #expect(second.kernel == nil)
    // Kernel lines between the two parts pass through; a wrong end is not an agent line.
    var b = AgentLineAssembler()
    _ = b.feed(String(good[..<cut]))
    #expect(b.feed("[   13.3] another message").kernel == "[   13.3] another message")
    #expect(b.feed(String(good[cut...])).agent != nil)
    var c = AgentLineAssembler()
    _ = c.feed(String(good[..<cut]))
    #expect(c.feed("*00").agent == nil)
    #expect(c.feed("[   1.0] lpar: Attempting to resize HPT").kernel != nil)
  }

  @Test func kernelNoiseBeforeThePrefixIsSkipped() throws {
    let l = try #require(
      AgentLine.parse("\u{1b}[0m" + AgentLine.command("ready 6.1.0 hash 23 1024 2 1") + "\r"))
    #expect(l.verb == "ready" && l.args[1] == "hash" && l.int(2) == 23)
  }

  @Test func resizedLine() throws {
    let l = try #require(AgentLine.parse(AgentLine.command("resized 24 0 131 101 12 OK")))
    let r = try #require(GuestResize(l))
    #expect(r.order == 24 && r.errno == 0 && r.prepareMs == 101 && r.commitMs == 12)
    #expect(GuestResize(AgentLine(verb: "resized", args: ["x"])) == nil)
  }
}
