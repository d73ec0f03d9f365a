//! A person's decision on a run an `Approval` step parked, and the run's resumption: the one
//! code path of `dagrun approve` / `dagrun reject` and the web UI's buttons. The decision is
//! recorded (`dagrun_exec::approvals::decide`, which queues its notification); an approval then
//! resumes the run like `dagrun trigger` ([`crate::trigger::trigger`]: a running daemon runs it,
//! without one it runs here): its upstream tasks are cache hits, its `Approval` step finds the
//! decision, and the deploy goes ahead. What happens is reported as [`Step`]s to a [`Progress`].

use std::path::{Path, PathBuf};

use dagrun_cache::Store;
use dagrun_exec::{PrepareError, RunRecord, RunRequest, RunStatus, TaskStatus};
use dagrun_history::{Approval, ApprovalState, DecideError, Decision, History, HistoryError};
use dagrun_plan::PartitionSelection;

use crate::trigger::{Here, Progress, Step, TriggerError, Triggered, record_manual, state_dir, wake};

/// A decision to make.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The run: its id, a unique prefix of it, or `last`.
    pub run: &'a str,
    /// Approve or reject.
    pub decision: Decision,
    /// Who decides (recorded with the decision).
    pub by: &'a str,
    /// Why, if they said.
    pub note: Option<&'a str>,
    /// `--state-dir`: where an approved run resumes (`None`: beside its workflow file).
    pub state: Option<&'a Path>,
}

/// Why nothing (or not everything) was done.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// A prefix of several runs.
    #[error("{0}")]
    Ambiguous(String),
    /// No run of that id asked for approval, and no record of it exists.
    #[error("no run `{run}` in {}: `dagrun approvals` lists the runs waiting for approval", dir.display())]
    NoRun {
        /// As asked.
        run: String,
        /// The state directory.
        dir: PathBuf,
    },
    /// The run waits, but the history store has no request of it.
    #[error("run {run} waits, but its request is not in {}: was the history store replaced?", dir.display())]
    LostRequest {
        /// The run.
        run: String,
        /// The state directory.
        dir: PathBuf,
    },
    /// The run does not wait for approval.
    #[error("run {run} is not waiting for approval (it {}): `dagrun approvals` lists the runs that are", status.as_str())]
    NotWaiting {
        /// The run.
        run: String,
        /// Its status.
        status: RunStatus,
    },
    /// An approval would strand the run: it cannot resume here (and no daemon runs it), so
    /// nothing was recorded.
    #[error(
        "cannot resume run {run} from {} here (see above), so nothing was recorded: fix it (or start the daemon that runs it), then approve again",
        workflow.display()
    )]
    CannotResume {
        /// The run.
        run: String,
        /// Its workflow file.
        workflow: PathBuf,
        /// Why the workflow cannot be prepared (shown before this error).
        cause: Box<PrepareError>,
    },
    /// The decision was refused (decided already, superseded) or could not be recorded.
    #[error(transparent)]
    Decide(#[from] DecideError),
    /// The history store failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The approved run could not resume.
    #[error(transparent)]
    Trigger(#[from] TriggerError),
}

/// How an approved run went on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// Queued for the daemon that runs its workflow.
    Queued {
        /// The event's id.
        event: i64,
        /// The daemon's process id.
        pid: u32,
    },
    /// Run here (`status`: `None` when a daemon took it after all).
    Here {
        /// The run's outcome.
        status: Option<RunStatus>,
        /// The registry version of the approved model, if it is deployed now.
        deployed: Option<String>,
    },
}

/// What [`decide`] did: the requests decided, and how each approved run went on.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The requests, as decided.
    pub approvals: Vec<Approval>,
    /// Per approved request, in order: how its run went on (empty for a rejection).
    pub resumed: Vec<Resumed>,
}

