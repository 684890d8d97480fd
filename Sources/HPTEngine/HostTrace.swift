import Foundation

/// Host-side evidence that the kernel's resize path ran and what it answered: kretprobes on
/// kvm_vm_ioctl_resize_hpt_prepare and _commit (kprobe_events), counted per return value in a
/// trace instance of the harness's own (a hist trigger where the kernel has CONFIG_HIST_TRIGGERS,
/// else the instance's trace buffer). The scripts are constants; function names reach them as
/// positional arguments, never as script text.
public struct HostTrace: Sendable {
  public static let resizeFunctions = [
    "kvm_vm_ioctl_resize_hpt_prepare", "kvm_vm_ioctl_resize_hpt_commit",
  ]
  public var functions: [String]
  public init(functions: [String] = Self.resizeFunctions) { self.functions = functions }

  /// What run.json records.
  public struct Result: Codable, Sendable, Equatable {
    /// Calls per function per return value (as the kernel returned it: 0, 100, -16...).
    public var calls: [String: [String: Int]]
    /// "hist" or "trace" (how they were counted); nil when tracing was not available.
    public var method: String?
    /// Why there are no counts (no kprobe_events, kvm_hv not loaded, not root...).
    public var unavailable: String?

    public init(calls: [String: [String: Int]], method: String? = nil, unavailable: String? = nil) {
      self.calls = calls
      self.method = method
      self.unavailable = unavailable
    }
  }
}
