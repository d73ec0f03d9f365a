//! The worker side, `dagrun exec-task`: fetch the spec and the inputs by digest from the
//! remote cache into a fresh directory, run the task with the same code as a local run (the
//! `Command` kind's process handling, the plugin sandbox), hash the outputs into a scratch
//! store and publish them under the spec's key (objects first, then the entry, create-only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use dagrun_cache::{
    ActionEntry, ActionKey, Contents, Digest, Durability, Manifest, OutputRecord, Store, entry_version, inline_room,
    is_executable, now_ms,
};
use dagrun_remote::{Published, RemoteCache, RemoteError, RemoteUrl};
use dagrun_wasm::{InputMount, Limits, PluginHost, PluginRun};

use crate::kinds::{CommandSpec, DEFAULT_DEADLINE, EnvParts, run_attempt, task_env};
use crate::outcome::AttemptError;
use crate::remote_exec::spec::{SpecKind, TaskSpec};

/// What a worker did.
#[derive(Debug)]
pub struct ExecTaskReport {
    /// The instance.
    pub instance: String,
    /// The key its outputs were published under.
    pub key: ActionKey,
    /// Whether this worker's entry became the remote's (or an equal one was there first).
    pub published: Published,
    /// How long the task itself ran.
    pub duration_ms: u64,
    /// The task's log.
    pub log: String,
}

/// Why a worker failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecTaskError {
    /// `--key` is not a key.
    #[error("invalid key {0:?}: expected the 64 hex digits of a cache key")]
    Key(String),
    /// The remote cache failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// No spec is stored for the key.
    #[error("no task spec for key {key} in {url}; the submitting dagrun writes it before submitting the job")]
    NoSpec {
        /// The remote cache.
        url: String,
        /// The key.
        key: String,
    },
    /// The spec cannot be used.
    #[error("the task spec for key {key} is not usable: {why}")]
    BadSpec {
        /// The key.
        key: String,
        /// Why.
        why: String,
    },
    /// The scratch directory could not be prepared or read.
    #[error("{0}")]
    Local(String),
    /// The task itself failed (its log is in `log`).
    #[error("task `{task}` failed: {message}")]
    Task {
        /// The instance.
        task: String,
        /// The failure, as a local run says it.
        message: String,
        /// The task's log.
        log: String,
    },
}

/// Runs the task stored under `key` in the remote cache at `url` and publishes its outputs.
/// `scratch`: where its working directory goes (removed at the end); `cancel`: stops the task.
pub async fn exec_task(
    url: &RemoteUrl,
    key: &str,
    scratch: &Path,
    cancel: &crate::Cancel,
) -> Result<ExecTaskReport, ExecTaskError> {
    let cancel = cancel.receiver();
    let key = Digest::from_hex(key).map(ActionKey).ok_or_else(|| ExecTaskError::Key(key.to_owned()))?;
    let cache = RemoteCache::new(dagrun_remote::connect(url)?);
    let bytes =
        cache.spec(&key).await?.ok_or_else(|| ExecTaskError::NoSpec { url: url.to_string(), key: key.0.to_hex() })?;
    let bad = |why: String| ExecTaskError::BadSpec { key: key.0.to_hex(), why };
    let spec: TaskSpec = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    spec.check().map_err(bad)?;
    if spec.key != key {
        return Err(bad(format!("it is the spec of key {}", spec.key.0.short())));
    }
    let root = scratch.join(format!("dagrun-exec-{}-{}", key.0.short(), std::process::id()));
    let result = in_dir(&cache, &spec, &root, cancel).await;
    let _ = std::fs::remove_dir_all(&root);
    result
}

