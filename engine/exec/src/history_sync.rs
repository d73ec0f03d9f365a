//! Runs in the history store (`dagrun-history`): a run record as the store's plain rows, and
//! the import of the JSON records (`<state>/runs/*.json`) the store has not seen finished. The
//! JSON record stays the run's own file; the store is what the report and the UI query.

use std::path::Path;

use dagrun_cache::Store;
use dagrun_history::runs::{Blocked, RunCounts, Skipped};
use dagrun_history::{DriftColumn, DriftRow, History, HistoryError, RegistryRow, RunRow, TaskRow, VerdictRow};

use crate::events::TaskStatus;
use crate::history::{RegistryChange, RunRecord, TaskRecord};

/// How a refused gate's error starts (`kinds::onnx_eval`).
const GATE_REFUSED: &str = "gate refused: ";
/// How a rejected approval's error starts (`kinds::approval`).
const REJECTED: &str = "rejected ";
/// What the deploy plugin says when it will not deploy a model (`plugins/deploy`).
const DEPLOY_REFUSED: &str = "refusing to deploy";

impl RunRecord {
    /// The run as the history store keeps it. `workflow_dir`: the workflow file's directory, so a
    /// registry the workflow names by a relative path is keyed by the resolved directory (the key
    /// drift incidents use), the same model whichever workflow or working directory named it;
    /// `None`: as the record has it.
    pub fn to_row(&self, workflow_dir: Option<&Path>) -> RunRow {
        RunRow { tasks: self.task_rows(workflow_dir).collect(), ..self.header_row(workflow_dir) }
    }

    /// Writes the run into the history store, making its task rows one at a time (a large run's
    /// rows are never all held at once).
    pub fn record_in(&self, history: &History, workflow_dir: Option<&Path>) -> Result<(), HistoryError> {
        history.record_run_with(&self.header_row(workflow_dir), self.task_rows(workflow_dir))
    }

    /// The task rows of [`RunRecord::to_row`], made as they are asked for.
    fn task_rows<'a>(&'a self, workflow_dir: Option<&'a Path>) -> impl Iterator<Item = TaskRow> + 'a {
        self.tasks.iter().map(move |t| task_row(t, workflow_dir))
    }

