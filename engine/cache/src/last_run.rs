//! Each task's last key with the inputs it was hashed from (`tasks/<workflow>.<task>.json`),
//! kept to explain the next miss: a hard link to the cache entry under that key, which costs no
//! file written, or a record of its own when there is no entry to link.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::ActionKey;
use crate::entry::{ENTRY_VERSION, ENTRY_VERSION_PLAIN, parse_entry};
use crate::key::KeyInputs;
use crate::store::{IoContext, LAYOUT_VERSION, Store, StoreError, rename_into};

// A task record tells its two forms apart by `version`.
const _: () = assert!(LAYOUT_VERSION != ENTRY_VERSION && LAYOUT_VERSION != ENTRY_VERSION_PLAIN);

/// A task's most recent key inputs, kept to explain the next miss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// [`LAYOUT_VERSION`].
    pub version: u32,
    /// The key of that run.
    pub key: ActionKey,
    /// Its inputs.
    pub inputs: KeyInputs,
}

impl Store {
    fn last_path(&self, task: &str) -> PathBuf {
        self.root().join("tasks").join(format!("{task}.json"))
    }

    /// The key inputs of `task`'s latest run, if any. The file is either a record of its own
    /// ([`LAYOUT_VERSION`]) or a link to the cache entry of that key ([`ENTRY_VERSION`] or
    /// [`ENTRY_VERSION_PLAIN`]), which is
    /// checked as any entry is read: a damaged one reads as no record. (After an `ENTRY_VERSION`
    /// change, links to older entries read as no record: each task's next run links anew.)
    pub fn last_run(&self, task: &str) -> Option<LastRun> {
        let bytes = fs::read(self.last_path(task)).ok()?;
        let rec = serde_json::from_slice::<LastRun>(&bytes).ok()?;
        match rec.version {
            LAYOUT_VERSION => Some(rec),
            ENTRY_VERSION | ENTRY_VERSION_PLAIN => parse_entry(&bytes, &rec.key).ok().map(|e| LastRun {
                version: LAYOUT_VERSION,
                key: e.key,
                inputs: e.inputs,
            }),
            _ => None,
        }
    }

    /// Records `task`'s latest key inputs (skipped when the record already reads as `key`).
    /// `inputs` must be what `key` was hashed from. When the cache entry under `key` exists (it
    /// holds those same inputs), the record is a hard link to it: no file is created. Otherwise
    /// (no entry, a file system without hard links, or a replaced record that does not read
    /// back, as when it links a damaged entry) it is a record of its own.
    pub fn set_last_run(&self, task: &str, key: ActionKey, inputs: &KeyInputs) -> Result<(), StoreError> {
        let path = self.last_path(task);
        let entry = self.action_path(&key);
        // A task's first record: one link to an entry that was just written or checked, with
        // nothing to read first or to replace.
        let first = fs::hard_link(&entry, &path);
        if first.is_ok() {
            return Ok(());
        }
        if self.last_run(task).is_some_and(|l| l.key == key) {
            return Ok(());
        }
        // Over an older record (only if there is one: the first link failed for another reason
        // otherwise, which linking again would not mend).
        let exists = first.is_err_and(|e| e.kind() == io::ErrorKind::AlreadyExists);
        if exists && self.replace_link(&entry, &path).is_ok() && self.last_run(task).is_some_and(|l| l.key == key) {
            return Ok(());
        }
        let rec = LastRun { version: LAYOUT_VERSION, key, inputs: inputs.clone() };
        self.write_atomic_cheap(&path, &serde_json::to_vec(&rec).expect("serializes"))
    }

    /// Makes `dest` a hard link to `entry`, replacing what is there atomically.
    fn replace_link(&self, entry: &Path, dest: &Path) -> Result<(), StoreError> {
        let tmp = self.temp_path();
        fs::hard_link(entry, &tmp).at(entry)?;
        let placed = rename_into(&tmp, dest);
        // Also after a success: renaming onto another link to the same file (a record that links
        // this entry but read as damaged) leaves `tmp` in place.
        let _ = fs::remove_file(&tmp);
        placed
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::entry::{ActionEntry, sample_entry};
    use crate::store::Durability;

    /// A store and an entry (not stored yet) for one output holding `one`.
    fn setup() -> (tempfile::TempDir, Store, ActionEntry) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(".dagrun"), Durability::NoFsync).unwrap();
        let file = dir.path().join("o.txt");
        fs::write(&file, "one").unwrap();
        let entry = sample_entry(&store, &file);
        (dir, store, entry)
    }

    fn ino(p: &Path) -> u64 {
        fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn the_record_of_a_stored_entry_is_a_link_to_it() {
        let (_dir, store, entry) = setup();
        store.put_action(&entry).unwrap();
        store.set_last_run("w.t", entry.key, &entry.inputs).unwrap();
        let record = store.last_path("w.t");
        assert_eq!(ino(&record), ino(&store.action_path(&entry.key)));
        let last = store.last_run("w.t").unwrap();
        assert_eq!((last.version, last.key, &last.inputs), (LAYOUT_VERSION, entry.key, &entry.inputs));

        // `cache gc` removing the entry leaves the record readable.
        store.remove_action(&entry.key).unwrap();
        assert_eq!(store.last_run("w.t").unwrap().key, entry.key);

        // An entry damaged in place damages the record that links it: it reads as no record.
        // Setting it again renames a link onto another link to the same file, a no-op that must
        // not leave the temp link behind.
        store.put_action(&entry).unwrap();
        fs::remove_file(&record).unwrap();
        store.set_last_run("w.t", entry.key, &entry.inputs).unwrap();
        let path = store.action_path(&entry.key);
        assert_eq!(ino(&record), ino(&path));
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""task":"t""#), "{text}");
        fs::write(&path, text.replace(r#""task":"t""#, r#""task":"u""#)).unwrap();
        assert_eq!(store.last_run("w.t"), None);
        store.set_last_run("w.t", entry.key, &entry.inputs).unwrap();
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0, "no temp file left");
        // The link would not read back: the record is one of its own.
        assert_eq!(store.last_run("w.t").unwrap().key, entry.key);
        assert_ne!(ino(&record), ino(&path));
        let own: LastRun = serde_json::from_slice(&fs::read(&record).unwrap()).unwrap();
        assert_eq!(own.version, LAYOUT_VERSION);
    }

    #[test]
    fn without_an_entry_the_record_is_written_and_later_replaced_by_a_link() {
        let (_dir, store, entry) = setup();
        store.set_last_run("w.t", entry.key, &entry.inputs).unwrap();
        let record = store.last_path("w.t");
        let own: LastRun = serde_json::from_slice(&fs::read(&record).unwrap()).unwrap();
        assert_eq!(own.version, LAYOUT_VERSION);
        assert_eq!(store.last_run("w.t").unwrap(), own);

        let mut next = entry.clone();
        next.inputs.params = crate::digest::Digest::of(b"{\"n\":2}");
        next.key = next.inputs.key();
        assert_ne!(next.key, entry.key);
        store.put_action(&next).unwrap();
        store.set_last_run("w.t", next.key, &next.inputs).unwrap();
        assert_eq!(ino(&record), ino(&store.action_path(&next.key)));
        assert_eq!(store.last_run("w.t").unwrap().key, next.key);
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0, "no temp file left");
    }
}
