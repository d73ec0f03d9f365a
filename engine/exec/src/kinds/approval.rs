//! The `Approval` kind: lets the deploy after it go ahead by itself, or parks the run until a
//! person decides. A person is asked when the workflow says `always`, when the candidate
//! changes too many predictions (the gate's `behaviour` measure), or when the circuit breaker
//! has tripped (too many automatic promotions of the model in its window). Requests and
//! decisions live in the history store, bound to the model's and the verdict's digests; the
//! step writes `approval.json` for the deploy. Never cached: a decision can arrive at any time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dagrun_contracts::approval::{APPROVAL_FILE, APPROVAL_VERSION, ApprovalDecision, ApprovalRecord};
use dagrun_history::{Approval, ApprovalState, Binding, NewApproval};
use dagrun_workflow::heal::{ApprovalTask, DEFAULT_APPROVAL_TIMEOUT, DEFAULT_MAX_LABEL_CHANGE, OnTimeout};

use crate::kinds::{Attempt, AttemptFuture, Job, Kind, blocking, place};
use crate::outcome::{AttemptError, Failure, TaskError};
use crate::shared::RunShared;

/// An `Approval` step prepared for one instance.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalKind {
    spec: ApprovalTask,
    model_digest: String,
    verdict: PathBuf,
    verdict_digest: String,
    registry: PathBuf,
    outputs: BTreeMap<String, PathBuf>,
    instance: String,
    partition: Option<String>,
}

impl ApprovalKind {
    pub(crate) fn new(job: &Job<'_>, spec: &ApprovalTask) -> Result<ApprovalKind, TaskError> {
        let model = job.input_file(&spec.model)?;
        let verdict = job.input_file(&spec.verdict)?;
        let node = &job.run.instances.nodes[job.index];
        Ok(ApprovalKind {
            spec: spec.clone(),
            model_digest: model.digest.0.to_hex(),
            verdict: verdict.path.clone(),
            verdict_digest: verdict.digest.0.to_hex(),
            registry: dagrun_plan::resolve_path(&job.run.workflow, &spec.deploys.registry),
            outputs: job.outputs.clone(),
            instance: node.name.clone(),
            // The instance's partition, or for an unpartitioned step the run's newest one:
            // resuming that partition rebuilds the same window, so the same model asks again.
            partition: node
                .partition
                .as_ref()
                .map(|p| p.key.clone())
                .or_else(|| job.run.instances.partition_keys().pop()),
        })
    }
}

impl Kind for ApprovalKind {
    fn attempt<'a>(&'a self, a: Attempt<'a>) -> AttemptFuture<'a> {
        let stage = a.stage_dir("approval");
        let (this, run) = (self.clone(), a.run.clone());
        Box::pin(async move {
            let stage2 = stage.clone();
            let result = blocking(Failure::Input, move || this.decide(&run, &stage2)).await;
            let _ = std::fs::remove_dir_all(&stage);
            result
        })
    }
}

fn input_error(message: String) -> TaskError {
    TaskError::permanent(Failure::Input, message)
}

