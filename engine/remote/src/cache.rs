//! The remote cache: objects under `v1/objects/<hh>/<digest>`, action entries under
//! `v1/actions/<hh>/<key>.json`, both below the URL's prefix. Objects are verified against
//! their digest before the local store takes them; entries are checked like local ones and
//! published create-only, so a published entry is never overwritten.

use std::io::Read;

use dagrun_cache::{ActionEntry, ActionKey, Digest, ObjectDigest, Store, StoreError, entry_bytes, parse_entry};
use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

use crate::{Connection, RemoteError, RemoteUrl};

/// Objects up to this size are uploaded in one request; larger ones in parts of this size.
const PART: usize = 8 << 20;

/// What publishing an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// This entry is now the remote's entry for its key.
    Created,
    /// Another writer published an entry for the key first; it was left as it is.
    Existing,
}

/// What uploading an object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    /// Sent now.
    Sent,
    /// The remote already had it.
    Present,
}

/// A shared cache on S3-compatible storage.
#[derive(Debug, Clone)]
pub struct RemoteCache {
    conn: Connection,
}

impl RemoteCache {
    /// A cache over a connection.
    pub fn new(conn: Connection) -> RemoteCache {
        RemoteCache { conn }
    }

    /// Where it lives.
    pub fn url(&self) -> &RemoteUrl {
        &self.conn.url
    }

    fn object_key(&self, d: &ObjectDigest) -> Key {
        let hex = d.0.to_hex();
        Key::from(self.conn.url.key(&format!("v1/objects/{}/{hex}", &hex[..2])))
    }

    fn action_key(&self, k: &ActionKey) -> Key {
        let hex = k.0.to_hex();
        Key::from(self.conn.url.key(&format!("v1/actions/{}/{hex}.json", &hex[..2])))
    }

    /// Where the remote keeps `key`'s entry, as `s3://bucket/…` (what to remove when it is
    /// corrupt: a published entry is never replaced).
    pub fn entry_location(&self, key: &ActionKey) -> String {
        format!("s3://{}/{}", self.conn.url.bucket, self.action_key(key))
    }

    /// Where the remote keeps object `d`, as `s3://bucket/…`.
    pub fn object_location(&self, d: &ObjectDigest) -> String {
        format!("s3://{}/{}", self.conn.url.bucket, self.object_key(d))
    }

