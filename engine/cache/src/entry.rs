//! Action entries (`actions/<x>/<key>.json`): what a task with a given key produced, sealed
//! with a digest over their own content and checked against their key on every read.
//!
//! An entry is accepted only when all of these hold (see `docs/cli.md`, "Cache entries"):
//! its `version` is [`ENTRY_VERSION`] (or [`ENTRY_VERSION_PLAIN`] when nothing is inline); its
//! `digest` is the blake3 digest of the entry's compact JSON without `digest` (fields in order,
//! map keys sorted); its `key` is the key in its file name; its `inputs` hash to that key; its
//! outputs are exactly the outputs named in `inputs.outputs`, at those paths; and the bytes it
//! holds inline (`contents`) are exactly those of its `inline` outputs, each hashing to its digest.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::digest::{ActionKey, Digest, EntryDigest, ManifestDigest, ObjectDigest};
use crate::inline::Contents;
use crate::key::KeyInputs;
use crate::store::{Store, StoreError};

/// Version of the action entry format. Version 1 entries (no `digest`) are read as misses.
/// Version 3 added outputs held inline (`contents`); an entry without any is written as
/// [`ENTRY_VERSION_PLAIN`], so that a dagrun that predates them still reads it.
pub const ENTRY_VERSION: u32 = 3;

/// The version of an entry that holds no output inline: the format before [`ENTRY_VERSION`].
pub const ENTRY_VERSION_PLAIN: u32 = 2;

/// Outputs up to this size are kept in their cache entry (`contents`) instead of an object file
/// of their own: one file written per task instead of two, and no object directory to create.
pub const INLINE_MAX: u64 = 4096;

/// At most this many bytes of outputs are kept in one entry (every full hit, and `plan` through
/// the task record, reads it whole); further outputs of the task become objects.
pub const INLINE_ENTRY_MAX: u64 = 64 * 1024;

/// The version an entry with these `contents` is written with.
pub fn entry_version(contents: &Contents) -> u32 {
    if contents.is_empty() { ENTRY_VERSION_PLAIN } else { ENTRY_VERSION }
}

/// One output file as recorded in an action entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// Path relative to the workflow directory (as declared when the declared path is absolute
    /// and outside it). Checked, never trusted: outputs are restored to the declared paths.
    pub path: String,
    /// Content digest (the object name).
    pub digest: ObjectDigest,
    /// Size in bytes.
    pub size: u64,
    /// Whether the file was executable.
    pub executable: bool,
    /// Its bytes are in the entry's `contents` (under `digest`), not in an object file.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inline: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Outputs of one task run, by output name (a sorted vector: most tasks have one or two, and a
/// large run keeps one per instance).
pub type Manifest = dagrun_smallmap::SmallMap<String, OutputRecord>;

/// Digest of a manifest: what downstream `after` tasks see of this task.
pub fn manifest_digest(m: &Manifest) -> ManifestDigest {
    let mut h = blake3::Hasher::new();
    for (name, rec) in m {
        for part in [name.as_bytes(), rec.path.as_bytes(), &rec.digest.0.0] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    ManifestDigest(Digest(*h.finalize().as_bytes()))
}

/// A cache hit's record: what a task with this key produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionEntry {
    /// [`ENTRY_VERSION`].
    pub version: u32,
    /// The cache key.
    pub key: ActionKey,
    /// Task name when it was produced.
    pub task: String,
    /// What went into the key.
    pub inputs: KeyInputs,
    /// The outputs.
    pub outputs: Manifest,
    /// How long the task ran: the time a hit saves.
    pub duration_ms: u64,
    /// When it was produced (Unix ms).
    pub created_ms: u64,
    /// The bytes of its small outputs (those marked `inline`), by digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contents: Contents,
    /// Digest of the entry's content without this field ([`ActionEntry::content_digest`]).
    /// Set by [`Store::put_action`]; an entry read without it is not trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<EntryDigest>,
}

