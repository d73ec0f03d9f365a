//! `dagrun export github-actions|gitlab-ci WORKFLOW`: the CI file that runs a workflow on its
//! schedule, or with `--shards N` a sharded backfill (see docs/ci-export.md). The workflow path inside it is relative to the git
//! repository root; the file goes to stdout, or atomically to `--out`.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use clap::{Args, Subcommand};
use dagrun_automate::export::{self, DEFAULT_INSTALL, ExportOptions};

use crate::commands::{error, load};
use crate::exit::Exit;
use crate::printer::errln;

/// `dagrun export` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// A GitHub Actions workflow: the schedule, manual runs, the state directory in the Actions cache.
    GithubActions(ExportArgs),
    /// A .gitlab-ci.yml: scheduled and manual pipelines, the state directory in the GitLab cache.
    GitlabCi(ExportArgs),
}

/// The arguments of both export targets.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The workflow file.
    pub workflow: PathBuf,
    /// Write the CI file here (parent directories are created) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The shell command that installs dagrun on the CI machine.
    #[arg(long, value_name = "CMD", default_value = DEFAULT_INSTALL)]
    pub install: String,
    /// Instead of the scheduled run: a backfill started by hand with a range, run as N parallel
    /// `dagrun backfill --shard I/N` jobs and then once unsharded (they share a remote cache).
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
}

/// Runs `dagrun export ...`.
pub fn dispatch(target: ExportTarget) -> Result<Exit, Exit> {
    let (args, generate): (_, fn(&_, &str, &ExportOptions) -> _) = match &target {
        ExportTarget::GithubActions(a) => (a, export::github_actions),
        ExportTarget::GitlabCi(a) => (a, export::gitlab_ci),
    };
    let (wf, _) = load(&args.workflow)?;
    let (path, in_repo) = repo_relative(&args.workflow)?;
    let opts = ExportOptions { install: args.install.clone(), shards: args.shards };
    let e = generate(&wf, &path, &opts).map_err(|e| error(e, Exit::Usage))?;
    if !in_repo {
        errln!(
            "warning: {path} is in no git repository: the file names it as given, but CI runs from the repository root"
        );
    }
    for w in &e.warnings {
        errln!("warning: {w}");
    }
    match &args.out {
        None => {
            crate::printer::out(format_args!("{}", e.text));
            for n in &e.notes {
                errln!("note: {n}");
            }
        }
        Some(out) => {
            write_atomic(out, &e.text)
                .map_err(|why| error(format!("cannot write {}: {why}", out.display()), Exit::Internal))?;
            errln!("wrote {}", out.display());
            let notes = e.notes.iter().filter(|n| !n.starts_with("commit it as"));
            for n in notes {
                errln!("note: {n}");
            }
            if !out.ends_with(&e.suggested_path) {
                errln!("note: it usually goes to {} at the repository root", e.suggested_path);
            }
        }
    }
    Ok(Exit::Success)
}

/// The workflow file relative to the root of its git repository (the nearest directory above it
/// holding `.git`), with `/` separators, and `true`; the path as given and `false` when there is
/// no repository.
fn repo_relative(workflow: &Path) -> Result<(String, bool), Exit> {
    let as_given = || Ok((slashes(workflow)?, false));
    let Ok(abs) = std::fs::canonicalize(workflow) else { return as_given() };
    let root = abs.ancestors().skip(1).find(|d| d.join(".git").exists());
    match root.and_then(|r| abs.strip_prefix(r).ok()) {
        Some(rel) => Ok((slashes(rel)?, true)),
        None => as_given(),
    }
}

/// `path` with `/` separators, without `.` components; an error for a path that is not UTF-8.
fn slashes(path: &Path) -> Result<String, Exit> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::RootDir => parts.push(""),
            Component::ParentDir => parts.push(".."),
            c => parts.push(c.as_os_str().to_str().ok_or_else(|| {
                error(format!("{} is not valid UTF-8: CI files need a UTF-8 path", path.display()), Exit::Usage)
            })?),
        }
    }
    Ok(parts.join("/"))
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename, so the
/// file is never seen half-written; creates the parent directories.
pub(crate) fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path.file_name().ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_use_slashes_without_dots() {
        assert_eq!(slashes(Path::new("./a/./b/wf.ron")).unwrap(), "a/b/wf.ron");
        assert_eq!(slashes(Path::new("../x/wf.ron")).unwrap(), "../x/wf.ron");
        assert_eq!(slashes(Path::new("/abs/wf.ron")).unwrap(), "/abs/wf.ron");
    }

    #[test]
    fn the_path_is_relative_to_the_repository_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("repo/.git")).unwrap();
        std::fs::create_dir_all(dir.path().join("repo/flows")).unwrap();
        let wf = dir.path().join("repo/flows/wf.ron");
        std::fs::write(&wf, "").unwrap();
        assert_eq!(repo_relative(&wf).unwrap(), ("flows/wf.ron".to_owned(), true));
        let outside = dir.path().join("wf.ron");
        std::fs::write(&outside, "").unwrap();
        assert_eq!(repo_relative(&outside).unwrap(), (slashes(&outside).unwrap(), false));
    }

    #[test]
    fn atomic_writes_create_parents_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b/ci.yml");
        write_atomic(&out, "one").unwrap();
        write_atomic(&out, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "two");
        assert_eq!(std::fs::read_dir(dir.path().join("a/b")).unwrap().count(), 1, "no temporary file is left");
    }
}
