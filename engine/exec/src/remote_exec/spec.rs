//! The task spec: everything `dagrun exec-task` needs to run one task instance on another
//! machine, stored as JSON in the remote cache under `v1/specs/<hh>/<key>.json` beside the
//! objects it names. Versioned ([`SPEC_VERSION`]): a worker refuses a spec it cannot read.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use dagrun_cache::{ActionKey, KeyInputs, ObjectDigest};
use dagrun_plan::{instance_outputs, instance_params};
use dagrun_workflow::{TaskKind, size};

use crate::kinds::{DEFAULT_MEMORY, Job};
use crate::outcome::{Failure, TaskError};

/// The spec format's version.
pub const SPEC_VERSION: u32 = 1;

/// Where local input files outside the workflow directory are put in the worker's directory.
const OUTSIDE: &str = ".dagrun-inputs";

/// One task instance, as a remote worker runs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskSpec {
    /// [`SPEC_VERSION`].
    pub version: u32,
    /// The cache key (the local run's: running remotely never changes it).
    pub key: ActionKey,
    /// What the key was computed from (recorded in the entry; `key_inputs.key() == key`).
    pub key_inputs: KeyInputs,
    /// The workflow's name.
    pub workflow: String,
    /// The task's name.
    pub task: String,
    /// The instance's name (`task` or `task@partition`).
    pub instance: String,
    /// The run that submitted it.
    pub run_id: String,
    /// Its partition key.
    pub partition: Option<String>,
    /// Its params (a JSON object).
    pub params: serde_json::Value,
    /// What it runs.
    pub kind: SpecKind,
    /// Its inputs: name → files, each at a path relative to the worker's directory.
    pub inputs: BTreeMap<String, SpecInput>,
    /// Its declared outputs: name → path relative to the workflow (and worker's) directory.
    pub outputs: BTreeMap<String, String>,
    /// The task's `timeout`, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Cap of the task's log, in bytes.
    pub log_bytes: u64,
}

/// The kind payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpecKind {
    /// `sh -c run` with `env` added.
    Command {
        /// The shell command line.
        run: String,
        /// The task's `env`.
        env: BTreeMap<String, String>,
    },
    /// A WASM plugin, shipped as an object.
    Wasm {
        /// The built component.
        plugin: SpecFile,
        /// Its memory cap, in bytes.
        memory_bytes: u64,
    },
}

/// One named input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpecInput {
    /// A list input (`Glob`, `Partitions`) rather than one file.
    pub list: bool,
    /// Its files, in key order.
    pub files: Vec<SpecFile>,
}

/// A file the worker fetches from the remote cache by digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpecFile {
    /// Where it goes, relative to the worker's directory (never absolute, never `..`).
    pub path: String,
    /// Its content digest.
    pub digest: ObjectDigest,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it is executable.
    #[serde(default)]
    pub executable: bool,
}

