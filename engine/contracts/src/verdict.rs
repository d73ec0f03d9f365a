//! `verdict.json`: what an `OnnxEval` gate decided about a candidate model, and why.
//!
//! Written by the engine next to the evaluation's metrics; read by the deploy plugin, which
//! promotes a model only with a `pass` verdict for its exact bytes, and copied into the
//! registry beside the model it allowed.
//!
//! ```json
//! {"version": 1, "decision": "pass", "reason": "...",
//!  "candidate": {"digest": "<blake3>", "metrics": {...}},
//!  "champion": {"digest": "...", "version": "v0003", "metrics": {...}} | null,
//!  "behaviour": {"rows": 1000, "changed": 31, "changed_share": 0.031, "mean_abs_change": 0.012},
//!  "data_digest": "<blake3>", "gate": {...}}
//! ```
//!
//! `behaviour` ([`Behaviour`]) is absent when no champion was compared (no champion gate, or none
//! deployed yet); files written before it existed read with `behaviour: None`.
//!
//! The metrics and the gate are typed in the engine (`dagrun_onnx::Metrics`,
//! `dagrun_workflow::GateDef`) but only JSON here: [`Verdict`] and [`Scored`] are generic over
//! them, defaulting to [`serde_json::Value`], so the engine writes its own types and readers
//! need neither crate.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ContractError, parse_versioned};

/// Version of `verdict.json` this build writes and the newest it reads.
pub const VERDICT_VERSION: u32 = 1;

/// The file name.
pub const VERDICT_FILE: &str = "verdict.json";

/// The gate's decision: serialized `"pass"` / `"refuse"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The candidate may be deployed.
    Pass,
    /// The candidate must not be deployed.
    Refuse,
}

impl Decision {
    /// `pass` or `refuse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Pass => "pass",
            Decision::Refuse => "refuse",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gate's decision, as written to `verdict.json`. `M`: the metrics, `G`: the gate config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict<M = serde_json::Value, G = serde_json::Value> {
    /// [`VERDICT_VERSION`].
    pub version: u32,
    /// Pass or refuse.
    pub decision: Decision,
    /// Why, in words.
    pub reason: String,
    /// The candidate model.
    pub candidate: Scored<M>,
    /// The deployed model it was compared with, if any (`null` otherwise).
    #[serde(default = "none")]
    pub champion: Option<Scored<M>>,
    /// How differently the candidate behaves from the champion on the same data: present when a
    /// deployed champion was compared (absent, not `null`, otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behaviour: Option<Behaviour>,
    /// blake3 (hex) of the evaluation data.
    pub data_digest: String,
    /// The gate as configured.
    pub gate: G,
}

// `#[serde(default)]` would require `M: Default`.
fn none<T>() -> Option<T> {
    None
}

/// A model and its metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored<M = serde_json::Value> {
    /// blake3 (hex) of the model file.
    pub digest: String,
    /// Registry version (the champion only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its metrics on the data (`metrics.json`'s content).
    pub metrics: M,
}

/// How differently the candidate behaves from the champion on the evaluation data: the rows both
/// models scored, compared row by row (the engine errors rather than compare models of different
/// kinds or class lists).
///
/// A measure of change, not of quality: the gate's decision does not use it; an approval step
/// may (e.g. ask for a human when many predictions change). When the candidate is the deployed
/// champion itself it is compared with itself: nothing changes (`changed` 0, `mean_abs_change` 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Behaviour {
    /// Rows compared (the labelled rows both models scored).
    pub rows: u64,
    /// Classifiers: rows whose predicted label differs (`None` for regressors).
    #[serde(default)]
    pub changed: Option<u64>,
    /// Classifiers: `changed / rows`, in [0, 1] (`None` for regressors).
    #[serde(default)]
    pub changed_share: Option<f64>,
    /// Regressors: the mean over rows of |candidate − champion| of the predicted value.
    /// Classifiers with probabilities: the mean over rows of the total variation distance between
    /// the two probability vectors, ½ Σ_class |p_candidate − p_champion| (in [0, 1]; for a binary
    /// classifier, the mean |Δ| of the positive class's probability). `None` when either
    /// classifier outputs no probabilities.
    #[serde(default)]
    pub mean_abs_change: Option<f64>,
}

