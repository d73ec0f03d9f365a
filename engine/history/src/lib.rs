//! The history store: one SQLite database per state directory (`<state>/history.sqlite`) with
//! a schema version and migrations. It holds what outlives a run and must survive a crash:
//! approval requests and decisions ([`approvals`]), the notification outbox ([`outbox`]),
//! drift incidents with their time to recovery ([`incidents`]), and the runs themselves with
//! their tasks, gate verdicts, registry changes ([`runs`]) and per-column drift results ([`drift`]), which the payoff report
//! ([`report`]) and the web UI query. WAL, `synchronous=FULL` (rows copied from the JSON run
//! records: `NORMAL`), one transaction per step: a `kill -9` at any moment leaves it consistent.
//! The write-ahead log stays when a process closes the store (SQLite checkpoints it at 1,000
//! pages), so a short-lived `dagrun` does not copy and fsync its own writes on exit.

pub mod alive;
pub mod approvals;
mod compute;
pub mod drift;
pub mod incidents;
pub mod outbox;
pub mod report;
pub mod runs;
pub mod views;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, Transaction};

pub use approvals::{Approval, ApprovalState, Binding, DecideError, Decision, NewApproval};
pub use drift::{DriftColumn, DriftPoint, DriftRow};
pub use incidents::Incident;
pub use outbox::{Delivery, DeliveryState, Fact, Notification};
pub use report::{Report, ReportQuery};
pub use runs::{RegistryRow, RunRow, TaskRow, VerdictRow};

/// The schema version this build writes; older ones are migrated on open.
pub const SCHEMA_VERSION: i64 = 4;

/// The database's file name inside a state directory.
pub const FILE_NAME: &str = "history.sqlite";

/// Why the history store failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// SQLite reported an error.
    #[error("history {path}: {source}")]
    Sql {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The state directory could not be created.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database was written by a newer dagrun.
    #[error("history {path} has schema version {found}; this dagrun knows up to {SCHEMA_VERSION}: upgrade dagrun")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
}

/// Migrations: entry `n` brings the schema from version `n` to `n + 1`.
const MIGRATIONS: [&str; 4] = [
    "
CREATE TABLE approvals (
    id INTEGER PRIMARY KEY,
    workflow TEXT NOT NULL,
    workflow_path TEXT NOT NULL,
    task TEXT NOT NULL,
    partition TEXT NOT NULL DEFAULT '',
    run_id TEXT NOT NULL,
    registry TEXT NOT NULL,
    model TEXT NOT NULL,
    model_digest TEXT NOT NULL,
    verdict_digest TEXT NOT NULL,
    reasons TEXT NOT NULL,
    detail TEXT NOT NULL,
    requested_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    on_timeout TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_ms INTEGER,
    decided_by TEXT,
    note TEXT,
    sinks TEXT NOT NULL DEFAULT '[]',
    workflow_dir TEXT NOT NULL DEFAULT '',
    UNIQUE (workflow, task, model_digest, verdict_digest)
);
CREATE INDEX approvals_by_run ON approvals (run_id);
CREATE INDEX approvals_by_state ON approvals (state, expires_ms);
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    dedup TEXT NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    run_id TEXT,
    event TEXT NOT NULL,
    sink TEXT NOT NULL,
    workflow_dir TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL,
    last_error TEXT,
    delivered_ms INTEGER
);
CREATE INDEX notifications_due ON notifications (state, next_ms);
CREATE INDEX notifications_by_run ON notifications (run_id);
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    workflow TEXT NOT NULL,
    registry TEXT NOT NULL,
    model TEXT NOT NULL,
    detected_ms INTEGER NOT NULL,
    detected_run TEXT NOT NULL,
    alerts INTEGER NOT NULL DEFAULT 1,
    resolved_ms INTEGER,
    resolved_run TEXT,
    resolution TEXT
);
CREATE INDEX incidents_open ON incidents (registry, model, resolved_ms);
",
    runs::MIGRATION,
    drift::MIGRATION,
    runs::MIGRATION_4,
];

