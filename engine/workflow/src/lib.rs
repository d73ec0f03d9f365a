//! The `workflow.ron` format: typed model, loading, validation and diagnostics with source spans.
//!
//! ```
//! let src = r#"Workflow(name: "demo", tasks: [
//!     Task(name: "hello", kind: Command(run: "echo hi > out.txt"), outputs: {"out": "out.txt"}),
//! ])"#;
//! let wf = dagrun_workflow::Workflow::from_source(
//!     dagrun_workflow::Source::new("demo.ron", src),
//!     std::path::PathBuf::from("/tmp"),
//! ).unwrap();
//! assert_eq!(wf.tasks[0].name, "hello");
//! ```

pub mod automation;
mod diag;
pub mod duration;
pub mod executor;
pub mod heal;
mod heal_checks;
mod kinds;
mod kinds_monitor;
mod load;
mod model;
mod overlap;
pub mod partition;
pub mod registry_urls;
mod released;
pub mod remote;
mod ron_errors;
pub mod size;
pub mod spans;
mod validate;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use dagrun_smallmap::SmallMap;
use std::time::Duration;

pub use diag::{Diagnostic, Label, Report, Source, did_you_mean};
pub use kinds::KNOWN_METRICS;
pub use model::{
    ChampionDef, CommandTask, DataSource, Defaults, DeployedDef, DriftMethod, DriftTask, GateDef, Input, MountDef,
    NoChampion, OnnxEvalTask, OnnxPredictTask, PerformanceTask, TaskDef, TaskKind, TestDef, WasmTask,
};

/// A loaded, valid workflow.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// The workflow's `name`.
    pub name: String,
    /// The workflow file's text, for diagnostics raised after loading (e.g. cycles); empty
    /// after [`Workflow::release_text`] (see [`Workflow::source`]).
    source: Source,
    /// Set by [`Workflow::release_text`]: how to read the text again.
    released: Option<released::Released>,
    /// Absolute directory of the workflow file: relative paths resolve against it.
    pub dir: PathBuf,
    /// Tasks in file order.
    pub tasks: Vec<Task>,
    /// Partition schemes by name.
    pub schemes: BTreeMap<String, partition::Scheme>,
    /// Its schedule, triggers and concurrency policy (used by the daemon).
    pub automation: automation::Automation,
    /// Where notifications go (`notify: [...]`).
    pub notify: Vec<heal::NotifyDef>,
    /// The person-minutes one run of the workflow replaces (`manual_minutes`, > 0): the payoff
    /// report's "manual effort replaced" (never mixed with the compute time the cache saved).
    pub manual_minutes: Option<u32>,
    /// The shared remote cache (`remote_cache: "s3://bucket/prefix"`), checked with
    /// [`remote::parse_s3_location`]; `DAGRUN_REMOTE_CACHE` overrides it.
    pub remote_cache: Option<String>,
    /// Registries on S3 (`s3://...` as written) → the local mirror a run works on; set by the
    /// run that synced them (empty after loading). `dagrun_plan::resolve_path` consults it.
    pub registry_mirrors: BTreeMap<String, PathBuf>,
    /// The span tree of the file's text, read on first use (see [`Workflow::doc`]).
    doc: OnceLock<Option<spans::Node>>,
    /// Task name → index in `tasks` (a hint: checked on use, so an edited `tasks` stays correct).
    by_name: NameIndex,
}

/// Indices of tasks, found by their names without holding copies of them (a map of cloned
/// names took ~80 bytes a task).
#[derive(Debug, Clone)]
struct NameIndex(hashbrown::HashTable<usize>);

fn name_hash(name: &str) -> u64 {
    std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::default(), name)
}

impl NameIndex {
    /// The first task of each name.
    fn new(tasks: &[Task]) -> Self {
        let mut table = hashbrown::HashTable::with_capacity(tasks.len());
        for (i, task) in tasks.iter().enumerate() {
            let hash = name_hash(&task.name);
            if table.find(hash, |&j: &usize| tasks[j].name == task.name).is_none() {
                table.insert_unique(hash, i, |&j| name_hash(&tasks[j].name));
            }
        }
        NameIndex(table)
    }

    /// The index of the task called `name`, if the index has one that `tasks` still agrees with.
    fn get(&self, tasks: &[Task], name: &str) -> Option<usize> {
        self.0.find(name_hash(name), |&j| tasks.get(j).is_some_and(|t| t.name == name)).copied()
    }
}

