//! The cache side of a job: restoring a hit's outputs, storing a run's outputs (objects before
//! the entry), and keeping each task's last key so the next miss can be explained.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use dagrun_cache::{
    ActionEntry, ActionKey, Contents, Digest, EntryError, KeyInputs, Manifest, ObjectDigest, OutputRecord, Store,
    StoreError, check_outputs, entry_version, inline_room, is_executable, now_ms, whole_lines,
};
use dagrun_plan::{Probe, instance_outputs};

use crate::outcome::{Failure, TaskError};
use crate::shared::RunShared;

/// Puts a hit's outputs in place at the paths the workflow declares for instance `i` (never at
/// paths read from the entry), skipping files that are already there with the right content.
/// Each path is resolved through links first and refused outside the workflow directory or
/// inside the state directory.
///
/// An entry whose outputs disagree with the declared ones, or whose recorded sizes disagree
/// with its objects, is reported as [`StoreError::Entry`]; nothing is written for a
/// disagreeing entry. A corrupt object is deleted by the store and reported as
/// [`StoreError::Corrupt`].
pub(crate) fn restore_outputs(run: &RunShared, i: usize, entry: &ActionEntry) -> Result<(), StoreError> {
    let bad = |e| StoreError::Entry { key: entry.key, source: Box::new(e) };
    let declared = instance_outputs(&run.workflow, &run.instances, i);
    check_outputs(&entry.outputs, &declared).map_err(bad)?;
    for (name, rec) in &entry.outputs {
        let path = run.workflow.dir.join(&declared[name]);
        // Reading through a link is harmless; only a write needs the path resolved and checked
        // (and resolving costs a system call per component on every cache hit).
        // One `stat` (a directory or a missing file is simply not the output).
        let current = run.stat.digest(&path, run.verify).ok();
        if current.map(|(d, _)| d) != Some(rec.digest) {
            let dest = run
                .roots
                .resolve(name, &path)
                .map_err(|e| StoreError::Io { path: path.clone(), source: std::io::Error::other(e.message) })?;
            let restored = match entry.inline_bytes(rec) {
                Some(bytes) => run.store.restore_bytes(rec, bytes, &dest),
                None => run.store.restore(rec, &dest),
            };
            restored.map_err(|e| match e {
                StoreError::Size { recorded, actual } => {
                    bad(EntryError::Size { output: name.clone(), recorded, actual })
                }
                e => e,
            })?;
            run.stat.record(&path, rec.digest);
        }
    }
    Ok(())
}

/// Why [`store_outputs`] recorded no entry.
#[derive(Debug)]
pub(crate) enum NotStored {
    /// The task fails with this.
    Failed(TaskError),
    /// With `small_only`: an output is larger than its entry may hold. Nothing was recorded:
    /// store again, allowing copies.
    TooLarge(Box<Probe>),
}

impl From<TaskError> for NotStored {
    fn from(e: TaskError) -> Self {
        NotStored::Failed(e)
    }
}

/// Stores each declared output of instance `i` (`outputs`: name → its resolved path) and records
/// the cache entry (objects before the entry), which it returns. With `small_only`, no output
/// is copied into an object ([`NotStored::TooLarge`] instead): for a caller that must not spend
/// long on it.
pub(crate) fn store_outputs(
    run: &RunShared,
    i: usize,
    outputs: &BTreeMap<String, PathBuf>,
    probe: Probe,
    duration_ms: u64,
    small_only: bool,
) -> Result<ActionEntry, NotStored> {
    let instance = run.instances.nodes[i].name.as_str();
    let declared = instance_outputs(&run.workflow, &run.instances, i);
    let cache = |e: String| TaskError::new(Failure::Cache, e);
    let (mut manifest, mut contents) = (Manifest::new(), Contents::new());
    for (name, path) in outputs {
        // As declared (an output resolved through a link is still recorded under its declared path).
        let rel = declared[name].clone();
        let meta = std::fs::metadata(path).map_err(|_| {
            TaskError::new(
                Failure::MissingOutput { output: name.clone() },
                format!("the task succeeded but did not write its output `{name}` ({rel}); write it, or fix the path under `outputs`"),
            )
        })?;
        if !meta.is_file() {
            return Err(NotStored::Failed(TaskError::new(
                Failure::MissingOutput { output: name.clone() },
                format!("output `{name}` ({rel}) is not a regular file"),
            )));
        }
        let room = inline_room(&contents);
        let stored = match small_only {
            false => run.store.put_output(path, room).map(Some),
            true => run.store.put_small_output(path, room),
        };
        let Some(stored) = stored.map_err(|e| cache(format!("cannot store output `{name}`: {e}")))? else {
            return Err(NotStored::TooLarge(Box::new(probe)));
        };
        // Under the declared path: the one a later cache hit checks.
        run.stat.record(&run.workflow.dir.join(&rel), stored.digest);
        stored.record(&mut manifest, &mut contents, name, rel, is_executable(&meta));
    }
    let entry = ActionEntry {
        version: entry_version(&contents),
        key: probe.key,
        task: instance.to_owned(),
        inputs: probe.resolved.inputs,
        outputs: manifest,
        duration_ms,
        created_ms: now_ms(),
        contents,
        digest: None,
    };
    run.store.put_action(&entry).map_err(|e| cache(format!("cannot record the cache entry: {e}")))?;
    let name = last_name(run, instance);
    if !run.last_keys.record(&run.store, &name, entry.key, &entry.inputs, &entry.outputs, duration_ms) {
        // The same key as the last run: its record may link an older entry under this key that
        // was damaged and removed. `set_last_run` rewrites it only if it no longer reads.
        let _ = run.store.set_last_run(&name, entry.key, &entry.inputs);
    }
    Ok(entry)
}