impl ApprovalKind {
    /// Decides (blocking): automatic, approved, rejected, or waiting.
    fn decide(&self, run: &RunShared, stage: &Path) -> Result<Option<serde_json::Value>, AttemptError> {
        let verdict = self.read_verdict()?;
        let now = dagrun_cache::now_ms() as i64;
        let reasons = self.reasons(&verdict, now)?;
        if reasons.is_empty() {
            self.write(stage, self.record(ApprovalDecision::Automatic, None))?;
            return Ok(Some(serde_json::json!({"approval": {"decision": "automatic"}})));
        }
        let timeout = self.spec.timeout.as_deref().unwrap_or(DEFAULT_APPROVAL_TIMEOUT);
        let timeout = dagrun_workflow::duration::parse(timeout).unwrap_or(Duration::from_secs(3 * 86_400));
        let request = NewApproval {
            binding: Binding {
                workflow: run.workflow.name.clone(),
                task: self.instance.clone(),
                model_digest: self.model_digest.clone(),
                verdict_digest: self.verdict_digest.clone(),
            },
            workflow_path: std::path::absolute(&run.plan_path).unwrap_or_else(|_| run.plan_path.clone()),
            partition: self.partition.clone(),
            run_id: run.run_id.clone(),
            registry: self.registry.display().to_string(),
            model: self.spec.deploys.name.clone(),
            reasons,
            detail: serde_json::json!({
                "verdict": verdict.get("reason").cloned().unwrap_or_default(),
                "behaviour": verdict.get("behaviour").cloned().unwrap_or_default(),
            }),
            requested_ms: now,
            expires_ms: now.saturating_add(timeout.as_millis() as i64),
            on_timeout: self.spec.on_timeout,
            sinks: run.workflow.notify.clone(),
            workflow_dir: run.workflow.dir.clone(),
        };
        let (a, created) = run
            .history
            .ask(&request, now)
            .map_err(|e| TaskError::new(Failure::Cache, format!("cannot record the approval request: {e}")))?;
        let summary = summary(&a, created);
        match a.state {
            ApprovalState::Approved => {
                self.write(stage, self.record(ApprovalDecision::Approved, Some(&a)))?;
                Ok(Some(summary))
            }
            ApprovalState::Rejected => {
                let who = match a.decided_by.as_deref() {
                    Some(dagrun_history::approvals::TIMEOUT_DECIDER) => "by the timeout (nobody decided)".to_owned(),
                    Some(by) => format!("by {by}"),
                    None => String::new(),
                };
                let note = a.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
                let reason = format!("rejected {who}{note} (request #{})", a.id);
                Err(AttemptError::Refused { reason, summary: Some(summary) })
            }
            ApprovalState::Pending | ApprovalState::Superseded => Err(AttemptError::Waiting {
                reason: format!(
                    "waits for approval: {} — `dagrun approve {run}` or `dagrun reject {run}` (request #{}, times out {})",
                    a.reasons.join("; "),
                    a.id,
                    timeout_text(a.expires_ms, self.spec.on_timeout),
                    run = a.run_id,
                ),
                summary: Some(summary),
            }),
        }
    }

    /// The verdict, as JSON: it must pass, and be about this model.
    fn read_verdict(&self) -> Result<serde_json::Value, TaskError> {
        let v = dagrun_contracts::Verdict::<serde_json::Value>::read(&self.verdict)
            .map_err(|e| input_error(format!("cannot read the verdict: {e}")))?;
        if !v.passed() {
            return Err(input_error(format!("the verdict refused this model ({}): nothing to approve", v.reason)));
        }
        if v.candidate.digest != self.model_digest {
            return Err(input_error(format!(
                "the verdict is about model {} but the model input is {}: give the Approval the verdict of the same evaluation",
                short(&v.candidate.digest),
                short(&self.model_digest)
            )));
        }
        serde_json::to_value(&v).map_err(|e| input_error(e.to_string()))
    }