    fn failed(&self, op: String) -> impl FnOnce(object_store::Error) -> RemoteError + '_ {
        move |source| RemoteError::Request { url: self.conn.url.to_string(), op, source: Box::new(source) }
    }

    /// The remote's entry for `key`, checked like a local one; `None` when it has none, or one
    /// of another format version (written by another dagrun: a miss, not damage).
    pub async fn entry(&self, key: &ActionKey) -> Result<Option<ActionEntry>, RemoteError> {
        let got = match self.conn.store.get(&self.action_key(key)).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            r => r.map_err(self.failed(format!("reading the entry for key {}", key.0.short())))?,
        };
        let bytes = got.bytes().await.map_err(self.failed(format!("reading the entry for key {}", key.0.short())))?;
        match parse_entry(&bytes, key) {
            Ok(entry) => Ok(Some(entry)),
            Err(e) if !e.is_corruption() => Ok(None),
            Err(source) => {
                Err(RemoteError::CorruptEntry { url: self.conn.url.to_string(), key: *key, source: Box::new(source) })
            }
        }
    }

    /// Publishes `entry` unless the remote has one for its key (create-only: the first writer
    /// wins, a published entry is never replaced). Upload its objects first.
    pub async fn publish(&self, entry: &ActionEntry) -> Result<Published, RemoteError> {
        let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        let payload = PutPayload::from(entry_bytes(entry));
        match self.conn.store.put_opts(&self.action_key(&entry.key), payload, opts).await {
            Ok(_) => Ok(Published::Created),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                Ok(Published::Existing)
            }
            Err(e) => Err(self.failed(format!("publishing the entry for key {}", entry.key.0.short()))(e)),
        }
    }

    /// Whether the remote holds object `d`.
    pub async fn has_object(&self, d: &ObjectDigest) -> Result<bool, RemoteError> {
        match self.conn.store.head(&self.object_key(d)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.failed(format!("looking for object {}", d.0.short()))(e)),
        }
    }

    /// Uploads the local store's object `d` unless the remote has it. The bytes are hashed on
    /// the way: a local object that no longer matches its name is not sent.
    pub async fn upload(&self, store: &Store, d: &ObjectDigest) -> Result<Uploaded, RemoteError> {
        self.upload_file(&store.object_path(d), d).await
    }

    /// Uploads the file at `path` as object `d` unless the remote has it (a task's input file,
    /// a plugin). The bytes are hashed on the way: a file that no longer hashes to `d` is not sent.
    pub async fn upload_file(&self, path: &std::path::Path, d: &ObjectDigest) -> Result<Uploaded, RemoteError> {
        if self.has_object(d).await? {
            return Ok(Uploaded::Present);
        }
        let path = path.to_owned();
        let op = || format!("uploading object {}", d.0.short());
        let mut file = std::fs::File::open(&path).map_err(|source| RemoteError::Read { path: path.clone(), source })?;
        let size = file.metadata().map_err(|source| RemoteError::Read { path: path.clone(), source })?.len();
        let mut hasher = blake3::Hasher::new();
        let key = self.object_key(d);
        if size <= PART as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).map_err(|source| RemoteError::Read { path: path.clone(), source })?;
            hasher.update(&bytes);
            check_local(d, &hasher)?;
            self.conn.store.put(&key, PutPayload::from(bytes)).await.map_err(self.failed(op()))?;
            return Ok(Uploaded::Sent);
        }
        let upload = self.conn.store.put_multipart(&key).await.map_err(self.failed(op()))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; PART];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(source) => {
                    let _ = writer.abort().await;
                    return Err(RemoteError::Read { path, source });
                }
            };
            hasher.update(&buf[..n]);
            writer.wait_for_capacity(2).await.map_err(self.failed(op()))?;
            writer.write(&buf[..n]);
        }
        if let Err(e) = check_local(d, &hasher) {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(self.failed(op()))?;
        Ok(Uploaded::Sent)
    }

    /// Downloads object `d` of `size` bytes into the local store, refusing bytes that do not
    /// hash to `d` ([`RemoteError::CorruptObject`]). A no-op when the store has it.
    pub async fn download(&self, store: &Store, d: &ObjectDigest, size: u64) -> Result<(), RemoteError> {
        if store.has_object(d) {
            return Ok(());
        }
        let op = || format!("downloading object {}", d.0.short());
        let got = self.conn.store.get(&self.object_key(d)).await.map_err(self.failed(op()))?;
        let mut stream = got.into_stream();
        let mut writer = store.object_writer(*d)?;
        while let Some(chunk) = stream.next().await {
            writer.write(&chunk.map_err(self.failed(op()))?)?;
        }
        writer.finish(size).map_err(|e| match e {
            StoreError::Corrupt { actual, .. } => RemoteError::CorruptObject {
                url: self.conn.url.to_string(),
                digest: *d,
                why: format!("its bytes hash to {actual}"),
            },
            StoreError::Size { recorded, actual } => RemoteError::CorruptObject {
                url: self.conn.url.to_string(),
                digest: *d,
                why: format!("{actual} bytes where {recorded} were recorded"),
            },
            e => RemoteError::from(e),
        })
    }

    /// Takes `key`'s remote entry into the local store: downloads and verifies every object it
    /// names, then records the entry locally. `None` when the remote has no entry.
    pub async fn pull(&self, store: &Store, key: &ActionKey) -> Result<Option<ActionEntry>, RemoteError> {
        let Some(entry) = self.entry(key).await? else { return Ok(None) };
        // Inline outputs travel in the entry, which was checked against them.
        for rec in entry.outputs.values().filter(|r| !r.inline) {
            self.download(store, &rec.digest, rec.size).await?;
        }
        store.put_action(&entry)?;
        Ok(Some(entry))
    }

    /// Sends a local entry and its objects: objects first, then the entry (create-only), so a
    /// published entry never names an object the remote lacks. Inline outputs have no object:
    /// their bytes go in the entry.
    pub async fn push(&self, store: &Store, entry: &ActionEntry) -> Result<Published, RemoteError> {
        for rec in entry.outputs.values().filter(|r| !r.inline) {
            self.upload(store, &rec.digest).await?;
        }
        self.publish(entry).await
    }

    fn spec_key(&self, k: &ActionKey) -> Key {
        let hex = k.0.to_hex();
        Key::from(self.conn.url.key(&format!("v1/specs/{}/{hex}.json", &hex[..2])))
    }

    /// Stores the task spec of a remote job for `key` (replacing an older one: a spec holds
    /// nothing the key does not pin down, bar the run it came from).
    pub async fn put_spec(&self, key: &ActionKey, bytes: Vec<u8>) -> Result<(), RemoteError> {
        let op = format!("writing the task spec for key {}", key.0.short());
        self.conn.store.put(&self.spec_key(key), PutPayload::from(bytes)).await.map_err(self.failed(op))?;
        Ok(())
    }

    /// The task spec stored for `key`; `None` when there is none.
    pub async fn spec(&self, key: &ActionKey) -> Result<Option<Vec<u8>>, RemoteError> {
        let op = || format!("reading the task spec for key {}", key.0.short());
        let got = match self.conn.store.get(&self.spec_key(key)).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            r => r.map_err(self.failed(op()))?,
        };
        Ok(Some(got.bytes().await.map_err(self.failed(op()))?.to_vec()))
    }

    /// Whether the remote's entry for `key` exists, without reading it.
    pub async fn has_entry(&self, key: &ActionKey) -> Result<bool, RemoteError> {
        match self.conn.store.head(&self.action_key(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.failed(format!("looking for the entry of key {}", key.0.short()))(e)),
        }
    }
}

/// A local object's bytes must still hash to its name before it is shared.
fn check_local(d: &ObjectDigest, hasher: &blake3::Hasher) -> Result<(), RemoteError> {
    let actual = ObjectDigest(Digest(*hasher.finalize().as_bytes()));
    if actual == *d { Ok(()) } else { Err(StoreError::Corrupt { digest: *d, actual }.into()) }
}
