//! Group commits: during a run, the fsyncs that make objects and cache entries survive a power
//! loss are made by a background thread instead of on each task's path, and the run waits for
//! them before it ends ([`crate::Store::group_commit`]). Where this boot has an id (Linux), cache
//! entries are not left to that thread: each is appended to the group's journal, and the group
//! ends with one `fdatasync` of it (see `journal.rs`).
//!
//! Why this is safe: a file is renamed into place complete (written in `tmp/` first), so a
//! crash of dagrun (`kill -9`) sees exactly what an inline fsync would have left; only a power
//! loss can leave an entry or object incomplete or missing (an object before its group is
//! flushed; a journaled entry before the kernel writes it back, which the journal then brings
//! back), and neither is ever used: an entry's digest is checked when it is read, every
//! object's hash and size while it is restored, and a mismatch is a miss (see docs/cli.md, "How
//! it is written").

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::journal;
use crate::store::StoreError;

/// Files queued beyond this are synced by the writer itself, so that a slow disk bounds the
/// number of files held open instead of letting the queue grow.
const MAX_QUEUED: usize = 256;

/// How long files queued during a group gather before they are synced together: writing them
/// back in the background as the run goes leaves little for the group's end to wait for.
const GATHER: Duration = Duration::from_millis(25);

/// The background thread and what it still has to sync.
#[derive(Debug)]
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    /// The state directory.
    root: PathBuf,
}

/// The entry journal while group commits are open: created by the first entry, closed when
/// the last group ends.
#[derive(Debug, Default)]
struct Journal {
    writer: Option<journal::Writer>,
    /// Creating or appending failed: until the groups end, entries are synced as files again.
    broken: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// The entry journal of the open group commits. Taken before `queue` when both are.
    journal: Mutex<Journal>,
    /// Signalled when work is queued or the syncer is closed.
    work: Condvar,
    /// Signalled when the queue is empty and nothing is being synced.
    idle: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    /// Complete files already renamed into place, with their final path (for errors); the
    /// directories they were renamed into are made durable with them.
    files: Vec<(File, PathBuf)>,
    /// When the oldest file in `files` was queued.
    first: Option<Instant>,
    /// A batch is being synced.
    busy: bool,
    /// The first failure since the last group ended.
    error: Option<StoreError>,
    /// Journals whose files are to be written back by a `syncfs`, then removed (see
    /// [`Syncer::settle`]).
    settle: Vec<PathBuf>,
    /// Group commits open.
    groups: usize,
    closed: bool,
    /// Every file ever queued, for tests (the queue itself empties as the thread goes).
    #[cfg(test)]
    queued: Vec<PathBuf>,
}

/// A group commit ([`crate::Store::group_commit`]), ended by [`GroupCommit::finish`] or, without
/// its result, when dropped.
#[derive(Debug)]
#[must_use = "a group commit ends with `finish`, which reports a failed fsync"]
pub struct GroupCommit<'a> {
    syncer: Option<&'a Syncer>,
}

impl<'a> GroupCommit<'a> {
    /// `None`: nothing to group (no fsync at all).
    pub(crate) fn open(syncer: Option<&'a Syncer>) -> GroupCommit<'a> {
        if let Some(s) = syncer {
            s.shared.lock().groups += 1;
        }
        GroupCommit { syncer }
    }

    /// Ends the group: waits until everything written in it is synced. An error is the first
    /// fsync that failed (the files are in place, but may not survive a power loss).
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.end()
    }

    fn end(&mut self) -> Result<(), StoreError> {
        let Some(s) = self.syncer.take() else { return Ok(()) };
        let journaled = s.end_group();
        s.shared.work.notify_one();
        let queued = s.wait();
        journaled.and(queued)
    }
}

impl Drop for GroupCommit<'_> {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

