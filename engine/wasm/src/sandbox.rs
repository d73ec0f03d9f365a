//! One plugin run in a fresh sandbox: staged read-only inputs, a read-write output directory,
//! no network, no environment, a memory cap and an epoch deadline.

use std::fs;
use std::path::{Component as PathComponent, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{Context, Level, NamedPath, TaskError, dagrun};
use crate::capture::{CAPTURE_BYTES, CappedLog, CappedPipe, MAX_ERROR_BYTES, bound_summary, truncate_text};
use crate::error::PluginError;
use crate::host::{LoadedPlugin, PluginHost};
use crate::interrupt::Stop;

/// Resource limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum linear memory, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock deadline.
    pub deadline: Duration,
    /// Cap of the task's log file, in bytes (see [`crate::DEFAULT_LOG_BYTES`]).
    pub log_bytes: u64,
}

/// A named input: a file or a directory of files on the host.
#[derive(Debug, Clone)]
pub struct InputMount {
    /// Input name.
    pub name: String,
    /// Host files (one for `File`/`Output` inputs, several for `Glob`).
    pub files: Vec<PathBuf>,
    /// Whether the plugin sees a directory (Glob) or a single file.
    pub directory: bool,
}

/// An extra host directory granted by the workflow.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Name (guest path `/mnt/<name>`).
    pub name: String,
    /// Host directory.
    pub host: PathBuf,
    /// Whether the plugin may write there.
    pub writable: bool,
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct PluginRun {
    /// Task name.
    pub task: String,
    /// Run id.
    pub run_id: String,
    /// Partition key.
    pub partition: Option<String>,
    /// Params (JSON object).
    pub params_json: String,
    /// Inputs.
    pub inputs: Vec<InputMount>,
    /// Extra directories.
    pub mounts: Vec<Mount>,
    /// A fresh, empty host directory used for staging inputs and collecting outputs.
    pub stage_dir: PathBuf,
    /// The task's log file (guest stdout/stderr and `log` calls are appended).
    pub log: PathBuf,
    /// Limits.
    pub limits: Limits,
    /// Set to stop the run (Ctrl-C); checked every epoch tick.
    pub cancel: Arc<AtomicBool>,
}

/// A successful run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The plugin's summary (JSON).
    pub summary_json: String,
    /// Artifacts: name → host path of the file (inside the stage's output directory).
    pub artifacts: Vec<(String, PathBuf)>,
}

/// Store data of one run.
pub(crate) struct State {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    memory_limit: u64,
    pub(crate) memory_denied: Option<u64>,
    pub(crate) panic: Option<(String, String, u32)>,
    pub(crate) cancelled: bool,
    /// When blocking host calls must give up (none for `describe`).
    pub(crate) stop: Option<Stop>,
    log: Option<CappedLog>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl ResourceLimiter for State {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_limit {
            self.memory_denied = Some(desired as u64);
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl dagrun::task::host::Host for State {
    fn log(&mut self, level: Level, message: String) {
        let tag = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        if let Some(f) = &mut self.log {
            f.write(format!("[{tag}] {message}\n").as_bytes());
        }
    }

    fn progress(&mut self, done: u64, total: u64, message: String) {
        if let Some(f) = &mut self.log {
            let line = if total > 0 {
                format!("[progress] {done}/{total} {message}\n")
            } else {
                format!("[progress] {done} {message}\n")
            };
            f.write(line.as_bytes());
        }
    }

    fn report_panic(&mut self, message: String, file: String, line: u32) {
        // Bounded where it enters: a 100 MiB panic message is cut before it is kept.
        self.panic = Some((truncate_text(message, MAX_ERROR_BYTES), truncate_text(file, 4096), line));
    }
}

impl dagrun::task::types::Host for State {}

/// A store with no preopens, for `describe`.
pub(crate) fn bare_store(host: &PluginHost) -> Result<Store<State>, PluginError> {
    let wasi = WasiCtxBuilder::new().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
    let state = State {
        wasi,
        table: ResourceTable::new(),
        memory_limit: 256 << 20,
        memory_denied: None,
        panic: None,
        cancelled: false,
        stop: None,
        log: None,
    };
    let mut store = Store::new(&host.engine, state);
    store.limiter(|s| s as &mut dyn ResourceLimiter);
    Ok(store)
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PluginError {
    let context = context.into();
    move |source| PluginError::Io { context, source }
}

/// Links (or copies) a host file into the stage; the guest only ever sees the stage. Never
/// writes to an existing path: a hard link there would lead back to a user's file.
fn stage_file(src: &Path, dest: &Path) -> std::io::Result<()> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir)?;
    }
    if dest.symlink_metadata().is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} is staged twice", dest.display()),
        ));
    }
    if fs::hard_link(src, dest).is_err() {
        let mut out = fs::OpenOptions::new().write(true).create_new(true).open(dest)?;
        std::io::copy(&mut fs::File::open(src)?, &mut out)?;
    }
    Ok(())
}

