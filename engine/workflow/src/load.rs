//! Reads a workflow file: RON syntax and types via serde, task by task, so every error shows at once.

use std::path::Path;

use crate::diag::{Diagnostic, Source};
use crate::model::{RawWorkflow, TaskDef, TaskKind};
use crate::ron_errors::diagnose;
use crate::spans::{self, Node};

/// The result of reading: typed tasks (those that parsed) plus every problem found.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub raw: Option<RawWorkflow>,
    pub tasks: Vec<Option<TaskDef>>,
    pub doc: Option<Node>,
    pub diagnostics: Vec<Diagnostic>,
}

/// RON options: `Some(..)` may be left out, and `Command(run: ..)` needs no double parentheses.
fn options() -> ron::Options {
    ron::Options::default()
        .with_recursion_limit(RON_DEPTH)
        .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
        .with_default_extension(ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES)
}

/// Files at least this large have their tasks read by ron in two halves, on two threads, once a
/// scan (which also looks for duplicate keys) has found where each task starts and ends.
pub(crate) const PARALLEL_BYTES: usize = 32 * 1024;

/// Files nested deeper than this are read in one piece (a bound on the scan's stack, well
/// inside its limit of 128).
const SPLIT_MAX_DEPTH: usize = 64;

/// ron's depth limit (its default) counts nested calls, and a task in the `tasks` list of the
/// whole file is two deeper (the `Workflow(..)` struct, its field's value) than in a half: the
/// halves are read with a limit lowered by two, so they refuse exactly what the whole file does.
const RON_DEPTH: usize = 128;
const HALF_DEPTH: usize = RON_DEPTH - 2;

/// The common case, a valid file, read once by ron and never into a span tree: `None` when
/// ron refuses it, when a map gives a key twice, or when the span reader cannot follow it
/// (then [`parse`] reads it again, with spans, to say exactly what is wrong where).
pub(crate) fn parse_valid(source: &Source) -> Option<Parsed> {
    let text = &*source.text;
    let base = if text.starts_with(spans::BOM) { spans::BOM.len() } else { 0 };
    // The scan also refuses too deep nesting, so ron never recurses into it.
    let scan = spans::scan(text).ok().filter(|s| !s.duplicate_key)?;
    let read = || options().from_str::<RawWorkflow<TaskDef>>(&text[base..]).ok();
    let full = match (text.len() >= PARALLEL_BYTES).then(|| halves(text, base, &scan)).flatten() {
        Some(split) => split.read()?,
        None => read()?,
    };
    let (raw, tasks) = full.split();
    // A check that reads how a value is spelled needs its span: `Deployed(...)` sources (ron
    // reads any struct name there) of the kinds that take them.
    if tasks.iter().any(|t| matches!(t.kind, TaskKind::Drift(_) | TaskKind::Performance(_) | TaskKind::Approval(_))) {
        return None;
    }
    Some(Parsed { raw: Some(raw), tasks: tasks.into_iter().map(Some).collect(), doc: None, diagnostics: Vec::new() })
}

/// A large file as three documents ron reads apart: the workflow with `tasks: []`, and each
/// half of its tasks as a list (after the file's own `#![enable(..)]` attributes).
pub(crate) struct Halves {
    skeleton: String,
    first: String,
    second: String,
}

/// The three documents of `text` (its BOM, if any, `base` bytes long), from its scan; `None`
/// when there is nothing worth splitting (fewer than two tasks) or the file nests too deep.
pub(crate) fn halves(text: &str, base: usize, scan: &spans::Scan) -> Option<Halves> {
    let (list, items) = scan.tasks.as_ref()?;
    if items.len() < 2 || scan.max_depth > SPLIT_MAX_DEPTH {
        return None;
    }
    let header = &text[base..scan.root_start];
    let mid = items.len() / 2;
    let half = |from: usize, to: usize| format!("{header}[{}]", &text[items[from].start..items[to].end]);
    Some(Halves {
        skeleton: format!("{}[]{}", &text[base..list.start], &text[list.end..]),
        first: half(0, mid - 1),
        second: half(mid, items.len() - 1),
    })
}