impl Syncer {
    /// Starts the thread for the store at `root`. The directory is opened now and held: a
    /// write-back error on its filesystem from then on is reported by the next `syncfs` of it.
    pub(crate) fn start(root: &Path) -> Syncer {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let root = Root::open(root);
        // No thread, no group commit: every write is then synced inline.
        let path = root.path.clone();
        let spawned = std::thread::Builder::new().name("dagrun-sync".into()).spawn(move || worker.run(root));
        if spawned.is_err() {
            shared.lock().closed = true;
        }
        Syncer { shared, root: path }
    }

    /// Appends a cache entry's bytes (its file already renamed into place) to the group's
    /// journal. `false` when it was not: no boot id, no open group, or the journal failed; the
    /// caller then syncs the file as any other.
    pub(crate) fn journal(&self, entry: &[u8]) -> bool {
        let Some(boot) = crate::boot::boot_id() else { return false };
        // Under the journal's lock, which the end of a group takes too: an entry is either
        // appended before the last group syncs the journal, or not journaled at all.
        let mut j = self.shared.journal();
        if j.broken || !self.grouped() {
            return false;
        }
        if j.writer.is_none() {
            match journal::Writer::create(&self.root, boot) {
                Ok(w) => j.writer = Some(w),
                Err(_) => j.broken = true,
            }
        }
        let appended = j.writer.as_mut().is_some_and(|w| w.append(entry).is_ok());
        // A failed append may leave part of a line: the next entry would be lost with it.
        j.broken |= !appended;
        appended
    }

    /// Ends a group: makes the journal durable and, when it was the last group, closes it.
    fn end_group(&self) -> Result<(), StoreError> {
        let mut j = self.shared.journal();
        let last = {
            let mut q = self.shared.lock();
            q.groups -= 1;
            q.groups == 0
        };
        let synced = j.writer.as_mut().map_or(Ok(()), |w| w.sync(&self.root));
        if last {
            *j = Journal::default();
        }
        synced
    }

    /// Removes `journals` (of this boot) once a `syncfs` made in the background has written back
    /// the files they hold, so they are not needed after a power loss. Not waited for by a group.
    pub(crate) fn settle(&self, journals: Vec<PathBuf>) {
        if journals.is_empty() {
            return;
        }
        self.shared.lock().settle.extend(journals);
        self.shared.work.notify_one();
    }

    /// Whether a group commit is open (writes then leave their fsyncs to this thread).
    pub(crate) fn grouped(&self) -> bool {
        let q = self.shared.lock();
        q.groups > 0 && !q.closed
    }

    /// Queues `file` (renamed into place at `path`) and `path`'s directory. Returns the file
    /// when the caller must sync it itself (queue full, or no thread).
    pub(crate) fn push(&self, file: File, path: &Path) -> Option<File> {
        let mut q = self.shared.lock();
        if q.closed || q.files.len() >= MAX_QUEUED {
            return Some(file);
        }
        let was_empty = q.files.is_empty();
        if was_empty {
            q.first = Some(Instant::now());
        }
        #[cfg(test)]
        q.queued.push(path.to_owned());
        q.files.push((file, path.to_owned()));
        // The thread only has something to decide when a batch starts or is full.
        if was_empty || q.files.len() >= MAX_QUEUED {
            self.shared.work.notify_one();
        }
        None
    }

