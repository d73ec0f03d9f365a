//! The entry journal: during a group commit, each cache entry is also appended to one file, so
//! that the group is made durable by one `fdatasync` of it instead of a write-back of every
//! entry file (and, with `syncfs`, of every output the run wrote).
//!
//! A journal lives in `<state>/journal/` as `<boot id>.<pid>.<nanoseconds>.jsonl`: a header line,
//! then the entries as [`crate::entry_bytes`] writes them (one line each, sealed by its digest).
//! Each entry is renamed into place under `actions/` as before, and appended here after that.
//!
//! - After a power loss (a journal of another boot), the next holder of the state directory's
//!   lock replays it: every entry in it that no longer reads back from its file is written
//!   again, durably; then the journal is removed ([`replay`]).
//! - A journal of this boot needs no replay: the page cache holds every file it names. It is
//!   removed once a `syncfs` has written those files back, made in the background when a later
//!   run starts ([`Found::settle`]).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::digest::ActionKey;
use crate::entry::parse_entry;
use crate::store::{IoContext, RunLock, Store, StoreError, sync_dir, whole_lines};

/// The directory of the state directory that holds the journals.
pub(crate) const DIR: &str = "journal";

/// A journal's first line.
const HEADER: &[u8] = b"dagrun entry journal 1\n";

/// A journal of this boot is settled (`syncfs`, then removed) by a run that starts once it is
/// this old: by then the kernel has written its files back by itself (after 30 s by default),
/// so the `syncfs` that proves it has little left to write.
pub(crate) const SETTLE_AFTER: Duration = Duration::from_secs(60);

/// Beyond this many journals of this boot, the oldest are settled whatever their age.
pub(crate) const KEEP_AT_MOST: usize = 32;

/// The journal being written (see `durable.rs`, which holds it while group commits are open).
#[derive(Debug)]
pub(crate) struct Writer {
    file: File,
    path: PathBuf,
    /// Bytes were appended since the last [`Writer::sync`].
    unsynced: bool,
    /// The file's name is not durable yet.
    fresh: bool,
}

impl Writer {
    /// Creates a new journal in the state directory `root`, for this boot.
    pub(crate) fn create(root: &Path, boot: &str) -> io::Result<Writer> {
        let dir = root.join(DIR);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = dir.join(format!("{boot}.{}.{nanos}.jsonl", std::process::id()));
        let open = || File::options().append(true).create_new(true).open(&path);
        let mut file = match open() {
            // The first journal of this state directory.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&dir)?;
                open()?
            }
            r => r?,
        };
        file.write_all(HEADER)?;
        Ok(Writer { file, path, unsynced: true, fresh: true })
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry's bytes (a whole line).
    pub(crate) fn append(&mut self, entry: &[u8]) -> io::Result<()> {
        debug_assert_eq!(entry.last(), Some(&b'\n'));
        self.unsynced = true;
        self.file.write_all(entry)
    }

    /// Makes everything appended so far durable: the bytes, and the first time the file's name
    /// (its directory, and the state directory's entry for that directory, which a run killed
    /// earlier may have made without syncing it).
    pub(crate) fn sync(&mut self, root: &Path) -> Result<(), StoreError> {
        if self.unsynced {
            self.file.sync_data().at(&self.path)?;
            self.unsynced = false;
        }
        if self.fresh {
            let dir = root.join(DIR);
            sync_dir(&dir).at(&dir)?;
            sync_dir(root).at(root)?;
            self.fresh = false;
        }
        Ok(())
    }
}

/// The journals left in a state directory (by earlier runs, or a killed one).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Found {
    /// Of another boot (or any, when this boot cannot be told): to replay, newest first.
    pub replay: Vec<PathBuf>,
    /// Of this boot, oldest first, with when each was last written.
    pub this_boot: Vec<(SystemTime, PathBuf)>,
}

impl Found {
    /// Those of this boot older than [`SETTLE_AFTER`] at `now`, or beyond the [`KEEP_AT_MOST`]
    /// newest: to remove after a `syncfs`.
    pub(crate) fn settle(&self, now: SystemTime) -> Vec<PathBuf> {
        let excess = self.this_boot.len().saturating_sub(KEEP_AT_MOST);
        (self.this_boot.iter().enumerate())
            .filter(|(i, (written, _))| *i < excess || now.duration_since(*written).is_ok_and(|a| a >= SETTLE_AFTER))
            .map(|(_, (_, path))| path.clone())
            .collect()
    }
}

/// Lists the journals of the state directory `root`; `boot` is this boot's id.
pub(crate) fn scan(root: &Path, boot: Option<&str>) -> Found {
    let mut found = Found::default();
    let Ok(dir) = fs::read_dir(root.join(DIR)) else { return found };
    let mut replay = Vec::new();
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str().filter(|n| n.ends_with(".jsonl")) else { continue };
        match boot {
            Some(b) if name.split('.').next() == Some(b) => {
                let written = e.metadata().and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH);
                found.this_boot.push((written, e.path()));
            }
            _ => replay.push((written_ns(name), e.path())),
        }
    }
    found.this_boot.sort();
    replay.sort_by(|a, b| b.cmp(a));
    found.replay = replay.into_iter().map(|(_, p)| p).collect();
    found
}

