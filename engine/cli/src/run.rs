//! `dagrun run`, `backfill` and `plan`: build a run request from the flags, call the engine,
//! render its events and record.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dagrun_automate::trigger::{Here, Progress, Step, TriggerError};
use dagrun_cache::{StatCache, Store};
use dagrun_exec::{Cancel, Engine, PrepareError, RunOptions, RunPlan, RunRecord, RunRequest, RunStatus, TaskStatus};
use dagrun_plan::{Decision, Force, KeyContext, PartitionError, PartitionSelection, PlannedTask, Shard};
use dagrun_workflow::{Workflow, partition};

use crate::args::{BackfillArgs, PartitionArgs, RemoteArgs, SelectArgs, StateArgs};
use crate::commands::{
    Interrupts, default_jobs, durability, error, existing_store, ms, now_secs, prepare_error, runtime, state_dir,
};
use crate::exit::Exit;
use crate::printer::{errln, outln};
use crate::reporter::{JsonReporter, PlainReporter, ProgressReporter, left_out_line};

/// `--partition KEY`, or the latest complete partitions.
pub fn partition_selection(p: &PartitionArgs) -> PartitionSelection {
    match &p.partition {
        Some(key) => PartitionSelection::Keys(vec![key.clone()]),
        None => PartitionSelection::Latest,
    }
}

fn request(s: &SelectArgs, partitions: PartitionSelection, shard: Option<Shard>) -> RunRequest {
    let force = if s.force.is_empty() {
        Force::None
    } else if s.force.iter().any(String::is_empty) {
        Force::All
    } else {
        Force::Tasks(s.force.clone())
    };
    RunRequest { only: s.only.clone(), force, partitions, shard, now: now_secs() }
}

/// `dagrun run`.
pub fn run(
    path: &Path,
    jobs: Option<usize>,
    select: &SelectArgs,
    psel: PartitionSelection,
    json: bool,
    remote: &RemoteArgs,
    state: &StateArgs,
) -> Result<Exit, Exit> {
    let early = Early::start(state, path);
    let plan = dagrun_exec::prepare(path, &request(select, psel, None)).map_err(prepare_error)?;
    execute(plan, Knobs { jobs, verify: select.verify, reverse: false, json }, remote, state, early)
}

/// The engine opened on another thread while the workflow is read, with its first reads of the
/// state directory under way ([`Engine::preload`]); only for a state directory that exists and
/// needs nothing created or migrated ([`Engine::open_existing`]): nothing is written before
/// the workflow proved valid (but SQLite's shared-memory index). Joined when dropped.
struct Early(Option<std::thread::JoinHandle<Option<Engine>>>);

impl Early {
    fn start(state: &StateArgs, workflow: &Path) -> Early {
        let dir = state_dir(state, Some(workflow));
        if !dir.join("layout").is_file() {
            return Early(None);
        }
        let durability = durability();
        let open = move || {
            let engine = Engine::open_existing(&dir, durability)?;
            engine.preload();
            Some(engine)
        };
        Early(std::thread::Builder::new().name("dagrun-open".into()).spawn(open).ok())
    }

    /// The engine, when it opened.
    fn take(mut self) -> Option<Engine> {
        self.0.take()?.join().ok().flatten()
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        if let Some(opening) = self.0.take() {
            let _ = opening.join();
        }
    }
}

/// How `run` and `backfill` run, from their flags.
struct Knobs {
    jobs: Option<usize>,
    verify: bool,
    reverse: bool,
    json: bool,
}