/// After a hit: marks the entry used, records it under the probe's key when it was found
/// through an older key (a promoted candidate), and keeps the task's last key current.
pub(crate) fn record_hit(run: &RunShared, instance: &str, probe: &Probe, entry: &ActionEntry) {
    if entry.key == probe.key {
        run.store.touch_action(&probe.key);
    } else {
        let alias = ActionEntry { key: probe.key, inputs: probe.resolved.inputs.clone(), ..entry.clone() };
        let _ = run.store.put_action(&alias);
    }
    let name = last_name(run, instance);
    run.last_keys.record(&run.store, &name, probe.key, &probe.resolved.inputs, &entry.outputs, entry.duration_ms);
}

pub(crate) fn last_name(run: &RunShared, instance: &str) -> String {
    dagrun_plan::last_run_name(&run.workflow, instance)
}

/// Every task instance's last key, in one index file read once per run, so that keeping the
/// last-run records current on cache hits costs no file access in the common case; and, for
/// instances that succeeded or hit, the outputs and duration of that key's entry, so that the
/// next run can confirm a hit without reading the entry (see `crate::quick`).
///
/// The records themselves (`<state>/tasks/<name>.json`, read by `plan`) stay the truth; the
/// index (`<state>/tasks/last-keys.idx`) only says which are known to be current. It is removed
/// before the run changes anything it says (its first record written, its first new output
/// list) and written back when the run ends, so a run that dies half-way (`kill -9`, a second
/// Ctrl-C) leaves no index that could be stale: the next run reads the records instead. A run
/// that changed nothing (every task a hit with what the index says) leaves the file as it was.
///
/// Lines: `<key hex> <name>`; or, with the outputs, `*<key hex>\t<duration ms>` then for each
/// output `\t<output name>\t<path>\t<digest hex>\t<size>\t<x or -><i when inline>`, then `\t<name>` (tab-separated
/// fields, read without a JSON parser; an older dagrun skips such lines); when an output's name
/// or path, or the instance's name, holds a tab or a line break, the line is
/// `+<key hex>\t<duration ms>\t<outputs as compact JSON>\t<name>` instead (JSON never holds a raw
/// tab). An instance whose name holds a line break is left out. A line that does not parse, and
/// a last line without its newline, are left out (a slower lookup, never a wrong one).
#[derive(Debug)]
pub(crate) struct LastKeys {
    known: RwLock<foldhash::HashMap<String, Known>>,
    /// The index file: removed before the first change, written again by `save`.
    path: PathBuf,
    /// Something changed since `take` (only set with `known` locked).
    changed: AtomicBool,
}

/// What the index knows of one instance.
#[derive(Debug, Clone)]
struct Known {
    key: ActionKey,
    /// The outputs and duration the entry under `key` records, when this index saw it.
    outputs: Option<(Arc<Manifest>, u64)>,
}

