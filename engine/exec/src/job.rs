//! One task instance in a run: its key, a cache hit (outputs restored) or its attempts with
//! retries, then caching. Knows nothing of kinds: [`crate::kinds`] runs the attempts.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use tokio::sync::{SemaphorePermit, watch};

use dagrun_cache::{ActionEntry, ActionKey, Manifest, StoreError};
use dagrun_plan::{KeyContext, Probe, instance_outputs, probe};
use dagrun_workflow::TaskKind;

use crate::cancel::cancelled;
use crate::commit::{NotStored, record_hit, restore_outputs, store_outputs};
use crate::events::{Event, TaskStatus};
use crate::gate::Gate;
use crate::kinds::{Attempt, Job, Kind, prepare};
use crate::outcome::{AttemptError, Failure, TaskError, bounded};
use crate::shared::RunShared;

/// What a job reports back to the scheduler.
#[derive(Debug)]
pub(crate) struct JobResult {
    pub index: usize,
    pub status: TaskStatus,
    pub key: Option<ActionKey>,
    pub manifest: Option<Arc<Manifest>>,
    pub duration_ms: u64,
    /// When the job started (Unix ms); `None` for a task that never started (skipped).
    pub started_ms: Option<u64>,
    pub saved_ms: u64,
    pub attempts: u32,
    pub failure: Option<Failure>,
    /// Failure, refusal or skip reason.
    pub error: Option<String>,
    pub log: Option<PathBuf>,
    pub summary: Option<serde_json::Value>,
    /// A hit served by the shared remote cache.
    pub remote: bool,
}

impl JobResult {
    pub(crate) fn new(index: usize, status: TaskStatus, key: Option<ActionKey>) -> JobResult {
        JobResult {
            index,
            status,
            key,
            manifest: None,
            duration_ms: 0,
            started_ms: None,
            saved_ms: 0,
            attempts: 0,
            failure: None,
            error: None,
            log: None,
            summary: None,
            remote: false,
        }
    }

    pub(crate) fn skipped(index: usize, why: String) -> JobResult {
        JobResult { error: Some(why), ..JobResult::new(index, TaskStatus::Skipped, None) }
    }

    fn failed(index: usize, key: Option<ActionKey>, e: TaskError) -> JobResult {
        let error = Some(bounded(e.message));
        JobResult { failure: Some(e.failure), error, ..JobResult::new(index, TaskStatus::Failed, key) }
    }
}

/// Computes the key and, on a hit, restores outputs: from the local cache, else (read-through)
/// from the shared remote cache (`true`). Blocking: hashes and copies files.
fn lookup(
    run: &RunShared,
    i: usize,
    ups: &HashMap<usize, Arc<Manifest>>,
    forced: bool,
) -> Result<(Probe, bool), TaskError> {
    let name = &run.instances.nodes[i].name;
    if let TaskKind::Wasm(w) = &run.workflow.tasks[run.instances.nodes[i].task].kind
        && let Some(e) = run.plugin_errors.get(&w.plugin)
    {
        return Err(TaskError::permanent(Failure::Plugin, e.clone()));
    }
    let mut p = probe(&run.key_context(), &run.store, &run.instances, i, &borrowed(ups))
        .map_err(|e| TaskError::permanent(Failure::Input, e.to_string()))?;
    let runs_anyway = runs_anyway(run, i, forced);
    if runs_anyway {
        p.hit = None;
    }
    if let Some(source) = p.rejected.take() {
        discard(run, name, StoreError::Entry { key: p.key, source: Box::new(source) });
    }
    if let Some(entry) = p.hit.take() {
        match restore_outputs(run, i, &entry) {
            Ok(()) => {
                record_hit(run, name, &p, &entry);
                p.hit = Some(entry);
                return Ok((p, false));
            }
            Err(e @ (StoreError::Corrupt { .. } | StoreError::Entry { .. })) => discard(run, name, e),
            Err(e) => {
                return Err(TaskError::new(Failure::Cache, format!("cannot restore outputs from the cache: {e}")));
            }
        }
    }
    if !runs_anyway && let Some(entry) = crate::remote::restore_from_remote(run, i, &p) {
        p.hit = Some(entry);
        return Ok((p, true));
    }
    Ok((p, false))
}

/// A look-up on an async worker ([`cheap_lookup`]) hashes at most this many bytes of inputs
/// and looks at no more than this over [`dagrun_cache::FILE_COST`] files; more go to the
/// blocking pool.
const CHEAP_HASH_BYTES: u64 = 256 << 10;