/// `dagrun backfill`: a range or list of partitions (or one shard of them), run or (`--plan`)
/// explained per partition.
pub fn backfill(a: &BackfillArgs) -> Result<Exit, Exit> {
    let psel = backfill_selection(a.from.as_deref(), a.to.as_deref(), &a.partitions)?;
    let early = if a.plan { Early(None) } else { Early::start(&a.state, &a.workflow) };
    let plan = match dagrun_exec::prepare(&a.workflow, &request(&a.select, psel, a.shard)) {
        // A CI matrix job whose shard got no partition has nothing to do: that is no failure.
        Err(PrepareError::Partition(e @ PartitionError::EmptyShard { .. })) => {
            errln!("note: {e}: nothing to do");
            return Ok(Exit::Success);
        }
        plan => plan.map_err(prepare_error)?,
    };
    check_partitioned(&plan, &a.workflow)?;
    if a.plan {
        return show_plan(&plan, a.select.verify, true, a.json, &a.state);
    }
    let knobs = Knobs { jobs: a.jobs, verify: a.select.verify, reverse: a.reverse, json: a.json };
    execute(plan, knobs, &a.remote, &a.state, early)
}

/// A backfill needs a partitioned task.
pub(crate) fn check_partitioned(plan: &RunPlan, path: &Path) -> Result<(), Exit> {
    if plan.workflow.tasks.iter().all(|t| t.partitioned.is_none()) {
        return Err(error(
            format!(
                "`{}` has no partitioned task: there is nothing to backfill (run it with `dagrun run {}`)",
                plan.workflow.name,
                path.display()
            ),
            Exit::Usage,
        ));
    }
    Ok(())
}

/// `dagrun plan`.
pub fn plan(
    path: &Path,
    select: &SelectArgs,
    psel: PartitionSelection,
    by_partition: bool,
    json: bool,
    state: &StateArgs,
) -> Result<Exit, Exit> {
    let plan = dagrun_exec::prepare(path, &request(select, psel, None)).map_err(prepare_error)?;
    show_plan(&plan, select.verify, by_partition, json, state)
}

/// `--from A --to B` (inclusive: `--to 2025-03-31` includes that whole day) or `--partitions LIST`.
pub(crate) fn backfill_selection(
    from: Option<&str>,
    to: Option<&str>,
    list: &[String],
) -> Result<PartitionSelection, Exit> {
    let (Some(from), Some(to)) = (from, to) else {
        return Ok(PartitionSelection::Keys(list.to_vec()));
    };
    let parse = |flag: &str, s: &str| {
        partition::parse_time(s).map_err(|why| error(format!("invalid {flag}: {why}"), Exit::Usage))
    };
    let start = parse("--from", from)?;
    // The end of the period `--to` names: an hour, a day or a month.
    let end = partition::parse_period_end(to).map_err(|why| error(format!("invalid --to: {why}"), Exit::Usage))?;
    if end <= start {
        return Err(error(format!("--to ({to}) is before --from ({from})"), Exit::Usage));
    }
    Ok(PartitionSelection::Range { from: start, to: end - 1 })
}

/// Runs a prepared plan on the engine, with Ctrl-C wired to its cancel handle. The plan and
/// the record are not freed: the process ends next (freeing 10,000 tasks' worth of small
/// allocations one by one took 6% of a cached re-run).
fn execute(plan: RunPlan, knobs: Knobs, remote: &RemoteArgs, state: &StateArgs, early: Early) -> Result<Exit, Exit> {
    let mut here = here(knobs.jobs, knobs.reverse, knobs.verify)?;
    set_remote_mode(&mut here, remote);
    let dir = state_dir(state, Some(&plan.path));
    let progress = Printed::new(knobs.json);
    let record = match early.take() {
        Some(engine) => {
            interruptible(&here.cancel, dagrun_automate::trigger::run_on(&engine, &plan, &here, &progress))?
        }
        None => interruptible(&here.cancel, dagrun_automate::trigger::run_here(&plan, &dir, &here, &progress))?,
    };
    let exit = record
        .map(|r| {
            let exit = Exit::of_run(r.status);
            std::mem::forget(r);
            exit
        })
        .map_err(trigger_error);
    std::mem::forget(plan);
    exit
}

