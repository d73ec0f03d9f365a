//! The subcommands: each loads what it needs, does its work and returns an [`Exit`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dagrun_cache::{Durability, StatCache, Store};
use dagrun_exec::{Reporter, RunContext, RunOptions, RunRecord, RunStatus, TaskStatus};
use dagrun_plan::{Decision, Force, Instances, KeyContext, PartitionSelection, Selection, TaskGraph};
use dagrun_workflow::{LoadError, Workflow, duration, partition};

use crate::args::{CacheAction, Command, GraphFormat, ModelsAction, PartitionArgs, SelectArgs, StateArgs};
use crate::exit::Exit;
use crate::reporter::{JsonReporter, PlainReporter, ProgressReporter};
use crate::{env, render};

/// Runs one subcommand.
pub fn dispatch(cmd: Command) -> Exit {
    let result = match cmd {
        Command::Run { workflow, jobs, select, partition, json, state } => {
            let psel = partition_selection(&partition);
            run(&workflow, jobs, &select, &psel, false, json, &state)
        }
        Command::Backfill { workflow, from, to, partitions, plan: only_plan, reverse, jobs, select, json, state } => {
            backfill_selection(from.as_deref(), to.as_deref(), &partitions).and_then(|psel| {
                if only_plan {
                    plan(&workflow, &select, &psel, true, json, &state)
                } else {
                    run(&workflow, jobs, &select, &psel, reverse, json, &state)
                }
            })
        }
        Command::Plan { workflow, select, partition, json, state } => {
            plan(&workflow, &select, &partition_selection(&partition), false, json, &state)
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
        Command::Cache { action } => cache(action),
        Command::Plugin { action } => crate::plugin::dispatch(action),
        Command::Doctor => Ok(doctor()),
        Command::Models { action } => models(action),
        Command::Runs { workflow, limit, json, state } => runs(workflow.as_deref(), limit, json, &state),
        Command::Show { run, workflow, json, state } => show(&run, workflow.as_deref(), json, &state),
    };
    result.unwrap_or_else(|e| e)
}

pub(crate) fn error(msg: impl std::fmt::Display, code: Exit) -> Exit {
    eprintln!("error: {msg}");
    code
}

/// Loads and validates a workflow and its graph, printing every problem.
fn load(path: &Path) -> Result<(Workflow, TaskGraph), Exit> {
    let wf = match Workflow::load(path) {
        Ok(wf) => wf,
        Err(LoadError::Invalid(diags)) => {
            eprint!("{}", render::diagnostics(&diags));
            return Err(Exit::InvalidWorkflow);
        }
        Err(e @ LoadError::Io { .. }) => return Err(error(e, Exit::Usage)),
    };
    match TaskGraph::build(&wf) {
        Ok(g) => Ok((wf, g)),
        Err(diags) => {
            eprint!("{}", render::diagnostics(&diags));
            Err(Exit::InvalidWorkflow)
        }
    }
}

fn state_dir(state: &StateArgs, workflow: Option<&Path>) -> PathBuf {
    if let Some(dir) = &state.state_dir {
        return dir.clone();
    }
    let base = workflow
        .and_then(|w| std::path::absolute(w).ok())
        .and_then(|w| w.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join(".dagrun")
}

fn durability() -> Durability {
    if env::is_off(env::FSYNC) { Durability::NoFsync } else { Durability::Fsync }
}

/// Opens (creating if needed) the state directory: for commands that write.
fn open_store(state: &StateArgs, workflow: Option<&Path>) -> Result<Store, Exit> {
    let dir = state_dir(state, workflow);
    Store::open(&dir, durability()).map_err(|e| error(format!("cannot open state directory: {e}"), Exit::Internal))
}

/// Opens the state directory if it exists: read-only commands never create one.
fn existing_store(state: &StateArgs, workflow: Option<&Path>) -> Result<Result<Store, PathBuf>, Exit> {
    let dir = state_dir(state, workflow);
    match Store::open_existing(&dir, durability()) {
        Ok(Some(store)) => Ok(Ok(store)),
        Ok(None) => Ok(Err(dir)),
        Err(e) => Err(error(format!("cannot open state directory: {e}"), Exit::Internal)),
    }
}

fn nothing_ran(dir: &Path) -> Exit {
    println!("no state directory at {}: nothing has run yet", dir.display());
    Exit::Success
}

fn selection(wf: &Workflow, graph: &TaskGraph, s: &SelectArgs) -> Result<Selection, Exit> {
    let force = if s.force.is_empty() {
        Force::None
    } else if s.force.iter().any(String::is_empty) {
        Force::All
    } else {
        Force::Tasks(s.force.clone())
    };
    Selection::new(wf, graph, &s.only, &force).map_err(|e| error(e, Exit::Usage))
}

fn ms(ms: u64) -> String {
    duration::format(Duration::from_millis(ms))
}

/// `--partition KEY`, or the latest complete partitions.
fn partition_selection(p: &PartitionArgs) -> PartitionSelection {
    match &p.partition {
        Some(key) => PartitionSelection::Keys(vec![key.clone()]),
        None => PartitionSelection::Latest { now: now_secs() },
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `--from A --to B` (inclusive: `--to 2025-03-31` includes that whole day) or `--partitions LIST`.
fn backfill_selection(from: Option<&str>, to: Option<&str>, list: &[String]) -> Result<PartitionSelection, Exit> {
    let (Some(from), Some(to)) = (from, to) else {
        return Ok(PartitionSelection::Keys(list.to_vec()));
    };
    let parse = |flag: &str, s: &str| {
        partition::parse_time(s).map_err(|why| error(format!("invalid {flag}: {why}"), Exit::Usage))
    };
    let start = parse("--from", from)?;
    let end_start = parse("--to", to)?;
    // The end of the period `--to` names: an hour, a month or a day.
    let end = if to.contains('T') {
        end_start + 3600
    } else if to.len() == 7 {
        let (y, m, _, _) = partition::civil(end_start);
        let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        partition::days_from_civil(y, m, 1) * 86_400
    } else {
        end_start + 86_400
    };
    if end <= start {
        return Err(error(format!("--to ({to}) is before --from ({from})"), Exit::Usage));
    }
    Ok(PartitionSelection::Range { from: start, to: end - 1 })
}

/// Loads a workflow, resolves `--only`/`--force`, and expands the run's task instances.
fn load_instances(
    path: &Path,
    select: &SelectArgs,
    psel: &PartitionSelection,
) -> Result<(Workflow, Selection, Instances), Exit> {
    let (wf, graph) = load(path)?;
    let selection = selection(&wf, &graph, select)?;
    let instances = Instances::expand(&wf, &graph, &selection, psel).map_err(|e| error(e, Exit::Usage))?;
    Ok((wf, selection, instances))
}

fn run(
    path: &Path,
    jobs: Option<usize>,
    select: &SelectArgs,
    psel: &PartitionSelection,
    reverse: bool,
    json: bool,
    state: &StateArgs,
) -> Result<Exit, Exit> {
    let (wf, selection, instances) = load_instances(path, select, psel)?;
    let store = open_store(state, Some(path))?;
    let _lock = store.lock().map_err(|e| error(e, Exit::Busy))?;
    let stat = StatCache::load(&store);
    let reporter: Arc<dyn Reporter> = if json {
        Arc::new(JsonReporter)
    } else if std::io::stderr().is_terminal() {
        Arc::new(ProgressReporter::new())
    } else {
        Arc::new(PlainReporter)
    };
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let ctx = RunContext {
        workflow: Arc::new(wf),
        instances: Arc::new(instances),
        store: Arc::new(store),
        stat: Arc::new(stat),
        reporter,
    };
    let opts = RunOptions {
        jobs,
        forced: selection.forced,
        reverse,
        verify: select.verify,
        workflow_path: path.display().to_string(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| error(format!("cannot start the runtime: {e}"), Exit::Internal))?;
    let record = runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ndagrun: interrupted: stopping running tasks (press Ctrl-C again to exit at once)");
                let _ = tx.send(true);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(Exit::Interrupted as i32);
                }
            }
        });
        dagrun_exec::run(ctx, opts, rx).await
    });
    let record = record.map_err(|e| error(e, Exit::Internal))?;
    if !json {
        eprint!("{}", summary(&record));
    }
    Ok(match record.status {
        RunStatus::Succeeded => Exit::Success,
        // Only gate refusals: the documented gate-refused code, so a scheduler can tell
        // "a worse model was blocked" from "something broke".
        RunStatus::Failed if record.counts.failed == record.counts.refused => Exit::GateRefused,
        RunStatus::Failed => Exit::TaskFailed,
        RunStatus::Interrupted | RunStatus::Running => Exit::Interrupted,
    })
}