    /// Waits until everything queued so far is synced; the first failure since the last wait.
    fn wait(&self) -> Result<(), StoreError> {
        let mut q = self.shared.lock();
        while q.busy || !q.files.is_empty() {
            q = self.shared.idle.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        q.error.take().map_or(Ok(()), Err)
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // The thread syncs what is queued, then exits.
        self.shared.lock().closed = true;
        self.shared.work.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Settles journals (see [`Syncer::settle`]), never the one being written; `synced`: a
    /// `syncfs` of the state directory's filesystem just succeeded. Its errors are not a
    /// group's: the journals are then left for a later run.
    fn settle(&self, root: &Path, journals: Vec<PathBuf>, synced: bool) {
        if journals.is_empty() {
            return;
        }
        let live = self.journal().writer.as_ref().map(|w| w.path().to_owned());
        let _ = journal::settle(root, &journals, live.as_deref(), synced);
    }

    /// The thread: while a group is open it lets files gather (up to [`MAX_QUEUED`]); then it
    /// makes them all durable at once ([`sync_batch`]).
    fn run(&self, root: Root) {
        loop {
            let files = {
                let mut q = self.lock();
                loop {
                    if q.closed || (!q.files.is_empty() && (q.groups == 0 || q.files.len() >= MAX_QUEUED)) {
                        break;
                    }
                    let Some(first) = q.first else {
                        if !q.settle.is_empty() {
                            break;
                        }
                        q = self.work.wait(q).unwrap_or_else(|e| e.into_inner());
                        continue;
                    };
                    let left = GATHER.saturating_sub(first.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    q = self.work.wait_timeout(q, left).unwrap_or_else(|e| e.into_inner()).0;
                }
                q.first = None;
                if q.closed {
                    // Settling is never urgent: not started when the store is being dropped.
                    q.settle.clear();
                }
                if q.files.is_empty() && q.settle.is_empty() {
                    return;
                }
                // A group waits for its files, not for journals being settled.
                q.busy = !q.files.is_empty();
                (std::mem::take(&mut q.files), std::mem::take(&mut q.settle))
            };
            let (files, settle) = files;
            let batch = !files.is_empty();
            let error = if batch { sync_batch(&root, files) } else { None };
            {
                let mut q = self.lock();
                q.busy = false;
                let synced = batch && error.is_none() && root.dir.is_some();
                if q.error.is_none() {
                    q.error = error;
                }
                if q.files.is_empty() {
                    self.idle.notify_all();
                }
                drop(q);
                // After the group's wait is released: a group never waits for settling.
                self.settle(&root.path, settle, synced);
            }
        }
    }
}

/// The store's directory, held open by the thread (see [`Syncer::start`]).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Root {
    /// `None` when it could not be opened: every file is then synced by itself.
    dir: Option<(File, u64)>,
    path: PathBuf,
}

impl Root {
    fn open(path: &Path) -> Root {
        let dir = File::open(path).ok().and_then(|f| {
            let dev = device(&f)?;
            Some((f, dev))
        });
        Root { dir, path: path.to_owned() }
    }
}

#[cfg(unix)]
fn device(f: &File) -> Option<u64> {
    std::os::unix::fs::MetadataExt::dev(&f.metadata().ok()?).into()
}

#[cfg(not(unix))]
fn device(_f: &File) -> Option<u64> {
    None
}

/// `syncfs` of the store's filesystem; returns its error and the files it does not cover.
#[cfg(target_os = "linux")]
fn sync_filesystem(root: &Root, files: Vec<(File, PathBuf)>) -> (Option<StoreError>, Vec<(File, PathBuf)>) {
    let Some((dir, dev)) = &root.dir else { return (None, files) };
    let error = rustix::fs::syncfs(dir).err().map(|e| StoreError::Io { path: root.path.clone(), source: e.into() });
    (error, files.into_iter().filter(|(f, _)| device(f) != Some(*dev)).collect())
}

/// Elsewhere every file is synced by itself.
#[cfg(not(target_os = "linux"))]
fn sync_filesystem(_root: &Root, files: Vec<(File, PathBuf)>) -> (Option<StoreError>, Vec<(File, PathBuf)>) {
    (None, files)
}

/// Makes a batch of files, and the renames that put them in place, durable. On Linux: one
/// `syncfs` of the store's filesystem, which writes back every dirty file and directory of that
/// filesystem and flushes the device once, instead of one flush per file and per directory
/// (write-back errors are reported by `syncfs` since Linux 5.8); a file on another filesystem
/// (a mount inside the store), or one whose filesystem cannot be told, is synced by itself.
fn sync_batch(root: &Root, files: Vec<(File, PathBuf)>) -> Option<StoreError> {
    let (mut error, alone) = sync_filesystem(root, files);
    let mut dirs = std::collections::BTreeSet::new();
    for (file, path) in alone {
        if let Err(source) = file.sync_data() {
            error.get_or_insert(StoreError::Io { path: path.clone(), source });
        }
        dirs.insert(path.parent().unwrap_or(Path::new(".")).to_owned());
    }
    for dir in dirs {
        if let Err(source) = crate::store::sync_dir(&dir) {
            error.get_or_insert(StoreError::Io { path: dir, source });
        }
    }
    error
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    use std::time::Duration;

    #[cfg(target_os = "linux")]
    use crate::entry::sample_entry_of as entry;
    use crate::store::{Durability, Store};

    #[test]
    fn in_a_group_files_are_in_place_at_once_and_synced_when_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::Fsync).unwrap();
        let src = dir.path().join("out.txt");
        let group = store.group_commit();
        let mut digests = Vec::new();
        for i in 0..600 {
            // More than the queue holds: the rest are synced by the writer.
            std::fs::write(&src, format!("output {i}\n")).unwrap();
            let (digest, _) = store.put_file(&src).unwrap();
            assert!(store.has_object(&digest), "renamed into place before any fsync");
            digests.push(digest);
        }
        assert!(store.syncer.get().unwrap().grouped());
        group.finish().unwrap();
        let syncer = store.syncer.get().unwrap();
        assert!(!syncer.grouped(), "writes after the group sync inline again");
        let q = syncer.shared.lock();
        assert!(q.files.is_empty() && !q.busy, "nothing left to sync");
        drop(q);
        for d in digests {
            assert_eq!(crate::digest::hash_file(&store.object_path(&d)).unwrap().0, d);
        }
    }

