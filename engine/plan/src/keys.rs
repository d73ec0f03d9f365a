//! Resolves a task's [`KeyInputs`]: digests its code, params, input files and upstream outputs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use dagrun_cache::{
    ActionEntry, ActionKey, Change, Digest, EntryError, InputDigest, KeyInputs, KnownMemo, Manifest, ManifestDigest,
    ObjectDigest, StatCache, Store, StoreError, canonical_json, canonical_json_object, manifest_digest,
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
    /// Hash files the stat cache cannot vouch for. `false` for a cheap look (the run's quick
    /// hits; with `hash_budget`, its key look-ups on async workers): such a file (past the
    /// budget) is then an error of kind [`std::io::ErrorKind::WouldBlock`] instead.
    pub hash: bool,
    /// Built plugin crates: the `plugin` path as written → the .wasm it built.
    pub plugins: &'a HashMap<String, PathBuf>,
    /// With `hash` off and no `hash_budget`: what the stat cache said of each file so far (see
    /// [`KnownMemo`]).
    pub memo: Option<&'a KnownMemo>,
    /// With `hash` off: files are still looked at, and hashed, while the budget lasts (see
    /// [`StatCache::digest_within`]), for a look-up that stays cheap (a run's key look-ups on
    /// its async workers); past it, the `WouldBlock` error. `memo` is not used then.
    pub hash_budget: Option<&'a AtomicU64>,
}

impl<'a> KeyContext<'a> {
    /// A context that hashes what the stat cache cannot vouch for, without `verify`.
    pub fn new(workflow: &'a Workflow, stat: &'a StatCache, plugins: &'a HashMap<String, PathBuf>) -> Self {
        KeyContext { workflow, stat, verify: false, hash: true, plugins, memo: None, hash_budget: None }
    }

    /// The digest and size of the file at `path`, through the stat cache (see [`KeyContext::hash`]).
    pub fn digest(&self, path: &Path) -> Result<(ObjectDigest, u64), StoreError> {
        if self.hash || self.verify {
            return self.stat.digest(path, self.verify);
        }
        let known = match (self.hash_budget, self.memo) {
            (Some(budget), _) => self.stat.digest_within(path, budget)?,
            (None, Some(memo)) => self.stat.known_once(path, memo)?,
            (None, None) => self.stat.known(path)?,
        };
        known.ok_or_else(|| StoreError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::WouldBlock, "changed since it was last hashed"),
        })
    }
}

/// A task's key and, when cached, the entry it hits.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The key inputs and the files behind them.
    pub resolved: Resolved,
    /// The key.
    pub key: ActionKey,
    /// The cache entry, on a hit. Its `key` differs from [`Probe::key`] when an evaluation's
    /// candidate became the champion since (the entry that promoted it still holds).
    pub hit: Option<ActionEntry>,
    /// The entry stored under [`Probe::key`] when it failed its checks (damaged or tampered
    /// with; not merely of another format version): a miss, which `run` reports and removes.
    pub rejected: Option<EntryError>,
}

/// Absolute path of a path written in the workflow (an `s3://` registry: the local mirror the
/// run synced it into).
pub fn resolve_path(wf: &Workflow, p: &str) -> PathBuf {
    if let Some(mirror) = wf.registry_mirrors.get(p) {
        return mirror.clone();
    }
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
            let (wasm, _) = ctx.digest(&path).map_err(|source| KeyError::Plugin { path: w.plugin.clone(), source })?;
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
        TaskKind::Drift(d) => {
            let mut h = blake3::Hasher::new();
            h.update(concat!("dagrun-drift/", env!("CARGO_PKG_VERSION")).as_bytes());
            h.update(serde_json::to_string(d).expect("serializes").as_bytes());
            Ok(Digest(*h.finalize().as_bytes()))
        }
        TaskKind::Performance(p) => {
            let mut h = blake3::Hasher::new();
            h.update(concat!("dagrun-performance/", env!("CARGO_PKG_VERSION")).as_bytes());
            h.update(serde_json::to_string(p).expect("serializes").as_bytes());
            Ok(Digest(*h.finalize().as_bytes()))
        }
        TaskKind::Approval(a) => {
            let mut h = blake3::Hasher::new();
            h.update(concat!("dagrun-approval/", env!("CARGO_PKG_VERSION")).as_bytes());
            h.update(serde_json::to_string(a).expect("serializes").as_bytes());
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
        return params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    }
    params.iter().map(|(k, v)| (k.clone(), fill(v, &node.vars))).collect()
}