/// What [`ActionEntry::content_digest`] covers: the entry without `digest`, field for field.
#[derive(Serialize)]
struct Unsealed<'a> {
    version: u32,
    key: &'a ActionKey,
    task: &'a str,
    inputs: &'a KeyInputs,
    outputs: &'a Manifest,
    duration_ms: u64,
    created_ms: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    contents: &'a Contents,
}

/// Why an entry file is not a usable cache entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not JSON, or not an entry.
    #[error("unreadable: {0}")]
    Unreadable(String),
    /// Written by another format version (simply a miss).
    #[error("entry format version {found}, this dagrun uses {ENTRY_VERSION_PLAIN} and {ENTRY_VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
    /// No `digest` field.
    #[error("it has no digest")]
    Unsealed,
    /// The content does not hash to the recorded digest: edited or damaged.
    #[error("its content hashes to {actual}, not to its recorded digest {recorded}")]
    Digest {
        /// The recorded digest.
        recorded: EntryDigest,
        /// What the content hashes to.
        actual: EntryDigest,
    },
    /// The entry is stored under another key than the one it names.
    #[error("it is stored under key {file} but names key {recorded}")]
    Key {
        /// The key in the file name.
        file: ActionKey,
        /// The key inside.
        recorded: ActionKey,
    },
    /// Its key inputs hash to another key.
    #[error("its key inputs hash to {actual}, not to its key")]
    Inputs {
        /// What the inputs hash to.
        actual: ActionKey,
    },
    /// Its outputs disagree with the declared outputs (names or paths).
    #[error("{0}")]
    Outputs(String),
    /// Its inline bytes disagree with its inline outputs.
    #[error("{0}")]
    Contents(String),
    /// A restored object's size differs from the size the entry records.
    #[error("output `{output}` is recorded as {recorded} bytes but its object has {actual}")]
    Size {
        /// The output name.
        output: String,
        /// The recorded size.
        recorded: u64,
        /// The object's size.
        actual: u64,
    },
}

impl EntryError {
    /// Whether this is damage or tampering (reported and removed), not merely an entry of
    /// another format version (a silent miss; an older dagrun's, or a newer one's).
    pub fn is_corruption(&self) -> bool {
        !matches!(self, EntryError::Version { .. })
    }
}

impl ActionEntry {
    /// blake3 of the entry without `digest`, as compact JSON: fields in the order of the struct,
    /// map keys sorted (they are `BTreeMap`s), no whitespace. Streamed into the hasher from a
    /// borrowed view: no copy of the entry and no JSON tree, since every cache hit checks it.
    pub fn content_digest(&self) -> EntryDigest {
        let mut hasher = blake3::Hasher::new();
        serde_json::to_writer(&mut hasher, &self.unsealed()).expect("entries serialize");
        EntryDigest(Digest(*hasher.finalize().as_bytes()))
    }

