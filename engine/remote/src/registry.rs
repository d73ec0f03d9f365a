//! The model registry on S3 (`s3://bucket/models`): the layout of a local registry
//! ([`dagrun_contracts::registry`]) under the URL's prefix, worked on through a local mirror.
//!
//! ```text
//! <prefix>/<name>/current               "v0003\n": moved only by a conditional write
//! <prefix>/<name>/v0003/metadata.json   uploaded first and create-only: it claims the number
//! <prefix>/<name>/v0003/model.onnx      (and verdict.json, reference.*) create-only
//! ```
//! [`RemoteRegistry::sync`] makes the mirror (`<state>/registries/<blake3 of the URL>/`, an
//! ordinary registry directory) hold what the remote holds: versions are immutable, so only new
//! or changed ones are downloaded, each verified against the digests its `metadata.json`
//! records before it is placed; a version that fails is never mirrored (an empty directory with
//! an `UNUSABLE` note keeps its number taken). Every code path that reads or writes a registry
//! directory works on the mirror unchanged. [`RemoteRegistry::publish`] sends what a deploy or
//! a rollback changed there: new version files create-only, then `current` with `If-Match` on
//! the ETag the last sync saw (`If-None-Match: *` when there was none). A refused precondition
//! means another writer moved first: nothing is overwritten, the mirror is re-synced and the
//! caller gets [`RemoteError::LostRace`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dagrun_contracts::registry::{self as layout, Metadata};
use futures_util::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as Key;
use serde::{Deserialize, Serialize};

use crate::{Connection, RemoteError, RemoteUrl, connect};

/// The mirror's own record of what it holds from the remote (a dot file: not a model name).
pub const SYNC_FILE: &str = ".remote.json";
/// The note left in the directory of a version that failed its checks.
pub const UNUSABLE_FILE: &str = "UNUSABLE";

/// `<state>/registries/<blake3 of the URL>`: where a remote registry is mirrored.
pub fn mirror_dir(state_dir: &Path, url: &RemoteUrl) -> PathBuf {
    state_dir.join("registries").join(blake3::hash(url.to_string().as_bytes()).to_hex().as_str())
}

/// What the mirror holds from the remote.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    /// Remote files in the mirror: key below the prefix (`churn/v0002/model.onnx`) → ETag.
    files: BTreeMap<String, String>,
    /// Each model's `current`, remote and mirrored.
    models: BTreeMap<String, Pointer>,
}

/// A model's `current` as the last sync or publish saw it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Pointer {
    /// The remote object's ETag, as the server sent it (`None`: there is none).
    e_tag: Option<String>,
    /// The version the remote names.
    remote: Option<String>,
    /// What the mirror's `current` was left at: a change from this is what [`publish`] sends.
    ///
    /// [`publish`]: RemoteRegistry::publish
    local: Option<String>,
}

/// What a sync found.
#[derive(Debug, Default)]
pub struct Synced {
    /// Versions downloaded now (`churn v0002`).
    pub downloaded: Vec<String>,
    /// Versions on the remote that fail their checks ([`RemoteError::CorruptVersion`]).
    pub problems: Vec<RemoteError>,
    /// Models whose remote `current` names a version that is missing or unusable: the mirror
    /// keeps its earlier `current`, and nothing may be decided against it.
    pub broken: BTreeSet<String>,
}

/// A `current` that [`RemoteRegistry::publish`] moved on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The model.
    pub name: String,
    /// The version current before (on the remote).
    pub from: Option<String>,
    /// The version current now.
    pub to: String,
}

/// What the remote lists under the prefix, by model.
#[derive(Debug, Default)]
struct Listing {
    /// `(name, version)` → file → ETag (unquoted).
    versions: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// name → ETag of its `current` (unquoted).
    currents: BTreeMap<String, String>,
}

/// A model registry on S3-compatible storage and its local mirror.
#[derive(Debug, Clone)]
pub struct RemoteRegistry {
    conn: Connection,
    mirror: PathBuf,
}

impl RemoteRegistry {
    /// A registry over a connection, mirrored in `mirror`.
    pub fn new(conn: Connection, mirror: PathBuf) -> RemoteRegistry {
        RemoteRegistry { conn, mirror }
    }