    /// [`RunRecord::to_row`] without the task rows.
    fn header_row(&self, workflow_dir: Option<&Path>) -> RunRow {
        let c = &self.counts;
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        RunRow {
            id: self.id.clone(),
            workflow: self.workflow_name.clone(),
            workflow_path: self.workflow.clone(),
            started_ms: ms(self.started_ms),
            finished_ms: self.finished_ms.map(ms),
            // A record still `running` has no end: running now, or its process died (`killed`).
            status: if self.killed() { "killed".to_owned() } else { self.status.as_str().to_owned() },
            counts: RunCounts {
                tasks: n(c.total()),
                succeeded: n(c.succeeded),
                cached: n(c.cached),
                failed: n(c.failed),
                refused: n(c.refused),
                skipped: n(c.skipped),
                alerted: n(c.alerted),
                held: n(c.held),
                waiting: n(c.waiting),
            },
            saved_ms: ms(self.saved_ms),
            manual_minutes: self.manual_minutes,
            pid: self.pid,
            pid_started: self.pid_started.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
            tasks: Vec::new(),
            registry: self.registry.iter().map(|c| registry_row(c, workflow_dir)).collect(),
        }
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn task_row(t: &TaskRecord, workflow_dir: Option<&Path>) -> TaskRow {
    let error = t.error.as_deref().unwrap_or_default();
    let blocked = match t.status {
        TaskStatus::Refused if t.summary.as_ref().is_some_and(|s| s.get("approval").is_some()) => {
            Some(Blocked::Approval)
        }
        TaskStatus::Refused if error.starts_with(REJECTED) => Some(Blocked::Approval),
        TaskStatus::Refused => Some(Blocked::Gate),
        TaskStatus::Failed if error.contains(DEPLOY_REFUSED) => Some(Blocked::Deploy),
        _ => None,
    };
    TaskRow {
        task: t.task.clone(),
        status: t.status.as_str().to_owned(),
        duration_ms: ms(t.duration_ms),
        started_ms: t.started_ms.map(ms),
        cached: t.cached,
        saved_ms: ms(t.saved_ms),
        attempts: t.attempts,
        failure: t.failure.as_ref().and_then(|f| serde_json::to_string(f).ok()),
        error: t.error.clone(),
        key: t.key.map(|k| k.0.to_hex()),
        blocked,
        verdict: verdict(t, blocked),
        drift: t.summary.as_ref().and_then(|s| drift_row(s, workflow_dir)),
    }
}

/// A `Drift` task's per-column results, from its summary (`kinds::drift`: `columns`,
/// `predictions`, and `model` for a check of the deployed model). `None` for other tasks, and
/// for summaries written before they carried per-column results (only `drifted_columns`).
fn drift_row(s: &serde_json::Value, workflow_dir: Option<&Path>) -> Option<DriftRow> {
    s.get("drifted_columns")?;
    let data = s.get("columns")?.as_array()?;
    let predictions = s.get("predictions").and_then(|p| p.as_array()).map_or(&[][..], Vec::as_slice);
    let columns = (data.iter().map(|c| (c, false)))
        .chain(predictions.iter().map(|c| (c, true)))
        .filter_map(|(c, prediction)| {
            Some(DriftColumn {
                column: c["column"].as_str()?.to_owned(),
                prediction,
                kind: c["kind"].as_str().unwrap_or_default().to_owned(),
                test: c["test"].as_str()?.to_owned(),
                statistic: c["statistic"].as_f64(),
                p_value: c["p_value"].as_f64(),
                threshold: c["threshold"].as_f64()?,
                decision: c["decision"].as_str()?.to_owned(),
                critical: c["critical"].as_bool().unwrap_or(false),
            })
        })
        .collect();
    let model = &s["model"];
    let registry = model["registry"].as_str().map(|r| match workflow_dir {
        Some(dir) => crate::aftermath::registry_key_in(dir, r),
        None => r.to_owned(),
    });
    Some(DriftRow { registry, model: model["name"].as_str().map(str::to_owned), columns })
}

/// A gate's decision: from its summary (`verdict`, `reason`, and for a refusal the `shortfall`),
/// or for a refusal recorded before summaries carried it, from its error.
fn verdict(t: &TaskRecord, blocked: Option<Blocked>) -> Option<VerdictRow> {
    let s = t.summary.as_ref();
    let decision = s.and_then(|s| s["verdict"].as_str());
    match decision {
        Some(d @ ("pass" | "refuse")) => {
            let s = s.expect("has a decision");
            let short = &s["shortfall"];
            let reason = s["reason"].as_str().map(str::to_owned);
            let reason = reason.or_else(|| t.error.as_deref().map(|e| e.trim_start_matches(GATE_REFUSED).to_owned()));
            Some(VerdictRow {
                decision: d.to_owned(),
                reason: reason.unwrap_or_default(),
                metric: short["metric"].as_str().map(str::to_owned),
                value: short["value"].as_f64(),
                threshold: short["threshold"].as_f64(),
                shortfall: short["by"].as_f64(),
            })
        }
        _ if blocked == Some(Blocked::Gate) => Some(VerdictRow {
            decision: "refuse".to_owned(),
            reason: t.error.as_deref().unwrap_or("refused").trim_start_matches(GATE_REFUSED).to_owned(),
            ..VerdictRow::default()
        }),
        _ => None,
    }
}

fn registry_row(c: &RegistryChange, workflow_dir: Option<&Path>) -> RegistryRow {
    RegistryRow {
        registry: workflow_dir
            .map_or_else(|| c.registry.clone(), |dir| crate::aftermath::registry_key_in(dir, &c.registry)),
        model: c.name.clone(),
        before: c.before.clone(),
        after: c.after.clone(),
        moved: match c.moved_up() {
            Some(true) => 1,
            Some(false) => -1,
            None => 0,
        },
    }
}

/// What [`sync_history`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    /// Records written to the store (new, or finished since the store last saw them).
    pub imported: usize,
    /// Records that could not be read (corrupt, or of a newer dagrun): left out.
    pub skipped: Vec<Skipped>,
}

/// Brings the history store up to date with the JSON run records: every record the store does
/// not have finished is read and written (a run imported while `running` is updated once its
/// record has an end). Idempotent, and cheap when there is nothing new: finished runs are not
/// read again. A record that cannot be read is skipped and named, never fatal.
pub fn sync_history(store: &Store, history: &History) -> Result<Synced, HistoryError> {
    let settled = history.settled_runs()?;
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for id in RunRecord::ids(store).into_iter().filter(|id| !settled.contains(id)) {
        match RunRecord::read(store, &id) {
            Ok(r) => {
                // The record names its workflow as it was given (relative to where it ran): when
                // that file is found from here, its registries are resolved like a live run's.
                let file = Path::new(&r.workflow);
                let dir = file.is_file().then(|| file.parent().unwrap_or(Path::new("")));
                rows.push(r.to_row(dir))
            }
            Err(e) => {
                let path = RunRecord::path(store, &id).display().to_string();
                skipped.push(Skipped { path, reason: e.to_string() });
            }
        }
    }
    let imported = if rows.is_empty() { 0 } else { history.import_runs(&rows)? };
    Ok(Synced { imported, skipped })
}

#[cfg(test)]
#[path = "history_sync_tests.rs"]
mod tests;
