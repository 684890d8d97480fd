import Foundation

/// A value in a row or a statement's argument: the four kinds both SQLite and PostgreSQL
/// store the same way here (booleans are 0/1 integers, times are Unix seconds as doubles).
public enum SQLValue: Sendable, Equatable, Hashable {
  case null
  case int(Int64)
  case double(Double)
  case text(String)

  public var string: String? {
    switch self {
    case .text(let s): return s
    case .int(let i): return String(i)
    case .double(let d): return String(d)
    case .null: return nil
    }
  }
  public var int: Int64? {
    switch self {
    case .int(let i): return i
    case .double(let d): return Int64(d)
    case .text(let s): return Int64(s)
    case .null: return nil
    }
  }
  public var double: Double? {
    switch self {
    case .int(let i): return Double(i)
    case .double(let d): return d
    case .text(let s): return Double(s)
    case .null: return nil
    }
  }
}

extension SQLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
  public init(stringLiteral s: String) { self = .text(s) }
  public init(integerLiteral i: Int64) { self = .int(i) }
  init(_ s: String?) { self = s.map { .text($0) } ?? .null }
  init(_ d: Double?) { self = d.map { .double($0) } ?? .null }
  init(_ i: Int?) { self = i.map { .int(Int64($0)) } ?? .null }
  init(_ b: Bool) { self = .int(b ? 1 : 0) }
}

/// A result row by column name.
public typealias SQLRow = [String: SQLValue]

/// What the store needs of a database: statements with `?` placeholders and transactions.
/// The SQL it sends is the subset SQLite and PostgreSQL read alike (TEXT, BIGINT, DOUBLE
/// PRECISION, INSERT ... ON CONFLICT, RETURNING), so one store serves both.
public protocol SQLBackend: AnyObject, Sendable {
  /// "sqlite" or "postgres", for messages.
  var kind: String { get }
  /// Where it is: a file path, or a postgres:// URL without its password.
  var location: String { get }
  /// Runs `body` in one transaction: committed if it returns, rolled back if it throws.
  func transaction<T>(_ body: (any SQLConnection) throws -> T) throws -> T
  func close()
}

/// A connection inside a transaction.
public protocol SQLConnection {
  func execute(_ sql: String, _ arguments: [SQLValue]) throws
  func query(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow]
}

extension SQLConnection {
  func execute(_ sql: String) throws { try execute(sql, []) }
  func query(_ sql: String) throws -> [SQLRow] { try query(sql, []) }
}

/// Why the store cannot be used; the command line maps each to its exit code.
public enum StoreError: Error, CustomStringConvertible, Equatable {
  /// The database could not be opened or reached (125: could not test).
  case unreachable(String)
  /// The database was written by a newer HPTHammer (125: nothing is touched).
  case newerSchema(String)
  /// A run directory that is not one (2: bad input).
  case badRunDirectory(String)
  /// A --db, filter or name that makes no sense (2).
  case usage(String)
  /// A statement failed.
  case failed(String)

  public var description: String {
    switch self {
    case .unreachable(let s), .newerSchema(let s), .badRunDirectory(let s), .usage(let s),
      .failed(let s):
      return s
    }
  }
}
