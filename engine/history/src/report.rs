//! The payoff report's query: what the history holds for a window (runs, deploys and rollbacks,
//! blocked deploys, rejected approvals, drift incidents) gathered into [`Facts`], and the
//! numbers computed from them ([`compute`], pure) into a versioned [`Report`]. The one place the
//! CLI's `dagrun report` and the web UI read the payoff from. Every definition is in
//! `docs/report.md`.

use std::collections::BTreeMap;

use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};

pub use crate::compute::{completed, compute, recovery, utc_day};
use crate::runs::{RunRow, select_runs};
use crate::{History, HistoryError, Incident};

/// Version of the [`Report`] JSON (`dagrun report --format json`). Additions keep it; a
/// change of meaning or a removal raises it.
pub const REPORT_VERSION: u32 = 1;

/// What to report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// Only this workflow (by name); every workflow when `None`.
    pub workflow: Option<String>,
    /// The window's start (Unix ms, inclusive).
    pub since_ms: i64,
    /// Its end, normally now (Unix ms, inclusive).
    pub until_ms: i64,
    /// The `manual_minutes` estimate of [`ReportQuery::workflow`] as its file says now; when
    /// `None`, each workflow's most recent run that recorded one is used.
    pub manual_minutes: Option<u32>,
}

/// A registry change that moved `current` (a deploy or a rollback), with its run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The run.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// When the run ended (or started, if it has no end).
    pub at_ms: i64,
    /// The registry directory.
    pub registry: String,
    /// The model.
    pub model: String,
    /// `current` before.
    pub before: Option<String>,
    /// `current` after.
    pub after: Option<String>,
    /// 1: a deploy, -1: a rollback.
    pub moved: i8,
}

/// A deploy that did not happen: a gate refusal, a rejected approval or a refused deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// When (the run's end; for an approval, the decision).
    pub at_ms: i64,
    /// The workflow.
    pub workflow: String,
    /// The run.
    pub run_id: String,
    /// The task (gate, approval step, deploy step).
    pub task: String,
    /// `gate`, `approval` or `deploy`.
    pub kind: String,
    /// Why, in words.
    pub reason: String,
    /// The metric that failed, when the gate names one.
    pub metric: Option<String>,
    /// The candidate's value of it.
    pub value: Option<f64>,
    /// What it had to reach.
    pub threshold: Option<f64>,
    /// By how much it missed (≥ 0, in the metric's good direction).
    pub shortfall: Option<f64>,
}

/// Everything the report is computed from, as read from the store for one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Runs that started in the window (without tasks), oldest first.
    pub runs: Vec<RunRow>,
    /// Deploys and rollbacks of those runs.
    pub moves: Vec<Move>,
    /// Blocked deploys in the window, oldest first.
    pub blocks: Vec<Block>,
    /// Drift incidents detected in the window, and every one still open.
    pub incidents: Vec<Incident>,
    /// Per workflow: the `manual_minutes` of its most recent run that recorded one.
    pub manual_minutes: BTreeMap<String, u32>,
    /// Notifications queued in the window, by how their delivery went.
    pub notifications: Notifications,
}

/// Notifications queued in the window (one per sink and occurrence), by how their delivery
/// went: all together and per sink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notifications {
    /// Delivered.
    pub delivered: u64,
    /// Not delivered yet (retried later).
    pub pending: u64,
    /// Given up after the last retry.
    pub given_up: u64,
    /// Per sink (`slack`, `webhook`, `command`), by name.
    pub sinks: Vec<SinkDeliveries>,
}

/// One sink's deliveries in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkDeliveries {
    /// The sink.
    pub sink: String,
    /// Delivered.
    pub delivered: u64,
    /// Not delivered yet.
    pub pending: u64,
    /// Given up.
    pub given_up: u64,
}

/// The payoff report (`dagrun report --format json`; field by field in docs/report.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The window's start (Unix ms).
    pub since_ms: i64,
    /// The window's end (Unix ms).
    pub until_ms: i64,
    /// The workflow reported on, or `None` for all of them.
    pub workflow: Option<String>,
    /// All workflows (or the one) together.
    pub total: Summary,
    /// Per workflow, by name.
    pub workflows: Vec<WorkflowSummary>,
    /// Per registry model.
    pub models: Vec<ModelSummary>,
    /// Time to recovery after drift.
    pub drift: Recovery,
    /// Deploys prevented, each with why.
    pub prevented: Vec<Block>,
    /// Per UTC day of the window, for the charts.
    pub days: Vec<Day>,
    /// Notification deliveries of the window (absent in reports written before they were).
    #[serde(default)]
    pub notifications: Notifications,
}

