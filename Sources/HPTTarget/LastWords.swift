import Foundation
import HPTEngine
import KernelLog

/// What a crashed kernel left for after the reboot, read once the target answers again:
/// pstore's dumps (ramoops, EFI, powerpc's nvram on OPAL or RTAS), the previous boot's kernel
/// journal, and kdump's vmcore-dmesg. Each source found is saved to the run directory as
/// host-lastwords-SOURCE.txt, scanned by the detector, and named in every report it yields;
/// a source the host does not have is said so, with the reason.
struct LastWords {
  struct Source: Sendable, Equatable {
    var name: String  // pstore, journal, vmcore-dmesg
    /// nil when the source had nothing; else the text read.
    var text: String?
    /// Why it had nothing (not mounted, no journal of the previous boot, ...).
    var absent: String?
  }

  /// Prints one section per source: "@@source NAME" then its text or "@@absent REASON".
  /// pstore's files are removed once read (as systemd-pstore does) so that the next run does
  /// not report this crash again.
  static let script = #"""
    echo "@@source pstore"
    d=/sys/fs/pstore
    grep -qw pstore /proc/filesystems 2>/dev/null || modprobe pstore 2>/dev/null
    if ! grep -qw pstore /proc/filesystems 2>/dev/null; then
      echo "@@absent pstore is not in this kernel (no pstore in /proc/filesystems: CONFIG_PSTORE off, or its module not loadable)"; d=
    elif ! grep -q " $d pstore " /proc/mounts 2>/dev/null; then
      mount -t pstore pstore $d 2>/dev/null || { echo "@@absent pstore cannot be mounted on $d"; d=; }
    fi
    if [ -n "$d" ]; then
      backend=$(cat /sys/module/pstore/parameters/backend 2>/dev/null)
      case "$backend" in "(null)") backend=;; esac
      set -- $d/dmesg-*
      if [ -e "$1" ]; then
        for f in "$@"; do echo "@@file ${f##*/}"; cat "$f"; rm -f "$f"; done
      elif [ -z "$backend" ]; then
        # Why none registered, in the kernel's words (powerpc's NVRAM, ramoops).
        why=$(dmesg 2>/dev/null | grep -E 'nvram: |ramoops|pstore: ' | head -n 1 | sed 's/^\(\[[^]]*\] *\)*//')
        echo "@@absent no pstore backend registered${why:+ (the kernel said: $why)}"
      else
        echo "@@absent no dumps in $d (pstore backend: ${backend:-none registered})"
      fi
    fi
    echo "@@source journal"
    if command -v journalctl >/dev/null 2>&1; then
      out=$(journalctl -k -b -1 -o short-monotonic --no-pager 2>&1 | tail -n 5000)
      case "$out" in
        *"Specifying boot ID or boot offset has no effect"*|*"No journal boot entry found"*|*"Data from the specified boot"*|"") echo "@@absent no journal of the previous boot (is the journal persistent?)";;
        *) printf '%s\n' "$out";;
      esac
    else
      echo "@@absent no journalctl on the host"
    fi
    echo "@@source vmcore-dmesg"
    v=$(ls -t /var/crash/*/vmcore-dmesg.txt /var/crash/*/dmesg.* 2>/dev/null | head -n 1)
    if [ -n "$v" ]; then echo "@@file $v"; cat "$v"; else echo "@@absent no vmcore-dmesg under /var/crash (kdump not set up)"; fi
    """#

  /// Splits the script's output into sources; pstore's files stay as "@@file NAME" sections.
  static func parse(_ output: String) -> [Source] {
    var sources: [Source] = []
    for block in output.components(separatedBy: "@@source ").dropFirst() {
      let nl = block.firstIndex(of: "\n") ?? block.endIndex
      let name = String(block[..<nl]).trimmingCharacters(in: .whitespaces)
      let body = nl < block.endIndex ? String(block[block.index(after: nl)...]) : ""
      if body.hasPrefix("@@absent ") {
        let why = body.dropFirst("@@absent ".count).prefix { $0 != "\n" }
        sources.append(Source(name: name, text: nil, absent: String(why)))
      } else if body.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
        sources.append(Source(name: name, text: nil, absent: "nothing read"))
      } else {
        sources.append(Source(name: name, text: body, absent: nil))
      }
    }
    return sources
  }

  /// The crash reports in one source's text.
  static func reports(in s: Source, host: String) -> [CrashReport] {
    guard let text = s.text else { return [] }
    let origin = LogOrigin.host(host)
    if s.name == "pstore" {
      var parts: [(name: String, text: String, modified: Date)] = []
      for f in text.components(separatedBy: "@@file ").dropFirst() {
        let nl = f.firstIndex(of: "\n") ?? f.endIndex
        let body = nl < f.endIndex ? String(f[f.index(after: nl)...]) : ""
        parts.append((String(f[..<nl]), body, .distantPast))
      }
      let records = Pstore.assemble(parts, origin: origin).flatMap(\.records)
      return CrashDetector().scan(records: records, origin: origin)
    }
    let body = text.hasPrefix("@@file ") ? String(text.drop { $0 != "\n" }.dropFirst()) : text
    return CrashDetector().scan(body, origin: origin)
  }

  /// Reads the target's last words into `outDir`; returns the reports found (each marked with
  /// its source) and one line per source for the run's notes.
  static func collect(from target: Target, into outDir: URL) -> (
    reports: [(source: String, report: CrashReport)], lines: [String]
  ) {
    let r = target.run(["sh", "-c", script], timeoutS: 60)
    guard r.ok || r.stdout.contains("@@source") else {
      return ([], ["last words: could not be read from \(target.name): \(r.lastLine)"])
    }
    var found: [(String, CrashReport)] = []
    var lines: [String] = []
    for s in parse(r.stdout) {
      guard let text = s.text else {
        lines.append("last words, \(s.name): none (\(s.absent ?? "?"))")
        continue
      }
      let file = "host-lastwords-\(s.name).txt"
      try? Data(text.utf8).write(to: outDir.appendingPathComponent(file))
      let reports = reports(in: s, host: target.name)
      found += reports.map { (s.name, $0) }
      lines.append("last words, \(s.name): \(reports.count) crash report(s), saved in \(file)")
    }
    return (found, lines)
  }
}