/// Why [`open_db`] failed.
#[derive(Debug)]
pub enum OpenError {
    /// SQLite reported an error.
    Sql(rusqlite::Error),
    /// The database's schema version is newer than the migrations know.
    TooNew(i64),
}

/// How long a connection waits for another process's lock on a dagrun database.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens a dagrun SQLite database the way every one is kept: WAL, `synchronous=FULL`, a 10 s
/// busy timeout, and its schema brought up to date: migration `n` takes `user_version` from `n`
/// to `n + 1` (the history store here, the daemon's event log). The pending ones are applied in
/// one transaction (one commit, so one sync of the log, where a new store has them all to
/// apply): all of them, or none.
pub fn open_db(path: &Path, migrations: &[&str]) -> Result<Connection, OpenError> {
    // Switching a new database to WAL while another process does the same can be refused at
    // once, without the busy handler (SQLite's deadlock rule): such a refusal is retried here
    // for as long as the busy timeout.
    let started = std::time::Instant::now();
    loop {
        let left = BUSY_TIMEOUT.saturating_sub(started.elapsed());
        match open_db_once(path, migrations, left) {
            Err(OpenError::Sql(e))
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(conn) => {
                conn.busy_timeout(BUSY_TIMEOUT).map_err(OpenError::Sql)?;
                return Ok(conn);
            }
            r => return r,
        }
    }
}

/// One attempt of [`open_db`], waiting at most `wait` for a lock.
fn open_db_once(path: &Path, migrations: &[&str], wait: std::time::Duration) -> Result<Connection, OpenError> {
    let conn = Connection::open(path).map_err(OpenError::Sql)?;
    conn.busy_timeout(wait).map_err(OpenError::Sql)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(OpenError::Sql)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(OpenError::Sql)?;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(OpenError::Sql)?;
    if found > migrations.len() as i64 {
        return Err(OpenError::TooNew(found));
    }
    let pending = &migrations[found.max(0) as usize..];
    if !pending.is_empty() {
        // Immediate: a second process opening the same new store waits here, then finds the
        // version this one committed, instead of applying the migrations again.
        let tx = rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(OpenError::Sql)?;
        let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(OpenError::Sql)?;
        if now > migrations.len() as i64 {
            return Err(OpenError::TooNew(now));
        }
        if now == migrations.len() as i64 {
            // Another process migrated it meanwhile: nothing to write.
            drop(tx);
            return Ok(conn);
        }
        for sql in &migrations[now.max(0) as usize..] {
            tx.execute_batch(sql).map_err(OpenError::Sql)?;
        }
        tx.pragma_update(None, "user_version", migrations.len() as i64).map_err(OpenError::Sql)?;
        tx.commit().map_err(OpenError::Sql)?;
    }
    Ok(conn)
}

/// The page cache of a connection to the history store, in KiB (as SQLite's `cache_size`
/// takes it: negative).
const PAGE_CACHE_KIB: i64 = -512;

/// The size the write-ahead log is cut back to when SQLite resets it (`journal_size_limit`).
const WAL_KEPT_BYTES: i64 = 4 << 20;

/// Runs `f` in one immediate transaction on `conn`.
fn transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Transaction<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

/// The history store of one state directory. Cheap to open; safe to share between threads
/// and with other processes (SQLite locking, busy timeout 10 s).
#[derive(Debug)]
pub struct History {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl History {
    /// Opens (creating or migrating) the store in state directory `state`.
    pub fn open(state: &Path) -> Result<History, HistoryError> {
        std::fs::create_dir_all(state).map_err(|source| HistoryError::Io { path: state.to_owned(), source })?;
        let path = state.join(FILE_NAME);
        match open_db(&path, &MIGRATIONS) {
            Ok(conn) => History::settled(conn, path),
            Err(OpenError::Sql(source)) => Err(HistoryError::Sql { path, source }),
            Err(OpenError::TooNew(found)) => Err(HistoryError::TooNew { path, found }),
        }
    }

