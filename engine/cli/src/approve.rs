//! `dagrun approve`, `dagrun reject` and `dagrun approvals`: a person's decisions on the runs
//! an `Approval` step parked, and the list of requests. An approval resumes the run like
//! `dagrun trigger` (a running daemon runs it; without one it runs here): its upstream tasks
//! are cache hits, its `Approval` step finds the decision, and the deploy goes ahead.

use std::path::Path;

use dagrun_exec::history_store::{Approval, ApprovalState, DecideError, Decision, History};
use dagrun_exec::{RunRecord, RunRequest, RunStatus};
use dagrun_plan::PartitionSelection;

use crate::args::StateArgs;
use crate::commands::{error, existing_store, state_dir};
use crate::daemon::when;
use crate::exit::Exit;
use crate::printer::{errln, outln};

/// `dagrun approve|reject RUN [WORKFLOW] [--by NAME] [--note TEXT]`.
///
/// An approval is recorded only when its run can resume here (a daemon runs the workflow, or the
/// workflow loads in this environment): a decision never strands a run. Approving a run that was
/// approved but never resumed resumes it.
pub fn decide(
    run: &str,
    workflow: Option<&Path>,
    decision: Decision,
    by: Option<&str>,
    note: Option<&str>,
    state: &StateArgs,
) -> Result<Exit, Exit> {
    let by = decider(by)?;
    let store = match existing_store(state, workflow)? {
        Ok(store) => store,
        Err(dir) => {
            return Err(error(
                format!("no state directory at {}: nothing waits for approval there", dir.display()),
                Exit::Usage,
            ));
        }
    };
    let history = History::open(store.root()).map_err(|e| error(e, Exit::Internal))?;
    let record = match RunRecord::find(&store, run) {
        Ok(r) => Some(r),
        // A prefix of several runs: say so (an id no record has may still have asked: a
        // history store copied without its run records).
        Err(e) if e.contains(" matches ") => return Err(error(e, Exit::Usage)),
        Err(_) => None,
    };
    let run_id = record.as_ref().map_or(run, |r| r.id.as_str());
    let asked = history.approvals_of_run(run_id).map_err(|e| error(e, Exit::Internal))?;
    // Only a request that can still be approved (or was, and its run did not resume) is checked:
    // every other one gets its own error from `decide`.
    let live = asked.iter().find(|a| matches!(a.state, ApprovalState::Pending | ApprovalState::Approved));
    if decision == Decision::Approve
        && let Some(a) = live
    {
        check_resumable(a, state)?;
    }
    let decided = match dagrun_exec::approvals::decide(&history, run_id, decision, &by, note) {
        Ok(d) => d,
        Err(DecideError::NoRequest(_)) => return Err(no_request(run, record.as_ref(), store.root())),
        Err(DecideError::AlreadyDecided(a))
            if decision == Decision::Approve
                && a.state == ApprovalState::Approved
                && deployed_version(&a).is_none() =>
        {
            outln!(
                "request #{} was approved already (by {}); resuming its run",
                a.id,
                a.decided_by.as_deref().unwrap_or("?")
            );
            return resume(&[*a], state);
        }
        Err(e @ DecideError::History(_)) => return Err(error(e, Exit::Internal)),
        Err(e) => return Err(error(e, Exit::Usage)),
    };
    for a in &decided {
        let verb = if a.state == ApprovalState::Approved { "approved" } else { "rejected" };
        outln!(
            "request #{} {verb} by {by}: {} model {} for {} (run {})",
            a.id,
            a.model,
            short(&a.binding.model_digest),
            a.binding.task,
            a.run_id
        );
    }
    if decision == Decision::Reject {
        outln!("the model is not deployed; the next model the workflow trains asks again");
        // The rejection's notification (an approval resumes a run, which delivers after it).
        crate::notifications::deliver_here(&history)?;
        return Ok(Exit::Success);
    }
    resume(&decided, state)
}

