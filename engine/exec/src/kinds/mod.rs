//! Task kinds: one module per kind behind one small interface, [`Kind`]. The scheduler and the
//! job runner know nothing of kinds: a new kind is one module here plus one arm in [`prepare`].

mod approval;
mod command;
mod drift;
mod gate;
mod onnx_eval;
mod onnx_predict;
mod performance;
mod wasm;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use dagrun_plan::{InputFile, Probe, ResolvedInput};
use dagrun_workflow::{Task, TaskKind};

use crate::outcome::{AttemptError, Failure, TaskError};
use crate::shared::RunShared;

pub(crate) use crate::procs::reap_orphans;
pub use command::tail;
pub(crate) use command::{CommandSpec, EnvParts, run_attempt, task_env};
pub(crate) use wasm::{DEFAULT_DEADLINE, DEFAULT_MEMORY};

/// What a kind sees when it prepares a task instance (once, before its attempts).
pub(crate) struct Job<'a> {
    /// The run.
    pub run: &'a RunShared,
    /// The instance.
    pub index: usize,
    /// Its key and the inputs resolved for it: the exact files whose bytes are in the key.
    pub probe: &'a Probe,
    /// Its declared outputs: name → absolute path.
    pub outputs: &'a BTreeMap<String, PathBuf>,
    /// Its log file.
    pub log: &'a Path,
}

impl Job<'_> {
    /// The task definition.
    pub fn task(&self) -> &Task {
        &self.run.workflow.tasks[self.run.instances.nodes[self.index].task]
    }

    /// A named input, as resolved for the key.
    pub fn input(&self, name: &str) -> Option<&ResolvedInput> {
        self.probe.resolved.files.get(name)
    }

    /// The one file of a named input, with the digest its key holds.
    pub fn input_file(&self, name: &str) -> Result<&InputFile, TaskError> {
        self.input(name).and_then(|i| i.files.first()).ok_or_else(|| {
            TaskError::permanent(Failure::Input, format!("the task has no input `{name}`; add it under `inputs`"))
        })
    }
}

/// What one attempt sees.
pub(crate) struct Attempt<'a> {
    /// The run.
    pub run: &'a Arc<RunShared>,
    /// The instance.
    pub index: usize,
    /// 1-based attempt number.
    pub number: u32,
    /// Its log file.
    pub log: &'a Path,
    /// Becomes `true` when the run is interrupted.
    pub cancel: &'a mut watch::Receiver<bool>,
}

impl Attempt<'_> {
    /// A scratch directory under the state directory for this attempt (removed by the caller).
    pub fn stage_dir(&self, what: &str) -> PathBuf {
        let name = self.run.instances.nodes[self.index].name.replace(['@', ':'], "_");
        self.run.store.root().join("tmp").join(format!("{what}-{}-{name}-{}", self.run.run_id, self.number))
    }
}

/// The future of one attempt: a summary for the run history on success.
pub(crate) type AttemptFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<serde_json::Value>, AttemptError>> + Send + 'a>>;

/// One task kind, prepared for one instance.
pub(crate) trait Kind: Send + Sync {
    /// Runs one attempt. On success every declared output is at its path.
    fn attempt<'a>(&'a self, a: Attempt<'a>) -> AttemptFuture<'a>;
}

/// Prepares an instance's kind from its definition and resolved inputs.
pub(crate) fn prepare(job: &Job<'_>) -> Result<Box<dyn Kind>, TaskError> {
    job.run.registries.check(&job.task().kind)?;
    if job.task().executor.is_remote() {
        return Ok(Box::new(crate::remote_exec::RemoteKind::new(job)?));
    }
    Ok(match &job.task().kind {
        TaskKind::Command(c) => Box::new(command::CommandKind::new(job, c)),
        TaskKind::Wasm(w) => Box::new(wasm::WasmKind::new(job, w)?),
        TaskKind::OnnxEval(o) => Box::new(onnx_eval::OnnxEvalKind::new(job, o)?),
        TaskKind::OnnxPredict(p) => Box::new(onnx_predict::OnnxPredictKind::new(job, p)?),
        TaskKind::Drift(d) => Box::new(drift::DriftKind::new(job, d)?),
        TaskKind::Performance(p) => Box::new(performance::PerformanceKind::new(job, p)?),
        TaskKind::Approval(a) => Box::new(approval::ApprovalKind::new(job, a)?),
    })
}

/// Copies a produced file to the declared output `name`, if declared; a write error is a
/// (retryable) failure of kind `failure`.
pub(crate) fn place(
    outputs: &BTreeMap<String, PathBuf>,
    name: &str,
    from: &Path,
    failure: Failure,
) -> Result<(), TaskError> {
    let Some(dest) = outputs.get(name) else { return Ok(()) };
    let fail = |e: String| TaskError::new(failure.clone(), e);
    if let Some(dir) = dest.parent() {
        dagrun_cache::ensure_dir(dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::copy(from, dest).map_err(|e| fail(format!("cannot write {}: {e}", dest.display())))?;
    Ok(())
}

/// A data file that cannot be read or compared (`Drift`, `Performance`): it would fail the same
/// way again.
pub(crate) fn data_error(message: String) -> TaskError {
    TaskError::permanent(Failure::Data, message)
}

/// Runs blocking work on tokio's blocking pool; a panic there becomes a task failure.
pub(crate) async fn blocking<T: Send + 'static>(
    failure: Failure,
    f: impl FnOnce() -> Result<T, AttemptError> + Send + 'static,
) -> Result<T, AttemptError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(AttemptError::Failed(TaskError::new(failure, format!("internal error: {e}")))),
    }
}
