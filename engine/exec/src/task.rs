//! One task in a run: key, cache hit (restore outputs) or execution with retries, then caching.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use dagrun_cache::{ActionEntry, LAYOUT_VERSION, Manifest, OutputRecord, StoreError, is_executable, now_ms};
use dagrun_plan::{Probe, Source, instance_outputs, instance_params, probe, resolve_path};
use dagrun_workflow::{TaskKind, Workflow};

use crate::command::{AttemptError, CommandSpec, cancelled, run_attempt};
use crate::events::{Event, TaskStatus};
use crate::runner::{Shared, backoff, commit_entry};
use crate::wasm_task::WasmSpec;

/// What a job reports back to the scheduler.
#[derive(Debug)]
pub(crate) struct JobResult {
    pub index: usize,
    pub status: TaskStatus,
    pub key: Option<String>,
    pub manifest: Option<Arc<Manifest>>,
    pub duration_ms: u64,
    pub saved_ms: u64,
    pub attempts: u32,
    pub error: Option<String>,
    pub log: Option<PathBuf>,
    pub summary: Option<serde_json::Value>,
    /// The task failed because an evaluation gate refused the model.
    pub gate_refused: bool,
}

impl JobResult {
    pub(crate) fn skipped(index: usize, why: String) -> JobResult {
        JobResult {
            index,
            status: TaskStatus::Skipped,
            key: None,
            manifest: None,
            duration_ms: 0,
            saved_ms: 0,
            attempts: 0,
            error: Some(why),
            log: None,
            summary: None,
            gate_refused: false,
        }
    }
}

enum Lookup {
    /// Outputs restored; `Probe::hit` holds the entry.
    Hit(Probe),
    Miss(Probe),
}

/// Computes the key and, on a hit, restores outputs. Blocking: hashes and copies files.
fn lookup(shared: &Shared, i: usize, ups: &HashMap<usize, Arc<Manifest>>, forced: bool) -> Result<Lookup, String> {
    let wf = &shared.ctx.workflow;
    if let TaskKind::Wasm(w) = &wf.tasks[shared.ctx.instances.nodes[i].task].kind
        && let Some(e) = shared.plugin_errors.get(&w.plugin)
    {
        return Err(e.clone());
    }
    let upstream: HashMap<usize, &Manifest> = ups.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    let p = probe(&shared.key_context(), &shared.ctx.store, &shared.ctx.instances, i, &upstream)
        .map_err(|e| e.to_string())?;
    let restored = match &p.hit {
        Some(entry) if !forced => Some(restore_outputs(shared, wf, &entry.outputs)),
        _ => None,
    };
    match restored {
        Some(r) => match r {
            Ok(()) => {
                shared.ctx.store.touch_action(&p.key);
                Ok(Lookup::Hit(p))
            }
            // A corrupt object was deleted: run the task again.
            Err(StoreError::Corrupt { .. }) => Ok(Lookup::Miss(p)),
            Err(e) => Err(format!("cannot restore outputs from the cache: {e}")),
        },
        None => Ok(Lookup::Miss(p)),
    }
}

/// Puts cached outputs in place, skipping files that are already there with the right content.
fn restore_outputs(shared: &Shared, wf: &Workflow, outputs: &Manifest) -> Result<(), StoreError> {
    for rec in outputs.values() {
        let dest = wf.dir.join(&rec.path);
        let current = dest.is_file().then(|| shared.ctx.stat.digest(&dest, shared.verify).ok()).flatten();
        if current.map(|(d, _)| d) != Some(rec.digest) {
            shared.ctx.store.restore(rec, &dest)?;
            shared.ctx.stat.record(&dest, rec.digest);
        }
    }
    Ok(())
}

