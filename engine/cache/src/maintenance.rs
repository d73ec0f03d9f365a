//! `cache ls`, `cache gc` and `cache verify`: listing, pruning and checking the store.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::digest::{ActionKey, Digest, ObjectDigest, hash_file};
use crate::entry::{ActionEntry, EntryError, key_of_file, read_entry};
use crate::store::{IoContext, RunLock, Store, StoreError};

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

/// What `cache gc` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// Remove entries unused, and run records (with their logs) older than this; `None` keeps
    /// every readable entry and leaves run records to `keep_runs`.
    pub max_age: Option<Duration>,
    /// How many of the newest run records (and their logs) to keep at most.
    pub keep_runs: usize,
}

/// Default of [`GcOptions::keep_runs`].
pub const DEFAULT_KEEP_RUNS: usize = 100;

impl Default for GcOptions {
    fn default() -> GcOptions {
        GcOptions { max_age: None, keep_runs: DEFAULT_KEEP_RUNS }
    }
}

/// What `cache gc` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Entries removed for being older than the maximum age, unreadable or corrupt.
    pub entries_removed: usize,
    /// Objects no remaining entry refers to.
    pub objects_removed: usize,
    /// Bytes freed by removing objects.
    pub bytes_freed: u64,
    /// Stale temp files removed.
    pub temp_files_removed: usize,
    /// Run records removed (beyond the newest `keep_runs`, or older than the maximum age).
    pub runs_removed: usize,
    /// Log directories removed (of removed runs, or of no recorded run).
    pub logs_removed: usize,
}

/// An entry `cache verify` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadEntry {
    /// Its file name under its shard directory of `actions/`.
    pub file: String,
    /// What was wrong.
    pub error: String,
}

/// What `cache verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Objects re-hashed.
    pub objects_checked: usize,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Entries checked.
    pub entries_checked: usize,
    /// Objects whose content no longer matched their name (removed: their entries become misses).
    pub corrupt_objects: Vec<ObjectDigest>,
    /// Entries that were unreadable, failed their checks, or disagree with their objects (removed).
    pub corrupt_entries: Vec<BadEntry>,
    /// Entries referring to an object that is missing or was corrupt (removed: those tasks run again).
    pub entries_missing_objects: usize,
    /// Entries of another format version (removed; not corruption: those tasks simply run again).
    pub outdated_entries: usize,
}

impl VerifyReport {
    /// Whether anything was wrong (entries of another format version are not).
    pub fn is_clean(&self) -> bool {
        self.corrupt_objects.is_empty() && self.corrupt_entries.is_empty() && self.entries_missing_objects == 0
    }
}

/// Files under `dir/<shard>/`: the fan-out used by objects and actions (one or two hex digits,
/// see [`crate::Shards`]).
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

/// Reads and checks the entry file at `path`, whose name must be its key.
fn entry_at(path: &Path) -> Result<ActionEntry, EntryError> {
    let key = key_of_file(path).ok_or_else(|| EntryError::Unreadable("its file name is not <key>.json".into()))?;
    read_entry(path, &key)?.ok_or_else(|| EntryError::Unreadable("it disappeared".into()))
}

fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.at(path),
    }
}

fn older_than(p: &Path, age: Duration, now: SystemTime) -> bool {
    fs::metadata(p).and_then(|m| m.modified()).is_ok_and(|t| now.duration_since(t).unwrap_or_default() > age)
}

