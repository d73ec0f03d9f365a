//! The shared remote cache in a run: read-through on a local miss ([`restore_from_remote`]),
//! write-behind after a success ([`publish_entry`]: objects, then the entry, create-only, in
//! the background), a circuit breaker (the first unreachable or refused request turns the
//! remote off for the rest of the run: one warning, not one wait per task), and the durable list
//! of entries still to send (`<state>/remote/pending`), retried by the next run and by
//! `dagrun cache push`. Nothing here fails a run: trouble is a [`Event::RemoteWarning`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dagrun_cache::{ActionEntry, ActionKey, Digest, Store};
use dagrun_plan::Probe;
use dagrun_remote::{Published, RemoteCache, RemoteError, RemoteUrl};
use dagrun_workflow::Workflow;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::commit::{record_hit, restore_outputs};
use crate::events::{Event, Reporter};
use crate::shared::RunShared;

/// Uploads in flight at once.
const UPLOADS: usize = 4;

/// What a run does with the remote cache (`--remote-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteMode {
    /// Not used at all (nothing is read, sent or even connected).
    Off,
    /// Local misses are looked up there; nothing is ever written.
    Read,
    /// Read-through, and what runs here is published (the default with a location).
    ReadWrite,
}

/// Where the remote cache is and how to use it, as the caller knows it (the CLI: from
/// `DAGRUN_REMOTE_CACHE` and `--remote-cache`); the workflow's `remote_cache` fills the gaps.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// The location, overriding the workflow's `remote_cache`.
    pub location: Option<RemoteUrl>,
    /// The mode; default: [`RemoteMode::ReadWrite`] when a location is configured.
    pub mode: Option<RemoteMode>,
}

impl RemoteOptions {
    /// The location a run of `wf` is given (the option, else the workflow's `remote_cache`),
    /// whatever the mode: remote execution (Slurm, Ray) exchanges its tasks through it.
    pub fn location_for(&self, wf: &Workflow) -> Option<RemoteUrl> {
        // The workflow's value was checked when it was loaded.
        self.location.clone().or_else(|| wf.remote_cache.as_deref()?.parse().ok())
    }

    /// The location and mode a run of `wf` uses; `None` when no location is configured or the
    /// mode is off.
    pub fn resolve(&self, wf: &Workflow) -> Option<(RemoteUrl, RemoteMode)> {
        let url = self.location_for(wf)?;
        let mode = self.mode.unwrap_or(RemoteMode::ReadWrite);
        (mode != RemoteMode::Off).then_some((url, mode))
    }
}

/// One run's (or one `dagrun cache push`'s) use of the remote cache.
pub(crate) struct RunRemote {
    pub(crate) cache: RemoteCache,
    mode: RemoteMode,
    store: Arc<Store>,
    reporter: Arc<dyn Reporter>,
    handle: tokio::runtime::Handle,
    /// Set by the first unreachable or refused request: the remote is left alone from then on.
    broken: AtomicBool,
    /// Why it was turned off.
    broken_why: Mutex<Option<String>>,
    permits: Arc<Semaphore>,
    uploads: Mutex<Vec<JoinHandle<()>>>,
    /// Keys whose entries are not known to be on the remote yet (in flight or failed).
    pending: Mutex<BTreeSet<ActionKey>>,
    /// Keys whose remote entry or objects are corrupt: never published over (create-only).
    corrupt: Mutex<BTreeSet<ActionKey>>,
    pub(crate) published: AtomicUsize,
    pub(crate) existing: AtomicUsize,
    /// Bytes of outputs the entries published now record.
    pub(crate) sent_bytes: AtomicU64,
}

impl std::fmt::Debug for RunRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRemote").field("url", self.cache.url()).field("mode", &self.mode).finish()
    }
}

impl RunRemote {
    /// The remote a run of `wf` uses, connected (nothing is sent yet), after queueing the
    /// uploads a previous run left pending; `None` when there is none, or (with a warning) when
    /// the environment does not say how to reach it. Call inside the tokio runtime.
    pub(crate) fn open(
        opts: &RemoteOptions,
        wf: &Workflow,
        store: &Arc<Store>,
        reporter: &Arc<dyn Reporter>,
    ) -> Option<Arc<RunRemote>> {
        let (url, mode) = opts.resolve(wf)?;
        let cache = match dagrun_remote::connect(&url) {
            Ok(conn) => RemoteCache::new(conn),
            Err(e) => {
                let message = format!("{e}; this run uses the local cache only");
                reporter.report(&Event::RemoteWarning { remote: url.to_string(), task: None, message });
                return None;
            }
        };
        let remote = Arc::new(RunRemote {
            cache,
            mode,
            store: store.clone(),
            reporter: reporter.clone(),
            handle: tokio::runtime::Handle::current(),
            broken: AtomicBool::new(false),
            broken_why: Mutex::new(None),
            permits: Arc::new(Semaphore::new(UPLOADS)),
            uploads: Mutex::new(Vec::new()),
            pending: Mutex::new(BTreeSet::new()),
            corrupt: Mutex::new(BTreeSet::new()),
            published: AtomicUsize::new(0),
            existing: AtomicUsize::new(0),
            sent_bytes: AtomicU64::new(0),
        });
        if mode == RemoteMode::ReadWrite {
            remote.retry_pending();
        }
        Some(remote)
    }

