//! `dagrun daemon`, `dagrun daemon status` and `dagrun trigger`: parse, call dagrun-automate,
//! print what it reports.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dagrun_automate::clock::{Clock, SystemClock};
use dagrun_automate::daemon::{self, Change, Config, Notice, Observer, Shutdown};
use dagrun_automate::log::Event;
use dagrun_automate::trigger::Triggered;
use dagrun_exec::RunStatus;

use crate::args::{DaemonAction, DaemonArgs, StateArgs};
use crate::commands::{Interrupts, default_jobs, durability, error, now_secs, runtime};
use crate::exit::Exit;
use crate::printer::{errln, outln};
use crate::reporter::PlainReporter;

/// `dagrun daemon ...`.
pub fn dispatch(args: DaemonArgs) -> Result<Exit, Exit> {
    match args.action {
        Some(DaemonAction::Status { paths, json, last, state }) => status(&paths, json, last, &state),
        None => serve(&args),
    }
}

fn paths_or_here(paths: &[PathBuf]) -> Vec<PathBuf> {
    if paths.is_empty() { vec![PathBuf::from(".")] } else { paths.to_vec() }
}

/// The state directory of a daemon: `--state-dir`, else `.dagrun` in the directory given, or
/// beside the workflow files (which must then share one directory, as `dagrun run` would use).
fn daemon_state(paths: &[PathBuf], state: &StateArgs) -> Result<PathBuf, Exit> {
    if let Some(dir) = &state.state_dir {
        return Ok(dir.clone());
    }
    let dirs: Vec<PathBuf> = paths
        .iter()
        .map(|p| if p.is_dir() { p.clone() } else { p.parent().map(Path::to_path_buf).unwrap_or_default() })
        .map(|d| std::path::absolute(if d.as_os_str().is_empty() { Path::new(".") } else { &d }).unwrap_or(d))
        .collect();
    match dirs.first() {
        Some(d) if dirs.iter().all(|x| x == d) => Ok(d.join(".dagrun")),
        _ => Err(error(
            "these workflows live in different directories, so they have different state directories: \
             give one with --state-dir, or run one daemon per directory",
            Exit::Usage,
        )),
    }
}

fn serve(args: &DaemonArgs) -> Result<Exit, Exit> {
    let paths = paths_or_here(&args.paths);
    let state_dir = daemon_state(&paths, &args.state)?;
    let listen = if args.no_http {
        None
    } else {
        {
            use std::net::ToSocketAddrs;
            let addr = args.listen.to_socket_addrs().ok().and_then(|mut a| a.next());
            Some(addr.ok_or_else(|| {
                error(
                    format!("invalid --listen `{}`: expected an address such as 127.0.0.1:7878", args.listen),
                    Exit::Usage,
                )
            })?)
        }
    };
    let rescan = dagrun_workflow::duration::parse(&args.rescan)
        .map_err(|why| error(format!("invalid --rescan `{}`: {why}", args.rescan), Exit::Usage))?;
    let jobs = default_jobs(args.jobs);
    let cfg = Config {
        paths,
        state_dir,
        listen,
        jobs,
        rescan: rescan.max(std::time::Duration::from_millis(100)),
        reload: std::time::Duration::from_secs(2),
        durability: durability(),
        log_bytes: crate::env::log_max()?,
        remote: crate::env::remote_cache()?,
        remote_bin: crate::env::remote_bin(),
    };
    let runtime = runtime()?;
    let shutdown = Shutdown::new();
    let result = runtime.block_on(async {
        tokio::spawn(on_signals(shutdown.clone()));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        daemon::run(cfg, clock, Arc::new(Printer), shutdown).await
    });
    match result {
        Ok(()) => Ok(Exit::Success),
        Err(e @ daemon::DaemonError::Locked(_)) => Err(error(e, Exit::Busy)),
        Err(e @ daemon::DaemonError::Listen { .. }) => Err(error(e, Exit::Usage)),
        Err(e @ (daemon::DaemonError::Paths { .. } | daemon::DaemonError::NoWorkflows(_))) => {
            Err(error(e, Exit::Usage))
        }
        Err(e) => Err(error(e, Exit::Internal)),
    }
}

/// SIGTERM or Ctrl-C: stop cleanly; a second one: abandon the running tasks.
async fn on_signals(shutdown: Shutdown) {
    let Some(mut interrupts) = Interrupts::new() else { return };
    if !interrupts.next().await {
        return;
    }
    errln!("dagrun daemon: stopping (a running task, if any, is cancelled cleanly; signal again to abandon it)");
    shutdown.stop();
    if interrupts.next().await {
        errln!("dagrun daemon: abandoning the running tasks");
        shutdown.force();
    }
}

/// Prints the daemon's notices, one line each, with the time.
struct Printer;

