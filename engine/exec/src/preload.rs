//! The state directory's indexes a run reads first (the stat cache and the last-keys index),
//! read on another thread while the caller still reads its workflow, and kept only when both
//! files are as they were once the run holds the state directory's lock.
//!
//! Both files are only ever replaced whole (written aside and renamed) or removed, never
//! edited in place. Each is read through one open handle, held until the check, so its inode
//! cannot be freed and its number given to a newer file meanwhile: the path still naming that
//! inode, with the same size and times, still names what was read; a path that named no file
//! then must name none now.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use dagrun_cache::{StatCache, Store};

use crate::commit::LastKeys;

/// One version of a file: device, inode, size, mtime and ctime (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(unix), allow(dead_code))]
struct Version {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Version {
    /// The version `meta` describes (`None` off Unix, where none is known).
    fn of(meta: &Metadata) -> Option<Version> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
            Some(Version {
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.size(),
                mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
                ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }
}

/// One index file as it was when read: held open (`None`: there was none).
#[derive(Debug)]
struct Seen {
    path: PathBuf,
    file: Option<(File, Option<Version>)>,
}

impl Seen {
    /// Opens `path` and reads it whole through that handle: its bytes, `None` when there is no
    /// file or it cannot be read (then the version is unknown: never unchanged).
    fn read(path: PathBuf) -> (Seen, Option<Vec<u8>>) {
        let Ok(mut f) = File::open(&path) else { return (Seen { path, file: None }, None) };
        let v = f.metadata().ok().and_then(|m| Version::of(&m));
        let mut bytes = Vec::new();
        let (v, bytes) = match f.read_to_end(&mut bytes) {
            Ok(_) => (v, Some(bytes)),
            Err(_) => (None, None),
        };
        (Seen { path, file: Some((f, v)) }, bytes)
    }

    /// Whether the path still names what was read: no file then and now, or the same version of
    /// the same file (never known off Unix).
    fn unchanged(&self) -> bool {
        let now = std::fs::metadata(&self.path);
        match &self.file {
            None => now.is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound),
            Some((_, then)) => then.is_some() && now.ok().and_then(|m| Version::of(&m)) == *then,
        }
    }
}

/// The indexes, with their files as they were read.
pub(crate) struct Indexes {
    pub stat: StatCache,
    pub keys: LastKeys,
    seen: [Seen; 2],
    /// When they were read.
    at: Instant,
}

impl Indexes {
    /// Reads both indexes of `store` now.
    pub(crate) fn read(store: &Store) -> Indexes {
        let at = Instant::now();
        // One file's bytes at a time in memory.
        let (stat_file, bytes) = Seen::read(StatCache::path(store));
        let stat = StatCache::from_bytes(store, bytes.as_deref());
        drop(bytes);
        let (keys_file, bytes) = Seen::read(LastKeys::path(store));
        let text = bytes.map(|b| String::from_utf8(b).unwrap_or_default()).unwrap_or_default();
        Indexes { stat, keys: LastKeys::from_text(store, &text), seen: [stat_file, keys_file], at }
    }

    fn unchanged(&self) -> bool {
        self.seen.iter().all(Seen::unchanged)
    }
}

impl std::fmt::Debug for Indexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexes").field("seen", &self.seen).field("at", &self.at).finish_non_exhaustive()
    }
}

/// A read ahead of the indexes, taken by the engine's next run.
#[derive(Debug, Default)]
pub(crate) struct Preload(Mutex<Option<JoinHandle<Indexes>>>);

impl Preload {
    /// Starts reading the indexes of `store` on another thread (replacing an earlier read
    /// ahead). Not off Unix, where a read ahead could never be shown unchanged.
    pub(crate) fn start(&self, store: Arc<Store>) {
        if cfg!(unix) {
            let reading =
                std::thread::Builder::new().name("dagrun-preload".into()).spawn(move || Indexes::read(&store));
            *self.0.lock().expect("preload lock") = reading.ok();
        }
    }

    /// The indexes for a run holding the lock of `store`: those read ahead when their files did
    /// not change since, else read now.
    pub(crate) fn take(&self, store: &Store) -> Indexes {
        let ahead = self.0.lock().expect("preload lock").take().and_then(|h| h.join().ok());
        kept_or_read(ahead, store)
    }
}

/// `ahead` when its files did not change since it was read, else the indexes read now (the
/// stale ones freed first).
fn kept_or_read(ahead: Option<Indexes>, store: &Store) -> Indexes {
    if let Some(ix) = ahead {
        if ix.unchanged() {
            return ix;
        }
        drop(ix);
    }
    Indexes::read(store)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use dagrun_cache::Durability;

    fn store() -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s"), Durability::NoFsync).unwrap());
        (dir, store)
    }

    #[test]
    fn a_read_ahead_is_kept_while_its_files_are_unchanged_and_read_again_after_a_change() {
        let (_dir, store) = store();
        std::fs::write(LastKeys::path(&store), "").unwrap();
        let preload = Preload::default();
        preload.start(store.clone());
        let ix = preload.take(&store);
        assert!(ix.seen[0].file.is_none() && ix.seen[1].file.is_some(), "no stat cache yet; an index: {ix:?}");
        let ahead = ix.at;
        let kept = kept_or_read(Some(ix), &store);
        assert_eq!(kept.at, ahead, "kept, not read again");

        // Another run ends between the read ahead and this run's lock: it writes a stat cache.
        std::fs::write(StatCache::path(&store), "written by another run").unwrap();
        assert!(!kept.unchanged());
        let again = kept_or_read(Some(kept), &store);
        assert!(again.at > ahead && again.seen[0].file.is_some(), "read again: {again:?}");
        assert!(again.unchanged());

        // An index removed (a run's first change removes it until the run saves it again).
        std::fs::remove_file(LastKeys::path(&store)).unwrap();
        assert!(!again.unchanged());

        // Without a read ahead (taken already): read now.
        assert!(preload.take(&store).unchanged());
    }

    #[test]
    fn a_file_replaced_by_a_rename_is_a_change_even_with_the_same_size_and_mtime() {
        let (dir, store) = store();
        let keys = LastKeys::path(&store);
        std::fs::write(&keys, "one").unwrap();
        let ix = Indexes::read(&store);
        let aside = dir.path().join("aside");
        std::fs::write(&aside, "two").unwrap();
        let mtime = std::fs::metadata(&keys).unwrap().modified().unwrap();
        File::options().write(true).open(&aside).unwrap().set_modified(mtime).unwrap();
        std::fs::rename(&aside, &keys).unwrap();
        assert!(!ix.unchanged());
    }
}