    /// The entry without `digest`, borrowed: what the digest covers.
    fn unsealed(&self) -> Unsealed<'_> {
        Unsealed {
            version: self.version,
            key: &self.key,
            task: &self.task,
            inputs: &self.inputs,
            outputs: &self.outputs,
            duration_ms: self.duration_ms,
            created_ms: self.created_ms,
            contents: &self.contents,
        }
    }

    /// The entry with its digest set.
    pub fn sealed(&self) -> ActionEntry {
        ActionEntry { digest: Some(self.content_digest()), ..self.clone() }
    }

    /// Checks everything an entry can say about itself against the key it is stored under.
    pub fn check(&self, file_key: &ActionKey) -> Result<(), EntryError> {
        self.check_digest(self.content_digest())?;
        self.check_fields(file_key)
    }

    /// The version, and the recorded digest against `actual`.
    fn check_digest(&self, actual: EntryDigest) -> Result<(), EntryError> {
        if self.version != ENTRY_VERSION && self.version != ENTRY_VERSION_PLAIN {
            return Err(EntryError::Version { found: self.version });
        }
        let recorded = self.digest.ok_or(EntryError::Unsealed)?;
        if actual != recorded {
            return Err(EntryError::Digest { recorded, actual });
        }
        Ok(())
    }

    /// The key, the inputs that hash to it, and the outputs they declare.
    fn check_fields(&self, file_key: &ActionKey) -> Result<(), EntryError> {
        if self.key != *file_key {
            return Err(EntryError::Key { file: *file_key, recorded: self.key });
        }
        let actual = self.inputs.key();
        if actual != self.key {
            return Err(EntryError::Inputs { actual });
        }
        check_outputs(&self.outputs, &self.inputs.outputs)?;
        self.check_contents()
    }

    /// The bytes held inline are exactly those of the `inline` outputs, each of its recorded
    /// size and hashing to its digest; an entry of the older version holds none.
    fn check_contents(&self) -> Result<(), EntryError> {
        let bad = |why: String| Err(EntryError::Contents(why));
        if self.version == ENTRY_VERSION_PLAIN && (!self.contents.is_empty() || self.outputs.values().any(|o| o.inline))
        {
            return bad(format!("a version {ENTRY_VERSION_PLAIN} entry cannot hold outputs inline"));
        }
        for (name, rec) in self.outputs.iter().filter(|(_, o)| o.inline) {
            let Some(bytes) = self.contents.get(&rec.digest) else {
                return bad(format!("output `{name}` is marked inline but its bytes are not in the entry"));
            };
            if bytes.0.len() as u64 != rec.size || Digest::of(&bytes.0) != rec.digest.0 {
                return bad(format!("the inline bytes of output `{name}` are not its recorded {} bytes", rec.size));
            }
        }
        match self.contents.keys().find(|d| !self.outputs.values().any(|o| o.inline && o.digest == **d)) {
            Some(d) => bad(format!("it holds bytes {} that no inline output names", d.0.short())),
            None => Ok(()),
        }
    }

    /// The bytes of output record `rec` when the entry holds them inline.
    pub fn inline_bytes(&self, rec: &OutputRecord) -> Option<&[u8]> {
        rec.inline.then(|| self.contents.get(&rec.digest)).flatten().map(|b| b.0.as_slice())
    }
}

/// An entry's bytes as stored (locally and remotely): sealed, compact, `digest` last, so that
/// `written_digest` checks a read with one pass over the bytes.
pub fn entry_bytes(entry: &ActionEntry) -> Vec<u8> {
    // The sealed entry's JSON is the unsealed one's with `,"digest":"<hex>"` before its last
    // `}` (the same fields in the same order, `digest` last): one serialization, no copy.
    let mut bytes = serde_json::to_vec(&entry.unsealed()).expect("entries serialize");
    let digest = EntryDigest(Digest(*blake3::hash(&bytes).as_bytes()));
    debug_assert_eq!(bytes.last(), Some(&b'}'));
    bytes.pop();
    bytes.extend_from_slice(b",\"digest\":\"");
    bytes.extend_from_slice(digest.0.to_hex().as_bytes());
    bytes.extend_from_slice(b"\"}\n");
    bytes
}

/// The digest of an entry file as `put_action` writes it: blake3 of the compact JSON before its
/// last field, `"digest"`, closed with `}` — that is, of the entry without `digest`. Checking it
/// costs one pass over the bytes instead of a serialization per cache hit. `None` when the file
/// does not have that shape (e.g. it was written pretty-printed): then the entry is serialized
/// again to check it.
fn written_digest(bytes: &[u8]) -> Option<EntryDigest> {
    const MARKER: &[u8] = b",\"digest\":\"";
    let text = bytes.trim_ascii_end();
    let at = text.windows(MARKER.len()).rposition(|w| w == MARKER)?;
    let tail = &text[at + MARKER.len()..];
    (tail.len() == 64 + 2 && tail.ends_with(b"\"}")).then_some(())?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&text[..at]);
    hasher.update(b"}");
    Some(EntryDigest(Digest(*hasher.finalize().as_bytes())))
}

