import Foundation
import PostgresNIO

/// The fleet's shared store: PostgreSQL through postgres-nio, the same schema as SQLite. One
/// connection per process; every call blocks its thread on NIO's event loops (no Swift
/// concurrency pool is involved, so any number of threads may use their own stores at once).
/// Migrations run under an advisory lock, so controllers starting together migrate once.
public final class PostgresBackend: SQLBackend, @unchecked Sendable {
  public let kind = "postgres"
  public let location: String
  let connection: PostgresConnection
  let logger = Logger(label: "hpthammer.results")
  private let lock = NSLock()

  /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require|verify-full]`;
  /// no HOST: the local server's socket in /var/run/postgresql (or `?host=DIR`). The password
  /// may come from $PGPASSWORD instead, to keep it out of command lines and CI files.
  public init(url: String) throws(StoreError) {
    let (config, where_) = try Self.configuration(url)
    location = where_
    do {
      connection = try PostgresConnection.connect(
        on: PostgresConnection.defaultEventLoopGroup.any(), configuration: config, id: 1,
        logger: logger
      ).wait()
    } catch {
      throw .unreachable(
        "cannot reach the results database \(where_): \(Self.describe(error)) (is the server up, and does it accept this user?)"
      )
    }
    try migrate()
  }

  static func configuration(_ url: String) throws(StoreError) -> (
    PostgresConnection.Configuration, String
  ) {
    guard let u = URLComponents(string: url),
      let user = u.user
        ?? ProcessInfo.processInfo
        .environment["USER"]
    else {
      throw .usage("--db \(url): not a postgres://USER@HOST/DATABASE URL")
    }
    let password = u.password ?? ProcessInfo.processInfo.environment["PGPASSWORD"]
    let database = u.path.hasPrefix("/") ? String(u.path.dropFirst()) : u.path
    let query = Dictionary(
      (u.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { a, _ in a })
    let host = u.host ?? ""
    let port = u.port ?? 5432
    var shown = "postgres://\(user)@\(host.isEmpty ? "" : host + ":\(port)")/\(database)"
    if host.isEmpty || host.hasPrefix("/") {
      let dir = query["host"] ?? (host.isEmpty ? "/var/run/postgresql" : host)
      shown += " (socket \(dir))"
      return (
        PostgresConnection.Configuration(
          unixSocketPath: "\(dir)/.s.PGSQL.\(port)", username: user, password: password,
          database: database.isEmpty ? nil : database), shown
      )
    }
    let tls: PostgresConnection.Configuration.TLS
    do {
      var t = TLSConfiguration.makeClientConfiguration()
      switch query["sslmode"] ?? "prefer" {
      case "disable": tls = .disable
      case "prefer", "allow":
        t.certificateVerification = .none
        tls = .prefer(try NIOSSLContext(configuration: t))
      case "require":
        t.certificateVerification = .none
        tls = .require(try NIOSSLContext(configuration: t))
      case "verify-ca", "verify-full": tls = .require(try NIOSSLContext(configuration: t))
      case let m:
        throw StoreError.usage(
          "--db \(shown): sslmode=\(m) is not one of disable, prefer, require, verify-full")
      }
    } catch let e as StoreError {
      throw e
    } catch {
      throw .usage("--db \(shown): TLS: \(error)")
    }
    return (
      PostgresConnection.Configuration(
        host: host, port: port, username: user, password: password,
        database: database.isEmpty ? nil : database, tls: tls), shown
    )
  }

  static let migrationLock: Int64 = 0x4850_5448_616d_6d72  // "HPTHammr"

  func migrate() throws(StoreError) {
    let known = Set(Schema.migrations.map(\.id))
    do {
      try transaction { c in
        _ = try c.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))")
        try c.execute(
          "CREATE TABLE IF NOT EXISTS hpthammer_migrations (id TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        let applied = Set(
          try c.query("SELECT id FROM hpthammer_migrations").compactMap { $0["id"]?.string })
        let unknown = applied.subtracting(known)
        guard unknown.isEmpty else {
          throw StoreError.newerSchema(
            "\(location): written by a newer HPTHammer (schema migrations \(unknown.sorted().joined(separator: ", ")) unknown to this one); it is left as it is: use that HPTHammer, or give another --db"
          )
        }
        for m in Schema.migrations where !applied.contains(m.id) {
          for sql in m.statements { try c.execute(sql) }
          try c.execute(
            "INSERT INTO hpthammer_migrations (id, applied_at) VALUES (?, ?)",
            [.text(m.id), .double(Date().timeIntervalSince1970)])
        }
      }
    } catch let e as StoreError {
      throw e
    } catch {
      throw .failed("\(location): migrating: \(error)")
    }
  }

  public func transaction<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
    lock.lock()
    defer { lock.unlock() }
    let c = Connection(connection: connection, logger: logger, location: location)
    try c.execute("BEGIN")
    do {
      let value = try body(c)
      try c.execute("COMMIT")
      return value
    } catch {
      try? c.execute("ROLLBACK")
      throw error
    }
  }

  private var closed = false

  /// Closes the connection (once; a store dropped without `close()` closes it then).
  public func close() {
    lock.lock()
    defer { lock.unlock() }
    guard !closed else { return }
    closed = true
    try? connection.close().wait()
  }

  deinit { close() }

  static func describe(_ error: any Error) -> String {
    guard let e = error as? PSQLError else { return "\(error)" }
    if let m = e.serverInfo?[.message] {
      return "\(m) (SQLSTATE \(e.serverInfo?[.sqlState] ?? "?"))"
    }
    if let u = e.underlying { return "\(u)" }
    return "\(e.code)"
  }

  struct Connection: SQLConnection {
    let connection: PostgresConnection
    let logger: Logger
    let location: String

    func execute(_ sql: String, _ arguments: [SQLValue]) throws {
      _ = try query(sql, arguments)
    }

    func query(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow] {
      var binds = PostgresBindings(capacity: arguments.count)
      for a in arguments {
        switch a {
        case .null: binds.appendNull()
        case .int(let i): binds.append(i)
        case .double(let d): binds.append(d)
        // PostgreSQL's text holds no NUL (a run.json may: "\u0000").
        case .text(let s):
          binds.append(s.contains("\0") ? s.replacingOccurrences(of: "\0", with: "\u{FFFD}") : s)
        }
      }
      let q = PostgresQuery(unsafeSQL: Self.numbered(sql), binds: binds)
      do {
        let result = try connection.query(q, logger: logger).wait()
        return try result.map { row in
          var r = SQLRow()
          for cell in row { r[cell.columnName] = try Self.value(cell) }
          return r
        }
      } catch {
        throw StoreError.failed("\(location): \(PostgresBackend.describe(error))")
      }
    }

    /// `?` placeholders as PostgreSQL's `$1, $2, ...` (the store's SQL has no `?` in literals).
    static func numbered(_ sql: String) -> String {
      var out = ""
      var n = 0
      for ch in sql {
        if ch == "?" {
          n += 1
          out += "$\(n)"
        } else {
          out.append(ch)
        }
      }
      return out
    }

    static func value(_ cell: PostgresCell) throws -> SQLValue {
      guard cell.bytes != nil else { return .null }
      switch cell.dataType {
      case .int8, .int4, .int2: return .int(try cell.decode(Int64.self))
      case .float8, .float4: return .double(try cell.decode(Double.self))
      case .bool: return .int(try cell.decode(Bool.self) ? 1 : 0)
      case .void: return .null
      default: return .text(try cell.decode(String.self))
      }
    }
  }
}
