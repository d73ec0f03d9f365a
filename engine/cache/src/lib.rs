//! Content-addressed cache: typed digests, the cache-key contract, the object store and stat cache.

mod digest;
mod key;
mod maintenance;
pub mod registry;
mod statcache;
mod store;

pub use digest::{ActionKey, Digest, ManifestDigest, ObjectDigest, hash_file, hash_reader};
pub use key::{Change, InputDigest, KEY_SCHEMA, KeyInputs, canonical_json};
pub use maintenance::{EntrySummary, GcReport, VerifyReport};
pub use statcache::{RACY_WINDOW_NS, STAT_CACHE_VERSION, StatCache};
pub use store::{
    ActionEntry, Durability, LAYOUT_VERSION, LastRun, Manifest, OutputRecord, RunLock, Store, StoreError, ensure_dir,
    is_executable, manifest_digest, now_ms,
};
