//! What every job of one run shares: the workflow, its instances, the store, the reporter, the
//! built plugins, and the engine's long-lived plugin host.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use dagrun_cache::{StatCache, Store};
use dagrun_plan::{Instances, KeyContext};
use dagrun_wasm::{PluginHost, PluginSource, build_plugin_crate, built_plugin, plugin_source};
use dagrun_workflow::{TaskKind, Workflow};

use crate::commit::LastKeys;
use crate::events::{Event, Reporter};
use crate::paths::Roots;

/// The engine's plugin host, created on first use and kept across runs (warm compiled modules).
pub(crate) type HostCell = OnceLock<Result<Arc<PluginHost>, String>>;

/// One run's shared state.
pub(crate) struct RunShared {
    pub workflow: Arc<Workflow>,
    pub instances: Arc<Instances>,
    pub store: Arc<Store>,
    pub stat: StatCache,
    /// `objects/` and `actions/` held open for quick hits' existence checks.
    pub top: dagrun_cache::TopDirs,
    pub reporter: Arc<dyn Reporter>,
    pub run_id: String,
    pub verify: bool,
    /// `<state>/logs/<run id>/`.
    pub logs: PathBuf,
    /// [`RunShared::logs`] exists (made by the first command that needed it).
    pub logs_made: AtomicBool,
    /// Built plugin crates: `plugin` spec → .wasm path.
    pub plugins: HashMap<String, PathBuf>,
    /// Plugin crates that failed to build: `plugin` spec → the build error.
    pub plugin_errors: HashMap<String, String>,
    /// Each task instance's last key, to explain the next miss.
    pub last_keys: LastKeys,
    /// The real workflow and state directories, to resolve output paths.
    pub roots: Roots,
    /// Cap of each task log, in bytes.
    pub log_bytes: u64,
    pub(crate) host: Arc<HostCell>,
    /// The history store (approvals, notifications, incidents).
    pub history: Arc<dagrun_history::History>,
    /// The workflow file (recorded with approval requests, to resume the run).
    pub plan_path: PathBuf,
    /// Where remote tasks (Slurm, Ray) exchange inputs and outputs, and what they run.
    pub remote_exec: crate::remote_exec::RemoteSetup,
    /// The shared remote cache, when the run uses one.
    pub remote: Option<Arc<crate::remote::RunRemote>>,
    /// The run's `s3://` registries (synced mirrors; publishing).
    pub registries: Arc<crate::registries::Registries>,
}

impl RunShared {
    /// Whether the run's log directory exists, making it the first time (`false` when it cannot
    /// be made: each command then tries again, and fails with why).
    pub(crate) fn logs_ready(&self) -> bool {
        if self.logs_made.load(Ordering::Relaxed) {
            return true;
        }
        let made = dagrun_cache::ensure_dir(&self.logs).is_ok();
        self.logs_made.store(made, Ordering::Relaxed);
        made
    }

    pub(crate) fn key_context(&self) -> KeyContext<'_> {
        KeyContext { verify: self.verify, ..KeyContext::new(&self.workflow, &self.stat, &self.plugins) }
    }

    /// The engine's plugin host, created on first use.
    pub(crate) fn plugin_host(&self) -> Result<Arc<PluginHost>, String> {
        self.host
            .get_or_init(|| {
                let dir = dagrun_wasm::compiled_cache_dir().unwrap_or_else(|| self.store.root().join("wasm"));
                PluginHost::new(&dir).map(Arc::new).map_err(|e| e.to_string())
            })
            .clone()
    }
}

/// Builds every plugin crate the run's `Wasm` tasks use (once each), reporting progress.
pub(crate) fn build_plugins(
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
        match (result, error) {
            (Ok(wasm), _) => {
                built.insert(w.plugin.clone(), wasm);
            }
            (Err(_), e) => {
                failed.insert(w.plugin.clone(), e.unwrap_or_default());
            }
        }
    }
    (built, failed)
}
