//! The state directory's indexes a run reads first (the stat cache and the last-keys index),
//! read on another thread while the caller still reads its workflow, and kept only when both
//! files are as they were once the run holds the state directory's lock.
//!
//! Both files are only ever replaced whole (written aside and renamed, or removed), so a file
//! whose inode, size, mtime and ctime are unchanged still holds what was read.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Instant;

use dagrun_cache::{StatCache, Store};

use crate::commit::LastKeys;

/// What identifies one version of a file (`None`: no file).
type Version = Option<(u64, u64, u64, i64, i64)>;

fn version(path: &Path) -> Version {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Some((m.dev(), m.ino(), m.size(), ns(m.mtime(), m.mtime_nsec()), ns(m.ctime(), m.ctime_nsec())))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The indexes as read ahead, with the versions of their files before they were read.
pub(crate) struct Indexes {
    pub stat: StatCache,
    pub keys: LastKeys,
    read: [(PathBuf, Version); 2],
    /// When they were read.
    at: Instant,
}

impl Indexes {
    /// Reads both indexes of `store` now.
    pub(crate) fn read(store: &Store) -> Indexes {
        let at = Instant::now();
        let files = [StatCache::path(store), LastKeys::path(store)];
        let read = files.map(|f| {
            let v = version(&f);
            (f, v)
        });
        Indexes { stat: StatCache::load(store), keys: LastKeys::take(store), read, at }
    }

    /// Whether both files are still as they were read (only off Unix is that never known).
    fn unchanged(&self) -> bool {
        cfg!(unix) && self.read.iter().all(|(f, v)| version(f) == *v)
    }
}

/// A read ahead of the indexes, taken by the engine's next run.
#[derive(Debug, Default)]
pub(crate) struct Preload(Mutex<Option<JoinHandle<Indexes>>>);

impl Preload {
    /// Starts reading the indexes of `store` on another thread (replacing an earlier read ahead).
    pub(crate) fn start(&self, store: std::sync::Arc<Store>) {
        let reading = std::thread::Builder::new().name("dagrun-preload".into()).spawn(move || Indexes::read(&store));
        *self.0.lock().expect("preload lock") = reading.ok();
    }

    /// The indexes for a run holding the lock of `store`: those read ahead when their files did
    /// not change since, else read now.
    pub(crate) fn take(&self, store: &Store) -> Indexes {
        let ahead = self.0.lock().expect("preload lock").take().and_then(|h| h.join().ok());
        kept_or_read(ahead, store)
    }
}

/// `ahead` when its files did not change since it was read, else the indexes read now.
fn kept_or_read(ahead: Option<Indexes>, store: &Store) -> Indexes {
    match ahead {
        Some(ix) if ix.unchanged() => ix,
        _ => Indexes::read(store),
    }
}

impl std::fmt::Debug for Indexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexes").field("read", &self.read).field("at", &self.at).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_cache::Durability;
    use std::sync::Arc;

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
        assert_eq!((ix.read[0].1, ix.read[1].1.is_some()), (None, true), "no stat cache yet; an index");
        assert!(ix.unchanged());
        let ahead = ix.at;
        let kept = kept_or_read(Some(ix), &store);
        assert_eq!(kept.at, ahead, "kept, not read again");

        // Another run ends between the read ahead and this run's lock: it writes a stat cache.
        std::fs::write(StatCache::path(&store), "written by another run").unwrap();
        assert!(!kept.unchanged());
        let again = kept_or_read(Some(kept), &store);
        assert!(again.at > ahead && again.read[0].1.is_some(), "read again: {again:?}");

        // Without a read ahead (taken already): read now.
        assert!(preload.take(&store).read[0].1.is_some());
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
        std::fs::File::options().write(true).open(&aside).unwrap().set_modified(mtime).unwrap();
        std::fs::rename(&aside, &keys).unwrap();
        assert!(!ix.unchanged());
    }
}