/// Whether the approved run can resume: a daemon runs its workflow, or the workflow loads here.
fn check_resumable(a: &Approval, state: &StateArgs) -> Result<(), Exit> {
    if daemon_for(a, state).is_some() {
        return Ok(());
    }
    let mut req = RunRequest::new(dagrun_cache::now_ms() as i64 / 1000);
    if let Some(p) = &a.partition {
        req.partitions = PartitionSelection::Keys(vec![p.clone()]);
    }
    match dagrun_exec::prepare(&a.workflow_path, &req) {
        Ok(_) => Ok(()),
        Err(e) => {
            let code = Exit::of_prepare(&e);
            crate::commands::report_prepare_error(e);
            Err(error(
                format!(
                    "cannot resume run {} from {} here (see above), so nothing was recorded: fix it (or start the daemon that runs it), then approve again",
                    a.run_id,
                    a.workflow_path.display()
                ),
                code,
            ))
        }
    }
}

/// The daemon that runs the request's workflow on this state directory, if any.
fn daemon_for(a: &Approval, state: &StateArgs) -> Option<dagrun_automate::daemon::DaemonInfo> {
    let dir = state_dir(state, Some(&a.workflow_path));
    let d = dagrun_automate::daemon::running(&dir)?;
    (d.workflows.is_empty() || d.workflows.contains(&a.binding.workflow)).then_some(d)
}

/// Resumes each approved run's workflow (the partition it parked) like `dagrun trigger`, and says
/// whether the approved model is deployed now.
fn resume(decided: &[Approval], state: &StateArgs) -> Result<Exit, Exit> {
    let mut exit = Exit::Success;
    for a in decided {
        let reason = format!("approval request #{} granted", a.id);
        if let Some(d) = daemon_for(a, state) {
            // The daemon runs it, in its own environment: nothing is loaded here.
            let dir = state_dir(state, Some(&a.workflow_path));
            let now = dagrun_cache::now_ms() as i64;
            let (_, rec) = dagrun_automate::trigger::record_manual(
                &dir,
                &a.binding.workflow,
                a.partition.as_deref(),
                Some(&reason),
                now,
            )
            .map_err(|e| error(e, Exit::Internal))?;
            let woke = d.addr.as_deref().is_some_and(dagrun_automate::trigger::wake);
            let when = if woke { "now" } else { "at its next look at the log" };
            outln!(
                "event #{} queued for {}; the daemon (pid {}) resumes the run {when}: `dagrun runs` and the notifications tell whether the model was deployed",
                rec.id,
                a.binding.workflow,
                d.pid
            );
            continue;
        }
        outln!("resuming {}: its Approval step now lets the deploy go ahead", a.workflow_path.display());
        let code = crate::daemon::trigger(&a.workflow_path, a.partition.as_deref(), Some(&reason), state)?;
        match deployed_version(a) {
            Some(v) => outln!("deployed: {} {v} is the approved model {}", a.model, short(&a.binding.model_digest)),
            None => {
                errln!("not deployed: {}", why_not_deployed(state, a));
                exit = if matches!(code, Exit::Success | Exit::Alert) { Exit::TaskFailed } else { code };
            }
        }
    }
    Ok(exit)
}

/// The registry version holding the approved model, when it is the current one.
fn deployed_version(a: &Approval) -> Option<String> {
    let registry = Path::new(&a.registry);
    let current = dagrun_contracts::registry::read_current(registry, &a.model).ok().flatten()?;
    let meta = dagrun_contracts::registry::read_metadata(registry, &a.model, &current).ok()?;
    (meta.digest == a.binding.model_digest).then_some(current)
}

/// The registry version that holds (or held) the approved model, current or not: `None` when
/// it was never deployed (its run did not resume, or did not get that far).
fn ever_deployed(a: &Approval) -> Option<String> {
    let registry = Path::new(&a.registry);
    dagrun_contracts::registry::versions(registry, &a.model).into_iter().map(|v| v.version).find(|v| {
        dagrun_contracts::registry::read_metadata(registry, &a.model, v)
            .is_ok_and(|m| m.digest == a.binding.model_digest)
    })
}