impl Store {
    /// Every readable action entry.
    pub fn list(&self) -> Result<Vec<EntrySummary>, StoreError> {
        let mut out: Vec<EntrySummary> = fanout_files(&self.root().join("actions"))?
            .iter()
            .filter_map(|p| entry_at(p).ok())
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

    /// Removes entries unused for longer than `max_age` (and entries failing their checks), then
    /// every object no entry refers to, then stale temp files, then old run records and logs.
    /// Takes the caller's [`RunLock`]: nothing runs meanwhile.
    pub fn gc(&self, lock: &RunLock, opts: GcOptions) -> Result<GcReport, StoreError> {
        // Best effort: a journal kept could only bring back, after a power loss, what is removed.
        let _ = self.settle_journals_now(lock);
        let mut report = GcReport::default();
        let now = SystemTime::now();
        let mut live: HashSet<ObjectDigest> = HashSet::new();
        for path in fanout_files(&self.root().join("actions"))? {
            match entry_at(&path) {
                Ok(_) if opts.max_age.is_some_and(|age| older_than(&path, age, now)) => {
                    remove(&path)?;
                    report.entries_removed += 1;
                }
                // An inline output's bytes are in its entry: no object of it is live.
                Ok(e) => live.extend(e.outputs.values().filter(|o| !o.inline).map(|o| o.digest)),
                Err(_) => {
                    remove(&path)?;
                    report.entries_removed += 1;
                }
            }
        }
        // Objects written in the last minutes may belong to a run that stored them but had not
        // written its entry when it was killed: harmless to keep a little longer.
        let grace = Duration::from_secs(300);
        for path in fanout_files(&self.root().join("objects"))? {
            let name = path.file_name().and_then(|n| n.to_str()).and_then(Digest::from_hex).map(ObjectDigest);
            if name.is_some_and(|d| live.contains(&d)) || !older_than(&path, grace, now) {
                continue;
            }
            report.bytes_freed += fs::metadata(&path).map_or(0, |m| m.len());
            remove(&path)?;
            report.objects_removed += 1;
        }
        let tmp = self.root().join("tmp");
        for f in fs::read_dir(&tmp).at(&tmp)? {
            let p = f.at(&tmp)?.path();
            if older_than(&p, Duration::from_secs(3600), now) {
                // Plugin and evaluation staging directories are left behind by a killed run.
                if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) }.at(&p)?;
                report.temp_files_removed += 1;
            }
        }
        self.prune_runs(opts, now, &mut report)?;
        Ok(report)
    }

    /// Removes run records beyond the newest `keep_runs` or older than `max_age`, then every
    /// log directory whose run record is gone.
    fn prune_runs(&self, opts: GcOptions, now: SystemTime, report: &mut GcReport) -> Result<(), StoreError> {
        let runs = self.root().join("runs");
        let mut ids: Vec<String> =
            list_names(&runs)?.into_iter().filter_map(|n| n.strip_suffix(".json").map(str::to_owned)).collect();
        // Run ids start with their start time: the newest sort last.
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let mut kept = HashSet::new();
        for (i, id) in ids.iter().enumerate() {
            let path = runs.join(format!("{id}.json"));
            if i >= opts.keep_runs || opts.max_age.is_some_and(|age| older_than(&path, age, now)) {
                remove(&path)?;
                report.runs_removed += 1;
            } else {
                kept.insert(id.clone());
            }
        }
        let logs = self.root().join("logs");
        for id in list_names(&logs)? {
            if !kept.contains(&id) {
                let dir = logs.join(&id);
                if dir.is_dir() { fs::remove_dir_all(&dir) } else { fs::remove_file(&dir) }.at(&dir)?;
                report.logs_removed += 1;
            }
        }
        Ok(())
    }

    /// Re-hashes every object, then checks every entry (its own checks, its objects' presence
    /// and sizes); removes what is corrupt so it becomes a miss. Takes the caller's [`RunLock`].
    pub fn verify(&self, lock: &RunLock) -> Result<VerifyReport, StoreError> {
        let _ = self.settle_journals_now(lock);
        let mut report = VerifyReport::default();
        for path in fanout_files(&self.root().join("objects"))? {
            let Some(expected) = path.file_name().and_then(|n| n.to_str()).and_then(Digest::from_hex) else {
                continue;
            };
            let (actual, size) = hash_file(&path).at(&path)?;
            report.objects_checked += 1;
            report.bytes_checked += size;
            if actual.0 != expected {
                remove(&path)?;
                report.corrupt_objects.push(ObjectDigest(expected));
            }
        }
        for path in fanout_files(&self.root().join("actions"))? {
            report.entries_checked += 1;
            let problem = match entry_at(&path) {
                Ok(e) => match self.check_objects(&e) {
                    Ok(()) => continue,
                    Err(problem) => problem,
                },
                Err(e) => Some(e),
            };
            remove(&path)?;
            match problem {
                None => report.entries_missing_objects += 1,
                Some(e) if !e.is_corruption() => report.outdated_entries += 1,
                Some(e) => {
                    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    report.corrupt_entries.push(BadEntry { file, error: e.to_string() });
                }
            }
        }
        Ok(report)
    }

    /// `Err(None)`: an object is missing; `Err(Some(_))`: an object's size is not the recorded one.
    fn check_objects(&self, e: &ActionEntry) -> Result<(), Option<EntryError>> {
        // An inline output's bytes were checked with the entry itself.
        for (name, rec) in e.outputs.iter().filter(|(_, r)| !r.inline) {
            let actual = fs::metadata(self.object_path(&rec.digest)).map_err(|_| None)?.len();
            if actual != rec.size {
                return Err(Some(EntryError::Size { output: name.clone(), recorded: rec.size, actual }));
            }
        }
        Ok(())
    }
}

