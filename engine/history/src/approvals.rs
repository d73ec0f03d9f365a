//! Approval requests and decisions. A request is bound to the exact model and verdict it asks
//! about (their digests): a different model needs a new request, the same bytes find the old
//! decision. A request nobody answers becomes its `on_timeout` decision at `expires_ms`.

use std::path::PathBuf;

use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::Serialize;

use dagrun_workflow::heal::{NotifyDef, OnTimeout};

use crate::{History, HistoryError};

/// What an approval is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    /// The workflow's name.
    pub workflow: String,
    /// The `Approval` task instance (`approve`, or `approve@2025-03-02` when partitioned).
    pub task: String,
    /// blake3 (hex) of the candidate model.
    pub model_digest: String,
    /// blake3 (hex) of its `verdict.json`.
    pub verdict_digest: String,
}

/// A new request.
#[derive(Debug, Clone)]
pub struct NewApproval {
    /// What it is bound to.
    pub binding: Binding,
    /// The workflow file (to resume the run).
    pub workflow_path: PathBuf,
    /// The partition to resume: the instance's, or for an unpartitioned step the run's newest
    /// (`None` when the workflow is not partitioned).
    pub partition: Option<String>,
    /// The run that asks.
    pub run_id: String,
    /// The registry directory the deploy writes.
    pub registry: String,
    /// The model's registry name.
    pub model: String,
    /// Why a person must decide, in words.
    pub reasons: Vec<String>,
    /// Details for people and notifications (the verdict's reason and behaviour change).
    pub detail: serde_json::Value,
    /// When (Unix ms).
    pub requested_ms: i64,
    /// When the request times out.
    pub expires_ms: i64,
    /// What it becomes then.
    pub on_timeout: OnTimeout,
    /// The workflow's notification sinks (the decision is notified without reading the
    /// workflow again, where its secrets may not be set).
    pub sinks: Vec<NotifyDef>,
    /// The workflow's directory (where a `Command` sink runs).
    pub workflow_dir: PathBuf,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for a person.
    Pending,
    /// Approved (by a person, or by `on_timeout: Approve`).
    Approved,
    /// Rejected (by a person, or by the timeout).
    Rejected,
    /// A newer model of the same step asked since: this one can no longer be decided.
    Superseded,
}

impl ApprovalState {
    /// Lower-case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected => "rejected",
            ApprovalState::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> ApprovalState {
        match s {
            "approved" => ApprovalState::Approved,
            "rejected" => ApprovalState::Rejected,
            "superseded" => ApprovalState::Superseded,
            _ => ApprovalState::Pending,
        }
    }
}

/// A person's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Go ahead.
    Approve,
    /// Do not deploy.
    Reject,
}

/// Who decides when the timeout does.
pub const TIMEOUT_DECIDER: &str = "timeout";

/// One request and its decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    /// Its id.
    pub id: i64,
    /// What it is bound to.
    pub binding: Binding,
    /// The workflow file.
    pub workflow_path: PathBuf,
    /// The partition, if any.
    pub partition: Option<String>,
    /// The run that asked first.
    pub run_id: String,
    /// The registry directory.
    pub registry: String,
    /// The model's registry name.
    pub model: String,
    /// Why a person must decide.
    pub reasons: Vec<String>,
    /// Details (verdict reason, behaviour change).
    pub detail: serde_json::Value,
    /// When it was asked.
    pub requested_ms: i64,
    /// When it times out.
    pub expires_ms: i64,
    /// What the timeout decides.
    pub on_timeout: OnTimeout,
    /// Where it stands.
    pub state: ApprovalState,
    /// When it was decided.
    pub decided_ms: Option<i64>,
    /// Who decided (`timeout` for the timeout).
    pub decided_by: Option<String>,
    /// Their note.
    pub note: Option<String>,
    /// The workflow's notification sinks when the request was made.
    pub sinks: Vec<NotifyDef>,
    /// The workflow's directory.
    pub workflow_dir: PathBuf,
}

/// Why a decision could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The store failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// No request was made by that run.
    #[error("run {0} asked for no approval")]
    NoRequest(String),
    /// It was decided already.
    #[error("run {} was already {} by {} (request #{})", .0.run_id, .0.state.as_str(), .0.decided_by.as_deref().unwrap_or("?"), .0.id)]
    AlreadyDecided(Box<Approval>),
    /// A newer model asked since.
    #[error("the model of run {} (request #{}) has changed since: run {} asks about model {} now; decide that one", .old.run_id, .old.id, .new.run_id, short(&.new.binding.model_digest))]
    Superseded {
        /// The request named.
        old: Box<Approval>,
        /// The one that replaced it.
        new: Box<Approval>,
    },
}