/// The numbers of one workflow (or all of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Runs started in the window.
    pub runs: u64,
    /// Of those: ended without a failed task or an interruption (succeeded, refused, alerted,
    /// waiting): the pipeline did its job.
    pub completed: u64,
    /// Ended with a failed task.
    pub failed: u64,
    /// Stopped by Ctrl-C or a signal.
    pub interrupted: u64,
    /// Still running, or killed mid-run (no end recorded): in no rate.
    pub unfinished: u64,
    /// Of those: killed mid-run (the process that ran them is gone).
    #[serde(default)]
    pub killed: u64,
    /// `completed / (completed + failed + interrupted)`; `None` with no ended run.
    pub success_rate: Option<f64>,
    /// Runs that moved a model's `current` up.
    pub deploys: u64,
    /// Runs that moved one down.
    pub rollbacks: u64,
    /// Retraining cycles: runs that deployed at least one model.
    pub retraining_cycles: u64,
    /// Deploys per 7 days of the window; `None` for an empty window.
    pub deploys_per_week: Option<f64>,
    /// Recovery from failed runs.
    pub failures: FailureRecovery,
    /// Cache hits among the task instances that ran or hit.
    pub cache: CacheStats,
    /// Time saved.
    pub saved: Saved,
    /// Deploys prevented (gate refusals, rejected approvals, refused deploys).
    pub prevented: u64,
}

/// Recovery from failed runs: a streak of failed runs of a workflow ends at its next completed
/// run; the time from the first failed run's end to that run's end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureRecovery {
    /// Failure streaks that began in the window.
    pub streaks: u64,
    /// Of those, ended by a completed run.
    pub recovered: u64,
    /// Mean time to recover (ms) over the recovered ones; `None` when none recovered.
    pub mean_ms: Option<i64>,
}

/// Cache hits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Task instances served from the cache.
    pub hits: u64,
    /// Task instances that ran (not skipped, not cached).
    pub executed: u64,
    /// `hits / (hits + executed)`; `None` when nothing ran or hit.
    pub hit_rate: Option<f64>,
}

/// Time saved: the two kinds are never added together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// Compute time the cache saved (the tasks' measured durations, summed over hits).
    pub cache_saved_ms: i64,
    /// Manual effort replaced; `None` when no workflow has a `manual_minutes` estimate.
    pub manual: Option<Manual>,
    /// Both, per retraining cycle; `None` without a cycle in the window.
    pub per_cycle: Option<PerCycle>,
}

/// Manual effort replaced: completed runs × the workflow's `manual_minutes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manual {
    /// Person-minutes.
    pub minutes: u64,
    /// Completed runs counted (of workflows with an estimate).
    pub runs: u64,
    /// Completed runs of workflows without an estimate (not counted).
    pub runs_without_estimate: u64,
}

/// Time saved per retraining cycle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerCycle {
    /// Cycles in the window.
    pub cycles: u64,
    /// Cache-saved compute time per cycle (ms).
    pub cache_saved_ms: i64,
    /// Manual effort replaced per cycle (person-minutes); `None` without an estimate.
    pub manual_minutes: Option<f64>,
}

/// One workflow's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSummary {
    /// Its name.
    pub workflow: String,
    /// The `manual_minutes` estimate used (`None`: none set).
    pub manual_minutes: Option<u32>,
    /// Its numbers.
    pub summary: Summary,
}

/// One registry model's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The registry directory.
    pub registry: String,
    /// The model.
    pub model: String,
    /// Times `current` moved up (retraining cycles of this model).
    pub deploys: u64,
    /// Times it moved down.
    pub rollbacks: u64,
    /// Its drift incidents.
    pub drift: Recovery,
}

/// Time to recovery after drift: from detection to a healthy model deployed (or the drift
/// cleared).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// The incidents, oldest first.
    pub incidents: Vec<IncidentLine>,
    /// Resolved ones.
    pub resolved: u64,
    /// Still open.
    pub open: u64,
    /// Median time to recovery of the resolved ones (ms).
    pub median_ms: Option<i64>,
    /// The longest (ms).
    pub worst_ms: Option<i64>,
}