impl Halves {
    /// The workflow as one read of the whole file gives it; `None` if ron refuses any part.
    fn read(&self) -> Option<RawWorkflow<TaskDef>> {
        std::thread::scope(|s| {
            let half = || options().with_recursion_limit(HALF_DEPTH);
            let first = s.spawn(move || half().from_str::<Vec<TaskDef>>(&self.first).ok());
            let mut raw = options().from_str::<RawWorkflow<TaskDef>>(&self.skeleton).ok();
            let second = half().from_str::<Vec<TaskDef>>(&self.second).ok();
            let first = first.join().ok().flatten();
            let (r, mut tasks) = (raw.as_mut()?, first?);
            tasks.extend(second?);
            r.tasks = tasks;
            raw
        })
    }
}

/// Parses `source`; syntax errors stop early, per-task type errors are all collected.
/// A leading UTF-8 byte order mark is skipped (ron would read it as a value).
pub(crate) fn parse(source: &Source) -> Parsed {
    let text = &*source.text;
    let base = if text.starts_with(spans::BOM) { spans::BOM.len() } else { 0 };
    // The span reader fails on invalid syntax (and on RON it does not know): then we simply
    // lose the precise locations, never the errors themselves. Too deep nesting is refused
    // here, before ron or serde recurse into it.
    let doc = match spans::parse(text) {
        Ok(doc) => Some(doc),
        Err(e) if e.too_deep => {
            return Parsed { raw: None, tasks: Vec::new(), doc: None, diagnostics: vec![too_deep(source, e.offset)] };
        }
        Err(_) => None,
    };
    // The common case, a valid file: one pass. Otherwise the top level first, then task by task,
    // so that every task's error is reported at once.
    if doc.is_some()
        && let Ok(full) = options().from_str::<RawWorkflow<TaskDef>>(&text[base..])
    {
        let (raw, tasks) = full.split();
        return Parsed { raw: Some(raw), tasks: tasks.into_iter().map(Some).collect(), doc, diagnostics: Vec::new() };
    }
    let raw = match options().from_str::<RawWorkflow>(&text[base..]) {
        Ok(raw) => raw,
        Err(e) => {
            let diagnostics = vec![diagnose(source, base, &e, doc.as_ref())];
            return Parsed { raw: None, tasks: Vec::new(), doc, diagnostics };
        }
    };
    let mut diagnostics = Vec::new();
    let mut tasks = Vec::with_capacity(raw.tasks.len());
    for i in 0..raw.tasks.len() {
        let Some(node) = doc.as_ref().and_then(|d| d.field("tasks")).and_then(|t| t.index(i)) else {
            tasks.push(None);
            continue;
        };
        let slice = &text[node.span.clone()];
        match options().from_str::<TaskDef>(slice) {
            Ok(t) => tasks.push(Some(t)),
            Err(e) => {
                diagnostics.push(diagnose(source, node.span.start, &e, doc.as_ref()));
                tasks.push(None);
            }
        }
    }
    if doc.is_none() && !raw.tasks.is_empty() {
        // Without spans we cannot split the tasks: read them all in one go instead.
        match options().from_str::<RawWorkflow<TaskDef>>(&text[base..]) {
            Ok(full) => tasks = full.tasks.into_iter().map(Some).collect(),
            Err(e) => diagnostics.push(diagnose(source, base, &e, doc.as_ref())),
        }
    }
    Parsed { raw: Some(raw), tasks, doc, diagnostics }
}

fn too_deep(source: &Source, offset: usize) -> Diagnostic {
    Diagnostic::new("dagrun::too-deep", format!("brackets nest more than {} levels deep", spans::MAX_DEPTH), source)
        .label(Some(offset..offset + 1), format!("level {} starts here", spans::MAX_DEPTH + 1))
        .help("a workflow needs only a few levels of `(`, `[` and `{`: look for unclosed or repeated brackets")
}

/// What a workflow file holds: its text, or where it stops being UTF-8.
pub(crate) enum Text {
    /// Valid UTF-8.
    Utf8(String),
    /// Not UTF-8: the text with invalid bytes replaced (for showing it), and the byte offset of
    /// the first invalid byte (the same offset in both).
    Invalid { lossy: String, offset: usize },
}

/// Reads a file, keeping where it stops being UTF-8.
pub(crate) fn read(path: &Path) -> std::io::Result<Text> {
    let bytes = std::fs::read(path)?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => Text::Utf8(text),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            Text::Invalid { lossy: String::from_utf8_lossy(e.as_bytes()).into_owned(), offset }
        }
    })
}

