//! The watcher's event loop: inotify events and scans mark files dirty, one timer fires for
//! whichever settling file is due first, settled files are hashed a few at a time on the
//! blocking pool, and landed files go out through the daemon's channel, never dropped: they
//! wait in an outbox while the channel is full, and the loop keeps taking events meanwhile.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::{Sender, UnboundedReceiver, unbounded_channel};
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use super::pattern::SpecGlob;
use super::scan::{self, DirId, file_stat};
use super::state::{Hashed, Stat, State};
use super::{FileStat, Landed, WatchError};

/// How many files are hashed at once.
pub(crate) const HASH_CONCURRENCY: usize = 4;

/// A compiled [`super::WatchSpec`].
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) id: usize,
    pub(crate) dir: PathBuf,
    /// `dir` with symlinks resolved, when that differs (some backends report resolved paths).
    pub(crate) canonical: Option<PathBuf>,
    pub(crate) glob: SpecGlob,
    pub(crate) settle: Duration,
}

impl Spec {
    /// `path` relative to the workflow directory, `/`-separated (`None` if outside or not UTF-8).
    fn rel(&self, path: &Path) -> Option<String> {
        let rest = path.strip_prefix(&self.dir).ok()?;
        let parts = rest.components().map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        });
        let parts: Vec<&str> = parts.collect::<Option<_>>()?;
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    fn selects(&self, path: &Path) -> bool {
        self.rel(path).is_some_and(|rel| self.glob.matches(&rel))
    }
}

/// The settle time of `path`: the longest of the specs selecting it; `None` when none does.
fn settle_for(specs: &[Spec], path: &Path) -> Option<Duration> {
    specs.iter().filter(|s| s.selects(path)).map(|s| s.settle).max()
}

/// A directory watched for one or more specs.
#[derive(Debug)]
struct Root {
    path: PathBuf,
    recursive: bool,
    /// The directory the current watch is on; `None` while unwatched.
    watched: Option<DirId>,
    /// While `path` does not exist: its nearest existing ancestor, watched (not recursively) so
    /// that the directory's creation is seen at once, not at the next rescan.
    waiting_on: Option<PathBuf>,
}

/// The base directories of `specs`, without those inside another one watched recursively.
fn roots(specs: &[Spec]) -> Vec<Root> {
    let mut by_path: BTreeMap<PathBuf, bool> = BTreeMap::new();
    for s in specs {
        let path = if s.glob.base().is_empty() { s.dir.clone() } else { s.dir.join(s.glob.base()) };
        *by_path.entry(path).or_default() |= s.glob.recursive();
    }
    let recursive: Vec<PathBuf> = by_path.iter().filter(|(_, r)| **r).map(|(p, _)| p.clone()).collect();
    by_path
        .into_iter()
        .filter(|(p, _)| !recursive.iter().any(|r| r != p && p.starts_with(r)))
        .map(|(path, recursive)| Root { path, recursive, watched: None, waiting_on: None })
        .collect()
}

/// Whether `path` lies in a `.dagrun` directory below `root`.
fn in_state_dir(root: &Path, path: &Path) -> bool {
    path.strip_prefix(root).is_ok_and(|rest| rest.components().any(|c| c.as_os_str() == ".dagrun"))
}

/// The files under `roots` that some spec selects, with their stat and settle time.
fn scan(specs: &[Spec], roots: Vec<(PathBuf, bool)>) -> Vec<(PathBuf, Stat, Duration)> {
    let mut seen = HashSet::new();
    let files = roots.into_iter().flat_map(|(root, recursive)| scan::list_files(&root, recursive));
    files
        .filter(|p| seen.insert(p.clone()))
        .filter_map(|p| {
            let settle = settle_for(specs, &p)?;
            Some((file_stat(&p)?, settle, p))
        })
        .map(|(stat, settle, p)| (p, stat, settle))
        .collect()
}

/// Work done on the blocking pool.
#[derive(Debug)]
enum Done {
    Hashed(PathBuf, Hashed),
    Scanned { full: bool, files: Vec<(PathBuf, Stat, Duration)> },
}

/// Where the periodic full scan is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FullScan {
    Idle,
    Running,
    /// Running, and asked for again meanwhile (an overflow, a tick).
    RunningThenAgain,
}

/// Everything the loop owns; dropped (with the inotify watches) when the task ends.
#[derive(Debug)]
pub(crate) struct Loop {
    specs: Arc<[Spec]>,
    roots: Vec<Root>,
    watcher: RecommendedWatcher,
    events: UnboundedReceiver<notify::Result<Event>>,
    state: State,
    tasks: JoinSet<Done>,
    full_scan: FullScan,
    outbox: VecDeque<Landed>,
}