/// Decides the requests run `req.run` made, in the state directory of `store`, and resumes an
/// approved run. An approval is recorded only when its run can resume (a daemon runs the
/// workflow, or the workflow loads here): a decision never strands a run. Approving a run that
/// was approved but never resumed resumes it. A rejection delivers its notification (within
/// `here.notify_budget`).
pub async fn decide(
    store: &Store,
    req: Request<'_>,
    here: &Here,
    progress: &dyn Progress,
) -> Result<Decided, ApproveError> {
    let history = History::open(store.root())?;
    let record = match RunRecord::find(store, req.run) {
        Ok(r) => Some(r),
        // A prefix of several runs: say so (an id no record has may still have asked: a
        // history store copied without its run records).
        Err(e) if e.contains(" matches ") => return Err(ApproveError::Ambiguous(e)),
        Err(_) => None,
    };
    let run_id = record.as_ref().map_or(req.run, |r| r.id.as_str());
    let asked = history.approvals_of_run(run_id)?;
    // Only a request that can still be approved (or was, and its run did not resume) is checked:
    // every other one gets its own error from `decide`.
    let live = asked.iter().find(|a| matches!(a.state, ApprovalState::Pending | ApprovalState::Approved));
    if req.decision == Decision::Approve
        && let Some(a) = live
    {
        check_resumable(a, req.state)?;
    }
    let decided = match dagrun_exec::approvals::decide(&history, run_id, req.decision, req.by, req.note) {
        Ok(d) => d,
        Err(DecideError::NoRequest(_)) => return Err(no_request(req.run, record.as_ref(), store.root())),
        Err(DecideError::AlreadyDecided(a))
            if req.decision == Decision::Approve
                && a.state == ApprovalState::Approved
                && deployed_version(&a).is_none() =>
        {
            progress.step(Step::AlreadyApproved(&a));
            let approvals = vec![*a];
            let resumed = resume(&approvals, req.state, here, progress).await?;
            return Ok(Decided { approvals, resumed });
        }
        Err(e) => return Err(e.into()),
    };
    for a in &decided {
        progress.step(Step::Decided { approval: a, by: req.by });
    }
    if req.decision == Decision::Reject {
        progress.step(Step::Rejected);
        // The rejection's notification (an approval resumes a run, which delivers after it).
        crate::trigger::deliver(&history, here.notify_budget, progress).await;
        return Ok(Decided { approvals: decided, resumed: Vec::new() });
    }
    let resumed = resume(&decided, req.state, here, progress).await?;
    Ok(Decided { approvals: decided, resumed })
}

/// Whether the approved run can resume: a daemon runs its workflow, or the workflow loads here.
fn check_resumable(a: &Approval, state: Option<&Path>) -> Result<(), ApproveError> {
    if daemon_for(a, state).is_some() {
        return Ok(());
    }
    let mut req = RunRequest::new(dagrun_cache::now_ms() as i64 / 1000);
    if let Some(p) = &a.partition {
        req.partitions = PartitionSelection::Keys(vec![p.clone()]);
    }
    match dagrun_exec::prepare(&a.workflow_path, &req) {
        Ok(_) => Ok(()),
        Err(cause) => {
            let (run, workflow) = (a.run_id.clone(), a.workflow_path.clone());
            Err(ApproveError::CannotResume { run, workflow, cause: Box::new(cause) })
        }
    }
}

/// The daemon that runs the request's workflow on its state directory, if any.
fn daemon_for(a: &Approval, state: Option<&Path>) -> Option<crate::daemon::DaemonInfo> {
    let d = crate::daemon::running(&state_dir(state, &a.workflow_path))?;
    (d.workflows.is_empty() || d.workflows.contains(&a.binding.workflow)).then_some(d)
}

