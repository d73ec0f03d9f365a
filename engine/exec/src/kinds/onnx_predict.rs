//! The `OnnxPredict` kind: batch inference with a given model or the deployed one, natively.

use std::path::PathBuf;

use dagrun_workflow::OnnxPredictTask;

use crate::kinds::{Attempt, AttemptFuture, Job, Kind, blocking};
use crate::outcome::{AttemptError, Failure, TaskError};

/// An `OnnxPredict` task prepared for one instance.
#[derive(Debug, Clone)]
pub(crate) struct OnnxPredictKind {
    spec: OnnxPredictTask,
    model: PathBuf,
    data: PathBuf,
    output: PathBuf,
}

impl OnnxPredictKind {
    pub(crate) fn new(job: &Job<'_>, spec: &OnnxPredictTask) -> Result<OnnxPredictKind, TaskError> {
        // The model whose bytes are in the key: an input, or the deployed one looked up then.
        let model = match (&spec.model, &job.probe.resolved.deployed) {
            (Some(m), _) => job.input_file(m)?.path.clone(),
            (None, Some(d)) => d.path.clone(),
            (None, None) => {
                return Err(TaskError::permanent(Failure::Input, "OnnxPredict needs `model` or `deployed`"));
            }
        };
        let output = job.outputs.get("predictions").cloned().ok_or_else(|| {
            TaskError::permanent(
                Failure::MissingOutput { output: "predictions".into() },
                "OnnxPredict needs an output named `predictions`",
            )
        })?;
        Ok(OnnxPredictKind { spec: spec.clone(), model, data: job.input_file(&spec.data)?.path.clone(), output })
    }
}

impl Kind for OnnxPredictKind {
    fn attempt<'a>(&'a self, _a: Attempt<'a>) -> AttemptFuture<'a> {
        let this = self.clone();
        Box::pin(blocking(Failure::Model, move || {
            let opts = dagrun_onnx::PredictOptions {
                features: this.spec.features.clone(),
                label: this.spec.label.clone(),
                ..Default::default()
            };
            if let Some(dir) = this.output.parent() {
                let _ = dagrun_cache::ensure_dir(dir);
            }
            dagrun_onnx::predict(&this.model, &this.data, &this.output, &opts)
                .map(|p| Some(serde_json::json!({"rows": p.rows, "model": this.model.display().to_string()})))
                .map_err(|e| AttemptError::Failed(TaskError::new(Failure::Model, e.to_string())))
        }))
    }
}
