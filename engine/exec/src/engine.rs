//! The run API every front door calls (the CLI today; a daemon, a service and a UI next):
//! load and plan a workflow ([`prepare`]), then start a run on an [`Engine`] with options, a
//! reporter and a cancel handle, and get its record. The engine owns what outlives one run:
//! the state directory and the plugin host with its warm compiled modules.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use dagrun_cache::{Durability, Store, StoreError, now_ms};
use dagrun_plan::{Force, Instances, PartitionError, PartitionSelection, Selection, Shard, TaskGraph, UnknownTask};
use dagrun_workflow::{Diagnostic, LoadError, Workflow};

use crate::aftermath::Aftermath;
use crate::cancel::Cancel;
use crate::events::{Counts, Event, Reporter, RunStatus};
use crate::history::{RUN_RECORD_VERSION, RunRecord, new_run_id};
use crate::paths::Roots;
use crate::preload::{Indexes, Preload};
use crate::scheduler::schedule;
use crate::shared::{HostCell, RunShared, build_plugins};

/// Why a workflow could not be prepared for a run or a plan.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The file could not be read.
    #[error("{0}")]
    Read(LoadError),
    /// The file is not a valid workflow: every problem, with its location.
    #[error("the workflow is invalid ({} problem(s))", .0.len())]
    Invalid(Vec<Diagnostic>),
    /// `--only`/`--force` named a task the workflow does not have.
    #[error(transparent)]
    UnknownTask(#[from] UnknownTask),
    /// The partitions asked for do not exist.
    #[error(transparent)]
    Partition(#[from] PartitionError),
    /// `--only`/`--force` named a task that a partial run leaves out.
    #[error("`{task}` cannot run in this run: {reason}")]
    LeftOut {
        /// The task named.
        task: String,
        /// Why it is left out.
        reason: String,
    },
}

/// Why a run could not start or finish (task failures are not errors: they are in the record).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another run holds the state directory.
    #[error(transparent)]
    Busy(StoreError),
    /// The state directory could not be read or written.
    #[error(transparent)]
    Store(StoreError),
    /// The history store (`history.sqlite`) could not be opened or written.
    #[error(transparent)]
    History(#[from] dagrun_history::HistoryError),
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> RunError {
        match e {
            e @ StoreError::Busy { .. } => RunError::Busy(e),
            e => RunError::Store(e),
        }
    }
}

/// What to run: the tasks (`--only`, `--force`) and the partitions.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Run only these tasks (and what they need); empty: all.
    pub only: Vec<String>,
    /// Run these even when cached.
    pub force: Force,
    /// The partitions.
    pub partitions: PartitionSelection,
    /// Only this shard of them (`backfill --shard I/N`; see `Instances::expand`).
    pub shard: Option<Shard>,
    /// The current time (Unix seconds): decides which partitions are complete.
    pub now: i64,
}

impl RunRequest {
    /// Every task, the latest complete partitions, nothing forced.
    pub fn new(now: i64) -> RunRequest {
        RunRequest { only: Vec::new(), force: Force::None, partitions: PartitionSelection::Latest, shard: None, now }
    }
}

/// A workflow loaded, validated and expanded into the instances of one run.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The workflow file as given.
    pub path: PathBuf,
    /// The workflow.
    pub workflow: Arc<Workflow>,
    /// Its task graph.
    pub graph: TaskGraph,
    /// Which tasks are included and forced.
    pub selection: Selection,
    /// The run's instances (tasks × partitions).
    pub instances: Arc<Instances>,
}

impl RunPlan {
    /// The names of selected tasks left out because the run is partial (see
    /// `Instances::left_out`).
    pub fn left_out(&self) -> Vec<String> {
        self.names(&self.instances.left_out)
    }

    /// Why tasks are left out, naming those that read the windows, and how to run them; `None`
    /// when nothing is.
    pub fn left_out_reason(&self) -> Option<String> {
        let roots = self.names(&self.instances.whole_history);
        if roots.is_empty() {
            return None;
        }
        let quoted: Vec<String> = roots.iter().map(|r| format!("`{r}`")).collect();
        let verb = if roots.len() == 1 { "reads" } else { "read" };
        if let Some(shard) = self.instances.shard {
            return Some(format!(
                "{} {verb} partitioned tasks, and shard {shard} has only its own share of the partitions \
                 (run here, {} would read other shards' partitions or compute a partial result); what depends \
                 on {} is left out too. Run the backfill without --shard once every shard is done: their \
                 partitions are cache hits",
                quoted.join(", "),
                if roots.len() == 1 { "it" } else { "they" },
                if roots.len() == 1 { "it" } else { "them" }
            ));
        }
        Some(format!(
            "{} {verb} every partition up to the latest, and this run covers older partitions only \
             (a model is never retrained or deployed on a truncated history); what depends on {} is left \
             out too. Run the latest partition (no --partition) or a range that includes it to update them",
            quoted.join(", "),
            if roots.len() == 1 { "it" } else { "them" }
        ))
    }