    /// Opens the store in state directory `state` only when it exists as a dagrun leaves it
    /// (in WAL mode, its write-ahead log and shared-memory files beside it) and needs no
    /// migration, creating and changing nothing but the shared-memory index SQLite rebuilds (for
    /// a look ahead of a run whose workflow may yet prove invalid); `None` otherwise, or on an
    /// error, which [`History::open`] then meets and reports. A store refused here is closed
    /// without a checkpoint, so it is not changed either.
    pub fn open_current(state: &Path) -> Option<History> {
        use rusqlite::OpenFlags;
        let path = state.join(FILE_NAME);
        let beside = |ext: &str| state.join(format!("{FILE_NAME}-{ext}")).is_file();
        if !(beside("wal") && beside("shm")) {
            return None;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).ok()?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).ok()?;
        conn.busy_timeout(BUSY_TIMEOUT).ok()?;
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).ok()?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).ok()?;
        if !mode.eq_ignore_ascii_case("wal") || version != MIGRATIONS.len() as i64 {
            return None;
        }
        conn.pragma_update(None, "synchronous", "FULL").ok()?;
        History::settled(conn, path).ok()
    }

    /// The store on `conn`, set up as every connection to it is.
    fn settled(conn: Connection, path: PathBuf) -> Result<History, HistoryError> {
        // The write-ahead log is left in place when the store is closed: each short-lived
        // `dagrun` would otherwise copy its own writes into the database and fsync it on exit;
        // SQLite checkpoints once the log passes 1,000 pages instead.
        // A log grown by a large import is cut back to 4 MiB when SQLite next resets it.
        // A page cache of 512 KiB (SQLite's default is 2 MiB): writing a 10,000-task run's rows
        // filled the default one, 1.5 MiB of that run's peak memory, for no measurable gain in
        // time; pages it lets go are still in the system's file cache.
        match conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .and_then(|_| conn.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES))
            .and_then(|_| conn.pragma_update(None, "cache_size", PAGE_CACHE_KIB))
        {
            Ok(()) => Ok(History { conn: Mutex::new(conn), path }),
            Err(source) => Err(HistoryError::Sql { path, source }),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one immediate transaction.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, HistoryError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        transaction(&mut conn, f).map_err(|source| self.sql(source))
    }

    /// [`History::with`] for rows copied from the JSON run records: committed without waiting
    /// for the disk (`synchronous=NORMAL`; never corrupt in WAL mode). Like the records, which
    /// are written without `fsync` too, the last such commits may be lost in a power cut; the
    /// next ordinary commit makes them durable. The connection is back at `FULL` afterwards,
    /// also when `f` fails or panics.
    pub(crate) fn with_copies<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, HistoryError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| self.sql(e))?;
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| transaction(&mut conn, f)));
        let reset = conn.pragma_update(None, "synchronous", "FULL");
        let out = out.unwrap_or_else(|p| std::panic::resume_unwind(p)).map_err(|e| self.sql(e))?;
        // Committed: a connection that stayed at NORMAL would be worse than a reported error.
        reset.map(|()| out).map_err(|e| self.sql(e))
    }

    pub(crate) fn sql(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Sql { path: self.path.clone(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_creates_and_reopens_at_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        assert!(h.path().ends_with(FILE_NAME));
        drop(h);
        let h = History::open(dir.path()).unwrap();
        let v: i64 = h.with(|tx| tx.pragma_query_value(None, "user_version", |r| r.get(0))).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn a_connection_keeps_a_512_kib_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let kib: i64 = h.with(|tx| tx.pragma_query_value(None, "cache_size", |r| r.get(0))).unwrap();
        assert_eq!(kib, -512, "SQLite's default is -2000 (2 MiB)");
    }

    /// Every file in `dir` with its size and mtime; of the shared-memory index (which every
    /// connection maps and rebuilds after the last one closed) its presence only.
    fn files(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
        let mut out: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                if e.as_ref().unwrap().path().to_string_lossy().ends_with("-shm") {
                    return (e.unwrap().path(), 0, std::time::SystemTime::UNIX_EPOCH);
                }
                let (path, meta) = (e.as_ref().unwrap().path(), e.unwrap().metadata().unwrap());
                (path, meta.len(), meta.modified().unwrap())
            })
            .collect();
        out.sort();
        out
    }

    /// The pending migrations are applied together or not at all: one that fails leaves the
    /// store at the version it had, without what the migrations before it made.
    #[test]
    fn pending_migrations_apply_all_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        drop(open_db(&path, &["CREATE TABLE a (x);"]).unwrap());
        let bad = ["CREATE TABLE a (x);", "CREATE TABLE b (x);", "CREATE TABLE c (x); NOT SQL"];
        assert!(matches!(open_db(&path, &bad), Err(OpenError::Sql(_))));
        let conn = open_db(&path, &bad[..1]).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!((version, tables), (1, vec!["a".to_owned()]));
        drop(conn);
        let conn = open_db(&path, &bad[..2]).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 2);
        assert!(matches!(open_db(&path, &bad[..1]), Err(OpenError::TooNew(2))));
    }

    /// Processes that open a new store at once (a run and `dagrun ui`, say) all get it whole:
    /// the first migrates it, the others wait for it and find it current.
    #[test]
    fn a_new_store_opened_at_once_by_many_is_migrated_once() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(FILE_NAME);
            let opened: Vec<_> = std::thread::scope(|s| {
                let all: Vec<_> = (0..4).map(|_| s.spawn(|| open_db(&path, &MIGRATIONS).map(drop))).collect();
                all.into_iter().map(|t| t.join().unwrap()).collect()
            });
            assert!(opened.iter().all(Result::is_ok), "{opened:?}");
            let conn = open_db(&path, &MIGRATIONS).unwrap();
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(version, MIGRATIONS.len() as i64);
        }
    }

    #[test]
    fn open_current_creates_and_migrates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(History::open_current(dir.path()).is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing created");
        // A store an older dagrun left (one migration behind), its write-ahead log not yet
        // copied into it: not opened, not migrated, not checkpointed on close.
        let old = open_db(&dir.path().join(FILE_NAME), &MIGRATIONS[..MIGRATIONS.len() - 1]).unwrap();
        old.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).unwrap();
        old.execute_batch("CREATE TABLE scratch (x); INSERT INTO scratch VALUES (1);").unwrap();
        drop(old);
        let before = files(dir.path());
        assert_eq!(before.len(), 3, "the database, its log and shared memory: {before:?}");
        assert!(History::open_current(dir.path()).is_none());
        assert_eq!(files(dir.path()), before, "nothing changed");
        let h = History::open(dir.path()).unwrap();
        drop(h);
        // Current, but closed with a checkpoint (another SQLite client): no log, no index.
        let other = tempfile::tempdir().unwrap();
        drop(open_db(&other.path().join(FILE_NAME), &MIGRATIONS).unwrap());
        let closed = files(other.path());
        assert_eq!(closed.len(), 1, "{closed:?}");
        assert!(History::open_current(other.path()).is_none());
        assert_eq!(files(other.path()), closed, "nothing created");
        let h = History::open_current(dir.path()).expect("a current store");
        let (v, kib): (i64, i64) = h
            .with(|tx| {
                Ok((
                    tx.pragma_query_value(None, "user_version", |r| r.get(0))?,
                    tx.pragma_query_value(None, "cache_size", |r| r.get(0))?,
                ))
            })
            .unwrap();
        assert_eq!((v, kib), (SCHEMA_VERSION, -512));
    }

    #[test]
    fn a_newer_schema_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        h.with(|tx| tx.pragma_update(None, "user_version", 99)).unwrap();
        drop(h);
        let e = History::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("schema version 99") && e.contains("upgrade dagrun"), "{e}");
    }
}
