//! Runs in the history store: one row per run, its tasks, its gate verdicts and how it moved
//! the registry. Plain rows: the engine (`dagrun-exec`) owns the run record and converts it, so
//! this crate depends on nothing of the engine's. Written by the engine as a run starts and
//! ends, and imported from the per-run JSON records (`<state>/runs/*.json`) of runs this store
//! has not seen finished.

use std::collections::HashSet;

use rusqlite::{Row, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::drift::DriftRow;
use crate::{History, HistoryError};

/// Migration 1 → 2: the run tables, and indexes for the report's window queries.
pub(crate) const MIGRATION: &str = "
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    workflow_path TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    status TEXT NOT NULL,
    tasks INTEGER NOT NULL,
    succeeded INTEGER NOT NULL,
    cached INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    refused INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    alerted INTEGER NOT NULL,
    held INTEGER NOT NULL,
    waiting INTEGER NOT NULL,
    saved_ms INTEGER NOT NULL,
    manual_minutes INTEGER
);
CREATE INDEX runs_by_start ON runs (started_ms);
CREATE INDEX runs_by_workflow ON runs (workflow, started_ms);
CREATE TABLE run_tasks (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    cached INTEGER NOT NULL,
    saved_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    failure TEXT,
    error TEXT,
    key TEXT,
    blocked TEXT,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX run_tasks_blocked ON run_tasks (blocked) WHERE blocked IS NOT NULL;
CREATE TABLE verdicts (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    metric TEXT,
    value REAL,
    threshold REAL,
    shortfall REAL,
    PRIMARY KEY (run_id, task)
);
CREATE TABLE registry_changes (
    run_id TEXT NOT NULL,
    registry TEXT NOT NULL,
    model TEXT NOT NULL,
    before TEXT,
    after TEXT,
    moved INTEGER NOT NULL,
    PRIMARY KEY (run_id, registry, model)
);
CREATE INDEX registry_moves ON registry_changes (moved) WHERE moved != 0;
CREATE INDEX incidents_by_detection ON incidents (detected_ms);
CREATE INDEX approvals_by_decision ON approvals (state, decided_ms);
";

/// Migration 3 → 4: each task's start time (`NULL` for runs recorded before, and for tasks that
/// never started), and the process that ran the run (its pid and start time: a run with no end
/// whose process is gone was killed).
pub(crate) const MIGRATION_4: &str = "
ALTER TABLE run_tasks ADD COLUMN started_ms INTEGER;
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN pid_started INTEGER;
";

/// One run as the history keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    /// The run id (sorts by start time).
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The workflow file, as given.
    pub workflow_path: String,
    /// Start (Unix ms).
    pub started_ms: i64,
    /// End (Unix ms); `None` while running, or when the process died (killed mid-run).
    pub finished_ms: Option<i64>,
    /// `running`, `killed` (no end, and its process is gone), `succeeded`, `failed`, `refused`,
    /// `alerted`, `interrupted`, `waiting`.
    pub status: String,
    /// Task instances by final state.
    pub counts: RunCounts,
    /// Compute time the cache saved in this run (the sum over its cache hits).
    pub saved_ms: i64,
    /// The workflow's `manual_minutes` estimate when it ran (`None`: not set, or not known).
    pub manual_minutes: Option<u32>,
    /// The process that ran it (`None` for runs recorded before it was).
    pub pid: Option<u32>,
    /// That process's start time (clock ticks since boot; see [`crate::alive`]).
    pub pid_started: Option<i64>,
    /// Its tasks, in completion order.
    pub tasks: Vec<TaskRow>,
    /// How it moved the registry's `current` of each model its workflow names.
    pub registry: Vec<RegistryRow>,
}

/// Task instances of a run by final state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// All task instances.
    pub tasks: u32,
    /// Ran and succeeded.
    pub succeeded: u32,
    /// Served from the cache.
    pub cached: u32,
    /// Failed.
    pub failed: u32,
    /// Refused (a gate, a rejected approval).
    pub refused: u32,
    /// Skipped.
    pub skipped: u32,
    /// Monitoring alerts.
    pub alerted: u32,
    /// Alerts held by a cooldown.
    pub held: u32,
    /// Approval steps waiting.
    pub waiting: u32,
}

