//! Resolves a task's [`KeyInputs`]: digests its code, params, input files and upstream outputs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use dagrun_cache::{
    ActionEntry, ActionKey, Digest, InputDigest, KeyInputs, Manifest, StatCache, Store, StoreError, canonical_json,
    manifest_digest,
};
use dagrun_workflow::partition::render;
use dagrun_workflow::{Task, TaskKind, Workflow};

use crate::instances::{Instances, Source};

/// Why a task's key could not be computed (the task fails; nothing runs).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An input file is missing or unreadable.
    #[error("input `{input}`: cannot read {path}: {source}")]
    Input {
        /// Input name.
        input: String,
        /// The file.
        path: String,
        /// Underlying error.
        source: StoreError,
    },
    /// A glob matched no files.
    #[error("input `{input}`: glob `{pattern}` matched no files (relative to {dir})")]
    EmptyGlob {
        /// Input name.
        input: String,
        /// The pattern.
        pattern: String,
        /// Directory it was matched in.
        dir: String,
    },
    /// The plugin file could not be read.
    #[error("plugin {path}: {source}")]
    Plugin {
        /// The plugin path.
        path: String,
        /// Underlying error.
        source: StoreError,
    },
    /// This task kind cannot run in this build yet.
    #[error("{0}")]
    Unsupported(String),
    /// A plugin crate whose sources changed since its last build (it is built when the task runs).
    #[error("plugin crate {0} changed since its last build (it is rebuilt when the workflow runs)")]
    PluginNotBuilt(String),
    /// An upstream output the task reads is not known (the upstream did not succeed).
    #[error("upstream `{task}` has no output `{output}`")]
    MissingUpstream {
        /// Upstream task.
        task: String,
        /// Output name.
        output: String,
    },
}

/// Everything key resolution needs besides the task.
#[derive(Debug, Clone, Copy)]
pub struct KeyContext<'a> {
    /// The workflow (for its directory).
    pub workflow: &'a Workflow,
    /// Shared stat cache.
    pub stat: &'a StatCache,
    /// Re-hash every file, ignoring the stat cache.
    pub verify: bool,
    /// Built plugin crates: the `plugin` path as written → the .wasm it built.
    pub plugins: &'a HashMap<String, PathBuf>,
}

/// A task's key and, when cached, the entry it hits.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The resolved key inputs.
    pub inputs: KeyInputs,
    /// Their key.
    pub key: ActionKey,
    /// The cache entry, on a hit.
    pub hit: Option<ActionEntry>,
}

/// Absolute path of a path written in the workflow.
pub fn resolve_path(wf: &Workflow, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() { p.to_owned() } else { wf.dir.join(p) }
}

/// The digest of what a task runs.
pub fn code_digest(ctx: &KeyContext<'_>, task: &Task) -> Result<Digest, KeyError> {
    match &task.kind {
        TaskKind::Command(c) => {
            let mut h = blake3::Hasher::new();
            for part in std::iter::once(c.run.as_str()).chain(c.env.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]))
            {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
            Ok(Digest(*h.finalize().as_bytes()))
        }
        TaskKind::Wasm(w) => {
            let path = match ctx.plugins.get(&w.plugin) {
                Some(built) => built.clone(),
                None if resolve_path(ctx.workflow, &w.plugin).join("Cargo.toml").is_file() => {
                    return Err(KeyError::PluginNotBuilt(w.plugin.clone()));
                }
                None => resolve_path(ctx.workflow, &w.plugin),
            };
            let (wasm, _) = ctx
                .stat
                .digest(&path, ctx.verify)
                .map_err(|source| KeyError::Plugin { path: w.plugin.clone(), source })?;
            // The mounts are part of what the plugin can see (their contents are not hashed).
            let mut h = blake3::Hasher::new();
            h.update(&wasm.0.0);
            for (name, m) in &w.mounts {
                for part in [name.as_str(), m.path.as_str(), if m.writable { "rw" } else { "ro" }] {
                    h.update(&(part.len() as u64).to_le_bytes());
                    h.update(part.as_bytes());
                }
            }
            Ok(Digest(*h.finalize().as_bytes()))
        }
        TaskKind::OnnxPredict(p) => {
            let mut h = blake3::Hasher::new();
            h.update(concat!("dagrun-onnx-predict/", env!("CARGO_PKG_VERSION")).as_bytes());
            h.update(
                serde_json::to_string(&(&p.model, &p.deployed, &p.features, &p.label)).expect("serializes").as_bytes(),
            );
            Ok(Digest(*h.finalize().as_bytes()))
        }
        TaskKind::OnnxEval(o) => {
            // The evaluator's version and the gate (the champion is an input: see `champion_input`).
            let mut h = blake3::Hasher::new();
            h.update(concat!("dagrun-onnx-eval/", env!("CARGO_PKG_VERSION")).as_bytes());
            h.update(
                serde_json::to_string(&(&o.label, &o.features, &o.gate, &o.passthrough))
                    .expect("serializes")
                    .as_bytes(),
            );
            Ok(Digest(*h.finalize().as_bytes()))
        }
    }
}