impl TaskSpec {
    /// The spec of a prepared instance and the local files it names (path → digest): its
    /// inputs (the exact files the key hashed) and, for a plugin, the built component.
    pub(crate) fn of(job: &Job<'_>) -> Result<(TaskSpec, Vec<(PathBuf, ObjectDigest)>), TaskError> {
        let run = job.run;
        let task = job.task();
        let node = &run.instances.nodes[job.index];
        let mut files = Vec::new();
        let mut inputs = BTreeMap::new();
        for (name, input) in &job.probe.resolved.files {
            let mut spec_files = Vec::with_capacity(input.files.len());
            for f in &input.files {
                spec_files.push(spec_file(&run.workflow.dir, &f.path, f.digest)?);
                files.push((f.path.clone(), f.digest));
            }
            inputs.insert(name.clone(), SpecInput { list: input.list, files: spec_files });
        }
        let kind = match &task.kind {
            TaskKind::Command(c) => SpecKind::Command { run: c.run.clone(), env: c.env.clone() },
            TaskKind::Wasm(w) => {
                let Some(wasm) = run
                    .plugins
                    .get(&w.plugin)
                    .cloned()
                    .or_else(|| Some(dagrun_plan::resolve_path(&run.workflow, &w.plugin)).filter(|p| p.is_file()))
                else {
                    return Err(TaskError::permanent(Failure::Plugin, format!("plugin `{}` was not built", w.plugin)));
                };
                let (digest, size) = dagrun_cache::hash_file(&wasm).map_err(|e| {
                    TaskError::permanent(Failure::Plugin, format!("cannot read {}: {e}", wasm.display()))
                })?;
                files.push((wasm, digest));
                let plugin = SpecFile { path: "plugin.wasm".into(), digest, size, executable: false };
                let memory_bytes = w.memory.as_deref().and_then(|m| size::parse(m).ok()).unwrap_or(DEFAULT_MEMORY);
                SpecKind::Wasm { plugin, memory_bytes }
            }
            other => {
                return Err(TaskError::permanent(
                    Failure::Spawn,
                    format!("{} tasks cannot run remotely; remove `executor` from task `{}`", other.label(), task.name),
                ));
            }
        };
        let spec = TaskSpec {
            version: SPEC_VERSION,
            key: job.probe.key,
            key_inputs: job.probe.resolved.inputs.clone(),
            workflow: run.workflow.name.clone(),
            task: task.name.clone(),
            instance: node.name.clone(),
            run_id: run.run_id.clone(),
            partition: node.partition.as_ref().map(|p| p.key.clone()),
            params: serde_json::Value::Object(instance_params(&run.workflow, &run.instances, job.index)),
            kind,
            inputs,
            outputs: instance_outputs(&run.workflow, &run.instances, job.index),
            timeout_ms: task.timeout.map(|t| t.as_millis() as u64),
            log_bytes: run.log_bytes,
        };
        spec.check().map_err(|why| {
            TaskError::permanent(Failure::Spawn, format!("task `{}` cannot run remotely: {why}", task.name))
        })?;
        Ok((spec, files))
    }

    /// Checks what a worker must not trust blindly: the version, the key against its inputs,
    /// and that every path stays inside the worker's directory.
    pub fn check(&self) -> Result<(), String> {
        if self.version != SPEC_VERSION {
            return Err(format!(
                "spec version {} (this dagrun reads version {SPEC_VERSION}); run the same dagrun version on both sides",
                self.version
            ));
        }
        if self.key_inputs.key() != self.key {
            return Err("its key does not match its key inputs".into());
        }
        let inputs = self.inputs.values().flat_map(|i| i.files.iter().map(|f| f.path.as_str()));
        for p in inputs.chain(self.outputs.values().map(String::as_str)) {
            if !is_inside(Path::new(p)) {
                return Err(format!("path {p:?} leaves the worker's directory"));
            }
        }
        Ok(())
    }
}

/// A local file as a spec file: under the workflow directory it keeps its relative path, else
/// it goes to `.dagrun-inputs/<digest>/<file name>`.
fn spec_file(dir: &Path, path: &Path, digest: ObjectDigest) -> Result<SpecFile, TaskError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| TaskError::new(Failure::Input, format!("cannot read input {}: {e}", path.display())))?;
    let rel = path.strip_prefix(dir).ok().filter(|r| is_inside(r)).map(|r| r.to_string_lossy().into_owned());
    let rel = rel.unwrap_or_else(|| {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into());
        format!("{OUTSIDE}/{}/{name}", digest.0.to_hex())
    });
    Ok(SpecFile { path: rel, digest, size: meta.len(), executable: dagrun_cache::is_executable(&meta) })
}

/// A relative path with only normal components.
fn is_inside(p: &Path) -> bool {
    p.components().next().is_some() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside() {
        assert!(is_inside(Path::new("out/a.csv")));
        for p in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(!is_inside(Path::new(p)), "{p}");
        }
    }
}