    fn names(&self, tasks: &[usize]) -> Vec<String> {
        tasks.iter().map(|&t| self.workflow.tasks[t].name.clone()).collect()
    }
}

/// Loads and validates a workflow and builds its task graph.
pub fn load_workflow(path: &Path) -> Result<(Workflow, TaskGraph), PrepareError> {
    load_workflow_with(path, dagrun_workflow::LoadOptions::default())
}

/// [`load_workflow`] with options (e.g. not requiring the notification secrets, for a look at
/// a workflow another process runs).
pub fn load_workflow_with(
    path: &Path,
    opts: dagrun_workflow::LoadOptions,
) -> Result<(Workflow, TaskGraph), PrepareError> {
    let wf = Workflow::load_with(path, opts).map_err(|e| match e {
        LoadError::Invalid(diags) => PrepareError::Invalid(diags),
        e => PrepareError::Read(e),
    })?;
    let graph = TaskGraph::build(&wf).map_err(PrepareError::Invalid)?;
    Ok((wf, graph))
}

/// Loads a workflow, resolves the task selection, and expands the run's instances.
pub fn prepare(path: &Path, req: &RunRequest) -> Result<RunPlan, PrepareError> {
    let (mut wf, graph) = load_workflow(path)?;
    // Dropped: read again only for a diagnostic raised later (a plugin naming a bad param).
    wf.release_text(path);
    prepare_loaded(path, wf, graph, req)
}

