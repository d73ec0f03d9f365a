//! Checks the meaning of a parsed workflow (names, references, paths, durations) and resolves it.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};
use std::ops::Range;
use std::time::Duration;

use crate::diag::{Diagnostic, Source, did_you_mean};
use crate::model::{Defaults, Input, RawWorkflow, TaskDef};
use crate::partition::Scheme;
use crate::spans::Node;
use crate::{Task, duration};
use dagrun_smallmap::SmallMap;

/// Spans of one task's parts, looked up from the span tree.
pub(crate) struct TaskSpans<'a> {
    pub(crate) node: Option<&'a Node>,
}

impl<'a> TaskSpans<'a> {
    pub(crate) fn new(doc: Option<&'a Node>, i: usize) -> Self {
        TaskSpans { node: doc.and_then(|d| d.field("tasks")).and_then(|t| t.index(i)) }
    }
    pub(crate) fn field(&self, f: &str) -> Option<Range<usize>> {
        self.node.and_then(|n| n.field(f)).map(|n| n.span.clone())
    }
    pub(crate) fn after(&self, j: usize) -> Option<Range<usize>> {
        self.node.and_then(|n| n.field("after")).and_then(|a| a.index(j)).map(|n| n.span.clone())
    }
    pub(crate) fn map_key(&self, f: &str, key: &str) -> Option<Range<usize>> {
        self.node.and_then(|n| n.field(f)).and_then(|m| m.map_entry(key)).map(|(k, _)| k.span.clone())
    }
    pub(crate) fn map_value(&self, f: &str, key: &str) -> Option<Range<usize>> {
        self.node.and_then(|n| n.field(f)).and_then(|m| m.map_entry(key)).map(|(_, v)| v.span.clone())
    }
    /// Span of field `field` of the struct stored under `key` in map field `f`.
    pub(crate) fn map_value_field(&self, f: &str, key: &str, field: &str) -> Option<Range<usize>> {
        let v = self.node.and_then(|x| x.field(f)).and_then(|m| m.map_entry(key)).map(|(_, v)| v)?;
        v.field(field).map(|a| a.span.clone())
    }
    /// Span of the `n`th argument of the value stored under `key` in map field `f`.
    pub(crate) fn map_value_arg(&self, f: &str, key: &str, n: usize) -> Option<Range<usize>> {
        let v = self.node.and_then(|x| x.field(f)).and_then(|m| m.map_entry(key)).map(|(_, v)| v)?;
        v.index(n).map(|a| a.span.clone())
    }
    /// Span of key `key` of the map in field `f` of the task's kind.
    pub(crate) fn map_key_in_kind(&self, f: &str, key: &str) -> Option<Range<usize>> {
        let m = self.node.and_then(|n| n.field("kind")).and_then(|k| k.field(f))?;
        m.map_entry(key).map(|(k, _)| k.span.clone()).or_else(|| Some(m.span.clone()))
    }
    /// Span of the value under `key` of the map in field `f` of the task's kind.
    pub(crate) fn map_value_in_kind(&self, f: &str, key: &str) -> Option<Range<usize>> {
        let m = self.node.and_then(|n| n.field("kind")).and_then(|k| k.field(f))?;
        m.map_entry(key).map(|(_, v)| v.span.clone()).or_else(|| Some(m.span.clone()))
    }
    pub(crate) fn kind_field(&self, f: &str) -> Option<Range<usize>> {
        self.node.and_then(|n| n.field("kind")).and_then(|k| k.field(f)).map(|n| n.span.clone())
    }
}

