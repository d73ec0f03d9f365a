//! Small outputs kept inside their cache entry: stored without an object file, put back in
//! place from the entry's bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::digest::{Digest, ObjectDigest};
use serde::{Deserialize, Serialize};

use crate::entry::{INLINE_ENTRY_MAX, INLINE_MAX, Manifest, OutputRecord};
use crate::store::{IoContext, Store, StoreError};

/// Bytes held in an entry: base64 in JSON (standard alphabet, padded).
#[derive(Clone, PartialEq, Eq)]
pub struct InlineBytes(pub Vec<u8>);

impl std::fmt::Debug for InlineBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InlineBytes({} bytes)", self.0.len())
    }
}

impl Serialize for InlineBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for InlineBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(InlineBytes)
            .map_err(serde::de::Error::custom)
    }
}

/// The bytes of an entry's inline outputs, by their digest.
pub type Contents = BTreeMap<ObjectDigest, InlineBytes>;

/// How many more bytes an entry holding `contents` may hold inline ([`INLINE_ENTRY_MAX`]).
pub fn inline_room(contents: &Contents) -> u64 {
    INLINE_ENTRY_MAX.saturating_sub(contents.values().map(|b| b.0.len() as u64).sum())
}

/// An output as [`Store::put_output`] stored it.
#[derive(Debug)]
pub struct StoredOutput {
    /// Its content digest.
    pub digest: ObjectDigest,
    /// Its size in bytes.
    pub size: u64,
    /// Its bytes, when it is small enough to be kept in the entry (then no object was written).
    pub inline: Option<Vec<u8>>,
}

impl StoredOutput {
    /// Records it in `manifest` under `name` (at `path`, relative as declared) and, when it is
    /// inline, its bytes in `contents`.
    pub fn record(self, manifest: &mut Manifest, contents: &mut Contents, name: &str, path: String, executable: bool) {
        let inline = self.inline.is_some();
        if let Some(bytes) = self.inline {
            contents.insert(self.digest, InlineBytes(bytes));
        }
        let rec = OutputRecord { path, digest: self.digest, size: self.size, executable, inline };
        manifest.insert(name.to_owned(), rec);
    }
}

impl Store {
    /// Stores a task's output file: one of up to [`INLINE_MAX`] bytes, and no more than `room`
    /// (what its entry may still hold: [`inline_room`]), is only read and hashed (its bytes go
    /// in the entry); a larger one is copied into an object as by [`Store::put_file`].
    pub fn put_output(&self, src: &Path, room: u64) -> Result<StoredOutput, StoreError> {
        match self.read_small(src, room)? {
            Ok(small) => Ok(small),
            Err((input, head)) => {
                let (digest, size) = self.put_file_after(src, input, head)?;
                Ok(StoredOutput { digest, size, inline: None })
            }
        }
    }

    /// [`Store::put_output`] of an output expected to be small: `None` (nothing written) when it
    /// is larger than it may be inline, so that a caller which must not copy a large file (an
    /// async worker) stores it elsewhere. Reads at most one byte past that size.
    pub fn put_small_output(&self, src: &Path, room: u64) -> Result<Option<StoredOutput>, StoreError> {
        Ok(self.read_small(src, room)?.ok())
    }

    /// `src`'s bytes as an inline output when they fit; else the open file and what was read.
    fn read_small(&self, src: &Path, room: u64) -> Result<Result<StoredOutput, (File, Vec<u8>)>, StoreError> {
        let limit = INLINE_MAX.min(room);
        let mut input = File::open(src).at(src)?;
        // One read fills it, a second finds the end (no small first read to size the buffer).
        let mut head = Vec::with_capacity(limit as usize + 1);
        (&mut input).take(limit + 1).read_to_end(&mut head).at(src)?;
        if head.len() as u64 > limit {
            return Ok(Err((input, head)));
        }
        let digest = ObjectDigest(Digest::of(&head));
        Ok(Ok(StoredOutput { digest, size: head.len() as u64, inline: Some(head) }))
    }