/// One task instance of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    /// The instance's name (`train`, `train@2025-03-02`).
    pub task: String,
    /// Its final state (`succeeded`, `cached`, `failed`, `refused`, ...).
    pub status: String,
    /// Wall time in this run.
    pub duration_ms: i64,
    /// When it started (Unix ms); `None` when it never started (skipped), or for runs recorded
    /// before start times were (record version 2, schema version 3).
    pub started_ms: Option<i64>,
    /// A cache hit.
    pub cached: bool,
    /// For a hit: the compute time it saved.
    pub saved_ms: i64,
    /// Attempts made.
    pub attempts: u32,
    /// How it failed (JSON of the engine's failure), if it did.
    pub failure: Option<String>,
    /// The failure, refusal or skip reason.
    pub error: Option<String>,
    /// Its cache key (hex).
    pub key: Option<String>,
    /// When it stopped a model from being deployed: how ([`Blocked`]).
    pub blocked: Option<Blocked>,
    /// Its gate verdict, for an evaluation gate that decided.
    pub verdict: Option<VerdictRow>,
    /// For a `Drift` task: its per-column results.
    pub drift: Option<DriftRow>,
}

/// How a task stopped a model from being deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocked {
    /// An evaluation gate refused the candidate.
    Gate,
    /// A person (or an approval's timeout) rejected it.
    Approval,
    /// The deploy step refused it (no passing verdict for its exact bytes).
    Deploy,
}

impl Blocked {
    /// `gate`, `approval`, `deploy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Blocked::Gate => "gate",
            Blocked::Approval => "approval",
            Blocked::Deploy => "deploy",
        }
    }

    fn parse(s: &str) -> Option<Blocked> {
        [Blocked::Gate, Blocked::Approval, Blocked::Deploy].into_iter().find(|b| b.as_str() == s)
    }
}

/// An evaluation gate's decision in a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerdictRow {
    /// `pass` or `refuse`.
    pub decision: String,
    /// Why, in words.
    pub reason: String,
    /// For a refusal: the metric that failed (`None` when no metric did, e.g. no champion).
    pub metric: Option<String>,
    /// The candidate's value of it.
    pub value: Option<f64>,
    /// What it had to reach: the `min`/`max`, or the champion's value plus the margin.
    pub threshold: Option<f64>,
    /// By how much it missed, in the metric's good direction (≥ 0).
    pub shortfall: Option<f64>,
}

/// How a run moved one registry model's `current`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryRow {
    /// The registry directory, as the workflow writes it.
    pub registry: String,
    /// The model's name.
    pub model: String,
    /// The version `current` named before the run.
    pub before: Option<String>,
    /// The version it named after.
    pub after: Option<String>,
    /// 1: moved up (a deploy), -1: moved down (a rollback), 0: did not move.
    pub moved: i8,
}

impl RunRow {
    /// Whether the run has ended (it has an end time).
    pub fn finished(&self) -> bool {
        self.finished_ms.is_some()
    }

    /// Its status now: a `running` run whose process is gone is `killed` (asked of `/proc` when
    /// the process was recorded; else it stays `running`).
    pub fn status_now(&self) -> &str {
        let gone = || crate::alive::alive(self.pid, self.pid_started.map(|s| s as u64)) == Some(false);
        if self.status == "running" && !self.finished() && gone() { "killed" } else { &self.status }
    }
}

