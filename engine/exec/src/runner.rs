//! The scheduler: walks the task graph on tokio, at most `jobs` tasks at a time.
//!
//! A task becomes ready when everything it needs has succeeded (or was cached). Its key is
//! computed then, from its upstreams' actual outputs, so a re-run upstream that produces the
//! same bytes leaves its downstream cached. A failed task skips its downstream; unrelated
//! branches go on. Ctrl-C (the `cancel` channel) kills running commands, records nothing
//! half-done in the cache, and marks the rest skipped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use dagrun_cache::{ActionEntry, Manifest, StatCache, Store, StoreError, now_ms};
use dagrun_plan::{Instances, KeyContext};
use dagrun_wasm::{PluginHost, PluginSource, build_plugin_crate, built_plugin, plugin_source};
use dagrun_workflow::{TaskKind, Workflow};

use crate::events::{Counts, Event, Reporter, RunStatus, TaskStatus, peak_rss_kb};
use crate::history::{RUN_RECORD_VERSION, RunRecord, TaskRecord, new_run_id};
use crate::task::{JobResult, run_job};

/// What a run needs, shared by every task job.
#[derive(Clone)]
pub struct RunContext {
    /// The workflow.
    pub workflow: Arc<Workflow>,
    /// The run's instances (tasks × partitions) and their graph.
    pub instances: Arc<Instances>,
    /// The cache.
    pub store: Arc<Store>,
    /// The stat cache.
    pub stat: Arc<StatCache>,
    /// Where events go.
    pub reporter: Arc<dyn Reporter>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext").field("workflow", &self.workflow.name).finish_non_exhaustive()
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Maximum tasks in flight.
    pub jobs: usize,
    /// Per task: run it even on a cache hit (`--force`).
    pub forced: Vec<bool>,
    /// Start the newest partitions first (`backfill --reverse`).
    pub reverse: bool,
    /// Re-hash every input instead of trusting the stat cache.
    pub verify: bool,
    /// The workflow path as given (for history).
    pub workflow_path: String,
}

/// Errors that stop the whole run (not task failures).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The state directory could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) struct Shared {
    pub ctx: RunContext,
    pub run_id: String,
    pub verify: bool,
    pub logs: PathBuf,
    /// Built plugin crates: `plugin` spec → .wasm path.
    pub plugins: HashMap<String, PathBuf>,
    /// Plugin crates that failed to build: `plugin` spec → the build error.
    pub plugin_errors: HashMap<String, String>,
    host: OnceLock<Result<Arc<PluginHost>, String>>,
}

impl Shared {
    pub(crate) fn key_context(&self) -> KeyContext<'_> {
        KeyContext { workflow: &self.ctx.workflow, stat: &self.ctx.stat, verify: self.verify, plugins: &self.plugins }
    }

    /// The process's plugin host, created on first use.
    pub(crate) fn plugin_host(&self) -> Result<Arc<PluginHost>, String> {
        self.host
            .get_or_init(|| {
                let dir = dagrun_wasm::compiled_cache_dir().unwrap_or_else(|| self.ctx.store.root().join("wasm"));
                PluginHost::new(&dir).map(Arc::new).map_err(|e| e.to_string())
            })
            .clone()
    }
}

/// Builds every plugin crate the selected `Wasm` tasks use (once each), reporting progress.
fn build_plugins(
    wf: &Workflow,
    inst: &Instances,
    store: &Store,
    reporter: &dyn Reporter,
) -> (HashMap<String, PathBuf>, HashMap<String, String>) {
    let mut built = HashMap::new();
    let mut failed = HashMap::new();
    let mut used: Vec<usize> = inst.nodes.iter().map(|n| n.task).collect();
    used.sort_unstable();
    used.dedup();
    for task in used.into_iter().map(|t| &wf.tasks[t]) {
        let TaskKind::Wasm(w) = &task.kind else { continue };
        if built.contains_key(&w.plugin) || failed.contains_key(&w.plugin) {
            continue;
        }
        let PluginSource::Crate(dir) = plugin_source(&w.plugin, &wf.dir) else { continue };
        let records = store.root().join("plugins");
        if let Some(wasm) = built_plugin(&dir, &records) {
            built.insert(w.plugin.clone(), wasm);
            continue;
        }
        let started = Instant::now();
        reporter.report(&Event::PluginBuildStarted { plugin: w.plugin.clone() });
        let result = build_plugin_crate(&dir, &records);
        let error = result.as_ref().err().map(ToString::to_string);
        reporter.report(&Event::PluginBuildFinished {
            plugin: w.plugin.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            error: error.clone(),
        });
        match result {
            Ok(wasm) => {
                built.insert(w.plugin.clone(), wasm);
            }
            Err(e) => {
                failed.insert(w.plugin.clone(), e.to_string());
            }
        }
    }
    (built, failed)
}