/// A valid name close to `s`: other characters become `-`.
fn suggest_name(s: &str) -> String {
    let cleaned: String =
        s.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    if cleaned.is_empty() { "train".to_owned() } else { cleaned }
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The longest task or workflow name, in bytes: state files are named `<workflow>.<task>` and
/// most file systems refuse names over 255 bytes.
pub const MAX_NAME_LEN: usize = 100;

fn check_task_name(source: &Source, def: &TaskDef, sp: &TaskSpans<'_>, diags: &mut Vec<Diagnostic>) {
    if !valid_name(&def.name) {
        let mut short = suggest_name(&def.name);
        short.truncate(MAX_NAME_LEN);
        diags.push(
            Diagnostic::new("dagrun::invalid-name", format!("invalid task name `{}`", def.name), source)
                .label(sp.field("name"), "not a valid name")
                .help(format!("task names use only letters, digits, `_` and `-`, e.g. `{short}`")),
        );
    }
    check_name_length(source, "task name", &def.name, sp.node.and_then(|n| n.field("name")), diags);
}

/// A name too long to become part of a file name.
fn check_name_length(source: &Source, what: &str, name: &str, node: Option<&Node>, diags: &mut Vec<Diagnostic>) {
    if name.len() <= MAX_NAME_LEN {
        return;
    }
    let start: String = name.chars().take(20).collect();
    diags.push(
        Diagnostic::new(
            "dagrun::name-too-long",
            format!("{what} `{start}…` is {} bytes long, more than {MAX_NAME_LEN}", name.len()),
            source,
        )
        .label(node.map(|n| n.span.clone()), "too long")
        .help(format!(
            "dagrun names state files after it, and file names are limited: shorten it to at most {MAX_NAME_LEN} bytes"
        )),
    );
}

/// Validates the workflow's partition schemes.
pub(crate) fn schemes(
    source: &Source,
    raw: &RawWorkflow,
    doc: Option<&Node>,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Scheme> {
    let mut out = BTreeMap::new();
    for (name, def) in &raw.partitions {
        let span = doc.and_then(|d| d.field("partitions")).and_then(|m| m.map_entry(name)).map(|(_, v)| v.span.clone());
        if !valid_name(name) {
            diags.push(
                Diagnostic::new("dagrun::invalid-name", format!("invalid partition scheme name `{name}`"), source)
                    .label(span.clone(), "in here")
                    .help("scheme names use only letters, digits, `_` and `-`, e.g. \"daily\""),
            );
        }
        match Scheme::from_def(def) {
            Ok(s) => {
                out.insert(name.clone(), s);
            }
            Err(why) => diags.push(
                Diagnostic::new("dagrun::invalid-partitions", format!("partition scheme `{name}`: {why}"), source)
                    .label(span, "invalid scheme")
                    .help(
                        "e.g. \"daily\": Daily(start: \"2025-01-01\", end: \"2025-03-31\"), or List([\"eu\", \"us\"])",
                    ),
            ),
        }
    }
    out
}

/// Partitioned tasks: the scheme exists, outputs are per partition, and partitioned upstream
/// outputs are read per partition (`Output`) or as a range (`Partitions`).
fn check_partitioning(
    source: &Source,
    def: &TaskDef,
    sp: &TaskSpans<'_>,
    defs: &[Option<TaskDef>],
    by_name: &HashMap<&str, usize>,
    declared: &BTreeMap<String, crate::partition::SchemeDef>,
    diags: &mut Vec<Diagnostic>,
) {
    if let Some(scheme) = &def.partitioned
        && !declared.contains_key(scheme)
    {
        let known: Vec<&str> = declared.keys().map(String::as_str).collect();
        diags.push(
            Diagnostic::new("dagrun::unknown-partitions", format!("task `{}` is partitioned by unknown scheme `{scheme}`", def.name), source)
                .label(sp.field("partitioned"), "no such scheme")
                .help(match (did_you_mean(scheme, known.iter().copied()), known.is_empty()) {
                    (Some(s), _) => format!("did you mean `{s}`?"),
                    (None, true) => "declare it under the workflow's `partitions`, e.g. partitions: {\"daily\": Daily(start: \"2025-01-01\")}".to_owned(),
                    (None, false) => format!("schemes: {}", known.join(", ")),
                }),
        );
        return;
    }
    let partitioned = def.partitioned.is_some();
    for (name, path) in &def.outputs {
        if partitioned && !crate::partition::is_templated(path) {
            diags.push(
                Diagnostic::new(
                    "dagrun::output-not-partitioned",
                    format!("output `{name}` of partitioned task `{}` is the same file for every partition", def.name),
                    source,
                )
                .label(sp.map_value("outputs", name), "no partition variable")
                .help(format!("put the partition in the path, e.g. \"{}\"", with_partition(path))),
            );
        }
    }
    let templated_input = def
        .inputs
        .iter()
        .find(|(_, i)| matches!(i, Input::File(p) | Input::Glob(p) if crate::partition::is_templated(p)));
    let templated_output = def.outputs.iter().find(|(_, p)| crate::partition::is_templated(p));
    if !partitioned {
        let found = templated_input.map(|(n, _)| ("inputs", n)).or(templated_output.map(|(n, _)| ("outputs", n)));
        if let Some((field, n)) = found {
            diags.push(
                Diagnostic::new(
                    "dagrun::not-partitioned",
                    format!("task `{}` uses a partition variable but is not partitioned", def.name),
                    source,
                )
                .label(sp.map_value(field, n), "partition variable here")
                .help("add `partitioned: \"<scheme>\"` to the task, or remove the {...} variable"),
            );
        }
    }
    for (input, src) in &def.inputs {
        let (up, is_range) = match src {
            Input::Output(t, _) => (t, false),
            Input::Partitions { task, .. } => (task, true),
            _ => continue,
        };
        let Some(up_def) = by_name.get(up.as_str()).and_then(|&u| defs[u].as_ref()) else { continue };
        match (&up_def.partitioned, is_range) {
            (None, true) => diags.push(
                Diagnostic::new("dagrun::not-partitioned", format!("`Partitions` of task `{up}`, which is not partitioned"), source)
                    .label(sp.map_value("inputs", input), "reads partitions")
                    .help(format!("read it with Output(\"{up}\", \"...\"), or partition `{up}`")),
            ),
            (Some(up_scheme), false) if def.partitioned.as_ref() != Some(up_scheme) => diags.push(
                Diagnostic::new(
                    "dagrun::partition-mismatch",
                    format!("task `{}` reads one output of `{up}`, which is partitioned by `{up_scheme}`", def.name),
                    source,
                )
                .label(sp.map_value("inputs", input), "which partition?")
                .help(format!(
                    "read a range instead: Partitions(task: \"{up}\", output: \"...\") (optionally with `last: N`), or partition this task by `{up_scheme}` too"
                )),
            ),
            _ => {}
        }
    }
    for dep in &def.after {
        if let Some(up_def) = by_name.get(dep.as_str()).and_then(|&u| defs[u].as_ref())
            && up_def.partitioned.is_some()
            && def.partitioned.is_some()
            && up_def.partitioned != def.partitioned
        {
            diags.push(
                Diagnostic::new(
                    "dagrun::partition-mismatch",
                    format!("task `{}` runs after `{dep}`, which is partitioned differently", def.name),
                    source,
                )
                .label(sp.field("after"), "here")
                .help(format!(
                    "depend on a range of `{dep}` with a Partitions(...) input instead (an unpartitioned task may run after all of `{dep}`'s partitions in the run)"
                )),
            );
        }
    }
}

fn with_partition(path: &str) -> String {
    let p = std::path::Path::new(path);
    match (p.file_stem(), p.extension()) {
        (Some(stem), Some(ext)) => {
            let name = format!("{}-{{partition}}.{}", stem.to_string_lossy(), ext.to_string_lossy());
            p.with_file_name(name).display().to_string()
        }
        _ => format!("{path}-{{partition}}"),
    }
}

pub(crate) fn validate(
    source: &Source,
    raw: &RawWorkflow,
    mut owned: Vec<Option<TaskDef>>,
    doc: Option<&Node>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Task> {
    let defs = owned.as_slice();
    if let Some(doc) = doc {
        duplicate_keys(source, doc, diags);
    }
    let top = |f: &str| doc.and_then(|d| d.field("defaults")).and_then(|d| d.field(f)).map(|n| n.span.clone());
    let defaults = resolve_defaults(source, &raw.defaults, &top, diags);
    check_name_length(source, "workflow name", &raw.name, doc.and_then(|d| d.field("name")), diags);

    // Names first: every later check needs them.
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, def) in defs.iter().enumerate() {
        let Some(def) = def else { continue };
        let sp = TaskSpans::new(doc, i);
        check_task_name(source, def, &sp, diags);
        if let Some(&first) = by_name.get(def.name.as_str()) {
            diags.push(
                Diagnostic::new("dagrun::duplicate-task", format!("task `{}` is defined twice", def.name), source)
                    .label(sp.field("name"), "defined again here")
                    .label(TaskSpans::new(doc, first).field("name"), "first defined here")
                    .help("task names must be unique: rename one of them"),
            );
        } else {
            by_name.insert(&def.name, i);
        }
    }
    // A task that failed to parse (its error is already reported) still defines its name, so
    // references to it are not reported a second time as unknown.
    for (i, def) in defs.iter().enumerate() {
        if def.is_none()
            && let Some(name) = TaskSpans::new(doc, i).node.and_then(|n| n.field("name")).and_then(Node::as_str)
        {
            by_name.entry(name).or_insert(i);
        }
    }
    let mut named: Vec<(usize, &str)> = by_name.iter().map(|(n, &i)| (i, *n)).collect();
    named.sort_unstable();
    let names: Vec<&str> = named.into_iter().map(|(_, n)| n).collect();

    // Checked first, then moved into their tasks (the definitions are not needed after).
    let mut checked = Vec::with_capacity(defs.len());
    for (i, def) in defs.iter().enumerate() {
        let Some(def) = def else { continue };
        let sp = TaskSpans::new(doc, i);
        let before = diags.len();
        check_refs(source, def, &sp, &by_name, defs, &names, diags);
        crate::kinds::check_kind(source, def, &sp, diags);
        crate::registry_urls::check_task(source, def, &sp, diags);
        crate::overlap::check_output_paths(source, def, &sp, diags);
        check_partitioning(source, def, &sp, defs, &by_name, &raw.partitions, diags);
        crate::heal_checks::check_only_if(source, def, &sp, defs, &by_name, diags);
        crate::heal_checks::check_monitor_heal(source, def, &sp, diags);
        crate::executor::check_task(source, def, sp.node, diags);
        let timeout = match &def.timeout {
            Some(t) => parse_duration(source, t, sp.field("timeout"), diags),
            None => defaults.timeout,
        };
        let params = params_json(source, def, &sp, diags);
        if diags.len() == before {
            checked.push((i, timeout, params));
        }
    }
    if let Some(e) = &raw.executor {
        crate::executor::check(source, e, doc.and_then(|d| d.field("executor")), diags);
    }
    crate::overlap::check_overlaps(source, defs, doc, diags);
    crate::heal_checks::check_approvals_gate(source, defs, doc, diags);
    // Sized up front: a collect through `filter_map` would grow by doubling (a task is ~700
    // bytes; at 10,000 tasks the slack alone was 4 MiB).
    let mut tasks = Vec::with_capacity(checked.len());
    tasks.extend(checked.into_iter().filter_map(|(i, timeout, params)| {
        let def = owned[i].take()?;
        let executor = crate::executor::resolve(&def, raw.executor.as_ref());
        Some(Task {
            name: def.name,
            kind: def.kind,
            inputs: def.inputs,
            outputs: def.outputs,
            params,
            after: def.after,
            retries: def.retries.unwrap_or(defaults.retries),
            timeout,
            backoff: defaults.backoff,
            partitioned: def.partitioned,
            only_if: def.only_if,
            executor,
        })
    }));
    tasks
}

pub(crate) struct ResolvedDefaults {
    pub retries: u32,
    pub timeout: Option<Duration>,
    pub backoff: Duration,
}

fn resolve_defaults(
    source: &Source,
    d: &Defaults,
    span: &dyn Fn(&str) -> Option<Range<usize>>,
    diags: &mut Vec<Diagnostic>,
) -> ResolvedDefaults {
    ResolvedDefaults {
        retries: d.retries.unwrap_or(0),
        timeout: d.timeout.as_ref().and_then(|t| parse_duration(source, t, span("timeout"), diags)),
        backoff: d
            .backoff
            .as_ref()
            .and_then(|t| parse_duration(source, t, span("backoff"), diags))
            .unwrap_or(Duration::from_secs(1)),
    }
}

pub(crate) fn parse_duration(
    source: &Source,
    text: &str,
    span: Option<Range<usize>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Duration> {
    match duration::parse(text) {
        Ok(d) => Some(d),
        Err(why) => {
            diags.push(
                Diagnostic::new("dagrun::invalid-duration", format!("invalid duration `{text}`: {why}"), source)
                    .label(span, "not a duration")
                    .help(match duration::suggest(text) {
                        Some(s) => format!("did you mean \"{s}\"? durations are a number and a unit: ms, s, m, h or d"),
                        None => "write a number and a unit: \"500ms\", \"30s\", \"10m\", \"2h\" or \"1d\"".to_owned(),
                    }),
            );
            None
        }
    }
}

fn check_refs(
    source: &Source,
    def: &TaskDef,
    sp: &TaskSpans<'_>,
    by_name: &HashMap<&str, usize>,
    defs: &[Option<TaskDef>],
    names: &[&str],
    diags: &mut Vec<Diagnostic>,
) {
    let unknown = |name: &str, span, what: &str| {
        let mut d = Diagnostic::new(
            "dagrun::unknown-task",
            format!("task `{}` {what} unknown task `{name}`", def.name),
            source,
        )
        .label(span, "no task has this name");
        let others: Vec<&str> = names.iter().copied().filter(|n| *n != def.name).collect();
        d.help = Some(match did_you_mean(name, others.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if others.is_empty() => "this is the only task".to_owned(),
            None => format!("defined tasks: {}", others.join(", ")),
        });
        d
    };
    for (j, dep) in def.after.iter().enumerate() {
        if dep == &def.name {
            diags.push(
                Diagnostic::new("dagrun::cycle", format!("task `{dep}` runs after itself"), source)
                    .label(sp.after(j), "a task cannot wait for itself")
                    .help(format!("remove `{dep}` from its `after` list")),
            );
        } else if !by_name.contains_key(dep.as_str()) {
            diags.push(unknown(dep, sp.after(j), "runs after"));
        }
    }
    for (input, src) in &def.inputs {
        if !valid_name(input) {
            diags.push(
                Diagnostic::new("dagrun::invalid-name", format!("invalid input name `{input}`"), source)
                    .label(sp.map_key("inputs", input), "not a valid name")
                    .help("input names use only letters, digits, `_` and `-`"),
            );
        }
        match src {
            Input::Output(task, output) | Input::Partitions { task, output, .. } => {
                let (task_span, output_span) = match src {
                    Input::Output(..) => (sp.map_value_arg("inputs", input, 0), sp.map_value_arg("inputs", input, 1)),
                    _ => (sp.map_value_field("inputs", input, "task"), sp.map_value_field("inputs", input, "output")),
                };
                if task == &def.name {
                    diags.push(
                        Diagnostic::new("dagrun::cycle", format!("task `{task}` reads its own output"), source)
                            .label(sp.map_value("inputs", input), "a task cannot read its own output")
                            .help("read the file directly, or split the task in two"),
                    );
                } else if let Some(&up) = by_name.get(task.as_str()) {
                    let Some(up_def) = &defs[up] else { continue };
                    if !up_def.outputs.contains_key(output) {
                        let outs: Vec<&str> = up_def.outputs.keys().map(String::as_str).collect();
                        let mut d = Diagnostic::new(
                            "dagrun::unknown-output",
                            format!("task `{task}` has no output named `{output}`"),
                            source,
                        )
                        .label(output_span, "no such output");
                        d.help = Some(match (did_you_mean(output, outs.iter().copied()), outs.is_empty()) {
                            (Some(s), _) => format!("did you mean `{s}`?"),
                            (None, true) => format!("task `{task}` declares no outputs"),
                            (None, false) => format!("outputs of `{task}`: {}", outs.join(", ")),
                        });
                        diags.push(d);
                    }
                } else {
                    diags.push(unknown(task, task_span, "reads an output of"));
                }
            }
            Input::Glob(pattern) => {
                if let Err(e) = glob::Pattern::new(pattern) {
                    let msg =
                        if e.msg.contains("range") { "unclosed or invalid `[...]` character class" } else { e.msg };
                    let at = sp.map_value_arg("inputs", input, 0).map(|s| s.start + 1 + e.pos..s.start + 2 + e.pos);
                    diags.push(
                        Diagnostic::new("dagrun::invalid-glob", format!("invalid glob `{pattern}`: {msg}"), source)
                            .label(at, "here")
                            .help("globs use `*`, `**`, `?` and `[abc]`, e.g. \"data/**/*.csv\""),
                    );
                }
            }
            Input::File(path) if path.is_empty() => diags.push(
                Diagnostic::new("dagrun::empty-path", format!("input `{input}` has an empty path"), source)
                    .label(sp.map_value("inputs", input), "empty path")
                    .help("give a file path relative to the workflow file"),
            ),
            Input::File(_) => {}
        }
    }
}

/// Maps with the same key twice: serde would silently keep only the last one.
fn duplicate_keys(source: &Source, node: &Node, diags: &mut Vec<Diagnostic>) {
    use crate::spans::NodeKind;
    match &node.kind {
        NodeKind::Map(entries) => {
            for (i, (k, _)) in entries.iter().enumerate() {
                let Some(key) = k.as_str() else { continue };
                if let Some((first, _)) = entries[..i].iter().find(|(f, _)| f.as_str() == Some(key)) {
                    diags.push(
                        Diagnostic::new("dagrun::duplicate-key", format!("`{key}` is given twice in this map"), source)
                            .label(Some(k.span.clone()), "given again here")
                            .label(Some(first.span.clone()), "first given here")
                            .help("keys of a map must be unique: remove or rename one"),
                    );
                }
            }
            for (k, v) in entries {
                duplicate_keys(source, k, diags);
                duplicate_keys(source, v, diags);
            }
        }
        NodeKind::Struct(fields) => fields.iter().for_each(|f| duplicate_keys(source, &f.value, diags)),
        NodeKind::List(items) | NodeKind::Tuple(items) => items.iter().for_each(|n| duplicate_keys(source, n, diags)),
        _ => {}
    }
}

/// Why a RON value would not survive the trip to JSON unchanged.
fn not_json(v: &ron::Value) -> Option<&'static str> {
    match v {
        ron::Value::Number(n) if !(*n).into_f64().is_finite() => Some("numbers must be finite (no NaN or inf)"),
        ron::Value::Map(m) => m.iter().find_map(|(k, v)| match k {
            ron::Value::String(_) => not_json(v),
            _ => Some("map keys must be strings"),
        }),
        ron::Value::Seq(items) => items.iter().find_map(not_json),
        ron::Value::Option(Some(inner)) => not_json(inner),
        _ => None,
    }
}

fn params_json(
    source: &Source,
    def: &TaskDef,
    sp: &TaskSpans<'_>,
    diags: &mut Vec<Diagnostic>,
) -> SmallMap<String, serde_json::Value> {
    // Collected, then made a map of exactly its size (inserting grows it to four entries).
    let mut out = Vec::with_capacity(def.params.len());
    for (k, v) in &def.params {
        if let Some(why) = not_json(v) {
            diags.push(
                Diagnostic::new(
                    "dagrun::invalid-param",
                    format!("param `{k}` cannot be passed to the task: {why}"),
                    source,
                )
                .label(sp.map_value("params", k), "not representable as JSON")
                .help("params are passed as JSON: maps need string keys and numbers must be finite"),
            );
            continue;
        }
        match serde_json::to_value(v) {
            Ok(j) => out.push((k.clone(), j)),
            Err(e) => diags.push(
                Diagnostic::new(
                    "dagrun::invalid-param",
                    format!("param `{k}` cannot be passed to the task: {e}"),
                    source,
                )
                .label(sp.map_value("params", k), "not representable as JSON")
                .help("params must be JSON-like: maps need string keys and numbers must be finite"),
            ),
        }
    }
    out.into_iter().collect()
}
