//! The durable event log (SQLite, `<state>/events.sqlite`): every event is written, with an
//! idempotency key, before it is acted on; runs link the events they handle. A `kill -9` at any
//! moment leaves it consistent (WAL, `synchronous=FULL`, one transaction per step).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

/// The schema version this build writes; older ones are migrated on open.
pub const SCHEMA_VERSION: i64 = 1;

/// The log's file name inside a state directory.
pub const FILE_NAME: &str = "events.sqlite";

/// Why the event log failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// SQLite reported an error.
    #[error("event log {path}: {source}")]
    Sql {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The database was written by a newer dagrun.
    #[error("event log {path} has schema version {found}; this dagrun knows up to {SCHEMA_VERSION}: upgrade dagrun")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
}

/// What started an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A cron tick.
    Tick,
    /// A file landed.
    File,
    /// A webhook delivery.
    Webhook,
    /// `dagrun trigger`.
    Manual,
    /// Another workflow's task outcome.
    Outcome,
}

impl Source {
    /// Lower-case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Tick => "tick",
            Source::File => "file",
            Source::Webhook => "webhook",
            Source::Manual => "manual",
            Source::Outcome => "outcome",
        }
    }

    fn parse(s: &str) -> Source {
        match s {
            "tick" => Source::Tick,
            "file" => Source::File,
            "webhook" => Source::Webhook,
            "outcome" => Source::Outcome,
            _ => Source::Manual,
        }
    }
}

/// An event about to be recorded.
#[derive(Debug, Clone, Serialize)]
pub struct NewEvent {
    /// The workflow's name.
    pub workflow: String,
    /// What started it.
    pub source: Source,
    /// Idempotency key: the same key for the same workflow is one event, however often it is
    /// recorded (schedule + tick time; file + content; webhook delivery id or payload digest).
    pub key: String,
    /// The partition it names (a key or an instant), if any.
    pub partition: Option<String>,
    /// What to show about it (path, digest, reason, ...).
    pub detail: serde_json::Value,
    /// When it was received (Unix ms).
    pub at_ms: i64,
}

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for a run.
    Pending,
    /// A run for it is in progress.
    Running,
    /// Its run finished (whatever the outcome).
    Done,
    /// Not run (e.g. a run was in progress and the workflow skips events meanwhile).
    Skipped,
}

impl State {
    /// Lower-case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Done => "done",
            State::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "running" => State::Running,
            "done" => State::Done,
            "skipped" => State::Skipped,
            _ => State::Pending,
        }
    }
}

/// A recorded event: what was recorded, and where it stands.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Its id in the log.
    pub id: i64,
    /// The event as recorded (its fields appear at the top level in JSON).
    #[serde(flatten)]
    pub event: NewEvent,
    /// Where it stands.
    pub state: State,
    /// The run that handled (or handles) it.
    pub run_id: Option<String>,
    /// The run's outcome, or why it was skipped.
    pub outcome: Option<String>,
}

/// The result of recording an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The event's id (the earlier one's, for a duplicate).
    pub id: i64,
    /// Whether it was new (false: the same key was recorded before).
    pub new: bool,
}

/// What the watcher knew of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    /// Size in bytes.
    pub size: u64,
    /// Modification time (ns since the epoch).
    pub mtime_ns: i128,
    /// Content digest (blake3 hex).
    pub digest: String,
}

/// A run the log started but never saw finish (the daemon died).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// Its id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
}

/// The event log. One connection, used from one thread at a time.
#[derive(Debug)]
pub struct EventLog {
    conn: Mutex<Connection>,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    workflow TEXT NOT NULL,
    source TEXT NOT NULL,
    idem TEXT NOT NULL,
    partition TEXT,
    detail TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    run_id TEXT,
    outcome TEXT,
    handled_ms INTEGER,
    UNIQUE (workflow, idem)
);
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, workflow, id);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    status TEXT NOT NULL,
    events TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS schedules (workflow TEXT PRIMARY KEY, expr TEXT NOT NULL, last_tick_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    workflow TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns TEXT NOT NULL,
    digest TEXT NOT NULL,
    changes INTEGER NOT NULL,
    PRIMARY KEY (workflow, path)
);
";

