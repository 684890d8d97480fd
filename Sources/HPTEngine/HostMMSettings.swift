import Foundation

/// The target host's own memory management turned against the guests for a run: KSM merging
/// and unmerging their pages, THP collapsing and splitting them (anonymous and shmem RAM). Each
/// moves or write-protects a guest page on the host, so the MMU notifier invalidates the HPTEs
/// that map it while resizes go on. Set when the run starts, put back as it was at its end;
/// run.json's figures say how much happened (KSM pages shared, THP collapses and splits).
public struct HostMMSettings: Sendable, Equatable {
  public var ksm = false
  public var thp = false
  public init() {}
  public var any: Bool { ksm || thp }
}