    /// Puts an inline output's `bytes` at `dest` (atomically, with the recorded mode), after
    /// checking them against the record `rec` (the entry's own check already did, on its read).
    pub fn restore_bytes(&self, rec: &OutputRecord, bytes: &[u8], dest: &Path) -> Result<(), StoreError> {
        if bytes.len() as u64 != rec.size {
            return Err(StoreError::Size { recorded: rec.size, actual: bytes.len() as u64 });
        }
        let actual = ObjectDigest(Digest::of(bytes));
        if actual != rec.digest {
            return Err(StoreError::Corrupt { digest: rec.digest, actual });
        }
        Self::put_in_place(dest, rec.executable, |tmp| File::create(tmp).and_then(|mut f| f.write_all(bytes)).at(tmp))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::store::Durability;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state"), Durability::NoFsync).unwrap();
        (dir, store)
    }

    fn objects(store: &Store) -> usize {
        let dirs = fs::read_dir(store.root().join("objects")).unwrap();
        dirs.map(|d| fs::read_dir(d.unwrap().path()).unwrap().count()).sum()
    }

    #[test]
    fn a_small_output_is_kept_inline_and_a_large_one_becomes_an_object() {
        let (dir, store) = store();
        let small = dir.path().join("small");
        fs::write(&small, vec![7u8; INLINE_MAX as usize]).unwrap();
        let s = store.put_output(&small, INLINE_MAX).unwrap();
        assert_eq!((s.size, s.inline.as_deref()), (INLINE_MAX, Some(&vec![7u8; INLINE_MAX as usize][..])));
        assert_eq!(s.digest, crate::digest::hash_file(&small).unwrap().0);
        assert_eq!(objects(&store), 0, "no object for an inline output");
        let large = dir.path().join("large");
        fs::write(&large, vec![8u8; INLINE_MAX as usize + 1]).unwrap();
        assert!(store.put_small_output(&large, INLINE_ENTRY_MAX).unwrap().is_none(), "too large: nothing stored");
        assert_eq!(objects(&store), 0);
        let l = store.put_output(&large, INLINE_ENTRY_MAX).unwrap();
        assert!(l.inline.is_none());
        assert_eq!(l.size, INLINE_MAX + 1);
        assert!(store.has_object(&l.digest));
        assert_eq!(fs::read(store.object_path(&l.digest)).unwrap(), fs::read(&large).unwrap());

        // Past what its entry may still hold, even a small output is an object.
        let mut full = Contents::new();
        full.insert(l.digest, InlineBytes(vec![0; INLINE_ENTRY_MAX as usize - 100]));
        assert_eq!(inline_room(&full), 100);
        let s = store.put_output(&small, inline_room(&full)).unwrap();
        assert!(s.inline.is_none() && store.has_object(&s.digest));
        assert_eq!(fs::read(store.object_path(&s.digest)).unwrap(), fs::read(&small).unwrap());
    }

    #[test]
    fn inline_bytes_are_restored_with_their_mode_and_refused_when_they_disagree() {
        let (dir, store) = store();
        let src = dir.path().join("tool.sh");
        fs::write(&src, b"#!/bin/sh\necho hi\n").unwrap();
        let s = store.put_output(&src, INLINE_ENTRY_MAX).unwrap();
        let (mut manifest, mut contents) = (Manifest::new(), Contents::new());
        s.record(&mut manifest, &mut contents, "out", "tool.sh".into(), true);
        let rec = &manifest["out"];
        assert!(rec.inline);
        let bytes = &contents[&rec.digest].0;
        let dest = dir.path().join("sub/dir/tool.sh");
        store.restore_bytes(rec, bytes, &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"#!/bin/sh\necho hi\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o755);
        }
        let other = dest.with_file_name("other");
        assert!(matches!(store.restore_bytes(rec, b"#!/bin/sh\necho HI\n", &other), Err(StoreError::Corrupt { .. })));
        assert!(matches!(store.restore_bytes(rec, b"short", &other), Err(StoreError::Size { .. })));
        assert!(!other.exists(), "nothing written for bytes that disagree");
        let no_object = store.restore(rec, &other).unwrap_err().to_string();
        assert_eq!(no_object, format!("{}: output is held in its cache entry, not in an object", other.display()));
    }