/// The outputs must be exactly the declared ones, each at its declared path (how
/// `store_outputs` records it: relative to the workflow directory when inside it, else as
/// joined to it). Outputs are restored to the declared paths; this catches entries that
/// disagree with the key they are stored under.
pub fn check_outputs(outputs: &Manifest, declared: &BTreeMap<String, String>) -> Result<(), EntryError> {
    if !outputs.keys().eq(declared.keys()) {
        let names = |m: Vec<&String>| m.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        return Err(EntryError::Outputs(format!(
            "it records outputs [{}] but the task declares [{}]",
            names(outputs.keys().collect()),
            names(declared.keys().collect())
        )));
    }
    for (name, rec) in outputs {
        if !same_output_path(&rec.path, &declared[name]) {
            return Err(EntryError::Outputs(format!(
                "output `{name}` is recorded at {:?} but declared at {:?}",
                rec.path, declared[name]
            )));
        }
    }
    Ok(())
}

/// Whether `recorded` can be how the declared path was recorded: the same path; a relative
/// path without `..` that an absolute declared path ends with (inside the workflow directory);
/// or an absolute path ending with a declared path that starts with `..` (one that leaves it).
fn same_output_path(recorded: &str, declared: &str) -> bool {
    fn parts(p: &str) -> Vec<Component<'_>> {
        Path::new(p).components().filter(|c| !matches!(c, Component::CurDir)).collect()
    }
    let (got, want) = (parts(recorded), parts(declared));
    let absolute =
        |c: &[Component<'_>]| c.first().is_some_and(|c| matches!(c, Component::RootDir | Component::Prefix(_)));
    let plain = |c: &[Component<'_>]| c.iter().all(|c| matches!(c, Component::Normal(_)));
    got == want
        || (absolute(&want) && !got.is_empty() && plain(&got) && want.ends_with(&got))
        || (want.first() == Some(&Component::ParentDir) && absolute(&got) && got.ends_with(&want))
}

/// The key an entry file is named after (`<hex>.json`).
pub(crate) fn key_of_file(path: &Path) -> Option<ActionKey> {
    let name = path.file_name()?.to_str()?.strip_suffix(".json")?;
    Digest::from_hex(name).map(ActionKey)
}

/// Reads and checks the entry file at `path` (stored under `key`); `Ok(None)` when absent.
pub(crate) fn read_entry(path: &Path, key: &ActionKey) -> Result<Option<ActionEntry>, EntryError> {
    let bytes = match fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EntryError::Unreadable(e.to_string())),
        Ok(b) => b,
    };
    parse_entry(&bytes, key).map(Some)
}

/// Reads and checks an entry from its bytes as [`entry_bytes`] wrote them (a local file or a
/// remote cache's copy), stored under `key`.
pub fn parse_entry(bytes: &[u8], key: &ActionKey) -> Result<ActionEntry, EntryError> {
    let entry: ActionEntry = serde_json::from_slice(bytes).map_err(|e| EntryError::Unreadable(e.to_string()))?;
    match written_digest(bytes) {
        // The bytes carry the digest they were sealed with: no need to serialize them again.
        Some(actual) if entry.digest == Some(actual) => entry.check_digest(actual)?,
        _ => entry.check_digest(entry.content_digest())?,
    }
    entry.check_fields(key)?;
    Ok(entry)
}

impl Store {
    pub(crate) fn action_path(&self, key: &ActionKey) -> PathBuf {
        let hex = key.0.to_hex();
        self.root().join("actions").join(self.shards().dir(&hex)).join(format!("{hex}.json"))
    }

    /// Looks up and checks a cache entry: `Ok(None)` on a miss (no entry, or one of its objects
    /// is missing), `Err` for an entry that fails its checks (see [`EntryError::is_corruption`]).
    /// Reads only: removing a bad entry is the caller's decision.
    pub fn load_action(&self, key: &ActionKey) -> Result<Option<ActionEntry>, EntryError> {
        let Some(entry) = read_entry(&self.action_path(key), key)? else { return Ok(None) };
        Ok(entry.outputs.values().all(|o| o.inline || self.has_object(&o.digest)).then_some(entry))
    }

    /// Looks up a cache entry; `None` on a miss, a missing object, or an entry that fails its checks.
    pub fn get_action(&self, key: &ActionKey) -> Option<ActionEntry> {
        self.load_action(key).ok().flatten()
    }