/// A key of more files than this is never serialized into an entry on an async worker.
const CHEAP_KEY_FILES: usize = 256;

/// [`lookup`] where it costs little, on the async worker (a hand-off to the blocking pool and
/// back costs more than such a look-up): inputs the stat cache vouches for, or small ones to
/// hash ([`CHEAP_HASH_BYTES`]), and a miss, with no remote cache to ask. `None` when it is not
/// so cheap (more to hash, a hit whose outputs to restore, a damaged entry, a remote cache, an
/// error to report): then [`lookup`] does it all on the blocking pool.
fn cheap_lookup(run: &RunShared, i: usize, ups: &HashMap<usize, Arc<Manifest>>, forced: bool) -> Option<Probe> {
    let task = &run.workflow.tasks[run.instances.nodes[i].task];
    if run.remote.is_some() || run.verify || matches!(task.kind, TaskKind::Wasm(_)) {
        return None;
    }
    let budget = AtomicU64::new(CHEAP_HASH_BYTES);
    let ctx = KeyContext { hash: false, hash_budget: Some(&budget), ..run.key_context() };
    // A panic (a poisoned lock) is left to the full look-up, where it fails only this task.
    let probed =
        std::panic::catch_unwind(AssertUnwindSafe(|| probe(&ctx, &run.store, &run.instances, i, &borrowed(ups))));
    let mut p = probed.ok()?.ok()?;
    if runs_anyway(run, i, forced) {
        p.hit = None;
    }
    (p.hit.is_none() && p.rejected.is_none()).then_some(p)
}

/// Whether instance `i` runs even on a hit: forced, or of a kind that always runs.
fn runs_anyway(run: &RunShared, i: usize, forced: bool) -> bool {
    forced || run.workflow.tasks[run.instances.nodes[i].task].kind.always_runs()
}

/// The upstream manifests as key resolution takes them.
pub(crate) fn borrowed(ups: &HashMap<usize, Arc<Manifest>>) -> HashMap<usize, &Manifest> {
    ups.iter().map(|(k, v)| (*k, v.as_ref())).collect()
}

/// A corrupt object (already deleted by the store) or entry (deleted here): say so; the task
/// runs as on a miss.
fn discard(run: &RunShared, name: &str, e: StoreError) {
    if let StoreError::Entry { key, .. } = &e {
        let _ = run.store.remove_action(key);
    }
    run.reporter.report(&Event::CacheCorrupt {
        task: name.to_owned(),
        error: format!("{e}: it was removed and `{name}` runs again"),
    });
}

/// Runs one instance to its final state. Never panics on task errors: they become `Failed`.
pub(crate) async fn run_job(
    run: Arc<RunShared>,
    i: usize,
    ups: HashMap<usize, Arc<Manifest>>,
    forced: bool,
    cancel: watch::Receiver<bool>,
    (gate, ticket): (Arc<Gate>, u64),
) -> JobResult {
    let (started, started_ms) = (Instant::now(), crate::when::now_ms() as u64);
    let mut first = None;
    let slots = Slots { gate: &gate, ticket: Some(ticket), first: &mut first, cancel };
    let result = job(&run, i, ups, forced, slots).await;
    // A task that ran started when it first had a slot (not when it queued for one); one that
    // never started has no start.
    let (started, started_ms) = match first {
        Some(at) => at,
        None if result.status == TaskStatus::Skipped => {
            return JobResult { duration_ms: 0, started_ms: None, ..result };
        }
        None => (started, started_ms),
    };
    JobResult { duration_ms: started.elapsed().as_millis() as u64, started_ms: Some(started_ms), ..result }
}

/// A job's side of the run's execution slots (`--jobs`, see [`Gate`]): held by an attempt while
/// it runs, so that one job's key look-up and output storing overlap other jobs' commands; the
/// job's turn to take its first one (given up when it takes it, or when the job ends without);
/// when it first had one; and the run's cancel signal.
pub(crate) struct Slots<'a> {
    gate: &'a Gate,
    ticket: Option<u64>,
    first: &'a mut Option<(Instant, u64)>,
    cancel: watch::Receiver<bool>,
}

