//! The stat cache: skips re-hashing files whose size, mtime, ctime and inode are unchanged.
//!
//! An entry is trusted only if the file was hashed at least [`RACY_WINDOW_NS`] after its last
//! modification; otherwise a write in the same timestamp tick could go unnoticed (git's "racy
//! clean" problem), so such files are simply hashed again next time. Nor is any entry trusted
//! after the machine restarted: a power loss may have left a file's size and times written but
//! not its bytes (the file records the boot it was written in).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::digest::{ObjectDigest, hash_file, hash_reader};
use crate::store::{IoContext, Store, StoreError};

/// Version of the stat cache file (3: the header names the boot; 2 did not; 1 was a JSON
/// object). Another version is ignored.
pub const STAT_CACHE_VERSION: u32 = 3;

/// The stat cache file in the state directory, and the JSON file of version 1 it replaces.
const FILE_NAME: &str = "statcache.idx";
const OLD_FILE_NAME: &str = "statcache.json";

/// Minimum gap between a file's mtime and the moment it was hashed for the entry to be trusted.
pub const RACY_WINDOW_NS: i64 = 100_000_000;

/// What looking at one file costs a [`StatCache::digest_within`] budget, besides its bytes.
pub const FILE_COST: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    digest: ObjectDigest,
    hashed_ns: i64,
}

/// What [`StatCache::known`] said of each path, so that checks made together ask once per path
/// (a file many tasks read is looked at once). For a short span in which nothing is written:
/// the checks a run makes ahead, before any task runs. Errors are not kept.
#[derive(Debug, Default)]
pub struct KnownMemo(Mutex<foldhash::HashMap<PathBuf, Option<(ObjectDigest, u64)>>>);

/// Path → digest memo, shared by all tasks of a run.
#[derive(Debug)]
pub struct StatCache {
    file: PathBuf,
    entries: RwLock<foldhash::HashMap<PathBuf, Entry>>,
    dirty: AtomicBool,
}

/// Times are nanoseconds since 1970 in an `i64` (years 1677 to 2262; an entry is 72 bytes, 96
/// with `i128`). Times outside saturate: a modification time past 2262 is never trusted
/// (it is later than any hashing), and ctime, which the kernel sets on every change, still
/// tells apart two changes before 1677.
#[cfg(any(unix, test))]
fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

struct Stat {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
}