/// One line of the index.
fn parse_line(l: &str) -> Option<(String, Known)> {
    if let Some(rest) = l.strip_prefix('*') {
        let mut parts = rest.split('\t');
        let key = ActionKey(Digest::from_hex(parts.next()?)?);
        let duration: u64 = parts.next()?.parse().ok()?;
        let mut fields: Vec<&str> = parts.collect();
        let name = fields.pop()?;
        if !fields.len().is_multiple_of(5) {
            return None;
        }
        let outputs = fields.chunks_exact(5).map(parse_output).collect::<Option<Manifest>>()?;
        return Some((name.to_owned(), Known { key, outputs: Some((Arc::new(outputs), duration)) }));
    }
    if let Some(rest) = l.strip_prefix('+') {
        let mut parts = rest.splitn(4, '\t');
        let key = ActionKey(Digest::from_hex(parts.next()?)?);
        let duration: u64 = parts.next()?.parse().ok()?;
        let outputs: Manifest = serde_json::from_str(parts.next()?).ok()?;
        let name = parts.next()?;
        return Some((name.to_owned(), Known { key, outputs: Some((Arc::new(outputs), duration)) }));
    }
    let (hex, name) = l.split_once(' ')?;
    Some((name.to_owned(), Known { key: ActionKey(Digest::from_hex(hex)?), outputs: None }))
}

/// `<output name> <path> <digest hex> <size> <x or -><i when inline>` of a `*` line.
fn parse_output(f: &[&str]) -> Option<(String, OutputRecord)> {
    let (executable, inline) = match f[4] {
        "x" => (true, false),
        "-" => (false, false),
        "xi" => (true, true),
        "-i" => (false, true),
        _ => return None,
    };
    let digest = ObjectDigest(Digest::from_hex(f[2])?);
    let size = f[3].parse().ok()?;
    Some((f[0].to_owned(), OutputRecord { path: f[1].to_owned(), digest, size, executable, inline }))
}

/// One index line for `name` with its outputs (see [`LastKeys`]).
fn outputs_line(text: &mut String, name: &str, key: &ActionKey, outputs: &Manifest, duration: u64) {
    use std::fmt::Write;
    let plain = |s: &str| !s.contains(['\t', '\n', '\r']);
    if !outputs.iter().all(|(n, o)| plain(n) && plain(&o.path)) || !plain(name) {
        let json = serde_json::to_string(outputs).expect("manifests serialize");
        let _ = writeln!(text, "+{}\t{duration}\t{json}\t{name}", key.0);
        return;
    }
    let _ = write!(text, "*{}\t{duration}", key.0);
    for (n, o) in outputs.iter() {
        let x = if o.executable { "x" } else { "-" };
        let i = if o.inline { "i" } else { "" };
        let _ = write!(text, "\t{n}\t{}\t{}\t{}\t{x}{i}", o.path, o.digest, o.size);
    }
    let _ = writeln!(text, "\t{name}");
}

impl LastKeys {
    /// The file the index of `store` is kept in.
    pub(crate) fn path(store: &Store) -> PathBuf {
        store.root().join("tasks").join("last-keys.idx")
    }

    /// [`LastKeys::from_text`] of the file as it is now (for tests; a run reads it through
    /// `crate::preload`).
    #[cfg(test)]
    pub(crate) fn take(store: &Store) -> LastKeys {
        LastKeys::from_text(store, &std::fs::read_to_string(LastKeys::path(store)).unwrap_or_default())
    }

    /// Takes the index over for this run, given the text of its file (empty: an unreadable or
    /// missing one); the file is removed when the run first changes it, until [`LastKeys::save`].
    pub(crate) fn from_text(store: &Store, text: &str) -> LastKeys {
        // A last line without its newline is left out: a file cut short could end in a shorter name.
        let whole = whole_lines(text.as_bytes()).len();
        let known = text[..whole].lines().filter_map(parse_line).collect();
        LastKeys { known: RwLock::new(known), path: LastKeys::path(store), changed: AtomicBool::new(false) }
    }

