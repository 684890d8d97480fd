/// syzkaller's crash type for a format: fixed, or derived from a sanitizer's bug and access.
enum CrashTypeRule: Sendable, Hashable {
  case fixed(String)
  /// "KASAN-USE-AFTER-FREE-READ", "KASAN-READ", "KASAN-INVALID-FREE" from the bug class and
  /// access captures.
  case sanitizer(prefix: String, bug: Int, access: Int?)
}

/// Where a format's guilty frame comes from.
enum FrameSource: Sendable, Hashable {
  case none
  case stack(StackRecipe)
  /// The first line after a line containing `after` (or after the header when empty) that
  /// matches one of `patterns`; capture 0 is the function. Lockdep prints "at: func" lines.
  case line(after: String, patterns: [LinePattern])
}

/// One way a crash header can read, and how to title it (syzkaller's `oopsFormat`). A class:
/// building a report borrows one reference instead of copying every field.
final class OopsFormat: Sendable, Hashable {
  let id: String
  /// Must match the header line.
  let line: LinePattern
  /// Must each match some later report line, in order; their captures follow the header's.
  let extra: [LinePattern]
  /// "$1".."$9" are captures, "$F" the guilty frame ("corrupted" when none is found).
  let title: String
  let kind: CrashKind
  let type: CrashTypeRule
  let frame: FrameSource
  /// The header alone means the report is damaged (a second printk line was lost).
  let alwaysCorrupted: Bool
  /// Reports of this format carry no stack, so its absence is not corruption.
  let noStackTrace: Bool
  /// Reports end at a "=====" rule line (sanitizers print one after the report).
  let endsAtRule: Bool
  /// A capture holding a fault address: below 64 KiB (powerpc's page size) the fault is a
  /// NULL dereference, titled with `nullTitle`.
  let lowAddress: Int?
  let nullTitle: String?

  init(
    _ id: String, _ line: String, extra: [String] = [], title: String, kind: CrashKind,
    type: CrashTypeRule, frame: FrameSource = .stack(StackRecipe()), corrupted: Bool = false,
    noStack: Bool = false, lowAddress: Int? = nil, nullTitle: String? = nil
  ) {
    self.id = id
    self.line = LinePattern(line)
    self.extra = extra.map(LinePattern.init)
    self.title = title
    self.kind = kind
    self.type = type
    self.frame = frame
    self.alwaysCorrupted = corrupted
    self.noStackTrace = noStack
    self.lowAddress = lowAddress
    self.nullTitle = nullTitle
    // KASAN, KMSAN, KFENCE, KCSAN and UBSAN close their reports with a rule of '='.
    endsAtRule =
      [.kasan, .kmsan, .kfence, .kcsan, .ubsan].contains(kind) && line.hasPrefix("BUG: K")
      || kind == .ubsan
  }

  static func == (a: OopsFormat, b: OopsFormat) -> Bool {
    a.id == b.id && a.line == b.line && a.extra == b.extra && a.title == b.title
      && a.kind == b.kind && a.type == b.type && a.frame == b.frame
  }

  func hash(into hasher: inout Hasher) {
    hasher.combine(id)
    hasher.combine(title)
  }
}

/// A family of crashes sharing a cheap header substring (syzkaller's `oops`).
struct OopsPattern: Sendable, Hashable {
  var id: String
  /// Checked on every line; must be a plain substring so the scan stays fast.
  var headers: [[UInt8]]
  var formats: [OopsFormat]
  /// Lines that contain the header but are not crashes ("ODEBUG:", sshd's "WARNING: ...").
  var suppressions: [LinePattern]
  /// A line a crash prints after its own header ("Oops: ...", "Kernel panic - not syncing"):
  /// while a report is in progress it continues that report instead of starting one.
  var followsReport: Bool
  /// A consequence of whatever crash is in progress, whichever CPU or task prints it (a panic,
  /// a double fault while handling a fault): it never ends a report in progress (syzkaller's
  /// `reportStartIgnores`).
  var neverEndsReport: Bool

  init(
    _ id: String, header: String? = nil, headers: [String] = [], followsReport: Bool = false,
    neverEndsReport: Bool = false, suppress: [String] = [], _ formats: [OopsFormat]
  ) {
    self.neverEndsReport = neverEndsReport
    self.id = id
    self.headers = (headers + (header.map { [$0] } ?? [])).map { Array($0.utf8) }
    self.formats = formats
    self.suppressions = suppress.map(LinePattern.init)
    self.followsReport = followsReport
  }
}