    #[cfg(target_os = "linux")]
    fn journals(store: &Store) -> Vec<std::path::PathBuf> {
        let dir = store.root().join(crate::journal::DIR);
        let mut v: Vec<_> = std::fs::read_dir(dir).map_or(vec![], |d| d.map(|e| e.unwrap().path()).collect());
        v.sort();
        v
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_groups_entries_are_journaled_and_each_group_has_a_journal_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::Fsync).unwrap();
        let group = store.group_commit();
        let entries: Vec<_> = (0..3).map(|i| entry(&store, dir.path(), &format!("out {i}"))).collect();
        for e in &entries {
            store.put_action(e).unwrap();
            assert_eq!(store.load_action(&e.key).unwrap().map(|e| e.key), Some(e.key), "in place at once");
        }
        group.finish().unwrap();
        let [journal] = &journals(&store)[..] else { panic!("one journal: {:?}", journals(&store)) };
        let name = journal.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(crate::boot::boot_id().unwrap()), "{name}");
        let mut want = b"dagrun entry journal 1\n".to_vec();
        for e in &entries {
            want.extend(crate::entry::entry_bytes(e));
        }
        assert_eq!(std::fs::read(journal).unwrap(), want);
        // Outside a group an entry is synced by itself; the next group starts a new journal.
        store.put_action(&entry(&store, dir.path(), "alone")).unwrap();
        assert_eq!(journals(&store).len(), 1);
        let group = store.group_commit();
        store.put_action(&entry(&store, dir.path(), "later")).unwrap();
        group.finish().unwrap();
        assert_eq!(journals(&store).len(), 2);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_entry_is_journaled_only_inside_a_group_and_when_a_journal_can_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::Fsync).unwrap();
        let group = store.group_commit();
        let syncer = store.syncer.get().unwrap();
        let line = crate::entry::entry_bytes(&entry(&store, dir.path(), "x"));
        assert!(syncer.journal(&line));
        group.finish().unwrap();
        assert!(!syncer.journal(&line), "the group has ended");
        // Where the journals go is taken: no journal can be created, and the entries are then
        // synced as files (still in place, no journal).
        for j in journals(&store) {
            std::fs::remove_file(j).unwrap();
        }
        std::fs::remove_dir(store.root().join(crate::journal::DIR)).unwrap();
        std::fs::write(store.root().join(crate::journal::DIR), "").unwrap();
        let group = store.group_commit();
        assert!(!syncer.journal(&line));
        let e = entry(&store, dir.path(), "y");
        store.put_action(&e).unwrap();
        group.finish().unwrap();
        assert_eq!(store.load_action(&e.key).unwrap().map(|e| e.key), Some(e.key));
    }

    #[test]
    fn in_a_group_a_reused_object_is_synced_with_the_groups_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::Fsync).unwrap();
        let src = dir.path().join("out.txt");
        std::fs::write(&src, "the same bytes\n").unwrap();
        // Stored (and synced by itself) outside a group, as by a run killed before its batch.
        let (digest, _) = store.put_file(&src).unwrap();
        let group = store.group_commit();
        assert_eq!(store.put_file(&src).unwrap().0, digest, "reused");
        let queued = store.syncer.get().unwrap().shared.lock().queued.clone();
        assert_eq!(queued, vec![store.object_path(&digest)]);
        group.finish().unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_journal_of_this_boot_is_settled_by_a_later_run_once_old() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::Fsync).unwrap();
        let group = store.group_commit();
        store.put_action(&entry(&store, dir.path(), "x")).unwrap();
        group.finish().unwrap();
        let [journal] = &journals(&store)[..] else { panic!("one journal") };
        // A run soon after keeps it.
        drop(store.lock().unwrap());
        store.group_commit().finish().unwrap();
        assert!(journal.exists());
        let old = std::time::SystemTime::now() - crate::journal::SETTLE_AFTER - Duration::from_secs(2);
        std::fs::File::options().write(true).open(journal).unwrap().set_modified(old).unwrap();
        drop(store.lock().unwrap());
        store.group_commit().finish().unwrap();
        // Removed by the thread after its `syncfs`, which the group does not wait for.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while journal.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!journal.exists(), "settled");
    }

    #[test]
    fn without_fsync_there_is_no_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
        store.group_commit().finish().unwrap();
        assert!(store.syncer.get().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn an_object_cut_short_is_replaced_and_one_already_whole_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::NoFsync).unwrap();
        let src = dir.path().join("out.txt");
        std::fs::write(&src, "the whole output\n").unwrap();
        let (digest, size) = store.put_file(&src).unwrap();
        let path = store.object_path(&digest);
        let inode = |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let first = inode(&path);
        assert_eq!(store.put_file(&src).unwrap(), (digest, size));
        assert_eq!(inode(&path), first, "reused, not written again");
        // What a power loss can leave: the object's name with fewer bytes.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "the wh").unwrap();
        assert_eq!(store.put_file(&src).unwrap(), (digest, size));
        assert_eq!(std::fs::read(&path).unwrap(), b"the whole output\n");
    }

    #[test]
    fn a_large_output_is_hashed_while_copied() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::Fsync).unwrap();
        let src = dir.path().join("big.bin");
        let bytes: Vec<u8> = (0..(3 << 19) + 7).map(|i: u32| (i % 251) as u8).collect();
        std::fs::write(&src, &bytes).unwrap();
        let group = store.group_commit();
        let (digest, size) = store.put_file(&src).unwrap();
        assert_eq!((digest, size), crate::digest::hash_file(&src).unwrap());
        assert_eq!(store.put_file(&src).unwrap(), (digest, size), "stored once, then reused");
        group.finish().unwrap();
        assert_eq!(std::fs::read(store.object_path(&digest)).unwrap(), bytes);
        let left = std::fs::read_dir(store.root().join("tmp")).unwrap().count();
        assert_eq!(left, 0, "no temp file left behind");
    }
}
