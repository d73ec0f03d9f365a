//! `dagrun ui`: loads the workflow files given (their graphs), brings the history store up to
//! date with the run records, starts the UI from `dagrun-ui`, prints its address and token, and
//! stops on SIGTERM or Ctrl-C. Approve/reject from the page call what `dagrun approve/reject`
//! call (`dagrun_automate::approve::decide`), in this process.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dagrun_automate::approve;
use dagrun_automate::trigger::{Here, Progress, Step};

use dagrun_history::{Decision, History};
use dagrun_ui::{Graph, Node, Ui, UiOptions};

use crate::args::UiArgs;
use crate::commands::{Interrupts, error, prepare_error, state_dir};
use crate::exit::Exit;
use crate::printer::errln;

pub fn ui(args: &UiArgs) -> Result<Exit, Exit> {
    let graphs = args.workflows.iter().map(|w| graph(w)).collect::<Result<Vec<_>, _>>()?;
    let dir = state_dir(&args.state, args.workflows.first().map(PathBuf::as_path));
    let history = Arc::new(open(&dir)?);
    let decide =
        decider(std::path::absolute(&dir).unwrap_or_else(|_| dir.clone()), crate::run::here(None, false, false)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| error(format!("cannot start the runtime: {e}"), Exit::Internal))?;
    rt.block_on(async move {
        let options = UiOptions { addr: args.addr, history, graphs, decide };
        let ui = Ui::bind(options).await.map_err(|e| error(e, Exit::Usage))?;
        let addr = ui.addr();
        errln!("history: {}", dir.join(dagrun_history::FILE_NAME).display());
        if ui.private() {
            errln!("listening on http://{addr}/ (not loopback: every page needs the token)");
            errln!("open http://{addr}/?token={}", ui.token());
        } else {
            errln!("listening on http://{addr}/");
        }
        errln!("token: {} (approving and rejecting need it; the pages carry it)", ui.token());
        let mut interrupts =
            Interrupts::new().ok_or_else(|| error("cannot install signal handlers", Exit::Internal))?;
        ui.run(async move {
            interrupts.next().await;
        })
        .await
        .map_err(|e| error(e, Exit::Internal))?;
        errln!("stopped");
        Ok(Exit::Success)
    })
}

/// A workflow file's graph: its tasks, their upstream tasks and partition schemes.
fn graph(path: &Path) -> Result<Graph, Exit> {
    let opts = dagrun_workflow::LoadOptions { check_env: false };
    let (wf, _) = dagrun_exec::load_workflow_with(path, opts).map_err(prepare_error)?;
    let tasks = wf
        .tasks
        .iter()
        .map(|t| Node {
            name: t.name.clone(),
            upstream: t.upstream().into_iter().map(str::to_owned).collect(),
            partitioned: t.partitioned.clone(),
        })
        .collect();
    Ok(Graph { name: wf.name, dir: wf.dir, tasks })
}

/// The history store of `dir`, up to date with its run records (created empty if there is none).
fn open(dir: &Path) -> Result<History, Exit> {
    let fail = |e: dagrun_history::HistoryError| error(e, Exit::Internal);
    let store = dagrun_cache::Store::open_existing(dir, crate::commands::durability())
        .map_err(|e| error(format!("cannot open state directory {}: {e}", dir.display()), Exit::Internal))?;
    let history = History::open(dir).map_err(fail)?;
    if let Some(store) = store {
        let synced = dagrun_exec::sync_history(&store, &history).map_err(fail)?;
        for s in &synced.skipped {
            errln!("warning: run record {} left out: {}", s.path, s.reason);
        }
    }
    Ok(history)
}

/// Approve/reject: `dagrun_automate::approve::decide`, the function `dagrun approve|reject` call,
/// in this process on the UI's state directory (it records the decision, then resumes the run: a
/// daemon's, or here). Its steps, the resumed run's events and its table of tasks are collected
/// as `dagrun approve` prints them; the page shows them.
fn decider(dir: PathBuf, here: Here) -> dagrun_ui::Decide {
    Arc::new(move |decision: Decision, run: &str, by: &str| {
        let store = match dagrun_cache::Store::open_existing(&dir, crate::commands::durability()) {
            Ok(Some(store)) => store,
            Ok(None) => {
                return Err(format!("no state directory at {}: nothing waits for approval there", dir.display()));
            }
            Err(e) => return Err(format!("cannot open state directory: {e}")),
        };
        let here = Here { cancel: dagrun_exec::Cancel::new(), ..here.clone() };
        let said = Collected::default();
        let req = approve::Request { run, decision, by, note: None, state: Some(&dir) };
        // On a blocking thread of the UI's runtime (pages render there): the run's tasks go to
        // the runtime's workers.
        let done = tokio::runtime::Handle::current().block_on(approve::decide(&store, req, &here, &said));
        let mut text = said.text();
        match done {
            Ok(d) if d.resumed.iter().all(|r| !matches!(r, approve::Resumed::Here { deployed: None, .. })) => Ok(text),
            Ok(_) => Err(text),
            Err(e) => {
                if let approve::ApproveError::CannotResume { cause, .. } = &e {
                    text.push_str(&crate::commands::prepare_error_text(cause));
                }
                text.push_str(&format!("error: {e}\n"));
                Err(text)
            }
        }
    })
}

/// What a decision said, line by line, as `dagrun approve` prints it.
#[derive(Default)]
struct Collected {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Collected {
    fn push(&self, line: String) {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }

    fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().map(|l| format!("{}\n", l.trim_end_matches('\n'))).collect()
    }
}

impl Progress for Collected {
    fn step(&self, step: Step<'_>) {
        let line = match &step {
            Step::RunFinished(r) => Some(crate::run::summary(r)),
            Step::Notifications(s) => crate::notifications::summary_line(s),
            s => s.line(),
        };
        if let Some(line) = line {
            self.push(line);
        }
    }

    fn reporter(&self) -> Arc<dyn dagrun_exec::Reporter> {
        Arc::new(Collected { lines: self.lines.clone() })
    }
}

impl dagrun_exec::Reporter for Collected {
    fn report(&self, event: &dagrun_exec::Event) {
        if let Some(line) = crate::reporter::plain_line(event) {
            self.push(line);
        }
    }
}