    /// Records a cache entry (sealed with its digest). Call only after every output object was stored.
    pub fn put_action(&self, entry: &ActionEntry) -> Result<(), StoreError> {
        self.write_entry(&self.action_path(&entry.key), &entry_bytes(entry))
    }

    /// Marks an entry as used now (its mtime drives `cache gc --max-age`).
    pub fn touch_action(&self, key: &ActionKey) {
        if let Ok(f) = File::options().write(true).open(self.action_path(key)) {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    /// Removes an action entry.
    pub fn remove_action(&self, key: &ActionKey) -> Result<(), StoreError> {
        let p = self.action_path(key);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Io { path: p, source: e }),
            _ => Ok(()),
        }
    }
}

/// An entry for one output `o` (declared at `o`) holding `file`'s bytes, for tests.
#[cfg(test)]
pub(crate) fn sample_entry(store: &Store, file: &Path) -> ActionEntry {
    let (digest, size) = store.put_file(file).unwrap();
    let inputs = KeyInputs {
        kind: "command".into(),
        code: Digest::of(b"x"),
        params: Digest::of(b"{}"),
        inputs: BTreeMap::new(),
        outputs: BTreeMap::from([("o".into(), "o".into())]),
        upstream: BTreeMap::new(),
        partition: None,
    };
    ActionEntry {
        version: ENTRY_VERSION_PLAIN,
        key: inputs.key(),
        task: "t".into(),
        inputs,
        outputs: Manifest::from([(
            "o".into(),
            OutputRecord { path: "o".into(), digest, size, executable: false, inline: false },
        )]),
        duration_ms: 5,
        created_ms: 1,
        contents: Default::default(),
        digest: None,
    }
}

/// [`sample_entry`] for one output holding `text` (written to `dir/o.txt`), under a key of its
/// own, for tests.
#[cfg(test)]
pub(crate) fn sample_entry_of(store: &Store, dir: &Path, text: &str) -> ActionEntry {
    let file = dir.join("o.txt");
    fs::write(&file, text).unwrap();
    let mut e = sample_entry(store, &file);
    e.inputs.code = Digest::of(text.as_bytes());
    e.key = e.inputs.key();
    e
}

#[cfg(test)]
mod written_tests {
    use super::*;

