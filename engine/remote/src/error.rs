//! What can go wrong with a remote, each saying which remote and what to do.

use dagrun_cache::{ActionKey, EntryError, ObjectDigest, StoreError};

/// A remote cache or registry operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The location is not a usable `s3://` URL.
    #[error("invalid remote location {url:?}: {why}")]
    Url {
        /// As given.
        url: String,
        /// What is wrong and how to write it.
        why: String,
    },
    /// The environment does not say how to reach or sign in to the remote.
    #[error("remote {url}: {why}")]
    Config {
        /// The remote.
        url: String,
        /// What is missing and how to set it.
        why: String,
    },
    /// A request failed (server down, wrong credentials, missing bucket, …).
    #[error("remote {url}: {op} failed: {source}")]
    Request {
        /// The remote.
        url: String,
        /// What was being done (`reading entry <key>`, `uploading object <digest>`, …).
        op: String,
        /// The storage client's error (never carries credentials).
        #[source]
        source: Box<object_store::Error>,
    },
    /// An entry on the remote fails its checks: it is never used.
    #[error("remote {url}: the entry for key {key} is not usable ({source})")]
    CorruptEntry {
        /// The remote.
        url: String,
        /// The key it is stored under.
        key: ActionKey,
        /// Why.
        #[source]
        source: Box<EntryError>,
    },
    /// An object downloaded from the remote does not hash to its name (or has another size):
    /// it was not stored locally and is never used.
    #[error("remote {url}: object {digest} is corrupt on the remote ({why}); it was not used")]
    CorruptObject {
        /// The remote.
        url: String,
        /// The name it is stored under.
        digest: ObjectDigest,
        /// What differs.
        why: String,
    },
    /// The local store failed while taking in or handing out an object.
    #[error(transparent)]
    Local(Box<StoreError>),
    /// A local file could not be read for upload.
    #[error("cannot read {path} for upload: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another writer moved a model's `current` (or took the version number) first: this
    /// change was not published. Never an overwrite.
    #[error(
        "registry {url}: another deploy changed `{name}` first (current there is now {}); this change ({ours}) was not published and did not happen. The local mirror was re-synced: run the workflow again to evaluate against the new champion{}",
        .current.as_deref().unwrap_or("nothing"),
        .resync.as_ref().map(|e| format!(" (re-syncing failed too: {e})")).unwrap_or_default()
    )]
    LostRace {
        /// The registry.
        url: String,
        /// The model.
        name: String,
        /// What this process tried to publish (`v0002 as current`, `version v0002`).
        ours: String,
        /// The remote's current version after the race.
        current: Option<String>,
        /// Why the mirror could not be re-synced afterwards, if it could not.
        resync: Option<String>,
    },
    /// A version on the remote fails its checks (a missing file, a digest that is not the
    /// one its `metadata.json` records): it is never mirrored or served.
    #[error(
        "registry {url}: `{name}` {version} is not usable on the remote ({why}); it was not used. Point `current` at a sound version (`dagrun models rollback --registry {url} --name {name} --to VERSION`) or deploy again"
    )]
    CorruptVersion {
        /// The registry.
        url: String,
        /// The model.
        name: String,
        /// The version.
        version: String,
        /// What is wrong.
        why: String,
    },
    /// The local mirror of a remote registry could not be read or written.
    #[error("registry {url}: its local mirror {}: {source}", .path.display())]
    Mirror {
        /// The registry.
        url: String,
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<StoreError> for RemoteError {
    fn from(e: StoreError) -> RemoteError {
        RemoteError::Local(Box::new(e))
    }
}

impl RemoteError {
    /// Whether the remote holds something corrupt (as opposed to being unreachable).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            RemoteError::CorruptEntry { .. } | RemoteError::CorruptObject { .. } | RemoteError::CorruptVersion { .. }
        )
    }
}