/// One incident in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentLine {
    /// Its id.
    pub id: i64,
    /// The workflow that detected it.
    pub workflow: String,
    /// The registry directory.
    pub registry: String,
    /// The model.
    pub model: String,
    /// Detected (Unix ms).
    pub detected_ms: i64,
    /// Resolved, if it is.
    pub resolved_ms: Option<i64>,
    /// How.
    pub resolution: Option<String>,
    /// Time to recovery (ms); `None` while open.
    pub recovery_ms: Option<i64>,
    /// Drift alerts while it was open.
    pub alerts: u32,
}

/// One UTC day, for the charts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Runs started.
    pub runs: u64,
    /// Cache-saved compute time of those runs (ms).
    pub cache_saved_ms: i64,
    /// Manual effort they replaced (person-minutes).
    pub manual_minutes: u64,
    /// Deploys prevented that day.
    pub prevented: u64,
}

fn moves(tx: &Transaction<'_>, q: &ReportQuery) -> rusqlite::Result<Vec<Move>> {
    let mut stmt = tx.prepare(
        "SELECT r.id, r.workflow, COALESCE(r.finished_ms, r.started_ms), c.registry, c.model, c.before, c.after, \
         c.moved FROM registry_changes c JOIN runs r ON r.id = c.run_id \
         WHERE c.moved != 0 AND r.started_ms BETWEEN ?1 AND ?2 AND (?3 IS NULL OR r.workflow = ?3) \
         ORDER BY r.started_ms, r.id, c.registry, c.model",
    )?;
    stmt.query_map(params![q.since_ms, q.until_ms, q.workflow], |r| {
        Ok(Move {
            run_id: r.get(0)?,
            workflow: r.get(1)?,
            at_ms: r.get(2)?,
            registry: r.get(3)?,
            model: r.get(4)?,
            before: r.get(5)?,
            after: r.get(6)?,
            moved: r.get(7)?,
        })
    })?
    .collect()
}