async fn in_dir(
    cache: &RemoteCache,
    spec: &TaskSpec,
    root: &Path,
    cancel: watch::Receiver<bool>,
) -> Result<ExecTaskReport, ExecTaskError> {
    let local = |what: &str, e: &dyn std::fmt::Display| ExecTaskError::Local(format!("{what}: {e}"));
    let work = root.join("work");
    let store = Store::open(&root.join("state"), Durability::NoFsync)
        .map_err(|e| local("cannot open the scratch store", &e))?;
    let mut inputs = BTreeMap::new();
    for (name, input) in &spec.inputs {
        let mut paths = Vec::with_capacity(input.files.len());
        for f in &input.files {
            let dest = work.join(&f.path);
            fetch(cache, &store, f, &dest).await?;
            paths.push(dest);
        }
        inputs.insert(name.clone(), (input.list, paths));
    }
    let outputs: BTreeMap<String, PathBuf> = spec.outputs.iter().map(|(n, p)| (n.clone(), work.join(p))).collect();
    for p in outputs.values() {
        if let Some(dir) = p.parent() {
            dagrun_cache::ensure_dir(dir).map_err(|e| local(&format!("cannot create {}", dir.display()), &e))?;
        }
    }
    let log = root.join("task.log");
    let started = Instant::now();
    let ran = match &spec.kind {
        SpecKind::Command { run, env } => command(spec, run, env, &work, &inputs, &outputs, &log, root, cancel).await,
        SpecKind::Wasm { plugin, memory_bytes } => {
            let wasm = root.join("plugin.wasm");
            fetch(cache, &store, plugin, &wasm).await?;
            wasm_run(spec, &wasm, *memory_bytes, &inputs, &outputs, &log, root, cancel).await
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let log_text = std::fs::read(&log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    if let Err(message) = ran {
        return Err(ExecTaskError::Task { task: spec.instance.clone(), message, log: log_text });
    }
    let entry = record(spec, &store, &outputs, duration_ms).map_err(|m| ExecTaskError::Task {
        task: spec.instance.clone(),
        message: m,
        log: log_text.clone(),
    })?;
    let published = cache.push(&store, &entry).await?;
    Ok(ExecTaskReport { instance: spec.instance.clone(), key: spec.key, published, duration_ms, log: log_text })
}

/// Downloads one object (verified) and puts it at `dest`.
async fn fetch(
    cache: &RemoteCache,
    store: &Store,
    f: &crate::remote_exec::spec::SpecFile,
    dest: &Path,
) -> Result<(), ExecTaskError> {
    cache.download(store, &f.digest, f.size).await?;
    let rec =
        OutputRecord { path: f.path.clone(), digest: f.digest, size: f.size, executable: f.executable, inline: false };
    store.restore(&rec, dest).map_err(|e| ExecTaskError::Local(format!("cannot put {} in place: {e}", f.path)))
}

/// Runs a `Command` task exactly as a local attempt does.
#[allow(clippy::too_many_arguments)]
async fn command(
    spec: &TaskSpec,
    run: &str,
    env: &BTreeMap<String, String>,
    work: &Path,
    inputs: &BTreeMap<String, (bool, Vec<PathBuf>)>,
    outputs: &BTreeMap<String, PathBuf>,
    log: &Path,
    root: &Path,
    mut cancel: watch::Receiver<bool>,
) -> Result<(), String> {
    let parts = EnvParts {
        task: &spec.task,
        run_id: &spec.run_id,
        workflow_dir: work,
        params: spec.params.to_string(),
        partition: spec.partition.as_deref(),
        inputs: inputs
            .iter()
            .map(|(n, (list, files))| (n.as_str(), *list, files.iter().map(PathBuf::as_path).collect()))
            .collect(),
        outputs: outputs.iter().map(|(n, p)| (n.as_str(), p.as_path())).collect(),
    };
    let cmd = CommandSpec {
        run: run.to_owned(),
        env: task_env(&parts, env.iter()),
        cwd: work.to_owned(),
        log: log.to_owned(),
        log_bytes: spec.log_bytes,
        timeout: spec.timeout_ms.map(Duration::from_millis),
        procs: root.join("procs"),
    };
    run_attempt(&cmd, false, &mut cancel).await.map_err(attempt_message)
}

/// Runs a plugin in the same sandbox as a local run, then copies its artifacts to the outputs.
#[allow(clippy::too_many_arguments)]
async fn wasm_run(
    spec: &TaskSpec,
    wasm: &Path,
    memory_bytes: u64,
    inputs: &BTreeMap<String, (bool, Vec<PathBuf>)>,
    outputs: &BTreeMap<String, PathBuf>,
    log: &Path,
    root: &Path,
    mut cancel: watch::Receiver<bool>,
) -> Result<(), String> {
    let cache_dir = dagrun_wasm::compiled_cache_dir().unwrap_or_else(|| root.join("compiled"));
    let host = PluginHost::new(&cache_dir).map_err(|e| e.to_string())?;
    let flag = Arc::new(AtomicBool::new(false));
    let run = PluginRun {
        task: spec.task.clone(),
        run_id: spec.run_id.clone(),
        partition: spec.partition.clone(),
        params_json: spec.params.to_string(),
        inputs: inputs
            .iter()
            .map(|(n, (list, files))| InputMount { name: n.clone(), files: files.clone(), directory: *list })
            .collect(),
        mounts: Vec::new(),
        stage_dir: root.join("stage"),
        log: log.to_owned(),
        limits: Limits {
            memory_bytes,
            deadline: spec.timeout_ms.map_or(DEFAULT_DEADLINE, Duration::from_millis),
            log_bytes: spec.log_bytes,
        },
        cancel: flag.clone(),
    };
    let (wasm, outs) = (wasm.to_owned(), outputs.clone());
    let mut job = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let plugin = host.load(&wasm).map_err(|e| e.to_string())?;
        let outcome = dagrun_wasm::run(&host, &plugin, &run).map_err(|e| e.to_string())?;
        place(&outcome.artifacts, &outs)
    });
    tokio::select! {
        r = &mut job => r.map_err(|e| format!("internal error: the plugin thread failed: {e}"))?,
        () = crate::cancel::cancelled(&mut cancel) => {
            flag.store(true, Ordering::Relaxed);
            let _ = job.await;
            Err("cancelled".into())
        }
    }
}

/// Copies each declared output's artifact into place; every artifact must be declared.
fn place(artifacts: &[(String, PathBuf)], outputs: &BTreeMap<String, PathBuf>) -> Result<(), String> {
    if let Some((name, _)) = artifacts.iter().find(|(n, _)| !outputs.contains_key(n)) {
        return Err(format!(
            "the plugin returned artifact `{name}`, which the task does not declare; add it under `outputs`"
        ));
    }
    for (name, dest) in outputs {
        let Some((_, src)) = artifacts.iter().find(|(n, _)| n == name) else {
            return Err(format!("the plugin did not return output `{name}`"));
        };
        std::fs::copy(src, dest).map_err(|e| format!("cannot write output `{name}` to {}: {e}", dest.display()))?;
    }
    Ok(())
}

fn attempt_message(e: AttemptError) -> String {
    match e {
        AttemptError::Failed(e) => e.message,
        AttemptError::Cancelled => "cancelled".into(),
        other => format!("{other:?}"),
    }
}

/// Hashes the outputs into the scratch store and records the entry under the spec's key.
fn record(
    spec: &TaskSpec,
    store: &Store,
    outputs: &BTreeMap<String, PathBuf>,
    duration_ms: u64,
) -> Result<ActionEntry, String> {
    let (mut manifest, mut contents) = (Manifest::new(), Contents::new());
    for (name, path) in outputs {
        let rel = &spec.outputs[name];
        let meta = std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .ok_or_else(|| format!("the task succeeded but did not write its output `{name}` ({rel}); write it, or fix the path under `outputs`"))?;
        let stored =
            store.put_output(path, inline_room(&contents)).map_err(|e| format!("cannot store output `{name}`: {e}"))?;
        stored.record(&mut manifest, &mut contents, name, rel.clone(), is_executable(&meta));
    }
    let entry = ActionEntry {
        version: entry_version(&contents),
        key: spec.key,
        task: spec.instance.clone(),
        inputs: spec.key_inputs.clone(),
        outputs: manifest,
        duration_ms,
        created_ms: now_ms(),
        contents,
        digest: None,
    };
    store.put_action(&entry).map_err(|e| format!("cannot record the entry: {e}"))?;
    Ok(entry)
}
