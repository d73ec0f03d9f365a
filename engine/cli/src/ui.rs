//! `dagrun ui`: loads the workflow files given (their graphs), brings the history store up to
//! date with the run records, starts the UI from `dagrun-ui`, prints its address and token, and
//! stops on SIGTERM or Ctrl-C. Approve/reject from the page run `dagrun approve/reject` itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    let decide = decider(std::path::absolute(&dir).unwrap_or_else(|_| dir.clone()));
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

/// Approve/reject: this binary's `dagrun approve|reject RUN --by NAME --state-dir DIR`, the one
/// code path (it records the decision, then resumes the run: a daemon's, or here).
fn decider(dir: PathBuf) -> dagrun_ui::Decide {
    Arc::new(move |decision: Decision, run: &str, by: &str| {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find the dagrun binary: {e}"))?;
        let verb = if decision == Decision::Approve { "approve" } else { "reject" };
        let out = std::process::Command::new(exe)
            // `--by=` and `--` keep a name or run id that starts with `-` from reading as an option.
            .args([verb, &format!("--by={by}")])
            .arg("--state-dir")
            .arg(&dir)
            .args(["--", run])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run dagrun {verb}: {e}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() { Ok(text) } else { Err(text) }
    })
}
