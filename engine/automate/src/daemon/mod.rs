//! `dagrun daemon`: one tokio process that records events (cron ticks, files landing, webhooks,
//! manual triggers, other workflows' outcomes) in the durable log, then runs the workflows they
//! name through the same engine as `dagrun run`, one run at a time, coalescing what arrives
//! meanwhile.

mod lock;
mod notify;
mod runs;
mod set;
mod sources;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dagrun_cache::Durability;
use dagrun_exec::{Engine, Reporter, RunStatus};
use dagrun_workflow::Diagnostic;
use tokio::sync::{Notify, mpsc, watch};

use crate::clock::Clock;
use crate::log::{Event, EventLog, LogError};

pub use lock::{DaemonInfo, DaemonLock, LockError, running};
pub use set::{Change, Loaded, WorkflowSet, files_of};

/// How to run the daemon.
#[derive(Debug, Clone)]
pub struct Config {
    /// Workflow files, or directories whose `*.ron` files are workflows.
    pub paths: Vec<PathBuf>,
    /// The state directory (cache, history, event log).
    pub state_dir: PathBuf,
    /// Where to serve webhooks and wake-ups (loopback by default); `None`: no server.
    pub listen: Option<SocketAddr>,
    /// Tasks in flight per run.
    pub jobs: usize,
    /// How often every `FileLanded` glob is rescanned (a fallback for missed notifications).
    pub rescan: Duration,
    /// How often workflow files are checked for edits.
    pub reload: Duration,
    /// Whether the state directory is fsynced.
    pub durability: Durability,
    /// Cap of each task's log.
    pub log_bytes: u64,
    /// The shared remote cache (from the environment); a workflow's `remote_cache` fills the
    /// gaps.
    pub remote: dagrun_exec::RemoteOptions,
    /// The `dagrun` binary the jobs of Slurm and Ray tasks run (see `RunOptions`).
    pub remote_bin: Option<PathBuf>,
}

/// What the daemon tells whoever runs it (the CLI prints these).
#[derive(Debug)]
pub enum Notice {
    /// It is up.
    Started {
        /// Where it listens.
        addr: Option<SocketAddr>,
        /// Per workflow: its name, file, next scheduled tick (Unix ms) and triggers (described).
        workflows: Vec<(String, PathBuf, Option<i64>, Vec<String>)>,
    },
    /// A workflow file changed.
    Workflow(Change),
    /// An event was recorded (written to the log before anything else happens).
    Recorded(Event),
    /// Ticks were missed while the daemon was down (or the clock jumped) and not run.
    Missed {
        /// The workflow.
        workflow: String,
        /// How many ticks.
        skipped: u64,
        /// Whether more were missed than counted.
        more: bool,
    },
    /// A run starts for these events.
    RunStarting {
        /// The workflow.
        workflow: String,
        /// Its run id.
        run_id: String,
        /// The events it handles.
        events: Vec<i64>,
        /// The partitions it covers (empty: the workflow's default).
        partitions: Vec<String>,
    },
    /// A run ended.
    RunFinished {
        /// The workflow.
        workflow: String,
        /// Its run id.
        run_id: String,
        /// How it ended.
        status: RunStatus,
        /// Wall time.
        duration_ms: u64,
    },
    /// Events could not run (e.g. a partition the workflow does not have), or were skipped.
    NotRun {
        /// The workflow.
        workflow: String,
        /// The events.
        events: Vec<i64>,
        /// Why.
        why: String,
    },
    /// An approval request timed out and took its `on_timeout` decision.
    ApprovalTimedOut {
        /// The workflow.
        workflow: String,
        /// The request's id.
        request: i64,
        /// The run that asked.
        run_id: String,
        /// `rejected` or `approved`.
        decision: String,
    },
    /// A webhook request was refused.
    HookRefused(String),
    /// A round of notification deliveries did something.
    Notifications {
        /// Delivered.
        delivered: usize,
        /// Failed, retried later.
        retrying: usize,
        /// Failed for the last time (`dagrun runs --notifications` lists them).
        gave_up: usize,
        /// The first failure's error (never a secret), or the history store's problem.
        first_error: Option<String>,
    },
    /// Something went wrong that the daemon survives (it retries).
    Warning(String),
    /// Shutting down.
    Stopping,
}

/// Receives the daemon's notices and gives each run its reporter.
pub trait Observer: Send + Sync {
    /// A notice.
    fn notice(&self, n: Notice);
    /// The reporter of a run's events.
    fn run_reporter(&self, workflow: &str, run_id: &str) -> Arc<dyn Reporter>;
}