/// The first 12 hex digits of a digest, as shown to people.
pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

const COLUMNS: &str = "id, workflow, task, model_digest, verdict_digest, workflow_path, partition, run_id, registry, \
     model, reasons, detail, requested_ms, expires_ms, on_timeout, state, decided_ms, decided_by, note, sinks, \
     workflow_dir";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Approval> {
    let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
        Ok(serde_json::from_str(&r.get::<_, String>(i)?).unwrap_or_default())
    };
    let partition: String = r.get(6)?;
    Ok(Approval {
        id: r.get(0)?,
        binding: Binding { workflow: r.get(1)?, task: r.get(2)?, model_digest: r.get(3)?, verdict_digest: r.get(4)? },
        workflow_path: PathBuf::from(r.get::<_, String>(5)?),
        partition: (!partition.is_empty()).then_some(partition),
        run_id: r.get(7)?,
        registry: r.get(8)?,
        model: r.get(9)?,
        reasons: serde_json::from_value(json(10)?).unwrap_or_default(),
        detail: json(11)?,
        requested_ms: r.get(12)?,
        expires_ms: r.get(13)?,
        on_timeout: if r.get::<_, String>(14)? == "approve" { OnTimeout::Approve } else { OnTimeout::Reject },
        state: ApprovalState::parse(&r.get::<_, String>(15)?),
        decided_ms: r.get(16)?,
        decided_by: r.get(17)?,
        note: r.get(18)?,
        sinks: serde_json::from_str(&r.get::<_, String>(19)?).unwrap_or_default(),
        workflow_dir: PathBuf::from(r.get::<_, String>(20)?),
    })
}

fn select(tx: &Transaction<'_>, filter: &str, p: impl rusqlite::Params) -> rusqlite::Result<Vec<Approval>> {
    let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM approvals {filter}"))?;
    stmt.query_map(p, from_row)?.collect()
}

/// Pending requests past their deadline take their `on_timeout` decision.
fn expire(tx: &Transaction<'_>, now_ms: i64) -> rusqlite::Result<Vec<Approval>> {
    let due = select(tx, "WHERE state = 'pending' AND expires_ms <= ?1 ORDER BY id", params![now_ms])?;
    let mut out = Vec::new();
    for a in due {
        let state = match a.on_timeout {
            OnTimeout::Approve => ApprovalState::Approved,
            OnTimeout::Reject => ApprovalState::Rejected,
        };
        let note = format!("nobody decided within the timeout ({})", state.as_str());
        tx.execute(
            "UPDATE approvals SET state = ?2, decided_ms = ?3, decided_by = ?4, note = ?5 WHERE id = ?1",
            params![a.id, state.as_str(), a.expires_ms, TIMEOUT_DECIDER, note],
        )?;
        out.push(Approval {
            state,
            decided_ms: Some(a.expires_ms),
            decided_by: Some(TIMEOUT_DECIDER.to_owned()),
            note: Some(note),
            ..a
        });
    }
    Ok(out)
}

impl History {
    /// The request bound to `new.binding`, making it if there is none (then `true`): a step
    /// that asks again about the same bytes finds the first request and its decision. A new
    /// request supersedes the step's other pending ones (they asked about other models).
    pub fn ask(&self, new: &NewApproval, now_ms: i64) -> Result<(Approval, bool), HistoryError> {
        self.with(|tx| {
            expire(tx, now_ms)?;
            let b = &new.binding;
            let by_binding = "WHERE workflow = ?1 AND task = ?2 AND model_digest = ?3 AND verdict_digest = ?4";
            let key = params![b.workflow, b.task, b.model_digest, b.verdict_digest];
            let found = select(tx, by_binding, key)?.pop();
            if let Some(a) = &found
                && a.state != ApprovalState::Superseded
            {
                return Ok((a.clone(), false));
            }
            tx.execute(
                "UPDATE approvals SET state = 'superseded' WHERE workflow = ?1 AND task = ?2 AND state = 'pending'",
                params![b.workflow, b.task],
            )?;
            if let Some(a) = found {
                // The same bytes again after another model asked: pending again, for this run.
                tx.execute(
                    "UPDATE approvals SET state = 'pending', run_id = ?2, requested_ms = ?3, expires_ms = ?4 WHERE id = ?1",
                    params![a.id, new.run_id, new.requested_ms, new.expires_ms],
                )?;
            } else {
                insert(tx, new)?;
            }
            let made = select(tx, by_binding, key)?.pop().expect("just written");
            Ok((made, true))
        })
    }