/// File names in `dir` (none when it does not exist).
fn list_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    match fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).at(dir),
        Ok(d) => Ok(d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn entry(store: &Store, file: &Path) -> ActionEntry {
        crate::entry::sample_entry(store, file)
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
        assert!(store.verify(&store.lock().unwrap()).unwrap().is_clean());

        let obj = store.object_path(&e.outputs["o"].digest);
        let mut perm = fs::metadata(&obj).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        fs::set_permissions(&obj, perm).unwrap();
        fs::write(&obj, "hellO").unwrap();
        let report = store.verify(&store.lock().unwrap()).unwrap();
        assert_eq!(report.corrupt_objects, vec![e.outputs["o"].digest]);
        assert_eq!(report.entries_missing_objects, 1);
        assert!(store.get_action(&e.key).is_none());
        assert!(
            store.verify(&store.lock().unwrap()).unwrap().is_clean(),
            "a second verify finds nothing left to repair"
        );
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
        let report = store.gc(&store.lock().unwrap(), GcOptions::default()).unwrap();
        assert_eq!(report.entries_removed, 0);
        assert_eq!(report.objects_removed, 0);
        assert!(store.get_action(&e.key).is_some());
        let report = store
            .gc(&store.lock().unwrap(), GcOptions { max_age: Some(Duration::ZERO), ..GcOptions::default() })
            .unwrap();
        assert_eq!(report.entries_removed, 1);
        assert!(store.list().unwrap().is_empty());
    }

    fn old(path: &Path) {
        let f = fs::File::options().write(true).open(path).unwrap_or_else(|_| fs::File::open(path).unwrap());
        f.set_modified(SystemTime::now() - Duration::from_secs(3 * 86400)).unwrap();
    }

    #[test]
    fn verify_removes_tampered_and_misplaced_entries_but_not_outdated_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::NoFsync).unwrap();
        let f = dir.path().join("out.txt");
        fs::write(&f, "hello").unwrap();
        let e = entry(&store, &f);
        let path = store.action_path(&e.key);
        let put_raw = |v: &ActionEntry| {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, serde_json::to_vec(v).unwrap()).unwrap();
        };
        // A path edited to somewhere else: the digest no longer matches.
        let mut bad = e.sealed();
        bad.outputs.get_mut("o").unwrap().path = "../../x".into();
        put_raw(&bad);
        let r = store.verify(&store.lock().unwrap()).unwrap();
        assert!(!r.is_clean());
        assert_eq!(r.corrupt_entries.len(), 1, "{r:?}");
        assert!(r.corrupt_entries[0].error.contains("not to its recorded digest"), "{r:?}");
        assert!(!path.exists());
        // A sealed entry whose size disagrees with its object.
        let mut bad = e.clone();
        bad.outputs.get_mut("o").unwrap().size = 4;
        store.put_action(&bad).unwrap();
        let r = store.verify(&store.lock().unwrap()).unwrap();
        assert_eq!(r.corrupt_entries[0].error, "output `o` is recorded as 4 bytes but its object has 5");
        // An entry of the previous format is removed without failing verify.
        put_raw(&ActionEntry { version: 1, ..e.clone() });
        let r = store.verify(&store.lock().unwrap()).unwrap();
        assert!(r.is_clean() && r.outdated_entries == 1 && !path.exists(), "{r:?}");
    }

    #[test]
    fn reusing_an_object_makes_it_young_again_so_gc_spares_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::Fsync).unwrap();
        let f = dir.path().join("out.txt");
        fs::write(&f, "hello").unwrap();
        let (d, _) = store.put_file(&f).unwrap();
        old(&store.object_path(&d));
        // A run stores the same bytes again (its entry is not written yet) while gc runs.
        store.put_file(&f).unwrap();
        let r = store.gc(&store.lock().unwrap(), GcOptions::default()).unwrap();
        assert_eq!(r.objects_removed, 0);
        assert!(store.has_object(&d));
        old(&store.object_path(&d));
        let r = store.gc(&store.lock().unwrap(), GcOptions::default()).unwrap();
        assert_eq!(r.objects_removed, 1, "an old unreferenced object still goes");
    }

    #[test]
    fn gc_and_verify_need_the_lock_a_run_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
        let run = store.lock().unwrap();
        assert!(matches!(store.lock(), Err(StoreError::Busy { .. })));
        drop(run);
        let lock = store.lock().unwrap();
        store.gc(&lock, GcOptions::default()).unwrap();
        store.verify(&lock).unwrap();
    }

    #[test]
    fn gc_keeps_the_newest_runs_and_their_logs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
        for i in 0..5 {
            let id = format!("20261126-12000{i}000-aa");
            fs::write(dir.path().join(format!("runs/{id}.json")), "{}").unwrap();
            fs::create_dir_all(dir.path().join(format!("logs/{id}"))).unwrap();
            fs::write(dir.path().join(format!("logs/{id}/t.log")), "log").unwrap();
        }
        fs::create_dir_all(dir.path().join("logs/20261126-110000000-zz")).unwrap(); // no record
        let opts = GcOptions { max_age: None, keep_runs: 3 };
        let r = store.gc(&store.lock().unwrap(), opts).unwrap();
        assert_eq!((r.runs_removed, r.logs_removed), (2, 3));
        let mut left = list_names(&dir.path().join("runs")).unwrap();
        left.sort();
        assert_eq!(left, ["20261126-120002000-aa.json", "20261126-120003000-aa.json", "20261126-120004000-aa.json"]);
        let mut logs = list_names(&dir.path().join("logs")).unwrap();
        logs.sort();
        assert_eq!(logs, ["20261126-120002000-aa", "20261126-120003000-aa", "20261126-120004000-aa"]);
        // --max-age removes older records (and their logs) even among the newest.
        old(&dir.path().join("runs/20261126-120002000-aa.json"));
        let opts = GcOptions { max_age: Some(Duration::from_secs(86400)), keep_runs: 3 };
        let r = store.gc(&store.lock().unwrap(), opts).unwrap();
        assert_eq!((r.runs_removed, r.logs_removed), (1, 1));
    }
}