/// The table printed after a run (at most 40 rows; cached tasks go first when cut).
fn summary(r: &RunRecord) -> String {
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
    s.push_str(&format!(
        "\n{}: {} ran, {} cached, {} failed, {} skipped in {}; the cache saved {} of compute (run {})\n",
        match r.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "FAILED",
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

fn plan(
    path: &Path,
    select: &SelectArgs,
    psel: &PartitionSelection,
    by_partition: bool,
    json: bool,
    state: &StateArgs,
) -> Result<Exit, Exit> {
    let (wf, selection, instances) = load_instances(path, select, psel)?;
    let (store, exists) = match existing_store(state, Some(path))? {
        Ok(store) => (store, true),
        Err(dir) => (Store::absent(&dir), false),
    };
    let stat = StatCache::load(&store);
    let plugins = built_plugins(&wf, &store);
    let ctx = KeyContext { workflow: &wf, stat: &stat, verify: select.verify, plugins: &plugins };
    let planned = dagrun_plan::plan(&instances, &selection.forced, &store, &ctx);
    if exists {
        let _ = stat.save(&store);
    }
    let code = if planned.iter().any(|p| matches!(p.decision, Decision::Error { .. })) {
        Exit::TaskFailed
    } else {
        Exit::Success
    };
    if json {
        for p in &planned {
            println!("{}", serde_json::to_string(p).expect("serializes"));
        }
        return Ok(code);
    }
    if by_partition {
        print_partition_plan(&wf, &instances, &planned);
        return Ok(code);
    }
    let to_run = planned.iter().filter(|p| matches!(p.decision, Decision::Run { .. })).count();
    let cached = planned.iter().filter(|p| matches!(p.decision, Decision::Cached { .. })).count();
    let errors = planned.len() - to_run - cached;
    println!(
        "plan for `{}`: {} task(s): {to_run} to run, {cached} cached{}",
        wf.name,
        planned.len(),
        if errors > 0 { format!(", {errors} cannot run") } else { String::new() }
    );
    let width = planned.iter().map(|p| p.task.len()).max().unwrap_or(0);
    for p in &planned {
        match &p.decision {
            Decision::Cached { .. } => println!("  cached  {}", p.task),
            Decision::Run { reasons, .. } => println!("  run     {:width$}  {}", p.task, reasons.join("; ")),
            Decision::Error { message } => println!("  error   {:width$}  {message}", p.task),
        }
    }
    Ok(code)
}

/// `backfill --plan`: one line per partition (cached, or run with each task's reason).
fn print_partition_plan(wf: &Workflow, instances: &Instances, planned: &[dagrun_plan::PlannedTask]) {
    let partition_of: std::collections::HashMap<&str, Option<&str>> =
        instances.nodes.iter().map(|n| (n.name.as_str(), n.partition.as_ref().map(|p| p.key.as_str()))).collect();
    let keys = instances.partition_keys();
    let mut by_key: std::collections::HashMap<&str, Vec<&dagrun_plan::PlannedTask>> = std::collections::HashMap::new();
    let mut unpartitioned = Vec::new();
    for p in planned {
        match partition_of.get(p.task.as_str()).copied().flatten() {
            Some(k) => by_key.entry(k).or_default().push(p),
            None => unpartitioned.push(p),
        }
    }
    let reason = |p: &dagrun_plan::PlannedTask| {
        let task = p.task.split('@').next().unwrap_or(&p.task).to_owned();
        match &p.decision {
            Decision::Cached { .. } => None,
            Decision::Run { reasons, .. } => Some(format!("{task}: {}", reasons.join(", "))),
            Decision::Error { message } => Some(format!("{task}: cannot run: {message}")),
        }
    };
    let misses = keys.iter().filter(|k| by_key[k.as_str()].iter().any(|p| reason(p).is_some())).count();
    println!(
        "backfill plan for `{}`: {} partitions: {misses} to run, {} cached",
        wf.name,
        keys.len(),
        keys.len() - misses
    );
    for k in &keys {
        let reasons: Vec<String> = by_key[k.as_str()].iter().filter_map(|p| reason(p)).collect();
        if reasons.is_empty() {
            println!("  cached  {k}");
        } else {
            println!("  run     {k}  {}", reasons.join("; "));
        }
    }
    for p in unpartitioned {
        match reason(p) {
            None => println!("  cached  {} (not partitioned)", p.task),
            Some(r) => println!("  run     {r} (not partitioned)"),
        }
    }
}

/// Plugin crates whose last build is still current (plan never builds).
fn built_plugins(wf: &Workflow, store: &Store) -> std::collections::HashMap<String, PathBuf> {
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

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn cache(action: CacheAction) -> Result<Exit, Exit> {
    match action {
        CacheAction::Ls { workflow, json, state } => {
            let store = match existing_store(&state, workflow.as_deref())? {
                Ok(store) => store,
                Err(dir) => return Ok(nothing_ran(&dir)),
            };
            let entries = store.list().map_err(|e| error(e, Exit::Internal))?;
            if json {
                for e in &entries {
                    println!("{}", serde_json::to_string(e).expect("serializes"));
                }
                return Ok(Exit::Success);
            }
            let width = entries.iter().map(|e| e.task.len()).max().unwrap_or(4).max(4);
            println!("{:12}  {:width$}  {:>7}  {:>10}  {:>8}", "key", "task", "outputs", "size", "ran for");
            for e in &entries {
                println!(
                    "{:12}  {:width$}  {:>7}  {:>10}  {:>8}",
                    e.key.0.short(),
                    e.task,
                    e.outputs,
                    bytes(e.bytes),
                    ms(e.duration_ms)
                );
            }
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            println!("{} entries, {} of outputs, in {}", entries.len(), bytes(total), store.root().display());
            Ok(Exit::Success)
        }
        CacheAction::Gc { workflow, max_age, state } => {
            let max_age = match max_age {
                Some(s) => Some(duration::parse(&s).map_err(|why| {
                    error(format!("invalid --max-age `{s}`: {why} (write e.g. \"30d\" or \"12h\")"), Exit::Usage)
                })?),
                None => None,
            };
            let store = match existing_store(&state, workflow.as_deref())? {
                Ok(store) => store,
                Err(dir) => return Ok(nothing_ran(&dir)),
            };
            let r = store.gc(max_age).map_err(|e| error(e, Exit::Internal))?;
            println!(
                "removed {} entries, {} objects ({}), {} temp files",
                r.entries_removed,
                r.objects_removed,
                bytes(r.bytes_freed),
                r.temp_files_removed
            );
            Ok(Exit::Success)
        }
        CacheAction::Verify { workflow, state } => {
            let store = match existing_store(&state, workflow.as_deref())? {
                Ok(store) => store,
                Err(dir) => return Ok(nothing_ran(&dir)),
            };
            let r = store.verify().map_err(|e| error(e, Exit::Internal))?;
            println!("checked {} objects ({})", r.objects_checked, bytes(r.bytes_checked));
            if r.is_clean() {
                println!("no corruption found");
                return Ok(Exit::Success);
            }
            for d in &r.corrupt_objects {
                println!("corrupt object {d}: removed");
            }
            if r.unreadable_entries > 0 {
                println!("{} unreadable entries: removed", r.unreadable_entries);
            }
            println!(
                "{} cache entries referred to a missing or corrupt object: removed (those tasks run again next time)",
                r.entries_missing_objects
            );
            Ok(Exit::CacheCorrupt)
        }
    }
}

fn runs(workflow: Option<&Path>, limit: usize, json: bool, state: &StateArgs) -> Result<Exit, Exit> {
    let store = match existing_store(state, workflow)? {
        Ok(store) => store,
        Err(dir) => {
            if !json {
                println!("no runs recorded: no state directory at {}", dir.display());
            }
            return Ok(Exit::Success);
        }
    };
    let records = RunRecord::list(&store, limit);
    if json {
        for r in &records {
            println!("{}", serde_json::to_string(r).expect("serializes"));
        }
        return Ok(Exit::Success);
    }
    if records.is_empty() {
        println!("no runs recorded in {}", store.root().display());
        return Ok(Exit::Success);
    }
    println!(
        "{:21}  {:11}  {:>5}  {:>6}  {:>6}  {:>6}  {:>8}  {:>8}",
        "run", "status", "tasks", "ran", "cached", "failed", "time", "saved"
    );
    for r in &records {
        let took = r.finished_ms.map_or("-".to_owned(), |f| ms(f.saturating_sub(r.started_ms)));
        println!(
            "{:21}  {:11}  {:>5}  {:>6}  {:>6}  {:>6}  {:>8}  {:>8}",
            r.id,
            status_name(r.status),
            r.counts.total(),
            r.counts.succeeded,
            r.counts.cached,
            r.counts.failed,
            took,
            ms(r.saved_ms)
        );
    }
    Ok(Exit::Success)
}

fn status_name(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "running?",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Interrupted => "interrupted",
    }
}

fn show(query: &str, workflow: Option<&Path>, json: bool, state: &StateArgs) -> Result<Exit, Exit> {
    let store = match existing_store(state, workflow)? {
        Ok(store) => store,
        Err(dir) => {
            return Err(error(format!("no runs recorded yet (no state directory at {})", dir.display()), Exit::Usage));
        }
    };
    let r = RunRecord::find(&store, query).map_err(|e| error(e, Exit::Usage))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r).expect("serializes"));
        return Ok(Exit::Success);
    }
    println!("run {} of `{}` ({}): {}", r.id, r.workflow_name, r.workflow, status_name(r.status));
    let width = r.tasks.iter().map(|t| t.task.len()).max().unwrap_or(4).max(4);
    println!("{:width$}  {:9}  {:>8}  {:12}  note", "task", "status", "time", "key");
    for t in &r.tasks {
        let key = t.key.as_deref().map_or("-", |k| &k[..12]);
        let note = match (&t.error, t.status) {
            (Some(e), _) => e.lines().next().unwrap_or("").to_owned(),
            (None, TaskStatus::Cached) => format!("saved {}", ms(t.saved_ms)),
            (None, _) => String::new(),
        };
        println!("{:width$}  {:9}  {:>8}  {key:12}  {note}", t.task, t.status.as_str(), ms(t.duration_ms));
    }
    let c = r.counts;
    println!(
        "{} ran, {} cached, {} failed, {} skipped; the cache saved {}",
        c.succeeded,
        c.cached,
        c.failed,
        c.skipped,
        ms(r.saved_ms)
    );
    Ok(Exit::Success)
}