/// The declared outputs of an instance, partition variables filled in.
pub fn instance_outputs(wf: &Workflow, inst: &Instances, i: usize) -> BTreeMap<String, String> {
    let node = &inst.nodes[i];
    wf.tasks[node.task].outputs.iter().map(|(k, v)| (k.clone(), render(v, &node.vars))).collect()
}

/// The params of an instance: string values have partition variables filled in.
pub fn instance_params(wf: &Workflow, inst: &Instances, i: usize) -> serde_json::Map<String, serde_json::Value> {
    fn fill(v: &serde_json::Value, vars: &BTreeMap<&'static str, String>) -> serde_json::Value {
        match v {
            serde_json::Value::String(s) => serde_json::Value::String(render(s, vars)),
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(|x| fill(x, vars)).collect()),
            serde_json::Value::Object(m) => {
                serde_json::Value::Object(m.iter().map(|(k, x)| (k.clone(), fill(x, vars))).collect())
            }
            other => other.clone(),
        }
    }
    let node = &inst.nodes[i];
    let params = &wf.tasks[node.task].params;
    if node.vars.is_empty() {
        return params.clone();
    }
    params.iter().map(|(k, v)| (k.clone(), fill(v, &node.vars))).collect()
}

/// Resolves the key inputs of instance `i`, given the manifests of its finished upstream instances.
pub fn key_inputs(
    ctx: &KeyContext<'_>,
    inst: &Instances,
    i: usize,
    upstream: &HashMap<usize, &Manifest>,
) -> Result<KeyInputs, KeyError> {
    let wf = ctx.workflow;
    let node = &inst.nodes[i];
    let task = &wf.tasks[node.task];
    let output_of = |u: usize, o: &str| {
        upstream
            .get(&u)
            .and_then(|m| m.get(o))
            .map(|r| r.digest)
            .ok_or_else(|| KeyError::MissingUpstream { task: inst.nodes[u].name.clone(), output: o.to_owned() })
    };
    let mut inputs = BTreeMap::new();
    for (name, source) in &inst.sources[i] {
        let digest = match source {
            Source::File(p) => {
                let (d, _) = ctx.stat.digest(&resolve_path(wf, p), ctx.verify).map_err(|source| KeyError::Input {
                    input: name.clone(),
                    path: p.clone(),
                    source,
                })?;
                InputDigest::Files(vec![(p.clone(), d)])
            }
            Source::Glob(pattern) => InputDigest::Files(glob_files(ctx, name, pattern)?),
            Source::Output { instance, output } => InputDigest::Output {
                task: wf.tasks[inst.nodes[*instance].task].name.clone(),
                output: output.clone(),
                digest: output_of(*instance, output)?,
            },
            Source::Partitions { instances, output } => {
                let task = instances.first().map_or(String::new(), |&u| wf.tasks[inst.nodes[u].task].name.clone());
                let parts = instances
                    .iter()
                    .map(|&u| {
                        let key = inst.nodes[u].partition.as_ref().map_or(String::new(), |p| p.key.clone());
                        output_of(u, output).map(|d| (key, d))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                InputDigest::Partitions { task, output: output.clone(), parts }
            }
        };
        inputs.insert(name.clone(), digest);
    }
    if let TaskKind::OnnxEval(o) = &task.kind {
        champion_input(ctx, o, &mut inputs)?;
    }
    if let TaskKind::OnnxPredict(p) = &task.kind
        && let Some(d) = &p.deployed
    {
        let (version, model) = deployed_model(ctx.workflow, d)?;
        let (digest, _) = ctx.stat.digest(&model, ctx.verify).map_err(|source| KeyError::Input {
            input: DEPLOYED_INPUT.into(),
            path: version.clone(),
            source,
        })?;
        let shown = format!("{}/{}/{version}/model.onnx", d.registry, d.name);
        inputs.insert(DEPLOYED_INPUT.to_owned(), InputDigest::Files(vec![(shown, digest)]));
    }
    let mut after = BTreeMap::new();
    for dep in &task.after {
        let u = inst
            .upstream(i)
            .find(|&u| wf.tasks[inst.nodes[u].task].name == *dep)
            .ok_or_else(|| KeyError::MissingUpstream { task: dep.clone(), output: "*".into() })?;
        let m = upstream.get(&u).ok_or_else(|| KeyError::MissingUpstream { task: dep.clone(), output: "*".into() })?;
        after.insert(dep.clone(), manifest_digest(m));
    }
    Ok(KeyInputs {
        kind: task.kind.label().to_owned(),
        code: code_digest(ctx, task)?,
        params: Digest::of(canonical_json(&serde_json::Value::Object(instance_params(wf, inst, i))).as_bytes()),
        inputs,
        outputs: instance_outputs(wf, inst, i),
        upstream: after,
        partition: node.partition.as_ref().map(|p| p.key.clone()),
    })
}

/// Name of the synthetic key input holding the deployed model an `OnnxPredict` task uses.
pub const DEPLOYED_INPUT: &str = "@deployed";

/// The model currently deployed as `d.name` in `d.registry`: its version and file.
pub fn deployed_model(wf: &Workflow, d: &dagrun_workflow::DeployedDef) -> Result<(String, PathBuf), KeyError> {
    dagrun_cache::registry::current(&resolve_path(wf, &d.registry), &d.name).ok_or_else(|| {
        KeyError::Unsupported(format!(
            "no model `{}` is deployed in {} (deploy one first; `dagrun models list --registry {}`)",
            d.name, d.registry, d.registry
        ))
    })
}

/// Name of the synthetic key input holding the deployed champion an `OnnxEval` gate compares with.
pub const CHAMPION_INPUT: &str = "@champion";

/// The champion is part of what a gated evaluation sees, unless it is the candidate itself
/// (right after deploying it): then the earlier verdict still holds and the task stays cached.
fn champion_input(
    ctx: &KeyContext<'_>,
    o: &dagrun_workflow::OnnxEvalTask,
    inputs: &mut BTreeMap<String, InputDigest>,
) -> Result<(), KeyError> {
    let Some(c) = o.gate.as_ref().and_then(|g| g.champion.as_ref()) else { return Ok(()) };
    let Some((version, model)) = dagrun_cache::registry::current(&resolve_path(ctx.workflow, &c.registry), &c.name)
    else {
        return Ok(());
    };
    let (d, _) = ctx.stat.digest(&model, ctx.verify).map_err(|source| KeyError::Input {
        input: CHAMPION_INPUT.into(),
        path: version.clone(),
        source,
    })?;
    let candidate = match inputs.get(&o.model) {
        Some(InputDigest::Files(files)) => files.first().map(|(_, d)| *d),
        Some(InputDigest::Output { digest, .. }) => Some(*digest),
        _ => None,
    };
    if candidate != Some(d) {
        let shown = format!("{}/{}/{version}/model.onnx", c.registry, c.name);
        inputs.insert(CHAMPION_INPUT.to_owned(), InputDigest::Files(vec![(shown, d)]));
    }
    Ok(())
}

fn glob_files(
    ctx: &KeyContext<'_>,
    name: &str,
    pattern: &str,
) -> Result<Vec<(String, dagrun_cache::ObjectDigest)>, KeyError> {
    let wf = ctx.workflow;
    let full = resolve_path(wf, pattern);
    let relative = !Path::new(pattern).is_absolute();
    let mut files = Vec::new();
    let paths = glob::glob(&full.to_string_lossy()).map_err(|e| KeyError::Unsupported(e.to_string()))?;
    for path in paths.flatten().filter(|p| p.is_file()) {
        let shown = match (relative, path.strip_prefix(&wf.dir)) {
            (true, Ok(rel)) => rel.to_string_lossy().into_owned(),
            _ => path.to_string_lossy().into_owned(),
        };
        let (d, _) = ctx.stat.digest(&path, ctx.verify).map_err(|source| KeyError::Input {
            input: name.to_owned(),
            path: shown.clone(),
            source,
        })?;
        files.push((shown, d));
    }
    if files.is_empty() {
        return Err(KeyError::EmptyGlob {
            input: name.to_owned(),
            pattern: pattern.to_owned(),
            dir: wf.dir.display().to_string(),
        });
    }
    files.sort();
    Ok(files)
}

/// Computes an instance's key and looks it up.
pub fn probe(
    ctx: &KeyContext<'_>,
    store: &Store,
    inst: &Instances,
    i: usize,
    upstream: &HashMap<usize, &Manifest>,
) -> Result<Probe, KeyError> {
    let inputs = key_inputs(ctx, inst, i, upstream)?;
    let key = inputs.key();
    let hit = store.get_action(&key);
    Ok(Probe { inputs, key, hit })
}

/// The name a task instance's last key is recorded under: workflows sharing a state directory
/// may have tasks of the same name.
pub fn last_run_name(wf: &Workflow, instance: &str) -> String {
    format!("{}.{instance}", wf.name.replace(['/', '\\'], "_"))
}

/// Why a task with these inputs is not cached, in words.
pub fn explain_miss(store: &Store, task: &str, inputs: &KeyInputs, key: &ActionKey) -> Vec<String> {
    match store.last_run(task) {
        None => vec!["never run".to_owned()],
        Some(last) if last.key == *key => vec!["cache entry missing (removed by gc or verify)".to_owned()],
        Some(last) => {
            let changes = inputs.changes_since(&last.inputs);
            if changes.is_empty() {
                vec!["key format changed".to_owned()]
            } else {
                changes.iter().map(ToString::to_string).collect()
            }
        }
    }
}