/// Resumes each approved run's workflow (the partition it parked) like `dagrun trigger`, and says
/// whether the approved model is deployed now.
pub async fn resume(
    decided: &[Approval],
    state: Option<&Path>,
    here: &Here,
    progress: &dyn Progress,
) -> Result<Vec<Resumed>, ApproveError> {
    let mut out = Vec::with_capacity(decided.len());
    for a in decided {
        let reason = format!("approval request #{} granted", a.id);
        if let Some(d) = daemon_for(a, state) {
            // The daemon runs it, in its own environment: nothing is loaded here.
            let dir = state_dir(state, &a.workflow_path);
            let now = dagrun_cache::now_ms() as i64;
            let (_, rec) = record_manual(&dir, &a.binding.workflow, a.partition.as_deref(), Some(&reason), now)
                .map_err(TriggerError::from)?;
            let woke = d.addr.as_deref().is_some_and(wake);
            progress.step(Step::Queued {
                event: rec.id,
                workflow: &a.binding.workflow,
                pid: d.pid,
                woke,
                resumes: true,
            });
            out.push(Resumed::Queued { event: rec.id, pid: d.pid });
            continue;
        }
        progress.step(Step::Resuming { workflow: &a.workflow_path });
        let ran =
            crate::trigger::trigger(&a.workflow_path, a.partition.as_deref(), Some(&reason), state, here, progress)
                .await?;
        let status = match ran {
            Triggered::Ran(r) => Some(r.status),
            Triggered::Queued { .. } => None,
        };
        let deployed = deployed_version(a);
        match &deployed {
            Some(v) => progress.step(Step::Deployed { approval: a, version: v }),
            None => progress.step(Step::NotDeployed { why: &why_not_deployed(state, here, a) }),
        }
        out.push(Resumed::Here { status, deployed });
    }
    Ok(out)
}

/// The registry version holding the approved model, when it is the current one.
pub fn deployed_version(a: &Approval) -> Option<String> {
    let registry = Path::new(&a.registry);
    let current = dagrun_contracts::registry::read_current(registry, &a.model).ok().flatten()?;
    let meta = dagrun_contracts::registry::read_metadata(registry, &a.model, &current).ok()?;
    (meta.digest == a.binding.model_digest).then_some(current)
}

/// The registry version that holds (or held) the approved model, current or not: `None` when
/// it was never deployed (its run did not resume, or did not get that far).
pub fn ever_deployed(a: &Approval) -> Option<String> {
    let registry = Path::new(&a.registry);
    dagrun_contracts::registry::versions(registry, &a.model).into_iter().map(|v| v.version).find(|v| {
        dagrun_contracts::registry::read_metadata(registry, &a.model, v)
            .is_ok_and(|m| m.digest == a.binding.model_digest)
    })
}

/// Why the run that resumed `a` did not deploy it, from its record (the newest run).
fn why_not_deployed(state: Option<&Path>, here: &Here, a: &Approval) -> String {
    let model = dagrun_history::approvals::short(&a.binding.model_digest);
    let dir = state_dir(state, &a.workflow_path);
    let run =
        Store::open_existing(&dir, here.durability).ok().flatten().and_then(|store| RunRecord::list(&store, 1).pop());
    let Some(run) = run else { return format!("model {model} is not the deployed one") };
    let failed = run.tasks.iter().find(|t| t.status == TaskStatus::Failed);
    let step = run.tasks.iter().find(|t| t.task == a.binding.task);
    match (failed, step) {
        (Some(t), _) => format!(
            "`{}` failed in run {}: {} (dagrun show {})",
            t.task,
            run.id,
            t.error.as_deref().and_then(|e| e.lines().next()).unwrap_or("failed"),
            run.id
        ),
        (None, Some(t)) if t.status == TaskStatus::Skipped => format!(
            "run {} did not reach `{}` ({}): the data or the deployed model changed since the request, so model {model} was not trained again; the next drift asks anew",
            run.id,
            t.task,
            t.error.as_deref().unwrap_or("skipped")
        ),
        _ => format!("run {} did not deploy model {model} (dagrun show {})", run.id, run.id),
    }
}

