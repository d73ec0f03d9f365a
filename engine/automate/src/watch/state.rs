//! The watcher's bookkeeping, free of I/O: which paths are settling, queued for hashing or being
//! hashed, the one deadline each settling path has, and what content was already seen.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::FileStat;

/// What decides whether a file is still changing: its size and modification time (ns).
pub(crate) type Stat = (u64, i128);

/// What hashing a settled file found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Hashed {
    /// The content digest, with the stat it was taken under (unchanged during hashing).
    Done(FileStat),
    /// The file changed while it was hashed: it is settling again from this stat.
    Changed(Stat),
    /// The file is gone (or cannot be read).
    Gone,
}

#[derive(Debug)]
enum Phase {
    /// Waiting until its deadline (the key of its single entry in `State::deadlines`).
    Settling((Instant, u64)),
    /// Settled, waiting for a hashing slot.
    Queued,
    /// Being hashed; `dirty` if it changed since it settled.
    Hashing { dirty: bool },
}

#[derive(Debug)]
struct Pending {
    stat: Stat,
    settle: Duration,
    phase: Phase,
}

/// Every path the watcher is busy with, and every file's last known content.
#[derive(Debug, Default)]
pub(crate) struct State {
    pending: HashMap<PathBuf, Pending>,
    deadlines: BTreeMap<(Instant, u64), PathBuf>,
    seq: u64,
    queue: VecDeque<PathBuf>,
    hashing: usize,
    known: HashMap<PathBuf, FileStat>,
}

impl State {
    /// Starts from what the daemon saw before (absolute path -> stat and digest).
    pub(crate) fn new(known: HashMap<PathBuf, FileStat>) -> State {
        State { known, ..State::default() }
    }

    /// An event touched `path` (a file some glob selects); `stat` is `None` when it is gone or
    /// is not a regular file. It settles `settle` after its last change.
    pub(crate) fn changed(&mut self, path: PathBuf, stat: Option<Stat>, settle: Duration, now: Instant) {
        let Some(stat) = stat else {
            if let Some(p) = self.pending.get_mut(&path) {
                match p.phase {
                    Phase::Hashing { ref mut dirty } => *dirty = true,
                    Phase::Settling(key) => {
                        self.deadlines.remove(&key);
                        self.pending.remove(&path);
                    }
                    // Left in the queue: `next_hash` skips paths no longer queued.
                    Phase::Queued => _ = self.pending.remove(&path),
                }
            }
            return;
        };
        match self.pending.get_mut(&path) {
            Some(Pending { phase: Phase::Hashing { dirty }, stat: s, .. }) => {
                *dirty = true;
                *s = stat;
            }
            _ => self.arm(path, stat, settle, now),
        }
    }

    /// A scan found the file `path` with `stat`: it settles unless it is already being looked
    /// at or its stat is the one last seen.
    pub(crate) fn found(&mut self, path: PathBuf, stat: Stat, settle: Duration, now: Instant) {
        let unchanged = self.known.get(&path).is_some_and(|k| (k.size, k.mtime_ns) == stat);
        if !unchanged && !self.pending.contains_key(&path) {
            self.arm(path, stat, settle, now);
        }
    }

    /// (Re)starts `path`'s settle time from `now`, replacing any deadline it had.
    fn arm(&mut self, path: PathBuf, stat: Stat, settle: Duration, now: Instant) {
        self.seq += 1;
        let key = (now + settle, self.seq);
        let old = self.pending.insert(path.clone(), Pending { stat, settle, phase: Phase::Settling(key) });
        if let Some(Pending { phase: Phase::Settling(old), .. }) = old {
            self.deadlines.remove(&old);
        }
        self.deadlines.insert(key, path);
    }