/// The digest of instance `i`'s params as its key holds them: their canonical JSON
/// ([`canonical_json`] of [`instance_params`]), written straight from the task's params when
/// no partition variable fills them in (no copy on every key).
fn params_digest(wf: &Workflow, inst: &Instances, i: usize) -> Digest {
    let json = if inst.nodes[i].vars.is_empty() {
        canonical_json_object(wf.tasks[inst.nodes[i].task].params.iter())
    } else {
        canonical_json(&serde_json::Value::Object(instance_params(wf, inst, i)))
    };
    Digest::of(json.as_bytes())
}

/// One input file whose bytes went into the key: the task receives exactly this file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Absolute path.
    pub path: PathBuf,
    /// Its content digest, as hashed into the key.
    pub digest: ObjectDigest,
}

/// One named input as a task receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedInput {
    /// The files, in key order.
    pub files: Vec<InputFile>,
    /// A list input (`Glob`, `Partitions`) rather than one file.
    pub list: bool,
}

/// A model taken from a registry when the key was computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryModel {
    /// Its version (`v0003`).
    pub version: String,
    /// The model file.
    pub path: PathBuf,
    /// Its content digest.
    pub digest: ObjectDigest,
}

/// Everything key resolution found: the key inputs, and the files behind them.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What goes into the key.
    pub inputs: KeyInputs,
    /// Per input name: the files whose digests are in `inputs`.
    pub files: BTreeMap<String, ResolvedInput>,
    /// `OnnxPredict` with `deployed`: the model it scores with.
    pub deployed: Option<RegistryModel>,
    /// `OnnxEval` with a champion gate: the deployed champion (also when it is the candidate).
    pub champion: Option<RegistryModel>,
    /// `Drift` with `reference: Deployed(...)`: the data the deployed model was trained on.
    pub reference: Option<InputFile>,
    /// `Performance` with a deployed model: the verdict that promoted it (its recorded metrics).
    pub baseline: Option<InputFile>,
}

/// Resolves the key inputs of instance `i`, given the manifests of its finished upstream instances.
pub fn key_inputs(
    ctx: &KeyContext<'_>,
    inst: &Instances,
    i: usize,
    upstream: &HashMap<usize, &Manifest>,
) -> Result<Resolved, KeyError> {
    let wf = ctx.workflow;
    let node = &inst.nodes[i];
    let task = &wf.tasks[node.task];
    let mut inputs = BTreeMap::new();
    let mut files = BTreeMap::new();
    for (name, source) in &inst.sources[i] {
        let (digest, resolved) = resolve_source(ctx, inst, upstream, name, source)?;
        inputs.insert(name.clone(), digest);
        files.insert(name.clone(), resolved);
    }
    let champion = match &task.kind {
        TaskKind::OnnxEval(o) => champion_input(ctx, o, &mut inputs)?,
        _ => None,
    };
    let monitor = crate::registry_inputs::monitor_inputs(ctx, &task.kind, &mut inputs)?;
    let deployed = match &task.kind {
        TaskKind::OnnxPredict(p) => match &p.deployed {
            Some(d) => Some(deployed_input(ctx, d, &mut inputs)?),
            None => None,
        },
        _ => monitor.deployed,
    };
    let mut after = BTreeMap::new();
    for dep in &task.after {
        after.insert(dep.clone(), after_digest(inst, i, dep, upstream)?);
    }
    let inputs = KeyInputs {
        kind: task.kind.label().to_owned(),
        code: code_digest(ctx, task)?,
        params: params_digest(wf, inst, i),
        inputs,
        outputs: instance_outputs(wf, inst, i),
        upstream: after,
        partition: node.partition.as_ref().map(|p| p.key.clone()),
    };
    Ok(Resolved { inputs, files, deployed, champion, reference: monitor.reference, baseline: monitor.baseline })
}

/// What an `after` dependency puts into the key: its instance's outputs (one instance, as
/// always), or for an unpartitioned task after every partition of a partitioned one, each
/// instance's outputs by name. An instance without outputs (it raised the alert an `only_if`
/// waited for) counts as `alerted`; any other missing upstream is an error.
fn after_digest(
    inst: &Instances,
    i: usize,
    dep: &str,
    upstream: &HashMap<usize, &Manifest>,
) -> Result<ManifestDigest, KeyError> {
    let missing = || KeyError::MissingUpstream { task: dep.to_owned(), output: "*".into() };
    let mut ups: Vec<usize> = inst.upstream(i).filter(|&u| inst.nodes[u].name.split('@').next() == Some(dep)).collect();
    ups.sort_by(|a, b| inst.nodes[*a].name.cmp(&inst.nodes[*b].name));
    let conditional = ups.len() > 1 || ups.first().is_some_and(|&u| !upstream.contains_key(&u));
    if !conditional {
        let u = *ups.first().ok_or_else(missing)?;
        return Ok(manifest_digest(upstream.get(&u).ok_or_else(missing)?));
    }
    let mut h = blake3::Hasher::new();
    for u in ups {
        let name = &inst.nodes[u].name;
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        match upstream.get(&u) {
            Some(m) => h.update(&manifest_digest(m).0.0),
            None => h.update(b"alerted"),
        };
    }
    Ok(ManifestDigest(Digest(*h.finalize().as_bytes())))
}