/// How a run here runs: `-j`, `--reverse`, `--verify`, the log cap, the notification budget and
/// the remote cache from the environment, a fresh cancel handle.
pub(crate) fn here(jobs: Option<usize>, reverse: bool, verify: bool) -> Result<Here, Exit> {
    let options = RunOptions {
        jobs: default_jobs(jobs),
        reverse,
        verify,
        log_bytes: crate::env::log_max()?,
        run_id: None,
        remote: crate::env::remote_cache()?,
        remote_bin: crate::env::remote_bin(),
    };
    Ok(Here { options, durability: durability(), notify_budget: crate::env::notify_budget()?, cancel: Cancel::new() })
}

/// `--remote-cache MODE` over `DAGRUN_REMOTE_CACHE_MODE`.
pub(crate) fn set_remote_mode(here: &mut Here, remote: &RemoteArgs) {
    if let Some(mode) = remote.remote_cache {
        here.options.remote.mode = Some(mode.engine());
    }
}

/// Runs `work` (a run here, or what resumes one) on a new runtime, Ctrl-C and SIGTERM wired to
/// `cancel`: the first stops the running tasks cleanly, the second abandons them (and exits
/// after 3 s should the engine not return).
pub(crate) fn interruptible<T>(cancel: &Cancel, work: impl std::future::Future<Output = T>) -> Result<T, Exit> {
    let runtime = runtime()?;
    let out = runtime.block_on(async {
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            // Ctrl-C, or SIGTERM (`timeout`, `kill`, a CI runner cancelling a job): the same.
            let Some(mut interrupt) = Interrupts::new() else { return };
            if interrupt.next().await {
                errln!("\ndagrun: interrupted: stopping running tasks (press Ctrl-C again to exit at once)");
                on_signal.cancel();
                if interrupt.next().await {
                    errln!("dagrun: interrupted again: abandoning running tasks");
                    // The engine closes the record and removes staging, then returns; should it
                    // not within 3 s, exit anyway.
                    on_signal.abandon();
                    std::thread::spawn(|| {
                        std::thread::sleep(std::time::Duration::from_secs(3));
                        crate::printer::flush_out();
                        std::process::exit(Exit::Interrupted as i32);
                    });
                }
            }
        });
        work.await
    });
    if cancel.is_abandoned() {
        // Abandoned plugin threads may still be running: do not wait for them.
        runtime.shutdown_background();
    }
    Ok(out)
}

/// The exit of a run (or trigger) that could not happen, its reason printed.
pub(crate) fn trigger_error(e: TriggerError) -> Exit {
    match e {
        TriggerError::Prepare(e) => prepare_error(e),
        e @ TriggerError::Usage(_) => error(e, Exit::Usage),
        e @ (TriggerError::Log(_) | TriggerError::Open(_)) => error(e, Exit::Internal),
        TriggerError::Run(e) => error(&e, Exit::of_run_error(&e)),
    }
}

/// Prints what a run here, `dagrun trigger` and `dagrun approve` report: a run's events through
/// the reporter for the terminal (or JSON), the table of its tasks after it, the line about the
/// notifications left undelivered; other steps one line each, the outcome on stdout and notes
/// on stderr.
pub(crate) struct Printed {
    reporter: Arc<dyn dagrun_exec::Reporter>,
    json: bool,
}

impl Printed {
    pub(crate) fn new(json: bool) -> Printed {
        let reporter: Arc<dyn dagrun_exec::Reporter> = if json {
            Arc::new(JsonReporter)
        } else if std::io::stderr().is_terminal() {
            Arc::new(ProgressReporter::new())
        } else {
            Arc::new(PlainReporter)
        };
        Printed { reporter, json }
    }
}

impl Progress for Printed {
    fn step(&self, step: Step<'_>) {
        match step {
            Step::RunFinished(r) if !self.json => crate::printer::err(format_args!("{}", summary(r))),
            Step::Notifications(s) => {
                if let Some(line) = crate::notifications::summary_line(s) {
                    errln!("{line}");
                }
            }
            s => match s.line() {
                Some(line) if s.is_note() => errln!("{line}"),
                Some(line) => outln!("{line}"),
                None => {}
            },
        }
    }

    fn reporter(&self) -> Arc<dyn dagrun_exec::Reporter> {
        self.reporter.clone()
    }
}