    /// `file`'s bytes as the inline output `o` of a sample entry (whose object is removed).
    fn inline_entry(store: &Store, file: &Path) -> crate::entry::ActionEntry {
        let mut e = crate::entry::sample_entry(store, file);
        fs::remove_file(store.object_path(&e.outputs["o"].digest)).unwrap();
        let (mut outputs, mut contents) = (Manifest::new(), Contents::new());
        store.put_output(file, INLINE_ENTRY_MAX).unwrap().record(&mut outputs, &mut contents, "o", "o".into(), false);
        e.version = crate::entry::entry_version(&contents);
        (e.outputs, e.contents) = (outputs, contents);
        e
    }

    #[test]
    fn an_entry_holding_an_output_reads_back_without_an_object_and_its_bytes_are_checked() {
        use crate::entry::{ENTRY_VERSION, ENTRY_VERSION_PLAIN, EntryError, entry_version};
        let (dir, store) = store();
        let file = dir.path().join("metrics.json");
        fs::write(&file, br#"{"auc": 0.91}"#).unwrap();
        let e = inline_entry(&store, &file);
        assert_eq!((e.version, entry_version(&Contents::new())), (ENTRY_VERSION, ENTRY_VERSION_PLAIN));
        store.put_action(&e).unwrap();
        let sealed = [serde_json::to_vec(&e.sealed()).unwrap(), b"\n".to_vec()].concat();
        assert_eq!(fs::read(store.action_path(&e.key)).unwrap(), sealed, "written as the sealed entry serializes");
        let text = fs::read_to_string(store.action_path(&e.key)).unwrap();
        assert!(text.contains(r#""inline":true"#) && text.contains(r#""contents":{""#), "{text}");
        assert!(text.contains("eyJhdWMiOiAwLjkxfQ=="), "base64 of the bytes: {text}");
        let read = store.load_action(&e.key).unwrap().expect("a hit with no object");
        assert_eq!(read.inline_bytes(&read.outputs["o"]), Some(&br#"{"auc": 0.91}"#[..]));
        assert_eq!(objects(&store), 0);

        // Each disagreement between the bytes and the outputs, resealed so only it is wrong.
        let refused = |change: &dyn Fn(&mut crate::entry::ActionEntry)| {
            let mut bad = e.clone();
            change(&mut bad);
            store.put_action(&bad).unwrap();
            match store.load_action(&e.key) {
                Err(EntryError::Contents(why)) => why,
                other => panic!("expected a contents error, got {other:?}"),
            }
        };
        let d = e.outputs["o"].digest;
        let why = refused(&|b| b.contents.get_mut(&d).unwrap().0[2] ^= 1);
        assert!(why.contains("not its recorded 13 bytes"), "{why}");
        let why = refused(&|b| drop(b.contents.remove(&d)));
        assert!(why.contains("its bytes are not in the entry"), "{why}");
        let why = refused(&|b| b.version = ENTRY_VERSION_PLAIN);
        assert!(why.contains("version 2 entry cannot hold outputs inline"), "{why}");
        // Another version altogether: a miss that names both versions this dagrun reads.
        let mut newer = e.clone();
        newer.version = 7;
        store.put_action(&newer).unwrap();
        let err = store.load_action(&e.key).unwrap_err();
        assert!(!err.is_corruption());
        assert_eq!(err.to_string(), "entry format version 7, this dagrun uses 2 and 3");
        let stray = crate::digest::ObjectDigest(Digest::of(b"stray"));
        let why = refused(&|b| drop(b.contents.insert(stray, InlineBytes(b"stray".to_vec()))));
        assert!(why.contains("that no inline output names"), "{why}");
        let why = refused(&|b| b.outputs.get_mut("o").unwrap().inline = false);
        assert!(why.contains("that no inline output names"), "{why}");

        // Edited in place without resealing: the entry's own digest catches it.
        store.put_action(&e).unwrap();
        let path = store.action_path(&e.key);
        let edited = fs::read_to_string(&path).unwrap().replace("eyJhdWMiOiAwLjkxfQ==", "eyJhdWMiOiAwLjk5fQ==");
        fs::write(&path, edited).unwrap();
        assert!(matches!(store.load_action(&e.key), Err(EntryError::Digest { .. })));
    }
}