impl Loop {
    /// Sets up inotify and watches every base directory that exists.
    pub(crate) fn new(specs: Vec<Spec>, known: HashMap<PathBuf, FileStat>) -> Result<Loop, WatchError> {
        let (events_tx, events) = unbounded_channel();
        let config = notify::Config::default().with_follow_symlinks(false);
        let on_event = move |res| _ = events_tx.send(res);
        let watcher = RecommendedWatcher::new(on_event, config).map_err(|source| WatchError::Init { source })?;
        let roots = roots(&specs);
        let mut this = Loop {
            specs: specs.into(),
            roots,
            watcher,
            events,
            state: State::new(known),
            tasks: JoinSet::new(),
            full_scan: FullScan::Idle,
            outbox: VecDeque::new(),
        };
        match this.refresh_watches().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(this),
        }
    }

    /// Runs until the daemon's receiver (of `tx`) is gone, or the task is aborted.
    pub(crate) async fn run(mut self, rescan_every: Duration, tx: Sender<Landed>) {
        let mut rescan = tokio::time::interval_at(Instant::now() + rescan_every, rescan_every);
        rescan.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.request_full_scan();
        loop {
            while let Some(path) = self.state.next_hash(HASH_CONCURRENCY) {
                self.tasks.spawn_blocking(move || {
                    let hashed = std::panic::catch_unwind(|| scan::hash(&path)).unwrap_or(Hashed::Gone);
                    Done::Hashed(path, hashed)
                });
            }
            let deadline = self.state.next_deadline();
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                Some(event) = self.events.recv() => self.on_event(event),
                () = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                    self.state.due(Instant::now(), file_stat);
                }
                _ = rescan.tick() => self.request_full_scan(),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => self.on_done(done),
                permit = tx.reserve(), if !self.outbox.is_empty() => match (permit, self.outbox.pop_front()) {
                    (Ok(permit), Some(landed)) => permit.send(landed),
                    (Ok(_), None) => {}
                    (Err(_), _) => return,
                },
                () = tx.closed() => return,
            }
        }
    }

    fn on_event(&mut self, event: notify::Result<Event>) {
        let event = match event {
            Ok(event) => event,
            Err(_) => return self.request_full_scan(),
        };
        if event.need_rescan() {
            self.request_full_scan();
        }
        // inotify reports every open (the hashing's own too); only a write's close is a change.
        if let EventKind::Access(kind) = event.kind
            && kind != AccessKind::Close(AccessMode::Write)
        {
            return;
        }
        let moved_or_removed = matches!(event.kind, EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)));
        let now = Instant::now();
        for path in event.paths {
            if moved_or_removed {
                // A base directory moved away or deleted: the next rescan watches its successor.
                self.roots.iter_mut().filter(|r| r.path == path).for_each(|r| r.watched = None);
            }
            let path = self.as_given(path);
            self.touched(path, now);
        }
    }

    /// `path` under the workflow directory as the daemon spelled it (not symlink-resolved).
    fn as_given(&self, path: PathBuf) -> PathBuf {
        for s in self.specs.iter() {
            if let Some(rest) = s.canonical.as_ref().and_then(|c| path.strip_prefix(c).ok())
                && !path.starts_with(&s.dir)
            {
                return s.dir.join(rest);
            }
        }
        path
    }

    /// Something happened at `path`.
    fn touched(&mut self, path: PathBuf, now: Instant) {
        let awaited = |r: &Root| r.watched.is_none() && r.path.starts_with(&path);
        if scan::is_real_dir(&path) && self.roots.iter().any(awaited) {
            // A base directory (or one on the way to it) was created: watch and scan it now.
            return self.request_full_scan();
        }
        if scan::is_real_dir(&path) {
            // A directory created or moved in: the files it already holds raised no events.
            let inside = |r: &Root| r.recursive && r.path != path && path.starts_with(&r.path);
            if self.roots.iter().any(|r| inside(r) && !in_state_dir(&r.path, &path)) {
                self.spawn_scan(vec![(path, true)], false);
            }
        } else if let Some(settle) = settle_for(&self.specs, &path) {
            self.state.changed(path.clone(), file_stat(&path), settle, now);
        }
    }

    fn request_full_scan(&mut self) {
        match self.full_scan {
            FullScan::Idle => {
                self.refresh_watches();
                let roots = self.roots.iter().map(|r| (r.path.clone(), r.recursive)).collect();
                self.spawn_scan(roots, true);
                self.full_scan = FullScan::Running;
            }
            FullScan::Running | FullScan::RunningThenAgain => self.full_scan = FullScan::RunningThenAgain,
        }
    }

    fn spawn_scan(&mut self, roots: Vec<(PathBuf, bool)>, full: bool) {
        let specs = self.specs.clone();
        self.tasks.spawn_blocking(move || {
            let files = std::panic::catch_unwind(AssertUnwindSafe(|| scan(&specs, roots))).unwrap_or_default();
            Done::Scanned { full, files }
        });
    }

    fn on_done(&mut self, done: Result<Done, JoinError>) {
        let now = Instant::now();
        match done {
            Ok(Done::Hashed(path, hashed)) => {
                if let Some(stat) = self.state.hashed(path.clone(), hashed, now) {
                    self.emit(&path, stat);
                }
            }
            Ok(Done::Scanned { full, files }) => {
                for (path, stat, settle) in files {
                    self.state.found(path, stat, settle, now);
                }
                if full {
                    let again = self.full_scan == FullScan::RunningThenAgain;
                    self.full_scan = FullScan::Idle;
                    if again {
                        self.request_full_scan();
                    }
                }
            }
            // Only cancellation (the loop is ending): the tasks catch their own panics.
            Err(_) => {}
        }
    }

    /// Queues one [`Landed`] per spec selecting `path`.
    fn emit(&mut self, path: &Path, stat: FileStat) {
        for spec in self.specs.iter() {
            if let Some(rel_path) = spec.rel(path).filter(|rel| spec.glob.matches(rel)) {
                self.outbox.push_back(Landed { id: spec.id, rel_path, stat: stat.clone() });
            }
        }
    }

    /// Watches each base directory that exists and is not watched yet (or was replaced since).
    fn refresh_watches(&mut self) -> Vec<WatchError> {
        let mut errors = Vec::new();
        for root in &mut self.roots {
            let id = scan::dir_id(&root.path);
            if id.is_some() && id == root.watched {
                continue;
            }
            if root.watched.take().is_some() {
                let _ = self.watcher.unwatch(&root.path);
            }
            let Some(id) = id else {
                // Not there yet: watch the nearest ancestor that is, to see it created.
                let ancestor = root.path.ancestors().skip(1).find(|a| a.is_dir()).map(Path::to_path_buf);
                if let Some(a) = ancestor.filter(|a| root.waiting_on.as_ref() != Some(a))
                    && self.watcher.watch(&a, RecursiveMode::NonRecursive).is_ok()
                {
                    root.waiting_on = Some(a);
                }
                continue;
            };
            let mode = if root.recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
            match self.watcher.watch(&root.path, mode) {
                Ok(()) => root.watched = Some(id),
                Err(source) => errors.push(WatchError::Watch { path: root.path.clone(), source }),
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &str, glob: &str, settle_ms: u64) -> Spec {
        let glob = SpecGlob::new(glob).unwrap();
        Spec { id: 0, dir: dir.into(), canonical: None, glob, settle: Duration::from_millis(settle_ms) }
    }

    #[tokio::test]
    async fn a_queue_overflow_rescans_what_inotify_missed() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("in")).unwrap();
        let mut l = Loop::new(vec![spec(tmp.path().to_str().unwrap(), "in/*.csv", 50)], HashMap::new()).unwrap();
        std::fs::write(tmp.path().join("in/missed.csv"), "x").unwrap();
        assert_eq!(l.state.next_deadline(), None);
        l.on_event(Ok(Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan)));
        assert_eq!(l.full_scan, FullScan::Running);
        l.on_event(Ok(Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan)));
        assert_eq!(l.full_scan, FullScan::RunningThenAgain, "one full scan at a time");
        let done = l.tasks.join_next().await.unwrap();
        l.on_done(done);
        assert!(l.state.next_deadline().is_some(), "the missed file is settling");
        assert_eq!(l.full_scan, FullScan::Running, "the scan asked for meanwhile runs next");
    }

    #[test]
    fn roots_are_deduplicated_and_nested_ones_dropped() {
        let specs = [
            spec("/w", "landing/*.csv", 1),
            spec("/w", "landing/{date}.json", 1),
            spec("/w", "data/**/*.csv", 1),
            spec("/w", "data/sub/*.csv", 1),
            spec("/v", "*.csv", 1),
        ];
        let got: Vec<(String, bool)> =
            roots(&specs).into_iter().map(|r| (r.path.display().to_string(), r.recursive)).collect();
        assert_eq!(got, [("/v".into(), false), ("/w/data".into(), true), ("/w/landing".into(), false)]);
    }

    #[test]
    fn the_longest_settle_of_the_selecting_specs_wins() {
        let specs = [spec("/w", "in/*.csv", 100), spec("/w", "in/a.*", 300), spec("/x", "in/*.csv", 900)];
        assert_eq!(settle_for(&specs, Path::new("/w/in/a.csv")), Some(Duration::from_millis(300)));
        assert_eq!(settle_for(&specs, Path::new("/w/in/b.csv")), Some(Duration::from_millis(100)));
        assert_eq!(settle_for(&specs, Path::new("/w/in/b.txt")), None);
        assert_eq!(settle_for(&specs, Path::new("/w/.dagrun/in/b.csv")), None);
        assert_eq!(specs[0].rel(Path::new("/w/in/a.csv")).as_deref(), Some("in/a.csv"));
        assert_eq!(specs[0].rel(Path::new("/w")), None);
        assert!(in_state_dir(Path::new("/w"), Path::new("/w/a/.dagrun/b")));
        assert!(!in_state_dir(Path::new("/w"), Path::new("/w/a/b")));
    }
}