    /// The one-pass digest of a written entry is the digest of its content, and any change to
    /// the bytes breaks it.
    #[test]
    fn the_written_digest_is_the_content_digest() {
        let e = ActionEntry {
            version: ENTRY_VERSION,
            key: ActionKey(Digest::of(b"k")),
            task: "t".into(),
            inputs: KeyInputs {
                kind: "command".into(),
                code: Digest::of(b"c"),
                params: Digest::of(b"p"),
                inputs: BTreeMap::new(),
                outputs: BTreeMap::new(),
                upstream: BTreeMap::new(),
                partition: None,
            },
            outputs: Manifest::new(),
            duration_ms: 5,
            created_ms: 7,
            contents: Default::default(),
            digest: None,
        }
        .sealed();
        let mut bytes = serde_json::to_vec(&e).unwrap();
        bytes.push(b'\n');
        assert_eq!(entry_bytes(&e), bytes, "written as the sealed entry serializes");
        assert_eq!(written_digest(&bytes), e.digest);
        let tampered = String::from_utf8(bytes.clone()).unwrap().replace("\"duration_ms\":5", "\"duration_ms\":6");
        assert_ne!(written_digest(tampered.as_bytes()), e.digest);
        assert_eq!(written_digest(&serde_json::to_vec_pretty(&e).unwrap()), None, "pretty files take the slow path");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn setup() -> (tempfile::TempDir, Store, ActionEntry) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Durability::NoFsync).unwrap();
        let f = dir.path().join("out.txt");
        fs::write(&f, "hello").unwrap();
        let e = sample_entry(&store, &f);
        store.put_action(&e).unwrap();
        (dir, store, e)
    }

    fn edit(store: &Store, key: &ActionKey, f: impl FnOnce(&mut serde_json::Value)) {
        let path = store.action_path(key);
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        f(&mut v);
        fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    #[test]
    fn a_written_entry_is_sealed_and_reads_back() {
        let (_d, store, e) = setup();
        let read = store.load_action(&e.key).unwrap().unwrap();
        assert_eq!(read, e.sealed());
        assert_eq!(read.digest, Some(e.content_digest()));
    }

    #[test]
    fn swapping_an_output_digest_for_another_valid_object_is_detected() {
        let (d, store, e) = setup();
        let other = d.path().join("other.txt");
        fs::write(&other, "HELLO").unwrap();
        let (digest, _) = store.put_file(&other).unwrap();
        edit(&store, &e.key, |v| v["outputs"]["o"]["digest"] = digest.to_string().into());
        assert!(matches!(store.load_action(&e.key), Err(EntryError::Digest { .. })));
        assert!(store.get_action(&e.key).is_none());
    }

    #[test]
    fn bit_rot_in_an_entry_is_detected() {
        let (_d, store, e) = setup();
        let path = store.action_path(&e.key);
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.windows(14).position(|w| w == b"\"duration_ms\":").unwrap() + 14;
        bytes[at] ^= 0x01; // the 5 of `"duration_ms":5` becomes 4
        fs::write(&path, bytes).unwrap();
        let err = store.load_action(&e.key).unwrap_err();
        assert!(matches!(err, EntryError::Digest { .. }), "{err}");
        assert!(err.is_corruption());
    }

    #[test]
    fn an_entry_stored_under_another_key_is_rejected() {
        let (_d, store, e) = setup();
        let other = ActionKey(Digest::of(b"another key"));
        fs::create_dir_all(store.action_path(&other).parent().unwrap()).unwrap();
        fs::copy(store.action_path(&e.key), store.action_path(&other)).unwrap();
        assert!(matches!(store.load_action(&other), Err(EntryError::Key { .. })));
    }

    #[test]
    fn a_resealed_entry_must_still_match_its_key_and_declared_outputs() {
        let (_d, store, e) = setup();
        // Outputs that disagree with the declared ones, sealed properly.
        for path in ["../../x", "/tmp/elsewhere/o", "p"] {
            let mut bad = e.clone();
            bad.outputs.get_mut("o").unwrap().path = path.into();
            store.put_action(&bad).unwrap();
            let err = store.load_action(&e.key).unwrap_err();
            assert!(matches!(err, EntryError::Outputs(_)), "{path}: {err}");
        }
        let mut bad = e.clone();
        let o = bad.outputs["o"].clone();
        bad.outputs.insert("extra".into(), o);
        store.put_action(&bad).unwrap();
        assert!(matches!(store.load_action(&e.key), Err(EntryError::Outputs(_))));
        // Inputs that hash to another key.
        let mut bad = e.clone();
        bad.inputs.kind = "wasm".into();
        store.put_action(&bad).unwrap();
        assert!(matches!(store.load_action(&e.key), Err(EntryError::Inputs { .. })));
    }

    #[test]
    fn an_entry_of_the_previous_format_is_a_silent_miss() {
        let (_d, store, e) = setup();
        edit(&store, &e.key, |v| {
            v["version"] = 1.into();
            v.as_object_mut().unwrap().remove("digest");
        });
        let err = store.load_action(&e.key).unwrap_err();
        assert_eq!(err, EntryError::Version { found: 1 });
        assert!(!err.is_corruption());
    }

    #[test]
    fn recorded_paths_follow_how_declared_paths_are_recorded() {
        assert!(same_output_path("out/x", "out/x"));
        assert!(same_output_path("out/x", "./out/x"));
        assert!(same_output_path("out/x", "/w/out/x"));
        assert!(same_output_path("/w/../s/x", "../s/x"));
        assert!(same_output_path("/elsewhere/x", "/elsewhere/x"));
        assert!(!same_output_path("../out/x", "/w/out/x"));
        assert!(!same_output_path("/etc/out/x", "out/x"));
        assert!(!same_output_path("../../x", "x"));
        assert!(!same_output_path("", "/w"));
    }
}
