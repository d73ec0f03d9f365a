//! Command-line arguments (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::env;
use crate::exit::Exit;
pub use crate::remote_args::{RemoteArgs, RemoteMode, SyncArgs};

/// Parses the command line; on an error prints it (with a hint for common slips) and returns
/// the exit code.
pub fn parse() -> Result<Cli, Exit> {
    parse_from(std::env::args_os().collect())
}

fn parse_from(argv: Vec<std::ffi::OsString>) -> Result<Cli, Exit> {
    Cli::try_parse_from(&argv).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            if let Some(hint) = hint(&argv) {
                crate::printer::errln!("hint: {hint}");
            }
            Exit::Usage
        } else {
            Exit::Success
        }
    })
}

/// A hint for a slip clap's message does not explain: `--force TASK` (the task must follow `=`).
fn hint(argv: &[std::ffi::OsString]) -> Option<String> {
    let words: Vec<&str> = argv.iter().filter_map(|a| a.to_str()).collect();
    let at = words.iter().position(|w| *w == "--force")?;
    let task = words.get(at + 1).filter(|w| !w.starts_with('-'))?;
    Some(format!("to force one task, write `--force={task}` (a bare `--force` forces every task)"))
}

/// dagrun: a DAG workflow engine that keeps ML models fresh, with a content-hash cache.
#[derive(Debug, Parser)]
#[command(
    name = "dagrun",
    version,
    about = "dagrun: a DAG workflow engine that keeps ML models fresh, with a content-hash cache",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 success, 1 a task failed, 2 usage error, 3 invalid workflow, \
4 gate refused, 5 cache corruption found, 6 monitoring alert, 7 waiting for approval, 70 internal error, \
75 state directory busy, 130 interrupted.";

/// Where the state directory is.
#[derive(Debug, Args, Clone)]
pub struct StateArgs {
    /// State directory (cache, run history); default `.dagrun/` beside the workflow file.
    #[arg(long, env = env::STATE_DIR, global = true)]
    pub state_dir: Option<PathBuf>,
}

/// `--only` and `--force`.
#[derive(Debug, Args, Clone)]
pub struct SelectArgs {
    /// Run only TASK and what it needs (repeatable).
    #[arg(long, value_name = "TASK")]
    pub only: Vec<String>,
    /// Ignore the cache: `--force` for every task, `--force=TASK` for TASK and its downstream.
    #[arg(long, value_name = "TASK", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub force: Vec<String>,
    /// Re-hash every input file instead of trusting size/mtime/inode.
    #[arg(long)]
    pub verify: bool,
}

