//! `cache ls`, `cache gc` and `cache verify`: listing, pruning and checking the store.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::digest::{ActionKey, Digest, ObjectDigest, hash_file};
use crate::store::{ActionEntry, IoContext, LAYOUT_VERSION, Store, StoreError};

/// One line of `cache ls`.
#[derive(Debug, Clone, Serialize)]
pub struct EntrySummary {
    /// Cache key.
    pub key: ActionKey,
    /// Task that produced it.
    pub task: String,
    /// Number of output files.
    pub outputs: usize,
    /// Total bytes of its outputs.
    pub bytes: u64,
    /// How long the task ran.
    pub duration_ms: u64,
    /// When it was produced (Unix ms).
    pub created_ms: u64,
}

/// What `cache gc` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Entries removed for being older than the maximum age (or unreadable).
    pub entries_removed: usize,
    /// Objects no remaining entry refers to.
    pub objects_removed: usize,
    /// Bytes freed by removing objects.
    pub bytes_freed: u64,
    /// Stale temp files removed.
    pub temp_files_removed: usize,
}

/// What `cache verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Objects re-hashed.
    pub objects_checked: usize,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Objects whose content no longer matched their name (removed: their entries become misses).
    pub corrupt_objects: Vec<ObjectDigest>,
    /// Entries that were unreadable (removed).
    pub unreadable_entries: usize,
    /// Entries referring to an object that is missing or was corrupt (removed: those tasks run again).
    pub entries_missing_objects: usize,
}

impl VerifyReport {
    /// Whether anything was wrong.
    pub fn is_clean(&self) -> bool {
        self.corrupt_objects.is_empty() && self.unreadable_entries == 0 && self.entries_missing_objects == 0
    }
}