/// Where each file of a directory input goes inside `/in/<name>/`: its path relative to the
/// files' common ancestor, so `data/a/x.csv` and `data/b/x.csv` stay apart as `a/x.csv`, `b/x.csv`.
fn staged_names(files: &[PathBuf]) -> Vec<PathBuf> {
    let Some(first) = files.first() else { return Vec::new() };
    let mut common = first.parent().map(Path::to_path_buf).unwrap_or_default();
    for f in &files[1..] {
        while !f.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    files
        .iter()
        .map(|f| f.strip_prefix(&common).map(Path::to_path_buf).unwrap_or_else(|_| PathBuf::from(file_name(f))))
        .collect()
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| "input".to_owned(), |n| n.to_string_lossy().into_owned())
}

/// Stages the inputs and preopens them (read-only) and the mounts; their guest paths.
fn preopen(wasi: &mut WasiCtxBuilder, run: &PluginRun) -> Result<(Vec<NamedPath>, Vec<NamedPath>), PluginError> {
    let stage = &run.stage_dir;
    let mut inputs = Vec::new();
    for input in &run.inputs {
        let host_dir = stage.join("in").join(&input.name);
        fs::create_dir_all(&host_dir).map_err(io(format!("cannot stage input `{}`", input.name)))?;
        let names = if input.directory {
            staged_names(&input.files)
        } else {
            input.files.iter().map(|f| PathBuf::from(file_name(f))).collect()
        };
        for (f, name) in input.files.iter().zip(&names) {
            stage_file(f, &host_dir.join(name)).map_err(io(format!(
                "cannot stage input `{}` ({})",
                input.name,
                f.display()
            )))?;
        }
        let guest_dir = format!("/in/{}", input.name);
        wasi.preopened_dir(&host_dir, &guest_dir, FsPerms::ReadOnly)
            .map_err(|e| PluginError::Host(format!("cannot preopen input `{}`: {e:#}", input.name)))?;
        let path = match (input.directory, input.files.first()) {
            (false, Some(f)) => format!("{guest_dir}/{}", file_name(f)),
            _ => guest_dir,
        };
        inputs.push(NamedPath { name: input.name.clone(), path });
    }
    let mut mounts = Vec::new();
    for m in &run.mounts {
        fs::create_dir_all(&m.host).map_err(io(format!("cannot create mount `{}` ({})", m.name, m.host.display())))?;
        let guest = format!("/mnt/{}", m.name);
        let perms = if m.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        wasi.preopened_dir(&m.host, &guest, perms)
            .map_err(|e| PluginError::Host(format!("cannot preopen mount `{}`: {e:#}", m.name)))?;
        mounts.push(NamedPath { name: m.name.clone(), path: guest });
    }
    Ok((inputs, mounts))
}

/// Runs a loaded plugin once.
pub fn run(host: &PluginHost, plugin: &LoadedPlugin, run: &PluginRun) -> Result<RunOutcome, PluginError> {
    let stage = &run.stage_dir;
    let out_dir = stage.join("out");
    fs::create_dir_all(&out_dir).map_err(io(format!("cannot create {}", out_dir.display())))?;

    let mut wasi = WasiCtxBuilder::new();
    wasi.allow_blocking_current_thread(true).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    let stdout = CappedPipe::default();
    let stderr = CappedPipe::default();
    wasi.stdout(stdout.clone()).stderr(stderr.clone());

    let (inputs, mounts) = preopen(&mut wasi, run)?;
    wasi.preopened_dir(&out_dir, "/out", FsPerms::ReadWrite)
        .map_err(|e| PluginError::Host(format!("cannot preopen the output directory: {e:#}")))?;

    let started = Instant::now();
    let stop = Stop { cancel: run.cancel.clone(), deadline: started + run.limits.deadline };
    let log = CappedLog::append(&run.log, run.limits.log_bytes).ok();
    let state = State {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        memory_limit: run.limits.memory_bytes,
        memory_denied: None,
        panic: None,
        cancelled: false,
        stop: Some(stop),
        log,
    };
    let mut store = Store::new(&host.engine, state);
    store.limiter(|s| s as &mut dyn ResourceLimiter);
    // Every epoch tick: stop on Ctrl-C or when the deadline has passed.
    let deadline = run.limits.deadline;
    let cancel = run.cancel.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut ctx| {
        if cancel.load(Ordering::Relaxed) {
            ctx.data_mut().cancelled = true;
            return Err(Trap::Interrupt.into());
        }
        if started.elapsed() >= deadline {
            return Err(Trap::Interrupt.into());
        }
        Ok(UpdateDeadline::Continue(1))
    });

    let ctx = Context {
        task: run.task.clone(),
        run_id: run.run_id.clone(),
        partition: run.partition.clone(),
        params_json: run.params_json.clone(),
        inputs,
        output_dir: "/out".to_owned(),
        mounts,
    };
    let result = plugin
        .pre
        .instantiate(&mut store)
        .and_then(|instance| instance.call_run(&mut store, &ctx))
        .map_err(|e| classify(e, store.data(), run.limits.deadline));
    let mut log = store.into_data().log;
    append_output(log.as_mut(), "stdout", &stdout);
    append_output(log.as_mut(), "stderr", &stderr);
    let cut = |m: String| truncate_text(m, MAX_ERROR_BYTES);
    let result = match result? {
        Ok(r) => r,
        Err(TaskError::InvalidParams(m)) => return Err(PluginError::InvalidParams(cut(m))),
        Err(TaskError::BadInput(m)) => return Err(PluginError::BadInput(cut(m))),
        Err(TaskError::Failed(m)) => return Err(PluginError::Failed(cut(m))),
    };
    let artifacts = result
        .artifacts
        .into_iter()
        .map(|a| {
            let host_path = artifact_host_path(&out_dir, &a.path)
                .ok_or_else(|| PluginError::ArtifactOutside { name: a.name.clone(), path: a.path.clone() })?;
            Ok((a.name, host_path))
        })
        .collect::<Result<Vec<_>, PluginError>>()?;
    Ok(RunOutcome { summary_json: bound_summary(result.summary_json), artifacts })
}