    /// Whether it may be asked now (not turned off by an earlier failure).
    fn usable(&self) -> bool {
        !self.broken.load(Ordering::Relaxed)
    }

    /// Why the remote was turned off, if it was.
    pub(crate) fn failure(&self) -> Option<String> {
        self.broken_why.lock().expect("why lock").clone()
    }

    fn url(&self) -> String {
        self.cache.url().to_string()
    }

    /// Reports trouble with the remote. Corruption is named with what to remove; an
    /// unreachable, refused or misconfigured remote turns it off for the rest of the run,
    /// reported once.
    fn trouble(&self, task: Option<&str>, key: &ActionKey, e: RemoteError) {
        let warn = |message: String| {
            let task = task.map(str::to_owned);
            self.reporter.report(&Event::RemoteWarning { remote: self.url(), task, message });
        };
        match &e {
            RemoteError::CorruptEntry { .. } | RemoteError::CorruptObject { .. } => {
                self.corrupt.lock().expect("corrupt lock").insert(*key);
                let what = match &e {
                    RemoteError::CorruptObject { digest, .. } => {
                        format!(" and object {}", self.cache.object_location(digest))
                    }
                    _ => String::new(),
                };
                warn(format!(
                    "{e}; the task runs here instead. A published entry is never replaced: remove {}{what} from the \
                     remote so that a correct one can be published",
                    self.cache.entry_location(key)
                ));
            }
            RemoteError::Request { .. } | RemoteError::Config { .. } | RemoteError::Url { .. } => {
                if !self.broken.swap(true, Ordering::Relaxed) {
                    *self.broken_why.lock().expect("why lock") = Some(e.to_string());
                    warn(format!(
                        "{e}. The remote cache is off for the rest of this run, which goes on with the local cache; \
                         check AWS_ENDPOINT_URL, the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                         AWS_PROFILE) and that the bucket exists (`dagrun doctor` checks them)"
                    ));
                }
            }
            // Local trouble, and the registry's own errors (never raised by the cache).
            RemoteError::Local(_)
            | RemoteError::Read { .. }
            | RemoteError::LostRace { .. }
            | RemoteError::CorruptVersion { .. }
            | RemoteError::Mirror { .. } => warn(format!("{e} (the remote cache was not used for it)")),
        }
    }

    /// Sends `entry` in the background (objects first, then the entry, create-only), at most
    /// [`UPLOADS`] at a time. A failed one stays pending for the next run.
    pub(crate) fn upload(self: &Arc<Self>, entry: ActionEntry) {
        if self.mode != RemoteMode::ReadWrite || self.corrupt.lock().expect("corrupt lock").contains(&entry.key) {
            return;
        }
        self.pending.lock().expect("pending lock").insert(entry.key);
        if !self.usable() {
            return;
        }
        let me = self.clone();
        let job = self.handle.spawn(async move {
            let Ok(_permit) = me.permits.clone().acquire_owned().await else { return };
            if !me.usable() {
                return;
            }
            match me.cache.push(&me.store, &entry).await {
                Ok(Published::Created) => {
                    me.published.fetch_add(1, Ordering::Relaxed);
                    let bytes: u64 = entry.outputs.values().map(|r| r.size).sum();
                    me.sent_bytes.fetch_add(bytes, Ordering::Relaxed);
                    me.pending.lock().expect("pending lock").remove(&entry.key);
                }
                Ok(Published::Existing) => {
                    me.existing.fetch_add(1, Ordering::Relaxed);
                    me.pending.lock().expect("pending lock").remove(&entry.key);
                }
                Err(e @ (RemoteError::Local(_) | RemoteError::Read { .. })) => {
                    // The local copy is unreadable or no longer matches: not worth retrying.
                    me.pending.lock().expect("pending lock").remove(&entry.key);
                    me.trouble(Some(&entry.task), &entry.key, e);
                }
                Err(e) => {
                    // Reported once (it turns the remote off); the entry stays pending.
                    me.trouble(Some(&entry.task), &entry.key, e);
                    me.save_pending();
                }
            }
        });
        self.uploads.lock().expect("uploads lock").push(job);
    }

