//! Deciding approval requests: the one code path `dagrun approve` / `reject`, the daemon's
//! timeouts and the UI share. It records the decision in the history store and queues the
//! `approval_granted` / `approval_rejected` notification for the workflow's sinks.

use dagrun_history::{Approval, ApprovalState, DecideError, Decision, Fact, History, HistoryError, Notification};
use dagrun_workflow::heal::NotifyEvent;

/// Records `decision` on the requests run `run_id` made; returns them as decided.
pub fn decide(
    history: &History,
    run_id: &str,
    decision: Decision,
    by: &str,
    note: Option<&str>,
) -> Result<Vec<Approval>, DecideError> {
    let now = dagrun_cache::now_ms() as i64;
    let decided = history.decide(run_id, decision, by, note, now)?;
    for a in &decided {
        queue(history, a, now);
    }
    Ok(decided)
}

/// Applies due timeouts (each becomes its `on_timeout` decision) and notifies.
pub fn expire(history: &History) -> Result<Vec<Approval>, HistoryError> {
    let now = dagrun_cache::now_ms() as i64;
    let expired = history.expire_due(now)?;
    for a in &expired {
        queue(history, a, now);
    }
    Ok(expired)
}

/// Queues the decision's notification for the sinks the workflow had when the request was
/// made (recorded with it: the person deciding need not have the sinks' secrets).
fn queue(history: &History, a: &Approval, now: i64) {
    if a.sinks.is_empty() {
        return;
    }
    let n = notification(a, &a.binding.workflow, now);
    let dedup = format!("approval/{}/{}", a.id, a.state.as_str());
    let _ = history.enqueue(&n, &a.sinks, &a.workflow_dir, &dedup, now);
}

/// The notification of a decided request.
pub fn notification(a: &Approval, workflow: &str, now: i64) -> Notification {
    let model = format!("{} model {}", a.model, dagrun_history::approvals::short(&a.binding.model_digest));
    let by = a.decided_by.as_deref().unwrap_or("?");
    let (event, title) = match (a.state, by) {
        (ApprovalState::Approved, dagrun_history::approvals::TIMEOUT_DECIDER) => {
            (NotifyEvent::ApprovalGranted, format!("{workflow}: {model} approved by the timeout (nobody decided)"))
        }
        (ApprovalState::Approved, _) => (NotifyEvent::ApprovalGranted, format!("{workflow}: {by} approved {model}")),
        (_, dagrun_history::approvals::TIMEOUT_DECIDER) => (
            NotifyEvent::ApprovalRejected,
            format!("{workflow}: {model} rejected: nobody decided before the timeout; it is not deployed"),
        ),
        _ => (NotifyEvent::ApprovalRejected, format!("{workflow}: {by} rejected {model}; it is not deployed")),
    };
    let mut facts = vec![
        Fact { name: "request".into(), value: format!("#{} (run {})", a.id, a.run_id) },
        Fact { name: "asked because".into(), value: a.reasons.join("; ") },
    ];
    if let Some(note) = &a.note {
        facts.push(Fact { name: "note".into(), value: note.clone() });
    }
    Notification {
        event,
        workflow: workflow.to_owned(),
        run_id: Some(a.run_id.clone()),
        at_ms: a.decided_ms.unwrap_or(now),
        title,
        facts,
        action: None,
        details: serde_json::json!({
            "request": a.id,
            "model": a.model,
            "registry": a.registry,
            "model_digest": a.binding.model_digest,
            "verdict_digest": a.binding.verdict_digest,
            "decided_by": a.decided_by,
            "note": a.note,
        }),
    }
}