/// One named input: what goes into the key, and the files the task receives.
fn resolve_source(
    ctx: &KeyContext<'_>,
    inst: &Instances,
    upstream: &HashMap<usize, &Manifest>,
    name: &str,
    source: &Source,
) -> Result<(InputDigest, ResolvedInput), KeyError> {
    let wf = ctx.workflow;
    let output_of = |u: usize, o: &str| {
        upstream
            .get(&u)
            .and_then(|m| m.get(o))
            .map(|r| InputFile { path: wf.dir.join(&r.path), digest: r.digest })
            .ok_or_else(|| KeyError::MissingUpstream { task: inst.nodes[u].name.clone(), output: o.to_owned() })
    };
    let task_name = |u: usize| wf.tasks[inst.nodes[u].task].name.clone();
    Ok(match source {
        Source::File(p) => {
            let path = resolve_path(wf, p);
            let (d, _) = ctx.digest(&path).map_err(|source| KeyError::Input {
                input: name.to_owned(),
                path: p.clone(),
                source,
            })?;
            (InputDigest::Files(vec![(p.clone(), d)]), single(InputFile { path, digest: d }))
        }
        Source::Glob(pattern) => {
            let (shown, found) = glob_files(ctx, name, pattern)?;
            (InputDigest::Files(shown), ResolvedInput { files: found, list: true })
        }
        Source::Output { instance, output } => {
            let f = output_of(*instance, output)?;
            let digest = InputDigest::Output { task: task_name(*instance), output: output.clone(), digest: f.digest };
            (digest, single(f))
        }
        Source::Partitions { instances, output } => {
            let task = instances.first().map_or(String::new(), |&u| task_name(u));
            let found = instances.iter().map(|&u| output_of(u, output)).collect::<Result<Vec<_>, _>>()?;
            let key = |u: usize| inst.nodes[u].partition.as_ref().map_or(String::new(), |p| p.key.clone());
            let parts = instances.iter().zip(&found).map(|(&u, f)| (key(u), f.digest)).collect();
            let digest = InputDigest::Partitions { task, output: output.clone(), parts };
            (digest, ResolvedInput { files: found, list: true })
        }
    })
}

fn single(f: InputFile) -> ResolvedInput {
    ResolvedInput { files: vec![f], list: false }
}

/// Name of the synthetic key input holding the deployed model an `OnnxPredict` task uses.
pub const DEPLOYED_INPUT: &str = "@deployed";

/// The deployed model an `OnnxPredict` task scores with: looked up once, hashed into the key.
pub(crate) fn deployed_input(
    ctx: &KeyContext<'_>,
    d: &dagrun_workflow::DeployedDef,
    inputs: &mut BTreeMap<String, InputDigest>,
) -> Result<RegistryModel, KeyError> {
    let (version, path) = deployed_model(ctx.workflow, d)?;
    let (digest, _) = ctx.digest(&path).map_err(|source| KeyError::Input {
        input: DEPLOYED_INPUT.into(),
        path: version.clone(),
        source,
    })?;
    let shown = format!("{}/{}/{version}/model.onnx", d.registry, d.name);
    inputs.insert(DEPLOYED_INPUT.to_owned(), InputDigest::Files(vec![(shown, digest)]));
    Ok(RegistryModel { version, path, digest })
}

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
/// (right after deploying it): then the earlier verdict still holds (see [`probe`]).
fn champion_input(
    ctx: &KeyContext<'_>,
    o: &dagrun_workflow::OnnxEvalTask,
    inputs: &mut BTreeMap<String, InputDigest>,
) -> Result<Option<RegistryModel>, KeyError> {
    let Some(c) = o.gate.as_ref().and_then(|g| g.champion.as_ref()) else { return Ok(None) };
    let Some((version, path)) = dagrun_cache::registry::current(&resolve_path(ctx.workflow, &c.registry), &c.name)
    else {
        return Ok(None);
    };
    let (digest, _) = ctx.digest(&path).map_err(|source| KeyError::Input {
        input: CHAMPION_INPUT.into(),
        path: version.clone(),
        source,
    })?;
    if candidate_digest(inputs, &o.model) != Some(digest) {
        let shown = format!("{}/{}/{version}/model.onnx", c.registry, c.name);
        inputs.insert(CHAMPION_INPUT.to_owned(), InputDigest::Files(vec![(shown, digest)]));
    }
    Ok(Some(RegistryModel { version, path, digest }))
}