/// When a journal was created, from its name (`<boot>.<pid>.<ns>.jsonl`); 0 if it does not say.
fn written_ns(name: &str) -> u128 {
    name.strip_suffix(".jsonl").and_then(|n| n.rsplit('.').next()).and_then(|ns| ns.parse().ok()).unwrap_or(0)
}

/// Writes back every file the journals of the state directory `root` cover: a `syncfs` of its
/// filesystem (unless `root_synced`: one just succeeded), and of `actions/`'s when that is
/// another (a mount inside it). Linux only: elsewhere an error.
pub(crate) fn sync_entries(root: &Path, root_synced: bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let dir = File::open(root)?;
        if !root_synced {
            rustix::fs::syncfs(&dir)?;
        }
        let actions = File::open(root.join("actions"))?;
        if actions.metadata()?.dev() != dir.metadata()?.dev() {
            rustix::fs::syncfs(&actions)?;
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (root, root_synced);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Removes `journals` once [`sync_entries`] has written back what they cover (`synced`: a
/// `syncfs` of `root`'s filesystem just succeeded); never `live` (one being written).
pub(crate) fn settle(root: &Path, journals: &[PathBuf], live: Option<&Path>, synced: bool) -> io::Result<()> {
    sync_entries(root, synced)?;
    for path in journals.iter().filter(|p| Some(p.as_path()) != live) {
        let _ = fs::remove_file(path);
    }
    Ok(())
}

impl Store {
    /// Replays the journals of another boot; keeps those of this boot that can go for the next
    /// group commit to settle. A journal that cannot be replayed now (a write fails) is kept and
    /// tried again by the next lock; its entries read as misses meanwhile.
    pub(crate) fn recover_journals(&self) {
        let found = scan(self.root(), crate::boot::boot_id());
        for path in &found.replay {
            let _ = replay(self, path);
        }
        *self.settle.lock().unwrap_or_else(|e| e.into_inner()) = found.settle(SystemTime::now());
    }

    /// Settles every journal of this boot now (`syncfs`, then removed), so that no replay after
    /// a power loss brings back an entry removed after this (by `cache gc` or `cache verify`,
    /// which call this holding the lock). Fails, keeping them, where there is no `syncfs`.
    pub(crate) fn settle_journals_now(&self, _lock: &RunLock) -> Result<(), StoreError> {
        let found = scan(self.root(), crate::boot::boot_id());
        let all: Vec<PathBuf> = found.this_boot.into_iter().map(|(_, p)| p).collect();
        if all.is_empty() {
            return Ok(());
        }
        settle(self.root(), &all, None, false).at(self.root())
    }
}

/// Writes again every entry of the journal at `path` that no longer reads back from its file
/// (absent, or damaged by the power loss), makes them durable, then removes the journal; returns
/// how many. Its last line for a key counts (replay journals newest first: an entry written
/// again by a newer one reads back). A line that does not read as a sealed entry (the last one,
/// cut short) is skipped, and so is a journal of another format.
pub(crate) fn replay(store: &Store, path: &Path) -> Result<usize, StoreError> {
    let bytes = fs::read(path).at(path)?;
    let mut restored = 0;
    // Where there is no `syncfs`, each entry is fsynced as it is written (as durability says).
    let linux = cfg!(target_os = "linux");
    if let Some(body) = bytes.strip_prefix(HEADER) {
        for line in whole_lines(body).split_inclusive(|&b| b == b'\n').rev() {
            let Some(key) = key_of(line).filter(|k| parse_entry(line, k).is_ok()) else { continue };
            let dest = store.action_path(&key);
            if !matches!(crate::entry::read_entry(&dest, &key), Ok(Some(_))) {
                match linux {
                    true => store.write_atomic_cheap(&dest, line)?,
                    false => store.write_atomic(&dest, line)?,
                }
                restored += 1;
            }
        }
    }
    if linux {
        sync_entries(store.root(), false).at(store.root())?;
    }
    fs::remove_file(path).at(path)?;
    Ok(restored)
}

/// The key an entry's bytes name (checked by [`parse_entry`] afterwards).
fn key_of(line: &[u8]) -> Option<ActionKey> {
    #[derive(serde::Deserialize)]
    struct Key {
        key: ActionKey,
    }
    serde_json::from_slice::<Key>(line).ok().map(|k| k.key)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::entry::{ActionEntry, entry_bytes, sample_entry_of as entry};
    use crate::store::Durability;

    fn setup() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::Fsync).unwrap();
        (dir, store)
    }

    fn ino(p: &Path) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap())
    }

    fn journal(store: &Store, boot: &str, lines: &[&[u8]]) -> PathBuf {
        let mut w = Writer::create(store.root(), boot).unwrap();
        for l in lines {
            w.append(l).unwrap();
        }
        w.sync(store.root()).unwrap();
        w.path
    }

    fn set_mtime(p: &Path, t: SystemTime) {
        File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
    }

    #[test]
    fn journals_of_another_boot_are_replayed_and_this_boots_settled_when_old_or_many() {
        let (_dir, store) = setup();
        let root = store.root();
        let older = journal(&store, "other-boot", &[]);
        let newer = journal(&store, "other-boot", &[]);
        let now = SystemTime::now();
        let young = journal(&store, "this-boot", &[]);
        set_mtime(&young, now);
        let found = scan(root, Some("this-boot"));
        assert_eq!(found.replay, vec![newer.clone(), older.clone()], "newest first");
        assert_eq!(found.settle(now), Vec::<PathBuf>::new());
        assert_eq!(found.settle(now + SETTLE_AFTER), vec![young.clone()]);
        // Without a boot id, every journal is replayed (which keeps what reads back).
        assert_eq!(scan(root, None).replay.len(), 3);
        // Beyond the newest KEEP_AT_MOST, the oldest go whatever their age.
        let first = journal(&store, "this-boot", &[]);
        set_mtime(&first, now - Duration::from_secs(10));
        for i in 0..KEEP_AT_MOST - 1 {
            set_mtime(&journal(&store, "this-boot", &[]), now + Duration::from_secs(i as u64));
        }
        assert_eq!(scan(root, Some("this-boot")).settle(now), vec![first]);
        // Anything else in the directory is not a journal.
        fs::write(root.join(DIR).join("notes.txt"), "x").unwrap();
        assert_eq!(scan(root, Some("this-boot")).replay, vec![newer, older]);
    }

    #[test]
    fn replay_restores_entries_lost_or_damaged_and_keeps_those_that_read_back() {
        let (dir, store) = setup();
        let lost = entry(&store, dir.path(), "lost");
        let torn = entry(&store, dir.path(), "torn");
        let kept = entry(&store, dir.path(), "kept");
        for e in [&lost, &torn, &kept] {
            store.put_action(e).unwrap();
        }
        // What a power loss can leave: an entry file gone, one cut short.
        fs::remove_file(store.action_path(&lost.key)).unwrap();
        let torn_bytes = entry_bytes(&torn);
        fs::write(store.action_path(&torn.key), &torn_bytes[..20]).unwrap();
        let kept_ino = ino(&store.action_path(&kept.key));
        let cut = &entry_bytes(&kept)[..30];
        let mut cut_line = cut.to_vec();
        cut_line.push(b'\n');
        // The last line for a key counts: an earlier one of the same run (written again since).
        let mut superseded = torn.clone();
        superseded.duration_ms += 1;
        let lines: [&[u8]; 5] =
            [&entry_bytes(&superseded), &entry_bytes(&lost), &torn_bytes, &entry_bytes(&kept), &cut_line];
        let path = journal(&store, "other-boot", &lines);
        // A cut last line without its newline, as a power loss leaves it.
        fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&entry_bytes(&lost)[..40]).unwrap();
        assert_eq!(replay(&store, &path).unwrap(), 2);
        for e in [lost, torn] {
            let back = store.load_action(&e.key).unwrap().expect("restored");
            assert_eq!(back, ActionEntry { digest: back.digest, ..e }, "as its last line says");
        }
        assert_eq!(ino(&store.action_path(&kept.key)), kept_ino, "not written again");
        assert!(!path.exists(), "a replayed journal is removed");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn gc_and_verify_settle_this_boots_journals_before_removing_anything() {
        let (dir, store) = setup();
        let count = || fs::read_dir(store.root().join(DIR)).map_or(0, |d| d.count());
        for gc in [true, false] {
            let group = store.group_commit();
            store.put_action(&entry(&store, dir.path(), &format!("{gc}"))).unwrap();
            group.finish().unwrap();
            assert_eq!(count(), 1);
            let lock = store.lock().unwrap();
            match gc {
                true => drop(store.gc(&lock, crate::GcOptions::default()).unwrap()),
                false => drop(store.verify(&lock).unwrap()),
            }
            assert_eq!(count(), 0, "gc: {gc}");
        }
    }

    #[test]
    fn a_journal_of_another_format_is_removed_without_replay() {
        let (dir, store) = setup();
        let e = entry(&store, dir.path(), "x");
        let path = store.root().join(DIR).join("b.1.2.jsonl");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut bytes = b"dagrun entry journal 9\n".to_vec();
        bytes.extend_from_slice(&entry_bytes(&e));
        fs::write(&path, bytes).unwrap();
        assert_eq!(replay(&store, &path).unwrap(), 0);
        assert_eq!(store.load_action(&e.key).unwrap(), None);
        assert!(!path.exists());
    }
}
