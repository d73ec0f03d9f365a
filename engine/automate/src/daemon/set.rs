//! The workflows a daemon runs: found in the files or directory it was given, reloaded when a
//! file changes (an invalid edit is reported and the last valid version keeps running).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use dagrun_plan::TaskGraph;
use dagrun_workflow::{Diagnostic, Workflow};

/// One loaded workflow.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its file.
    pub path: PathBuf,
    /// The last valid version.
    pub workflow: Arc<Workflow>,
    /// Its task graph.
    pub graph: TaskGraph,
}

/// What a (re)load found.
#[derive(Debug)]
pub enum Change {
    /// A file loaded (first time or changed).
    Loaded {
        /// The file.
        path: PathBuf,
        /// The workflow's name.
        name: String,
        /// Whether it replaced an earlier version.
        reloaded: bool,
    },
    /// A file is invalid; the last valid version (if any) keeps running.
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem.
        diagnostics: Vec<Diagnostic>,
        /// Whether an earlier valid version keeps running.
        kept: bool,
    },
    /// A workflow file was removed: its workflow no longer runs (its queued events wait).
    Removed {
        /// The file.
        path: PathBuf,
        /// The workflow's name.
        name: String,
    },
    /// A file could not be read, or its name is taken by another file.
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// Every workflow file of the daemon with its last valid version, by file.
#[derive(Debug, Default)]
pub struct WorkflowSet {
    /// The files and directories given: directories are listed again at every refresh, so a
    /// workflow file added (or removed) while the daemon runs is picked up.
    paths: Vec<PathBuf>,
    files: Vec<PathBuf>,
    seen: BTreeMap<PathBuf, Option<SystemTime>>,
    loaded: BTreeMap<PathBuf, Loaded>,
    /// Load without requiring the notification secrets (`daemon status`).
    lenient_env: bool,
}

/// The workflow files named by `paths`: files as given, and every `*.ron` file directly in a
/// directory.
pub fn files_of(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "ron") && f.is_file())
                .collect();
            found.sort();
            out.extend(found);
        } else {
            std::fs::metadata(p)?;
            out.push(p.clone());
        }
    }
    out.dedup();
    Ok(out)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl WorkflowSet {
    /// A set of the workflow files named by `paths` (files, or directories of `*.ron`), none
    /// loaded yet.
    pub fn new(paths: Vec<PathBuf>) -> WorkflowSet {
        WorkflowSet { paths, ..WorkflowSet::default() }
    }

    /// A set for looking at workflows that another process (the daemon) runs: their
    /// notification secrets need not be set in this environment.
    pub fn for_status(paths: Vec<PathBuf>) -> WorkflowSet {
        WorkflowSet { paths, lenient_env: true, ..WorkflowSet::default() }
    }

    /// (Re)loads every file whose modification time changed since the last look; loads new
    /// files in the directories and forgets removed ones.
    pub fn refresh(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        if let Ok(files) = files_of(&self.paths) {
            for gone in self.files.iter().filter(|f| !files.contains(f)) {
                if let Some(l) = self.loaded.remove(gone) {
                    changes.push(Change::Removed { path: gone.clone(), name: l.workflow.name.clone() });
                }
                self.seen.remove(gone);
            }
            if !changes.is_empty() {
                // A file refused because another one had its name may load now.
                let loaded = &self.loaded;
                self.seen.retain(|f, _| loaded.contains_key(f));
            }
            self.files = files;
        }
        for path in self.files.clone() {
            let now = mtime(&path);
            if self.seen.get(&path) == Some(&now) {
                continue;
            }
            self.seen.insert(path.clone(), now);
            changes.push(self.load(&path));
        }
        changes
    }

    fn load(&mut self, path: &Path) -> Change {
        let kept = self.loaded.contains_key(path);
        let opts = dagrun_workflow::LoadOptions { check_env: !self.lenient_env };
        let (wf, graph) = match dagrun_exec::load_workflow_with(path, opts) {
            Ok(x) => x,
            Err(dagrun_exec::PrepareError::Invalid(diagnostics)) => {
                return Change::Invalid { path: path.to_owned(), diagnostics, kept };
            }
            Err(e) => return Change::Unusable { path: path.to_owned(), why: e.to_string() },
        };
        if let Some(other) = self.loaded.values().find(|l| l.workflow.name == wf.name && l.path != path) {
            return Change::Unusable {
                path: path.to_owned(),
                why: format!(
                    "workflow name `{}` is already used by {}: names must be unique in one daemon",
                    wf.name,
                    other.path.display()
                ),
            };
        }
        let name = wf.name.clone();
        self.loaded.insert(path.to_owned(), Loaded { path: path.to_owned(), workflow: Arc::new(wf), graph });
        Change::Loaded { path: path.to_owned(), name, reloaded: kept }
    }

    /// The loaded workflows, in file order.
    pub fn all(&self) -> impl Iterator<Item = &Loaded> {
        self.files.iter().filter_map(|f| self.loaded.get(f))
    }

    /// The workflow called `name`.
    pub fn by_name(&self, name: &str) -> Option<&Loaded> {
        self.all().find(|l| l.workflow.name == name)
    }
}
