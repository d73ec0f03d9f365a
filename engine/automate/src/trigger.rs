//! `dagrun trigger`: a manual event, written to the log like any other; a running daemon is
//! woken to run it, otherwise it runs here at once (and the event is closed): [`trigger`], the
//! one code path of `dagrun trigger` and of resuming an approved run ([`crate::approve`]). What
//! happens is reported as [`Step`]s and run events to a [`Progress`].

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dagrun_cache::Durability;
use dagrun_exec::{
    Cancel, Engine, PrepareError, Reporter, RunError, RunOptions, RunPlan, RunRecord, RunRequest, RunStatus,
};
use dagrun_history::{Approval, ApprovalState};
use dagrun_plan::PartitionSelection;

use crate::log::{EventLog, LogError, NewEvent, Recorded, Source};

/// Whether `key` names a partition of every partition scheme the workflow's tasks use (what
/// a run over it needs); why not, otherwise.
pub fn check_partition(wf: &dagrun_workflow::Workflow, key: &str) -> Result<(), String> {
    let used = wf.used_schemes();
    if used.is_empty() {
        return Err(format!("workflow `{}` has no partitioned task: it takes no partition", wf.name));
    }
    for (name, scheme) in used {
        if scheme.find(key).is_none() {
            let hint = match scheme {
                dagrun_workflow::partition::Scheme::List(keys) => format!("its keys: {}", keys.join(", ")),
                dagrun_workflow::partition::Scheme::Time { .. } => {
                    "a date within its range, e.g. 2025-01-31, or an hour, e.g. 2025-01-31T05".to_owned()
                }
            };
            return Err(format!("`{key}` is not a partition of scheme `{name}` of workflow `{}` ({hint})", wf.name));
        }
    }
    Ok(())
}

/// Records a manual event for workflow `name` in the log of state directory `state`.
pub fn record_manual(
    state: &Path,
    name: &str,
    partition: Option<&str>,
    reason: Option<&str>,
    now_ms: i64,
) -> Result<(EventLog, Recorded), LogError> {
    let log = EventLog::open(state)?;
    // Every `dagrun trigger` is an event of its own: the key only has to be unique.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let key = format!("manual:{now_ms}:{}:{nanos}", std::process::id());
    let detail = serde_json::json!({"reason": reason, "by": std::env::var("USER").ok()});
    let event = NewEvent {
        workflow: name.to_owned(),
        source: Source::Manual,
        key,
        partition: partition.map(str::to_owned),
        detail,
        at_ms: now_ms,
    };
    let r = log.record(&[event])?[0];
    Ok((log, r))
}

