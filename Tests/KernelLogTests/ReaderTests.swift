import Foundation
import Testing

@testable import KernelLog

#if canImport(Glibc)
  import Glibc
#endif

@Suite struct DmesgTextTests {
  @Test func timestampCallerAndLevel() {
    let r = DmesgText.parse(
      line: "<4>[ 1234.567890][ T4242] WARNING: CPU: 3 PID: 4242 at x.c:1 f+0x1/0x2")
    #expect(r.timestampMicros == 1_234_567_890)
    #expect(r.level == 4 && r.facility == 0)
    #expect(r.caller == "T4242")
    #expect(r.text == "WARNING: CPU: 3 PID: 4242 at x.c:1 f+0x1/0x2")
    #expect(r.dmesgLine == "[ 1234.567890] WARNING: CPU: 3 PID: 4242 at x.c:1 f+0x1/0x2")
  }

  @Test func humanTimestampsAndCPUCaller() {
    let r = DmesgText.parse(
      line: "[Wed Nov 25 20:11:42 2026] Oops: Kernel access of bad area, sig: 11 [#1]")
    #expect(r.timestampMicros == nil)
    #expect(r.text == "Oops: Kernel access of bad area, sig: 11 [#1]")
    let c = DmesgText.parse(
      line: "[    0.000100][    C0] rcu: INFO: rcu_sched self-detected stall on CPU")
    #expect(c.caller == "C0" && c.timestampMicros == 100)
  }

  @Test func plainTextHasNoStamp() {
    let r = DmesgText.parse(line: "no stamp here")
    #expect(r.timestampMicros == nil && r.text == "no stamp here" && r.level == nil)
  }
}

@Suite struct KmsgTests {
  @Test func structuredRecordWithDictionaryAndEscapes() throws {
    let raw = Array(
      "6,1234,5678901,-,caller=T42;hpt\\x20resize\\x0aorder 26\n SUBSYSTEM=kvm\n DEVICE=c10:232\n"
        .utf8)
    let r = try #require(KmsgRecord.parse(raw))
    #expect(r.sequence == 1234 && r.timestampMicros == 5_678_901)
    #expect(r.level == 6 && r.facility == 0 && r.caller == "T42")
    #expect(r.text == "hpt resize\norder 26")
    #expect(r.continuation == ["SUBSYSTEM=kvm", "DEVICE=c10:232"])
  }

  @Test func malformedRecordsAreRejected() {
    #expect(KmsgRecord.parse(Array("no semicolon".utf8)) == nil)
    #expect(KmsgRecord.parse(Array("x,1,2,-;text".utf8)) == nil)
    #expect(KmsgRecord.parse(Array("6,99999999999999999999999,2,-;text".utf8)) == nil)
  }

  @Test func gapsCountLostRecords() {
    var tracker = KmsgGapTracker()
    #expect(tracker.observe(10) == nil)
    #expect(tracker.observe(11) == nil)
    #expect(tracker.observe(15) == 3)
    #expect(tracker.observe(16) == nil)
    #expect(tracker.totalLost == 3)
  }

  static var kmsgUsable: Bool {
    access("/dev/kmsg", R_OK) == 0 && access("/dev/kmsg", W_OK) == 0
  }

