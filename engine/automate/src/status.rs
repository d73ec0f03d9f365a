//! `dagrun daemon status`: whether a daemon runs, and per workflow its next scheduled tick,
//! triggers, last events with their runs, and the queue, read from the event log; and the
//! notifications not delivered, read from the history store.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::daemon::{DaemonInfo, WorkflowSet, running};
use crate::log::{Event, EventLog, LogError, State};
use dagrun_workflow::automation::Trigger;

/// One workflow's status.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowStatus {
    /// Its name.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The cron expression and time zone, if scheduled.
    pub schedule: Option<String>,
    /// The next tick (Unix ms).
    pub next_ms: Option<i64>,
    /// Its triggers, described.
    pub triggers: Vec<String>,
    /// Events waiting for a run.
    pub queued: u64,
    /// The most recent events, newest first.
    pub recent: Vec<Event>,
}

/// The daemon's status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The running daemon, if any.
    pub daemon: Option<DaemonInfo>,
    /// Per workflow.
    pub workflows: Vec<WorkflowStatus>,
    /// Files that are not valid workflows, with their first problem.
    pub invalid: Vec<Invalid>,
    /// Notifications not delivered.
    pub notifications: Notifications,
}

/// Notifications not delivered (still retried, or given up), from `history.sqlite`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Notifications {
    /// Not delivered (counted up to [`NOTIFICATIONS_COUNTED`]).
    pub undelivered: usize,
    /// Of those, given up after the last attempt.
    pub given_up: usize,
    /// The most recent failure's error (never a secret), or why the history could not be read.
    pub last_error: Option<String>,
    /// When the next attempt is due (Unix ms).
    pub next_try_ms: Option<i64>,
}

/// Undelivered notifications counted at most.
pub const NOTIFICATIONS_COUNTED: usize = 10_000;

fn notifications(state: &Path) -> Notifications {
    if !state.join(dagrun_history::FILE_NAME).exists() {
        return Notifications::default();
    }
    let rows = dagrun_history::History::open(state)
        .and_then(|h| Ok((h.undelivered(None, NOTIFICATIONS_COUNTED)?, h.next_due()?)));
    match rows {
        Ok((rows, next)) => Notifications {
            undelivered: rows.len(),
            given_up: rows.iter().filter(|d| d.state == dagrun_history::DeliveryState::Failed).count(),
            last_error: rows.iter().find_map(|d| d.last_error.clone()),
            next_try_ms: next,
        },
        Err(e) => {
            Notifications { last_error: Some(format!("cannot read the history: {e}")), ..Notifications::default() }
        }
    }
}

/// A file that is not a valid workflow.
#[derive(Debug, Clone, Serialize)]
pub struct Invalid {
    /// The file.
    pub path: PathBuf,
    /// Its first problem (`dagrun validate` lists them all).
    pub problem: String,
}

/// Describes a trigger of workflow `workflow` in one line; `addr`: where the daemon listens.
pub fn describe(t: &Trigger, workflow: &str, addr: Option<&str>) -> String {
    match t {
        Trigger::FileLanded { glob, settle } => {
            format!("file landed: {glob} (settle {})", dagrun_workflow::duration::format(*settle))
        }
        Trigger::Webhook(w) => {
            let base = addr.map(|a| format!("http://{a}")).unwrap_or_default();
            format!("webhook: POST {base}/hooks/{workflow}/{} (token in ${})", w.name, w.token_env)
        }
        Trigger::TaskOutcome { workflow: other, task, when } => {
            let when = match when {
                dagrun_workflow::automation::Outcome::Json { output, pointer, equals } => {
                    format!("succeeded with {pointer} = {equals} in output `{output}`")
                }
                w => format!("{w:?}").to_lowercase(),
            };
            format!("task outcome: `{task}` of {other} {when}")
        }
    }
}

/// Reads the status of the workflows in `paths` (files, or directories of `*.ron`) from state
/// directory `state`.
pub fn status(paths: Vec<PathBuf>, state: &Path, now_ms: i64, recent: usize) -> Result<Status, LogError> {
    let mut set = WorkflowSet::for_status(paths);
    let mut invalid = Vec::new();
    for c in set.refresh() {
        match c {
            crate::daemon::Change::Invalid { path, diagnostics, .. } => {
                invalid.push(Invalid { path, problem: crate::daemon::first_problem(&diagnostics) })
            }
            crate::daemon::Change::Unusable { path, why } => invalid.push(Invalid { path, problem: why }),
            crate::daemon::Change::Loaded { .. } | crate::daemon::Change::Removed { .. } => {}
        }
    }
    let daemon = running(state);
    let addr = daemon.as_ref().and_then(|d| d.addr.clone());
    let log = if state.join(crate::log::FILE_NAME).exists() { Some(EventLog::open(state)?) } else { None };
    let mut workflows = Vec::new();
    for l in set.all() {
        let wf = &l.workflow;
        let a = &wf.automation;
        let (queued, recent) = match &log {
            Some(log) => {
                let counts = log.counts(&wf.name)?;
                let q = counts.iter().filter(|(s, _)| *s == State::Pending).map(|(_, n)| n).sum();
                (q, log.recent(Some(&wf.name), recent)?)
            }
            None => (0, Vec::new()),
        };
        let mark = match &log {
            Some(log) => log.schedule_mark(&wf.name)?.map(|(_, m)| m),
            None => None,
        };
        let next_ms = a.schedule.as_ref().and_then(|s| crate::ticks::next_after(s, mark.unwrap_or(now_ms).max(now_ms)));
        workflows.push(WorkflowStatus {
            name: wf.name.clone(),
            path: l.path.clone(),
            schedule: a.schedule.as_ref().map(|s| format!("{} ({})", s.expr, s.timezone)),
            next_ms,
            triggers: a.triggers.iter().map(|t| describe(t, &wf.name, addr.as_deref())).collect(),
            queued,
            recent,
        });
    }
    Ok(Status { daemon, workflows, invalid, notifications: notifications(state) })
}