/// Files under `dir/xx/`: the two-level fan-out used by objects and actions.
fn fanout_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    let shards = match fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        other => other.at(dir)?,
    };
    for shard in shards {
        let shard = shard.at(dir)?.path();
        if shard.is_dir() {
            for f in fs::read_dir(&shard).at(&shard)? {
                out.push(f.at(&shard)?.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read_entry(path: &Path) -> Option<ActionEntry> {
    let e: ActionEntry = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    (e.version == LAYOUT_VERSION).then_some(e)
}

impl Store {
    /// Every readable action entry.
    pub fn list(&self) -> Result<Vec<EntrySummary>, StoreError> {
        let mut out: Vec<EntrySummary> = fanout_files(&self.root().join("actions"))?
            .iter()
            .filter_map(|p| read_entry(p))
            .map(|e| EntrySummary {
                key: e.key,
                task: e.task.clone(),
                outputs: e.outputs.len(),
                bytes: e.outputs.values().map(|o| o.size).sum(),
                duration_ms: e.duration_ms,
                created_ms: e.created_ms,
            })
            .collect();
        out.sort_by(|a, b| a.task.cmp(&b.task).then(b.created_ms.cmp(&a.created_ms)));
        Ok(out)
    }

    /// Removes entries unused for longer than `max_age` (all kept when `None`), then every object
    /// no entry refers to, then stale temp files.
    pub fn gc(&self, max_age: Option<Duration>) -> Result<GcReport, StoreError> {
        let mut report = GcReport::default();
        let now = SystemTime::now();
        let old = |p: &Path, age: Duration| {
            fs::metadata(p).and_then(|m| m.modified()).is_ok_and(|t| now.duration_since(t).unwrap_or_default() > age)
        };
        let mut live: HashSet<ObjectDigest> = HashSet::new();
        for path in fanout_files(&self.root().join("actions"))? {
            match read_entry(&path) {
                Some(_) if max_age.is_some_and(|age| old(&path, age)) => {
                    fs::remove_file(&path).at(&path)?;
                    report.entries_removed += 1;
                }
                Some(e) => live.extend(e.outputs.values().map(|o| o.digest)),
                None => {
                    fs::remove_file(&path).at(&path)?;
                    report.entries_removed += 1;
                }
            }
        }
        // Objects written in the last minutes may belong to a run still in progress.
        let grace = Duration::from_secs(300);
        for path in fanout_files(&self.root().join("objects"))? {
            let name = path.file_name().and_then(|n| n.to_str()).and_then(Digest::from_hex).map(ObjectDigest);
            if name.is_some_and(|d| live.contains(&d)) || !old(&path, grace) {
                continue;
            }
            report.bytes_freed += fs::metadata(&path).map_or(0, |m| m.len());
            fs::remove_file(&path).at(&path)?;
            report.objects_removed += 1;
        }
        let tmp = self.root().join("tmp");
        for f in fs::read_dir(&tmp).at(&tmp)? {
            let p = f.at(&tmp)?.path();
            if old(&p, Duration::from_secs(3600)) {
                // Plugin and evaluation staging directories are left behind by a killed run.
                if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) }.at(&p)?;
                report.temp_files_removed += 1;
            }
        }
        Ok(report)
    }

    /// Re-hashes every object; removes corrupt objects and unreadable entries so they become misses.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        for path in fanout_files(&self.root().join("objects"))? {
            let Some(expected) = path.file_name().and_then(|n| n.to_str()).and_then(Digest::from_hex) else {
                continue;
            };
            let (actual, size) = hash_file(&path).at(&path)?;
            report.objects_checked += 1;
            report.bytes_checked += size;
            if actual.0 != expected {
                fs::remove_file(&path).at(&path)?;
                report.corrupt_objects.push(ObjectDigest(expected));
            }
        }
        for path in fanout_files(&self.root().join("actions"))? {
            match read_entry(&path) {
                None => {
                    fs::remove_file(&path).at(&path)?;
                    report.unreadable_entries += 1;
                }
                Some(e) if !e.outputs.values().all(|o| self.has_object(&o.digest)) => {
                    fs::remove_file(&path).at(&path)?;
                    report.entries_missing_objects += 1;
                }
                Some(_) => {}
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::key::KeyInputs;
    use crate::store::{Durability, OutputRecord};

    fn entry(store: &Store, file: &Path) -> ActionEntry {
        let (digest, size) = store.put_file(file).unwrap();
        let inputs = KeyInputs {
            kind: "command".into(),
            code: Digest::of(b"x"),
            params: Digest::of(b"{}"),
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            upstream: BTreeMap::new(),
            partition: None,
        };
        ActionEntry {
            version: LAYOUT_VERSION,
            key: inputs.key(),
            task: "t".into(),
            inputs,
            outputs: BTreeMap::from([("o".into(), OutputRecord { path: "o".into(), digest, size, executable: false })]),
            duration_ms: 5,
            created_ms: 1,
        }
    }

    #[test]
    fn verify_finds_corruption_and_the_entry_becomes_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::NoFsync).unwrap();
        let f = dir.path().join("out.txt");
        fs::write(&f, "hello").unwrap();
        let e = entry(&store, &f);
        store.put_action(&e).unwrap();
        assert!(store.get_action(&e.key).is_some());
        assert!(store.verify().unwrap().is_clean());

        let obj = store.object_path(&e.outputs["o"].digest);
        let mut perm = fs::metadata(&obj).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        fs::set_permissions(&obj, perm).unwrap();
        fs::write(&obj, "hellO").unwrap();
        let report = store.verify().unwrap();
        assert_eq!(report.corrupt_objects, vec![e.outputs["o"].digest]);
        assert_eq!(report.entries_missing_objects, 1);
        assert!(store.get_action(&e.key).is_none());
        assert!(store.verify().unwrap().is_clean(), "a second verify finds nothing left to repair");
    }

    #[test]
    fn restore_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::NoFsync).unwrap();
        let f = dir.path().join("out.txt");
        fs::write(&f, "hello").unwrap();
        let e = entry(&store, &f);
        let rec = &e.outputs["o"];
        let dest = dir.path().join("restored/out.txt");
        store.restore(rec, &dest).unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "hello");
        let obj = store.object_path(&rec.digest);
        fs::remove_file(&obj).unwrap();
        fs::write(&obj, "bad").unwrap();
        assert!(matches!(store.restore(rec, &dest), Err(StoreError::Corrupt { .. })));
        assert!(!obj.exists());
    }

    #[test]
    fn gc_keeps_referenced_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::NoFsync).unwrap();
        let f = dir.path().join("out.txt");
        fs::write(&f, "hello").unwrap();
        let e = entry(&store, &f);
        store.put_action(&e).unwrap();
        let report = store.gc(None).unwrap();
        assert_eq!(report.entries_removed, 0);
        assert_eq!(report.objects_removed, 0);
        assert!(store.get_action(&e.key).is_some());
        let report = store.gc(Some(Duration::ZERO)).unwrap();
        assert_eq!(report.entries_removed, 1);
        assert!(store.list().unwrap().is_empty());
    }
}
