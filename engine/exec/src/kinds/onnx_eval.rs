//! The `OnnxEval` kind: score the candidate model natively (ONNX Runtime), apply the gate
//! (thresholds, then the deployed champion), and write metrics, predictions and the verdict.
//!
//! When a champion is compared, both evaluations keep their per-row predictions and the verdict
//! records how differently the candidate behaves (`behaviour`: predicted labels changed, mean
//! change), without a third pass over the data. The decision does not depend on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dagrun_contracts::{Decision, VERDICT_VERSION};
use dagrun_onnx::{Behaviour, EvalOptions, Metrics, Outputs, behaviour, evaluate, evaluate_metrics};
use dagrun_plan::RegistryModel;
use dagrun_workflow::{GateDef, OnnxEvalTask};

use crate::kinds::gate::{ChampionScore, behaviour_note, judge};
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

/// Why two models' predictions cannot be compared, for the reason.
fn incomparable(e: dagrun_onnx::Error) -> String {
    match e {
        dagrun_onnx::Error::Incomparable(why) => why,
        e => e.to_string(),
    }
}

impl OnnxEvalKind {
    /// Evaluates and gates (blocking).
    fn evaluate(&self, stage: &Path) -> Result<Option<serde_json::Value>, AttemptError> {
        let mut opts = EvalOptions::new(self.spec.label.clone());
        opts.features.clone_from(&self.spec.features);
        opts.passthrough.clone_from(&self.spec.passthrough);
        opts.write_predictions = self.outputs.contains_key("predictions");
        let champion = self.spec.gate.as_ref().and_then(|g| g.champion.as_ref()).and(self.champion.as_ref());
        // Each side's predictions, to compare them (the candidate's alone when it is the champion).
        opts.keep_outputs = champion.is_some();
        let mut eval = evaluate(&self.model, &self.data, stage, &opts).map_err(model_error)?;
        if let Some(p) = &eval.metrics_path {
            self.place("metrics", p)?;
        }
        if let Some(p) = &eval.predictions_path {
            self.place("predictions", p)?;
        }
        let summary = serde_json::to_value(&eval.metrics).unwrap_or_default();
        let Some(gate) = &self.spec.gate else { return Ok(Some(summary)) };

        let outputs = eval.outputs.take();
        let compared = champion.map(|c| self.compare(c, &opts, outputs.as_ref())).transpose()?;
        let score = compared.as_ref().map(|c| ChampionScore { version: &c.champion.version, metrics: c.metrics() });
        let mut judgement = judge(gate, &eval.metrics, score).map_err(|e| TaskError::permanent(Failure::Model, e))?;
        if let Some(c) = compared.as_ref().filter(|c| c.scored.is_some()) {
            let note = behaviour_note(c.behaviour.as_ref().map_err(String::as_str));
            judgement.reason.push_str(&note);
            if let Some(r) = &mut judgement.refusal {
                r.push_str(&note);
            }
        }
        let (champion, behaviour) = match compared {
            Some(c) => (c.scored, c.behaviour.ok()),
            None => (None, None),
        };
        let verdict = Verdict {
            version: VERDICT_VERSION,
            decision: if judgement.refusal.is_some() { Decision::Refuse } else { Decision::Pass },
            reason: judgement.reason.clone(),
            candidate: Scored { digest: self.model_digest.clone(), version: None, metrics: eval.metrics },
            champion,
            behaviour: behaviour.clone(),
            data_digest: self.data_digest.clone(),
            gate: gate.clone(),
        };
        let verdict_path = stage.join(dagrun_contracts::verdict::VERDICT_FILE);
        std::fs::write(&verdict_path, verdict.to_json())
            .map_err(|e| model_error(format!("cannot write the verdict: {e}")))?;
        self.place("verdict", &verdict_path)?;
        if let Some(r) = judgement.refusal {
            let mut refused = serde_json::json!({"verdict": "refuse", "reason": judgement.reason, "metrics": summary});
            if let Some(s) = &judgement.shortfall {
                refused["shortfall"] = serde_json::to_value(s).unwrap_or_default();
            }
            return Err(AttemptError::Refused { reason: format!("gate refused: {r}"), summary: Some(refused) });
        }
        let mut done = serde_json::json!({"verdict": "pass", "reason": judgement.reason, "metrics": summary});
        if let Some(b) = behaviour {
            done["behaviour"] = serde_json::to_value(b).unwrap_or_default();
        }
        Ok(Some(done))
    }

    /// Scores the deployed `champion` on the same data (unless it is the candidate itself) and
    /// compares its predictions with the candidate's `outputs`.
    fn compare<'c>(
        &self,
        champion: &'c RegistryModel,
        opts: &EvalOptions,
        outputs: Option<&Outputs>,
    ) -> Result<Comparison<'c>, TaskError> {
        let outputs = outputs.ok_or_else(|| model_error("the candidate's predictions were not kept"))?;
        if champion.digest.0.to_hex() == self.model_digest {
            // The candidate is the champion: nothing to score, and nothing changes.
            let behaviour = behaviour(outputs, outputs).map_err(incomparable);
            return Ok(Comparison { champion, scored: None, behaviour });
        }
        let m = evaluate_metrics(&champion.path, &self.data, opts)
            .map_err(|e| model_error(format!("evaluating the champion {}: {e}", champion.version)))?;
        let theirs = m.outputs.ok_or_else(|| model_error("the champion's predictions were not kept"))?;
        // Not comparable (another kind of model, other classes): said in the reason, not a failure.
        let behaviour = behaviour(outputs, &theirs).map_err(incomparable);
        let scored =
            Scored { digest: champion.digest.0.to_hex(), version: Some(champion.version.clone()), metrics: m.metrics };
        Ok(Comparison { champion, scored: Some(scored), behaviour })
    }

    /// Copies a produced file to the declared output `name`, if declared.
    fn place(&self, name: &str, from: &Path) -> Result<(), TaskError> {
        crate::kinds::place(&self.outputs, name, from, Failure::Model)
    }
}

/// The deployed champion as compared with the candidate.
struct Comparison<'c> {
    champion: &'c RegistryModel,
    /// Its score on the same data; `None` when it is the candidate itself.
    scored: Option<Scored>,
    /// How differently the candidate behaves, or why the two cannot be compared.
    behaviour: Result<Behaviour, String>,
}

impl Comparison<'_> {
    fn metrics(&self) -> Option<&Metrics> {
        self.scored.as_ref().map(|s| &s.metrics)
    }
}