/// The diagnostic for a file that is not UTF-8.
pub(crate) fn not_utf8(source: &Source, offset: usize) -> Diagnostic {
    let (line, col) = source.line_col(offset);
    Diagnostic::new(
        "dagrun::not-utf8",
        format!("the file is not valid UTF-8 (byte {offset}, line {line}, column {col})"),
        source,
    )
    .label(Some(offset..offset + 1), "invalid byte here (shown as \u{fffd})")
    .help("save the workflow file as UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\u{feff}// a comment\n#![enable(implicit_some)]\n/* before */ Workflow(\n    name: \"w\",\n    \
        defaults: (retries: 1),\n    tasks: [\n        Task(name: \"a\", kind: Command(run: \"echo \\\"]\\\" )\"), \
        params: {\"x\": [1, {\"y\": \"z\"}]}),\n        // between\n        (name: \"b\", kind: Command(run: r#\"x\"#), \
        after: [\"a\"], timeout: \"5s\"),\n        Task(name: \"c\", kind: Command(run: \"true\")) /* after */,\n    ],\n    \
        partitions: {},\n)\n";

    fn scan_of(text: &str) -> spans::Scan {
        spans::scan(text).unwrap()
    }

    #[test]
    fn two_halves_read_like_the_whole_file() {
        let base = spans::BOM.len();
        let whole = options().from_str::<RawWorkflow<TaskDef>>(&FILE[base..]).unwrap();
        let split = halves(FILE, base, &scan_of(FILE)).expect("three tasks split");
        assert!(split.first.starts_with("// a comment\n#![enable(implicit_some)]\n/* before */ [Task(name: \"a\""));
        assert!(split.skeleton.contains("tasks: [],"), "{}", split.skeleton);
        let read = split.read().expect("every part reads");
        assert_eq!(read.tasks.len(), 3);
        assert_eq!(format!("{read:?}"), format!("{whole:?}"));
    }

    #[test]
    fn no_halves_when_a_part_is_refused_or_too_small_or_too_deep() {
        let bad = FILE.replace("timeout: \"5s\"", "timeout: 5");
        assert!(halves(&bad, 3, &scan_of(&bad)).unwrap().read().is_none(), "a task ron refuses");
        let one = "Workflow(name: \"w\", tasks: [Task(name: \"a\", kind: Command(run: \"x\"))])";
        assert!(halves(one, 0, &scan_of(one)).is_none(), "one task");
        let deep = format!(
            "Workflow(name: \"w\", tasks: [Task(name: \"a\", kind: Command(run: \"x\"), params: {{\"p\": {}1{}}}), \
             Task(name: \"b\", kind: Command(run: \"x\"))])",
            "[".repeat(SPLIT_MAX_DEPTH),
            "]".repeat(SPLIT_MAX_DEPTH)
        );
        assert!(halves(&deep, 0, &scan_of(&deep)).is_none(), "nested deeper than SPLIT_MAX_DEPTH");
    }

    #[test]
    fn halves_refuse_what_the_whole_file_refuses_for_depth() {
        // ron counts nested calls, not brackets: `Some(a: ..)` in a parameter costs three.
        for n in 36..=42 {
            let deep = format!("{}[[1]]{}", "Some(a: ".repeat(n), ")".repeat(n));
            let text = format!(
                "Workflow(name: \"w\", tasks: [Task(name: \"a\", kind: Command(run: \"x\"), params: {{\"p\": {deep}}}), \
                 Task(name: \"b\", kind: Command(run: \"x\"))])"
            );
            let whole = options().from_str::<RawWorkflow<TaskDef>>(&text).is_ok();
            let split = halves(&text, 0, &scan_of(&text)).expect("split").read().is_some();
            assert_eq!(split, whole, "{n} levels");
        }
    }

    #[test]
    fn only_the_top_level_tasks_list_is_split() {
        let nested = "Workflow(name: \"w\", defaults: (tasks: [1, 2]), tasks: [(name: \"a\"), (name: \"b\")])";
        let (list, items) = scan_of(nested).tasks.unwrap();
        assert_eq!(&nested[list], "[(name: \"a\"), (name: \"b\")]");
        assert_eq!(items.iter().map(|r| &nested[r.clone()]).collect::<Vec<_>>(), ["(name: \"a\")", "(name: \"b\")"]);
    }
}
