//! One `OnnxEval` task: score the candidate model natively (ONNX Runtime), apply the gate
//! (thresholds, then the deployed champion), and write metrics, predictions and the verdict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use dagrun_cache::{hash_file, registry};
use dagrun_onnx::metrics::higher_is_better;
use dagrun_onnx::{EvalOptions, Metrics, evaluate, evaluate_metrics};
use dagrun_workflow::{GateDef, NoChampion, OnnxEvalTask};

/// Version of `verdict.json`.
pub const VERDICT_VERSION: u32 = 1;

/// The gate's decision, as written to `verdict.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// [`VERDICT_VERSION`].
    pub version: u32,
    /// `pass` or `refuse`.
    pub decision: &'static str,
    /// Why, in words.
    pub reason: String,
    /// The candidate model.
    pub candidate: Scored,
    /// The deployed model it was compared with, if any.
    pub champion: Option<Scored>,
    /// blake3 of the evaluation data.
    pub data_digest: String,
    /// The gate as configured.
    pub gate: GateDef,
}

/// A model and its metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// blake3 of the model file.
    pub digest: String,
    /// Registry version (champion only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its metrics on the data.
    pub metrics: Metrics,
}

/// How an evaluation ended.
#[derive(Debug)]
pub(crate) enum EvalOutcome {
    /// Scored (and passed the gate, if any): the summary for the run history.
    Passed(serde_json::Value),
    /// The gate refused the model; the verdict was written.
    Refused(String),
}

fn digest(path: &Path) -> Result<String, String> {
    hash_file(path).map(|(d, _)| d.0.to_hex()).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn fmt(v: f64) -> String {
    format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Applies thresholds and the champion comparison; `None` means pass.
fn judge(gate: &GateDef, cand: &Metrics, champion: Option<&Metrics>) -> Result<Option<String>, String> {
    let value = |m: &Metrics, name: &str| {
        m.get(name).ok_or_else(|| format!("the gate uses metric `{name}`, which this model's evaluation does not have"))
    };
    for (name, min) in &gate.min {
        let v = value(cand, name)?;
        if v < *min {
            return Ok(Some(format!("{name} {} < min {}", fmt(v), fmt(*min))));
        }
    }
    for (name, max) in &gate.max {
        let v = value(cand, name)?;
        if v > *max {
            return Ok(Some(format!("{name} {} > max {}", fmt(v), fmt(*max))));
        }
    }
    if let Some(c) = &gate.champion {
        match champion {
            None if c.if_none == NoChampion::Refuse => {
                return Ok(Some(format!("no model `{}` is deployed yet and `if_none` is Refuse", c.name)));
            }
            None => {}
            Some(champ) => {
                let (v, w) = (value(cand, &c.metric)?, value(champ, &c.metric)?);
                let higher = higher_is_better(&c.metric).unwrap_or(true);
                let ok = if higher { v >= w + c.margin } else { v <= w - c.margin };
                if !ok {
                    let op = if higher { "<" } else { ">" };
                    return Ok(Some(format!(
                        "{} {} {op} champion {} (margin {})",
                        c.metric,
                        fmt(v),
                        fmt(w),
                        fmt(c.margin)
                    )));
                }
            }
        }
    }
    Ok(None)
}

/// Evaluates and gates. `outputs` maps `metrics`/`predictions`/`verdict` to host paths.
pub(crate) fn run(
    spec: &OnnxEvalTask,
    model: &Path,
    data: &Path,
    wf_dir: &Path,
    stage: &Path,
    outputs: &BTreeMap<String, PathBuf>,
) -> Result<EvalOutcome, String> {
    let mut opts = EvalOptions::new(spec.label.clone());
    opts.features.clone_from(&spec.features);
    opts.passthrough.clone_from(&spec.passthrough);
    opts.write_predictions = outputs.contains_key("predictions");
    let eval = evaluate(model, data, stage, &opts).map_err(|e| e.to_string())?;
    let place = |name: &str, from: &Path| -> Result<(), String> {
        if let Some(dest) = outputs.get(name) {
            if let Some(dir) = dest.parent() {
                dagrun_cache::ensure_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            std::fs::copy(from, dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
        }
        Ok(())
    };
    if let Some(p) = &eval.metrics_path {
        place("metrics", p)?;
    }
    if let Some(p) = &eval.predictions_path {
        place("predictions", p)?;
    }
    let summary = serde_json::to_value(&eval.metrics).unwrap_or_default();
    let Some(gate) = &spec.gate else { return Ok(EvalOutcome::Passed(summary)) };

    let champion = match &gate.champion {
        Some(c) => match registry::current(&wf_dir.join(&c.registry), &c.name) {
            Some((version, path)) => {
                let m = evaluate_metrics(&path, data, &opts).map_err(|e| format!("evaluating the champion: {e}"))?;
                Some(Scored { digest: digest(&path)?, version: Some(version), metrics: m.metrics })
            }
            None => None,
        },
        None => None,
    };
    let refusal = judge(gate, &eval.metrics, champion.as_ref().map(|c| &c.metrics))?;
    let reason = match (&refusal, &gate.champion, &champion) {
        (Some(r), _, _) => r.clone(),
        (None, Some(c), None) => format!("no model `{}` deployed yet; thresholds met", c.name),
        (None, Some(c), Some(champ)) => format!(
            "{} {} beats champion {} {}",
            c.metric,
            fmt(eval.metrics.get(&c.metric).unwrap_or(f64::NAN)),
            champ.version.as_deref().unwrap_or("?"),
            fmt(champ.metrics.get(&c.metric).unwrap_or(f64::NAN))
        ),
        (None, None, _) => "thresholds met".to_owned(),
    };
    let verdict = Verdict {
        version: VERDICT_VERSION,
        decision: if refusal.is_some() { "refuse" } else { "pass" },
        reason: reason.clone(),
        candidate: Scored { digest: digest(model)?, version: None, metrics: eval.metrics },
        champion,
        data_digest: digest(data)?,
        gate: gate.clone(),
    };
    let verdict_path = stage.join("verdict.json");
    let text = serde_json::to_string_pretty(&verdict).expect("serializes") + "\n";
    std::fs::write(&verdict_path, text).map_err(|e| format!("cannot write the verdict: {e}"))?;
    place("verdict", &verdict_path)?;
    match refusal {
        Some(r) => Ok(EvalOutcome::Refused(format!("gate refused: {r}"))),
        None => Ok(EvalOutcome::Passed(serde_json::json!({"verdict": "pass", "reason": reason, "metrics": summary}))),
    }
}