/// The table printed after a run (at most 40 rows; cached tasks go first when cut).
pub(crate) fn summary(r: &RunRecord) -> String {
    const MAX_ROWS: usize = 40;
    let mut rows: Vec<_> = r.tasks.iter().collect();
    let hidden = rows.len().saturating_sub(MAX_ROWS);
    if hidden > 0 {
        rows.sort_by_key(|t| t.status == TaskStatus::Cached);
        rows.truncate(MAX_ROWS);
    }
    let width = rows.iter().map(|t| t.task.len()).max().unwrap_or(4).max(4);
    let mut s = format!("\n{:width$}  {:9}  {:>8}  {}\n", "task", "status", "time", "cache");
    for t in rows {
        let cache = match t.status {
            TaskStatus::Cached => format!("hit (saved {})", ms(t.saved_ms)),
            TaskStatus::Succeeded => "ran".to_owned(),
            _ => "-".to_owned(),
        };
        s.push_str(&format!("{:width$}  {:9}  {:>8}  {cache}\n", t.task, t.status.as_str(), ms(t.duration_ms)));
    }
    if hidden > 0 {
        s.push_str(&format!("… {hidden} more (see `dagrun show {}`)\n", r.id));
    }
    let c = r.counts;
    let took = r.finished_ms.unwrap_or(r.started_ms).saturating_sub(r.started_ms);
    let mut refused = if c.refused > 0 { format!(", {} refused", c.refused) } else { String::new() };
    if c.alerted > 0 {
        refused.push_str(&format!(", {} alerted", c.alerted));
    }
    if c.held > 0 {
        refused.push_str(&format!(", {} held", c.held));
    }
    if c.waiting > 0 {
        refused.push_str(&format!(", {} waiting for approval", c.waiting));
    }
    s.push_str(&format!(
        "\n{}: {} ran, {} cached, {} failed{refused}, {} skipped in {}; the cache saved {} of compute (run {})\n",
        match r.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "FAILED",
            RunStatus::Refused => "REFUSED (a gate refused a model; nothing else failed)",
            RunStatus::Alerted => "ALERT (a monitoring check found drift or a regression; nothing else failed)",
            RunStatus::Waiting => "WAITING for approval (the run is parked: `dagrun approvals` lists it)",
            _ => "interrupted",
        },
        c.succeeded,
        c.cached,
        c.failed,
        c.skipped,
        ms(took),
        ms(r.saved_ms),
        r.id
    ));
    s
}

/// `plan --json`'s line for a task a partial run leaves out.
#[derive(serde::Serialize)]
struct LeftOut<'a> {
    task: &'a str,
    status: &'static str,
    reason: &'a str,
}

/// Prints what a run would do, per task or (`backfill --plan`) per partition.
fn show_plan(plan: &RunPlan, verify: bool, by_partition: bool, json: bool, state: &StateArgs) -> Result<Exit, Exit> {
    let wf = &plan.workflow;
    let (store, exists) = match existing_store(state, Some(&plan.path))? {
        Ok(store) => (store, true),
        Err(dir) => (Store::absent(&dir), false),
    };
    let stat = StatCache::load(&store);
    let plugins = built_plugins(wf, &store);
    let ctx = KeyContext { verify, ..KeyContext::new(wf, &stat, &plugins) };
    let planned = dagrun_plan::plan(&plan.instances, &plan.selection.forced, &store, &ctx);
    if exists {
        let _ = stat.save(&store);
    }
    let code = if planned.iter().any(|p| matches!(p.decision, Decision::Error { .. })) {
        Exit::TaskFailed
    } else {
        Exit::Success
    };
    let left_out = plan.left_out();
    let reason = plan.left_out_reason().unwrap_or_default();
    if json {
        for p in &planned {
            outln!("{}", serde_json::to_string(p).expect("serializes"));
        }
        for task in &left_out {
            let line = LeftOut { task, status: "left_out", reason: &reason };
            outln!("{}", serde_json::to_string(&line).expect("serializes"));
        }
        return Ok(code);
    }
    if by_partition {
        print_partition_plan(wf, plan, &planned);
    } else {
        print_task_plan(wf, &planned);
    }
    if !left_out.is_empty() {
        outln!("{}", left_out_line(&left_out, &reason));
    }
    Ok(code)
}