  /// Writes a marker into this machine's kernel log and reads it back through the reader.
  @Test(.enabled(if: kmsgUsable, "/dev/kmsg not readable and writable here"))
  func realKmsgMarkerRoundTrip() throws {
    let reader = try KmsgReader(start: .end)
    let marker = "hpthammer-kernellog-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open("/dev/kmsg", O_WRONLY)
    #expect(fd >= 0)
    // With a newline: an unterminated record stays open for continuation and is not readable.
    let message = "<6>\(marker)\n"
    let written = message.withCString { write(fd, $0, strlen($0)) }
    close(fd)
    #expect(written == message.utf8.count)
    var found: KernelLogRecord?
    var lastSequence: UInt64?
    for _ in 0..<100 where found == nil {
      let events = try reader.drain()
      if ProcessInfo.processInfo.environment["KMSG_DEBUG"] != nil {
        print("kmsg events: \(events)")
      }
      for event in events {
        if case .record(let r) = event {
          if let last = lastSequence, let seq = r.sequence { #expect(seq > last) }
          lastSequence = r.sequence
          if r.text.contains(marker) { found = r }
        }
      }
      if found == nil { usleep(10_000) }
    }
    let record = try #require(found)
    #expect(record.level == 6)
    #expect(record.sequence != nil && record.timestampMicros != nil)
    // Reading from the beginning also finds it (the ring buffer is large enough for one line).
    let fromStart = try KmsgReader(start: .beginning)
    var events: [KmsgEvent] = []
    while let event = try fromStart.next(), events.count < 1_000_000 { events.append(event) }
    #expect(
      events.contains {
        if case .record(let r) = $0 { return r.text.contains(marker) } else { return false }
      })
  }
}

@Suite struct JournalTests {
  @Test func jsonRecord() throws {
    let line =
      #"{"__MONOTONIC_TIMESTAMP":"91652628516","_SOURCE_MONOTONIC_TIMESTAMP":"91652628000","PRIORITY":"4","SYSLOG_FACILITY":"0","_HOSTNAME":"p9host","MESSAGE":"Unable to handle kernel paging request for data at address 0xd0000000157fb10c"}"#
    let r = try #require(Journal.parseJSON(line: line))
    #expect(r.timestampMicros == 91_652_628_000)
    #expect(r.level == 4 && r.facility == 0)
    #expect(r.origin == .host("p9host"))
    #expect(r.text.hasPrefix("Unable to handle kernel paging request"))
  }

  @Test func jsonByteArrayMessage() throws {
    let r = try #require(
      Journal.parseJSON(line: #"{"MESSAGE":[66,85,71,58,32,255],"PRIORITY":"0"}"#))
    #expect(r.text.hasPrefix("BUG: "))
  }

  @Test func shortForms() throws {
    let r = try #require(
      Journal.parseShort(
        line:
          "Nov 25 20:28:25 guest1 kernel: BUG: Kernel NULL pointer dereference on write at 0x00000010"
      ))
    #expect(r.origin == .host("guest1"))
    #expect(r.text == "BUG: Kernel NULL pointer dereference on write at 0x00000010")
    let m = try #require(
      Journal.parseShort(
        line: "[ 1234.500000] p9host kernel: Oops: Exception in kernel mode, sig: 5 [#1]",
        origin: .guest("g")))
    #expect(m.timestampMicros == 1_234_500_000 && m.origin == .guest("g"))
    #expect(Journal.parseShort(line: "Nov 25 20:28:25 host sshd[812]: Accepted key") == nil)
  }
}

@Suite struct ConsoleTests {
  @Test func crlfAnsiAndUserspace() {
    var console = ConsoleReader(origin: .guest("vm1"))
    let bytes = Array(
      "\u{1b}[0;32m[  OK  ]\u{1b}[0m Started Journal.\r\n[   12.000001] kvm: ok\r\nlogin: \r\n".utf8
    )
    let records = console.feed(bytes) + console.finish()
    #expect(records.map(\.text) == ["[  OK  ] Started Journal.", "kvm: ok", "login:"])
    #expect(records[0].facility == 1 && records[1].timestampMicros == 12_000_001)
    #expect(records.allSatisfy { $0.origin == .guest("vm1") })
  }

  @Test func printkSplitByAnotherIsRejoined() {
    var console = ConsoleReader()
    let text =
      "[  100.000001] BUG: unable to han[  100.000002] virtio_net: link up\ndle kernel paging request at 0x10\n"
    let records = console.feed(Array(text.utf8)) + console.finish()
    #expect(records.map(\.text).contains("BUG: unable to handle kernel paging request at 0x10"))
    #expect(records.map(\.text).contains("virtio_net: link up"))
  }