fn stat(meta: &fs::Metadata) -> Stat {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Stat {
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
    #[cfg(not(unix))]
    {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Stat { size: meta.len(), mtime_ns, ctime_ns: mtime_ns, ino: 0 }
    }
}

impl StatCache {
    /// The file the stat cache of `store` is kept in.
    pub fn path(store: &Store) -> PathBuf {
        store.root().join(FILE_NAME)
    }

    /// Loads the stat cache of a store (empty if absent, unreadable or of another version).
    pub fn load(store: &Store) -> StatCache {
        StatCache::from_bytes(store, fs::read(StatCache::path(store)).ok().as_deref())
    }

    /// The stat cache of `store` from the bytes of its file, as [`StatCache::load`] reads them
    /// (`None`: no file).
    pub fn from_bytes(store: &Store, bytes: Option<&[u8]>) -> StatCache {
        let entries = bytes.and_then(|b| decode(b, this_boot())).unwrap_or_default();
        StatCache { file: StatCache::path(store), entries: RwLock::new(entries), dirty: AtomicBool::new(false) }
    }

    /// The digest and size of `path`, hashing only if the file changed (or `verify` is set).
    pub fn digest(&self, path: &Path, verify: bool) -> Result<(ObjectDigest, u64), StoreError> {
        let meta = fs::metadata(path).at(path)?;
        let s = stat(&meta);
        if !verify && let Some(known) = self.lookup(path, &s) {
            return Ok(known);
        }
        let hashed_ns = now_ns();
        let (digest, size) = hash_file(path).at(path)?;
        self.remember(path, &s, digest, hashed_ns);
        Ok((digest, size))
    }

    /// [`StatCache::digest`] while it stays cheap: each file takes [`FILE_COST`] from `budget`,
    /// and one to hash its size too. `None` (nothing taken for what did not happen) for a file
    /// past the budget, one that is not a regular file (a FIFO could block the reader), or one
    /// that grew while it was read (never read past its size).
    pub fn digest_within(&self, path: &Path, budget: &AtomicU64) -> Result<Option<(ObjectDigest, u64)>, StoreError> {
        let take = |n: u64| budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(n)).is_ok();
        let meta = fs::metadata(path).at(path)?;
        let s = stat(&meta);
        if !take(FILE_COST) {
            return Ok(None);
        }
        if let Some(known) = self.lookup(path, &s) {
            return Ok(Some(known));
        }
        if !meta.is_file() || !take(s.size) {
            return Ok(None);
        }
        let hashed_ns = now_ns();
        let file = fs::File::open(path).at(path)?;
        let (digest, size) = hash_reader(&mut file.take(s.size + 1)).at(path)?;
        if size != s.size {
            return Ok(None);
        }
        self.remember(path, &s, digest, hashed_ns);
        Ok(Some((digest, size)))
    }

    /// The digest and size of `path` when the cache vouches for the file as it is now, without
    /// hashing: `None` when it changed since it was hashed (or was hashed too soon after a change).
    pub fn known(&self, path: &Path) -> Result<Option<(ObjectDigest, u64)>, StoreError> {
        let meta = fs::metadata(path).at(path)?;
        Ok(self.lookup(path, &stat(&meta)))
    }

    /// The remembered digest of `path` if its entry matches `s` and is not racy.
    fn lookup(&self, path: &Path, s: &Stat) -> Option<(ObjectDigest, u64)> {
        let map = self.entries.read().expect("stat cache lock");
        let e = map.get(path)?;
        let same = e.size == s.size && e.mtime_ns == s.mtime_ns && e.ctime_ns == s.ctime_ns && e.ino == s.ino;
        (same && e.hashed_ns.saturating_sub(e.mtime_ns) >= RACY_WINDOW_NS).then_some((e.digest, e.size))
    }

    /// [`StatCache::known`] asking the file system once per path of `memo` (see [`KnownMemo`]).
    pub fn known_once(&self, path: &Path, memo: &KnownMemo) -> Result<Option<(ObjectDigest, u64)>, StoreError> {
        if let Some(known) = memo.0.lock().expect("memo lock").get(path) {
            return Ok(*known);
        }
        let known = self.known(path)?;
        memo.0.lock().expect("memo lock").insert(path.to_owned(), known);
        Ok(known)
    }

    /// Records a digest computed elsewhere (e.g. while storing an output).
    pub fn record(&self, path: &Path, digest: ObjectDigest) {
        if let Ok(meta) = fs::metadata(path) {
            self.remember(path, &stat(&meta), digest, now_ns());
        }
    }

    fn remember(&self, path: &Path, s: &Stat, digest: ObjectDigest, hashed_ns: i64) {
        let e = Entry { size: s.size, mtime_ns: s.mtime_ns, ctime_ns: s.ctime_ns, ino: s.ino, digest, hashed_ns };
        let mut map = self.entries.write().expect("stat cache lock");
        if map.insert(path.to_owned(), e) != Some(e) {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Writes the cache back if anything changed.
    pub fn save(&self, store: &Store) -> Result<(), StoreError> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let bytes = encode(&self.entries.read().expect("stat cache lock"), this_boot());
        store.write_atomic_cheap(&self.file, &bytes)?;
        // A version 1 file left by an older dagrun is never read again.
        let _ = fs::remove_file(store.root().join(OLD_FILE_NAME));
        Ok(())
    }
}

/// This boot's id, or `-` where there is none (then the cache is trusted across restarts).
fn this_boot() -> &'static str {
    crate::boot::boot_id().unwrap_or("-")
}

/// The file's first line, for a cache written in the boot `boot`.
fn header(boot: &str) -> String {
    format!("dagrun stat cache {STAT_CACHE_VERSION} {boot}\n")
}

/// One line per file: size, mtime, ctime, inode, when it was hashed (nanoseconds), its digest
/// and its path (its bytes, last: it may hold tabs), separated by tabs. A path with a newline
/// is left out (its file is simply hashed again next time).
fn encode(entries: &foldhash::HashMap<PathBuf, Entry>, boot: &str) -> Vec<u8> {
    use std::io::Write;
    let mut out = header(boot).into_bytes();
    out.reserve(entries.len() * 180);
    for (path, e) in entries {
        let Some(path) = path_bytes(path).filter(|p| !p.contains(&b'\n')) else { continue };
        let (size, mtime, ctime, ino, hashed) = (e.size, e.mtime_ns, e.ctime_ns, e.ino, e.hashed_ns);
        let _ = write!(out, "{size}\t{mtime}\t{ctime}\t{ino}\t{hashed}\t{}\t", e.digest);
        out.extend_from_slice(path);
        out.push(b'\n');
    }
    out
}

/// The entries of a file [`encode`] wrote in the boot `boot`; `None` for another boot, another
/// version, or no header. A line
/// that does not read is left out, and so is a last line without its newline (a file cut short
/// could otherwise end in a shorter path).
fn decode(bytes: &[u8], boot: &str) -> Option<foldhash::HashMap<PathBuf, Entry>> {
    let rest = bytes.strip_prefix(header(boot).as_bytes())?;
    let lines = crate::store::whole_lines(rest).split(|&b| b == b'\n').filter(|l| !l.is_empty());
    Some(lines.filter_map(decode_line).collect())
}