/// `dagrun doctor`: what dagrun found, and how to fix what is missing.
fn doctor() -> Exit {
    let mut ok = true;
    match dagrun_onnx::discover() {
        Ok(rt) => println!("ok       ONNX Runtime {} ({})", rt.version, rt.path.display()),
        Err(e) => {
            ok = false;
            println!("missing  ONNX Runtime: {e}");
        }
    }
    let cargo = std::process::Command::new("cargo").arg("--version").output();
    match cargo {
        Ok(o) if o.status.success() => println!("ok       {}", String::from_utf8_lossy(&o.stdout).trim()),
        _ => {
            ok = false;
            println!("missing  cargo: plugin crates cannot be built; install Rust from https://rustup.rs");
        }
    }
    let targets = std::process::Command::new("rustup").args(["target", "list", "--installed"]).output();
    match targets {
        Ok(o) if String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") => {
            println!("ok       wasm32-wasip2 target installed");
        }
        _ => {
            ok = false;
            println!("missing  wasm32-wasip2 target: run `rustup target add wasm32-wasip2`");
        }
    }
    match dagrun_wasm::compiled_cache_dir() {
        Some(d) => println!("ok       compiled plugin cache: {}", d.display()),
        None => {
            println!("note     no user cache directory (HOME unset): compiled plugins are cached per state directory")
        }
    }
    if ok { Exit::Success } else { Exit::TaskFailed }
}

