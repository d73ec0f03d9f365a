//! [`Ctx`]: what a running task sees of its inputs, outputs, mounts and the host.

use std::path::{Component, Path, PathBuf};

use crate::Error;
use crate::host::{self, Level};

/// The task's view of its run: where its inputs are, where to write outputs, and how to log.
///
/// Paths are absolute paths inside the plugin's sandbox; open them with `std::fs` as usual.
/// Inputs and mounts are read-only; only the output directory is writable.
#[derive(Debug)]
pub struct Ctx {
    task: String,
    run_id: String,
    partition: Option<String>,
    inputs: Vec<(String, PathBuf)>,
    mounts: Vec<(String, PathBuf)>,
    output_dir: PathBuf,
    outputs: Vec<(String, PathBuf)>,
}

impl Ctx {
    pub(crate) fn new(
        task: String,
        run_id: String,
        partition: Option<String>,
        inputs: Vec<(String, PathBuf)>,
        mounts: Vec<(String, PathBuf)>,
        output_dir: PathBuf,
    ) -> Self {
        Self { task, run_id, partition, inputs, mounts, output_dir, outputs: Vec::new() }
    }

    /// The task's name in the workflow.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The id of the current run.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The partition key (e.g. `2025-01-31`) for a partitioned task, `None` otherwise.
    pub fn partition(&self) -> Option<&str> {
        self.partition.as_deref()
    }

    /// The path of the input called `name` (as declared in the workflow's `inputs`): a file,
    /// or a directory for a `Glob` input (see [`input_files`](Ctx::input_files)).
    ///
    /// An unknown name is an [`Error::bad_input`] that lists the task's inputs.
    pub fn input(&self, name: &str) -> Result<PathBuf, Error> {
        lookup(&self.inputs, name, "input")
    }

    /// The files of the input called `name`: for a file input, that file; for a directory
    /// input, every file below it (recursively), sorted by path.
    pub fn input_files(&self, name: &str) -> Result<Vec<PathBuf>, Error> {
        let path = self.input(name)?;
        let unreadable =
            |p: &Path, e: std::io::Error| Error::bad_input(format!("input `{name}`: cannot read {}: {e}", p.display()));
        let meta = std::fs::metadata(&path).map_err(|e| unreadable(&path, e))?;
        if !meta.is_dir() {
            return Ok(vec![path]);
        }
        let mut files = Vec::new();
        let mut dirs = vec![path];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| unreadable(&dir, e))? {
                let entry = entry.map_err(|e| unreadable(&dir, e))?;
                let p = entry.path();
                // `metadata` follows symlinks, so a link to a file counts as a file.
                match std::fs::metadata(&p) {
                    Ok(m) if m.is_dir() => dirs.push(p),
                    Ok(m) if m.is_file() => files.push(p),
                    Ok(_) => {}
                    Err(e) => return Err(unreadable(&p, e)),
                }
            }
        }
        files.sort();
        Ok(files)
    }

    /// The path of the extra directory called `name` that the workflow grants the task.
    ///
    /// An unknown name is an [`Error::bad_input`] that lists the task's mounts.
    pub fn mount(&self, name: &str) -> Result<PathBuf, Error> {
        lookup(&self.mounts, name, "mount")
    }

    /// The path to write the output called `name` to: `<output dir>/<name>`.
    ///
    /// This registers `name` as an artifact of the run; the file must exist when
    /// [`Task::run`](crate::Task::run) returns `Ok`. Asking again for the same name replaces
    /// the earlier path.
    pub fn output(&mut self, name: &str) -> PathBuf {
        let path = self.output_dir.join(name);
        self.register(name, path.clone());
        path
    }

    /// Like [`output`](Ctx::output), but the file is called `file_name` (e.g. `model.onnx`)
    /// instead of `name`. `file_name` may contain subdirectories (`models/best.onnx`); they
    /// are created.
    ///
    /// # Panics
    /// If `file_name` is absolute or contains `..` (it must stay inside the output directory).
    pub fn output_file(&mut self, name: &str, file_name: &str) -> PathBuf {
        let relative = Path::new(file_name);
        let inside = relative.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        assert!(
            inside && !file_name.is_empty(),
            "output_file({name:?}, {file_name:?}): the file name must be a relative path inside the output directory"
        );
        let path = self.output_dir.join(relative);
        if let Some(parent) = path.parent() {
            if parent != self.output_dir {
                // A failure here shows up as an error when the file is written.
                let _ = std::fs::create_dir_all(parent);
            }
        }
        self.register(name, path.clone());
        path
    }

    /// Writes a debug line to the task's log.
    pub fn log_debug(&self, message: impl AsRef<str>) {
        host::log(Level::Debug, message.as_ref());
    }

    /// Writes a line to the task's log.
    pub fn log_info(&self, message: impl AsRef<str>) {
        host::log(Level::Info, message.as_ref());
    }

    /// Writes a warning to the task's log.
    pub fn log_warn(&self, message: impl AsRef<str>) {
        host::log(Level::Warn, message.as_ref());
    }

    /// Writes an error line to the task's log (the run goes on; return an [`Error`] to fail it).
    pub fn log_error(&self, message: impl AsRef<str>) {
        host::log(Level::Error, message.as_ref());
    }

    /// Reports progress: `done` of `total` units (`total` = 0 when unknown).
    pub fn progress(&self, done: u64, total: u64, message: impl AsRef<str>) {
        host::progress(done, total, message.as_ref());
    }

    fn register(&mut self, name: &str, path: PathBuf) {
        match self.outputs.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = path,
            None => self.outputs.push((name.to_owned(), path)),
        }
    }

    /// The registered outputs, checked to exist, in registration order.
    pub(crate) fn into_outputs(self) -> Result<Vec<(String, PathBuf)>, Error> {
        for (name, path) in &self.outputs {
            if !path.exists() {
                return Err(Error::failed(format!(
                    "output `{name}` was registered but never written ({})",
                    path.display()
                )));
            }
        }
        Ok(self.outputs)
    }
}

fn lookup(entries: &[(String, PathBuf)], name: &str, what: &str) -> Result<PathBuf, Error> {
    if let Some((_, path)) = entries.iter().find(|(n, _)| n == name) {
        return Ok(path.clone());
    }
    let known = if entries.is_empty() {
        format!("the task has no {what}s")
    } else {
        let names: Vec<String> = entries.iter().map(|(n, _)| format!("`{n}`")).collect();
        format!("the task's {what}s are {}", names.join(", "))
    };
    Err(Error::bad_input(format!("no {what} named `{name}`; {known}")))
}
