//! `approval.json`: what an `Approval` step decided about a candidate model — it may be
//! deployed automatically, or a person approved it. Written by the engine; read by the deploy
//! plugin, which deploys only a model whose digest it names, and records it in the registry
//! (the circuit breaker counts automatic promotions from there).
//!
//! ```json
//! {"version": 1, "decision": "approved", "model_digest": "<blake3>", "verdict_digest": "<blake3>",
//!  "reasons": ["23.1% of predictions change (max 10%)"], "by": "ana", "note": "...",
//!  "decided_ms": 1764331200000, "request": 3}
//! ```
//! The same decision about the same bytes always writes the same file, so a deploy after it
//! stays cached on later runs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ContractError, parse_versioned};

/// Version of `approval.json` this build writes and the newest it reads.
pub const APPROVAL_VERSION: u32 = 1;

/// The file name.
pub const APPROVAL_FILE: &str = "approval.json";

/// How the model was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// Nothing needed a person: within the behaviour-change limits and the circuit breaker.
    Automatic,
    /// A person approved (or the timeout did, with `on_timeout: Approve`).
    Approved,
}

/// The contents of `approval.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// [`APPROVAL_VERSION`].
    pub version: u32,
    /// Automatic or approved.
    pub decision: ApprovalDecision,
    /// The registry name of the model the step guards (its `deploys`): the deploy refuses to
    /// promote the approval under another name (absent in files written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// blake3 (hex) of the model it lets through.
    pub model_digest: String,
    /// blake3 (hex) of the verdict it was asked about.
    pub verdict_digest: String,
    /// Why a person was asked (empty when automatic).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Who approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Their note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_ms: Option<i64>,
    /// The request's id in `dagrun approvals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<i64>,
}

impl ApprovalRecord {
    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an approval serializes") + "\n"
    }

    /// Parses `approval.json`; a newer version is a clear error.
    pub fn from_json(bytes: &[u8]) -> Result<ApprovalRecord, ContractError> {
        parse_versioned(APPROVAL_FILE, bytes, APPROVAL_VERSION)
    }

    /// Reads and parses an `approval.json` file.
    pub fn read(path: &Path) -> Result<ApprovalRecord, ContractError> {
        Self::from_json(&std::fs::read(path).map_err(ContractError::io(path))?)
    }

    /// Whether a person (not the policy) let it through.
    pub fn by_person(&self) -> bool {
        self.decision == ApprovalDecision::Approved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_leaves_out_what_an_automatic_decision_lacks() {
        let auto = ApprovalRecord {
            version: 1,
            decision: ApprovalDecision::Automatic,
            model: None,
            model_digest: "aa".into(),
            verdict_digest: "bb".into(),
            reasons: vec![],
            by: None,
            note: None,
            decided_ms: None,
            request: None,
        };
        let j = auto.to_json();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&j).unwrap(),
            serde_json::json!({"version": 1, "decision": "automatic", "model_digest": "aa", "verdict_digest": "bb", "reasons": []})
        );
        assert_eq!(ApprovalRecord::from_json(j.as_bytes()).unwrap(), auto);
        let newer = j.replace("\"version\": 1", "\"version\": 2");
        assert!(ApprovalRecord::from_json(newer.as_bytes()).unwrap_err().to_string().contains("newer"));
    }
}
