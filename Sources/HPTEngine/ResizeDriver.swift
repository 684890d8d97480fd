import KVMHost

/// How a guest's HPT is taken from one order to another: one protocol for every backend, so
/// that the one Hammer owns the policy walk, the budget, the counters and what counts as an
/// expected answer. The ioctl driver (IoctlResizeDriver: PREPARE/COMMIT on the VM fd) and the
/// agent driver (AgentResizeDriver: the guest's own hpt_order) implement it. A driver does
/// only the policies it lists; a job asking another is refused when it loads (Job.swift).
public protocol ResizeDriver: AnyObject {
  /// The policies this driver can do.
  static var policies: Set<ResizePolicy> { get }
  var guestName: String { get }
  /// The guest's order when the hammer starts (the boot order unless the guest says).
  func startOrder(boot: UInt32) -> UInt32
  /// Whether the guest runs now; the hammer waits for it (a guest that never does is a
  /// finding).
  var guestRunning: Bool { get }

  /// grow, shrink, same-order, random-walk, jump: PREPARE until ready, then COMMIT.
  func resize(from: UInt32, to: UInt32) -> ResizeOutcome
  /// PREPARE `to`, then (by `choose()` in 0..<3) cancel it, switch to `other` and cancel, or
  /// COMMIT before the worker is done.
  func cancelDuringPrepare(to: UInt32, other: UInt32, choose: () -> Int) -> ResizeOutcome
  /// COMMIT with nothing prepared.
  func commitWithoutPrepare(to: UInt32) -> ResizeOutcome
  /// PREPARE and COMMIT before any vCPU ran.
  func commitBeforeRun(at: UInt32) -> ResizeOutcome
  /// Reset the guest as QEMU does (the HPT back at `boot`).
  func reboot(to boot: UInt32, budgetSpent: () -> Bool) -> ResizeOutcome
  /// What can be seen of a guest that stopped running (where its vCPUs are, whether they
  /// leave KVM_RUN when kicked), to tell the host's kernel from the guest; nil if nothing.
  func stuckGuestEvidence() -> String?
}

extension ResizeDriver {
  public func stuckGuestEvidence() -> String? { nil }
  // The policies a driver does not list never reach it: the job was refused at load.
  public func cancelDuringPrepare(to: UInt32, other: UInt32, choose: () -> Int) -> ResizeOutcome {
    preconditionFailure("\(Self.self) cannot cancel during PREPARE (refused at job load)")
  }
  public func commitWithoutPrepare(to: UInt32) -> ResizeOutcome {
    preconditionFailure("\(Self.self) cannot COMMIT without PREPARE (refused at job load)")
  }
  public func commitBeforeRun(at: UInt32) -> ResizeOutcome {
    preconditionFailure("\(Self.self) cannot COMMIT before run (refused at job load)")
  }
  public func reboot(to boot: UInt32, budgetSpent: () -> Bool) -> ResizeOutcome {
    preconditionFailure("\(Self.self) cannot reboot the guest (refused at job load)")
  }
}

/// When a resize's steps happened (host clock), for the latency histograms and the timeline.
public struct ResizeTimings: Sendable, Equatable {
  /// PREPARE to ready, COMMIT (nil: not measured).
  public var prepareNs: UInt64?
  public var commitNs: UInt64?
  /// When the resize ended.
  public var atNs: UInt64

  public init(prepareNs: UInt64?, commitNs: UInt64?, atNs: UInt64) {
    self.prepareNs = prepareNs
    self.commitNs = commitNs
    self.atNs = atNs
  }
}

/// What one driver step came to; the Hammer counts and classifies it.
public enum ResizeOutcome: Sendable, Equatable {
  /// The HPT is at the new order (timings nil: a step that is not a timed resize).
  case committed(ResizeTimings?)
  /// The kernel (or the guest) refused at `op`; ExpectedAnswers says whether it had to.
  /// Timings: PREPARE got ready before a refused COMMIT.
  case refused(op: String, errno: Errno, timings: ResizeTimings?)
  /// An answer that is wrong in itself (success where the kernel must refuse, no answer).
  case wrong(op: String, answer: String)
  /// Cancelled on purpose: expected.
  case cancelled
  /// A refusal or silence the driver knows a benign cause for (`why`, e.g. "near hotplug").
  case excused(op: String, answer: String, why: String)
  /// The guest was reset: its HPT is back at the boot order.
  case reset
  /// Nothing to count (the budget ran out while the driver waited).
  case idle
  /// The job cannot run on this guest (resizing disabled): the run ends with this error.
  case configError(String)
  /// The host went down (timings: PREPARE got ready before the COMMIT it died in), or the
  /// run is stopping: the hammer stops.
  case hostDown(ResizeTimings? = nil)
  case stopping
}

/// The answers the kernel must give, for every backend: a refusal listed here is expected, any
/// other is a finding. One row per rule: the operation, the errno, and when it applies.
enum ExpectedAnswers {
  struct Row {
    var op: String
    var errno: Errno
    /// nil: whatever the policy.
    var policy: ResizePolicy?
    var when: @Sendable (_ from: UInt32, _ to: UInt32) -> Bool
    var why: String
  }

  static let rows: [Row] = [
    Row(
      op: "PREPARE", errno: .ENOMEM, policy: nil, when: { _, _ in true },
      why: "the host could not allocate the new HPT"),
    Row(
      op: "COMMIT", errno: .ENOSPC, policy: nil, when: { from, to in to < from },
      why: "two bolted HPTEs collide in the smaller table"),
    Row(
      op: "COMMIT", errno: .EBUSY, policy: .cancelDuringPrepare, when: { _, _ in true },
      why: "COMMIT while the PREPARE worker still allocates"),
    Row(
      op: "COMMIT", errno: .ENXIO, policy: .commitWithoutPrepare, when: { _, _ in true },
      why: "nothing prepared"),
    Row(
      op: "hpt_order", errno: .ENOSPC, policy: nil, when: { from, to in to < from },
      why: "bolted collision on a shrink"),
    Row(
      op: "hpt_order", errno: .EINVAL, policy: nil,
      when: { _, to in !HPTOrder.validRange.contains(to) }, why: "order outside 18..46"),
    Row(
      op: "hpt_order", errno: .EPERM, policy: nil, when: { from, to in to > from },
      why: "QEMU's limit (RAM order + 1)"),
  ]

  /// `beforeRun`: COMMIT before any vCPU ran, a step of its own rather than a policy of the
  /// walk; mmu_ready is clear, so the kernel WARNs ("This shouldn't be possible") and answers
  /// EIO.
  static func expected(
    op: String, errno: Errno, policy: ResizePolicy?, from: UInt32, to: UInt32,
    beforeRun: Bool = false
  ) -> Bool {
    if beforeRun { return op == "COMMIT" && errno == .EIO }
    return rows.contains {
      $0.op == op && $0.errno == errno && ($0.policy == nil || $0.policy == policy)
        && $0.when(from, to)
    }
  }
}

extension ResizePolicy {
  /// What a guest resizing itself can do (it writes the order to hpt_order; its kernel asks
  /// for PREPARE and COMMIT together): the libvirt backend's AgentResizeDriver.
  public static let orderChanges: Set<ResizePolicy> = [
    .grow, .shrink, .sameOrder, .randomWalk, .jump,
  ]
}

extension BackendKind {
  /// What this backend's resize driver can do (its `policies`): the VM fd's ioctls every policy,
  /// a guest resizing itself only order changes.
  public var resizePolicies: Set<ResizePolicy> {
    self == .libvirt ? ResizePolicy.orderChanges : IoctlResizeDriver.policies
  }
}