/// Why a run record could not be imported (the caller warns and goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The record's file.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Writes run `r` with `tasks` (its own, or the ones a caller makes one at a time).
fn put<T: std::borrow::Borrow<TaskRow>>(
    tx: &Transaction<'_>,
    r: &RunRow,
    tasks: impl IntoIterator<Item = T>,
) -> rusqlite::Result<()> {
    for table in [
        "runs WHERE id",
        "run_tasks WHERE run_id",
        "verdicts WHERE run_id",
        "registry_changes WHERE run_id",
        "drift_columns WHERE run_id",
    ] {
        tx.execute(&format!("DELETE FROM {table} = ?1"), params![r.id])?;
    }
    let c = &r.counts;
    tx.execute(
        "INSERT INTO runs (id, workflow, workflow_path, started_ms, finished_ms, status, tasks, succeeded, cached, \
         failed, refused, skipped, alerted, held, waiting, saved_ms, manual_minutes, pid, pid_started) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        params![
            r.id,
            r.workflow,
            r.workflow_path,
            r.started_ms,
            r.finished_ms,
            r.status,
            c.tasks,
            c.succeeded,
            c.cached,
            c.failed,
            c.refused,
            c.skipped,
            c.alerted,
            c.held,
            c.waiting,
            r.saved_ms,
            r.manual_minutes,
            r.pid,
            r.pid_started
        ],
    )?;
    let mut task = tx.prepare_cached(
        "INSERT INTO run_tasks (run_id, seq, task, status, duration_ms, cached, saved_ms, attempts, failure, error, \
         key, blocked, started_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let mut verdict = tx.prepare_cached(
        "INSERT OR REPLACE INTO verdicts (run_id, task, decision, reason, metric, value, threshold, shortfall) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (seq, t) in tasks.into_iter().enumerate() {
        let t = t.borrow();
        task.execute(params![
            r.id,
            seq as i64,
            t.task,
            t.status,
            t.duration_ms,
            t.cached,
            t.saved_ms,
            t.attempts,
            t.failure,
            t.error,
            t.key,
            t.blocked.map(Blocked::as_str),
            t.started_ms
        ])?;
        if let Some(v) = &t.verdict {
            verdict.execute(params![
                r.id,
                t.task,
                v.decision,
                v.reason,
                v.metric,
                v.value,
                v.threshold,
                v.shortfall
            ])?;
        }
        if let Some(d) = &t.drift {
            crate::drift::put(tx, &r.id, &t.task, d)?;
        }
    }
    let mut change = tx.prepare_cached(
        "INSERT OR REPLACE INTO registry_changes (run_id, registry, model, before, after, moved) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for c in &r.registry {
        change.execute(params![r.id, c.registry, c.model, c.before, c.after, c.moved])?;
    }
    Ok(())
}

const RUN_COLUMNS: &str = "id, workflow, workflow_path, started_ms, finished_ms, status, tasks, succeeded, cached, \
    failed, refused, skipped, alerted, held, waiting, saved_ms, manual_minutes, pid, pid_started";

/// A run row without its tasks and registry changes (the report reads those apart).
pub(crate) fn run_from_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        workflow: r.get(1)?,
        workflow_path: r.get(2)?,
        started_ms: r.get(3)?,
        finished_ms: r.get(4)?,
        status: r.get(5)?,
        counts: RunCounts {
            tasks: r.get(6)?,
            succeeded: r.get(7)?,
            cached: r.get(8)?,
            failed: r.get(9)?,
            refused: r.get(10)?,
            skipped: r.get(11)?,
            alerted: r.get(12)?,
            held: r.get(13)?,
            waiting: r.get(14)?,
        },
        saved_ms: r.get(15)?,
        manual_minutes: r.get(16)?,
        pid: r.get(17)?,
        pid_started: r.get(18)?,
        tasks: Vec::new(),
        registry: Vec::new(),
    })
}

/// The runs `filter` (a `WHERE ... ORDER BY ...` clause over `runs`) selects, without tasks.
pub(crate) fn select_runs(
    tx: &Transaction<'_>,
    filter: &str,
    p: impl rusqlite::Params,
) -> rusqlite::Result<Vec<RunRow>> {
    let mut stmt = tx.prepare(&format!("SELECT {RUN_COLUMNS} FROM runs {filter}"))?;
    stmt.query_map(p, run_from_row)?.collect()
}

/// A verdict whose reason, metric, value, threshold and shortfall are the row's columns from `at` on.
pub(crate) fn verdict_from(r: &Row<'_>, decision: String, at: usize) -> rusqlite::Result<VerdictRow> {
    Ok(VerdictRow {
        decision,
        reason: r.get(at)?,
        metric: r.get(at + 1)?,
        value: r.get(at + 2)?,
        threshold: r.get(at + 3)?,
        shortfall: r.get(at + 4)?,
    })
}

