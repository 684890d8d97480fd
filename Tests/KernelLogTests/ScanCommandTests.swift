import Foundation
import Testing

@testable import KernelLog
@testable import hpthammer

/// Runs the built `hpthammer scan` binary (built with the tests, next to them).
func runScan(_ arguments: [String], stdin: Data? = nil) throws -> (
  status: Int32, out: String, err: String
) {
  let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent(
      "hpthammer")
  let process = Process()
  process.executableURL = binary
  process.arguments = ["scan"] + arguments
  let out = Pipe()
  let err = Pipe()
  let input = Pipe()
  process.standardOutput = out
  process.standardError = err
  process.standardInput = input
  try process.run()
  if let stdin { input.fileHandleForWriting.write(stdin) }
  input.fileHandleForWriting.closeFile()
  let o = out.fileHandleForReading.readDataToEndOfFile()
  let e = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return (
    process.terminationStatus, String(decoding: o, as: UTF8.self),
    String(decoding: e, as: UTF8.self)
  )
}

var scanBinaryExists: Bool {
  FileManager.default.isExecutableFile(
    atPath: URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
      .appendingPathComponent(
        "hpthammer"
      ).path)
}

@Suite(.enabled(if: scanBinaryExists, "hpthammer binary not built next to the tests"))
struct ScanCommandTests {
  /// A fixture's log (without its expectation headers) in a temporary file.
  func logFile(_ name: String) throws -> String {
    let c = try #require(Fixtures.cases.first { $0.name == name })
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "scan-\(getpid())-\(name)"
    ).path
    try Data(c.log).write(to: URL(fileURLWithPath: path))
    return path
  }

  @Test func jsonLinesAndExitOneOnCrash() throws {
    let (status, out, _) = try runScan([
      "--json", try logFile("006-ppc-kernel-bug.log"), try logFile("016-no-crash.log"),
    ])
    #expect(status == 1)
    let lines = out.split(separator: "\n")
    #expect(lines.count == 1)
    let object = try #require(
      try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
    #expect(object["title"] as? String == "kernel BUG in resize_hpt_rehash_hpte")
    #expect(object["type"] as? String == "BUG")
    #expect(object["frame"] as? String == "resize_hpt_rehash_hpte")
    #expect(object["corrupted"] as? Bool == false)
    #expect((object["start"] as? Int ?? -1) >= 0)
    #expect((object["end"] as? Int ?? 0) > (object["start"] as? Int ?? 0))
    #expect((object["signature"] as? String)?.count == 16)
  }

  @Test func exitZeroWithoutCrash() throws {
    let (status, out, _) = try runScan([try logFile("016-no-crash.log")])
    #expect(status == 0)
    #expect(out.isEmpty)
  }

  @Test func unreadableFileIsExitTwoNamingIt() throws {
    let (status, _, err) = try runScan(["/nonexistent/hpthammer-kernel.log"])
    #expect(status == 2)
    #expect(err.contains("/nonexistent/hpthammer-kernel.log"))
  }

  @Test func standardInputAndHumanOutput() throws {
    let log = try Data(contentsOf: URL(fileURLWithPath: try logFile("007-ppc-warning.log")))
    let (status, out, _) = try runScan(["-"], stdin: log)
    #expect(status == 1)
    #expect(out.contains("WARNING in kvm_vm_ioctl_resize_hpt_commit"))
    #expect(out.hasPrefix("-:"))
  }

  @Test func jsonEscaping() {
    #expect(ScanOutput.quote("a\"b\\c\n\u{1}") == #""a\"b\\c\n\u0001""#)
  }
}