/// [`prepare`] for a workflow already loaded (the daemon keeps the last valid version of a
/// file that has since been edited into an invalid one).
pub fn prepare_loaded(path: &Path, wf: Workflow, graph: TaskGraph, req: &RunRequest) -> Result<RunPlan, PrepareError> {
    let selection = Selection::new(&wf, &graph, &req.only, &req.force)?;
    let instances = Instances::expand(&wf, &graph, &selection, &req.partitions, req.shard, req.now)?;
    let plan =
        RunPlan { path: path.to_owned(), workflow: Arc::new(wf), graph, selection, instances: Arc::new(instances) };
    let forced = match &req.force {
        Force::Tasks(names) => names.as_slice(),
        _ => &[],
    };
    let left_out = plan.left_out();
    match req.only.iter().chain(forced).find(|t| left_out.contains(t)) {
        Some(task) => {
            Err(PrepareError::LeftOut { task: task.clone(), reason: plan.left_out_reason().unwrap_or_default() })
        }
        None => Ok(plan),
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Maximum attempts running at once (commands, plugins, native tasks); up to twice as many
    /// tasks are in flight, looking up keys and storing outputs beside them.
    pub jobs: usize,
    /// Start the newest partitions first (`backfill --reverse`).
    pub reverse: bool,
    /// Re-hash every input instead of trusting the stat cache.
    pub verify: bool,
    /// Cap of each task's log file, in bytes (default [`dagrun_wasm::DEFAULT_LOG_BYTES`]).
    pub log_bytes: u64,
    /// The run's id, when the caller assigns it beforehand (the daemon records it in its event
    /// log before the run starts); default: a new one from the start time.
    pub run_id: Option<String>,
    /// The `dagrun` binary remote jobs run (`dagrun exec-task`), as the cluster's nodes see it;
    /// default: this process's executable.
    pub remote_bin: Option<PathBuf>,
    /// The shared remote cache (`DAGRUN_REMOTE_CACHE`, `--remote-cache`); the workflow's
    /// `remote_cache` fills what is not given.
    pub remote: crate::remote::RemoteOptions,
}

impl RunOptions {
    /// `jobs` at a time, oldest partitions first, the stat cache trusted, logs capped at 64 MiB.
    pub fn new(jobs: usize) -> RunOptions {
        RunOptions {
            jobs,
            reverse: false,
            verify: false,
            log_bytes: dagrun_wasm::DEFAULT_LOG_BYTES,
            run_id: None,
            remote_bin: None,
            remote: crate::remote::RemoteOptions::default(),
        }
    }
}

/// What outlives a run: the state directory and the plugin host (warm compiled plugins).
#[derive(Debug)]
pub struct Engine {
    store: Arc<Store>,
    host: Arc<HostCell>,
    history: Arc<dagrun_history::History>,
    preload: Preload,
}

impl Engine {
    /// Opens (creating if needed) a state directory.
    pub fn open(state_dir: &Path, durability: Durability) -> Result<Engine, RunError> {
        let store = Arc::new(Store::open(state_dir, durability)?);
        let history = dagrun_history::History::open(store.root())?;
        Ok(Engine::with(store, history))
    }

    /// An engine on a store and history store already open.
    fn with(store: Arc<Store>, history: dagrun_history::History) -> Engine {
        Engine { store, host: Arc::new(HostCell::new()), history: Arc::new(history), preload: Preload::default() }
    }

    /// [`Engine::open`] for a state directory that exists whole, with a history store that
    /// needs no migration: nothing is created or changed (but SQLite's shared-memory index,
    /// which it rebuilds). `None` otherwise, or on an error,
    /// which [`Engine::open`] then meets and reports. For opening it while the workflow is
    /// read, before it is known to be valid.
    pub fn open_existing(state_dir: &Path, durability: Durability) -> Option<Engine> {
        let store = Store::open_existing(state_dir, durability).ok()??;
        if !Store::SUBDIRS.iter().all(|d| store.root().join(d).is_dir()) {
            return None;
        }
        let history = dagrun_history::History::open_current(store.root())?;
        Some(Engine::with(Arc::new(store), history))
    }

    /// Starts reading what the next [`Engine::run`] reads first from the state directory (its
    /// stat cache and last-keys index) on another thread, for a caller with other work to do
    /// before it runs (e.g. reading a large workflow). The run keeps what was read only if
    /// those files are unchanged once it holds the state directory's lock.
    pub fn preload(&self) {
        self.preload.start(self.store.clone());
    }

    /// The history store (approvals, notifications, incidents) of the state directory.
    pub fn history(&self) -> &Arc<dagrun_history::History> {
        &self.history
    }

    /// The state directory.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Runs a planned workflow to the end (or until `cancel`), holding the state directory's
    /// lock meanwhile; returns its record, also saved under `<state>/runs/`. Then its
    /// aftermath: registry changes recorded, notifications queued, drift incidents updated.
    pub async fn run(
        &self,
        plan: &RunPlan,
        opts: &RunOptions,
        reporter: Arc<dyn Reporter>,
        cancel: &Cancel,
    ) -> Result<RunRecord, RunError> {
        let _lock = self.store.lock()?;
        let store = &self.store;
        let started_ms = now_ms();
        let run_id = opts.run_id.clone().unwrap_or_else(|| new_run_id(started_ms));
        let partitions = plan.instances.partition_keys().len();
        let (pid, pid_started) = dagrun_history::alive::this_process();
        let record = RunRecord {
            version: RUN_RECORD_VERSION,
            id: run_id.clone(),
            workflow: plan.path.display().to_string(),
            workflow_name: plan.workflow.name.clone(),
            started_ms,
            finished_ms: None,
            status: RunStatus::Running,
            counts: Counts::default(),
            saved_ms: 0,
            tasks: Vec::with_capacity(plan.instances.len()),
            registry: Vec::new(),
            manual_minutes: plan.workflow.manual_minutes,
            pid: Some(pid),
            pid_started,
        };
        record.save(store)?;
        let jobs = opts.jobs.max(1);
        let tasks = plan.instances.len();
        let workflow = plan.workflow.name.clone();
        reporter.report(&Event::RunStarted { run_id: run_id.clone(), workflow, tasks, partitions, jobs });
        if let Err(e) = record.record_in(&self.history, Some(&plan.workflow.dir)) {
            let message = format!("cannot record the run in the history store (the run goes on): {e}");
            reporter.report(&Event::Warning { message });
        }
        if let Some(reason) = plan.left_out_reason() {
            reporter.report(&Event::TasksLeftOut { tasks: plan.left_out(), reason });
        }
        // `s3://` registries: synced into their mirrors; the run's workflow resolves them there.
        let (workflow, registries) =
            crate::registries::Registries::sync(&plan.workflow, store.root(), reporter.as_ref()).await;
        let before = crate::aftermath::snapshot(&workflow);
        crate::kinds::reap_orphans(&store.root().join("procs"));
        let (plugins, plugin_errors) = build_plugins(&workflow, &plan.instances, store, reporter.as_ref());
        let remote = crate::remote::RunRemote::open(&opts.remote, &workflow, store, &reporter);
        let Indexes { stat, keys: last_keys, .. } = self.preload.take(store);
        let run = Arc::new(RunShared {
            workflow: workflow.clone(),
            instances: plan.instances.clone(),
            store: store.clone(),
            stat,
            top: dagrun_cache::TopDirs::open(store),
            reporter,
            logs: store.root().join("logs").join(&run_id),
            logs_made: AtomicBool::new(false),
            run_id,
            verify: opts.verify,
            plugins,
            plugin_errors,
            last_keys,
            roots: Roots::new(&plan.workflow.dir, store.root()),
            log_bytes: opts.log_bytes,
            host: self.host.clone(),
            history: self.history.clone(),
            plan_path: plan.path.clone(),
            remote_exec: crate::remote_exec::RemoteSetup::new(
                opts.remote.location_for(&workflow),
                opts.remote_bin.clone(),
                remote.as_ref().map(|r| r.cache.clone()),
            ),
            remote,
            registries: Arc::new(registries),
        });
        // On the runtime's worker threads, not the caller's: a job's end wakes the scheduler
        // there, with no hand-off to and from the caller's thread at every task (see
        // docs/benchmarks.md). Dropping this future still drops the scheduler.
        let (forced, reverse, on_worker) = (plan.selection.forced.clone(), opts.reverse, cancel.clone());
        let mut scheduler = AbortOnDrop(tokio::spawn(schedule(run.clone(), record, forced, jobs, reverse, on_worker)));
        let record = match (&mut scheduler.0).await {
            Ok(record) => record,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Only a runtime shutting down cancels it, and then nothing awaits this.
                Err(e) => panic!("the run's scheduler was cancelled: {e}"),
            },
        };
        if let Some(remote) = &run.remote {
            remote.finish(|| cancel.is_abandoned()).await;
        }
        // Staging of this run never outlives it (also when the run was abandoned).
        remove_staging(store, &run.run_id);
        let record = record?;
        let after = Aftermath {
            history: self.history.clone(),
            store: store.clone(),
            workflow,
            instances: plan.instances.clone(),
            reporter: run.reporter.clone(),
            before,
            registries: run.registries.clone(),
        };
        let record = after.run(record).await;
        let keys = run.last_keys.save(store);
        run.stat.save(store)?;
        keys?;
        Ok(record)
    }
}