fn tasks_of(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Vec<TaskRow>> {
    let mut stmt = tx.prepare_cached(
        "SELECT t.task, t.status, t.duration_ms, t.cached, t.saved_ms, t.attempts, t.failure, t.error, t.key, \
         t.blocked, v.decision, v.reason, v.metric, v.value, v.threshold, v.shortfall, t.started_ms \
         FROM run_tasks t LEFT JOIN verdicts v ON v.run_id = t.run_id AND v.task = t.task \
         WHERE t.run_id = ?1 ORDER BY t.seq",
    )?;
    let mut drift = crate::drift::of_run(tx, id)?;
    stmt.query_map(params![id], |r| {
        let decision: Option<String> = r.get(10)?;
        let verdict = match decision {
            Some(decision) => Some(verdict_from(r, decision, 11)?),
            None => None,
        };
        let blocked: Option<String> = r.get(9)?;
        Ok(TaskRow {
            task: r.get(0)?,
            status: r.get(1)?,
            duration_ms: r.get(2)?,
            started_ms: r.get(16)?,
            cached: r.get(3)?,
            saved_ms: r.get(4)?,
            attempts: r.get(5)?,
            failure: r.get(6)?,
            error: r.get(7)?,
            key: r.get(8)?,
            blocked: blocked.as_deref().and_then(Blocked::parse),
            verdict,
            drift: None,
        })
    })?
    .map(|t| {
        t.map(|mut t| {
            t.drift = drift.remove(&t.task);
            t
        })
    })
    .collect()
}

fn registry_of(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Vec<RegistryRow>> {
    let mut stmt = tx.prepare_cached(
        "SELECT registry, model, before, after, moved FROM registry_changes WHERE run_id = ?1 ORDER BY registry, model",
    )?;
    stmt.query_map(params![id], |r| {
        Ok(RegistryRow { registry: r.get(0)?, model: r.get(1)?, before: r.get(2)?, after: r.get(3)?, moved: r.get(4)? })
    })?
    .collect()
}

impl History {
    /// Writes (or replaces) one run with its tasks, verdicts and registry changes.
    pub fn record_run(&self, run: &RunRow) -> Result<(), HistoryError> {
        self.with_copies(|tx| put(tx, run, &run.tasks))
    }

    /// [`History::record_run`] of `run` with `tasks` instead of its own (which are ignored),
    /// made as they are written: a 10,000-task run never holds all its rows at once.
    pub fn record_run_with(&self, run: &RunRow, tasks: impl Iterator<Item = TaskRow>) -> Result<(), HistoryError> {
        debug_assert!(run.tasks.is_empty(), "record_run_with takes the tasks apart");
        self.with_copies(|tx| put(tx, run, tasks))
    }

    /// Imports runs read from their JSON records, in one transaction: each replaces what the
    /// store has of it (the caller passes only runs the store has not seen finished, see
    /// [`History::settled_runs`]). Returns how many were written.
    pub fn import_runs(&self, runs: &[RunRow]) -> Result<usize, HistoryError> {
        self.with_copies(|tx| {
            for r in runs {
                put(tx, r, &r.tasks)?;
            }
            Ok(runs.len())
        })
    }

    /// The ids of the runs the store has with an end time: nothing in their JSON records can
    /// be newer, so an import skips them.
    pub fn settled_runs(&self) -> Result<HashSet<String>, HistoryError> {
        self.with(|tx| {
            let mut stmt = tx.prepare("SELECT id FROM runs WHERE finished_ms IS NOT NULL")?;
            stmt.query_map([], |r| r.get(0))?.collect()
        })
    }

    /// One run with its tasks and registry changes, by exact id.
    pub fn run(&self, id: &str) -> Result<Option<RunRow>, HistoryError> {
        self.with(|tx| {
            let Some(mut run) = select_runs(tx, "WHERE id = ?1", params![id])?.pop() else { return Ok(None) };
            run.tasks = tasks_of(tx, id)?;
            run.registry = registry_of(tx, id)?;
            Ok(Some(run))
        })
    }

    /// The most recent runs first (without tasks), at most `limit`, of `workflow` if given.
    pub fn runs(&self, workflow: Option<&str>, limit: usize) -> Result<Vec<RunRow>, HistoryError> {
        let lim = limit.min(i64::MAX as usize) as i64;
        self.with(|tx| match workflow {
            Some(w) => {
                select_runs(tx, "WHERE workflow = ?1 ORDER BY started_ms DESC, id DESC LIMIT ?2", params![w, lim])
            }
            None => select_runs(tx, "ORDER BY started_ms DESC, id DESC LIMIT ?1", params![lim]),
        })
    }

    /// The names of the workflows with recorded runs, sorted.
    pub fn workflows(&self) -> Result<Vec<String>, HistoryError> {
        self.with(|tx| {
            let mut stmt = tx.prepare("SELECT DISTINCT workflow FROM runs ORDER BY workflow")?;
            stmt.query_map([], |r| r.get(0))?.collect()
        })
    }
}

#[cfg(test)]
#[path = "runs_tests.rs"]
mod tests;