impl<'a> Slots<'a> {
    /// A slot (the first one in the job's turn), or `None` when the run is cancelled first.
    async fn take(&mut self) -> Option<SemaphorePermit<'a>> {
        let gate = self.gate;
        if let Some(ticket) = self.ticket {
            tokio::select! {
                biased;
                () = cancelled(&mut self.cancel) => return None,
                () = gate.turn(ticket) => {}
            }
        }
        // In the semaphore's queue first (it is fair: no later ticket can pass), then the turn
        // is passed, before the slot is free: the job woken by it then runs now, not once this
        // one has started its command (a spawn blocks its thread until the command is `exec`ed).
        let mut slot = std::pin::pin!(gate.slot());
        let now = std::future::poll_fn(|cx| std::task::Poll::Ready(slot.as_mut().poll(cx))).await;
        if let Some(ticket) = self.ticket.take() {
            gate.pass(ticket);
        }
        let slot = match now {
            // Cancelled meanwhile (a retry takes no turn first): the slot goes back at once.
            std::task::Poll::Ready(_) if *self.cancel.borrow() => None,
            std::task::Poll::Ready(permit) => Some(permit),
            std::task::Poll::Pending => tokio::select! {
                biased;
                () = cancelled(&mut self.cancel) => None,
                permit = slot => Some(permit),
            },
        };
        if slot.is_some() && self.first.is_none() {
            *self.first = Some((Instant::now(), crate::when::now_ms() as u64));
        }
        slot
    }
}

impl Drop for Slots<'_> {
    /// A job that ends without having taken a slot (a hit, a failed look-up, a cancel) gives
    /// its turn up, so the jobs after it are not held back.
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.gate.pass(ticket);
        }
    }
}

/// [`run_job`] without the wall time.
async fn job(
    run: &Arc<RunShared>,
    i: usize,
    ups: HashMap<usize, Arc<Manifest>>,
    forced: bool,
    slots: Slots<'_>,
) -> JobResult {
    let r = run.clone();
    let looked = match cheap_lookup(run, i, &ups, forced) {
        Some(p) => Ok(Ok((p, false))),
        None => tokio::task::spawn_blocking(move || lookup(&r, i, &ups, forced)).await,
    };
    let (p, remote) = match looked {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return JobResult::failed(i, None, e),
        Err(e) => {
            let e = TaskError::new(Failure::Cache, format!("internal error while looking up the cache: {e}"));
            return JobResult::failed(i, None, e);
        }
    };
    let key = Some(p.key);
    if let Some(entry) = &p.hit {
        return JobResult {
            manifest: Some(Arc::new(entry.outputs.clone())),
            saved_ms: entry.duration_ms,
            remote,
            ..JobResult::new(i, TaskStatus::Cached, key)
        };
    }
    // Real paths (links resolved) before anything is deleted or written (a hit's restore
    // resolves the paths it writes itself).
    let outputs = match declared_outputs(run, i) {
        Ok(o) => o,
        Err(e) => return JobResult::failed(i, key, e),
    };
    let log = run.logs.join(format!("{}.log", run.instances.nodes[i].name));
    let kind = match prepare(&Job { run, index: i, probe: &p, outputs: &outputs, log: &log }) {
        Ok(k) => k,
        Err(e) => return JobResult::failed(i, key, e),
    };
    let (summary, duration_ms, attempts) = match attempts(run, i, kind.as_ref(), &outputs, &log, key, slots).await {
        Ok(done) => done,
        Err(r) => return r,
    };
    let stored = store(run, i, outputs, p, duration_ms).await;
    let done = match stored {
        Ok(entry) => {
            let manifest = Some(Arc::new(entry.outputs.clone()));
            // Write-behind: downstream tasks do not wait for the upload.
            crate::remote::publish_entry(run, entry);
            JobResult { manifest, summary, ..JobResult::new(i, TaskStatus::Succeeded, key) }
        }
        Err(e) => JobResult::failed(i, key, e),
    };
    JobResult { attempts, log: written(&log), ..done }
}

/// Stores a job's outputs ([`store_outputs`]). Outputs that all live in their entry, with a key
/// of few files, are stored on this thread: a few small reads and one small entry file written
/// (or, when the disk is behind, synced), cheaper than a hand-off to the blocking pool and back.
/// Larger ones are copied there, so that this thread is free to start the next job's command at
/// once (the slot the attempt held woke it here, into tokio's LIFO slot, where no other thread
/// may take it from): the store here stops at the first output too large to live in its entry,
/// having read at most one byte past that size.
async fn store(
    run: &Arc<RunShared>,
    i: usize,
    outputs: BTreeMap<String, PathBuf>,
    p: Probe,
    duration_ms: u64,
) -> Result<ActionEntry, TaskError> {
    let internal = |e: String| TaskError::new(Failure::Cache, format!("internal error while caching: {e}"));
    let p = if key_files(&p) <= CHEAP_KEY_FILES {
        let here = std::panic::catch_unwind(AssertUnwindSafe(|| store_outputs(run, i, &outputs, p, duration_ms, true)));
        match here {
            Ok(Ok(entry)) => return Ok(entry),
            Ok(Err(NotStored::Failed(e))) => return Err(e),
            Ok(Err(NotStored::TooLarge(p))) => *p,
            Err(_) => return Err(internal("a panic".into())),
        }
    } else {
        p
    };
    let r = run.clone();
    match tokio::task::spawn_blocking(move || store_outputs(&r, i, &outputs, p, duration_ms, false)).await {
        Ok(Ok(entry)) => Ok(entry),
        Ok(Err(NotStored::Failed(e))) => Err(e),
        Ok(Err(NotStored::TooLarge(_))) => Err(internal("an output too large where any size is stored".into())),
        Err(e) => Err(internal(e.to_string())),
    }
}