/// One resolved task: defaults applied, params converted to JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Unique task name.
    pub name: String,
    /// What it runs.
    pub kind: TaskKind,
    /// Named inputs.
    pub inputs: SmallMap<String, Input>,
    /// Named output paths, relative to [`Workflow::dir`].
    pub outputs: SmallMap<String, String>,
    /// Parameters as a JSON object (its top level: nested values are `serde_json` values).
    pub params: SmallMap<String, serde_json::Value>,
    /// Ordering-only dependencies.
    pub after: Vec<String>,
    /// Retries after a failed attempt.
    pub retries: u32,
    /// Wall-clock limit per attempt.
    pub timeout: Option<Duration>,
    /// Delay before the first retry (doubled each time).
    pub backoff: Duration,
    /// The partition scheme it runs per, if partitioned.
    pub partitioned: Option<String>,
    /// Runs only when this condition holds (else it is skipped, which is not a failure).
    pub only_if: Option<heal::Condition>,
    /// Where it runs (the task's `executor`, else the workflow's, else `Local`).
    pub executor: executor::ExecutorDef,
}

impl Task {
    /// Names of the tasks this one depends on (data or ordering), deduplicated, sorted.
    pub fn upstream(&self) -> Vec<&str> {
        let mut ups: Vec<&str> = self.after.iter().map(String::as_str).collect();
        ups.extend(self.inputs.values().filter_map(|i| match i {
            Input::Output(t, _) | Input::Partitions { task: t, .. } => Some(t.as_str()),
            _ => None,
        }));
        ups.sort_unstable();
        ups.dedup();
        ups
    }
}

/// Why a workflow could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read workflow {path}: {source}")]
    Io {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file was read but has problems; all of them are listed.
    #[error("{} has {} problem(s)", .0.first().map(|d| d.source.name.as_str()).unwrap_or("workflow"), .0.len())]
    Invalid(Vec<Diagnostic>),
}

/// How strictly a workflow is checked when it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Whether the environment variables of the `notify` sinks must be set here: yes for
    /// whatever runs the workflow, no for a look at it from another shell (`daemon status`).
    pub check_env: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { check_env: true }
    }
}

impl Workflow {
    /// Reads and validates the workflow file at `path`.
    pub fn load(path: &Path) -> Result<Workflow, LoadError> {
        Workflow::load_with(path, LoadOptions::default())
    }

    /// [`Workflow::load`] with options.
    pub fn load_with(path: &Path, opts: LoadOptions) -> Result<Workflow, LoadError> {
        let text = load::read(path).map_err(|source| LoadError::Io { path: path.to_owned(), source })?;
        let abs = std::path::absolute(path).map_err(|source| LoadError::Io { path: path.to_owned(), source })?;
        let dir = abs.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let name = path.display().to_string();
        match text {
            load::Text::Utf8(text) => {
                Workflow::from_source_with(Source::new(name, text), dir, opts).map_err(LoadError::Invalid)
            }
            load::Text::Invalid { lossy, offset } => {
                Err(LoadError::Invalid(vec![load::not_utf8(&Source::new(name, lossy), offset)]))
            }
        }
    }

    /// Validates workflow text; `dir` is where its relative paths resolve.
    pub fn from_source(source: Source, dir: PathBuf) -> Result<Workflow, Vec<Diagnostic>> {
        Workflow::from_source_with(source, dir, LoadOptions::default())
    }

    /// [`Workflow::from_source`] with options.
    ///
    /// A valid file is read once, without a span tree, and checked; only a file with something
    /// wrong is read again with spans (every check runs again, so each error points at its
    /// place). Spans a valid workflow needs later (a cycle, a plugin's params error) are read
    /// then, on first use.
    pub fn from_source_with(source: Source, dir: PathBuf, opts: LoadOptions) -> Result<Workflow, Vec<Diagnostic>> {
        if let Some(parsed) = load::parse_valid(&source)
            && let Ok(wf) = Workflow::check(source.clone(), dir.clone(), &opts, parsed)
        {
            return Ok(wf);
        }
        Workflow::check(source.clone(), dir, &opts, load::parse(&source))
    }