fn clock_time() -> String {
    let now = now_secs();
    let (h, m, s) = ((now / 3600) % 24, (now / 60) % 60, now % 60);
    format!("{h:02}:{m:02}:{s:02}")
}

/// `2026-11-30 03:00 UTC` for a Unix-ms instant.
pub(crate) fn when(ms: i64) -> String {
    let s = ms.div_euclid(1000);
    let (y, mo, d, h) = dagrun_workflow::partition::civil(s);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{:02} UTC", (s / 60) % 60)
}

/// One line about an event: `#4 file landed: data/x.csv (partition 2025-03-05)`.
pub(crate) fn describe_event(e: &Event) -> String {
    let d = &e.event.detail;
    let what = match e.event.source {
        dagrun_automate::log::Source::Tick => {
            format!("scheduled tick {}", d["scheduled_ms"].as_i64().map(when).unwrap_or_default())
        }
        dagrun_automate::log::Source::File => format!(
            "file landed: {} ({} bytes, blake3 {})",
            d["path"].as_str().unwrap_or("?"),
            d["size"],
            d["digest"].as_str().unwrap_or("?").get(..12).unwrap_or("?")
        ),
        dagrun_automate::log::Source::Webhook => format!("webhook `{}`", d["hook"].as_str().unwrap_or("?")),
        dagrun_automate::log::Source::Manual => "manual trigger".to_owned(),
        dagrun_automate::log::Source::Outcome => format!(
            "`{}` of {} {} (run {})",
            d["task"].as_str().unwrap_or("?"),
            d["workflow"].as_str().unwrap_or("?"),
            d["status"].as_str().unwrap_or("?"),
            d["run"].as_str().unwrap_or("?")
        ),
    };
    let reason = d["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default();
    let part = e.event.partition.as_ref().map(|p| format!(" (partition {p})")).unwrap_or_default();
    format!("#{} {what}{reason}{part}", e.id)
}

impl Observer for Printer {
    fn notice(&self, n: Notice) {
        let t = clock_time();
        match n {
            Notice::Started { addr, workflows } => {
                let http =
                    addr.map_or("no HTTP".to_owned(), |a| format!("webhooks on http://{a}/hooks/<workflow>/<name>"));
                outln!("[{t}] dagrun daemon (pid {}): {} workflow(s), {http}", std::process::id(), workflows.len());
                for (name, path, next, triggers) in workflows {
                    let next = next.map_or("no schedule".to_owned(), |n| format!("next tick {}", when(n)));
                    outln!("         {name} ({}): {next}", path.display());
                    for t in triggers {
                        outln!("           {t}");
                    }
                }
            }
            Notice::Workflow(Change::Loaded { path, name, reloaded: true }) => {
                outln!("[{t}] reloaded {name} from {}", path.display())
            }
            Notice::Workflow(Change::Loaded { path, name, .. }) => {
                outln!("[{t}] loaded {name} from {}", path.display())
            }
            Notice::Workflow(Change::Invalid { path, diagnostics, kept }) => {
                let keep = if kept { "; the last valid version keeps running" } else { "; not running it" };
                errln!("[{t}] {} is invalid{keep}:", path.display());
                crate::printer::err(format_args!("{}", crate::render::diagnostics(&diagnostics)));
            }
            Notice::Workflow(Change::Unusable { path, why }) => errln!("[{t}] {}: {why}", path.display()),
            Notice::Workflow(Change::Removed { path, name }) => {
                outln!("[{t}] {} was removed: {name} no longer runs", path.display())
            }
            Notice::Recorded(e) => outln!("[{t}] event {} for {}", describe_event(&e), e.event.workflow),
            Notice::Missed { workflow, skipped, more } => outln!(
                "[{t}] {workflow}: {}{skipped} missed tick(s) not run (catch-up policy)",
                if more { "more than " } else { "" }
            ),
            Notice::RunStarting { workflow, run_id, events, partitions } => {
                let ids: Vec<String> = events.iter().map(|i| format!("#{i}")).collect();
                let parts = if partitions.is_empty() {
                    String::new()
                } else {
                    format!(", partitions {}", partitions.join(" "))
                };
                outln!("[{t}] run {run_id} of {workflow} starts for event(s) {}{parts}", ids.join(" "));
            }
            Notice::RunFinished { workflow, run_id, status, duration_ms } => {
                let s = match status {
                    RunStatus::Refused => "REFUSED (a gate refused the model)".to_owned(),
                    RunStatus::Alerted => "ALERT (a monitoring check found drift or a regression)".to_owned(),
                    RunStatus::Waiting => "WAITING for approval (dagrun approvals)".to_owned(),
                    RunStatus::Failed => "FAILED".to_owned(),
                    s => s.as_str().to_owned(),
                };
                outln!(
                    "[{t}] run {run_id} of {workflow}: {s} in {} (dagrun show {run_id})",
                    crate::commands::ms(duration_ms)
                );
            }
            Notice::NotRun { workflow, events, why } => {
                let ids: Vec<String> = events.iter().map(|i| format!("#{i}")).collect();
                errln!("[{t}] {workflow}: event(s) {} not run: {why}", ids.join(" "));
            }
            Notice::Notifications { delivered, retrying, gave_up, first_error } => {
                let mut what = vec![format!("{delivered} delivered")];
                if retrying > 0 {
                    what.push(format!("{retrying} to retry"));
                }
                if gave_up > 0 {
                    what.push(format!("{gave_up} given up (`dagrun runs --notifications`)"));
                }
                let why = first_error.map(|e| format!(": {e}")).unwrap_or_default();
                if retrying + gave_up > 0 {
                    errln!("[{t}] notifications: {}{why}", what.join(", "));
                } else {
                    outln!("[{t}] notifications: {}{why}", what.join(", "));
                }
            }
            Notice::HookRefused(line) => errln!("[{t}] {line}"),
            Notice::ApprovalTimedOut { workflow, request, run_id, decision } => {
                outln!("[{t}] approval request #{request} of {workflow} (run {run_id}) timed out: {decision}")
            }
            Notice::Warning(w) => errln!("[{t}] warning: {w}"),
            Notice::Stopping => outln!("[{t}] dagrun daemon: stopped"),
        }
    }

    fn run_reporter(&self, _workflow: &str, _run_id: &str) -> Arc<dyn dagrun_exec::Reporter> {
        Arc::new(PlainReporter)
    }
}

fn status(paths: &[PathBuf], json: bool, last: usize, state: &StateArgs) -> Result<Exit, Exit> {
    let paths = paths_or_here(paths);
    let dir = daemon_state(&paths, state)?;
    for p in &paths {
        if let Err(e) = std::fs::metadata(p) {
            return Err(error(format!("cannot read {}: {e}", p.display()), Exit::Usage));
        }
    }
    let now = SystemClock.now_ms();
    let st = dagrun_automate::status::status(paths.clone(), &dir, now, last).map_err(|e| error(e, Exit::Internal))?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&st).expect("serializes"));
        return Ok(Exit::Success);
    }
    match &st.daemon {
        Some(d) => outln!(
            "daemon: running (pid {}{})",
            d.pid,
            d.addr.as_ref().map(|a| format!(", http://{a}")).unwrap_or_default()
        ),
        None => outln!("daemon: not running (start it with `dagrun daemon {}`)", paths[0].display()),
    }
    for w in &st.workflows {
        outln!("\n{} ({})", w.name, w.path.display());
        match (&w.schedule, w.next_ms) {
            (Some(s), Some(n)) => outln!("  schedule  {s}; next tick {}", when(n)),
            _ => outln!("  schedule  none"),
        }
        for t in &w.triggers {
            outln!("  trigger   {t}");
        }
        outln!("  queue     {} event(s) waiting", w.queued);
        for e in &w.recent {
            let run = e.run_id.as_ref().map(|r| format!(" → run {r}")).unwrap_or_default();
            let outcome = e.outcome.as_ref().map(|o| format!(" ({o})")).unwrap_or_default();
            outln!("  {}  {} [{}]{run}{outcome}", when(e.event.at_ms), describe_event(e), e.state.as_str());
        }
    }
    for i in &st.invalid {
        outln!("\n{}: invalid: {} (dagrun validate lists every problem)", i.path.display(), i.problem);
    }
    let n = &st.notifications;
    if n.undelivered > 0 || n.last_error.is_some() {
        let given_up = if n.given_up > 0 { format!(", {} given up", n.given_up) } else { String::new() };
        let next = n.next_try_ms.map(|t| format!("; next try {}", when(t))).unwrap_or_default();
        outln!(
            "\nnotifications: {} not delivered{given_up}{next} (`dagrun runs --notifications` lists them)",
            n.undelivered
        );
        if let Some(e) = &n.last_error {
            outln!("  last error  {e}");
        }
    }
    Ok(Exit::Success)
}

/// `dagrun trigger`: records the event; a running daemon runs it, else it runs here
/// (`dagrun_automate::trigger::trigger`).
pub fn trigger(
    path: &Path,
    partition: Option<&str>,
    reason: Option<&str>,
    remote: &crate::args::RemoteArgs,
    state: &StateArgs,
) -> Result<Exit, Exit> {
    let mut here = crate::run::here(None, false, false)?;
    crate::run::set_remote_mode(&mut here, remote);
    let progress = crate::run::Printed::new(false);
    let work = dagrun_automate::trigger::trigger(path, partition, reason, state.state_dir.as_deref(), &here, &progress);
    match crate::run::interruptible(&here.cancel, work)? {
        Ok(Triggered::Queued { .. }) => Ok(Exit::Success),
        Ok(Triggered::Ran(r)) => Ok(Exit::of_run(r.status)),
        Err(e) => Err(crate::run::trigger_error(e)),
    }
}