/// Which partition a `run` or `plan` covers.
#[derive(Debug, Args, Clone)]
pub struct PartitionArgs {
    /// Run the partition with this key, or the one containing this date/time (e.g. 2025-01-31);
    /// default: the latest complete partition of each scheme.
    #[arg(long, value_name = "KEY")]
    pub partition: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a workflow: cached tasks are restored, the rest run in parallel.
    Run {
        /// The workflow file.
        workflow: PathBuf,
        /// Tasks to run at once (default: number of CPU cores).
        #[arg(short, long, value_name = "N")]
        jobs: Option<usize>,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        partition: PartitionArgs,
        /// Print one JSON object per event on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Run every partition in a range: plans all of them first, then runs only the misses.
    Backfill(BackfillArgs),
    /// Show what a run would do: per task, cached or run, and why.
    Plan {
        /// The workflow file.
        workflow: PathBuf,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        partition: PartitionArgs,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Check a workflow file and report every problem in it.
    Validate {
        /// The workflow file.
        workflow: PathBuf,
    },
    /// Print the task graph.
    Graph {
        /// The workflow file.
        workflow: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Inspect and maintain the cache.
    Cache {
        /// What to do.
        #[command(subcommand)]
        action: CacheAction,
    },
    /// List recent runs.
    Runs {
        /// Workflow whose state directory to read (default: ./.dagrun).
        workflow: Option<PathBuf>,
        /// How many runs.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
        /// List undelivered notifications instead (event, sink, attempts, next try, last error).
        #[arg(long)]
        notifications: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// The payoff report: time saved, time to recovery after drift, bad deploys prevented, and
    /// the run numbers, per workflow and per model (docs/report.md).
    Report(ReportArgs),
    /// Report what dagrun found on this machine: ONNX Runtime, the wasm32-wasip2 target, cargo,
    /// and the remote cache (DAGRUN_REMOTE_CACHE or WORKFLOW's `remote_cache`): reachable,
    /// writable, create-only puts honoured.
    Doctor {
        /// A workflow whose `remote_cache` to check (DAGRUN_REMOTE_CACHE overrides it).
        workflow: Option<PathBuf>,
    },
    /// Run one task on this machine for a remote job (Slurm, Ray): fetch its spec and inputs
    /// from the remote cache, run it, publish its outputs there.
    ExecTask {
        /// The remote cache (`s3://BUCKET/PREFIX`; endpoint and credentials from `AWS_*`).
        #[arg(long, env = env::REMOTE_CACHE, value_name = "URL")]
        remote_cache: String,
        /// The task's cache key (64 hex digits): its spec is stored under it.
        #[arg(long, value_name = "KEY")]
        key: String,
    },
    /// List deployed models and roll back to an earlier version.
    Models {
        /// What to do.
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Create, build and inspect WASM task plugins.
    Plugin {
        /// What to do.
        #[command(subcommand)]
        action: PluginAction,
    },
    /// Write a CI file (GitHub Actions, GitLab CI) that runs a workflow on its schedule.
    Export {
        /// Which CI.
        #[command(subcommand)]
        target: crate::export::ExportTarget,
    },
    /// Show one run: every task's status, duration and cache key.
    Show {
        /// Run id, a unique prefix of it, or `last`.
        run: String,
        /// Workflow whose state directory to read (default: ./.dagrun).
        workflow: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Approve a run an `Approval` step parked: its deploy goes ahead (the run resumes).
    Approve(DecideArgs),
    /// Reject a run an `Approval` step parked: its model is never deployed.
    Reject(DecideArgs),
    /// List approval requests: those waiting for a person (`--all`: decided ones too).
    Approvals {
        /// Workflow whose state directory to read (default: ./.dagrun).
        workflow: Option<PathBuf>,
        /// Decided requests too (approved, rejected, timed out, superseded).
        #[arg(long)]
        all: bool,
        /// How many requests.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Run workflows by themselves: cron schedules, files landing, webhooks, other workflows'
    /// outcomes (every event written to a durable log first).
    Daemon(DaemonArgs),
    /// Serve the deployed models of a registry over HTTP (Open Inference Protocol, /predict, /metrics).
    Serve(ServeArgs),
    /// A local web page over the run history: DAGs, runs, backfill grids, models and approvals,
    /// drift, the payoff charts (loopback; approving needs the token printed at start).
    Ui(UiArgs),
    /// Hand a workflow an event: a running daemon runs it; without one it runs here and now.
    Trigger {
        /// The workflow file.
        workflow: PathBuf,
        /// The partition to run (a key, or a date/time inside it).
        #[arg(long, value_name = "KEY")]
        partition: Option<String>,
        /// Why (recorded with the event).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        state: StateArgs,
    },
}

/// `dagrun approve|reject RUN [WORKFLOW] [--by NAME] [--note TEXT]`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The run that waits (its id or a unique prefix; `dagrun approvals` lists them).
    pub run: String,
    /// Workflow whose state directory to use (default: ./.dagrun).
    pub workflow: Option<PathBuf>,
    /// Who decides (recorded; default: $USER).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Why (recorded, and sent with the notification).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
}

/// `dagrun daemon [PATHS] [--listen ADDR]` or `dagrun daemon status [PATHS]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DaemonArgs {
    /// `status`: show the daemon's workflows, next ticks, last events and queue.
    #[command(subcommand)]
    pub action: Option<DaemonAction>,
    /// Workflow files, or directories whose `*.ron` files are workflows (default: `.`).
    pub paths: Vec<PathBuf>,
    /// Where to serve webhooks (and wake-ups from `dagrun trigger`); loopback by default.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878", env = env::LISTEN)]
    pub listen: String,
    /// Serve no HTTP at all (webhooks off; `dagrun trigger` is picked up within the rescan).
    #[arg(long)]
    pub no_http: bool,
    /// How often `FileLanded` globs are rescanned, besides file notifications.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub rescan: String,
    /// Tasks to run at once in a run (default: number of CPU cores).
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub state: StateArgs,
}

/// `dagrun daemon` subcommands.
#[derive(Debug, Subcommand)]
pub enum DaemonAction {
    /// Each workflow's next tick, triggers, last events and their runs, and the queue.
    Status {
        /// Workflow files or directories, as given to the daemon (default: `.`).
        paths: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Events shown per workflow.
        #[arg(long, value_name = "N", default_value_t = 5)]
        last: usize,
        #[command(flatten)]
        state: StateArgs,
    },
}

/// `dagrun cache` subcommands.
/// `dagrun backfill`'s arguments: a range (`--from` and `--to`) or a list (`--partitions`).
#[derive(Debug, Args, Clone)]
#[group(id = "range", required = true, multiple = true, args = ["from", "to", "partitions"])]
pub struct BackfillArgs {
    /// The workflow file.
    pub workflow: PathBuf,
    /// First partition (date or key), inclusive.
    #[arg(long, value_name = "DATE", requires = "to", conflicts_with = "partitions")]
    pub from: Option<String>,
    /// Last partition (date or key), inclusive.
    #[arg(long, value_name = "DATE", requires = "from")]
    pub to: Option<String>,
    /// Exactly these partitions (comma-separated keys or dates).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub partitions: Vec<String>,
    /// Only shard I of N of the partitions (round-robin in time order), e.g. one CI matrix job.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<dagrun_plan::Shard>,
    /// Only print the plan: per partition, cached or run and why.
    #[arg(long)]
    pub plan: bool,
    /// Start the newest partitions first.
    #[arg(long)]
    pub reverse: bool,
    /// Tasks to run at once (default: number of CPU cores).
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Print one JSON object per event on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

impl Command {
    /// Whether the command keeps going when stdout is closed (a run must not die half-way).
    pub fn survives_closed_pipe(&self) -> bool {
        matches!(
            self,
            Command::Run { .. }
                | Command::Backfill(BackfillArgs { plan: false, .. })
                | Command::Approve(_)
                | Command::Reject(_)
                | Command::Approvals { .. }
                | Command::Trigger { .. }
                | Command::Serve(_)
                | Command::Ui(_)
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// List cache entries.
    Ls {
        /// Workflow whose state directory to read (default: ./.dagrun).
        workflow: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Remove entries unused for longer than --max-age, unreferenced objects, old runs and logs.
    Gc {
        /// Workflow whose state directory to clean (default: ./.dagrun).
        workflow: Option<PathBuf>,
        /// Remove entries not used, and run records and logs older than this, e.g. "30d"
        /// (default: keep every entry).
        #[arg(long, value_name = "DURATION")]
        max_age: Option<String>,
        /// Keep at most the newest N run records and their logs.
        #[arg(long, value_name = "N", default_value_t = dagrun_cache::DEFAULT_KEEP_RUNS)]
        keep_runs: usize,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Send every local entry of a workflow's instances (and the uploads runs left pending) to
    /// the remote cache (DAGRUN_REMOTE_CACHE or the workflow's `remote_cache`).
    Push(SyncArgs),
    /// Take the remote cache's entries and objects for a workflow's instances into the local
    /// store, in dependency order, without running anything (CI runners start warm).
    Pull(SyncArgs),
    /// Re-hash every object and check every entry; corrupt ones are removed so the next run treats them as misses.
    Verify {
        /// Workflow whose state directory to check (default: ./.dagrun).
        workflow: Option<PathBuf>,
        #[command(flatten)]
        state: StateArgs,
    },
}

/// `dagrun models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Every model in a registry with its versions (`*` marks the deployed one).
    List {
        /// The registry directory, or s3://BUCKET/PREFIX.
        #[arg(long, default_value = "registry")]
        registry: PathBuf,
    },
    /// Point a model's `current` at an earlier version (default: the one before the current).
    Rollback {
        /// The model name.
        name: String,
        /// The version to deploy, e.g. v0002.
        #[arg(long)]
        to: Option<String>,
        /// The registry directory, or s3://BUCKET/PREFIX (moved with a conditional write).
        #[arg(long, default_value = "registry")]
        registry: PathBuf,
    },
}

/// `dagrun plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginAction {
    /// Create a plugin crate (and an example workflow that runs it) in a new directory NAME.
    New {
        /// Plugin name: lower-case letters, digits, `-` and `_`.
        name: String,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The dagrun SDK to depend on (default: the SDK next to this dagrun's sources).
        #[arg(long, env = env::SDK)]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin crate (cargo, wasm32-wasip2, release) and print the .wasm it produced.
    Build {
        /// The plugin crate directory.
        path: PathBuf,
    },
    /// Print what a plugin says about itself (name, version, params schema) and what it imports.
    Inspect {
        /// A .wasm component or a plugin crate directory.
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `dagrun report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A workflow file (its state directory, only its runs, and its current `manual_minutes`),
    /// or a workflow name in the state directory (default: ./.dagrun); all workflows if absent.
    pub workflow: Option<PathBuf>,
    /// The window: runs that started this long ago or later, e.g. `30d`, `12h`, `1w`.
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub since: String,
    /// How to render it.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Write it to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateArgs,
}

/// `dagrun report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Aligned text.
    Table,
    /// The versioned JSON of docs/report.md.
    Json,
    /// One self-contained HTML page with inline SVG charts.
    Html,
}

/// `dagrun graph --format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<std::ffi::OsString> {
        s.split(' ').map(Into::into).collect()
    }

    #[test]
    fn force_with_a_space_gets_a_hint() {
        assert_eq!(
            hint(&argv("dagrun run wf.ron --force train")).unwrap(),
            "to force one task, write `--force=train` (a bare `--force` forces every task)"
        );
        assert_eq!(hint(&argv("dagrun run wf.ron --force --json")), None);
        assert!(parse_from(argv("dagrun run wf.ron --force=train")).is_ok());
    }

    #[test]
    fn backfill_without_a_range_names_both_ways() {
        let e = Cli::try_parse_from(argv("dagrun backfill wf.ron")).unwrap_err().to_string();
        assert!(e.contains("--from <DATE>") && e.contains("--partitions <LIST>"), "{e}");
    }

    #[test]
    fn backfill_to_alone_names_from() {
        let e = Cli::try_parse_from(argv("dagrun backfill wf.ron --to 2025-01-31")).unwrap_err().to_string();
        let missing = e.split("Usage:").next().unwrap();
        assert!(missing.contains("--from <DATE>"), "{e}");
        assert!(!missing.contains("--partitions"), "{e}");
    }

    #[test]
    fn only_a_run_outlives_a_closed_pipe() {
        let command = |s: &str| Cli::try_parse_from(argv(s)).unwrap().command;
        assert!(command("dagrun run wf.ron").survives_closed_pipe());
        assert!(command("dagrun backfill wf.ron --partitions a").survives_closed_pipe());
        assert!(!command("dagrun backfill wf.ron --partitions a --plan").survives_closed_pipe());
        assert!(!command("dagrun plan wf.ron").survives_closed_pipe());
    }
}

/// `dagrun serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The registry directory, or s3://BUCKET/PREFIX (served from a private mirror kept in step).
    #[arg(long, default_value = "registry")]
    pub registry: PathBuf,
    /// A model to serve (repeat for several; default: every model in the registry).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080", env = crate::env::SERVE_ADDR)]
    pub addr: std::net::SocketAddr,
    /// Threads answering HTTP; small requests run on them (default: half the CPU cores, at least 1).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Worker threads (ONNX Runtime sessions) per model (default: number of CPU cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Most rows run as one batch when concurrent requests are combined.
    #[arg(long, default_value_t = 64, value_name = "ROWS")]
    pub max_batch: usize,
    /// How long a worker waits for more requests to combine (`0ms`: only those already waiting).
    #[arg(long, default_value = "0ms", value_name = "DURATION")]
    pub max_wait: String,
    /// Largest request body (larger: 413).
    #[arg(long, default_value = "16MiB", value_name = "SIZE")]
    pub max_body: String,
    /// Append sampled request features and predictions to DIR/<name>/<YYYY-MM-DD>.csv (UTC days),
    /// the `current` data of a Drift task.
    #[arg(long, value_name = "DIR")]
    pub prediction_log: Option<PathBuf>,
    /// Share of requests written to the prediction log (0 to 1).
    #[arg(long, default_value_t = 1.0, value_name = "SHARE", requires = "prediction_log")]
    pub log_sample: f64,
    /// How often the registry is looked at when no request comes (deploys are loaded before traffic).
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub poll: String,
    /// With an s3:// registry: how often each model's remote `current` is checked (one HEAD request).
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub remote_poll: String,
}

/// `dagrun ui [WORKFLOW...] [--addr ADDR]`.
#[derive(Debug, clap::Args)]
pub struct UiArgs {
    /// Workflow files whose DAGs and grids to show (the first one's state directory is read,
    /// default: ./.dagrun); without any, the workflows of the history are listed.
    pub workflows: Vec<PathBuf>,
    /// Where to listen (port 0: any free port). Any non-loopback address needs the token for every page.
    #[arg(long, default_value = "127.0.0.1:8765", env = crate::env::UI_ADDR)]
    pub addr: std::net::SocketAddr,
    #[command(flatten)]
    pub state: StateArgs,
}
