//! The `Wasm` kind: stage the resolved inputs, run the plugin in its sandbox on a blocking
//! thread, and copy its artifacts to the task's declared output paths.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dagrun_plan::{instance_params, resolve_path};
use dagrun_wasm::{InputMount, Limits, Mount, PluginError, PluginRun};
use dagrun_workflow::{WasmTask, Workflow, size};

use crate::cancel::cancelled;
use crate::kinds::{Attempt, AttemptFuture, Job, Kind};
use crate::outcome::{AttemptError, Failure, TaskError, bounded};
use crate::paths::Roots;

/// Default memory cap of a plugin.
pub const DEFAULT_MEMORY: u64 = 1 << 30;
/// Default deadline of a plugin run when the task sets no `timeout`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3600);

/// A `Wasm` task prepared for one instance.
#[derive(Debug, Clone)]
pub(crate) struct WasmKind {
    plugin: PathBuf,
    inputs: Vec<InputMount>,
    mounts: Vec<Mount>,
    limits: Limits,
    params_json: String,
    outputs: BTreeMap<String, PathBuf>,
    partition: Option<String>,
    roots: Roots,
    /// Writable mounts of `s3://` registries: published after a successful run.
    remote_mounts: Vec<String>,
}

/// Raises the plugin's cancel flag when dropped: an attempt abandoned by its run (a second
/// Ctrl-C) stops its plugin too.
struct RaiseOnDrop(Arc<AtomicBool>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl WasmKind {
    pub(crate) fn new(job: &Job<'_>, w: &WasmTask) -> Result<WasmKind, TaskError> {
        let run = job.run;
        let wf = &run.workflow;
        if let Some(e) = run.plugin_errors.get(&w.plugin) {
            return Err(TaskError::permanent(Failure::Plugin, e.clone()));
        }
        let plugin = run.plugins.get(&w.plugin).cloned().unwrap_or_else(|| resolve_path(wf, &w.plugin));
        let inputs = job
            .probe
            .resolved
            .files
            .iter()
            .map(|(name, input)| InputMount {
                name: name.clone(),
                files: input.files.iter().map(|f| f.path.clone()).collect(),
                directory: input.list,
            })
            .collect();
        let mounts = w
            .mounts
            .iter()
            .map(|(name, m)| Mount { name: name.clone(), host: resolve_path(wf, &m.path), writable: m.writable })
            .collect();
        let memory_bytes = w.memory.as_deref().and_then(|m| size::parse(m).ok()).unwrap_or(DEFAULT_MEMORY);
        Ok(WasmKind {
            plugin,
            inputs,
            mounts,
            limits: Limits {
                memory_bytes,
                deadline: job.task().timeout.unwrap_or(DEFAULT_DEADLINE),
                log_bytes: run.log_bytes,
            },
            params_json: serde_json::Value::Object(instance_params(wf, &run.instances, job.index)).to_string(),
            outputs: job.outputs.clone(),
            partition: run.instances.nodes[job.index].partition.as_ref().map(|p| p.key.clone()),
            roots: run.roots.clone(),
            remote_mounts: w
                .mounts
                .values()
                .filter(|m| m.writable && dagrun_workflow::registry_urls::is_remote(&m.path))
                .map(|m| m.path.clone())
                .collect(),
        })
    }

    /// Runs the plugin once; on success its artifacts are at the declared output paths.
    async fn run(&self, a: Attempt<'_>) -> Result<Option<serde_json::Value>, AttemptError> {
        let run = a.run.clone();
        let host = run.plugin_host().map_err(|e| TaskError::permanent(Failure::Plugin, e))?;
        let node = &run.instances.nodes[a.index];
        let stage = a.stage_dir("stage");
        let _ = std::fs::remove_dir_all(&stage);
        if let Some(dir) = a.log.parent() {
            dagrun_cache::ensure_dir(dir)
                .map_err(|e| TaskError::new(Failure::Spawn, format!("cannot create {}: {e}", dir.display())))?;
        }
        let flag = Arc::new(AtomicBool::new(false));
        let _raise = RaiseOnDrop(flag.clone());
        let plugin_run = PluginRun {
            task: run.workflow.tasks[node.task].name.clone(),
            run_id: run.run_id.clone(),
            partition: self.partition.clone(),
            params_json: self.params_json.clone(),
            inputs: self.inputs.clone(),
            mounts: self.mounts.clone(),
            stage_dir: stage.clone(),
            log: a.log.to_owned(),
            limits: self.limits,
            cancel: flag.clone(),
        };
        let spec = self.clone();
        let mut job = tokio::task::spawn_blocking(move || {
            let plugin = host.load(&spec.plugin)?;
            let outcome = dagrun_wasm::run(&host, &plugin, &plugin_run)?;
            spec.place_artifacts(&outcome.artifacts)?;
            Ok::<_, PluginError>(outcome.summary_json)
        });
        let result = tokio::select! {
            r = &mut job => r,
            () = cancelled(a.cancel) => {
                flag.store(true, Ordering::Relaxed);
                let _ = job.await;
                let _ = std::fs::remove_dir_all(&stage);
                return Err(AttemptError::Cancelled);
            }
        };
        let _ = std::fs::remove_dir_all(&stage);
        match result {
            Ok(Ok(summary)) => {
                // A deploy into an `s3://` registry happens when it is published.
                for location in &self.remote_mounts {
                    run.registries.publish(location).await?;
                }
                Ok(serde_json::from_str(&summary).ok())
            }
            Ok(Err(e)) => Err(plugin_failure(e, &run.workflow, node.task)),
            Err(e) => {
                Err(TaskError::new(Failure::Plugin, format!("internal error: the plugin thread failed: {e}")).into())
            }
        }
    }

    /// Copies each declared output's artifact to its path; every artifact must be declared.
    fn place_artifacts(&self, artifacts: &[(String, PathBuf)]) -> Result<(), PluginError> {
        let fail = |msg: String| Err(PluginError::Failed(msg));
        for (name, _) in artifacts {
            if !self.outputs.contains_key(name) {
                return fail(format!(
                    "the plugin returned artifact `{name}`, which the task does not declare; add it under `outputs`"
                ));
            }
        }
        for (name, dest) in &self.outputs {
            let Some((_, src)) = artifacts.iter().find(|(n, _)| n == name) else {
                let got: Vec<&str> = artifacts.iter().map(|(n, _)| n.as_str()).collect();
                return fail(format!(
                    "the plugin did not return output `{name}` (it returned: {})",
                    if got.is_empty() { "nothing".to_owned() } else { got.join(", ") }
                ));
            };
            // Again at placement: a link made meanwhile (a writable mount) must not be followed.
            let dest = &self.roots.resolve(name, dest).map_err(|e| PluginError::Failed(e.message))?;
            let io = |source| PluginError::Io {
                context: format!("cannot write output `{name}` to {}", dest.display()),
                source,
            };
            if let Some(dir) = dest.parent() {
                dagrun_cache::ensure_dir(dir).map_err(io)?;
            }
            std::fs::copy(src, dest).map_err(io)?;
        }
        Ok(())
    }
}

impl Kind for WasmKind {
    fn attempt<'a>(&'a self, a: Attempt<'a>) -> AttemptFuture<'a> {
        Box::pin(self.run(a))
    }
}

/// A plugin error as a typed task failure. Failures that would repeat identically (invalid
/// params, refused imports, an incompatible plugin, an artifact outside `/out`) are permanent.
/// Invalid params point at the param in the workflow file (`wf.ron:12:9: invalid params: ...`).
fn plugin_failure(e: PluginError, wf: &Workflow, task: usize) -> AttemptError {
    let message = match &e {
        PluginError::InvalidParams(_) => match wf.param_location(task, e.invalid_param().unwrap_or("")) {
            Some((line, col)) => format!("{}:{line}:{col}: {e}", wf.source_name()),
            None => e.to_string(),
        },
        _ => e.to_string(),
    };
    let (failure, permanent) = match &e {
        PluginError::Cancelled => return AttemptError::Cancelled,
        PluginError::Deadline(_) => (Failure::Timeout, false),
        PluginError::Memory { .. } | PluginError::Panic { .. } | PluginError::Trap { .. } => (Failure::Trap, false),
        PluginError::InvalidParams(_) => (Failure::InvalidParams, true),
        PluginError::NotAComponent { .. }
        | PluginError::Incompatible { .. }
        | PluginError::NetworkImport { .. }
        | PluginError::ArtifactOutside { .. } => (Failure::Plugin, true),
        _ => (Failure::Plugin, false),
    };
    AttemptError::Failed(TaskError { failure, message: bounded(message), permanent })
}
