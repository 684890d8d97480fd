/// The results schema, one migration per change, the same SQL on SQLite (GRDB's migrator) and
/// PostgreSQL (PostgresBackend's table of applied migrations). Append new migrations; never
/// edit one that shipped: a database names the migrations it has, and one that names a
/// migration this build does not know was written by a newer HPTHammer and is left alone.
public enum Schema {
  public struct Migration: Sendable {
    public let id: String
    public let statements: [String]
  }

  public static let migrations: [Migration] = [
    Migration(
      id: "v1-runs-crashes-signatures",
      statements: [
        """
        CREATE TABLE runs (
          run_id TEXT PRIMARY KEY,
          complete BIGINT NOT NULL,
          started_at DOUBLE PRECISION NOT NULL,
          ended_at DOUBLE PRECISION,
          imported_at DOUBLE PRECISION NOT NULL,
          job TEXT NOT NULL,
          seed TEXT NOT NULL,
          backend TEXT NOT NULL,
          kernel TEXT NOT NULL,
          kernel_release TEXT,
          kernel_version TEXT,
          kernel_build_id TEXT,
          guest_kernel TEXT,
          host TEXT NOT NULL,
          cpu TEXT,
          platform TEXT,
          qemu_version TEXT,
          libvirt_version TEXT,
          hpthammer_version TEXT,
          hpthammer_commit TEXT,
          verdict TEXT NOT NULL,
          verdict_detail TEXT,
          error TEXT,
          interrupted BIGINT NOT NULL,
          reproduce TEXT,
          elapsed_s DOUBLE PRECISION,
          host_time_s DOUBLE PRECISION,
          time_to_crash_s DOUBLE PRECISION,
          resizes_attempted BIGINT,
          resizes_succeeded BIGINT,
          resizes_failed_unexpected BIGINT,
          prepare_p50_ms DOUBLE PRECISION,
          prepare_p99_ms DOUBLE PRECISION,
          commit_p50_ms DOUBLE PRECISION,
          commit_p99_ms DOUBLE PRECISION,
          resizes_per_s DOUBLE PRECISION,
          faults_per_s DOUBLE PRECISION,
          pages_verified BIGINT,
          mismatches BIGINT,
          timeline_events BIGINT,
          source_dir TEXT,
          run_json TEXT NOT NULL
        )
        """,
        "CREATE INDEX runs_started_at ON runs (started_at)",
        "CREATE INDEX runs_host ON runs (host)",
        """
        CREATE TABLE crashes (
          run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
          idx BIGINT NOT NULL,
          signature TEXT NOT NULL,
          title TEXT NOT NULL,
          frame TEXT,
          type TEXT,
          source TEXT,
          expected BIGINT NOT NULL,
          t_s DOUBLE PRECISION,
          report TEXT,
          PRIMARY KEY (run_id, idx)
        )
        """,
        "CREATE INDEX crashes_signature ON crashes (signature)",
        // The first run that brought a signature into this store: what makes a crash "new".
        """
        CREATE TABLE signatures (
          signature TEXT PRIMARY KEY,
          title TEXT NOT NULL,
          frame TEXT,
          first_run_id TEXT NOT NULL,
          recorded_at DOUBLE PRECISION NOT NULL
        )
        """,
      ]),
    // Bisections and verdicts: one row per study, keyed by its kind and directory (a bisection
    // resumed updates its row). `status` is running or ended; a running row whose process
    // (host, pid, pid_start) is gone reads as interrupted. The arguments and the result are
    // also kept whole as JSON text.
    Migration(
      id: "v2-studies",
      statements: [
        """
        CREATE TABLE studies (
          study_id TEXT PRIMARY KEY,
          kind TEXT NOT NULL,
          dir TEXT NOT NULL,
          started_at DOUBLE PRECISION NOT NULL,
          updated_at DOUBLE PRECISION NOT NULL,
          ended_at DOUBLE PRECISION,
          status TEXT NOT NULL,
          host TEXT NOT NULL,
          pid BIGINT,
          pid_start TEXT,
          resumes BIGINT NOT NULL,
          command TEXT NOT NULL,
          repo TEXT,
          good TEXT,
          bad TEXT,
          job TEXT,
          base TEXT,
          patched TEXT,
          confidence_asked DOUBLE PRECISION,
          arguments TEXT NOT NULL,
          outcome TEXT,
          confidence DOUBLE PRECISION,
          runs BIGINT,
          exit_code BIGINT,
          error TEXT,
          result TEXT,
          run_dirs TEXT
        )
        """,
        "CREATE INDEX studies_started_at ON studies (started_at)",
        "CREATE INDEX studies_kind ON studies (kind)",
      ]),
  ]

  /// Run columns in insert order (all but crashes, which have their own table).
  static let runColumns = [
    "run_id", "complete", "started_at", "ended_at", "imported_at", "job", "seed", "backend",
    "kernel", "kernel_release", "kernel_version", "kernel_build_id", "guest_kernel", "host", "cpu",
    "platform", "qemu_version", "libvirt_version", "hpthammer_version", "hpthammer_commit",
    "verdict", "verdict_detail", "error", "interrupted", "reproduce", "elapsed_s", "host_time_s",
    "time_to_crash_s", "resizes_attempted", "resizes_succeeded", "resizes_failed_unexpected",
    "prepare_p50_ms", "prepare_p99_ms", "commit_p50_ms", "commit_p99_ms", "resizes_per_s",
    "faults_per_s", "pages_verified", "mismatches", "timeline_events", "source_dir", "run_json",
  ]
}
