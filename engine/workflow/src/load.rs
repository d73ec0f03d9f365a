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
        .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
        .with_default_extension(ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES)
}

/// Files at least this large are scanned for duplicate keys on a second thread while ron
/// reads them (ron's own depth limit keeps it from recursing too deep meanwhile).
const PARALLEL_SCAN_BYTES: usize = 256 * 1024;

/// The common case, a valid file, read once by ron and never into a span tree: `None` when
/// ron refuses it, when a map gives a key twice, or when the span reader cannot follow it
/// (then [`parse`] reads it again, with spans, to say exactly what is wrong where).
pub(crate) fn parse_valid(source: &Source) -> Option<Parsed> {
    let text = &*source.text;
    let base = if text.starts_with(spans::BOM) { spans::BOM.len() } else { 0 };
    // The duplicate-key scan also refuses too deep nesting, so ron never recurses into it: on
    // a large file the two run side by side (a thread costs less than the scan then).
    let read = || options().from_str::<RawWorkflow<TaskDef>>(&text[base..]);
    let (clean, full) = if text.len() < PARALLEL_SCAN_BYTES {
        let clean = spans::has_duplicate_keys(text) == Ok(false);
        (clean, clean.then(read))
    } else {
        std::thread::scope(|s| {
            let scan = s.spawn(|| spans::has_duplicate_keys(text) == Ok(false));
            let full = read();
            (scan.join().unwrap_or(false), Some(full))
        })
    };
    if !clean {
        return None;
    }
    let (raw, tasks) = full?.ok()?.split();
    // A check that reads how a value is spelled needs its span: `Deployed(...)` sources (ron
    // reads any struct name there) of the kinds that take them.
    if tasks.iter().any(|t| matches!(t.kind, TaskKind::Drift(_) | TaskKind::Performance(_) | TaskKind::Approval(_))) {
        return None;
    }
    Some(Parsed { raw: Some(raw), tasks: tasks.into_iter().map(Some).collect(), doc: None, diagnostics: Vec::new() })
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
