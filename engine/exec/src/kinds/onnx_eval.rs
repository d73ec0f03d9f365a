//! The `OnnxEval` kind: score the candidate model natively (ONNX Runtime), apply the gate
//! (thresholds, then the deployed champion), and write metrics, predictions and the verdict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dagrun_contracts::{Decision, VERDICT_VERSION};
use dagrun_onnx::{EvalOptions, Metrics, evaluate, evaluate_metrics};
use dagrun_plan::RegistryModel;
use dagrun_workflow::{GateDef, OnnxEvalTask};

use crate::kinds::gate::{ChampionScore, judge};
use crate::kinds::{Attempt, AttemptFuture, Job, Kind, blocking};
use crate::outcome::{AttemptError, Failure, TaskError};

/// `verdict.json` as this kind writes it: the contract shared with the deploy plugin, with the
/// engine's metric and gate types.
type Verdict = dagrun_contracts::Verdict<Metrics, GateDef>;
type Scored = dagrun_contracts::Scored<Metrics>;

/// An `OnnxEval` task prepared for one instance: the exact files whose bytes are in its key.
#[derive(Debug, Clone)]
pub(crate) struct OnnxEvalKind {
    spec: OnnxEvalTask,
    model: PathBuf,
    model_digest: String,
    data: PathBuf,
    data_digest: String,
    champion: Option<RegistryModel>,
    outputs: BTreeMap<String, PathBuf>,
}

impl OnnxEvalKind {
    pub(crate) fn new(job: &Job<'_>, spec: &OnnxEvalTask) -> Result<OnnxEvalKind, TaskError> {
        let file = |name: &str| job.input_file(name).map(|f| (f.path.clone(), f.digest.0.to_hex()));
        let (model, model_digest) = file(&spec.model)?;
        let (data, data_digest) = file(&spec.data)?;
        Ok(OnnxEvalKind {
            spec: spec.clone(),
            model,
            model_digest,
            data,
            data_digest,
            champion: job.probe.resolved.champion.clone(),
            outputs: job.outputs.clone(),
        })
    }
}

impl Kind for OnnxEvalKind {
    fn attempt<'a>(&'a self, a: Attempt<'a>) -> AttemptFuture<'a> {
        let stage = a.stage_dir("eval");
        let this = self.clone();
        Box::pin(async move {
            let stage2 = stage.clone();
            let result = blocking(Failure::Model, move || this.evaluate(&stage2)).await;
            let _ = std::fs::remove_dir_all(&stage);
            result
        })
    }
}

fn model_error(e: impl std::fmt::Display) -> TaskError {
    TaskError::new(Failure::Model, e.to_string())
}

impl OnnxEvalKind {
    /// Evaluates and gates (blocking).
    fn evaluate(&self, stage: &Path) -> Result<Option<serde_json::Value>, AttemptError> {
        let mut opts = EvalOptions::new(self.spec.label.clone());
        opts.features.clone_from(&self.spec.features);
        opts.passthrough.clone_from(&self.spec.passthrough);
        opts.write_predictions = self.outputs.contains_key("predictions");
        let eval = evaluate(&self.model, &self.data, stage, &opts).map_err(model_error)?;
        if let Some(p) = &eval.metrics_path {
            self.place("metrics", p)?;
        }
        if let Some(p) = &eval.predictions_path {
            self.place("predictions", p)?;
        }
        let summary = serde_json::to_value(&eval.metrics).unwrap_or_default();
        let Some(gate) = &self.spec.gate else { return Ok(Some(summary)) };

        let champion = match (&gate.champion, &self.champion) {
            (Some(_), Some(c)) if c.digest.0.to_hex() == self.model_digest => {
                Some((c, None)) // the candidate is the champion: nothing to compare
            }
            (Some(_), Some(c)) => {
                let m = evaluate_metrics(&c.path, &self.data, &opts)
                    .map_err(|e| model_error(format!("evaluating the champion {}: {e}", c.version)))?;
                Some((
                    c,
                    Some(Scored { digest: c.digest.0.to_hex(), version: Some(c.version.clone()), metrics: m.metrics }),
                ))
            }
            _ => None,
        };
        let score = champion
            .as_ref()
            .map(|(c, s)| ChampionScore { version: &c.version, metrics: s.as_ref().map(|s| &s.metrics) });
        let judgement = judge(gate, &eval.metrics, score).map_err(|e| TaskError::permanent(Failure::Model, e))?;
        let verdict = Verdict {
            version: VERDICT_VERSION,
            decision: if judgement.refusal.is_some() { Decision::Refuse } else { Decision::Pass },
            reason: judgement.reason.clone(),
            candidate: Scored { digest: self.model_digest.clone(), version: None, metrics: eval.metrics },
            champion: champion.and_then(|(_, s)| s),
            behaviour: None,
            data_digest: self.data_digest.clone(),
            gate: gate.clone(),
        };
        let verdict_path = stage.join(dagrun_contracts::verdict::VERDICT_FILE);
        std::fs::write(&verdict_path, verdict.to_json())
            .map_err(|e| model_error(format!("cannot write the verdict: {e}")))?;
        self.place("verdict", &verdict_path)?;
        match judgement.refusal {
            Some(r) => Err(AttemptError::Refused(format!("gate refused: {r}"))),
            None => Ok(Some(serde_json::json!({"verdict": "pass", "reason": judgement.reason, "metrics": summary}))),
        }
    }

    /// Copies a produced file to the declared output `name`, if declared.
    fn place(&self, name: &str, from: &Path) -> Result<(), TaskError> {
        crate::kinds::place(&self.outputs, name, from, Failure::Model)
    }
}