/// Why the daemon could not start (once started, it reports problems and goes on).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another daemon runs on the state directory.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The event log is unusable.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The state directory is unusable.
    #[error("cannot open the state directory: {0}")]
    Store(String),
    /// The workflow paths could not be read.
    #[error("cannot read {path}: {source}")]
    Paths {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// No workflow file was found.
    #[error("no workflow files (*.ron) in {0}")]
    NoWorkflows(String),
    /// The HTTP address could not be bound.
    #[error("cannot listen on {addr}: {source} (choose another with --listen, e.g. 127.0.0.1:0)")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Tells a running daemon to stop: `stop` lets the current task finish or cancels it cleanly;
/// `force` (a second signal) abandons it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<u8>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { tx: Arc::new(watch::channel(0).0) }
    }
}

impl Shutdown {
    /// A handle nobody has used yet.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }
    /// Stop accepting events; cancel the current run cleanly; exit.
    pub fn stop(&self) {
        self.tx.send_if_modified(|v| {
            *v = (*v).max(1);
            true
        });
    }
    /// Like `stop`, and abandon the current run's tasks at once.
    pub fn force(&self) {
        self.tx.send_replace(2);
    }
    fn subscribe(&self) -> watch::Receiver<u8> {
        self.tx.subscribe()
    }
}

/// Everything the daemon's loop shares with its helpers.
pub(crate) struct Ctx {
    pub cfg: Config,
    pub clock: Arc<dyn Clock>,
    pub observer: Arc<dyn Observer>,
    pub log: Arc<EventLog>,
    pub engine: Arc<Engine>,
    pub wake: Arc<Notify>,
    /// Wakes the notification deliverer (new rows may be due).
    pub notify_wake: Arc<Notify>,
    /// The workflows loaded now, by name (for the webhook server's checks).
    pub workflows: std::sync::RwLock<std::collections::HashMap<String, Arc<dagrun_workflow::Workflow>>>,
    /// What `daemon.json` says (the workflows it runs change on reloads).
    pub info: std::sync::Mutex<DaemonInfo>,
}

/// Runs the daemon until `shutdown`; returns when it has stopped cleanly.
pub async fn run(
    cfg: Config,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
    shutdown: Shutdown,
) -> Result<(), DaemonError> {
    let files = files_of(&cfg.paths).map_err(|source| DaemonError::Paths {
        path: cfg.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        source,
    })?;
    if files.is_empty() {
        let dirs: Vec<String> = cfg.paths.iter().map(|p| p.display().to_string()).collect();
        return Err(DaemonError::NoWorkflows(dirs.join(", ")));
    }
    let lock = DaemonLock::take(&cfg.state_dir)?;
    let engine = Engine::open(&cfg.state_dir, cfg.durability).map_err(|e| DaemonError::Store(e.to_string()))?;
    let log = Arc::new(tokio::task::block_in_place(|| EventLog::open(&cfg.state_dir))?);
    let listener = match cfg.listen {
        Some(addr) => {
            Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| DaemonError::Listen { addr, source })?)
        }
        None => None,
    };
    let addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    let started_ms = clock.now_ms();
    let info = DaemonInfo {
        pid: std::process::id(),
        addr: addr.map(|a| a.to_string()),
        started_ms,
        workflows: Vec::new(),
        files: Default::default(),
    };
    lock.publish(&info).map_err(|e| DaemonError::Store(format!("cannot write daemon.json: {e}")))?;
    let ctx = Arc::new(Ctx {
        cfg,
        clock,
        observer,
        log,
        engine: Arc::new(engine),
        wake: Arc::new(Notify::new()),
        notify_wake: Arc::new(Notify::new()),
        workflows: Default::default(),
        info: std::sync::Mutex::new(info),
    });
    let notifier = notify::Deliverer::start(&ctx);
    let mut brain = runs::Brain::new(ctx.clone(), WorkflowSet::new(ctx.cfg.paths.clone()));
    brain.start(listener, addr, shutdown.subscribe()).await;
    brain.run(shutdown.subscribe()).await;
    notifier.stop().await;
    ctx.observer.notice(Notice::Stopping);
    drop(lock);
    Ok(())
}

/// Files that landed, as the watcher reports them.
pub(crate) type LandedRx = mpsc::Receiver<crate::watch::Landed>;

/// Renders diagnostics for a notice's text (the CLI renders them richly instead).
pub fn first_problem(diags: &[Diagnostic]) -> String {
    diags.first().map_or_else(String::new, |d| d.to_string())
}
