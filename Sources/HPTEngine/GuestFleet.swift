import Foundation
import HPTRandom
import KVMHost
import KernelLog

/// A backend's guests as the one `Runner` drives them: the simulated kernel's and raw
/// /dev/kvm's VMs (IoctlFleet), libvirt's domains (HPTLibvirt's LibvirtFleet). The Runner owns
/// what every backend shares: the run directory, the hammers, the host's log and the host
/// monitor (hang, recovery, trace), the findings and run.json. A fleet brings its guests up,
/// gives each a resize driver, adds the agents only it has, and says what to name at the end.
public protocol GuestFleet: AnyObject, Sendable {
  /// The agents' scheduler and the run's clock (the simulator's, or threads and real time).
  var executor: any AgentExecutor { get }
  /// Opens the host under test (a target, a libvirt connection); after it `hostLog`,
  /// `machine` and `memoryHost` are known. What it throws is the run's error.
  func open(_ run: Runner) throws
  /// The host kernel's log and the name its reports carry; nil when it cannot be read.
  var hostLog: (source: any KernelLogSource, origin: LogOrigin)? { get }
  /// The host under test when it is a machine of its own (a remote host, the lab).
  var machine: (any HostMachine)? { get }
  /// Where KSM and THP are turned on for memory_load.host_mm (nil: nowhere).
  var memoryHost: (any HostMachine)? { get }
  /// Whether a host that answers nothing and prints nothing for hung_after_s is a hang the
  /// Runner watches for while the guests run.
  var watchesHostForHang: Bool { get }
  /// The channel to the host that closed mid-run (hpthammer-hostd's), named; nil while it is
  /// open or for a fleet with none. With no crash on the host's log, the Runner then finds out
  /// whether the host hung or only the channel died.
  var lostChannel: String? { get }
  /// The host's counters, for the stats line and run.json's figures.
  var statistics: [String: Int] { get }
  /// Creates and boots the guests: one resize driver each, with its agents.
  func startGuests(_ run: Runner) throws -> [FleetGuest]
  /// Agents of the fleet as a whole: VM lifecycle churn, watchdogs, injected faults.
  func agents(_ run: Runner) -> [Agent]
  /// The agents have stopped: close the guests of a live host, read their last counters.
  func stop(_ run: Runner)
  /// After the host's evidence: remove what the run created.
  func cleanUp(_ run: Runner)
  /// The kernel and host run.json names, and the fleet's own figures.
  func end(_ run: Runner) -> FleetEnd
}

/// One guest as a fleet hands it to the Runner.
public struct FleetGuest {
  public var driver: any ResizeDriver
  /// The hammer's generator: the fleet's, so that a seed's split order stays its own.
  public var rng: SplitMix64
  /// Agents scheduled before the guest's hammer (its vCPUs) and after it (its loads).
  public var before: [Agent]
  public var after: [Agent]

  public init(driver: any ResizeDriver, rng: SplitMix64, before: [Agent] = [], after: [Agent] = [])
  {
    self.driver = driver
    self.rng = rng
    self.before = before
    self.after = after
  }
}

/// What run.json names at the end of a run.
public struct FleetEnd: Sendable {
  public var kernel: String
  public var kernelRelease: String
  /// The host under test when it is not this machine; nil for the simulator.
  public var target: String?
  public var figures: [String: Int]

  public init(kernel: String, kernelRelease: String, target: String?, figures: [String: Int]) {
    self.kernel = kernel
    self.kernelRelease = kernelRelease
    self.target = target
    self.figures = figures
  }
}