/// Asks the daemon listening at `addr` to look at the log now (`POST /v1/wake`). `false` when
/// it could not be reached: it still finds the event at its next wake-up.
pub fn wake(addr: &str) -> bool {
    let Ok(sock) = addr.parse::<std::net::SocketAddr>() else { return false };
    let Ok(mut s) = TcpStream::connect_timeout(&sock, Duration::from_secs(2)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("POST /v1/wake HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 2")
}

/// The state directory of a workflow: `state` when given (`--state-dir`), else `.dagrun` beside
/// the workflow file (what `dagrun run` uses).
pub fn state_dir(state: Option<&Path>, workflow: &Path) -> PathBuf {
    if let Some(dir) = state {
        return dir.to_path_buf();
    }
    let base = std::path::absolute(workflow)
        .ok()
        .and_then(|w| w.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join(".dagrun")
}

/// How a run started here (not by a daemon) runs: the caller's settings.
#[derive(Debug, Clone)]
pub struct Here {
    /// The engine's run options (`run_id` is set by [`trigger`] itself).
    pub options: RunOptions,
    /// How the state directory writes.
    pub durability: Durability,
    /// How long to deliver the notifications due after the run (zero: none are tried).
    pub notify_budget: Duration,
    /// Stops the run (Ctrl-C, SIGTERM).
    pub cancel: Cancel,
}

/// What [`trigger`], [`run_here`] and [`crate::approve`] say as they go, in order: the CLI prints
/// each step, the web UI collects them.
#[derive(Debug)]
pub enum Step<'a> {
    /// A request decided now.
    Decided {
        /// The request, decided.
        approval: &'a Approval,
        /// Who decided.
        by: &'a str,
    },
    /// Approving a request approved before whose run did not resume: it resumes now.
    AlreadyApproved(&'a Approval),
    /// A rejection: nothing is deployed.
    Rejected,
    /// A manual event queued for the daemon that runs the workflow.
    Queued {
        /// The event's id in the log.
        event: i64,
        /// The workflow.
        workflow: &'a str,
        /// The daemon's process id.
        pid: u32,
        /// Whether it was woken (else it finds the event at its next look at the log).
        woke: bool,
        /// The event resumes an approved run.
        resumes: bool,
    },
    /// No daemon runs the workflow: the event runs here.
    RunningHere {
        /// The event's id.
        event: i64,
        /// The workflow.
        workflow: &'a str,
        /// The daemon running on the state directory (which does not run this workflow), if any.
        daemon: Option<u32>,
        /// The state directory.
        dir: &'a Path,
    },
    /// An approved run resumes here.
    Resuming {
        /// The workflow file.
        workflow: &'a Path,
    },
    /// A run here ended (the CLI prints its table of tasks).
    RunFinished(&'a RunRecord),
    /// The notifications due after a run (or a rejection) were delivered, as far as the time
    /// allowed.
    Notifications(&'a dagrun_notify::Summary),
    /// The approved model is the deployed one now.
    Deployed {
        /// The request.
        approval: &'a Approval,
        /// Its registry version.
        version: &'a str,
    },
    /// The resumed run did not deploy the approved model.
    NotDeployed {
        /// Why, in words.
        why: &'a str,
    },
}

impl Step<'_> {
    /// The step as one line for people (what `dagrun approve` and `dagrun trigger` print); `None`
    /// for [`Step::RunFinished`] and [`Step::Notifications`], which the caller renders.
    pub fn line(&self) -> Option<String> {
        let short = dagrun_history::approvals::short;
        Some(match self {
            Step::Decided { approval: a, by } => format!(
                "request #{} {} by {by}: {} model {} for {} (run {})",
                a.id,
                if a.state == ApprovalState::Approved { "approved" } else { "rejected" },
                a.model,
                short(&a.binding.model_digest),
                a.binding.task,
                a.run_id
            ),
            Step::AlreadyApproved(a) => format!(
                "request #{} was approved already (by {}); resuming its run",
                a.id,
                a.decided_by.as_deref().unwrap_or("?")
            ),
            Step::Rejected => "the model is not deployed; the next model the workflow trains asks again".to_owned(),
            Step::Queued { event, workflow, pid, woke, resumes } => {
                let when = if *woke { "now" } else { "at its next look at the log" };
                if *resumes {
                    format!(
                        "event #{event} queued for {workflow}; the daemon (pid {pid}) resumes the run {when}: `dagrun runs` and the notifications tell whether the model was deployed"
                    )
                } else {
                    format!(
                        "event #{event} queued for {workflow}; the daemon (pid {pid}) runs it {when} (see `dagrun daemon status`)"
                    )
                }
            }
            Step::RunningHere { event, workflow, daemon: Some(pid), .. } => {
                format!("the daemon (pid {pid}) does not run `{workflow}`: running event #{event} here")
            }
            Step::RunningHere { event, daemon: None, dir, .. } => {
                format!("no daemon is running on {}: running event #{event} here", dir.display())
            }
            Step::Resuming { workflow } => {
                format!("resuming {}: its Approval step now lets the deploy go ahead", workflow.display())
            }
            Step::Deployed { approval: a, version } => {
                format!("deployed: {} {version} is the approved model {}", a.model, short(&a.binding.model_digest))
            }
            Step::NotDeployed { why } => format!("not deployed: {why}"),
            Step::RunFinished(_) | Step::Notifications(_) => return None,
        })
    }

    /// Whether the line is a problem or a side note (stderr), rather than the outcome (stdout).
    pub fn is_note(&self) -> bool {
        matches!(
            self,
            Step::RunningHere { .. } | Step::NotDeployed { .. } | Step::RunFinished(_) | Step::Notifications(_)
        )
    }
}

/// Where [`trigger`] and [`crate::approve`] report: their steps, and the events of a run here.
pub trait Progress: Send + Sync {
    /// One step.
    fn step(&self, step: Step<'_>);
    /// The reporter of a run started here.
    fn reporter(&self) -> Arc<dyn Reporter>;
}

/// Why a trigger (or the resumption of an approved run) could not run.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The workflow could not be prepared.
    #[error(transparent)]
    Prepare(PrepareError),
    /// The partition is not one of the workflow's, or another workflow runs under its name.
    #[error("{0}")]
    Usage(String),
    /// The event log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The state directory could not be opened.
    #[error("cannot open state directory: {0}")]
    Open(String),
    /// The run could not start or finish.
    #[error(transparent)]
    Run(RunError),
}

/// What [`trigger`] did.
#[derive(Debug)]
pub enum Triggered {
    /// The event is queued for the daemon that runs the workflow.
    Queued {
        /// The event's id.
        event: i64,
        /// The daemon's process id.
        pid: u32,
    },
    /// It ran here: the run's record.
    Ran(Box<RunRecord>),
}

/// `dagrun trigger`: records a manual event for the workflow at `path` (its partition `partition`,
/// if given); a running daemon that runs the workflow is woken to run it, otherwise it runs here
/// ([`run_here`]) and the event is closed.
pub async fn trigger(
    path: &Path,
    partition: Option<&str>,
    reason: Option<&str>,
    state: Option<&Path>,
    here: &Here,
    progress: &dyn Progress,
) -> Result<Triggered, TriggerError> {
    let now_s = dagrun_cache::now_ms() as i64 / 1000;
    let mut req = RunRequest::new(now_s);
    if let Some(p) = partition {
        req.partitions = PartitionSelection::Keys(vec![p.to_owned()]);
    }
    let plan = dagrun_exec::prepare(path, &req).map_err(TriggerError::Prepare)?;
    if let Some(p) = partition {
        check_partition(&plan.workflow, p).map_err(TriggerError::Usage)?;
    }
    let dir = state_dir(state, path);
    let name = plan.workflow.name.clone();
    let now = dagrun_cache::now_ms() as i64;
    let running = crate::daemon::running(&dir);
    let daemon = running.clone().filter(|d| d.workflows.is_empty() || d.workflows.contains(&name));
    if let Some(d) = &daemon
        && let Some(theirs) = d.files.get(&name)
    {
        let same = |p: &Path| std::fs::canonicalize(p).ok();
        if same(theirs) != same(path) {
            return Err(TriggerError::Usage(format!(
                "the daemon (pid {}) runs workflow `{name}` from {}, not from {}: workflow names must be unique \
                 in one state directory; rename one of them",
                d.pid,
                theirs.display(),
                path.display()
            )));
        }
    }
    let (log, rec) = record_manual(&dir, &name, partition, reason, now)?;
    if let Some(d) = daemon {
        let woke = d.addr.as_deref().is_some_and(wake);
        progress.step(Step::Queued { event: rec.id, workflow: &name, pid: d.pid, woke, resumes: false });
        return Ok(Triggered::Queued { event: rec.id, pid: d.pid });
    }
    progress.step(Step::RunningHere { event: rec.id, workflow: &name, daemon: running.map(|d| d.pid), dir: &dir });
    let run_id = dagrun_exec::new_run_id(dagrun_cache::now_ms());
    log.start_run(&run_id, &name, &[rec.id], now)?;
    let mut here = here.clone();
    here.options.run_id = Some(run_id.clone());
    let result = run_here(&plan, &dir, &here, progress).await;
    let end = dagrun_cache::now_ms() as i64;
    match &result {
        Ok(r) if r.status == RunStatus::Interrupted => log.requeue_run(&run_id, "interrupted", end)?,
        Ok(r) => log.finish_run(&run_id, r.status.as_str(), end)?,
        // Nobody else would run it: the event is closed as not run.
        Err(_) => {
            log.requeue_run(&run_id, "not started", end)?;
            log.skip(&[rec.id], "not run: the run could not start", end)?;
        }
    }
    result.map(|r| Triggered::Ran(Box::new(r)))
}

/// Runs a prepared plan here, on the state directory `dir`: the run's events go to
/// `progress.reporter()`, its end is a [`Step::RunFinished`]; then, unless the run was
/// cancelled, the notifications due are delivered within `here.notify_budget`.
pub async fn run_here(
    plan: &RunPlan,
    dir: &Path,
    here: &Here,
    progress: &dyn Progress,
) -> Result<RunRecord, TriggerError> {
    let engine = Engine::open(dir, here.durability).map_err(|e| TriggerError::Open(e.to_string()))?;
    run_on(&engine, plan, here, progress).await
}

/// [`run_here`] on an engine already open on the state directory (e.g. opened, and told to
/// [`Engine::preload`], while the caller read the workflow).
pub async fn run_on(
    engine: &Engine,
    plan: &RunPlan,
    here: &Here,
    progress: &dyn Progress,
) -> Result<RunRecord, TriggerError> {
    let record = engine.run(plan, &here.options, progress.reporter(), &here.cancel).await.map_err(TriggerError::Run)?;
    progress.step(Step::RunFinished(&record));
    if !here.cancel.is_cancelled() {
        // After the run, never changing its outcome: what is left is retried later.
        deliver(engine.history(), here.notify_budget, progress).await;
    }
    Ok(record)
}

/// Delivers the notifications due within `budget` (zero: none), reporting what it did.
pub(crate) async fn deliver(history: &dagrun_history::History, budget: Duration, progress: &dyn Progress) {
    if budget.is_zero() {
        return;
    }
    let opts = dagrun_notify::DeliverOptions { budget: Some(budget), ..Default::default() };
    let summary = dagrun_notify::deliver_due(history, dagrun_cache::now_ms() as i64, &opts).await;
    progress.step(Step::Notifications(&summary));
}