/// `dagrun models list|rollback`.
fn models(action: ModelsAction) -> Result<Exit, Exit> {
    use dagrun_cache::registry;
    match action {
        ModelsAction::List { registry: dir } => {
            let names = registry::names(&dir);
            if names.is_empty() {
                println!("no models in {}", dir.display());
            }
            for name in names {
                let versions = registry::versions(&dir, &name);
                let shown: Vec<String> = versions
                    .iter()
                    .map(|v| if v.current { format!("*{}", v.version) } else { v.version.clone() })
                    .collect();
                println!("{name}: {}", shown.join(" "));
            }
            Ok(Exit::Success)
        }
        ModelsAction::Rollback { name, to, registry: dir } => {
            let versions = registry::versions(&dir, &name);
            if versions.is_empty() {
                return Err(error(format!("no model `{name}` in {}", dir.display()), Exit::Usage));
            }
            let target = match to {
                Some(v) => v,
                None => {
                    let cur = versions.iter().position(|v| v.current).ok_or_else(|| {
                        error(format!("model `{name}` has no current version; pass --to VERSION"), Exit::Usage)
                    })?;
                    if cur == 0 {
                        return Err(error(
                            format!(
                                "{} is the first version of `{name}`: nothing to roll back to",
                                versions[0].version
                            ),
                            Exit::Usage,
                        ));
                    }
                    versions[cur - 1].version.clone()
                }
            };
            registry::set_current(&dir, &name, &target)
                .map_err(|e| error(format!("cannot roll back `{name}` to {target}: {e}"), Exit::Usage))?;
            println!("{name}: current is now {target}");
            Ok(Exit::Success)
        }
    }
}