    /// When the next settling path is due, if any is settling.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first_key_value().map(|((at, _), _)| *at)
    }

    /// Looks at every path due by `now` with its current stat (`stat_of`): gone paths are
    /// dropped, changed ones settle again, unchanged ones are queued for hashing unless they
    /// still have the stat last seen.
    pub(crate) fn due(&mut self, now: Instant, stat_of: impl Fn(&Path) -> Option<Stat>) {
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let path = entry.remove();
            let Some((last, settle)) = self.pending.get(&path).map(|p| (p.stat, p.settle)) else { continue };
            match stat_of(&path) {
                None => _ = self.pending.remove(&path),
                Some(stat) if stat != last => self.arm(path, stat, settle, now),
                Some(stat) if self.known.get(&path).is_some_and(|k| (k.size, k.mtime_ns) == stat) => {
                    self.pending.remove(&path);
                }
                Some(_) => {
                    if let Some(p) = self.pending.get_mut(&path) {
                        p.phase = Phase::Queued;
                    }
                    self.queue.push_back(path);
                }
            }
        }
    }

    /// The next queued path to hash, if fewer than `limit` are being hashed.
    pub(crate) fn next_hash(&mut self, limit: usize) -> Option<PathBuf> {
        while self.hashing < limit {
            let path = self.queue.pop_front()?;
            if let Some(p) = self.pending.get_mut(&path).filter(|p| matches!(p.phase, Phase::Queued)) {
                p.phase = Phase::Hashing { dirty: false };
                self.hashing += 1;
                return Some(path);
            }
        }
        None
    }

    /// Records a hash of `path`; returns its stat when it is content not seen before (to emit).
    /// A file that changed since it settled settles again; one whose content is the known one
    /// (a `touch`) only has its stat updated.
    pub(crate) fn hashed(&mut self, path: PathBuf, hashed: Hashed, now: Instant) -> Option<FileStat> {
        let p = self.pending.remove(&path)?;
        let Phase::Hashing { dirty } = p.phase else {
            self.pending.insert(path, p);
            return None;
        };
        self.hashing -= 1;
        match hashed {
            Hashed::Gone => None,
            Hashed::Changed(stat) => {
                self.arm(path, stat, p.settle, now);
                None
            }
            Hashed::Done(fs) if dirty || (fs.size, fs.mtime_ns) != p.stat => {
                let stat = if dirty { p.stat } else { (fs.size, fs.mtime_ns) };
                self.arm(path, stat, p.settle, now);
                None
            }
            Hashed::Done(fs) => {
                let old = self.known.insert(path, fs.clone());
                old.is_none_or(|old| old.digest != fs.digest).then_some(fs)
            }
        }
    }

    /// Whether nothing is settling, queued or being hashed.
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.deadlines.is_empty() && self.hashing == 0
    }

    /// How many deadlines are armed (one at most per path).
    #[cfg(test)]
    pub(crate) fn timers(&self) -> usize {
        self.deadlines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_millis(100);

    fn fs(size: u64, mtime_ns: i128, digest: &str) -> FileStat {
        FileStat { size, mtime_ns, digest: digest.to_owned() }
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn one_timer_per_path_however_many_events() {
        let mut s = State::default();
        let t0 = Instant::now();
        for i in 0..100 {
            s.changed(p("/a"), Some((i, i as i128)), SETTLE, t0 + Duration::from_millis(i * 10));
        }
        assert_eq!(s.timers(), 1);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_millis(990) + SETTLE));
        s.changed(p("/a"), None, SETTLE, t0);
        assert!(s.is_idle(), "a file that vanishes before settling is dropped");
        assert_eq!(s.next_deadline(), None, "no timer while nothing is pending");
    }

    #[test]
    fn settles_then_hashes_then_emits_new_content_only() {
        let mut s = State::default();
        let t0 = Instant::now();
        s.changed(p("/a"), Some((3, 1)), SETTLE, t0);
        s.due(t0 + SETTLE / 2, |_| Some((3, 1)));
        assert_eq!(s.next_hash(4), None, "not due yet");
        s.due(t0 + SETTLE, |_| Some((3, 1)));
        assert_eq!(s.next_hash(4), Some(p("/a")));
        let emitted = s.hashed(p("/a"), Hashed::Done(fs(3, 1, "d1")), t0 + SETTLE);
        assert_eq!(emitted, Some(fs(3, 1, "d1")));
        assert!(s.is_idle());
        // A touch: new mtime, same content -> hashed, not emitted.
        s.changed(p("/a"), Some((3, 2)), SETTLE, t0);
        s.due(t0 + SETTLE, |_| Some((3, 2)));
        assert_eq!(s.next_hash(4), Some(p("/a")));
        assert_eq!(s.hashed(p("/a"), Hashed::Done(fs(3, 2, "d1")), t0), None);
        // Same stat as known: not even hashed.
        s.found(p("/a"), (3, 2), SETTLE, t0);
        assert!(s.is_idle());
        s.changed(p("/a"), Some((3, 2)), SETTLE, t0);
        s.due(t0 + SETTLE, |_| Some((3, 2)));
        assert_eq!(s.next_hash(4), None);
        assert!(s.is_idle());
    }

    #[test]
    fn a_file_still_changing_at_its_deadline_settles_again() {
        let mut s = State::default();
        let t0 = Instant::now();
        s.changed(p("/a"), Some((1, 1)), SETTLE, t0);
        s.due(t0 + SETTLE, |_| Some((2, 2)));
        assert_eq!(s.next_hash(4), None);
        assert_eq!(s.next_deadline(), Some(t0 + SETTLE * 2));
        s.due(t0 + SETTLE * 2, |_| None);
        assert!(s.is_idle(), "gone at its deadline: dropped");
    }

    #[test]
    fn hashing_is_bounded_and_changes_during_hashing_resettle() {
        let mut s = State::default();
        let t0 = Instant::now();
        for i in 0..10 {
            s.found(p(&format!("/f{i}")), (1, 1), SETTLE, t0);
        }
        s.due(t0 + SETTLE, |_| Some((1, 1)));
        let first: Vec<PathBuf> = std::iter::from_fn(|| s.next_hash(3)).collect();
        assert_eq!(first.len(), 3);
        s.changed(first[0].clone(), Some((5, 5)), SETTLE, t0 + SETTLE);
        assert_eq!(s.hashed(first[0].clone(), Hashed::Done(fs(1, 1, "x")), t0 + SETTLE), None, "dirty");
        assert_eq!(s.timers(), 1);
        assert_eq!(s.hashed(first[1].clone(), Hashed::Changed((2, 2)), t0 + SETTLE), None);
        assert_eq!(s.timers(), 2);
        assert_eq!(s.hashed(first[2].clone(), Hashed::Gone, t0 + SETTLE), None);
        let rest: Vec<PathBuf> = std::iter::from_fn(|| s.next_hash(3)).collect();
        assert_eq!(rest.len(), 3, "three slots free again");
    }

    #[test]
    fn known_content_is_never_an_event() {
        let mut s = State::new(HashMap::from([(p("/a"), fs(3, 1, "d1"))]));
        let t0 = Instant::now();
        s.found(p("/a"), (3, 9), SETTLE, t0);
        s.due(t0 + SETTLE, |_| Some((3, 9)));
        assert_eq!(s.next_hash(1), Some(p("/a")));
        assert_eq!(s.hashed(p("/a"), Hashed::Done(fs(3, 9, "d1")), t0), None);
        s.found(p("/a"), (3, 9), SETTLE, t0);
        assert!(s.is_idle(), "the new stat was recorded");
    }
}
