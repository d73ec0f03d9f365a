//! Existence checks of objects and entries relative to `objects/` and `actions/`: a quick hit
//! checks two per task, and a `stat` by a short relative path skips walking the whole state
//! directory path (and building it) every time.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::digest::{ActionKey, ObjectDigest};
use crate::store::Store;

/// Open handles on a store's `objects/` and `actions/` directories (for one run). Where they
/// cannot be opened (or off Unix), the checks fall back to the store's path-based ones.
#[derive(Debug)]
pub struct TopDirs {
    #[cfg(unix)]
    objects: Option<std::fs::File>,
    #[cfg(unix)]
    actions: Option<std::fs::File>,
}

impl TopDirs {
    /// Opens the directories of `store` (a missing one is simply not used).
    pub fn open(store: &Store) -> TopDirs {
        #[cfg(unix)]
        {
            let dir = |name: &str| std::fs::File::open(store.root().join(name)).ok();
            TopDirs { objects: dir("objects"), actions: dir("actions") }
        }
        #[cfg(not(unix))]
        {
            let _ = store;
            TopDirs {}
        }
    }

    /// Whether object `d` is in `store` (a regular file), as [`Store::has_object`].
    pub fn has_object(&self, store: &Store, d: &ObjectDigest) -> bool {
        let hex = d.0.to_hex();
        #[cfg(unix)]
        if let Some(dir) = &self.objects {
            return regular_file_mtime(dir, &format!("{}/{}", store.shards().dir(&hex), hex.as_str())).is_some();
        }
        store.has_object(d)
    }

    /// Whether an entry file is stored under `key`, marking it used like
    /// [`Store::touch_action`] unless it was marked within `fresh` (so a hit confirmed this way
    /// costs one `stat`; `cache gc --max-age` counts in days). The entry is not read.
    pub fn confirm_entry(&self, store: &Store, key: &ActionKey, fresh: Duration) -> bool {
        let Some(age) = self.entry_age(store, key) else { return false };
        if age > fresh {
            store.touch_action(key);
        }
        true
    }

    /// How long ago the entry under `key` was last marked used (its mtime; [`Duration::MAX`]
    /// when that is unknown or in the future, so that it is marked again), or `None` when there
    /// is no such entry.
    fn entry_age(&self, store: &Store, key: &ActionKey) -> Option<Duration> {
        let hex = key.0.to_hex();
        #[cfg(unix)]
        if let Some(dir) = &self.actions {
            let mtime = regular_file_mtime(dir, &format!("{}/{}.json", store.shards().dir(&hex), hex.as_str()))?;
            return Some(SystemTime::now().duration_since(mtime).unwrap_or(Duration::MAX));
        }
        let meta = std::fs::metadata(store.action_path(key)).ok().filter(|m| m.is_file())?;
        Some(meta.modified().ok().and_then(|t| SystemTime::now().duration_since(t).ok()).unwrap_or(Duration::MAX))
    }
}

/// The mtime of `rel` below `dir` when it is a regular file (links followed, as `metadata`).
#[cfg(unix)]
fn regular_file_mtime(dir: &std::fs::File, rel: &str) -> Option<SystemTime> {
    use rustix::fs::{AtFlags, FileType, statat};
    let st = statat(dir, Path::new(rel), AtFlags::empty()).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return None;
    }
    let secs = u64::try_from(st.st_mtime).ok()?;
    let nanos = u32::try_from(st.st_mtime_nsec).unwrap_or(0);
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::store::Durability;

    #[test]
    fn sees_what_the_store_sees() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
        let top = TopDirs::open(&store);
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let (d, _) = store.put_file(&file).unwrap();
        assert!(top.has_object(&store, &d) && store.has_object(&d));
        let other = ObjectDigest(Digest::of(b"y"));
        assert!(!top.has_object(&store, &other));
        let entry = crate::entry::sample_entry(&store, &file);
        store.put_action(&entry).unwrap();
        assert!(top.entry_age(&store, &entry.key).is_some_and(|a| a < Duration::from_secs(60)));
        assert_eq!(top.entry_age(&store, &ActionKey(Digest::of(b"none"))), None);
        // A directory where an object should be is not an object.
        std::fs::create_dir_all(store.object_path(&other)).unwrap();
        assert!(!top.has_object(&store, &other) && !store.has_object(&other));
        std::fs::remove_file(store.object_path(&d)).unwrap();
        assert!(!top.has_object(&store, &d));
    }
}
