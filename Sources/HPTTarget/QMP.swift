import Foundation
import HPTEngine

#if canImport(Glibc)
  import Glibc
#endif

/// A QEMU Machine Protocol client on a unix socket: the lab's power switch (system_reset) and
/// off switch (quit). One command at a time; events QEMU sends in between are skipped.
public final class QMPClient {
  private let fd: Int32
  private var buffer: [UInt8] = []
  public let socketPath: String

  /// Connects and leaves capabilities negotiation mode.
  public init(socketPath: String, timeoutS: Double = 10) throws(TargetError) {
    self.socketPath = socketPath
    let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard s >= 0 else {
      throw TargetError("QMP \(socketPath): socket: \(String(cString: strerror(errno)))")
    }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(socketPath.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
      close(s)
      throw TargetError("QMP socket path too long (\(bytes.count) bytes): \(socketPath)")
    }
    withUnsafeMutableBytes(of: &addr.sun_path) { p in
      for (i, b) in bytes.enumerated() { p[i] = b }
      p[bytes.count] = 0
    }
    var tv = timeval(tv_sec: Int(timeoutS), tv_usec: 0)
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let r = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard r == 0 else {
      let e = String(cString: strerror(errno))
      close(s)
      throw TargetError("QMP \(socketPath): connect: \(e) (is the lab's QEMU running?)")
    }
    fd = s
    // The greeting, then qmp_capabilities.
    guard let greeting = try readMessage(), greeting["QMP"] != nil else {
      close(s)
      throw TargetError("QMP \(socketPath): no greeting")
    }
    _ = try execute("qmp_capabilities")
  }

  deinit { close(fd) }

  /// Runs a command; returns its "return" value, throws its "error".
  @discardableResult
  public func execute(_ command: String, arguments: [String: Any]? = nil) throws(TargetError)
    -> Any?
  {
    var msg: [String: Any] = ["execute": command]
    if let arguments { msg["arguments"] = arguments }
    guard let data = try? JSONSerialization.data(withJSONObject: msg) else {
      throw TargetError("QMP: cannot encode \(command)")
    }
    let line = Array(data) + [10]
    let w = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard w == line.count else {
      throw TargetError("QMP \(socketPath): write \(command): \(String(cString: strerror(errno)))")
    }
    while true {
      guard let m = try readMessage() else {
        // quit closes the socket before or after answering.
        if command == "quit" { return nil }
        throw TargetError("QMP \(socketPath): connection closed during \(command)")
      }
      if m["event"] != nil { continue }
      if let e = m["error"] as? [String: Any] {
        throw TargetError("QMP \(command): \(e["desc"] as? String ?? "\(e)")")
      }
      return m["return"]
    }
  }

  /// One JSON object per line; nil at EOF.
  private func readMessage() throws(TargetError) -> [String: Any]? {
    while true {
      if let nl = buffer.firstIndex(of: 10) {
        let line = Array(buffer[..<nl])
        buffer.removeFirst(nl + 1)
        if line.isEmpty { continue }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
          throw TargetError("QMP \(socketPath): not JSON: \(String(decoding: line, as: UTF8.self))")
        }
        return obj
      }
      var chunk = [UInt8](repeating: 0, count: 4096)
      let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if n == 0 { return nil }
      if n < 0 {
        if errno == EINTR { continue }
        throw TargetError("QMP \(socketPath): read: \(String(cString: strerror(errno)))")
      }
      buffer += chunk[..<n]
    }
  }
}
