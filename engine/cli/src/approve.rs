//! `dagrun approve`, `dagrun reject` and `dagrun approvals`: a person's decisions on the runs
//! an `Approval` step parked, and the list of requests. An approval resumes the run like
//! `dagrun trigger` (a running daemon runs it; without one it runs here): its upstream tasks
//! are cache hits, its `Approval` step finds the decision, and the deploy goes ahead. The
//! decision and the resumption are `dagrun_automate::approve` (shared with the web UI); this
//! module parses, prints and lists.

use std::path::Path;

use dagrun_automate::approve::{self, ApproveError, Resumed};
use dagrun_exec::history_store::{Approval, ApprovalState, DecideError, Decision, History};

use crate::args::StateArgs;
use crate::commands::{error, existing_store, state_dir};
use crate::daemon::when;
use crate::exit::Exit;
use crate::printer::{errln, outln};

/// `dagrun approve|reject RUN [WORKFLOW] [--by NAME] [--note TEXT]`: the decision and the run's
/// resumption are `dagrun_automate::approve::decide` (the web UI's buttons call it too); this
/// prints its steps and turns its outcome into the exit code.
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
    let here = crate::run::here(None, false, false)?;
    let progress = crate::run::Printed::new(false);
    let req = approve::Request { run, decision, by: &by, note, state: state.state_dir.as_deref() };
    let decided = crate::run::interruptible(&here.cancel, approve::decide(&store, req, &here, &progress))?;
    decided.map(|d| exit_of(&d.resumed)).map_err(approve_error)
}

/// The exit code after resuming approved runs: a run here that did not deploy its model is a
/// failure (its own code when that says more than success or an alert).
fn exit_of(resumed: &[Resumed]) -> Exit {
    let mut exit = Exit::Success;
    for r in resumed {
        if let Resumed::Here { status, deployed: None } = r {
            let code = status.map_or(Exit::Success, Exit::of_run);
            exit = if matches!(code, Exit::Success | Exit::Alert) { Exit::TaskFailed } else { code };
        }
    }
    exit
}

/// The exit of a decision that could not be made (or a run that could not resume), its reason
/// printed.
pub(crate) fn approve_error(e: ApproveError) -> Exit {
    let message = e.to_string();
    match e {
        ApproveError::CannotResume { cause, .. } => {
            let code = Exit::of_prepare(&cause);
            crate::commands::report_prepare_error(*cause);
            error(message, code)
        }
        ApproveError::Trigger(t) => crate::run::trigger_error(t),
        ApproveError::LostRequest { .. } | ApproveError::History(_) | ApproveError::Decide(DecideError::History(_)) => {
            error(message, Exit::Internal)
        }
        ApproveError::Ambiguous(_)
        | ApproveError::NoRun { .. }
        | ApproveError::NotWaiting { .. }
        | ApproveError::Decide(_) => error(message, Exit::Usage),
    }
}

/// Resumes runs approved by a timeout (`dagrun approvals`), printing what happens.
fn resume(approved: &[Approval], state: &StateArgs) -> Result<(), Exit> {
    let here = crate::run::here(None, false, false)?;
    let progress = crate::run::Printed::new(false);
    let work = approve::resume(approved, state.state_dir.as_deref(), &here, &progress);
    crate::run::interruptible(&here.cancel, work)?.map(drop).map_err(approve_error)
}

/// Who decides: `--by`, else the login name.
fn decider(by: Option<&str>) -> Result<String, Exit> {
    let name = by.map(str::to_owned).or_else(|| std::env::var("USER").ok()).or_else(|| std::env::var("LOGNAME").ok());
    match name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
        Some(n) => Ok(n),
        None => Err(error("who decides? say it with --by NAME (recorded with the decision)", Exit::Usage)),
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
            && approve::ever_deployed(a).is_none()
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
        ApprovalState::Approved if approve::ever_deployed(a).is_none() => {
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
