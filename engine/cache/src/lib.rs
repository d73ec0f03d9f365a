//! Content-addressed cache: typed digests, the cache-key contract, the object store and stat cache.

mod boot;
mod digest;
mod durable;
mod entry;
mod inline;
mod journal;
mod key;
mod last_run;
mod maintenance;
mod pidlock;
pub mod registry;
mod statcache;
mod store;
mod top_dirs;

pub use dagrun_smallmap::SmallMap;
pub use digest::{ActionKey, Digest, EntryDigest, ManifestDigest, ObjectDigest, hash_file, hash_reader};
pub use durable::GroupCommit;
pub use entry::{
    ActionEntry, ENTRY_VERSION, ENTRY_VERSION_PLAIN, EntryError, INLINE_ENTRY_MAX, INLINE_MAX, Manifest, OutputRecord,
    check_outputs, entry_bytes, entry_version, manifest_digest, parse_entry,
};
pub use inline::{Contents, InlineBytes, StoredOutput, inline_room};
pub use key::{Change, InputDigest, KEY_SCHEMA, KeyInputs, canonical_json, canonical_json_object};
pub use last_run::LastRun;
pub use maintenance::{BadEntry, DEFAULT_KEEP_RUNS, EntrySummary, GcOptions, GcReport, VerifyReport};
pub use pidlock::{lock_pid_file, pid_file_holder};
pub use statcache::{FILE_COST, KnownMemo, RACY_WINDOW_NS, STAT_CACHE_VERSION, StatCache};
pub use store::{
    Durability, LAYOUT, LAYOUT_VERSION, ObjectWriter, RunLock, Shards, Store, StoreError, ensure_dir, is_executable,
    now_ms, whole_lines,
};
pub use top_dirs::TopDirs;