  @Test func hostileBytesDoNotCrash() {
    var console = ConsoleReader()
    var bytes =
      [UInt8](repeating: 0x1b, count: 100) + [0x5b] + [UInt8](repeating: 0xff, count: 200_000)
    bytes += [0x0a, 0x00, 0x0d, 0x5b, 0x31, 0x2e]
    _ = console.feed(bytes) + console.finish()
  }
}

@Suite struct PstoreTests {
  @Test func partsAreJoinedNewestDumpFirst() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "pstore-\(getpid())-\(UInt32.random(in: 0...1_000_000))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    // Part2 holds the older text, Part1 the end of the log.
    try
      "Oops#1 Part2\n<4>[  10.000000] first line\n<4>[  10.100000] Unable to handle kernel paging request for data at address 0xd000000015000000\n"
      .write(to: dir.appendingPathComponent("dmesg-ramoops-1"), atomically: true, encoding: .utf8)
    try
      "Oops#1 Part1\n<4>[  10.200000] NIP [c0000000000e2640] kvmppc_add_revmap_chain+0x50/0x120\n<4>[  10.300000] Call Trace:\n"
      .write(to: dir.appendingPathComponent("dmesg-ramoops-0"), atomically: true, encoding: .utf8)
    try "hello".write(
      to: dir.appendingPathComponent("console-ramoops-0"), atomically: true, encoding: .utf8)
    let dumps = try Pstore.read(directory: dir.path)
    #expect(dumps.count == 1)
    let dump = try #require(dumps.first)
    #expect(dump.reason == "Oops" && dump.count == 1 && dump.backend == "ramoops")
    #expect(dump.files == ["dmesg-ramoops-1", "dmesg-ramoops-0"])
    #expect(dump.records.first?.text == "first line")
    let reports = CrashDetector().scan(records: dump.records)
    #expect(
      reports.first?.title
        == "BUG: unable to handle kernel paging request in kvmppc_add_revmap_chain")
  }

  @Test func vmcoreDmesg() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "vmcore-dmesg-\(getpid()).txt"
    ).path
    try
      "[ 1502.118409] kernel BUG at arch/powerpc/kvm/book3s_64_mmu_hv.c:1234!\n[ 1502.119310] NIP [c008000008f44c30] resize_hpt_rehash_hpte+0x280/0x4a0 [kvm_hv]\n"
      .write(toFile: path, atomically: true, encoding: .utf8)
    defer { unlink(path) }
    let records = try VmcoreDmesg.read(path: path)
    #expect(records.count == 2 && records[0].timestampMicros == 1_502_118_409)
    #expect(
      CrashDetector().scan(records: records).first?.title == "kernel BUG in resize_hpt_rehash_hpte")
  }
}

@Suite struct FollowerTests {
  @Test func followsAppendsPartialLinesAndTruncation() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "follow-\(getpid())-\(UInt32.random(in: 0...1_000_000)).log"
    ).path
    try "old line\n".write(toFile: path, atomically: false, encoding: .utf8)
    defer { unlink(path) }
    let follower = try FileFollower(path: path, fromEnd: true)
    #expect(try follower.poll().isEmpty)
    let handle = try #require(FileHandle(forWritingAtPath: path))
    handle.seekToEndOfFile()
    handle.write(Data("first\nsec".utf8))
    #expect(try follower.poll() == ["first"])
    handle.write(Data("ond\n".utf8))
    #expect(try follower.poll() == ["second"])
    handle.truncateFile(atOffset: 0)
    handle.write(Data("after truncate\n".utf8))
    handle.closeFile()
    #expect(try follower.poll() == ["after truncate"])
  }

  @Test func longLinesAreBounded() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "follow-long-\(getpid()).log"
    ).path
    try (String(repeating: "x", count: 300_000) + "\nshort\n").write(
      toFile: path, atomically: false, encoding: .utf8)
    defer { unlink(path) }
    let follower = try FileFollower(path: path)
    let lines = try follower.poll()
    #expect(lines.count == 2)
    #expect(lines[0].utf8.count == FileFollower.maxLineBytes)
    #expect(lines[1] == "short")
  }
}