impl EventLog {
    /// Opens (creating or migrating) the log in state directory `state`.
    pub fn open(state: &Path) -> Result<EventLog, LogError> {
        let path = state.join(FILE_NAME);
        let err = |source| LogError::Sql { path: path.clone(), source };
        std::fs::create_dir_all(state).map_err(|e| err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        match dagrun_history::open_db(&path, &[SCHEMA]) {
            Ok(conn) => Ok(EventLog { conn: Mutex::new(conn), path }),
            Err(dagrun_history::OpenError::Sql(source)) => Err(err(source)),
            Err(dagrun_history::OpenError::TooNew(found)) => Err(LogError::TooNew { path, found }),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&mut Transaction<'_>) -> rusqlite::Result<T>) -> Result<T, LogError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let run = |conn: &mut Connection| {
            let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        };
        run(&mut conn).map_err(|source| LogError::Sql { path: self.path.clone(), source })
    }

    /// Records events (one transaction); duplicates of earlier keys are not recorded again.
    pub fn record(&self, events: &[NewEvent]) -> Result<Vec<Recorded>, LogError> {
        self.with(|tx| events.iter().map(|e| insert(tx, e)).collect())
    }

    /// Records `event` unless an event whose key is `event.key` followed by `:<time>` was
    /// received since `since_ms` (then returns that one as a duplicate). The key recorded is
    /// `<key>:<at_ms>`. For deliveries without an id: a retry of the same body is one event,
    /// the same body sent again later is a new one.
    pub fn record_unless_recent(&self, event: &NewEvent, since_ms: i64) -> Result<Recorded, LogError> {
        self.with(|tx| {
            let prefix = format!("{}:", event.key);
            let earlier: Option<i64> = tx
                .query_row(
                    "SELECT id FROM events WHERE workflow = ?1 AND substr(idem, 1, length(?2)) = ?2
                     AND received_ms >= ?3 ORDER BY id DESC LIMIT 1",
                    params![event.workflow, prefix, since_ms],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = earlier {
                return Ok(Recorded { id, new: false });
            }
            let mut e = event.clone();
            e.key = format!("{prefix}{}", event.at_ms);
            insert(tx, &e)
        })
    }

    /// Records a tick batch and moves the schedule's mark to `last_tick_ms`, atomically.
    pub fn record_ticks(
        &self,
        workflow: &str,
        expr: &str,
        events: &[NewEvent],
        last_tick_ms: i64,
    ) -> Result<Vec<Recorded>, LogError> {
        self.with(|tx| {
            let out = events.iter().map(|e| insert(tx, e)).collect::<rusqlite::Result<Vec<_>>>()?;
            tx.execute(
                "INSERT INTO schedules (workflow, expr, last_tick_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (workflow) DO UPDATE SET expr = ?2, last_tick_ms = ?3",
                params![workflow, expr, last_tick_ms],
            )?;
            Ok(out)
        })
    }

    /// The last tick handled for a workflow's schedule, with the expression it was for.
    pub fn schedule_mark(&self, workflow: &str) -> Result<Option<(String, i64)>, LogError> {
        self.with(|tx| {
            tx.query_row("SELECT expr, last_tick_ms FROM schedules WHERE workflow = ?1", [workflow], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
    }

    /// Files seen by `FileLanded` triggers, in one transaction: each is an event when its
    /// content differs from what was last seen at that path (a new file, or new content); its
    /// stat is remembered either way. `None` for a file with the same content as before.
    pub fn record_files(&self, files: &[(NewEvent, String, FileRow)]) -> Result<Vec<Option<Recorded>>, LogError> {
        self.with(|tx| files.iter().map(|(e, path, row)| record_file(tx, e, path, row)).collect())
    }

    /// Every file the log knows, per workflow: (workflow, path relative to it, stat).
    pub fn files(&self) -> Result<Vec<(String, String, FileRow)>, LogError> {
        self.with(|tx| {
            let mut st = tx.prepare("SELECT workflow, path, size, mtime_ns, digest FROM files")?;
            let rows = st.query_map([], |r| {
                let mtime: String = r.get(3)?;
                let row = FileRow {
                    size: r.get::<_, i64>(2)? as u64,
                    mtime_ns: mtime.parse().unwrap_or(0),
                    digest: r.get(4)?,
                };
                Ok((r.get(0)?, r.get(1)?, row))
            })?;
            rows.collect()
        })
    }

    /// Events waiting for a run, oldest first.
    pub fn pending(&self, workflow: &str) -> Result<Vec<Event>, LogError> {
        self.events_where("state = 'pending' AND workflow = ?1 ORDER BY id", params![workflow])
    }

    /// Names of workflows with pending events, the one waiting longest first.
    pub fn pending_workflows(&self) -> Result<Vec<String>, LogError> {
        self.with(|tx| {
            let mut st = tx.prepare(
                "SELECT workflow, MIN(id) AS first FROM events WHERE state = 'pending' GROUP BY workflow ORDER BY first",
            )?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// The most recent events of a workflow (or of all), newest first.
    pub fn recent(&self, workflow: Option<&str>, limit: usize) -> Result<Vec<Event>, LogError> {
        match workflow {
            Some(w) => self.events_where("workflow = ?1 ORDER BY id DESC LIMIT ?2", params![w, limit as i64]),
            None => self.events_where("1 = 1 ORDER BY id DESC LIMIT ?1", params![limit as i64]),
        }
    }

    /// One event by id.
    pub fn event(&self, id: i64) -> Result<Option<Event>, LogError> {
        Ok(self.events_where("id = ?1", params![id])?.pop())
    }

    /// The events a run handles.
    pub fn events_of_run(&self, run_id: &str) -> Result<Vec<Event>, LogError> {
        self.events_where("run_id = ?1 ORDER BY id", params![run_id])
    }

    fn events_where(&self, clause: &str, p: impl rusqlite::Params) -> Result<Vec<Event>, LogError> {
        let sql = format!(
            "SELECT id, workflow, source, idem, partition, detail, received_ms, state, run_id, outcome FROM events WHERE {clause}"
        );
        self.with(|tx| {
            let mut st = tx.prepare(&sql)?;
            let rows = st.query_map(p, |r| {
                let detail: String = r.get(5)?;
                let event = NewEvent {
                    workflow: r.get(1)?,
                    source: Source::parse(&r.get::<_, String>(2)?),
                    key: r.get(3)?,
                    partition: r.get(4)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                    at_ms: r.get(6)?,
                };
                Ok(Event {
                    id: r.get(0)?,
                    event,
                    state: State::parse(&r.get::<_, String>(7)?),
                    run_id: r.get(8)?,
                    outcome: r.get(9)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Marks events as handled by run `run_id`, which starts now (before the run starts).
    pub fn start_run(&self, run_id: &str, workflow: &str, events: &[i64], now_ms: i64) -> Result<(), LogError> {
        self.with(|tx| {
            let ids = serde_json::to_string(events).expect("serializes");
            tx.execute(
                "INSERT INTO runs (id, workflow, started_ms, status, events) VALUES (?1, ?2, ?3, 'running', ?4)",
                params![run_id, workflow, now_ms, ids],
            )?;
            let mut st =
                tx.prepare("UPDATE events SET state = 'running', run_id = ?1 WHERE id = ?2 AND state = 'pending'")?;
            for id in events {
                st.execute(params![run_id, id])?;
            }
            Ok(())
        })
    }

    /// Closes a run: its events are done, with `status` as their outcome.
    pub fn finish_run(&self, run_id: &str, status: &str, now_ms: i64) -> Result<(), LogError> {
        self.with(|tx| {
            tx.execute("UPDATE runs SET finished_ms = ?2, status = ?3 WHERE id = ?1", params![run_id, now_ms, status])?;
            tx.execute(
                "UPDATE events SET state = 'done', outcome = ?2, handled_ms = ?3 WHERE run_id = ?1 AND state = 'running'",
                params![run_id, status, now_ms],
            )?;
            Ok(())
        })
    }

    /// A run that did not finish (interrupted, or the daemon died): its events wait again.
    pub fn requeue_run(&self, run_id: &str, why: &str, now_ms: i64) -> Result<(), LogError> {
        self.with(|tx| {
            tx.execute("UPDATE runs SET finished_ms = ?2, status = ?3 WHERE id = ?1", params![run_id, now_ms, why])?;
            tx.execute(
                "UPDATE events SET state = 'pending', run_id = NULL WHERE run_id = ?1 AND state = 'running'",
                params![run_id],
            )?;
            Ok(())
        })
    }

    /// Marks events as not run, with the reason.
    pub fn skip(&self, events: &[i64], why: &str, now_ms: i64) -> Result<(), LogError> {
        self.with(|tx| {
            let mut st = tx.prepare(
                "UPDATE events SET state = 'skipped', outcome = ?2, handled_ms = ?3 WHERE id = ?1 AND state = 'pending'",
            )?;
            for id in events {
                st.execute(params![id, why, now_ms])?;
            }
            Ok(())
        })
    }

    /// Runs started but never finished, oldest first.
    pub fn unfinished_runs(&self) -> Result<Vec<Unfinished>, LogError> {
        self.with(|tx| {
            let mut st = tx.prepare("SELECT id, workflow FROM runs WHERE status = 'running' ORDER BY started_ms")?;
            let rows = st.query_map([], |r| Ok(Unfinished { run_id: r.get(0)?, workflow: r.get(1)? }))?;
            rows.collect()
        })
    }

    /// Every run that took event `id`, oldest first, with its status (`running`, a run
    /// outcome, or why it gave the event back): an audit trail that a requeue does not erase.
    pub fn runs_of_event(&self, id: i64) -> Result<Vec<(String, String)>, LogError> {
        self.with(|tx| {
            let mut st = tx.prepare(
                "SELECT r.id, r.status FROM runs r, json_each(r.events) j WHERE j.value = ?1 ORDER BY r.started_ms, r.id",
            )?;
            let rows = st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// How many events are in each state, for a workflow.
    pub fn counts(&self, workflow: &str) -> Result<Vec<(State, u64)>, LogError> {
        self.with(|tx| {
            let mut st = tx.prepare("SELECT state, COUNT(*) FROM events WHERE workflow = ?1 GROUP BY state")?;
            let rows =
                st.query_map([workflow], |r| Ok((State::parse(&r.get::<_, String>(0)?), r.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
    }

    /// SQLite's own consistency check (`PRAGMA integrity_check`): `ok` when sound.
    pub fn integrity(&self) -> Result<String, LogError> {
        self.with(|tx| tx.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
    }
}

fn record_file(
    tx: &Transaction<'_>,
    event: &NewEvent,
    path: &str,
    file: &FileRow,
) -> rusqlite::Result<Option<Recorded>> {
    let known: Option<(String, i64)> = tx
        .query_row(
            "SELECT digest, changes FROM files WHERE workflow = ?1 AND path = ?2",
            params![event.workflow, path],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let changes = match &known {
        Some((digest, n)) if *digest == file.digest => *n,
        Some((_, n)) => n + 1,
        None => 1,
    };
    tx.execute(
        "INSERT INTO files (workflow, path, size, mtime_ns, digest, changes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (workflow, path) DO UPDATE SET size = ?3, mtime_ns = ?4, digest = ?5, changes = ?6",
        params![event.workflow, path, file.size as i64, file.mtime_ns.to_string(), file.digest, changes],
    )?;
    if known.is_some_and(|(d, _)| d == file.digest) {
        return Ok(None);
    }
    let mut e = event.clone();
    e.key = format!("file:{path}:{changes}:{}", file.digest);
    insert(tx, &e).map(Some)
}

fn insert(tx: &Transaction<'_>, e: &NewEvent) -> rusqlite::Result<Recorded> {
    let n = tx.execute(
        "INSERT INTO events (workflow, source, idem, partition, detail, received_ms, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending') ON CONFLICT (workflow, idem) DO NOTHING",
        params![e.workflow, e.source.as_str(), e.key, e.partition, e.detail.to_string(), e.at_ms],
    )?;
    let id =
        tx.query_row("SELECT id FROM events WHERE workflow = ?1 AND idem = ?2", params![e.workflow, e.key], |r| {
            r.get(0)
        })?;
    Ok(Recorded { id, new: n == 1 })
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
