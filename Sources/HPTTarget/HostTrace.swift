import Foundation
import HPTEngine

/// The kprobes of HostTrace, set up, read and removed through the target's shell.
extension HostTrace {
  static let locate = #"""
    T=/sys/kernel/tracing
    [ -e $T/README ] || T=/sys/kernel/debug/tracing
    if [ ! -e $T/README ]; then
      mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null && T=/sys/kernel/tracing
    fi
    [ -e $T/README ] || { echo "no tracefs (mount -t tracefs nodev /sys/kernel/tracing)"; exit 3; }
    I=$T/instances/hpthammer
    """#

  static let setupScript =
    locate + #"""

      [ -e $T/kprobe_events ] || { echo "$T has no kprobe_events (kernel without CONFIG_KPROBE_EVENTS)"; exit 3; }
      for f in "$@"; do
        awk -v f="$f" '$3 == f { found = 1 } END { exit !found }' /proc/kallsyms ||
          { echo "$f is not in /proc/kallsyms (kvm_hv not loaded?)"; exit 4; }
      done
      [ -d $I ] && rmdir $I 2>/dev/null
      i=0
      for f in "$@"; do
        echo "-:kprobes/hpthammer_$i" >> $T/kprobe_events 2>/dev/null
        echo "r:kprobes/hpthammer_$i $f ret=\$retval:s64" >> $T/kprobe_events ||
          { echo "cannot add a kretprobe on $f"; exit 5; }
        i=$((i+1))
      done
      mkdir $I || { echo "cannot create the trace instance $I"; exit 5; }
      echo 8192 > $I/buffer_size_kb
      method=trace
      i=0
      for f in "$@"; do
        E=$I/events/kprobes/hpthammer_$i
        if [ -e $E/trigger ] && echo 'hist:keys=ret' > $E/trigger 2>/dev/null; then method=hist; fi
        echo 1 > $E/enable || { echo "cannot enable $E"; exit 5; }
        i=$((i+1))
      done
      echo "ok $method"
      """#

  static let collectScript =
    locate + #"""

      i=0
      for f in "$@"; do
        E=$I/events/kprobes/hpthammer_$i
        echo "== $f"
        if [ -e $E/hist ] && grep -q hitcount $E/hist; then
          grep hitcount $E/hist
        else
          grep -o "hpthammer_$i: .*ret=-\?[0-9]*" $I/trace | sed 's/.*ret=//' | sort | uniq -c
        fi
        i=$((i+1))
      done
      """#

  static let teardownScript =
    locate + #"""

      i=0
      for f in "$@"; do
        E=$I/events/kprobes/hpthammer_$i
        echo 0 > $E/enable 2>/dev/null
        echo '!hist:keys=ret' > $E/trigger 2>/dev/null
        i=$((i+1))
      done
      rmdir $I 2>/dev/null
      i=0
      for f in "$@"; do
        echo "-:kprobes/hpthammer_$i" >> $T/kprobe_events 2>/dev/null
        i=$((i+1))
      done
      true
      """#

  /// Adds the probes; returns the counting method, or throws why tracing is not available.
  public func setUp(on target: Target) throws(TargetError) -> String {
    let r = target.run(["sh", "-c", Self.setupScript, "hpthammer-trace"] + functions, timeoutS: 60)
    let out = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    guard r.ok, out.hasPrefix("ok ") else {
      throw TargetError(
        out.isEmpty
          ? (r.lastLine.isEmpty ? "exit \(r.status.map(String.init) ?? "timeout")" : r.lastLine)
          : out)
    }
    return String(out.dropFirst(3))
  }

  /// Reads the counts (the probes stay until `tearDown`).
  public func collect(on target: Target) throws(TargetError) -> [String: [String: Int]] {
    let r = target.run(
      ["sh", "-c", Self.collectScript, "hpthammer-trace"] + functions, timeoutS: 60)
    guard r.ok else { throw TargetError("collecting the resize trace: \(r.lastLine)") }
    return Self.parse(r.stdout)
  }

  public func tearDown(on target: Target) {
    _ = target.run(["sh", "-c", Self.teardownScript, "hpthammer-trace"] + functions, timeoutS: 60)
  }

  /// "== function" sections of hist lines ("{ ret: -16 } hitcount: 3") or `uniq -c` lines
  /// ("      3 -16").
  static func parse(_ text: String) -> [String: [String: Int]] {
    var out: [String: [String: Int]] = [:]
    var current: String?
    for raw in text.split(separator: "\n") {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.hasPrefix("== ") {
        current = String(line.dropFirst(3))
        out[current!] = [:]
        continue
      }
      guard let f = current else { continue }
      if line.hasPrefix("{"), let close = line.firstIndex(of: "}") {
        let key = line[line.index(after: line.startIndex)..<close]
          .replacingOccurrences(of: "ret:", with: "").trimmingCharacters(in: .whitespaces)
        let count = line[close...].split(separator: " ").last.flatMap { Int($0) }
        if let count, Int(key) != nil { out[f]![key, default: 0] += count }
      } else {
        let parts = line.split(separator: " ")
        if parts.count == 2, let n = Int(parts[0]), Int(parts[1]) != nil {
          out[f]![String(parts[1]), default: 0] += n
        }
      }
    }
    return out
  }
}