/// Runs one task to its final state. Never panics on task errors: they become `Failed`.
pub(crate) async fn run_job(
    shared: Arc<Shared>,
    i: usize,
    ups: HashMap<usize, Arc<Manifest>>,
    forced: bool,
    mut cancel: watch::Receiver<bool>,
) -> JobResult {
    let started = Instant::now();
    let elapsed = |s: Instant| s.elapsed().as_millis() as u64;
    let fail = |key: Option<String>, attempts, error: String, log| JobResult {
        index: i,
        status: TaskStatus::Failed,
        key,
        manifest: None,
        duration_ms: elapsed(started),
        saved_ms: 0,
        attempts,
        error: Some(error),
        log,
        summary: None,
        gate_refused: false,
    };
    let sh = shared.clone();
    let ups2 = ups.clone();
    let looked = tokio::task::spawn_blocking(move || lookup(&sh, i, &ups2, forced)).await.expect("lookup panicked");
    let p = match looked {
        Err(e) => return fail(None, 0, e, None),
        Ok(Lookup::Hit(p)) => {
            let entry = p.hit.expect("a hit has its entry");
            return JobResult {
                index: i,
                status: TaskStatus::Cached,
                key: Some(p.key.0.to_hex()),
                manifest: Some(Arc::new(entry.outputs)),
                duration_ms: elapsed(started),
                saved_ms: entry.duration_ms,
                attempts: 0,
                error: None,
                log: None,
                summary: None,
                gate_refused: false,
            };
        }
        Ok(Lookup::Miss(p)) => p,
    };
    let key_hex = Some(p.key.0.to_hex());
    let wf = &shared.ctx.workflow;
    let node = &shared.ctx.instances.nodes[i];
    let task = &wf.tasks[node.task];
    let outputs = instance_outputs(wf, &shared.ctx.instances, i);
    let log = shared.logs.join(format!("{}.log", node.name));
    let spec = match &task.kind {
        TaskKind::Command(c) => Spec::Command(CommandSpec {
            run: c.run.clone(),
            env: command_env(&shared, i, &ups, c.env.iter()),
            cwd: wf.dir.clone(),
            log: log.clone(),
            timeout: task.timeout,
            procs: shared.ctx.store.root().join("procs"),
        }),
        TaskKind::Wasm(w) => match WasmSpec::new(&shared, i, w, &ups) {
            Ok(spec) => Spec::Wasm(spec),
            Err(e) => return fail(key_hex, 0, e, None),
        },
        TaskKind::OnnxPredict(p) => {
            let files: HashMap<String, Vec<PathBuf>> =
                input_files(&shared, i, &ups).into_iter().map(|(n, f, _)| (n, f)).collect();
            let first = |name: &str| files.get(name).and_then(|f| f.first()).cloned().unwrap_or_default();
            let model = match (&p.model, &p.deployed) {
                (Some(m), _) => first(m),
                (None, Some(d)) => match dagrun_plan::deployed_model(wf, d) {
                    Ok((_, path)) => path,
                    Err(e) => return fail(key_hex, 0, e.to_string(), None),
                },
                (None, None) => return fail(key_hex, 0, "OnnxPredict needs `model` or `deployed`".into(), None),
            };
            let output = wf.dir.join(outputs.get("predictions").cloned().unwrap_or_default());
            Spec::Predict { spec: p.clone(), model, data: first(&p.data), output }
        }
        TaskKind::OnnxEval(o) => {
            let files: HashMap<String, Vec<PathBuf>> =
                input_files(&shared, i, &ups).into_iter().map(|(n, f, _)| (n, f)).collect();
            let first = |name: &str| files.get(name).and_then(|f| f.first()).cloned().unwrap_or_default();
            Spec::Onnx {
                spec: o.clone(),
                model: first(&o.model),
                data: first(&o.data),
                outputs: outputs.iter().map(|(k, v)| (k.clone(), wf.dir.join(v))).collect(),
            }
        }
    };

    let mut attempt = 0;
    let summary;
    let mut attempt_started;
    loop {
        attempt += 1;
        for out in outputs.values() {
            let path = wf.dir.join(out);
            let _ = std::fs::remove_file(&path);
            if let Some(parent) = path.parent() {
                let _ = dagrun_cache::ensure_dir(parent);
            }
        }
        shared.ctx.reporter.report(&Event::TaskStarted { task: node.name.clone(), attempt });
        attempt_started = Instant::now();
        let result = match &spec {
            Spec::Command(c) => run_attempt(c, &mut cancel).await.map(|()| None),
            Spec::Wasm(w) => w.run_attempt(&shared, i, attempt, &log, &mut cancel).await,
            Spec::Predict { spec, model, data, output } => {
                let (spec, model, data, output) = (spec.clone(), model.clone(), data.clone(), output.clone());
                tokio::task::spawn_blocking(move || {
                    let opts = dagrun_onnx::PredictOptions {
                        features: spec.features.clone(),
                        label: spec.label.clone(),
                        ..Default::default()
                    };
                    if let Some(dir) = output.parent() {
                        let _ = dagrun_cache::ensure_dir(dir);
                    }
                    dagrun_onnx::predict(&model, &data, &output, &opts)
                        .map(|p| Some(serde_json::json!({"rows": p.rows, "model": model.display().to_string()})))
                        .map_err(|e| AttemptError::Plugin(e.to_string()))
                })
                .await
                .expect("prediction panicked")
            }
            Spec::Onnx { spec, model, data, outputs } => {
                let stage = shared.ctx.store.root().join("tmp").join(format!(
                    "eval-{}-{}-{attempt}",
                    shared.run_id,
                    node.name.replace(['@', ':'], "_")
                ));
                let (spec, model, data, outputs, dir) =
                    (spec.clone(), model.clone(), data.clone(), outputs.clone(), wf.dir.clone());
                let stage2 = stage.clone();
                let result = tokio::task::spawn_blocking(move || {
                    crate::onnx_task::run(&spec, &model, &data, &dir, &stage2, &outputs)
                })
                .await
                .expect("evaluation panicked");
                let _ = std::fs::remove_dir_all(&stage);
                match result {
                    Ok(crate::onnx_task::EvalOutcome::Passed(s)) => Ok(Some(s)),
                    Ok(crate::onnx_task::EvalOutcome::Refused(reason)) => Err(AttemptError::GateRefused(reason)),
                    Err(e) => Err(AttemptError::Plugin(e)),
                }
            }
        };
        let error = match result {
            Ok(s) => {
                summary = s;
                break;
            }
            Err(AttemptError::Cancelled) => {
                let mut r = JobResult::skipped(i, "interrupted".to_owned());
                r.key = key_hex;
                r.attempts = attempt;
                r.duration_ms = elapsed(started);
                return r;
            }
            Err(AttemptError::GateRefused(reason)) => {
                // A refusal is a decision, not a flaky failure: never retried.
                let mut r = fail(key_hex, attempt, reason, Some(log));
                r.gate_refused = true;
                return r;
            }
            Err(AttemptError::Permanent(error)) => return fail(key_hex, attempt, error, Some(log)),
            Err(e) => e.to_string(),
        };
        if attempt > task.retries {
            let error = if task.retries > 0 { format!("{error} (after {attempt} attempts)") } else { error };
            return fail(key_hex, attempt, error, Some(log));
        }
        let delay = backoff(task.backoff, attempt);
        shared.ctx.reporter.report(&Event::TaskRetrying {
            task: node.name.clone(),
            attempt,
            error,
            delay_ms: delay.as_millis() as u64,
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancelled(&mut cancel) => {
                let mut r = JobResult::skipped(i, "interrupted".to_owned());
                r.key = key_hex;
                r.attempts = attempt;
                r.duration_ms = elapsed(started);
                return r;
            }
        }
    }
    // The time a later cache hit saves: the successful attempt only, not retries or backoff.
    let duration_ms = elapsed(attempt_started);

    let sh = shared.clone();
    let stored =
        tokio::task::spawn_blocking(move || store_outputs(&sh, i, p, duration_ms)).await.expect("store panicked");
    match stored {
        Ok(manifest) => JobResult {
            index: i,
            status: TaskStatus::Succeeded,
            key: key_hex,
            manifest: Some(Arc::new(manifest)),
            duration_ms: elapsed(started),
            saved_ms: 0,
            attempts: attempt,
            error: None,
            log: Some(log),
            summary,
            gate_refused: false,
        },
        Err(e) => fail(key_hex, attempt, e, Some(log)),
    }
}

/// Stores each declared output and records the cache entry (objects before the entry).
fn store_outputs(shared: &Shared, i: usize, p: Probe, duration_ms: u64) -> Result<Manifest, String> {
    let wf = &shared.ctx.workflow;
    let name_of_instance = shared.ctx.instances.nodes[i].name.clone();
    let store = &shared.ctx.store;
    let mut manifest = BTreeMap::new();
    for (name, rel) in &instance_outputs(wf, &shared.ctx.instances, i) {
        let path = wf.dir.join(rel);
        let meta = std::fs::metadata(&path).map_err(|_| {
            format!("the command succeeded but did not write its output `{name}` ({rel}); write it, or fix the path under `outputs`")
        })?;
        if !meta.is_file() {
            return Err(format!("output `{name}` ({rel}) is not a regular file"));
        }
        let (digest, size) = store.put_file(&path).map_err(|e| format!("cannot store output `{name}`: {e}"))?;
        shared.ctx.stat.record(&path, digest);
        manifest
            .insert(name.clone(), OutputRecord { path: rel.clone(), digest, size, executable: is_executable(&meta) });
    }
    let entry = ActionEntry {
        version: LAYOUT_VERSION,
        key: p.key,
        task: name_of_instance,
        inputs: p.inputs,
        outputs: manifest.clone(),
        duration_ms,
        created_ms: now_ms(),
    };
    commit_entry(store, wf, &entry).map_err(|e| format!("cannot record the cache entry: {e}"))?;
    Ok(manifest)
}

/// `DAGRUN_*` variables: task, run, partition, params, and one variable per input and output.
fn command_env<'a>(
    shared: &Shared,
    i: usize,
    ups: &HashMap<usize, Arc<Manifest>>,
    user: impl Iterator<Item = (&'a String, &'a String)>,
) -> Vec<(String, String)> {
    let wf = &shared.ctx.workflow;
    let inst = &shared.ctx.instances;
    let node = &inst.nodes[i];
    let var = |prefix: &str, name: &str| format!("{prefix}{}", name.to_uppercase().replace('-', "_"));
    let abs = |p: &Path| p.display().to_string();
    let mut env = vec![
        ("DAGRUN_TASK".to_owned(), wf.tasks[node.task].name.clone()),
        ("DAGRUN_RUN_ID".to_owned(), shared.run_id.clone()),
        ("DAGRUN_WORKFLOW_DIR".to_owned(), abs(&wf.dir)),
        ("DAGRUN_PARAMS".to_owned(), serde_json::Value::Object(instance_params(wf, inst, i)).to_string()),
    ];
    if let Some(p) = &node.partition {
        env.push(("DAGRUN_PARTITION".to_owned(), p.key.clone()));
    }
    for (name, files, list) in input_files(shared, i, ups) {
        let value = if list {
            files.iter().map(|p| abs(p)).collect::<Vec<_>>().join("\n")
        } else {
            files.first().map(|p| abs(p)).unwrap_or_default()
        };
        env.push((var("DAGRUN_IN_", &name), value));
    }
    for (name, rel) in &instance_outputs(wf, inst, i) {
        env.push((var("DAGRUN_OUT_", name), abs(&wf.dir.join(rel))));
    }
    env.extend(user.map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Each input's host files, and whether it is a list (`Glob`, `Partitions`) rather than one file.
pub(crate) fn input_files(
    shared: &Shared,
    i: usize,
    ups: &HashMap<usize, Arc<Manifest>>,
) -> Vec<(String, Vec<PathBuf>, bool)> {
    let wf = &shared.ctx.workflow;
    let output_path = |u: &usize, o: &str| ups.get(u).and_then(|m| m.get(o)).map(|r| wf.dir.join(&r.path));
    shared.ctx.instances.sources[i]
        .iter()
        .map(|(name, source)| match source {
            Source::File(p) => (name.clone(), vec![resolve_path(wf, p)], false),
            Source::Glob(pattern) => {
                let full = resolve_path(wf, pattern);
                let mut files: Vec<PathBuf> = glob::glob(&full.to_string_lossy())
                    .map(|g| g.flatten().filter(|p| p.is_file()).collect())
                    .unwrap_or_default();
                files.sort();
                (name.clone(), files, true)
            }
            Source::Output { instance, output } => {
                (name.clone(), output_path(instance, output).into_iter().collect(), false)
            }
            Source::Partitions { instances, output } => {
                (name.clone(), instances.iter().filter_map(|u| output_path(u, output)).collect(), true)
            }
        })
        .collect()
}

/// How one attempt runs.
enum Spec {
    Command(CommandSpec),
    Wasm(WasmSpec),
    Onnx { spec: dagrun_workflow::OnnxEvalTask, model: PathBuf, data: PathBuf, outputs: BTreeMap<String, PathBuf> },
    Predict { spec: dagrun_workflow::OnnxPredictTask, model: PathBuf, data: PathBuf, output: PathBuf },
}