    /// Checks what [`load`] read; the workflow, or every problem found.
    fn check(
        source: Source,
        dir: PathBuf,
        opts: &LoadOptions,
        parsed: load::Parsed,
    ) -> Result<Workflow, Vec<Diagnostic>> {
        let mut diags = parsed.diagnostics;
        let Some(raw) = parsed.raw else { return Err(diags) };
        let schemes = validate::schemes(&source, &raw, parsed.doc.as_ref(), &mut diags);
        let tasks = validate::validate(&source, &raw, parsed.tasks, parsed.doc.as_ref(), &mut diags);
        let automation = automation::validate(&source, &raw.name, &raw, &tasks, parsed.doc.as_ref(), &mut diags);
        heal_checks::check_notify(&source, &raw.notify, parsed.doc.as_ref(), opts.check_env, &mut diags);
        if raw.manual_minutes == Some(0) {
            let span = parsed.doc.as_ref().and_then(|d| d.field("manual_minutes")).map(|n| n.span.clone());
            diags.push(
                Diagnostic::new("dagrun::invalid-estimate", "`manual_minutes` is 0", &source)
                    .label(span, "must be at least 1")
                    .help("the minutes a person would spend doing one run by hand, e.g. manual_minutes: 45; leave it out when unknown"),
            );
        }
        check_remote_cache(&source, raw.remote_cache.as_deref(), parsed.doc.as_ref(), &mut diags);
        if !diags.is_empty() {
            diags.sort_by_key(|d| d.labels.first().map_or(usize::MAX, |l| l.span.start));
            return Err(diags);
        }
        Ok(Workflow {
            name: raw.name,
            source,
            released: None,
            dir,
            schemes,
            automation,
            notify: raw.notify,
            manual_minutes: raw.manual_minutes,
            remote_cache: raw.remote_cache,
            registry_mirrors: BTreeMap::new(),
            // Known when the file was read with spans; else read on first use.
            doc: match parsed.doc {
                Some(doc) => OnceLock::from(Some(doc)),
                None => OnceLock::new(),
            },
            by_name: NameIndex::new(&tasks),
            tasks,
        })
    }

    /// The partition schemes its tasks are partitioned by, by name (validated: each exists).
    pub fn used_schemes(&self) -> BTreeMap<&str, &partition::Scheme> {
        self.tasks
            .iter()
            .filter_map(|t| t.partitioned.as_deref())
            .filter_map(|name| self.schemes.get(name).map(|s| (name, s)))
            .collect()
    }

    /// The registry models the workflow names (a gate's champion, `Deployed(...)` sources,
    /// `OnnxPredict`'s deployed model, an `Approval`'s `deploys`): `(registry as written, name)`,
    /// sorted, without duplicates. Their `current` is what a run may move.
    pub fn registry_models(&self) -> Vec<(String, String)> {
        let mut out = std::collections::BTreeSet::new();
        let mut add = |d: &DeployedDef| out.insert((d.registry.clone(), d.name.clone()));
        for task in &self.tasks {
            match &task.kind {
                TaskKind::OnnxEval(e) => {
                    if let Some(c) = e.gate.as_ref().and_then(|g| g.champion.as_ref()) {
                        add(&DeployedDef { registry: c.registry.clone(), name: c.name.clone() });
                    }
                }
                TaskKind::OnnxPredict(p) => p.deployed.iter().for_each(|d| {
                    add(d);
                }),
                TaskKind::Drift(d) => [Some(&d.reference), d.model.as_ref()].into_iter().flatten().for_each(|s| {
                    if let DataSource::Deployed(d) = s {
                        add(d);
                    }
                }),
                TaskKind::Performance(p) => {
                    if let DataSource::Deployed(d) = &p.model {
                        add(d);
                    }
                }
                TaskKind::Approval(a) => {
                    add(&a.deploys);
                }
                TaskKind::Command(_) | TaskKind::Wasm(_) => {}
            }
        }
        out.into_iter().collect()
    }

    /// The `s3://` registries its tasks name (champions, `Deployed(...)`, mounts), sorted.
    pub fn remote_registries(&self) -> Vec<String> {
        let all = self.tasks.iter().flat_map(|t| registry_urls::task_locations(&t.kind));
        let remote: std::collections::BTreeSet<String> =
            all.filter(|(_, l)| registry_urls::is_remote(l)).map(|(_, l)| l.to_owned()).collect();
        remote.into_iter().collect()
    }