    /// Called with `known` locked before each change: the first one removes the file.
    fn changing(&self) {
        if !self.changed.swap(true, Ordering::Relaxed) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Makes `key` the last key of `name`, writing its record only when that changes it, and
    /// notes the outputs and duration the entry under `key` records. Returns whether it set the
    /// record (`false`: `key` was already `name`'s last key).
    pub(crate) fn record(
        &self,
        store: &Store,
        name: &str,
        key: ActionKey,
        inputs: &KeyInputs,
        outputs: &Manifest,
        duration_ms: u64,
    ) -> bool {
        let mut known = self.known.write().expect("last keys lock");
        let fresh = || Some((Arc::new(outputs.clone()), duration_ms));
        match known.get_mut(name) {
            Some(k) if k.key == key => {
                if k.outputs.as_ref().is_none_or(|(o, d)| **o != *outputs || *d != duration_ms) {
                    self.changing();
                    k.outputs = fresh();
                }
                false
            }
            // `set_last_run` itself skips the write when the record already holds this key.
            _ => {
                self.changing();
                if store.set_last_run(name, key, inputs).is_ok() {
                    known.insert(name.to_owned(), Known { key, outputs: fresh() });
                } else {
                    known.remove(name);
                }
                true
            }
        }
    }

    /// Whether the index knows no instance at all (a first run).
    pub(crate) fn is_empty(&self) -> bool {
        self.known.read().expect("last keys lock").is_empty()
    }

    /// `name`'s last key with the outputs and duration of its entry, when known.
    pub(crate) fn last_outputs(&self, name: &str) -> Option<(ActionKey, Arc<Manifest>, u64)> {
        let known = self.known.read().expect("last keys lock");
        let k = known.get(name)?;
        let (outputs, duration) = k.outputs.as_ref()?;
        Some((k.key, outputs.clone(), *duration))
    }

    /// Writes the index back (at the end of a run), unless nothing changed.
    pub(crate) fn save(&self, store: &Store) -> Result<(), StoreError> {
        let known = self.known.read().expect("last keys lock");
        if !self.changed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut names: Vec<(&String, &Known)> = known.iter().collect();
        names.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut text = String::with_capacity(names.len() * 200);
        // A name with a line break cannot be read back as itself: left out (looked up the slow way).
        for (name, k) in names.into_iter().filter(|(n, _)| !n.contains(['\n', '\r'])) {
            match &k.outputs {
                Some((outputs, duration)) => outputs_line(&mut text, name, &k.key, outputs, *duration),
                None => text.push_str(&format!("{} {name}\n", k.key.0.to_hex())),
            }
        }
        store.write_atomic_cheap(&self.path, text.as_bytes())?;
        self.changed.store(false, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_cache::{Durability, KeyInputs, ObjectDigest};

    fn inputs(kind: &str) -> KeyInputs {
        KeyInputs {
            kind: kind.into(),
            code: Digest::of(b"c"),
            params: Digest::of(b"p"),
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            upstream: BTreeMap::new(),
            partition: None,
        }
    }

    #[test]
    fn last_keys_write_records_only_on_change_and_survive_a_finished_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
        let (a, b) = (inputs("a"), inputs("b"));
        let keys = LastKeys::take(&store);
        keys.record(&store, "w.t", a.key(), &a, &Manifest::new(), 0);
        assert_eq!(store.last_run("w.t").unwrap().key, a.key());
        keys.save(&store).unwrap();
        let again = LastKeys::take(&store);
        assert_eq!(
            again.known.read().unwrap().get("w.t").map(|k| k.key),
            Some(a.key()),
            "a finished run's index is kept"
        );
        again.record(&store, "w.t", b.key(), &b, &Manifest::new(), 0);
        again.record(&store, "w.t", a.key(), &a, &Manifest::new(), 0);
        assert_eq!(store.last_run("w.t").unwrap().key, a.key());
    }

    #[test]
    fn the_index_keeps_outputs_of_names_with_spaces_and_tabs_and_skips_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
        let a = inputs("a");
        let rec = OutputRecord {
            path: "out/a b.txt".into(),
            digest: ObjectDigest(Digest::of(b"x")),
            size: 1,
            executable: false,
            inline: false,
        };
        let outputs: Manifest = [("o".to_owned(), rec)].into();
        let keys = LastKeys::take(&store);
        keys.record(&store, "w.t", a.key(), &a, &outputs, 41);
        keys.record(&store, "w.t", a.key(), &a, &outputs, 42); // the same key, a newer entry
        keys.record(&store, "my flow.t\tx@2025-01-01", a.key(), &a, &outputs, 7);
        keys.save(&store).unwrap();
        let mut text = std::fs::read_to_string(LastKeys::path(&store)).unwrap();
        // A line of an index written before outputs were kept, and lines that do not parse.
        text.push_str(&format!("{} w.only-key\n+zz\t1\t{{}}\tbroken\nnot-hex name\n", a.key().0.to_hex()));
        std::fs::write(LastKeys::path(&store), &text).unwrap();
        let again = LastKeys::take(&store);
        assert_eq!(again.last_outputs("w.t"), Some((a.key(), Arc::new(outputs.clone()), 42)));
        assert_eq!(again.last_outputs("my flow.t\tx@2025-01-01").map(|o| o.2), Some(7));
        assert_eq!(again.last_outputs("w.only-key"), None);
        assert_eq!(again.known.read().unwrap().get("w.only-key").map(|k| k.key), Some(a.key()));
        assert_eq!(again.known.read().unwrap().len(), 3, "unreadable lines are left out");
        assert!(LastKeys::path(&store).exists(), "kept while nothing changes");
        again.save(&store).unwrap();
        assert_eq!(std::fs::read_to_string(LastKeys::path(&store)).unwrap(), text, "nothing changed: not rewritten");
        again.record(&store, "w.t", a.key(), &a, &outputs, 43);
        assert!(!LastKeys::path(&store).exists(), "removed before its first change");
        again.save(&store).unwrap();
        assert_eq!(LastKeys::take(&store).last_outputs("w.t").map(|o| o.2), Some(43));
    }

    #[test]
    fn outputs_are_written_as_fields_unless_a_path_holds_a_tab_and_json_lines_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
        let a = inputs("a");
        let rec = |path: &str, executable| OutputRecord {
            path: path.into(),
            digest: ObjectDigest(Digest::of(path.as_bytes())),
            size: 12,
            executable,
            inline: path.ends_with(".json"),
        };
        let plain: Manifest =
            [("m".to_owned(), rec("out/m.onnx", true)), ("r".to_owned(), rec("r.json", false))].into();
        let tabbed: Manifest = [("o".to_owned(), rec("out/a\tb", false))].into();
        let keys = LastKeys::take(&store);
        keys.record(&store, "w.plain", a.key(), &a, &plain, 5);
        keys.record(&store, "w.tabbed", a.key(), &a, &tabbed, 6);
        keys.record(&store, "w.cr\r", a.key(), &a, &plain, 7);
        keys.record(&store, "w.nl\nw.plain", a.key(), &a, &plain, 8);
        keys.save(&store).unwrap();
        let saved = std::fs::read_to_string(LastKeys::path(&store)).unwrap();
        let mut text = saved.clone();
        assert!(text.lines().any(|l| l.starts_with('*') && l.ends_with("\tw.plain")), "{text}");
        assert!(text.lines().any(|l| l.starts_with('+') && l.ends_with("\tw.tabbed")), "{text}");
        // A line as an older dagrun wrote it, and a field line with a field missing.
        let json = serde_json::to_string(&plain).unwrap();
        text.push_str(&format!(
            "+{}\t9\t{json}\tw.old\n*{}\t1\to\tp\t{}\t3\tw.short\n",
            a.key().0,
            a.key().0,
            a.key().0
        ));
        std::fs::write(LastKeys::path(&store), &text).unwrap();
        let again = LastKeys::take(&store);
        assert_eq!(again.last_outputs("w.plain"), Some((a.key(), Arc::new(plain.clone()), 5)));
        assert_eq!(again.last_outputs("w.tabbed"), Some((a.key(), Arc::new(tabbed), 6)));
        assert_eq!(again.last_outputs("w.old"), Some((a.key(), Arc::new(plain), 9)));
        assert_eq!(again.last_outputs("w.short"), None);
        assert_eq!(again.known.read().unwrap().len(), 3, "names with line breaks are left out");
        assert!(saved.ends_with("\tw.tabbed\n"), "{saved}");
        std::fs::write(LastKeys::path(&store), &saved[..saved.len() - 3]).unwrap();
        let cut = LastKeys::take(&store);
        assert_eq!(
            cut.known.read().unwrap().keys().collect::<Vec<_>>(),
            ["w.plain"],
            "a last line cut short is left out"
        );
    }

    #[test]
    fn a_run_that_dies_leaves_no_index_to_trust() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
        let (a, b) = (inputs("a"), inputs("b"));
        let first = LastKeys::take(&store);
        first.record(&store, "w.t", a.key(), &a, &Manifest::new(), 0);
        first.save(&store).unwrap();
        // A run takes the index, records b, and dies before saving it.
        let dying = LastKeys::take(&store);
        dying.record(&store, "w.t", a.key(), &a, &Manifest::new(), 0);
        assert!(LastKeys::path(&store).exists(), "a hit that changes nothing keeps the index");
        dying.record(&store, "w.t", b.key(), &b, &Manifest::new(), 0);
        assert!(!LastKeys::path(&store).exists(), "gone before the record changed");
        drop(dying);
        // The next run must not believe `a` is current: recording `a` rewrites the record.
        let next = LastKeys::take(&store);
        next.record(&store, "w.t", a.key(), &a, &Manifest::new(), 0);
        assert_eq!(store.last_run("w.t").unwrap().key, a.key());
    }
}