    /// Connects from the process environment and mirrors under `state_dir` ([`mirror_dir`]).
    pub fn open(url: &RemoteUrl, state_dir: &Path) -> Result<RemoteRegistry, RemoteError> {
        Ok(RemoteRegistry::new(connect(url)?, mirror_dir(state_dir, url)))
    }

    /// Where it lives.
    pub fn url(&self) -> &RemoteUrl {
        &self.conn.url
    }

    /// The mirror: a registry directory every local code path can use.
    pub fn mirror(&self) -> &Path {
        &self.mirror
    }

    fn key(&self, rel: &str) -> Key {
        Key::from(self.conn.url.key(rel))
    }

    fn failed(&self, op: String) -> impl FnOnce(object_store::Error) -> RemoteError + '_ {
        move |source| RemoteError::Request { url: self.conn.url.to_string(), op, source: Box::new(source) }
    }

    pub(crate) fn local(&self, path: &Path) -> impl FnOnce(std::io::Error) -> RemoteError + '_ {
        let path = path.to_owned();
        move |source| RemoteError::Mirror { url: self.conn.url.to_string(), path, source }
    }

    /// Makes the mirror hold what the remote holds (see the module docs). Requests that fail
    /// are errors; versions that fail their checks are [`Synced::problems`].
    pub async fn sync(&self) -> Result<Synced, RemoteError> {
        let listing = self.list().await?;
        std::fs::create_dir_all(&self.mirror).map_err(self.local(&self.mirror))?;
        let mut record = self.load();
        let mut synced = Synced::default();
        for ((name, version), files) in &listing.versions {
            if self.in_mirror(&record, name, version, files) {
                continue;
            }
            forget(&mut record, name, version);
            match self.download(name, version, files).await {
                Ok(()) => synced.downloaded.push(format!("{name} {version}")),
                Err(e) if e.is_corruption() => {
                    self.mark_unusable(name, version, &e)?;
                    synced.problems.push(e);
                }
                Err(e) => return Err(e),
            }
            for (file, tag) in files {
                record.files.insert(format!("{name}/{version}/{file}"), tag.clone());
            }
        }
        self.drop_unpublished(&listing, &mut record)?;
        let names: BTreeSet<String> = listing.currents.keys().cloned().chain(layout::names(&self.mirror)).collect();
        for name in names {
            self.sync_current(&name, listing.currents.get(&name), &mut record, &mut synced).await?;
        }
        self.save(&record)?;
        Ok(synced)
    }

    /// Syncs when the remote `current` of `name` is not the one the mirror last saw (one HEAD
    /// request otherwise): `None` when nothing changed.
    pub async fn poll(&self, name: &str) -> Result<Option<Synced>, RemoteError> {
        let seen = self.load().models.get(name).cloned().unwrap_or_default();
        let tag = match self.conn.store.head(&self.key(&format!("{name}/{}", layout::CURRENT_FILE))).await {
            Ok(meta) => meta.e_tag.map(|t| unquote(&t)),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(self.failed(format!("reading the current version of `{name}`"))(e)),
        };
        let same = tag == seen.e_tag.as_deref().map(unquote) && seen.local == seen.remote;
        if same { Ok(None) } else { self.sync().await.map(Some) }
    }

    /// Every object under the prefix, sorted into versions and pointers (others are ignored).
    async fn list(&self) -> Result<Listing, RemoteError> {
        let prefix = (!self.conn.url.prefix.is_empty()).then(|| Key::from(self.conn.url.prefix.as_str()));
        let metas: Vec<object_store::ObjectMeta> = self
            .conn
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(self.failed("listing the registry".into()))?;
        let mut out = Listing::default();
        let skip = if self.conn.url.prefix.is_empty() { 0 } else { self.conn.url.prefix.len() + 1 };
        for meta in metas {
            let Some(rel) = meta.location.as_ref().get(skip..) else { continue };
            let tag = meta.e_tag.as_deref().map(unquote).unwrap_or_default();
            let parts: Vec<&str> = rel.split('/').collect();
            match parts[..] {
                [name, file] if file == layout::CURRENT_FILE && layout::validate_name(name).is_ok() => {
                    out.currents.insert(name.to_owned(), tag);
                }
                [name, version, file]
                    if layout::validate_name(name).is_ok()
                        && layout::parse_version(version).is_some()
                        && !file.starts_with('.')
                        && file != UNUSABLE_FILE =>
                {
                    out.versions.entry((name.to_owned(), version.to_owned())).or_default().insert(file.to_owned(), tag);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether the mirror already holds exactly these remote files of a version.
    fn in_mirror(&self, record: &Record, name: &str, version: &str, files: &BTreeMap<String, String>) -> bool {
        let prefix = format!("{name}/{version}/");
        let known: BTreeMap<&str, &String> =
            record.files.iter().filter_map(|(k, t)| k.strip_prefix(&prefix).map(|f| (f, t))).collect();
        layout::version_dir(&self.mirror, name, version).is_dir()
            && known.len() == files.len()
            && files.iter().all(|(f, t)| known.get(f.as_str()) == Some(&t))
    }

    /// Removes version directories the remote does not have (a deploy that was never
    /// published, or a version deleted there).
    fn drop_unpublished(&self, listing: &Listing, record: &mut Record) -> Result<(), RemoteError> {
        for name in layout::names(&self.mirror) {
            for v in layout::versions(&self.mirror, &name) {
                if !listing.versions.contains_key(&(name.clone(), v.version.clone())) {
                    std::fs::remove_dir_all(&v.dir).map_err(self.local(&v.dir))?;
                    forget(record, &name, &v.version);
                }
            }
        }
        Ok(())
    }

    /// Sets the mirror's `current` of `name` to the remote's (read only when its ETag changed);
    /// a remote `current` naming a version the mirror does not hold usable leaves the mirror's
    /// as it was and marks the model [`Synced::broken`].
    async fn sync_current(
        &self,
        name: &str,
        listed: Option<&String>,
        record: &mut Record,
        synced: &mut Synced,
    ) -> Result<(), RemoteError> {
        let entry = record.models.entry(name.to_owned()).or_default();
        let local = layout::read_current(&self.mirror, name).ok().flatten();
        let Some(tag) = listed else {
            let path = layout::current_file(&self.mirror, name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(self.local(&path)(e)),
                _ => {}
            }
            *entry = Pointer::default();
            return Ok(());
        };
        if entry.e_tag.as_deref().map(unquote).as_ref() != Some(tag) {
            let (bytes, e_tag) = self.get(&format!("{name}/{}", layout::CURRENT_FILE)).await?;
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            entry.e_tag = e_tag;
            entry.remote = layout::parse_version(&text).map(|_| text.clone());
            if entry.remote.is_none() {
                synced.broken.insert(name.to_owned());
                synced.problems.push(self.corrupt(name, "current", format!("`current` holds {text:?}, not a version")));
                entry.local = local;
                return Ok(());
            }
        }
        let Some(version) = entry.remote.clone() else {
            synced.broken.insert(name.to_owned());
            entry.local = local;
            return Ok(());
        };
        if layout::model_file(&self.mirror, name, &version).is_file() {
            if local.as_ref() != Some(&version) {
                let path = layout::current_file(&self.mirror, name);
                layout::set_current(&self.mirror, name, &version)
                    .map_err(|e| self.local(&path)(std::io::Error::other(e.to_string())))?;
            }
            entry.local = Some(version);
        } else {
            synced.broken.insert(name.to_owned());
            let why = "`current` names it, but it is missing or failed its checks".to_owned();
            synced.problems.push(self.corrupt(name, &version, why));
            entry.local = local;
        }
        Ok(())
    }

    /// A [`RemoteError::CorruptVersion`] of this registry.
    pub(crate) fn corrupt(&self, name: &str, version: &str, why: String) -> RemoteError {
        RemoteError::CorruptVersion {
            url: self.conn.url.to_string(),
            name: name.to_owned(),
            version: version.to_owned(),
            why,
        }
    }

    /// The bytes of the object `rel` (below the prefix) and its ETag as sent.
    async fn get(&self, rel: &str) -> Result<(bytes::Bytes, Option<String>), RemoteError> {
        let op = || format!("reading {rel}");
        let got = self.conn.store.get(&self.key(rel)).await.map_err(self.failed(op()))?;
        let tag = got.meta.e_tag.clone();
        let bytes = got.bytes().await.map_err(self.failed(op()))?;
        Ok((bytes, tag))
    }

    /// Downloads a version into a hidden staging directory, checks it, and renames it into
    /// place (replacing what the mirror had under that number).
    async fn download(&self, name: &str, version: &str, files: &BTreeMap<String, String>) -> Result<(), RemoteError> {
        let dir = layout::model_dir(&self.mirror, name);
        std::fs::create_dir_all(&dir).map_err(self.local(&dir))?;
        let staging = dir.join(format!(".{version}.sync.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir(&staging).map_err(self.local(&staging))?;
        let fetched = self.fetch_into(&staging, name, version, files).await;
        let placed = fetched.and_then(|()| {
            let target = layout::version_dir(&self.mirror, name, version);
            let _ = std::fs::remove_dir_all(&target);
            std::fs::rename(&staging, &target).map_err(self.local(&target))
        });
        if placed.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        placed
    }

    async fn fetch_into(
        &self,
        staging: &Path,
        name: &str,
        version: &str,
        files: &BTreeMap<String, String>,
    ) -> Result<(), RemoteError> {
        let mut digests = BTreeMap::new();
        for file in files.keys() {
            let (bytes, _) = self.get(&format!("{name}/{version}/{file}")).await?;
            digests.insert(file.clone(), blake3::hash(&bytes).to_hex().to_string());
            let path = staging.join(file);
            std::fs::write(&path, &bytes).map_err(self.local(&path))?;
        }
        let meta_path = staging.join(layout::METADATA_FILE);
        let meta = std::fs::read(&meta_path)
            .map_err(|e| format!("no {} ({e})", layout::METADATA_FILE))
            .and_then(|b| Metadata::from_json(&b).map_err(|e| e.to_string()))
            .map_err(|why| self.corrupt(name, version, why))?;
        check_files(&meta, name, version, &digests).map_err(|why| self.corrupt(name, version, why))
    }

    /// Leaves an empty version directory with a note: the number stays taken, nothing in it
    /// can be served or made current.
    fn mark_unusable(&self, name: &str, version: &str, e: &RemoteError) -> Result<(), RemoteError> {
        let dir = layout::version_dir(&self.mirror, name, version);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(self.local(&dir))?;
        let note = dir.join(UNUSABLE_FILE);
        std::fs::write(&note, format!("{e}\n")).map_err(self.local(&note))
    }

    fn record_path(&self) -> PathBuf {
        self.mirror.join(SYNC_FILE)
    }

    /// The mirror's record; empty when there is none or it cannot be read (the next sync then
    /// downloads everything again).
    fn load(&self) -> Record {
        std::fs::read(self.record_path()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn save(&self, record: &Record) -> Result<(), RemoteError> {
        let path = self.record_path();
        let tmp = self.mirror.join(format!("{SYNC_FILE}.{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(record).expect("the record serializes");
        std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &path)).map_err(self.local(&path))
    }
}

/// Checks a version's files against its metadata: it names this model and version, and the
/// model (and reference data, when recorded) hash to the digests it records.
fn check_files(meta: &Metadata, name: &str, version: &str, digests: &BTreeMap<String, String>) -> Result<(), String> {
    if meta.name != name || meta.model_version != version {
        return Err(format!("its metadata describes `{}` {}", meta.name, meta.model_version));
    }
    let check = |file: &str, want: &str| match digests.get(file) {
        None => Err(format!("{file} is missing")),
        Some(d) if d != want => Err(format!("{file} has blake3 {d}, its metadata records {want}")),
        Some(_) => Ok(()),
    };
    check(layout::MODEL_FILE, &meta.digest)?;
    if let Some(r) = &meta.reference {
        check(&r.file, &r.digest)?;
    }
    Ok(())
}

/// Drops a version's files from the record.
fn forget(record: &mut Record, name: &str, version: &str) {
    let prefix = format!("{name}/{version}/");
    record.files.retain(|k, _| !k.starts_with(&prefix));
}

/// An ETag without its quotes (listings and headers do not agree on them everywhere).
fn unquote(tag: &str) -> String {
    tag.trim_matches('"').to_owned()
}

#[path = "registry_publish.rs"]
mod publish;