/// Maps a guest artifact path under `/out` to the host file, refusing anything that leaves it.
fn artifact_host_path(out_dir: &Path, guest: &str) -> Option<PathBuf> {
    let rel = Path::new(guest).strip_prefix("/out").ok()?;
    if rel.components().any(|c| !matches!(c, PathComponent::Normal(_))) || rel.as_os_str().is_empty() {
        return None;
    }
    // No component may be a symlink (the guest could point one outside /out); the file must
    // be a regular file.
    let mut host = out_dir.to_owned();
    for c in rel.components() {
        host.push(c);
        if fs::symlink_metadata(&host).ok()?.file_type().is_symlink() {
            return None;
        }
    }
    fs::symlink_metadata(&host).ok()?.is_file().then_some(host)
}

/// Appends what the plugin wrote to stdout or stderr, with a marker when some was dropped.
fn append_output(log: Option<&mut CappedLog>, what: &str, pipe: &CappedPipe) {
    let (bytes, dropped) = pipe.take();
    let Some(log) = log else { return };
    if bytes.is_empty() {
        return;
    }
    log.write(format!("--- plugin {what} ---\n").as_bytes());
    log.write(&bytes);
    if !bytes.ends_with(b"\n") {
        log.write(b"\n");
    }
    if dropped > 0 {
        let line = format!(
            "[dagrun: plugin {what} truncated: {dropped} more bytes dropped (only the first {CAPTURE_BYTES} are kept)]\n"
        );
        log.write(line.as_bytes());
    }
}

/// Turns a wasmtime error into the user-facing cause: panic, memory, deadline or trap.
pub(crate) fn classify(e: wasmtime::Error, state: &State, deadline: Duration) -> PluginError {
    if state.cancelled {
        return PluginError::Cancelled;
    }
    if let Some((message, file, line)) = &state.panic {
        return PluginError::Panic { message: message.clone(), file: file.clone(), line: *line };
    }
    if let Some(wanted) = state.memory_denied {
        return PluginError::Memory { wanted, limit: state.memory_limit };
    }
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return PluginError::Deadline(deadline);
    }
    let frames: Vec<String> = e
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .filter_map(|f| f.func_name())
                .map(|n| format!("{:#}", rustc_demangle::demangle(n)))
                .collect()
        })
        .unwrap_or_default();
    let backtrace = collapse_frames(&frames, 6);
    let message = match e.downcast_ref::<Trap>() {
        Some(t) => t.to_string().trim_start_matches("wasm trap: ").to_owned(),
        None => format!("{:#}", e.root_cause()),
    };
    PluginError::Trap { message, backtrace }
}

/// The innermost `max` frames, with runs of the same function folded into one line.
fn collapse_frames(frames: &[String], max: usize) -> Vec<String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for f in frames {
        match out.last_mut() {
            Some((last, n)) if last == f => *n += 1,
            _ => out.push((f.clone(), 1)),
        }
    }
    out.into_iter().take(max).map(|(f, n)| if n > 1 { format!("{f} (×{n})") } else { f }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_names_in_different_directories_stay_apart() {
        let files = [PathBuf::from("/w/data/a/x.csv"), PathBuf::from("/w/data/b/x.csv")];
        assert_eq!(staged_names(&files), [PathBuf::from("a/x.csv"), PathBuf::from("b/x.csv")]);
        assert_eq!(staged_names(&files[..1]), [PathBuf::from("x.csv")]);
    }

    #[test]
    fn staging_never_writes_through_to_an_input() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        fs::write(&a, "A").unwrap();
        fs::write(&b, "B").unwrap();
        let dest = dir.path().join("stage/x.csv");
        stage_file(&a, &dest).unwrap();
        assert!(stage_file(&b, &dest).is_err());
        assert_eq!(fs::read_to_string(&a).unwrap(), "A");
    }

    #[test]
    fn folds_repeated_frames() {
        let f = |s: &str| s.to_owned();
        let frames = [f("a::deep"), f("a::deep"), f("a::deep"), f("a::run"), f("main")];
        assert_eq!(collapse_frames(&frames, 2), vec!["a::deep (×3)", "a::run"]);
    }
}
