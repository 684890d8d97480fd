import ArgumentParser
import HPTEngine
import HPTResults

/// An option whose values are an enum's raw values, read by `parse` as the option's
/// `transform:` (so the message is ours, not ArgumentParser's own for ExpressibleByArgument). A
/// value it does not know is a usage error (exit 2) that names the option and lists the allowed
/// values; each option's help text lists them too.
protocol CLIChoice: RawRepresentable<String>, CaseIterable {
  /// Said after the allowed values when a value is refused.
  static var hint: String { get }
}

extension CLIChoice {
  static var hint: String { "" }

  /// An `@Option`'s `transform:` (ArgumentParser's error names the option and the value).
  static func parse(_ value: String) throws -> Self {
    guard let v = Self(rawValue: value) else {
      throw ValidationError(
        "allowed: \(allCases.map(\.rawValue).joined(separator: ", "))\(hint)")
    }
    return v
  }
}

/// `results --verdict`.
enum VerdictChoice: String, CLIChoice { case pass, bug, error }
/// `results studies --status`.
enum StudyStatusChoice: String, CLIChoice { case running, ended, interrupted }
/// `run --target` and `verdict --target`: a remote host is described in the job's target:
/// section, not on the command line.
enum RunTargetChoice: String, CLIChoice {
  case local, lab
  static let hint = " (a remote host is described in the job's target: section)"
  var kind: TargetKind { self == .lab ? .lab : .local }
}
extension StudyRecord.Kind: CLIChoice {}
extension BackendKind: CLIChoice {}
