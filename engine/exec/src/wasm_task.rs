//! One attempt of a `Wasm` task: stage inputs, run the plugin in its sandbox on a blocking
//! thread, and copy its artifacts to the task's declared output paths.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use dagrun_cache::Manifest;
use dagrun_plan::{instance_outputs, instance_params, resolve_path};
use dagrun_wasm::{InputMount, Limits, Mount, PluginError, PluginRun};
use dagrun_workflow::{WasmTask, size};

use crate::command::{AttemptError, cancelled};
use crate::runner::Shared;
use crate::task::input_files;

/// Default memory cap of a plugin.
pub const DEFAULT_MEMORY: u64 = 1 << 30;
/// Default deadline of a plugin run when the task sets no `timeout`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3600);

/// Everything a `Wasm` task's attempts share.
#[derive(Debug, Clone)]
pub(crate) struct WasmSpec {
    plugin: PathBuf,
    inputs: Vec<InputMount>,
    mounts: Vec<Mount>,
    limits: Limits,
    params_json: String,
    outputs: BTreeMap<String, String>,
    partition: Option<String>,
}

impl WasmSpec {
    pub(crate) fn new(
        shared: &Shared,
        i: usize,
        w: &WasmTask,
        ups: &HashMap<usize, Arc<Manifest>>,
    ) -> Result<WasmSpec, String> {
        let wf = &shared.ctx.workflow;
        let node = &shared.ctx.instances.nodes[i];
        let task = &wf.tasks[node.task];
        if let Some(e) = shared.plugin_errors.get(&w.plugin) {
            return Err(e.clone());
        }
        let plugin = shared.plugins.get(&w.plugin).cloned().unwrap_or_else(|| resolve_path(wf, &w.plugin));
        let inputs = input_files(shared, i, ups)
            .into_iter()
            .map(|(name, files, directory)| InputMount { name, files, directory })
            .collect();
        let mounts = w
            .mounts
            .iter()
            .map(|(name, m)| Mount { name: name.clone(), host: resolve_path(wf, &m.path), writable: m.writable })
            .collect();
        let memory_bytes = w.memory.as_deref().and_then(|m| size::parse(m).ok()).unwrap_or(DEFAULT_MEMORY);
        Ok(WasmSpec {
            plugin,
            inputs,
            mounts,
            limits: Limits { memory_bytes, deadline: task.timeout.unwrap_or(DEFAULT_DEADLINE) },
            params_json: serde_json::Value::Object(instance_params(wf, &shared.ctx.instances, i)).to_string(),
            outputs: instance_outputs(wf, &shared.ctx.instances, i),
            partition: node.partition.as_ref().map(|p| p.key.clone()),
        })
    }

    /// Runs the plugin once; on success its artifacts are at the declared output paths.
    pub(crate) async fn run_attempt(
        &self,
        shared: &Arc<Shared>,
        i: usize,
        attempt: u32,
        log: &Path,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<Option<serde_json::Value>, AttemptError> {
        let host = shared.plugin_host().map_err(AttemptError::Plugin)?;
        let wf = shared.ctx.workflow.clone();
        let task = wf.tasks[shared.ctx.instances.nodes[i].task].name.clone();
        let stage = shared.ctx.store.root().join("tmp").join(format!(
            "stage-{}-{}-{attempt}",
            shared.run_id,
            shared.ctx.instances.nodes[i].name.replace(['@', ':'], "_")
        ));
        let _ = std::fs::remove_dir_all(&stage);
        if let Some(dir) = log.parent() {
            dagrun_cache::ensure_dir(dir).map_err(AttemptError::Spawn)?;
        }
        let flag = Arc::new(AtomicBool::new(false));
        let run = PluginRun {
            task,
            run_id: shared.run_id.clone(),
            partition: self.partition.clone(),
            params_json: self.params_json.clone(),
            inputs: self.inputs.clone(),
            mounts: self.mounts.clone(),
            stage_dir: stage.clone(),
            log: log.to_owned(),
            limits: self.limits,
            cancel: flag.clone(),
        };
        let spec = self.clone();
        let mut job = tokio::task::spawn_blocking(move || {
            let plugin = host.load(&spec.plugin)?;
            let outcome = dagrun_wasm::run(&host, &plugin, &run)?;
            spec.place_artifacts(&wf.dir, &outcome.artifacts)?;
            Ok::<_, PluginError>(outcome.summary_json)
        });
        let result = tokio::select! {
            r = &mut job => r,
            () = cancelled(cancel) => {
                flag.store(true, Ordering::Relaxed);
                let _ = job.await;
                let _ = std::fs::remove_dir_all(&stage);
                return Err(AttemptError::Cancelled);
            }
        };
        let _ = std::fs::remove_dir_all(&stage);
        match result.expect("plugin thread panicked") {
            Ok(summary) => Ok(serde_json::from_str(&summary).ok()),
            Err(PluginError::Cancelled) => Err(AttemptError::Cancelled),
            // Failures that would repeat identically are not worth a retry.
            Err(
                e @ (PluginError::NotAComponent { .. }
                | PluginError::Incompatible { .. }
                | PluginError::NetworkImport { .. }
                | PluginError::InvalidParams(_)
                | PluginError::ArtifactOutside { .. }),
            ) => Err(AttemptError::Permanent(e.to_string())),
            Err(e) => Err(AttemptError::Plugin(e.to_string())),
        }
    }

    /// Copies each declared output's artifact to its path; every artifact must be declared.
    fn place_artifacts(&self, wf_dir: &Path, artifacts: &[(String, PathBuf)]) -> Result<(), PluginError> {
        let fail = |msg: String| Err(PluginError::Failed(msg));
        for (name, _) in artifacts {
            if !self.outputs.contains_key(name) {
                return fail(format!(
                    "the plugin returned artifact `{name}`, which the task does not declare; add it under `outputs`"
                ));
            }
        }
        for (name, rel) in &self.outputs {
            let Some((_, src)) = artifacts.iter().find(|(n, _)| n == name) else {
                let got: Vec<&str> = artifacts.iter().map(|(n, _)| n.as_str()).collect();
                return fail(format!(
                    "the plugin did not return output `{name}` (it returned: {})",
                    if got.is_empty() { "nothing".to_owned() } else { got.join(", ") }
                ));
            };
            let dest = wf_dir.join(rel);
            let io = |source| PluginError::Io {
                context: format!("cannot write output `{name}` to {}", dest.display()),
                source,
            };
            if let Some(dir) = dest.parent() {
                dagrun_cache::ensure_dir(dir).map_err(io)?;
            }
            std::fs::copy(src, &dest).map_err(io)?;
        }
        Ok(())
    }
}