/// Why the run that resumed `a` did not deploy it, from its record (the newest run).
fn why_not_deployed(state: &StateArgs, a: &Approval) -> String {
    let model = short(&a.binding.model_digest);
    let dir = state_dir(state, Some(&a.workflow_path));
    let run = dagrun_cache::Store::open_existing(&dir, crate::commands::durability())
        .ok()
        .flatten()
        .and_then(|store| RunRecord::list(&store, 1).pop());
    let Some(run) = run else { return format!("model {model} is not the deployed one") };
    let failed = run.tasks.iter().find(|t| t.status == dagrun_exec::TaskStatus::Failed);
    let step = run.tasks.iter().find(|t| t.task == a.binding.task);
    match (failed, step) {
        (Some(t), _) => format!(
            "`{}` failed in run {}: {} (dagrun show {})",
            t.task,
            run.id,
            t.error.as_deref().and_then(|e| e.lines().next()).unwrap_or("failed"),
            run.id
        ),
        (None, Some(t)) if t.status == dagrun_exec::TaskStatus::Skipped => format!(
            "run {} did not reach `{}` ({}): the data or the deployed model changed since the request, so model {model} was not trained again; the next drift asks anew",
            run.id,
            t.task,
            t.error.as_deref().unwrap_or("skipped")
        ),
        _ => format!("run {} did not deploy model {model} (dagrun show {})", run.id, run.id),
    }
}

/// Who decides: `--by`, else the login name.
fn decider(by: Option<&str>) -> Result<String, Exit> {
    let name = by.map(str::to_owned).or_else(|| std::env::var("USER").ok()).or_else(|| std::env::var("LOGNAME").ok());
    match name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
        Some(n) => Ok(n),
        None => Err(error("who decides? say it with --by NAME (recorded with the decision)", Exit::Usage)),
    }
}

/// The error for a run that asked nothing: an unknown id, or a run that does not wait.
fn no_request(run: &str, record: Option<&RunRecord>, dir: &Path) -> Exit {
    match record {
        None => error(
            format!("no run `{run}` in {}: `dagrun approvals` lists the runs waiting for approval", dir.display()),
            Exit::Usage,
        ),
        Some(r) if r.status == RunStatus::Waiting => error(
            format!("run {} waits, but its request is not in {}: was the history store replaced?", r.id, dir.display()),
            Exit::Internal,
        ),
        Some(r) => error(
            format!(
                "run {} is not waiting for approval (it {}): `dagrun approvals` lists the runs that are",
                r.id,
                r.status.as_str()
            ),
            Exit::Usage,
        ),
    }
}

/// `dagrun approvals [WORKFLOW] [--all] [-n N] [--json]`.
pub fn list(workflow: Option<&Path>, all: bool, limit: usize, json: bool, state: &StateArgs) -> Result<Exit, Exit> {
    let dir = state_dir(state, workflow);
    if !dir.join(dagrun_exec::history_store::FILE_NAME).is_file() {
        if !json {
            outln!("no approval requests: no history in {}", dir.display());
        }
        return Ok(Exit::Success);
    }
    let history = History::open(&dir).map_err(|e| error(e, Exit::Internal))?;
    // Due timeouts are decided (and notified) before anything is listed; one that approves
    // resumes its run, as an approval does.
    match dagrun_exec::approvals::expire(&history) {
        Ok(expired) => {
            let approved: Vec<Approval> = expired.into_iter().filter(|a| a.state == ApprovalState::Approved).collect();
            for a in &approved {
                outln!("request #{} was approved by its timeout (on_timeout: Approve)", a.id);
            }
            if !approved.is_empty() {
                resume(&approved, state)?;
            }
        }
        Err(e) => errln!("warning: {e}"),
    }
    let now = dagrun_cache::now_ms() as i64;
    let listed = if all {
        history.approvals(None, limit, now).map_err(|e| error(e, Exit::Internal))?
    } else {
        waiting(&history, limit, now)?
    };
    if json {
        for a in &listed {
            outln!("{}", serde_json::to_string(a).expect("serializes"));
        }
        return Ok(Exit::Success);
    }
    if listed.is_empty() {
        let more = if all { "" } else { " (--all lists decided ones too)" };
        outln!("no run waits for approval{more}");
        return Ok(Exit::Success);
    }
    for a in &listed {
        outln!("{}", describe(a, now));
    }
    Ok(Exit::Success)
}

