//! Dispatch of the subcommands, and what they share: state directories, workflow loading with
//! rendered diagnostics, formatting of durations and sizes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dagrun_cache::{Durability, Store};
use dagrun_exec::PrepareError;
use dagrun_plan::TaskGraph;
use dagrun_workflow::{Workflow, duration};

use crate::args::{Command, GraphFormat, StateArgs};
use crate::exit::Exit;
use crate::printer::errln;
use crate::{env, render};

/// Runs one subcommand.
pub fn dispatch(cmd: Command) -> Exit {
    let result = match cmd {
        Command::Run { workflow, jobs, select, partition, json, remote, state } => {
            let psel = crate::run::partition_selection(&partition);
            crate::run::run(&workflow, jobs, &select, psel, json, &remote, &state)
        }
        Command::Backfill(args) => crate::run::backfill(&args),
        Command::Plan { workflow, select, partition, json, state } => {
            crate::run::plan(&workflow, &select, crate::run::partition_selection(&partition), false, json, &state)
        }
        Command::Validate { workflow } => load(&workflow).map(|(wf, _)| {
            let n = wf.tasks.len();
            eprintln!("{}: ok ({n} task{})", workflow.display(), if n == 1 { "" } else { "s" });
            Exit::Success
        }),
        Command::Graph { workflow, format } => load(&workflow).map(|(wf, _)| {
            print!(
                "{}",
                match format {
                    GraphFormat::Dot => dagrun_plan::dot(&wf),
                    GraphFormat::Mermaid => dagrun_plan::mermaid(&wf),
                }
            );
            Exit::Success
        }),
        Command::Cache { action } => crate::maintenance::cache(action),
        Command::Plugin { action } => crate::plugin::dispatch(action),
        Command::Doctor { workflow } => Ok(crate::maintenance::doctor(workflow.as_deref())),
        Command::ExecTask { remote_cache, key } => crate::exec_task::exec_task(&remote_cache, &key),
        Command::Models { action } => crate::maintenance::models(action),
        Command::Runs { workflow, limit, notifications, json, state } => {
            crate::history::runs(workflow.as_deref(), limit, notifications, json, &state)
        }
        Command::Report(args) => crate::report::report(&args),
        Command::Show { run, workflow, json, state } => crate::history::show(&run, workflow.as_deref(), json, &state),
        Command::Approve(a) => crate::approve::decide(
            &a.run,
            a.workflow.as_deref(),
            dagrun_exec::history_store::Decision::Approve,
            a.by.as_deref(),
            a.note.as_deref(),
            &a.state,
        ),
        Command::Reject(a) => crate::approve::decide(
            &a.run,
            a.workflow.as_deref(),
            dagrun_exec::history_store::Decision::Reject,
            a.by.as_deref(),
            a.note.as_deref(),
            &a.state,
        ),
        Command::Approvals { workflow, all, limit, json, state } => {
            crate::approve::list(workflow.as_deref(), all, limit, json, &state)
        }
        Command::Daemon(args) => crate::daemon::dispatch(args),
        Command::Serve(args) => crate::serve::serve(&args),
        Command::Ui(args) => crate::ui::ui(&args),
        Command::Trigger { workflow, partition, reason, remote, state } => {
            crate::daemon::trigger(&workflow, partition.as_deref(), reason.as_deref(), &remote, &state)
        }
        Command::Export { target } => crate::export::dispatch(target),
    };
    result.unwrap_or_else(|e| e)
}

/// Prints `error: msg` and returns `code`.
pub(crate) fn error(msg: impl std::fmt::Display, code: Exit) -> Exit {
    errln!("error: {msg}");
    code
}

/// Prints why a workflow could not be prepared (every diagnostic, with its location).
pub(crate) fn prepare_error(e: PrepareError) -> Exit {
    let code = Exit::of_prepare(&e);
    match e {
        PrepareError::Invalid(diags) => {
            crate::printer::err(format_args!("{}", render::diagnostics(&diags)));
            code
        }
        e => error(e, code),
    }
}

/// Prints why a workflow could not be prepared (every diagnostic), without an exit line.
pub(crate) fn report_prepare_error(e: PrepareError) {
    crate::printer::err(format_args!("{}", prepare_error_text(&e)));
}

/// Why a workflow could not be prepared, as [`report_prepare_error`] prints it.
pub(crate) fn prepare_error_text(e: &PrepareError) -> String {
    match e {
        PrepareError::Invalid(diags) => render::diagnostics(diags),
        e => format!("error: {e}\n"),
    }
}

/// Loads and validates a workflow and its graph, printing every problem.
pub(crate) fn load(path: &Path) -> Result<(Workflow, TaskGraph), Exit> {
    dagrun_exec::load_workflow(path).map_err(prepare_error)
}

pub(crate) fn state_dir(state: &StateArgs, workflow: Option<&Path>) -> PathBuf {
    if let Some(dir) = &state.state_dir {
        return dir.clone();
    }
    let base = workflow
        .and_then(|w| std::path::absolute(w).ok())
        .and_then(|w| w.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join(".dagrun")
}

pub(crate) fn durability() -> Durability {
    if env::is_off(env::FSYNC) { Durability::NoFsync } else { Durability::Fsync }
}

/// Opens the state directory if it exists: read-only commands never create one.
pub(crate) fn existing_store(state: &StateArgs, workflow: Option<&Path>) -> Result<Result<Store, PathBuf>, Exit> {
    let dir = state_dir(state, workflow);
    match Store::open_existing(&dir, durability()) {
        Ok(Some(store)) => Ok(Ok(store)),
        Ok(None) => Ok(Err(dir)),
        Err(e) => Err(error(format!("cannot open state directory: {e}"), Exit::Internal)),
    }
}

pub(crate) fn ms(ms: u64) -> String {
    duration::format(Duration::from_millis(ms))
}

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `-j N`, or the number of CPU cores.
pub(crate) fn default_jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// The tokio runtime of a command that runs workflows (`run`, `backfill`, `trigger`, `daemon`).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| error(format!("cannot start the runtime: {e}"), Exit::Internal))
}

/// SIGINT (Ctrl-C) and SIGTERM (`kill`, `timeout`, a CI runner cancelling a job), as one stream:
/// the first asks to stop cleanly, the second to stop at once.
pub(crate) struct Interrupts {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Interrupts {
    /// Listens for both (inside a tokio runtime); `None` if the handlers cannot be installed.
    pub(crate) fn new() -> Option<Interrupts> {
        use tokio::signal::unix::{SignalKind, signal};
        Some(Interrupts { int: signal(SignalKind::interrupt()).ok()?, term: signal(SignalKind::terminate()).ok()? })
    }

    /// The next signal; `false` if none can come any more.
    pub(crate) async fn next(&mut self) -> bool {
        tokio::select! {
            s = self.int.recv() => s.is_some(),
            s = self.term.recv() => s.is_some(),
        }
    }
}
