//! `dagrun cache`, `dagrun models` and `dagrun doctor`: looking after the state directory, the
//! model registry and the machine.

use dagrun_cache::{GcOptions, RunLock, Store, StoreError, VerifyReport};
use dagrun_workflow::duration;

use crate::args::{CacheAction, ModelsAction};
use crate::commands::{error, existing_store, ms};
use crate::exit::Exit;

fn nothing_ran(dir: &std::path::Path) -> Exit {
    println!("no state directory at {}: nothing has run yet", dir.display());
    Exit::Success
}

pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

pub fn cache(action: CacheAction) -> Result<Exit, Exit> {
    match action {
        CacheAction::Push(a) => crate::remote::sync(&a, true),
        CacheAction::Pull(a) => crate::remote::sync(&a, false),
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
        CacheAction::Gc { workflow, max_age, keep_runs, state } => {
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
            let lock = lock(&store)?;
            let r = store.gc(&lock, GcOptions { max_age, keep_runs }).map_err(|e| error(e, Exit::Internal))?;
            println!(
                "removed {} entries, {} objects ({}), {} temp files, {} run records, {} log directories",
                r.entries_removed,
                r.objects_removed,
                bytes(r.bytes_freed),
                r.temp_files_removed,
                r.runs_removed,
                r.logs_removed
            );
            Ok(Exit::Success)
        }
        CacheAction::Verify { workflow, state } => {
            let store = match existing_store(&state, workflow.as_deref())? {
                Ok(store) => store,
                Err(dir) => return Ok(nothing_ran(&dir)),
            };
            let lock = lock(&store)?;
            let r = store.verify(&lock).map_err(|e| error(e, Exit::Internal))?;
            print_verify(&r);
            Ok(if r.is_clean() { Exit::Success } else { Exit::CacheCorrupt })
        }
    }
}

/// The state directory's lock: `gc` and `verify` never run alongside a run (exit 75 if one holds it).
fn lock(store: &Store) -> Result<RunLock, Exit> {
    store.lock().map_err(|e| match e {
        StoreError::Busy { .. } => error(e, Exit::Busy),
        e => error(e, Exit::Internal),
    })
}

fn print_verify(r: &VerifyReport) {
    println!("checked {} objects ({}) and {} entries", r.objects_checked, bytes(r.bytes_checked), r.entries_checked);
    if r.outdated_entries > 0 {
        println!("{} entries of another format version: removed (those tasks run again next time)", r.outdated_entries);
    }
    if r.is_clean() {
        println!("no corruption found");
        return;
    }
    for d in &r.corrupt_objects {
        println!("corrupt object {d}: removed");
    }
    for e in &r.corrupt_entries {
        println!("corrupt cache entry {}: {}: removed", e.file, e.error);
    }
    if r.entries_missing_objects > 0 {
        println!(
            "{} cache entries referred to a missing or corrupt object: removed (those tasks run again next time)",
            r.entries_missing_objects
        );
    }
}

/// `dagrun doctor`: what dagrun found, and how to fix what is missing; with a remote cache
/// configured (`DAGRUN_REMOTE_CACHE`, or `workflow`'s `remote_cache`), whether it works.
pub fn doctor(workflow: Option<&std::path::Path>) -> Exit {
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
    ok &= crate::remote::doctor(workflow);
    if ok { Exit::Success } else { Exit::TaskFailed }
}

/// `dagrun models list|rollback`.
/// An `s3://` registry is synced into a private mirror first; a rollback there is published
/// with a conditional write.
pub fn models(action: ModelsAction) -> Result<Exit, Exit> {
    let (ModelsAction::List { registry } | ModelsAction::Rollback { registry, .. }) = &action;
    let Some(url) = crate::remote_registry::url(registry)? else {
        if let Some(done) = models_in(action, None)? {
            println!("{done}");
        }
        return Ok(Exit::Success);
    };
    let (rt, mirrored) = crate::remote_registry::open_blocking(&url)?;
    let done = models_in(action, Some(mirrored.dir()))?;
    crate::remote_registry::publish(&rt, &mirrored)?;
    if let Some(done) = done {
        println!("{done} (published to {url})");
    }
    Ok(Exit::Success)
}

/// `dagrun models` on a registry directory (`mirror`: the mirror of the remote one given); a
/// rollback returns what it did, to print once it is published.
fn models_in(action: ModelsAction, mirror: Option<&std::path::Path>) -> Result<Option<String>, Exit> {
    use dagrun_cache::registry;
    match action {
        ModelsAction::List { registry: given } => {
            let dir = mirror.map_or(given.clone(), std::path::Path::to_path_buf);
            let names = registry::names(&dir);
            if names.is_empty() {
                println!("no models in {}", given.display());
            }
            for name in names {
                let versions = registry::versions(&dir, &name);
                let shown: Vec<String> = versions
                    .iter()
                    .map(|v| if v.current { format!("*{}", v.version) } else { v.version.clone() })
                    .collect();
                println!("{name}: {}", shown.join(" "));
            }
            Ok(None)
        }
        ModelsAction::Rollback { name, to, registry: given } => {
            let dir = mirror.map_or(given.clone(), std::path::Path::to_path_buf);
            let versions = registry::versions(&dir, &name);
            if versions.is_empty() {
                return Err(error(format!("no model `{name}` in {}", given.display()), Exit::Usage));
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
            check_target(&dir, &name, &target, &versions)?;
            registry::set_current(&dir, &name, &target)
                .map_err(|e| error(format!("cannot roll back `{name}` to {target}: {e}"), Exit::Usage))?;
            Ok(Some(format!("{name}: current is now {target}")))
        }
    }
}

/// A rollback only moves `current` to a version that exists and is intact (its model's bytes are
/// the ones its metadata records): a service following the registry could not serve another.
fn check_target(
    dir: &std::path::Path,
    name: &str,
    target: &str,
    versions: &[dagrun_cache::registry::ModelVersion],
) -> Result<(), Exit> {
    use dagrun_contracts::registry as contract;
    if !versions.iter().any(|v| v.version == target) {
        let known: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
        return Err(error(format!("`{name}` has no version {target}; versions: {}", known.join(", ")), Exit::Usage));
    }
    let model = contract::model_file(dir, name, target);
    let bytes = std::fs::read(&model)
        .map_err(|e| error(format!("cannot roll back `{name}` to {target}: {}: {e}", model.display()), Exit::Usage))?;
    let digest = blake3::hash(&bytes).to_hex().to_string();
    contract::check_version(dir, name, target, &digest)
        .map(drop)
        .map_err(|e| error(format!("cannot roll back `{name}` to {target}: {e}"), Exit::Usage))
}