    /// Records a person's decision on the requests `run_id` made (all of them: a run may park
    /// several partitions). Errors say why it cannot be recorded; nothing is changed then.
    pub fn decide(
        &self,
        run_id: &str,
        decision: Decision,
        by: &str,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<Approval>, DecideError> {
        let mut failure = None;
        let decided = self.with(|tx| {
            expire(tx, now_ms)?;
            let asked = select(tx, "WHERE run_id = ?1 ORDER BY id", params![run_id])?;
            if asked.is_empty() {
                failure = Some(DecideError::NoRequest(run_id.to_owned()));
                return Ok(Vec::new());
            }
            let pending: Vec<&Approval> = asked.iter().filter(|a| a.state == ApprovalState::Pending).collect();
            if pending.is_empty() {
                let a = asked.last().expect("non-empty").clone();
                failure = Some(if a.state == ApprovalState::Superseded {
                    let newer = "WHERE workflow = ?1 AND task = ?2 AND state != 'superseded' ORDER BY id DESC LIMIT 1";
                    match select(tx, newer, params![a.binding.workflow, a.binding.task])?.pop() {
                        Some(new) => DecideError::Superseded { old: Box::new(a), new: Box::new(new) },
                        None => DecideError::AlreadyDecided(Box::new(a)),
                    }
                } else {
                    DecideError::AlreadyDecided(Box::new(a))
                });
                return Ok(Vec::new());
            }
            let state = match decision {
                Decision::Approve => ApprovalState::Approved,
                Decision::Reject => ApprovalState::Rejected,
            };
            let mut out = Vec::new();
            for a in pending {
                tx.execute(
                    "UPDATE approvals SET state = ?2, decided_ms = ?3, decided_by = ?4, note = ?5 WHERE id = ?1",
                    params![a.id, state.as_str(), now_ms, by, note],
                )?;
                out.push(Approval {
                    state,
                    decided_ms: Some(now_ms),
                    decided_by: Some(by.to_owned()),
                    note: note.map(str::to_owned),
                    ..a.clone()
                });
            }
            Ok(out)
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(decided),
        }
    }

    /// Applies due timeouts: the requests that were decided by them now.
    pub fn expire_due(&self, now_ms: i64) -> Result<Vec<Approval>, HistoryError> {
        self.with(|tx| expire(tx, now_ms))
    }

    /// The earliest deadline of a pending request, if any.
    pub fn next_expiry(&self) -> Result<Option<i64>, HistoryError> {
        self.with(|tx| tx.query_row("SELECT MIN(expires_ms) FROM approvals WHERE state = 'pending'", [], |r| r.get(0)))
    }

    /// Requests, newest first: all, or only those in `state`; due timeouts applied first.
    pub fn approvals(
        &self,
        state: Option<ApprovalState>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<Approval>, HistoryError> {
        self.with(|tx| {
            expire(tx, now_ms)?;
            let lim = limit.min(i64::MAX as usize) as i64;
            match state {
                Some(s) => select(tx, "WHERE state = ?1 ORDER BY id DESC LIMIT ?2", params![s.as_str(), lim]),
                None => select(tx, "ORDER BY id DESC LIMIT ?1", params![lim]),
            }
        })
    }

    /// The requests a run made.
    pub fn approvals_of_run(&self, run_id: &str) -> Result<Vec<Approval>, HistoryError> {
        self.with(|tx| select(tx, "WHERE run_id = ?1 ORDER BY id", params![run_id]))
    }

    /// One request by id.
    pub fn approval(&self, id: i64) -> Result<Option<Approval>, HistoryError> {
        self.with(|tx| {
            tx.query_row(&format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"), params![id], from_row).optional()
        })
    }
}

fn insert(tx: &Transaction<'_>, a: &NewApproval) -> rusqlite::Result<()> {
    let b = &a.binding;
    tx.execute(
        "INSERT INTO approvals (workflow, task, model_digest, verdict_digest, workflow_path, partition, run_id, \
         registry, model, reasons, detail, requested_ms, expires_ms, on_timeout, state, sinks, workflow_dir) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'pending', ?15, ?16)",
        params![
            b.workflow,
            b.task,
            b.model_digest,
            b.verdict_digest,
            a.workflow_path.display().to_string(),
            a.partition.clone().unwrap_or_default(),
            a.run_id,
            a.registry,
            a.model,
            serde_json::to_string(&a.reasons).expect("strings serialize"),
            a.detail.to_string(),
            a.requested_ms,
            a.expires_ms,
            match a.on_timeout {
                OnTimeout::Approve => "approve",
                OnTimeout::Reject => "reject",
            },
            serde_json::to_string(&a.sinks).expect("sinks serialize"),
            a.workflow_dir.display().to_string(),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
#[path = "approvals_tests.rs"]
mod tests;
