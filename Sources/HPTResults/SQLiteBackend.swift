import Foundation
import GRDB

/// The embedded store: one SQLite file through GRDB, one migration per schema change
/// (Schema.swift). Several processes may write it at once: each
/// waits for the others' transactions (busy timeout) instead of failing.
public final class SQLiteBackend: SQLBackend, @unchecked Sendable {
  public let kind = "sqlite"
  public let location: String
  let queue: DatabaseQueue

  public init(path: String) throws(StoreError) {
    location = path
    let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
    do {
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    } catch {
      throw .unreachable("cannot create \(dir) for the results database: \(error)")
    }
    var config = Configuration()
    config.busyMode = .timeout(60)
    do {
      queue = try DatabaseQueue(path: path, configuration: config)
    } catch {
      throw .unreachable("cannot open the results database \(path): \(Self.describe(error))")
    }
    try migrate()
    // Write-ahead logging, set once the file is known to be ours and current (a newer
    // HPTHammer's file is never touched): fewer syncs per import (1,000 run directories
    // imported in 3 to 4 s instead of 14 s on a loaded machine), and readers never wait for a
    // writer. Commits stay fully synchronous.
    try useWAL()
  }

  /// Switching to WAL needs the file to itself, and SQLite answers BUSY at once there
  /// instead of calling the busy handler (8 processes opening a new file: 1 in 60 tries).
  /// So it waits here, as long as the busy timeout would; a file already in WAL is left be.
  func useWAL() throws(StoreError) {
    let deadline = Date().addingTimeInterval(60)
    while true {
      do {
        try queue.writeWithoutTransaction { db in
          if try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal" { return }
          _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
        }
        return
      } catch let e as DatabaseError
        where (e.resultCode == .SQLITE_BUSY || e.resultCode == .SQLITE_LOCKED) && Date() < deadline
      {
        usleep(50_000)
      } catch {
        throw .unreachable("\(location): cannot use write-ahead logging: \(Self.describe(error))")
      }
    }
  }

  /// Migrates in one IMMEDIATE transaction: reading which migrations are applied and
  /// applying the rest is atomic, so processes opening a new file at once migrate it once
  /// (GRDB's migrator reads first and writes in a later transaction: two importers both
  /// created the tables, and one failed). The table of applied migrations is GRDB's own,
  /// so files written before stay readable.
  func migrate() throws(StoreError) {
    let known = Schema.migrations.map(\.id)
    do {
      try queue.writeWithoutTransaction { db in
        try db.inTransaction(.immediate) {
          try db.execute(
            sql: "CREATE TABLE IF NOT EXISTS grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)"
          )
          let applied = try String.fetchSet(db, sql: "SELECT identifier FROM grdb_migrations")
          let unknown = applied.subtracting(known)
          if !unknown.isEmpty {
            throw StoreError.newerSchema(
              "\(location): written by a newer HPTHammer (schema migrations \(unknown.sorted().joined(separator: ", ")) unknown to this one); it is left as it is: use that HPTHammer, or give another --db"
            )
          }
          for m in Schema.migrations where !applied.contains(m.id) {
            for sql in m.statements { try db.execute(sql: sql) }
            try db.execute(
              sql: "INSERT INTO grdb_migrations (identifier) VALUES (?)", arguments: [m.id])
          }
          return .commit
        }
      }
    } catch let e as StoreError {
      throw e
    } catch {
      throw .unreachable("\(location): not a results database (\(Self.describe(error)))")
    }
  }

  public func transaction<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
    do {
      // BEGIN IMMEDIATE: a deferred transaction that reads, then writes, gets SQLITE_BUSY at
      // once (no busy wait) when another writer committed meanwhile; eight importers at once
      // on a loaded machine saw it.
      var result: T?
      try queue.writeWithoutTransaction { db in
        try db.inTransaction(.immediate) {
          result = try body(Connection(db: db))
          return .commit
        }
      }
      return result!
    } catch let e as StoreError {
      throw e
    } catch {
      throw StoreError.failed("\(location): \(Self.describe(error))")
    }
  }

  public func close() { try? queue.close() }

  static func describe(_ error: any Error) -> String {
    (error as? DatabaseError).map { "\($0.resultCode): \($0.message ?? "")" } ?? "\(error)"
  }

  struct Connection: SQLConnection {
    let db: Database

    func execute(_ sql: String, _ arguments: [SQLValue]) throws {
      try db.execute(sql: sql, arguments: Self.arguments(arguments))
    }

    func query(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow] {
      try Row.fetchAll(db, sql: sql, arguments: Self.arguments(arguments)).map { row in
        var r = SQLRow(minimumCapacity: row.count)
        for (name, v) in row {
          switch v.storage {
          case .null: r[name] = .null
          case .int64(let i): r[name] = .int(i)
          case .double(let d): r[name] = .double(d)
          case .string(let s): r[name] = .text(s)
          case .blob(let b): r[name] = .text(String(decoding: b, as: UTF8.self))
          }
        }
        return r
      }
    }

    static func arguments(_ values: [SQLValue]) -> StatementArguments {
      StatementArguments(
        values.map { v -> (any DatabaseValueConvertible)? in
          switch v {
          case .null: return nil
          case .int(let i): return i
          case .double(let d): return d
          case .text(let s): return s
          }
        })
    }
  }
}