/// Removes the run's scratch directories (`<state>/tmp/<what>-<run id>-...`).
fn remove_staging(store: &Store, run_id: &str) {
    let Ok(entries) = std::fs::read_dir(store.root().join("tmp")) else { return };
    let tag = format!("-{run_id}-");
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().contains(&tag) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A spawned task aborted when this is dropped (a future awaiting it was dropped).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn open_existing_opens_what_a_run_left_and_nothing_less() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".dagrun");
        assert!(Engine::open_existing(&state, Durability::NoFsync).is_none());
        assert!(!state.exists(), "nothing created");
        drop(Engine::open(&state, Durability::NoFsync).unwrap());
        assert!(Engine::open_existing(&state, Durability::NoFsync).is_some(), "as Engine::open leaves it");
        std::fs::remove_dir(state.join("tmp")).unwrap();
        assert!(Engine::open_existing(&state, Durability::NoFsync).is_none());
        assert!(!state.join("tmp").exists(), "left for the run to make");
    }

    struct Quiet;
    impl Reporter for Quiet {
        fn report(&self, _: &Event) {}
    }

    /// The scheduler runs as a task of its own: dropping the run's future (a caller giving up
    /// on it) must still drop it, and with it the running command, as before.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_run_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.ron");
        let run = r#"touch started; sleep 1; touch finished; echo done > o.txt"#;
        let text = format!(
            r#"Workflow(name: "d", tasks: [Task(name: "a", kind: Command(run: "{run}"), outputs: {{"o": "o.txt"}})])"#
        );
        std::fs::write(&path, text).unwrap();
        let plan = prepare(&path, &RunRequest::new(0)).unwrap();
        let engine = Engine::open(&dir.path().join(".dagrun"), Durability::NoFsync).unwrap();
        let (cancel, opts) = (Cancel::new(), RunOptions::new(1));
        let started = dir.path().join("started");
        tokio::select! {
            r = engine.run(&plan, &opts, Arc::new(Quiet), &cancel) => panic!("the run ended: {r:?}"),
            () = async { while !started.exists() { tokio::time::sleep(Duration::from_millis(10)).await } } => {}
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!dir.path().join("finished").exists(), "the command was killed with its run");
    }
}