/// The files behind a probe's key (a glob's matches each count).
fn key_files(p: &Probe) -> usize {
    p.resolved.files.values().map(|r| r.files.len()).sum()
}

/// Attempts with retries and backoff until one succeeds: its summary, how long that attempt
/// took (the time a later cache hit saves: not retries or backoff) and how many were made.
/// Otherwise the job's final result: failed, refused, or skipped when interrupted.
async fn attempts(
    run: &Arc<RunShared>,
    i: usize,
    kind: &dyn Kind,
    outputs: &BTreeMap<String, PathBuf>,
    log: &Path,
    key: Option<ActionKey>,
    mut slots: Slots<'_>,
) -> Result<(Option<serde_json::Value>, u64, u32), JobResult> {
    let node = &run.instances.nodes[i];
    let task = &run.workflow.tasks[node.task];
    let mut number = 0;
    loop {
        let Some(slot) = slots.take().await else {
            // Cancelled before this attempt started: the earlier ones (if any) and their log.
            return Err(JobResult {
                attempts: number,
                log: written(log),
                ..JobResult::skipped(i, "interrupted".into())
            });
        };
        number += 1;
        // Checked again once the first slot is ours: an earlier task may have made a link while
        // this one queued. (Not before a retry: the failed attempt may have made its own output
        // a link, which the delete below removes, as it always did.)
        if number == 1
            && let Err(e) = declared_outputs(run, i).and_then(|now| same_outputs(&now, outputs))
        {
            return Err(JobResult { attempts: 0, ..JobResult::failed(i, key, e) });
        }
        for path in outputs.values() {
            let _ = std::fs::remove_file(path);
            if let Some(parent) = path.parent() {
                let _ = dagrun_cache::ensure_dir(parent);
            }
        }
        run.reporter.report(&Event::TaskStarted { task: node.name.clone(), attempt: number });
        let attempt_started = Instant::now();
        let attempt = Attempt { run, index: i, number, log, cancel: &mut slots.cancel };
        let end = |r: JobResult| JobResult { attempts: number, log: written(log), ..r };
        let interrupted = || end(JobResult::skipped(i, "interrupted".into()));
        let outcome = kind.attempt(attempt).await;
        drop(slot);
        // The job the freed slot woke (often on this thread) starts its command first.
        tokio::task::yield_now().await;
        let error = match outcome {
            Ok(summary) => return Ok((summary, attempt_started.elapsed().as_millis() as u64, number)),
            Err(AttemptError::Cancelled) => return Err(interrupted()),
            // A refusal is a decision, not a flaky failure: never retried.
            Err(AttemptError::Refused { reason, summary }) => {
                return Err(end(JobResult {
                    error: Some(reason),
                    summary,
                    ..JobResult::new(i, TaskStatus::Refused, key)
                }));
            }
            Err(AttemptError::Alert { reason, summary }) => {
                return Err(end(JobResult {
                    error: Some(reason),
                    summary,
                    ..JobResult::new(i, TaskStatus::Alerted, key)
                }));
            }
            Err(AttemptError::Held { reason, summary }) => {
                return Err(end(JobResult {
                    error: Some(reason),
                    summary,
                    ..JobResult::new(i, TaskStatus::Held, key)
                }));
            }
            Err(AttemptError::Waiting { reason, summary }) => {
                return Err(end(JobResult {
                    error: Some(reason),
                    summary,
                    ..JobResult::new(i, TaskStatus::Waiting, key)
                }));
            }
            Err(AttemptError::Failed(e)) if e.permanent => return Err(end(JobResult::failed(i, key, e))),
            Err(AttemptError::Failed(e)) => e,
        };
        if number > task.retries {
            let e = if task.retries > 0 {
                TaskError { message: format!("{} (after {number} attempts)", error.message), ..error }
            } else {
                error
            };
            return Err(end(JobResult::failed(i, key, e)));
        }
        let delay = backoff(task.backoff, number);
        run.reporter.report(&Event::TaskRetrying {
            task: node.name.clone(),
            attempt: number,
            error: error.message,
            delay_ms: delay.as_millis() as u64,
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancelled(&mut slots.cancel) => return Err(interrupted()),
        }
    }
}

/// The instance's declared outputs: name → real path. Refused when a symbolic link leads one
/// outside the workflow directory or it lies in the state directory.
fn declared_outputs(run: &RunShared, i: usize) -> Result<BTreeMap<String, PathBuf>, TaskError> {
    instance_outputs(&run.workflow, &run.instances, i)
        .into_iter()
        .map(|(k, v)| {
            let real = run.roots.resolve(&k, &run.workflow.dir.join(v))?;
            Ok((k, real))
        })
        .collect()
}

/// `Ok` when the outputs' real paths are still those the job prepared for.
fn same_outputs(now: &BTreeMap<String, PathBuf>, prepared: &BTreeMap<String, PathBuf>) -> Result<(), TaskError> {
    match now.iter().find(|(k, v)| prepared.get(*k) != Some(v)) {
        None => Ok(()),
        Some((name, path)) => Err(TaskError::permanent(
            Failure::OutputPath { output: name.clone() },
            format!(
                "output `{name}` now resolves to {} (a symbolic link changed while the task waited to start); \
                 dagrun neither deletes nor writes there: run it again",
                path.display()
            ),
        )),
    }
}

/// The log's path, when the task wrote one (the native ONNX kinds write none).
fn written(log: &Path) -> Option<PathBuf> {
    log.is_file().then(|| log.to_owned())
}

/// Exponential backoff: `base * 2^(attempt-1)`, capped at 10 minutes.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20)).min(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_millis(100);
        assert_eq!(backoff(b, 1), Duration::from_millis(100));
        assert_eq!(backoff(b, 3), Duration::from_millis(400));
        assert_eq!(backoff(b, 40), Duration::from_secs(600));
    }

    /// A retry (no turn to wait for) asking once the run was cancelled gets no slot, even a free
    /// one, and gives it back.
    #[tokio::test]
    async fn a_cancelled_run_takes_no_free_slot() {
        let gate = Gate::new(1);
        let (tx, cancel) = watch::channel(false);
        tx.send(true).unwrap();
        let mut first = None;
        let mut slots = Slots { gate: &gate, ticket: None, first: &mut first, cancel };
        assert!(slots.take().await.is_none());
        drop(slots);
        assert!(first.is_none(), "the attempt never started");
        let _free = gate.slot().await;
    }

    /// Ticket 2 asks for its slot before ticket 1, while ticket 0 holds the only one: both
    /// queue, and pass their turns on while they wait (so that no job is woken only once another
    /// has started its command), yet ticket 1 still gets the slot before ticket 2.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_jobs_pass_their_turns_on_and_keep_their_order() {
        let gate = Arc::new(Gate::new(1));
        let (_tx, cancel) = watch::channel(false);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let release = Arc::new(tokio::sync::Notify::new());
        let take = |ticket: u64| {
            let (gate, order, cancel, release) = (gate.clone(), order.clone(), cancel.clone(), release.clone());
            tokio::spawn(async move {
                let mut first = None;
                let mut slots = Slots { gate: &gate, ticket: Some(ticket), first: &mut first, cancel };
                let slot = slots.take().await.expect("not cancelled");
                order.lock().unwrap().push(ticket);
                if ticket == 0 {
                    release.notified().await;
                }
                drop(slot);
            })
        };
        // Until `cond` holds (or a generous time passed: a busy machine is slow, never wrong).
        let until = |cond: &dyn Fn() -> bool| {
            let end = std::time::Instant::now() + Duration::from_secs(10);
            while !cond() && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let zero = take(0);
        until(&|| *order.lock().unwrap() == [0]);
        let two = take(2);
        std::thread::sleep(Duration::from_millis(20));
        let one = take(1);
        until(&|| gate.next_turn() == 3);
        assert_eq!(gate.next_turn(), 3, "tickets 1 and 2 passed their turns while they queued");
        assert_eq!(*order.lock().unwrap(), [0], "ticket 0 still holds the slot");
        release.notify_one();
        for j in [zero, two, one] {
            j.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    }
}
