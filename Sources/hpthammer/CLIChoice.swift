import ArgumentParser
import HPTEngine
import HPTResults

/// An option whose values are an enum's raw values. A value it does not know is a usage error
/// (exit 2) that names the option and lists the allowed values; the help lists them too.
protocol CLIChoice: RawRepresentable<String>, CaseIterable, ExpressibleByArgument {
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
extension StudyRecord.Kind: ExpressibleByArgument, CLIChoice {}
extension BackendKind: ExpressibleByArgument, CLIChoice {}