fn candidate_digest(inputs: &BTreeMap<String, InputDigest>, model: &str) -> Option<ObjectDigest> {
    match inputs.get(model) {
        Some(InputDigest::Files(files)) => files.first().map(|(_, d)| *d),
        Some(InputDigest::Output { digest, .. }) => Some(*digest),
        _ => None,
    }
}

/// Files as the key shows them: `(path as written or matched, digest)`.
type ShownFiles = Vec<(String, ObjectDigest)>;

/// The files a glob matches, sorted: as shown in the key (relative when written relative) and
/// as the task receives them.
fn glob_files(ctx: &KeyContext<'_>, name: &str, pattern: &str) -> Result<(ShownFiles, Vec<InputFile>), KeyError> {
    let wf = ctx.workflow;
    let full = resolve_path(wf, pattern);
    let relative = !Path::new(pattern).is_absolute();
    let paths = glob::glob(&full.to_string_lossy()).map_err(|e| KeyError::Unsupported(e.to_string()))?;
    let mut found: Vec<(String, InputFile)> = Vec::new();
    for path in paths.flatten().filter(|p| p.is_file()) {
        let shown = match (relative, path.strip_prefix(&wf.dir)) {
            (true, Ok(rel)) => rel.to_string_lossy().into_owned(),
            _ => path.to_string_lossy().into_owned(),
        };
        let (digest, _) = ctx.digest(&path).map_err(|source| KeyError::Input {
            input: name.to_owned(),
            path: shown.clone(),
            source,
        })?;
        found.push((shown, InputFile { path, digest }));
    }
    if found.is_empty() {
        return Err(KeyError::EmptyGlob {
            input: name.to_owned(),
            pattern: pattern.to_owned(),
            dir: wf.dir.display().to_string(),
        });
    }
    found.sort_by(|a, b| (&a.0, a.1.digest).cmp(&(&b.0, b.1.digest)));
    Ok(found.into_iter().map(|(shown, f)| ((shown.clone(), f.digest), f)).unzip())
}

/// Computes an instance's key and looks it up.
///
/// A gated evaluation whose candidate has since been deployed (it is now the champion) is not
/// evaluated again against itself: the entry of the evaluation that promoted it is a hit, when
/// nothing else changed since.
pub fn probe(
    ctx: &KeyContext<'_>,
    store: &Store,
    inst: &Instances,
    i: usize,
    upstream: &HashMap<usize, &Manifest>,
) -> Result<Probe, KeyError> {
    let resolved = key_inputs(ctx, inst, i, upstream)?;
    let key = resolved.inputs.key();
    let (mut hit, rejected) = match store.load_action(&key) {
        Ok(hit) => (hit, None),
        Err(e) => (None, e.is_corruption().then_some(e)),
    };
    let promoted = resolved.champion.is_some() && !resolved.inputs.inputs.contains_key(CHAMPION_INPUT);
    if hit.is_none() && promoted {
        hit = promoting_entry(store, &last_run_name(ctx.workflow, &inst.nodes[i].name), &resolved.inputs);
    }
    Ok(Probe { resolved, key, hit, rejected })
}

/// The entry of the last evaluation of this task, if it differs from `inputs` only by the
/// champion it was compared with (the candidate has been deployed since).
fn promoting_entry(store: &Store, task: &str, inputs: &KeyInputs) -> Option<ActionEntry> {
    let last = store.last_run(task)?;
    let mut before = last.inputs.clone();
    before.inputs.remove(CHAMPION_INPUT)?;
    (before == *inputs).then(|| store.get_action(&last.key)).flatten()
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
                changes.iter().map(describe_change).collect()
            }
        }
    }
}

/// A change in words; the synthetic registry inputs get their own wording.
fn describe_change(c: &Change) -> String {
    match c {
        Change::InputAdded(n) | Change::InputChanged { name: n, .. } | Change::InputRemoved(n)
            if n == CHAMPION_INPUT =>
        {
            "the deployed champion changed".to_owned()
        }
        Change::InputAdded(n) | Change::InputChanged { name: n, .. } | Change::InputRemoved(n)
            if n == DEPLOYED_INPUT =>
        {
            "the deployed model changed".to_owned()
        }
        Change::InputAdded(n) | Change::InputChanged { name: n, .. } | Change::InputRemoved(n)
            if n == crate::REFERENCE_INPUT =>
        {
            "the deployed model's reference data changed".to_owned()
        }
        Change::InputAdded(n) | Change::InputChanged { name: n, .. } | Change::InputRemoved(n)
            if n == crate::BASELINE_INPUT =>
        {
            "the deployed model's verdict (the baseline) changed".to_owned()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