    /// Why a person must decide (empty: nobody needs to).
    fn reasons(&self, verdict: &serde_json::Value, now: i64) -> Result<Vec<String>, TaskError> {
        let name = &self.spec.deploys.name;
        let current = dagrun_contracts::registry::read_current(&self.registry, name).ok().flatten();
        if let Some(v) = current
            && dagrun_contracts::registry::read_metadata(&self.registry, name, &v)
                .is_ok_and(|m| m.digest == self.model_digest)
        {
            return Ok(Vec::new()); // already deployed: nothing changes for users
        }
        let mut reasons = Vec::new();
        if self.spec.always {
            reasons.push("the workflow asks a person before every deploy (always: true)".to_owned());
        }
        let b = &verdict["behaviour"];
        let max_share = self.spec.max_label_change.unwrap_or(DEFAULT_MAX_LABEL_CHANGE);
        if let Some(share) = b["changed_share"].as_f64()
            && share > max_share
        {
            let rows = b["rows"].as_u64().unwrap_or(0);
            let changed = b["changed"].as_u64().unwrap_or(0);
            reasons.push(format!(
                "{} of predictions change ({changed} of {rows} rows; max {})",
                percent(share),
                percent(max_share)
            ));
        }
        if let (Some(max), Some(change)) = (self.spec.max_score_change, b["mean_abs_change"].as_f64())
            && change > max
        {
            reasons.push(format!("mean absolute score change {change:.4} > max {max}"));
        }
        let breaker = self.spec.breaker.clone().unwrap_or_default();
        let window = dagrun_workflow::duration::parse(&breaker.window)
            .map_err(|e| input_error(format!("breaker window `{}`: {e}", breaker.window)))?;
        let since = now.saturating_sub(window.as_millis() as i64);
        let auto: Vec<String> = dagrun_contracts::promotions::automatic_promotions(&self.registry, name, since)
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        if auto.len() as u64 >= u64::from(breaker.max) {
            reasons.push(format!(
                "circuit breaker: {} automatic promotion(s) of `{name}` in the last {} ({}; max {})",
                auto.len(),
                breaker.window,
                auto.join(", "),
                breaker.max
            ));
        }
        Ok(reasons)
    }

    fn record(&self, decision: ApprovalDecision, a: Option<&Approval>) -> ApprovalRecord {
        ApprovalRecord {
            version: APPROVAL_VERSION,
            decision,
            model: Some(self.spec.deploys.name.clone()),
            model_digest: self.model_digest.clone(),
            verdict_digest: self.verdict_digest.clone(),
            reasons: a.map(|a| a.reasons.clone()).unwrap_or_default(),
            by: a.and_then(|a| a.decided_by.clone()),
            note: a.and_then(|a| a.note.clone()),
            decided_ms: a.and_then(|a| a.decided_ms),
            request: a.map(|a| a.id),
        }
    }

    fn write(&self, stage: &Path, record: ApprovalRecord) -> Result<(), TaskError> {
        let fail = |e: std::io::Error| TaskError::new(Failure::Input, format!("cannot write {APPROVAL_FILE}: {e}"));
        std::fs::create_dir_all(stage).map_err(fail)?;
        let path = stage.join(APPROVAL_FILE);
        std::fs::write(&path, record.to_json()).map_err(fail)?;
        place(&self.outputs, "approval", &path, Failure::Input)
    }
}

/// The step's summary: the request, and the commands to act on it.
fn summary(a: &Approval, created: bool) -> serde_json::Value {
    serde_json::json!({"approval": {
        "id": a.id,
        "state": a.state.as_str(),
        "created": created,
        "run_id": a.run_id,
        "model": a.model,
        "model_digest": a.binding.model_digest,
        "reasons": a.reasons,
        "expires_ms": a.expires_ms,
        "decided_by": a.decided_by,
        "note": a.note,
        "approve": format!("dagrun approve {}", a.run_id),
        "reject": format!("dagrun reject {}", a.run_id),
    }})
}

fn timeout_text(expires_ms: i64, on_timeout: OnTimeout) -> String {
    let left = (expires_ms - dagrun_cache::now_ms() as i64).max(0) as u64;
    let then = match on_timeout {
        OnTimeout::Reject => "rejected",
        OnTimeout::Approve => "approved",
    };
    format!("in {}, then {then}", dagrun_workflow::duration::format(Duration::from_secs(left / 1000)))
}

fn percent(share: f64) -> String {
    let p = format!("{:.1}", share * 100.0);
    format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_read_naturally() {
        assert_eq!(percent(0.1), "10%");
        assert_eq!(percent(0.2314), "23.1%");
        assert_eq!(percent(0.0), "0%");
    }
}
