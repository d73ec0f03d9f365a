//! Blocking file-system work, run off the async threads: listing a watched directory for the
//! files a glob may select, a file's stat, a directory's identity, and hashing a settled file.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::FileStat;
use super::state::{Hashed, Stat};

/// The size and modification time of the regular file at `path` (following a symlink to a
/// file); `None` when it is missing, a directory or anything else.
pub(crate) fn file_stat(path: &Path) -> Option<Stat> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| (meta.len(), mtime_ns(&meta)))
}

/// Modification time in nanoseconds since the Unix epoch (negative before it).
fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    match meta.modified().map(|t| t.duration_since(UNIX_EPOCH)) {
        Ok(Ok(d)) => d.as_nanos() as i128,
        Ok(Err(e)) => -(e.duration().as_nanos() as i128),
        Err(_) => 0,
    }
}

/// Whether `path` is a real directory (not a symlink to one).
pub(crate) fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// What tells a directory from another one later created at the same path.
#[cfg(unix)]
pub(crate) type DirId = (u64, u64);
/// What tells a directory from another one later created at the same path.
#[cfg(not(unix))]
pub(crate) type DirId = std::time::SystemTime;

/// The identity of the directory at `path` (following symlinks), if there is one.
pub(crate) fn dir_id(path: &Path) -> Option<DirId> {
    let meta = std::fs::metadata(path).ok().filter(|m| m.is_dir())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        meta.created().ok()
    }
}

/// The files (and symlinks to files) in `root`, and with `recursive` in its subdirectories.
/// `.dagrun` directories and symlinks to directories are not entered. Unreadable directories
/// are skipped: a later scan tries them again.
pub(crate) fn list_files(root: &Path, recursive: bool) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            let path = entry.path();
            if kind.is_dir() {
                if recursive && entry.file_name() != ".dagrun" {
                    dirs.push(path);
                }
            } else if kind.is_file() || (kind.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file())) {
                files.push(path);
            }
        }
    }
    files
}

/// Hashes the file at `path`, checking that it did not change while it was read.
pub(crate) fn hash(path: &Path) -> Hashed {
    let Some(before) = file_stat(path) else { return Hashed::Gone };
    let Ok((digest, len)) = dagrun_cache::hash_file(path) else { return Hashed::Gone };
    match file_stat(path) {
        None => Hashed::Gone,
        Some(after) if after != before || len != before.0 => Hashed::Changed(after),
        Some((size, mtime_ns)) => Hashed::Done(FileStat { size, mtime_ns, digest: digest.0.to_hex() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_files_but_not_state_or_linked_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for d in ["a/b", ".dagrun/x", "real"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["top.csv", "a/b/deep.csv", ".dagrun/x/state.csv", "real/r.csv"] {
            std::fs::write(root.join(f), f).unwrap();
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("real"), root.join("linkdir")).unwrap();
            std::os::unix::fs::symlink(root.join("top.csv"), root.join("linkfile.csv")).unwrap();
        }
        let rel = |recursive| {
            let mut v: Vec<String> = list_files(root, recursive)
                .iter()
                .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(rel(false), ["linkfile.csv", "top.csv"]);
        assert_eq!(rel(true), ["a/b/deep.csv", "linkfile.csv", "real/r.csv", "top.csv"]);
        assert!(is_real_dir(&root.join("real")) && !is_real_dir(&root.join("linkdir")));
        assert_eq!(file_stat(&root.join("real")), None);
        assert!(dir_id(&root.join("linkdir")).is_some());
    }

    #[test]
    fn hash_reports_content_and_stat() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        let Hashed::Done(fs) = hash(&f) else { panic!("not hashed") };
        assert_eq!(fs.size, 5);
        assert_eq!(fs.digest, blake3::hash(b"hello").to_hex().as_str());
        assert_eq!(Some((fs.size, fs.mtime_ns)), file_stat(&f));
        assert_eq!(hash(&tmp.path().join("missing")), Hashed::Gone);
    }
}