impl Scored {
    /// A numeric metric by name (`accuracy`, `rmse`, ...); `None` if absent or `null`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).and_then(serde_json::Value::as_f64)
    }
}

impl<M: Serialize, G: Serialize> Verdict<M, G> {
    /// Pretty JSON with a trailing newline, as the engine writes it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a verdict serializes") + "\n"
    }
}

impl<M: serde::de::DeserializeOwned, G: serde::de::DeserializeOwned> Verdict<M, G> {
    /// Parses `verdict.json`; a newer or unknown `version` is an error that says so (checked
    /// before the shape, which a newer version may have changed).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ContractError> {
        parse_versioned(VERDICT_FILE, bytes, VERDICT_VERSION)
    }

    /// Reads and parses a `verdict.json` file.
    pub fn read(path: &Path) -> Result<Self, ContractError> {
        Self::from_json(&std::fs::read(path).map_err(ContractError::io(path))?)
    }
}

impl<M, G> Verdict<M, G> {
    /// Whether the gate passed the candidate.
    pub fn passed(&self) -> bool {
        self.decision == Decision::Pass
    }

    /// Errors if this verdict's `version` is newer than (or not one of) the versions this build
    /// understands; for verdicts built or parsed without [`Verdict::from_json`].
    pub fn check_version(&self) -> Result<(), ContractError> {
        crate::check_version(VERDICT_FILE, &serde_json::json!({ "version": self.version }), VERDICT_VERSION).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A verdict as the engine wrote it before this crate existed (exec's `onnx_task.rs`).
    const TODAY: &str = r#"{
  "version": 1,
  "decision": "pass",
  "reason": "accuracy 0.91 beats champion v0001 0.9",
  "candidate": {
    "digest": "aa11",
    "metrics": {
      "task": "classification",
      "rows": 4,
      "classes": [0, 1],
      "positive_class": 1,
      "accuracy": 0.91,
      "roc_auc": null,
      "log_loss": null,
      "per_class": [{"class": 0, "precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}],
      "confusion_matrix": [[1, 1], [0, 2]]
    }
  },
  "champion": {
    "digest": "bb22",
    "version": "v0001",
    "metrics": {"task": "classification", "accuracy": 0.9}
  },
  "data_digest": "cc33",
  "gate": {
    "min": {"accuracy": 0.8},
    "max": {},
    "champion": {"name": "churn", "registry": "registry", "metric": "accuracy", "margin": 0.0, "if_none": "Pass"}
  }
}
"#;

    #[test]
    fn reads_todays_files_and_writes_the_same_json_back() {
        let v = Verdict::<serde_json::Value>::from_json(TODAY.as_bytes()).unwrap();
        assert!(v.passed());
        assert_eq!(v.candidate.metric("accuracy"), Some(0.91));
        assert_eq!(v.candidate.metric("roc_auc"), None, "null metric");
        assert_eq!(v.champion.as_ref().unwrap().version.as_deref(), Some("v0001"));
        assert_eq!(v.gate["champion"]["name"], "churn");
        assert_eq!(v.behaviour, None, "files written before `behaviour` existed read without it");
        let back: serde_json::Value = serde_json::from_str(&v.to_json()).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(TODAY).unwrap());
    }

    #[test]
    fn decision_and_champion_encoding() {
        assert_eq!(serde_json::to_value(Decision::Refuse).unwrap(), json!("refuse"));
        assert_eq!(Decision::Pass.to_string(), "pass");
        let v = Verdict {
            version: VERDICT_VERSION,
            decision: Decision::Refuse,
            reason: "accuracy 0.5 < min 0.8".into(),
            candidate: Scored { digest: "aa".into(), version: None, metrics: json!({"accuracy": 0.5}) },
            champion: None,
            behaviour: None,
            data_digest: "cc".into(),
            gate: json!({"min": {"accuracy": 0.8}}),
        };
        let j: serde_json::Value = serde_json::from_str(&v.to_json()).unwrap();
        assert_eq!(j["champion"], serde_json::Value::Null, "no champion is written as null, as before");
        assert!(j["candidate"].get("version").is_none(), "the candidate has no registry version");
        assert!(j.get("behaviour").is_none(), "no behaviour is left out, not written as null");
        assert!(!Verdict::<serde_json::Value>::from_json(v.to_json().as_bytes()).unwrap().passed());
        let unknown = r#"{"version":1,"decision":"maybe","reason":"","candidate":{"digest":"a","metrics":{}},"data_digest":"","gate":{}}"#;
        let e = Verdict::<serde_json::Value>::from_json(unknown.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("unknown variant `maybe`"), "{e}");
    }

    /// The engine's typed metrics and gate serialize to the same file as the JSON values.
    #[test]
    fn typed_and_untyped_verdicts_agree() {
        #[derive(Serialize)]
        struct Metrics {
            accuracy: f64,
        }
        #[derive(Serialize)]
        struct Gate {
            min: std::collections::BTreeMap<String, f64>,
        }
        let typed = Verdict {
            version: 1,
            decision: Decision::Pass,
            reason: "thresholds met".into(),
            candidate: Scored { digest: "aa".into(), version: None, metrics: Metrics { accuracy: 0.9 } },
            champion: None,
            behaviour: None,
            data_digest: "cc".into(),
            gate: Gate { min: [("accuracy".to_owned(), 0.8)].into() },
        };
        let untyped = Verdict::<serde_json::Value>::from_json(typed.to_json().as_bytes()).unwrap();
        assert_eq!(untyped.to_json(), typed.to_json());
    }

    #[test]
    fn behaviour_is_written_after_the_champion_and_read_back() {
        let mut v = Verdict::<serde_json::Value>::from_json(TODAY.as_bytes()).unwrap();
        v.behaviour =
            Some(Behaviour { rows: 4, changed: Some(1), changed_share: Some(0.25), mean_abs_change: Some(0.125) });
        let text = v.to_json();
        let (champion, behaviour, data) = (
            text.find("\"champion\"").unwrap(),
            text.find("\"behaviour\"").unwrap(),
            text.find("\"data_digest\"").unwrap(),
        );
        assert!(champion < behaviour && behaviour < data, "{text}");
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(j["behaviour"], json!({"rows": 4, "changed": 1, "changed_share": 0.25, "mean_abs_change": 0.125}));
        assert_eq!(Verdict::<serde_json::Value>::from_json(text.as_bytes()).unwrap(), v);

        // A regressor's: no label changes; missing keys read as `None`.
        let regressor = TODAY.replacen(
            "\"data_digest\"",
            "\"behaviour\": {\"rows\": 4, \"mean_abs_change\": 0.5},\n  \"data_digest\"",
            1,
        );
        let v = Verdict::<serde_json::Value>::from_json(regressor.as_bytes()).unwrap();
        let b = v.behaviour.unwrap();
        assert_eq!(b, Behaviour { rows: 4, changed: None, changed_share: None, mean_abs_change: Some(0.5) });
        let j = serde_json::to_value(&b).unwrap();
        assert_eq!(j, json!({"rows": 4, "changed": null, "changed_share": null, "mean_abs_change": 0.5}));
    }

    #[test]
    fn newer_versions_are_a_clear_error() {
        let newer =
            TODAY.replacen("\"version\": 1", "\"version\": 2", 1).replace("\"decision\": \"pass\"", "\"ok\": 1");
        let e = Verdict::<serde_json::Value>::from_json(newer.as_bytes()).unwrap_err();
        assert!(matches!(e, ContractError::NewerVersion { found: 2, supported: 1, .. }), "{e}");
        assert!(e.to_string().starts_with("verdict.json version 2 is newer than this dagrun/plugin understands (1)"));
        let mut v = Verdict::<serde_json::Value>::from_json(TODAY.as_bytes()).unwrap();
        v.check_version().unwrap();
        v.version = 7;
        assert!(v.check_version().unwrap_err().to_string().contains("version 7 is newer"));
        let e = Verdict::<serde_json::Value>::from_json(b"not json").unwrap_err().to_string();
        assert!(e.starts_with("verdict.json is not a valid dagrun verdict.json"), "{e}");
    }

    #[test]
    fn read_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = Verdict::<serde_json::Value>::read(&dir.path().join("verdict.json")).unwrap_err().to_string();
        assert!(e.contains("verdict.json") && e.contains(dir.path().to_str().unwrap()), "{e}");
    }
}