/// Gate refusals and refused deploys from the run tasks, and rejected approvals from the
/// approval requests (a rejected step's task is not counted again).
fn blocks(tx: &Transaction<'_>, q: &ReportQuery) -> rusqlite::Result<Vec<Block>> {
    let mut stmt = tx.prepare(
        "SELECT COALESCE(r.finished_ms, r.started_ms), r.workflow, r.id, t.task, t.blocked, \
         COALESCE(v.reason, t.error, ''), v.metric, v.value, v.threshold, v.shortfall \
         FROM run_tasks t JOIN runs r ON r.id = t.run_id \
         LEFT JOIN verdicts v ON v.run_id = t.run_id AND v.task = t.task \
         WHERE t.blocked IN ('gate', 'deploy') AND r.started_ms BETWEEN ?1 AND ?2 \
         AND (?3 IS NULL OR r.workflow = ?3)",
    )?;
    let mut out: Vec<Block> = stmt
        .query_map(params![q.since_ms, q.until_ms, q.workflow], |r| {
            Ok(Block {
                at_ms: r.get(0)?,
                workflow: r.get(1)?,
                run_id: r.get(2)?,
                task: r.get(3)?,
                kind: r.get(4)?,
                reason: r.get(5)?,
                metric: r.get(6)?,
                value: r.get(7)?,
                threshold: r.get(8)?,
                shortfall: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = tx.prepare(
        "SELECT decided_ms, workflow, run_id, task, decided_by, note, reasons FROM approvals \
         WHERE state = 'rejected' AND decided_ms BETWEEN ?1 AND ?2 AND (?3 IS NULL OR workflow = ?3)",
    )?;
    let rejected = stmt.query_map(params![q.since_ms, q.until_ms, q.workflow], |r| {
        let by: Option<String> = r.get(4)?;
        let note: Option<String> = r.get(5)?;
        let reasons: String = r.get(6)?;
        let reasons: Vec<String> = serde_json::from_str(&reasons).unwrap_or_default();
        let mut reason = match by.as_deref() {
            Some(crate::approvals::TIMEOUT_DECIDER) => "rejected by the timeout (nobody decided)".to_owned(),
            Some(by) => format!("rejected by {by}"),
            None => "rejected".to_owned(),
        };
        if let Some(n) = note.filter(|n| !n.is_empty()) {
            reason.push_str(&format!(": {n}"));
        }
        if !reasons.is_empty() {
            reason.push_str(&format!(" (asked because {})", reasons.join("; ")));
        }
        Ok(Block {
            at_ms: r.get(0)?,
            workflow: r.get(1)?,
            run_id: r.get(2)?,
            task: r.get(3)?,
            kind: "approval".to_owned(),
            reason,
            metric: None,
            value: None,
            threshold: None,
            shortfall: None,
        })
    })?;
    for b in rejected {
        out.push(b?);
    }
    out.sort_by(|a, b| (a.at_ms, &a.run_id, &a.task).cmp(&(b.at_ms, &b.run_id, &b.task)));
    Ok(out)
}

fn incidents(tx: &Transaction<'_>, q: &ReportQuery) -> rusqlite::Result<Vec<Incident>> {
    let mut stmt = tx.prepare(&format!(
        "SELECT {} FROM incidents WHERE ((detected_ms BETWEEN ?1 AND ?2) OR resolved_ms IS NULL) \
         AND (?3 IS NULL OR workflow = ?3) ORDER BY detected_ms, id",
        crate::incidents::COLUMNS
    ))?;
    stmt.query_map(params![q.since_ms, q.until_ms, q.workflow], crate::incidents::from_row)?.collect()
}

fn manual_minutes(tx: &Transaction<'_>, q: &ReportQuery) -> rusqlite::Result<BTreeMap<String, u32>> {
    // The most recent run (by start) of each workflow that recorded an estimate.
    let mut stmt = tx.prepare(
        "SELECT workflow, manual_minutes FROM runs r WHERE manual_minutes IS NOT NULL \
         AND (?1 IS NULL OR workflow = ?1) AND started_ms = (SELECT MAX(started_ms) FROM runs \
         WHERE workflow = r.workflow AND manual_minutes IS NOT NULL)",
    )?;
    let mut out: BTreeMap<String, u32> =
        stmt.query_map(params![q.workflow], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    if let (Some(w), Some(m)) = (&q.workflow, q.manual_minutes) {
        out.insert(w.clone(), m);
    }
    Ok(out)
}

/// The notifications queued in the window, by sink and delivery state.
fn notifications(tx: &Transaction<'_>, q: &ReportQuery) -> rusqlite::Result<Notifications> {
    let mut stmt = tx.prepare_cached(
        "SELECT sink, state, COUNT(*) FROM notifications WHERE created_ms BETWEEN ?1 AND ?2 \
         AND (?3 IS NULL OR workflow = ?3) GROUP BY sink, state",
    )?;
    let rows = stmt.query_map(params![q.since_ms, q.until_ms, q.workflow], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
    })?;
    let mut n = Notifications::default();
    let mut sinks: BTreeMap<&'static str, SinkDeliveries> = BTreeMap::new();
    for row in rows {
        let (sink, state, count) = row?;
        let count = count.max(0) as u64;
        // The sink is stored as its definition (JSON): reported by kind.
        let label = serde_json::from_str::<dagrun_workflow::heal::NotifyDef>(&sink).map_or("unknown", |s| s.label());
        let s = sinks.entry(label).or_insert_with(|| SinkDeliveries { sink: label.to_owned(), ..Default::default() });
        let (all, one) = match state.as_str() {
            "delivered" => (&mut n.delivered, &mut s.delivered),
            "failed" => (&mut n.given_up, &mut s.given_up),
            _ => (&mut n.pending, &mut s.pending),
        };
        *all += count;
        *one += count;
    }
    n.sinks = sinks.into_values().collect();
    Ok(n)
}

impl History {
    /// What the history holds for `q`'s window.
    pub fn facts(&self, q: &ReportQuery) -> Result<Facts, HistoryError> {
        self.with(|tx| {
            let runs = select_runs(
                tx,
                "WHERE started_ms BETWEEN ?1 AND ?2 AND (?3 IS NULL OR workflow = ?3) ORDER BY started_ms, id",
                params![q.since_ms, q.until_ms, q.workflow],
            )?;
            Ok(Facts {
                runs,
                moves: moves(tx, q)?,
                blocks: blocks(tx, q)?,
                incidents: incidents(tx, q)?,
                manual_minutes: manual_minutes(tx, q)?,
                notifications: notifications(tx, q)?,
            })
        })
    }

    /// The payoff report for `q`.
    pub fn report(&self, q: &ReportQuery) -> Result<Report, HistoryError> {
        Ok(compute(&self.facts(q)?, q))
    }
}