/// The error for a run that asked nothing: an unknown id, or a run that does not wait.
fn no_request(run: &str, record: Option<&RunRecord>, dir: &Path) -> ApproveError {
    match record {
        None => ApproveError::NoRun { run: run.to_owned(), dir: dir.to_path_buf() },
        Some(r) if r.status == RunStatus::Waiting => {
            ApproveError::LostRequest { run: r.id.clone(), dir: dir.to_path_buf() }
        }
        Some(r) => ApproveError::NotWaiting { run: r.id.clone(), status: r.status },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use dagrun_history::{Binding, NewApproval};

    use super::*;

    /// The steps as lines, and the run events' count.
    #[derive(Default)]
    struct Said(Mutex<Vec<String>>);

    impl Progress for Said {
        fn step(&self, step: Step<'_>) {
            let line = step.line().unwrap_or_else(|| format!("{step:?}"));
            self.0.lock().unwrap().push(line);
        }

        fn reporter(&self) -> Arc<dyn dagrun_exec::Reporter> {
            struct Quiet;
            impl dagrun_exec::Reporter for Quiet {
                fn report(&self, _: &dagrun_exec::Event) {}
            }
            Arc::new(Quiet)
        }
    }

    fn setup() -> (tempfile::TempDir, Store, History) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), dagrun_cache::Durability::NoFsync).unwrap();
        let history = History::open(dir.path()).unwrap();
        let ask = NewApproval {
            binding: Binding {
                workflow: "wf".into(),
                task: "approve".into(),
                model_digest: "aaaaaaaaaaaaaaaa".into(),
                verdict_digest: "v".into(),
            },
            workflow_path: dir.path().join("missing.ron"),
            partition: None,
            run_id: "r1".into(),
            registry: dir.path().join("registry").display().to_string(),
            model: "churn".into(),
            reasons: vec!["always".into()],
            detail: serde_json::Value::Null,
            requested_ms: 0,
            expires_ms: i64::MAX,
            on_timeout: dagrun_workflow::heal::OnTimeout::Reject,
            sinks: vec![],
            workflow_dir: dir.path().to_path_buf(),
        };
        history.ask(&ask, 0).unwrap();
        (dir, store, history)
    }

    fn here() -> Here {
        Here {
            options: dagrun_exec::RunOptions::new(1),
            durability: dagrun_cache::Durability::NoFsync,
            notify_budget: std::time::Duration::ZERO,
            cancel: dagrun_exec::Cancel::new(),
        }
    }

    fn decide_now(store: &Store, run: &str, decision: Decision, said: &Said) -> Result<Decided, ApproveError> {
        let req = Request { run, decision, by: "ana", note: Some("no"), state: None };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(decide(store, req, &here(), said))
    }

    #[test]
    fn a_rejection_is_recorded_and_said_step_by_step() {
        let (_dir, store, history) = setup();
        let said = Said::default();
        let d = decide_now(&store, "r1", Decision::Reject, &said).unwrap();
        assert_eq!((d.approvals.len(), d.approvals[0].state, d.resumed.len()), (1, ApprovalState::Rejected, 0));
        assert_eq!(
            *said.0.lock().unwrap(),
            [
                "request #1 rejected by ana: churn model aaaaaaaaaaaa for approve (run r1)",
                "the model is not deployed; the next model the workflow trains asks again",
            ]
        );
        let again = decide_now(&store, "r1", Decision::Approve, &Said::default()).unwrap_err();
        assert!(matches!(again, ApproveError::Decide(DecideError::AlreadyDecided(_))), "{again}");
        assert_eq!(history.approvals_of_run("r1").unwrap()[0].decided_by.as_deref(), Some("ana"));
    }

    #[test]
    fn an_approval_that_cannot_resume_records_nothing_and_unknown_runs_are_named() {
        let (dir, store, history) = setup();
        let said = Said::default();
        let e = decide_now(&store, "r1", Decision::Approve, &said).unwrap_err();
        assert!(matches!(e, ApproveError::CannotResume { .. }), "{e}");
        assert!(e.to_string().starts_with("cannot resume run r1 from "), "{e}");
        assert!(said.0.lock().unwrap().is_empty(), "nothing said: nothing done");
        assert_eq!(
            history.approvals_of_run("r1").unwrap()[0].state,
            ApprovalState::Pending,
            "a decision never strands a run"
        );
        let e = decide_now(&store, "nobody", Decision::Reject, &said).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "no run `nobody` in {}: `dagrun approvals` lists the runs waiting for approval",
                dir.path().display()
            )
        );
    }
}