    /// Queues the uploads `<state>/remote/pending` lists (entries no longer in the local store
    /// are dropped).
    pub(crate) fn retry_pending(self: &Arc<Self>) {
        for key in read_pending(&self.store) {
            match self.store.get_action(&key) {
                Some(entry) => self.upload(entry),
                None => {
                    self.pending.lock().expect("pending lock").remove(&key);
                }
            }
        }
    }

    /// Waits for the uploads (saying so every few seconds), saves what is still pending and
    /// reports what was sent. With `abandon` set, uploads are cut short (they stay pending).
    pub(crate) async fn finish(&self, abandon: impl Fn() -> bool) {
        let jobs = std::mem::take(&mut *self.uploads.lock().expect("uploads lock"));
        let (started, total) = (Instant::now(), jobs.len());
        let mut next_note = Duration::from_secs(2);
        for (done, mut job) in jobs.into_iter().enumerate() {
            loop {
                if abandon() {
                    job.abort();
                    break;
                }
                if tokio::time::timeout(Duration::from_millis(500), &mut job).await.is_ok() {
                    break;
                }
                if started.elapsed() >= next_note {
                    self.reporter.report(&Event::RemoteWaiting { uploads: total - done });
                    next_note += Duration::from_secs(5);
                }
            }
        }
        self.save_pending();
        let (published, existing) = (self.published.load(Ordering::Relaxed), self.existing.load(Ordering::Relaxed));
        let pending = self.pending.lock().expect("pending lock").len();
        if published + existing + pending > 0 {
            self.reporter.report(&Event::RemoteUploaded { remote: self.url(), published, existing, pending });
        }
    }

    /// Writes the pending list (atomically; removed when empty).
    fn save_pending(&self) {
        let keys = self.pending.lock().expect("pending lock").clone();
        let path = pending_path(&self.store);
        let saved = if keys.is_empty() {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            }
        } else {
            let text: String = keys.iter().map(|k| format!("{}\n", k.0.to_hex())).collect();
            dagrun_cache::ensure_dir(path.parent().expect("has a parent"))
                .map_err(|e| e.to_string())
                .and_then(|()| self.store.write_atomic(&path, text.as_bytes()).map_err(|e| e.to_string()))
        };
        if let Err(e) = saved {
            let message = format!("cannot record the uploads still to do in {}: {e}", path.display());
            self.reporter.report(&Event::RemoteWarning { remote: self.url(), task: None, message });
        }
    }
}

/// `<state>/remote/pending`: one key (hex) a line.
fn pending_path(store: &Store) -> PathBuf {
    store.root().join("remote").join("pending")
}

/// The keys the pending list names (unreadable lines are skipped).
fn read_pending(store: &Store) -> Vec<ActionKey> {
    let text = std::fs::read_to_string(pending_path(store)).unwrap_or_default();
    text.lines().filter_map(|l| Digest::from_hex(l.trim()).map(ActionKey)).collect()
}

/// Read-through for instance `i` after a local miss (`p` its probe): the remote's entry for
/// the key, its objects downloaded and verified, recorded locally and restored exactly like a
/// local hit; `None` when the remote has none or cannot be used (reported). Blocking: call it
/// from a blocking thread.
pub(crate) fn restore_from_remote(run: &RunShared, i: usize, p: &Probe) -> Option<ActionEntry> {
    let remote = run.remote.as_ref().filter(|r| r.usable())?;
    let name = &run.instances.nodes[i].name;
    let started = Instant::now();
    let entry = match remote.handle.block_on(remote.cache.pull(&run.store, &p.key)) {
        Ok(entry) => entry?,
        Err(e) => {
            remote.trouble(Some(name), &p.key, e);
            return None;
        }
    };
    if let Err(e) = restore_outputs(run, i, &entry) {
        let _ = run.store.remove_action(&entry.key);
        remote.corrupt.lock().expect("corrupt lock").insert(p.key);
        let message = format!(
            "the remote entry for key {} cannot be restored ({e}); the task runs here instead. A published entry \
             is never replaced: remove {} from the remote",
            p.key.0.short(),
            remote.cache.entry_location(&p.key)
        );
        run.reporter.report(&Event::RemoteWarning { remote: remote.url(), task: Some(name.clone()), message });
        return None;
    }
    record_hit(run, name, p, &entry);
    let bytes = entry.outputs.values().map(|r| r.size).sum();
    let ms = started.elapsed().as_millis() as u64;
    run.reporter.report(&Event::RemoteHit { task: name.clone(), bytes, ms });
    Some(entry)
}

/// Write-behind: publishes `entry` (just recorded locally after a success) in the background
/// when the run writes to a remote cache. Returns at once.
pub(crate) fn publish_entry(run: &RunShared, entry: ActionEntry) {
    if let Some(remote) = &run.remote {
        remote.upload(entry);
    }
}
