//! Where a declared output really is. Outputs are deleted before each attempt and written by
//! the task, by a restore or by plugin artifact placement; a symbolic link in the path must not
//! turn that into a delete or a write outside the workflow directory, or into dagrun's state.

use std::path::{Component, Path, PathBuf};

use crate::outcome::{Failure, TaskError};

/// The real workflow and state directories of a run (symbolic links resolved).
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    dir: PathBuf,
    state: PathBuf,
}

impl Roots {
    pub(crate) fn new(workflow_dir: &Path, state_dir: &Path) -> Roots {
        let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
        Roots { dir: real(workflow_dir), state: real(state_dir) }
    }

    /// The real path of output `name` at `path`: the longest existing prefix with its links
    /// resolved, plus the rest. Refused when it leaves the workflow directory or is inside the
    /// state directory.
    pub(crate) fn resolve(&self, name: &str, path: &Path) -> Result<PathBuf, TaskError> {
        let real = real_path(path);
        let shown = path.strip_prefix(&self.dir).unwrap_or(path).display().to_string();
        if !real.starts_with(&self.dir) {
            return Err(TaskError::permanent(
                Failure::OutputPath { output: name.to_owned() },
                format!(
                    "output `{name}` ({shown}) leads outside the workflow directory through a symbolic link (to {}); \
                     dagrun neither deletes nor writes there: remove the link or change the path under `outputs`",
                    real.display()
                ),
            ));
        }
        if real.starts_with(&self.state) {
            return Err(TaskError::permanent(
                Failure::OutputPath { output: name.to_owned() },
                format!(
                    "output `{name}` ({shown}) is inside the state directory {}; change the path under `outputs` \
                     or use another --state-dir",
                    self.state.display()
                ),
            ));
        }
        Ok(real)
    }
}

/// `path` with every symbolic link of its longest existing prefix resolved, plus the part that
/// does not exist yet (a path whose missing part is not plain names is returned as it is).
fn real_path(path: &Path) -> PathBuf {
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
}
