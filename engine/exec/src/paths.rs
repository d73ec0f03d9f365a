//! Where a declared output really is. Outputs are deleted before each attempt and written by
//! the task, by a restore or by plugin artifact placement; a symbolic link in the path must not
//! turn that into a delete or a write outside the workflow directory, or into dagrun's state.

use std::path::{Component, Path, PathBuf};

use crate::outcome::{Failure, TaskError};

/// The real workflow and state directories of a run (symbolic links resolved).
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    /// The workflow directory as the run names it (outputs are joined to it).
    given: PathBuf,
    dir: PathBuf,
    state: PathBuf,
    /// The state directory's device and inode, to know it under another spelling (a
    /// case-insensitive filesystem) while walking below `dir`.
    state_id: Option<(u64, u64)>,
}

impl Roots {
    pub(crate) fn new(workflow_dir: &Path, state_dir: &Path) -> Roots {
        let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
        let state = real(state_dir);
        let state_id = std::fs::metadata(&state).ok().and_then(|m| file_id(&m));
        Roots { given: workflow_dir.to_owned(), dir: real(workflow_dir), state, state_id }
    }

    /// The real path of output `name` at `path`: the longest existing prefix with its links
    /// resolved, plus the rest. Refused when it leaves the workflow directory or is inside the
    /// state directory.
    pub(crate) fn resolve(&self, name: &str, path: &Path) -> Result<PathBuf, TaskError> {
        let rel = path.strip_prefix(&self.given).ok();
        let shown = || rel.unwrap_or(path).display().to_string();
        // Outputs as written cannot hold `..` (validation), nor can partition keys; a path
        // handed over otherwise (a plugin's artifact placement) might.
        if rel.is_some_and(|rel| rel.components().any(|c| c == Component::ParentDir)) {
            return Err(TaskError::permanent(
                Failure::OutputPath { output: name.to_owned() },
                format!(
                    "output `{name}` ({}) leaves the workflow directory with `..`; dagrun neither deletes \
                     nor writes there: name a path below the workflow directory",
                    shown()
                ),
            ));
        }
        let real = match rel {
            Some(rel) => self.walk_below(rel, path),
            None => resolve_links(path),
        };
        if !real.starts_with(&self.dir) {
            return Err(TaskError::permanent(
                Failure::OutputPath { output: name.to_owned() },
                format!(
                    "output `{name}` ({}) leads outside the workflow directory through a symbolic link (to {}); \
                     dagrun neither deletes nor writes there: remove the link or change the path under `outputs`",
                    shown(),
                    real.display()
                ),
            ));
        }
        if real.starts_with(&self.state) {
            return Err(TaskError::permanent(
                Failure::OutputPath { output: name.to_owned() },
                format!(
                    "output `{name}` ({}) is inside the state directory {}; change the path under `outputs` \
                     or use another --state-dir",
                    shown(),
                    self.state.display()
                ),
            ));
        }
        Ok(real)
    }

    /// [`resolve_links`] of `path`, which is `rel` below the workflow directory (every output),
    /// walked below the directory's real path with one `lstat` per component: three for
    /// `out/d/x.txt`, where resolving it whole takes a `readlink` per component from `/`. A
    /// link below the directory takes the whole resolution; the state directory under another
    /// spelling (a case-insensitive filesystem) is named as the state directory.
    fn walk_below(&self, rel: &Path, path: &Path) -> PathBuf {
        let mut walked = self.dir.clone();
        let mut parts = rel.components();
        while let Some(part) = parts.next() {
            let Component::Normal(name) = part else { return resolve_links(path) };
            walked.push(name);
            match walked.symlink_metadata() {
                // The state directory, however it is spelt here: named as the state directory,
                // which `resolve` refuses.
                Ok(meta) if self.state_id.is_some() && file_id(&meta) == self.state_id => {
                    let mut state = self.state.clone();
                    state.extend(parts);
                    return state;
                }
                Ok(meta) if !meta.file_type().is_symlink() => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Nothing below a missing name exists, so nothing below it is a link.
                    if parts.clone().any(|c| !matches!(c, Component::Normal(_))) {
                        return resolve_links(path);
                    }
                    walked.extend(parts);
                    return walked;
                }
                _ => return resolve_links(path),
            }
        }
        walked
    }
}