fn print_task_plan(wf: &Workflow, planned: &[PlannedTask]) {
    let to_run = planned.iter().filter(|p| matches!(p.decision, Decision::Run { .. })).count();
    let cached = planned.iter().filter(|p| matches!(p.decision, Decision::Cached { .. })).count();
    let errors = planned.len() - to_run - cached;
    outln!(
        "plan for `{}`: {} task(s): {to_run} to run, {cached} cached{}",
        wf.name,
        planned.len(),
        if errors > 0 { format!(", {errors} cannot run") } else { String::new() }
    );
    let width = planned.iter().map(|p| p.task.len()).max().unwrap_or(0);
    for p in planned {
        match &p.decision {
            Decision::Cached { .. } => outln!("  cached  {}", p.task),
            Decision::Run { reasons, .. } => outln!("  run     {:width$}  {}", p.task, reasons.join("; ")),
            Decision::Error { message } => outln!("  error   {:width$}  {message}", p.task),
        }
    }
}

/// `backfill --plan`: one line per partition (cached, or run with each task's reason).
fn print_partition_plan(wf: &Workflow, plan: &RunPlan, planned: &[PlannedTask]) {
    let instances = &plan.instances;
    let partition_of: HashMap<&str, Option<&str>> =
        instances.nodes.iter().map(|n| (n.name.as_str(), n.partition.as_ref().map(|p| p.key.as_str()))).collect();
    let keys = instances.partition_keys();
    let mut by_key: HashMap<&str, Vec<&PlannedTask>> = HashMap::new();
    let mut unpartitioned = Vec::new();
    for p in planned {
        match partition_of.get(p.task.as_str()).copied().flatten() {
            Some(k) => by_key.entry(k).or_default().push(p),
            None => unpartitioned.push(p),
        }
    }
    let reason = |p: &PlannedTask| {
        let task = p.task.split('@').next().unwrap_or(&p.task).to_owned();
        match &p.decision {
            Decision::Cached { .. } => None,
            Decision::Run { reasons, .. } => Some(format!("{task}: {}", reasons.join(", "))),
            Decision::Error { message } => Some(format!("{task}: cannot run: {message}")),
        }
    };
    let misses = keys.iter().filter(|k| by_key[k.as_str()].iter().any(|p| reason(p).is_some())).count();
    outln!(
        "backfill plan for `{}`: {} partitions: {misses} to run, {} cached",
        wf.name,
        keys.len(),
        keys.len() - misses
    );
    for k in &keys {
        let reasons: Vec<String> = by_key[k.as_str()].iter().filter_map(|p| reason(p)).collect();
        if reasons.is_empty() {
            outln!("  cached  {k}");
        } else {
            outln!("  run     {k}  {}", reasons.join("; "));
        }
    }
    for p in unpartitioned {
        match reason(p) {
            None => outln!("  cached  {} (not partitioned)", p.task),
            Some(r) => outln!("  run     {r} (not partitioned)"),
        }
    }
}

/// Plugin crates whose last build is still current (plan never builds).
fn built_plugins(wf: &Workflow, store: &Store) -> HashMap<String, PathBuf> {
    wf.tasks
        .iter()
        .filter_map(|t| match &t.kind {
            dagrun_workflow::TaskKind::Wasm(w) => Some(&w.plugin),
            _ => None,
        })
        .filter_map(|p| match dagrun_wasm::plugin_source(p, &wf.dir) {
            dagrun_wasm::PluginSource::Crate(dir) => {
                dagrun_wasm::built_plugin(&dir, &store.root().join("plugins")).map(|w| (p.clone(), w))
            }
            dagrun_wasm::PluginSource::Wasm(_) => None,
        })
        .collect()
}