fn decode_line(line: &[u8]) -> Option<(PathBuf, Entry)> {
    let mut fields = line.splitn(7, |&b| b == b'\t');
    let mut next = || std::str::from_utf8(fields.next()?).ok();
    let size = next()?.parse().ok()?;
    let mtime_ns = next()?.parse().ok()?;
    let ctime_ns = next()?.parse().ok()?;
    let ino = next()?.parse().ok()?;
    let hashed_ns = next()?.parse().ok()?;
    let digest = ObjectDigest(crate::Digest::from_hex(next()?)?);
    let path = path_from_bytes(fields.next().filter(|p| !p.is_empty())?)?;
    Some((path, Entry { size, mtime_ns, ctime_ns, ino, digest, hashed_ns }))
}

#[cfg(unix)]
fn path_bytes(p: &Path) -> Option<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    Some(p.as_os_str().as_bytes())
}

#[cfg(unix)]
fn path_from_bytes(b: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(b)))
}

/// Elsewhere a path that is not UTF-8 is left out (hashed again next time).
#[cfg(not(unix))]
fn path_bytes(p: &Path) -> Option<&[u8]> {
    p.to_str().map(str::as_bytes)
}

#[cfg(not(unix))]
fn path_from_bytes(b: &[u8]) -> Option<PathBuf> {
    std::str::from_utf8(b).ok().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn entry(n: u8) -> Entry {
        let digest = ObjectDigest(crate::Digest::from_hex(&format!("{n:02x}").repeat(32)).unwrap());
        Entry { size: 1, mtime_ns: -5, ctime_ns: i64::MAX, ino: 7, digest, hashed_ns: i64::MIN }
    }

    #[test]
    fn the_file_reads_back_what_was_written_and_nothing_else() {
        let entries: foldhash::HashMap<PathBuf, Entry> = [
            (PathBuf::from("/w/out/a.txt"), entry(1)),
            (PathBuf::from("/w/with\ttab and space"), entry(2)),
            (PathBuf::from("/w/with\nnewline"), entry(3)),
        ]
        .into_iter()
        .collect();
        let bytes = encode(&entries, "b1");
        let back = decode(&bytes, "b1").unwrap();
        assert_eq!(back.len(), 2, "a path with a newline is left out");
        assert_eq!(back[Path::new("/w/out/a.txt")], entry(1));
        assert_eq!(back[Path::new("/w/with\ttab and space")], entry(2));
        let mut damaged = bytes.clone();
        damaged.extend_from_slice(b"1\t2\tnot a number\t4\t5\tab\t/w/x\n1\t2\t3\n");
        assert_eq!(decode(&damaged, "b1").unwrap().len(), 2, "lines that do not read are left out");
        let cut = &bytes[..bytes.len() - 3];
        assert_eq!(decode(cut, "b1").unwrap().len(), 1, "a last line cut short is left out");
        assert_eq!(decode(&bytes, "b2"), None, "written before the machine restarted");
        assert_eq!(decode(br#"{"version":1,"entries":{}}"#, "b1"), None, "version 1 (JSON)");
        assert_eq!(decode(b"dagrun stat cache 2\n", "b1"), None, "version 2");
        assert_eq!(decode(b"dagrun stat cache 4 b1\n", "b1"), None, "another version");
    }

    #[test]
    fn a_cache_saved_before_the_machine_restarted_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state"), Durability::NoFsync).unwrap();
        let f = dir.path().join("a.txt");
        fs::write(&f, "one").unwrap();
        let cache = StatCache::load(&store);
        cache.digest(&f, false).unwrap();
        cache.save(&store).unwrap();
        let bytes = fs::read(StatCache::path(&store)).unwrap();
        assert_eq!(StatCache::load(&store).entries.read().unwrap().len(), 1);
        let header = header(this_boot());
        assert!(bytes.starts_with(header.as_bytes()));
        let mut restarted = header.replace(this_boot(), "another-boot").into_bytes();
        restarted.extend_from_slice(&bytes[header.len()..]);
        assert!(StatCache::from_bytes(&store, Some(&restarted)).entries.read().unwrap().is_empty());
    }

    #[test]
    fn saving_replaces_a_version_1_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state"), Durability::NoFsync).unwrap();
        let old = store.root().join(OLD_FILE_NAME);
        fs::write(&old, "{}").unwrap();
        let f = dir.path().join("a.txt");
        fs::write(&f, "one").unwrap();
        let cache = StatCache::load(&store);
        let (d, _) = cache.digest(&f, false).unwrap();
        cache.save(&store).unwrap();
        assert!(!old.exists());
        let again = StatCache::load(&store);
        assert_eq!(again.entries.read().unwrap()[&f].digest, d);
    }

    #[test]
    fn times_saturate_and_a_modification_time_past_2262_is_never_trusted() {
        assert_eq!(ns(1, 5), 1_000_000_005);
        assert_eq!((ns(i64::MAX / 2, 5), ns(i64::MIN / 2, -5)), (i64::MAX, i64::MIN));
        let cache =
            StatCache { file: PathBuf::from("unused"), entries: Default::default(), dirty: AtomicBool::new(false) };
        let (path, digest) = (Path::new("/f"), entry(1).digest);
        let future = Stat { size: 1, mtime_ns: i64::MAX, ctime_ns: 1, ino: 1 };
        cache.remember(path, &future, digest, now_ns());
        assert_eq!(cache.lookup(path, &future), None);
        let past = Stat { mtime_ns: i64::MIN, ..future };
        cache.remember(path, &past, digest, now_ns());
        assert_eq!(cache.lookup(path, &past), Some((digest, 1)), "hashed long after it changed");
    }

    #[test]
    fn rehashes_changed_and_racy_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state"), Durability::NoFsync).unwrap();
        let f = dir.path().join("a.txt");
        fs::write(&f, "one").unwrap();
        let cache = StatCache::load(&store);
        let (d1, _) = cache.digest(&f, false).unwrap();
        fs::write(&f, "two").unwrap(); // same size, same tick: must still be noticed
        let (d2, _) = cache.digest(&f, false).unwrap();
        assert_ne!(d1, d2);
        cache.save(&store).unwrap();
        let reloaded = StatCache::load(&store);
        assert_eq!(reloaded.digest(&f, false).unwrap().0, d2);
    }

    #[test]
    fn digest_within_hashes_only_what_fits_in_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state"), Durability::NoFsync).unwrap();
        let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        fs::write(&a, "12345").unwrap();
        fs::write(&b, "1234567").unwrap();
        let cache = StatCache::load(&store);
        let budget = AtomicU64::new(3 * FILE_COST + 5 + 6);
        let got = cache.digest_within(&a, &budget).unwrap();
        assert_eq!(got, Some((hash_file(&a).unwrap().0, 5)));
        assert_eq!(budget.load(Ordering::Relaxed), 2 * FILE_COST + 6, "a file's cost and its size taken");
        assert_eq!(cache.digest_within(dir.path(), &budget).unwrap(), None, "not a regular file");
        assert_eq!(budget.load(Ordering::Relaxed), FILE_COST + 6, "only the look taken");
        assert_eq!(cache.digest_within(&b, &budget).unwrap(), None, "7 bytes past the 6 left");
        assert_eq!(budget.load(Ordering::Relaxed), 6, "only the look taken for a file past it");
        assert_eq!(cache.digest_within(&a, &budget).unwrap(), None, "no look left, even for a known file");
        fs::write(&a, "54321").unwrap(); // changed: hashed again, never the old digest
        let more = AtomicU64::new(FILE_COST + 5);
        assert_eq!(cache.digest_within(&a, &more).unwrap(), Some((hash_file(&a).unwrap().0, 5)));
        assert_eq!(more.load(Ordering::Relaxed), 0);
        assert_eq!(cache.digest_within(&a, &more).unwrap(), None, "not even a look left");
        assert!(cache.digest_within(&dir.path().join("gone"), &AtomicU64::new(u64::MAX)).is_err());
    }

    #[test]
    fn known_vouches_only_for_unchanged_files_hashed_after_the_racy_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state"), Durability::NoFsync).unwrap();
        let f = dir.path().join("a.txt");
        fs::write(&f, "one").unwrap();
        let cache = StatCache::load(&store);
        assert_eq!(cache.known(&f).unwrap(), None, "never hashed");
        cache.digest(&f, false).unwrap();
        assert_eq!(cache.known(&f).unwrap(), None, "hashed in the same tick as its last write");
        std::thread::sleep(std::time::Duration::from_nanos(RACY_WINDOW_NS as u64 + 10_000_000));
        let (d, size) = cache.digest(&f, false).unwrap();
        assert_eq!(cache.known(&f).unwrap(), Some((d, size)));
        fs::write(&f, "two").unwrap();
        assert_eq!(cache.known(&f).unwrap(), None, "changed since");
        fs::remove_file(&f).unwrap();
        assert!(cache.known(&f).is_err(), "gone");
    }
}