    /// Index of the task called `name`.
    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(&self.tasks, name).or_else(|| self.tasks.iter().position(|t| t.name == name))
    }

    /// The span tree of the workflow file (`None` when the span reader cannot follow it: then
    /// diagnostics go without locations). Read on first use: a valid file is not read into one
    /// while loading.
    fn doc(&self) -> Option<&spans::Node> {
        self.doc.get_or_init(|| self.text().and_then(|t| spans::parse(t).ok())).as_ref()
    }

    /// The file's text: the one loaded, or after [`Workflow::release_text`] the file read again
    /// (`None` when it has changed since: then diagnostics go without locations).
    fn text(&self) -> Option<&Arc<str>> {
        match &self.released {
            None => Some(&self.source.text),
            Some(r) => r.text(),
        }
    }

    /// The workflow file (its name as the user gave it, and its text) for a diagnostic.
    pub fn source(&self) -> Source {
        let text = self.text().cloned().unwrap_or_else(|| Arc::from(""));
        Source { name: self.source.name.clone(), text }
    }

    /// The workflow file's name as the user gave it.
    pub fn source_name(&self) -> &str {
        &self.source.name
    }

    /// Drops the file's text (a 10,000-task file is ~2 MB) once loading is done; `file` is where
    /// it was read from. A diagnostic raised later reads it again, and goes without locations
    /// when the file no longer holds the same text.
    pub fn release_text(&mut self, file: &Path) {
        if self.released.is_some() {
            return;
        }
        let Ok(file) = std::path::absolute(file) else { return };
        self.released = Some(released::Released::new(file, &self.source.text));
        self.source.text = Arc::from("");
        // A span tree read while loading (a file with kinds the one-pass reader does not take)
        // goes too: it is read again from the checked text, so no span outlives its text.
        self.doc = OnceLock::new();
    }

    /// Where task `i` names its dependency `dep` (an `after` entry or an `Output` input).
    pub fn dependency_span(&self, i: usize, dep: &str) -> Option<Range<usize>> {
        let task = self.tasks.get(i)?;
        let sp = validate::TaskSpans::new(self.doc(), i);
        if let Some(j) = task.after.iter().position(|a| a == dep) {
            return sp.after(j);
        }
        task.inputs.iter().find_map(|(name, input)| match input {
            Input::Output(t, _) | Input::Partitions { task: t, .. } if t == dep => sp.map_value("inputs", name),
            _ => None,
        })
    }

    /// Span of task `i`'s `name` value.
    pub fn task_name_span(&self, i: usize) -> Option<Range<usize>> {
        validate::TaskSpans::new(self.doc(), i).field("name")
    }

    /// Where task `i` writes the param at `path`, as a plugin names it in an invalid-params
    /// error (`columns`, `split.ratio`, `columns[1]`): the deepest value along the path that the
    /// file spells out. Falls back to the task's `params` field when the first key is not
    /// written (or `path` is empty, e.g. for a missing param), then to the task's name.
    pub fn param_span(&self, i: usize, path: &str) -> Option<Range<usize>> {
        let sp = validate::TaskSpans::new(self.doc(), i);
        let params = sp.node.and_then(|n| n.field("params"));
        let found = params.and_then(|p| spans::resolve_path(p, path)).or(params);
        found.map(|n| n.span.clone()).or_else(|| self.task_name_span(i))
    }

    /// [`Workflow::param_span`] as a 1-based line and column of the workflow file, e.g. for
    /// `wf.ron:12:9: param `columns`: invalid type: ...`.
    pub fn param_location(&self, i: usize, path: &str) -> Option<(usize, usize)> {
        let span = self.param_span(i, path)?;
        Some(diag::line_col(self.text()?, span.start))
    }
}

#[cfg(test)]
mod tests;

/// `remote_cache` must be an `s3://bucket/prefix` location (credentials never go in the file).
fn check_remote_cache(source: &Source, value: Option<&str>, doc: Option<&spans::Node>, diags: &mut Vec<Diagnostic>) {
    let Some(Err(why)) = value.map(remote::parse_s3_location) else { return };
    let span = doc.and_then(|d| d.field("remote_cache")).map(|n| n.span.clone());
    diags.push(
        Diagnostic::new("dagrun::invalid-remote-cache", "`remote_cache` is not a usable location", source)
            .label(span, why)
            .help("write remote_cache: \"s3://BUCKET/PREFIX\"; the endpoint and credentials come from the AWS environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE), never from the workflow file"),
    );
}
