//! The state directory: content-addressed objects, atomic writes, the lock, per-task last keys.
//!
//! Layout (recorded in `<state>/layout`: [`LAYOUT`] for a new directory, see [`Shards`]):
//! ```text
//! objects/a/<digest>         file contents, read-only, named by blake3 of their bytes
//! actions/a/<key>.json       one entry per cache key: the outputs a task produced (`entry.rs`)
//! tasks/<workflow>.<task>.json  the key inputs of a task's latest run (for `plan` explanations):
//!                            a hard link to its cache entry, or a record of its own (`last_run.rs`)
//! tmp/                       temp files; renamed into place when complete
//! journal/<boot>.<pid>.<ns>.jsonl  the entries of a run, synced once at its end (`journal.rs`)
//! lock                       flock'ed by `run`, `backfill`, `cache gc`, `cache verify`
//! ```
//! Every file is written to `tmp/` and renamed (then, with [`Durability::Fsync`], the file is
//! fsynced before and its directory after the rename, or both after it by the background thread
//! of a group commit: see `durable.rs`; a cache entry is then also appended to the group's
//! journal), so a crash at any moment leaves either the old state or the new one. An action
//! entry is written only after all its objects exist. A task record that is a hard link to an
//! entry is linked in place when new, or linked in `tmp/` and renamed.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::digest::{ActionKey, Digest, ObjectDigest, hash_reader};
use crate::durable::{GroupCommit, Syncer};
use crate::entry::{EntryError, OutputRecord};
use crate::pidlock::lock_pid_file;

/// Version of the JSON records in the state directory (task records), and the first part of
/// its [`LAYOUT`].
pub const LAYOUT_VERSION: u32 = 1;

/// What the `layout` file of a state directory made by this dagrun says: records of
/// [`LAYOUT_VERSION`], objects and cache entries in one directory per first hex digit of their
/// digest ([`Shards::One`]). A directory whose file says `1` (made before) keeps two digits.
pub const LAYOUT: &str = "1.1";

/// How objects and cache entries are spread over subdirectories of `objects/` and `actions/`:
/// by the first one or two hex digits of their digest. Fewer directories cost fewer `mkdir`s
/// when a new state directory fills (each ~30 µs on ext4: with two digits, a run of a few
/// hundred tasks made one for most of its entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shards {
    /// `objects/a/`, `actions/a/`: layout `1.1`.
    One,
    /// `objects/ab/`, `actions/ab/`: layout `1`.
    Two,
}

impl Shards {
    /// The layout a `layout` file's text names, if this dagrun reads it.
    fn of_layout(text: &str) -> Option<Shards> {
        [Shards::One, Shards::Two].into_iter().find(|s| s.layout() == text.trim())
    }

    /// What a `layout` file says for it.
    fn layout(self) -> &'static str {
        match self {
            Shards::One => LAYOUT,
            Shards::Two => "1",
        }
    }

    /// The subdirectory of `objects/` or `actions/` that holds the digest `hex`.
    pub(crate) fn dir(self, hex: &str) -> &str {
        match self {
            Shards::One => &hex[..1],
            Shards::Two => &hex[..2],
        }
    }
}

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation failed on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The state directory was written by an incompatible dagrun.
    #[error(
        "state directory {path} has layout version {found}, this dagrun reads 1 and {LAYOUT}; \
         move it away or delete it (it holds only the cache, run history and logs)"
    )]
    Version {
        /// The state directory.
        path: PathBuf,
        /// The version found.
        found: String,
    },
    /// Another dagrun run holds the state directory.
    #[error(
        "another dagrun run is using the state directory {path}{}: wait for it to finish, or give this run its own --state-dir",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Busy {
        /// The state directory.
        path: PathBuf,
        /// The holder's process id, when known.
        pid: Option<u32>,
    },
    /// An object's bytes no longer match its name.
    #[error("object {digest} is corrupt (its content hashes to {actual})")]
    Corrupt {
        /// The expected digest.
        digest: ObjectDigest,
        /// What the bytes hash to.
        actual: ObjectDigest,
    },
    /// An object's size differs from what the entry restoring it records.
    #[error("an output is recorded as {recorded} bytes but its object has {actual}")]
    Size {
        /// The recorded size.
        recorded: u64,
        /// The object's size.
        actual: u64,
    },
    /// A cache entry failed its checks (see [`EntryError`]).
    #[error("cache entry {key} is corrupt: {source}")]
    Entry {
        /// The key it is stored under.
        key: ActionKey,
        /// What is wrong with it.
        source: Box<EntryError>,
    },
}