/// Runs the selected tasks; returns the run's record (also saved under `<state>/runs/`).
pub async fn run(ctx: RunContext, opts: RunOptions, cancel: watch::Receiver<bool>) -> Result<RunRecord, ExecError> {
    let started = Instant::now();
    let started_ms = now_ms();
    let run_id = new_run_id(started_ms);
    let wf = ctx.workflow.clone();
    let graph = ctx.instances.clone();
    let n = graph.len();
    let total = n;
    let jobs = opts.jobs.max(1);
    // Instances left per partition, to report partitions as they complete.
    let mut partition_left: HashMap<String, usize> = HashMap::new();
    for node in &graph.nodes {
        if let Some(p) = &node.partition {
            *partition_left.entry(p.key.clone()).or_default() += 1;
        }
    }
    let partitions = partition_left.len();

    let mut record = RunRecord {
        version: RUN_RECORD_VERSION,
        id: run_id.clone(),
        workflow: opts.workflow_path.clone(),
        workflow_name: wf.name.clone(),
        started_ms,
        finished_ms: None,
        status: RunStatus::Running,
        counts: Counts::default(),
        saved_ms: 0,
        tasks: Vec::with_capacity(total),
    };
    record.save(&ctx.store)?;
    ctx.reporter.report(&Event::RunStarted {
        run_id: run_id.clone(),
        workflow: wf.name.clone(),
        tasks: total,
        partitions,
        jobs,
    });

    crate::command::reap_orphans(&ctx.store.root().join("procs"));
    let (plugins, plugin_errors) = build_plugins(&wf, &graph, &ctx.store, ctx.reporter.as_ref());
    let shared = Arc::new(Shared {
        logs: ctx.store.root().join("logs").join(&run_id),
        ctx: ctx.clone(),
        run_id: run_id.clone(),
        verify: opts.verify,
        plugins,
        plugin_errors,
        host: OnceLock::new(),
    });

    let mut waiting: Vec<usize> = (0..n).map(|i| graph.upstream(i).count()).collect();
    let mut done: Vec<Option<TaskStatus>> = vec![None; n];
    let mut manifests: Vec<Option<Arc<Manifest>>> = vec![None; n];
    // Ready instances, oldest partition first (newest first with `reverse`), then graph order.
    let position: Vec<usize> = {
        let mut pos = vec![0; n];
        for (k, &i) in graph.topo_order().iter().enumerate() {
            pos[i] = k;
        }
        pos
    };
    let priority = |i: usize| {
        let rank = if opts.reverse { graph.rank[i].saturating_neg() } else { graph.rank[i] };
        Reverse((rank, position[i]))
    };
    let mut ready: BinaryHeap<(Reverse<(i64, usize)>, usize)> =
        (0..n).filter(|&i| waiting[i] == 0).map(|i| (priority(i), i)).collect();
    let mut running: JoinSet<JobResult> = JoinSet::new();
    let mut cancel_main = cancel.clone();
    let mut interrupted = *cancel.borrow();
    let mut last_save = Instant::now();

    let mut finish = |record: &mut RunRecord, done: &mut Vec<Option<TaskStatus>>, r: JobResult| {
        let task = graph.nodes[r.index].name.clone();
        done[r.index] = Some(r.status);
        record.counts.add(r.status);
        record.counts.refused += usize::from(r.gate_refused);
        record.saved_ms += r.saved_ms;
        ctx.reporter.report(&Event::TaskFinished {
            task: task.clone(),
            status: r.status,
            duration_ms: r.duration_ms,
            key: r.key.clone(),
            saved_ms: r.saved_ms,
            attempts: r.attempts,
            gate_refused: r.gate_refused,
            error: r.error.clone(),
            log: r.log.as_ref().map(|p| p.display().to_string()),
            summary: r.summary.clone(),
        });
        record.tasks.push(TaskRecord {
            task,
            status: r.status,
            duration_ms: r.duration_ms,
            key: r.key,
            cached: r.status == TaskStatus::Cached,
            saved_ms: r.saved_ms,
            attempts: r.attempts,
            error: r.error,
            summary: r.summary,
        });
        if let Some(p) = &graph.nodes[r.index].partition {
            let left = partition_left.get_mut(&p.key).expect("counted");
            *left -= 1;
            if *left == 0 {
                ctx.reporter.report(&Event::PartitionFinished { partition: p.key.clone() });
            }
        }
    };

    loop {
        interrupted |= *cancel_main.borrow();
        while !interrupted && running.len() < jobs {
            let Some((_, i)) = ready.pop() else { break };
            let ups: HashMap<usize, Arc<Manifest>> =
                graph.upstream(i).map(|u| (u, manifests[u].clone().expect("upstream finished"))).collect();
            let forced = opts.forced[graph.nodes[i].task];
            running.spawn(run_job(shared.clone(), i, ups, forced, cancel.clone()));
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let r = match joined.expect("non-empty") {
                    Ok(r) => r,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                let i = r.index;
                let status = r.status;
                manifests[i] = r.manifest.clone();
                finish(&mut record, &mut done, r);
                // Keep history useful after a crash: save progress at most every 2 seconds.
                if last_save.elapsed() > Duration::from_secs(2) {
                    let _ = record.save(&ctx.store);
                    last_save = Instant::now();
                }
                if matches!(status, TaskStatus::Succeeded | TaskStatus::Cached) {
                    for d in graph.downstream(i) {
                        waiting[d] -= 1;
                        if waiting[d] == 0 && done[d].is_none() {
                            ready.push((priority(d), d));
                        }
                    }
                } else {
                    let why = if status == TaskStatus::Failed {
                        format!("upstream `{}` failed", graph.nodes[i].name)
                    } else {
                        format!("upstream `{}` did not run", graph.nodes[i].name)
                    };
                    for d in graph.with_descendants(i) {
                        if d != i && done[d].is_none() {
                            finish(&mut record, &mut done, JobResult::skipped(d, why.clone()));
                        }
                    }
                }
            }
            Ok(()) = cancel_main.changed(), if !interrupted => {
                interrupted = *cancel_main.borrow();
            }
        }
    }

    interrupted |= *cancel_main.borrow();
    for &i in graph.topo_order() {
        if done[i].is_none() {
            let why = if interrupted { "interrupted" } else { "not reached" };
            finish(&mut record, &mut done, JobResult::skipped(i, why.to_owned()));
        }
    }
    ctx.stat.save(&ctx.store)?;
    record.status = if interrupted {
        RunStatus::Interrupted
    } else if record.counts.failed > 0 {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    record.finished_ms = Some(now_ms());
    record.save(&ctx.store)?;
    ctx.reporter.report(&Event::RunFinished {
        run_id,
        status: record.status,
        counts: record.counts,
        duration_ms: started.elapsed().as_millis() as u64,
        saved_ms: record.saved_ms,
        peak_rss_kb: peak_rss_kb(),
    });
    Ok(record)
}

/// Exponential backoff: `base * 2^(attempt-1)`, capped at 10 minutes.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20)).min(Duration::from_secs(600))
}

/// Records a fresh cache entry: objects first (done by the caller), then the entry, then the
/// task's last key.
pub(crate) fn commit_entry(store: &Store, wf: &Workflow, entry: &ActionEntry) -> Result<(), StoreError> {
    store.put_action(entry)?;
    store.set_last_run(&dagrun_plan::last_run_name(wf, &entry.task), entry.key, &entry.inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_millis(100);
        assert_eq!(backoff(b, 1), Duration::from_millis(100));
        assert_eq!(backoff(b, 3), Duration::from_millis(400));
        assert_eq!(backoff(b, 40), Duration::from_secs(600));
    }
}