/// What waits for someone: pending requests, and approved ones whose model is not deployed
/// while no newer request of the same step exists (their run did not resume: `dagrun approve`
/// again resumes it).
fn waiting(history: &History, limit: usize, now: i64) -> Result<Vec<Approval>, Exit> {
    let every = history.approvals(None, usize::MAX, now).map_err(|e| error(e, Exit::Internal))?;
    let mut newest: std::collections::HashMap<(&str, &str), i64> = std::collections::HashMap::new();
    for a in &every {
        let id = newest.entry((&a.binding.workflow, &a.binding.task)).or_insert(a.id);
        *id = (*id).max(a.id);
    }
    let stuck = |a: &Approval| {
        a.state == ApprovalState::Approved
            && newest.get(&(a.binding.workflow.as_str(), a.binding.task.as_str())) == Some(&a.id)
            && ever_deployed(a).is_none()
    };
    let mut out: Vec<Approval> =
        every.iter().filter(|a| a.state == ApprovalState::Pending || stuck(a)).cloned().collect();
    out.truncate(limit);
    Ok(out)
}

/// A request as `dagrun approvals` prints it.
fn describe(a: &Approval, now: i64) -> String {
    let head = format!(
        "#{:<3} {:10} {} · {} model {} · run {} · asked {}",
        a.id,
        a.state.as_str().to_uppercase(),
        a.binding.workflow,
        a.model,
        short(&a.binding.model_digest),
        a.run_id,
        when(a.requested_ms)
    );
    let mut lines = vec![head, format!("      why:  {}", a.reasons.join("; "))];
    match a.state {
        ApprovalState::Pending => {
            let left = dagrun_workflow::duration::format(std::time::Duration::from_secs(
                ((a.expires_ms - now).max(0) / 1000) as u64,
            ));
            let then = match a.on_timeout {
                dagrun_workflow::heal::OnTimeout::Reject => "rejected",
                dagrun_workflow::heal::OnTimeout::Approve => "approved",
            };
            lines.push(format!(
                "      act:  dagrun approve {id} --by NAME   or   dagrun reject {id} --note TEXT",
                id = a.run_id
            ));
            lines.push(format!("      then: {then} by the timeout in {left} ({})", when(a.expires_ms)));
        }
        ApprovalState::Approved if ever_deployed(a).is_none() => {
            let by = a.decided_by.as_deref().unwrap_or("?");
            lines.push(format!(
                "      by:   {by}, but the model is not deployed: its run did not resume or did not deploy it"
            ));
            lines.push(format!("      act:  dagrun approve {} (resumes the run again)", a.run_id));
        }
        ApprovalState::Superseded => {
            lines.push("      by:   nobody: a newer model of the same step asked since (listed above)".to_owned());
        }
        _ => {
            let by = a.decided_by.as_deref().unwrap_or("?");
            let at = a.decided_ms.map(when).unwrap_or_default();
            let note = a.note.as_deref().map(|n| format!(": \"{n}\"")).unwrap_or_default();
            lines.push(format!("      by:   {by} at {at}{note}"));
        }
    }
    lines.join("\n")
}

fn short(digest: &str) -> &str {
    dagrun_exec::history_store::approvals::short(digest)
}