/// Shorthand for attaching a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io { path: path.to_owned(), source })
    }
}

/// Whether writes are fsynced before being renamed into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync files before rename: survives power loss (the default).
    Fsync,
    /// Rely on the page cache: survives process crashes (`kill -9`), not power loss.
    NoFsync,
}

/// Handle on a state directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    durability: Durability,
    /// Where objects and entries go: [`Shards::One`] when set (from the `layout` file, read again
    /// by [`Store::lock`]).
    one_digit: AtomicBool,
    /// The group commits' background fsyncs (started by the first [`Store::group_commit`]).
    pub(crate) syncer: OnceLock<Syncer>,
    /// Journals found by [`Store::lock`] that the next group commit settles.
    pub(crate) settle: Mutex<Vec<PathBuf>>,
}

/// Outputs up to this size are hashed in memory before anything is written, so that one whose
/// bytes are already an object costs no temp file (a file created and deleted).
const SMALL_OUTPUT: u64 = 1 << 20;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Store {
    /// The directories [`Store::open`] makes in a state directory.
    pub const SUBDIRS: [&str; 5] = ["objects", "actions", "tasks", "tmp", "runs"];

    /// Opens (creating if needed) the state directory at `root`.
    pub fn open(root: &Path, durability: Durability) -> Result<Store, StoreError> {
        for sub in Store::SUBDIRS {
            fs::create_dir_all(root.join(sub)).at(&root.join(sub))?;
        }
        let layout = root.join("layout");
        match fs::read_to_string(&layout) {
            Ok(s) => Ok(Store::new(root, durability, Store::shards_of(root, &s)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A new state directory: its own name, in its parent, must last too (the rest
                // of it is synced as it is written). Best effort: a parent may not be readable.
                if let Some(parent) = root.parent().filter(|_| durability == Durability::Fsync) {
                    let _ = sync_dir(if parent.as_os_str().is_empty() { Path::new(".") } else { parent });
                }
                let store = Store::new(root, durability, Shards::One);
                store.write_layout()?;
                Ok(store)
            }
            Err(e) => Err(e).at(&layout),
        }
    }

    /// The shards of the state directory `root` whose `layout` file reads `text`.
    fn shards_of(root: &Path, text: &str) -> Result<Shards, StoreError> {
        Shards::of_layout(text)
            .ok_or_else(|| StoreError::Version { path: root.to_owned(), found: text.trim().to_owned() })
    }

    /// Takes the lock of the state directory (one `run`, `backfill`, `cache gc` or `cache verify`
    /// at a time; released when the returned guard is dropped or the process dies).
    /// Journals a power loss left are replayed first (see `journal.rs`).
    pub fn lock(&self) -> Result<RunLock, StoreError> {
        let path = self.root.join("lock");
        match lock_pid_file(&path).at(&path)? {
            Ok(file) => {
                self.reload_layout()?;
                self.recover_journals();
                Ok(RunLock { _file: file })
            }
            Err(pid) => Err(StoreError::Busy { path: self.root.clone(), pid }),
        }
    }

    /// Opens an existing state directory without creating anything; `Ok(None)` if there is none.
    pub fn open_existing(root: &Path, durability: Durability) -> Result<Option<Store>, StoreError> {
        let layout = root.join("layout");
        match fs::read_to_string(&layout) {
            Ok(s) => Ok(Some(Store::new(root, durability, Store::shards_of(root, &s)?))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(&layout),
        }
    }

    /// A handle on a state directory that may not exist: reads find nothing, writes fail.
    /// For read-only commands (`plan`) before anything ever ran.
    pub fn absent(root: &Path) -> Store {
        Store::new(root, Durability::NoFsync, Shards::One)
    }

    fn new(root: &Path, durability: Durability, shards: Shards) -> Store {
        let one_digit = AtomicBool::new(shards == Shards::One);
        Store { root: root.to_owned(), durability, one_digit, syncer: OnceLock::new(), settle: Mutex::default() }
    }

    /// Where its objects and entries go.
    pub fn shards(&self) -> Shards {
        if self.one_digit.load(Ordering::Relaxed) { Shards::One } else { Shards::Two }
    }

    /// Writes the `layout` file for the layout in use.
    fn write_layout(&self) -> Result<(), StoreError> {
        self.write_atomic(&self.root.join("layout"), format!("{}\n", self.shards().layout()).as_bytes())
    }

    /// Reads the `layout` file again, under the lock: a long-lived process (the daemon) may
    /// find the directory removed and made again by another dagrun since it opened it. Where
    /// the file is missing, it is written with the layout in use.
    fn reload_layout(&self) -> Result<(), StoreError> {
        let layout = self.root.join("layout");
        let shards = match fs::read_to_string(&layout) {
            Ok(text) => Store::shards_of(&self.root, &text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.write_layout()?;
                self.shards()
            }
            Err(e) => return Err(e).at(&layout),
        };
        self.one_digit.store(shards == Shards::One, Ordering::Relaxed);
        Ok(())
    }

    /// Opens a group commit: until it ends, objects and cache entries are renamed into place
    /// as soon as they are written and fsynced (with [`Durability::Fsync`]) by a background
    /// thread; [`GroupCommit::finish`] waits for those fsyncs. A run holds one while its tasks
    /// run, so that no task waits for the disk. See the `durable` module for why it is safe.
    /// Cache entries are journaled instead (see `journal.rs`), and journals that [`Store::lock`]
    /// found settled are removed in the background.
    pub fn group_commit(&self) -> GroupCommit<'_> {
        let syncer =
            (self.durability == Durability::Fsync).then(|| self.syncer.get_or_init(|| Syncer::start(&self.root)));
        if let Some(s) = syncer {
            s.settle(std::mem::take(&mut *self.settle.lock().unwrap_or_else(|e| e.into_inner())));
        }
        GroupCommit::open(syncer)
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Durability setting.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// A fresh temp path inside `dir`.
    pub fn temp_path_in(dir: &Path, hint: &str) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        dir.join(format!(".{hint}.{}.{n}.dagrun-tmp", std::process::id()))
    }

    pub(crate) fn temp_path(&self) -> PathBuf {
        Self::temp_path_in(&self.root.join("tmp"), "w")
    }

    /// Writes `bytes` to `path` atomically (temp file in `tmp/`, fsync per durability, rename).
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_atomic_as(path, bytes, self.durability, false)
    }

    /// [`Store::write_atomic`] of a cache entry (its bytes): in a group commit, appended to the
    /// group's journal instead of being synced as a file.
    pub(crate) fn write_entry(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_atomic_as(path, bytes, self.durability, true)
    }

    /// Like [`Store::write_atomic`], for records whose loss costs nothing but a re-run or an
    /// explanation (run history, last keys): never fsynced, still atomic.
    pub fn write_atomic_cheap(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_atomic_as(path, bytes, Durability::NoFsync, false)
    }

    /// [`Store::write_atomic_cheap`] of what `write` writes, through a buffer (a large record is
    /// never held whole in memory).
    pub fn write_atomic_cheap_with(
        &self,
        path: &Path,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), StoreError> {
        let tmp = self.temp_path();
        let result = (|| {
            let mut w = std::io::BufWriter::with_capacity(64 * 1024, File::create(&tmp).at(&tmp)?);
            write(&mut w).at(&tmp)?;
            let f = w.into_inner().map_err(|e| e.into_error()).at(&tmp)?;
            self.place(f, &tmp, path, Durability::NoFsync, None)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_atomic_as(
        &self,
        path: &Path,
        bytes: &[u8],
        durability: Durability,
        entry: bool,
    ) -> Result<(), StoreError> {
        let tmp = self.temp_path();
        let result = (|| {
            let mut f = File::create(&tmp).at(&tmp)?;
            f.write_all(bytes).at(&tmp)?;
            self.place(f, &tmp, path, durability, entry.then_some(bytes))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Moves the complete temp file `tmp` (open as `file`) to `dest`. With fsync, the data is
    /// synced before the rename and the directory after it; in a group commit, both are left to
    /// its thread (the rename comes first: a killed dagrun sees the same either way), or, for a
    /// cache entry (`journal`: its bytes), to the group's journal.
    fn place(
        &self,
        file: File,
        tmp: &Path,
        dest: &Path,
        durability: Durability,
        journal: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        if durability == Durability::NoFsync || self.durability == Durability::NoFsync {
            drop(file);
            return rename_into(tmp, dest);
        }
        if let Some(syncer) = self.syncer.get().filter(|s| s.grouped()) {
            rename_into(tmp, dest)?;
            if journal.is_some_and(|bytes| syncer.journal(bytes)) {
                return Ok(());
            }
            return match syncer.push(file, dest) {
                None => Ok(()),
                Some(file) => {
                    file.sync_data().at(dest)?;
                    self.sync_parent(dest)
                }
            };
        }
        file.sync_data().at(tmp)?;
        drop(file);
        rename_into(tmp, dest)?;
        self.sync_parent(dest)
    }

    /// Fsyncs the directory holding `path` after a rename into it, when durability says so,
    /// so that the rename itself survives a power loss.
    fn sync_parent(&self, path: &Path) -> Result<(), StoreError> {
        if self.durability != Durability::Fsync {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        sync_dir(dir).at(dir)
    }

    /// Path of an object.
    pub fn object_path(&self, d: &ObjectDigest) -> PathBuf {
        let hex = d.0.to_hex();
        self.root.join("objects").join(self.shards().dir(&hex)).join(hex.as_str())
    }

    /// Whether an object is present.
    pub fn has_object(&self, d: &ObjectDigest) -> bool {
        self.object_path(d).is_file()
    }

    /// Copies a file into the store; returns its digest and size. A small file is hashed first,
    /// so that bytes already stored cost no write; a larger one is hashed while it is copied.
    pub fn put_file(&self, src: &Path) -> Result<(ObjectDigest, u64), StoreError> {
        self.put_file_after(src, File::open(src).at(src)?, Vec::new())
    }

    /// [`Store::put_file`] of the file `src` open as `input`, of which `head` was read already.
    pub(crate) fn put_file_after(
        &self,
        src: &Path,
        mut input: File,
        mut head: Vec<u8>,
    ) -> Result<(ObjectDigest, u64), StoreError> {
        let have = head.len() as u64;
        (&mut input).take((SMALL_OUTPUT + 1).saturating_sub(have)).read_to_end(&mut head).at(src)?;
        if head.len() as u64 <= SMALL_OUTPUT {
            let (digest, size) = (ObjectDigest(Digest::of(&head)), head.len() as u64);
            if !self.reuse_object(&digest, size) {
                self.new_object(&digest, |out| out.write_all(&head).at(src))?;
            }
            return Ok((digest, size));
        }
        let tmp = self.temp_path();
        let result = (|| {
            let mut out = File::create(&tmp).at(&tmp)?;
            let mut rest = io::Cursor::new(head).chain(input);
            let (digest, size) = hash_reader(&mut TeeReader { inner: &mut rest, out: &mut out }).at(src)?;
            if self.reuse_object(&digest, size) {
                drop(out);
                fs::remove_file(&tmp).at(&tmp)?;
            } else {
                set_readonly(&out).at(&tmp)?;
                self.place(out, &tmp, &self.object_path(&digest), self.durability, None)?;
            }
            Ok((digest, size))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Whether object `digest` is already stored with `size` bytes: then it is marked young, so
    /// that `cache gc` (which spares young objects) cannot take it between now and the entry
    /// that will refer to it. One of another size (cut short by a power loss) is replaced.
    fn reuse_object(&self, digest: &ObjectDigest, size: u64) -> bool {
        let path = self.object_path(digest);
        let Ok(f) = File::open(&path) else { return false };
        if !f.metadata().is_ok_and(|m| m.is_file() && m.len() == size) {
            return false;
        }
        // Best effort: only the owner may set the time of a file it cannot write.
        let _ = f.set_modified(SystemTime::now());
        // In a group, synced with what the group wrote: a run killed earlier in this boot may
        // have left it unsynced, and the entry about to name it is journaled (so no `syncfs` of
        // the group would otherwise cover it).
        if self.durability == Durability::Fsync
            && let Some(syncer) = self.syncer.get().filter(|s| s.grouped())
            && let Some(f) = syncer.push(f, &path)
        {
            let _ = f.sync_data();
        }
        true
    }

    /// Writes a new object (its bytes written by `write`) through a temp file.
    fn new_object(
        &self,
        digest: &ObjectDigest,
        write: impl FnOnce(&mut File) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let tmp = self.temp_path();
        let result = (|| {
            let mut out = File::create(&tmp).at(&tmp)?;
            write(&mut out)?;
            set_readonly(&out).at(&tmp)?;
            self.place(out, &tmp, &self.object_path(digest), self.durability, None)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// A writer that adds an object whose digest is known in advance (one downloaded from a
    /// remote cache): its bytes are hashed on the way and [`ObjectWriter::finish`] refuses them
    /// unless they hash to `expected`, so a tampered or truncated copy never enters the store.
    pub fn object_writer(&self, expected: ObjectDigest) -> Result<ObjectWriter<'_>, StoreError> {
        let tmp = self.temp_path();
        let file = File::create(&tmp).at(&tmp)?;
        Ok(ObjectWriter { store: self, expected, tmp, file: Some(file), hasher: blake3::Hasher::new(), size: 0 })
    }

    /// Copies object `rec.digest` to `dest` (atomically), checking its content and size on the way.
    /// A corrupt object is deleted and reported, so the caller can treat the entry as a miss;
    /// a size that differs from the record is reported as [`StoreError::Size`] (the entry is wrong).
    pub fn restore(&self, rec: &OutputRecord, dest: &Path) -> Result<(), StoreError> {
        if rec.inline {
            // Never an object to read: the caller must pass the entry's bytes.
            let e = io::Error::other("output is held in its cache entry, not in an object");
            return Err(StoreError::Io { path: dest.to_owned(), source: e });
        }
        let src = self.object_path(&rec.digest);
        Self::put_in_place(dest, rec.executable, |tmp| {
            let mut input = File::open(&src).at(&src)?;
            let mut out = File::create(tmp).at(tmp)?;
            let (actual, size) = hash_reader(&mut TeeReader { inner: &mut input, out: &mut out }).at(&src)?;
            if actual != rec.digest {
                let _ = fs::remove_file(&src);
                return Err(StoreError::Corrupt { digest: rec.digest, actual });
            }
            if size != rec.size {
                return Err(StoreError::Size { recorded: rec.size, actual: size });
            }
            Ok(())
        })
    }

    /// Puts a restored output at `dest` atomically: `write` fills a temp file beside it (its
    /// directory made first), which gets the recorded mode and is renamed over `dest`; on any
    /// error the temp file is removed and `dest` is left as it was.
    pub(crate) fn put_in_place(
        dest: &Path,
        executable: bool,
        write: impl FnOnce(&Path) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        ensure_dir(dir).at(dir)?;
        let tmp = Self::temp_path_in(dir, "restore");
        let result = (|| {
            write(&tmp)?;
            set_mode(&tmp, executable).at(&tmp)?;
            fs::rename(&tmp, dest).at(dest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

struct TeeReader<'a, R, W> {
    inner: &'a mut R,
    out: &'a mut W,
}

impl<R: io::Read, W: io::Write> io::Read for TeeReader<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(unix)]
fn set_readonly(f: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(fs::Permissions::from_mode(0o444))
}

#[cfg(unix)]
fn set_mode(p: &Path, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(if executable { 0o755 } else { 0o644 }))
}

#[cfg(not(unix))]
fn set_readonly(f: &File) -> io::Result<()> {
    let mut perm = f.metadata()?.permissions();
    perm.set_readonly(true);
    f.set_permissions(perm)
}

#[cfg(not(unix))]
fn set_mode(p: &Path, _executable: bool) -> io::Result<()> {
    let mut perm = fs::metadata(p)?.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    fs::set_permissions(p, perm)
}

/// Renames `tmp` to `dest`, creating `dest`'s directory when it is missing (tried after the
/// rename fails rather than checked before every one). Another thread may create that
/// directory between the failed rename and a look at it: the rename is simply tried again.
pub(crate) fn rename_into(tmp: &Path, dest: &Path) -> Result<(), StoreError> {
    match fs::rename(tmp, dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = dest.parent().unwrap_or(Path::new("."));
            fs::create_dir_all(dir).at(dir)?;
            fs::rename(tmp, dest).at(dest)
        }
        r => r.at(dest),
    }
}

#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The lines of a file written by [`Store::write_atomic_cheap`] that are whole: up to its last
/// newline. Such a file may be cut short by a power cut, and a cut last line could read as a
/// shorter, wrong value (a path, a name).
pub fn whole_lines(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)]
}

/// Creates a directory (and its parents) unless it exists; the check is much cheaper than
/// `create_dir_all` on an existing directory on some filesystems.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() { Ok(()) } else { fs::create_dir_all(dir) }
}

/// Whether a file has any execute bit.
pub fn is_executable(meta: &fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// Held while a run uses the state directory.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_lock_at_a_time_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
        let held = store.lock().unwrap();
        let busy = store.lock().unwrap_err();
        assert_eq!(
            busy.to_string(),
            format!(
                "another dagrun run is using the state directory {} (pid {}): wait for it to finish, or give this \
                 run its own --state-dir",
                dir.path().display(),
                std::process::id()
            )
        );
        drop(held);
        store.lock().unwrap();
    }

    /// A new state directory spreads objects and entries by one hex digit; one whose `layout`
    /// says `1` (made before) keeps two, for reads and writes alike; another layout is refused.
    #[test]
    fn layouts_new_earlier_and_unknown() {
        let stored = |layout: Option<&str>| {
            let dir = tempfile::tempdir().unwrap();
            if let Some(l) = layout {
                fs::write(dir.path().join("layout"), l).unwrap();
            }
            let store = Store::open(dir.path(), Durability::NoFsync).unwrap();
            let file = dir.path().join("f");
            fs::write(&file, vec![b'x'; 5000]).unwrap();
            let (d, _) = store.put_file(&file).unwrap();
            let entry = crate::entry::sample_entry(&store, &file);
            store.put_action(&entry).unwrap();
            let again = Store::open_existing(dir.path(), Durability::NoFsync).unwrap().unwrap();
            assert!(again.has_object(&d) && again.load_action(&entry.key).unwrap().is_some());
            let rel = |p: PathBuf| p.strip_prefix(dir.path()).unwrap().parent().unwrap().to_owned();
            let layout = fs::read_to_string(dir.path().join("layout")).unwrap();
            (layout, again.shards(), rel(again.object_path(&d)), rel(again.action_path(&entry.key)), d, entry.key)
        };
        let (layout, shards, object, action, d, key) = stored(None);
        assert_eq!((layout.as_str(), shards), ("1.1\n", Shards::One));
        assert_eq!(object, Path::new("objects").join(&d.0.to_hex()[..1]));
        assert_eq!(action, Path::new("actions").join(&key.0.to_hex()[..1]));
        let (layout, shards, object, action, d, key) = stored(Some("1\n"));
        assert_eq!((layout.as_str(), shards), ("1\n", Shards::Two));
        assert_eq!(object, Path::new("objects").join(&d.0.to_hex()[..2]));
        assert_eq!(action, Path::new("actions").join(&key.0.to_hex()[..2]));

        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("layout"), "2\n").unwrap();
        let refused = Store::open_existing(dir.path(), Durability::NoFsync).unwrap_err().to_string();
        assert_eq!(
            refused,
            format!(
                "state directory {} has layout version 2, this dagrun reads 1 and 1.1; move it away or delete it \
                 (it holds only the cache, run history and logs)",
                dir.path().display()
            )
        );
        assert_eq!(Store::open(dir.path(), Durability::NoFsync).unwrap_err().to_string(), refused);
    }

    /// A store opened on a directory that is then removed and made again by another dagrun
    /// (with the other layout) follows the new one from its next lock; a `layout` file removed
    /// is written again.
    #[test]
    fn the_lock_reads_the_layout_again() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("layout"), "1\n").unwrap();
        let old = Store::open(dir.path(), Durability::NoFsync).unwrap();
        assert_eq!(old.shards(), Shards::Two);
        fs::remove_dir_all(dir.path()).unwrap();
        let new = Store::open(dir.path(), Durability::NoFsync).unwrap();
        assert_eq!(new.shards(), Shards::One);
        drop(old.lock().unwrap());
        assert_eq!(old.shards(), Shards::One);
        fs::remove_file(dir.path().join("layout")).unwrap();
        drop(old.lock().unwrap());
        assert_eq!(fs::read_to_string(dir.path().join("layout")).unwrap(), "1.1\n");
        fs::write(dir.path().join("layout"), "9\n").unwrap();
        assert!(matches!(old.lock(), Err(StoreError::Version { .. })));
    }

    /// Threads renaming into one missing directory at once: each one's rename lands, however
    /// the directory's creation interleaves with the others' failed renames.
    #[test]
    fn renames_racing_into_a_new_directory_all_land() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..200 {
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|s| {
                for t in 0..8 {
                    let (dir, barrier) = (dir.path(), &barrier);
                    s.spawn(move || {
                        let tmp = dir.join(format!("tmp-{round}-{t}"));
                        fs::write(&tmp, b"x").unwrap();
                        barrier.wait();
                        rename_into(&tmp, &dir.join(format!("{round}/{t}"))).unwrap();
                    });
                }
            });
            assert_eq!(fs::read_dir(dir.path().join(round.to_string())).unwrap().count(), 8);
        }
        let missing = rename_into(&dir.path().join("no-such-tmp"), &dir.path().join("0/x")).unwrap_err();
        assert!(matches!(missing, StoreError::Io { ref source, .. } if source.kind() == io::ErrorKind::NotFound));
    }
}

/// An object being added under a digest known in advance ([`Store::object_writer`]). Dropped
/// without [`ObjectWriter::finish`], it leaves nothing behind.
#[derive(Debug)]
pub struct ObjectWriter<'a> {
    store: &'a Store,
    expected: ObjectDigest,
    tmp: PathBuf,
    file: Option<File>,
    hasher: blake3::Hasher,
    size: u64,
}

impl ObjectWriter<'_> {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        let file = self.file.as_mut().expect("writer open until finish");
        file.write_all(bytes).at(&self.tmp)
    }

    /// Checks the bytes against the expected digest and size, then moves them into place
    /// (read-only, synced per the store's durability). [`StoreError::Corrupt`] or
    /// [`StoreError::Size`] when they differ: nothing is stored.
    pub fn finish(mut self, size: u64) -> Result<(), StoreError> {
        let actual = ObjectDigest(Digest(*self.hasher.finalize().as_bytes()));
        if actual != self.expected {
            return Err(StoreError::Corrupt { digest: self.expected, actual });
        }
        if self.size != size {
            return Err(StoreError::Size { recorded: size, actual: self.size });
        }
        let file = self.file.take().expect("writer open until finish");
        let dest = self.store.object_path(&self.expected);
        if self.store.reuse_object(&self.expected, size) {
            drop(file);
            return fs::remove_file(&self.tmp).at(&self.tmp);
        }
        set_readonly(&file).at(&self.tmp)?;
        let placed = self.store.place(file, &self.tmp, &dest, self.store.durability, None);
        if placed.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        placed
    }
}

impl Drop for ObjectWriter<'_> {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