/// A file's device and inode (`None` where there are none to read).
fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// `path` with every symbolic link of its longest existing prefix resolved, plus the part that
/// does not exist yet (a path whose missing part is not plain names is returned as it is).
fn resolve_links(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    // An output that does not exist yet (every first run): resolving it would walk the whole
    // path before failing, so start from its directory (a dangling link still takes the walk).
    if let (Err(e), Some(Component::Normal(name)), Some(parent)) =
        (path.symlink_metadata(), path.components().next_back(), path.parent())
        && e.kind() == std::io::ErrorKind::NotFound
    {
        rest.push(name);
        existing = parent;
    }
    loop {
        if let Ok(mut real) = existing.canonicalize() {
            real.extend(rest.iter().rev());
            return real;
        }
        match (existing.components().next_back(), existing.parent()) {
            (Some(Component::Normal(name)), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return path.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn a_link_out_of_the_workflow_directory_is_refused() {
        let wf = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), wf.path().join("link")).unwrap();
        std::fs::create_dir(wf.path().join("state")).unwrap();
        let roots = Roots::new(wf.path(), &wf.path().join("state"));
        let e = roots.resolve("o", &wf.path().join("link/x.txt")).unwrap_err();
        assert_eq!(e.failure, Failure::OutputPath { output: "o".into() });
        assert!(e.message.contains("leads outside the workflow directory"), "{}", e.message);
        let e = roots.resolve("o", &wf.path().join("state/sub/x.txt")).unwrap_err();
        assert!(e.message.contains("inside the state directory"), "{}", e.message);
        let ok = roots.resolve("o", &wf.path().join("out/new/x.txt")).unwrap();
        assert_eq!(ok, wf.path().canonicalize().unwrap().join("out/new/x.txt"));
    }

    /// Links anywhere below the workflow directory are followed (to inside or outside it), and
    /// a workflow directory named through a link resolves to its real place.
    #[test]
    #[cfg(unix)]
    fn links_below_the_directory_are_followed_and_named_by_their_target() {
        use std::os::unix::fs::symlink;
        let top = tempfile::tempdir().unwrap();
        let (wf, outside) = (top.path().join("wf"), top.path().join("outside"));
        std::fs::create_dir_all(wf.join("out/d")).unwrap();
        std::fs::create_dir_all(wf.join("state")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("f.txt"), "theirs").unwrap();
        symlink(wf.join("out/d"), wf.join("out/alias")).unwrap();
        symlink(outside.join("f.txt"), wf.join("out/d/file-link.txt")).unwrap();
        symlink(&wf, top.path().join("wf-link")).unwrap();
        let real = wf.canonicalize().unwrap();
        for given in [wf.clone(), top.path().join("wf-link")] {
            let roots = Roots::new(&given, &given.join("state"));
            let at = |p: &str| roots.resolve("o", &given.join(p));
            assert_eq!(at("out/alias/x.txt").unwrap(), real.join("out/d/x.txt"));
            assert_eq!(at("out/d/x.txt").unwrap(), real.join("out/d/x.txt"));
            assert_eq!(at("out/missing/deeper/x.txt").unwrap(), real.join("out/missing/deeper/x.txt"));
            let e = at("out/d/file-link.txt").unwrap_err();
            assert!(e.message.contains("leads outside the workflow directory"), "{}", e.message);
            for escape in ["../outside/x.txt", "out/missing/../../../outside/x.txt"] {
                let e = at(escape).unwrap_err();
                assert_eq!(
                    e.message,
                    format!(
                        "output `o` ({escape}) leaves the workflow directory with `..`; dagrun neither deletes \
                         nor writes there: name a path below the workflow directory"
                    )
                );
            }
            assert!(at("state/x.txt").unwrap_err().message.contains("inside the state directory"));
        }
    }

    /// The state directory is known by its inode, not its spelling (on a case-insensitive
    /// filesystem `.DAGRUN` is `.dagrun`): staged here by naming it otherwise in `Roots`.
    #[test]
    #[cfg(unix)]
    fn the_state_directory_is_known_under_another_name() {
        let wf = tempfile::tempdir().unwrap();
        std::fs::create_dir(wf.path().join("state")).unwrap();
        let mut roots = Roots::new(wf.path(), &wf.path().join("state"));
        roots.state = wf.path().canonicalize().unwrap().join("STATE");
        let e = roots.resolve("o", &wf.path().join("state/sub/x.txt")).unwrap_err();
        assert!(e.message.contains("inside the state directory"), "{}", e.message);
        assert!(roots.resolve("o", &wf.path().join("out/x.txt")).is_ok());
    }
}
