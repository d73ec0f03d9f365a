//! Reads a workflow file: RON syntax and types via serde, task by task, so every error shows at once.

use std::path::Path;

use ron::error::{Error as RonError, SpannedError};

use crate::diag::{Diagnostic, Source, did_you_mean};
use crate::model::{FullWorkflow, RawWorkflow, TaskDef};
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

/// Parses `source`; syntax errors stop early, per-task type errors are all collected.
pub(crate) fn parse(source: &Source) -> Parsed {
    let text = &*source.text;
    let raw = match options().from_str::<RawWorkflow>(text) {
        Ok(raw) => raw,
        Err(e) => {
            return Parsed { raw: None, tasks: Vec::new(), doc: None, diagnostics: vec![ron_diag(source, 0, &e)] };
        }
    };
    // The file is valid RON; the span reader only fails on syntax it does not know,
    // and then we simply lose the precise locations.
    let doc = spans::parse(text).ok();
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
                diagnostics.push(ron_diag(source, node.span.start, &e));
                tasks.push(None);
            }
        }
    }
    if doc.is_none() && !raw.tasks.is_empty() {
        // Without spans we cannot split the tasks: read them all in one go instead.
        match options().from_str::<FullWorkflow>(text) {
            Ok(full) => tasks = full.tasks.into_iter().map(Some).collect(),
            Err(e) => diagnostics.push(ron_diag(source, 0, &e)),
        }
    }
    Parsed { raw: Some(raw), tasks, doc, diagnostics }
}

/// Turns a ron error found in `source[base..]` into a diagnostic pointing at the right place.
fn ron_diag(source: &Source, base: usize, e: &SpannedError) -> Diagnostic {
    let sub = Source::new("", &source.text[base..]);
    let start = base + sub.offset_of(e.span.start.line, e.span.start.col);
    let mut end = base + sub.offset_of(e.span.end.line, e.span.end.col);
    if end <= start {
        end = (start + 1).min(source.text.len().max(start));
    }
    let span = Some(start..end);
    let (code, message, label, help): (&str, String, &str, Option<String>) = match &e.code {
        RonError::NoSuchStructField { expected, found, outer } => {
            let suggestion = did_you_mean(found, expected.iter().copied());
            let mut help = match suggestion {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            help.push_str(&format!("{} accepts: {}", outer_name(outer), list(expected)));
            (
                "dagrun::unknown-field",
                format!("unknown field `{found}` in {}", outer_name(outer)),
                "unknown field",
                Some(help),
            )
        }
        RonError::MissingStructField { field, outer } => (
            "dagrun::missing-field",
            format!("missing field `{field}` in {}", outer_name(outer)),
            "this needs a field",
            Some(format!("add `{field}: ...` here")),
        ),
        RonError::DuplicateStructField { field, outer } => (
            "dagrun::duplicate-field",
            format!("field `{field}` is given twice in {}", outer_name(outer)),
            "second one here",
            Some("remove one of them".to_owned()),
        ),
        RonError::NoSuchEnumVariant { expected, found, .. } => {
            let mut help = match did_you_mean(found, expected.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            help.push_str(&format!("expected one of: {}", list(expected)));
            ("dagrun::unknown-variant", format!("unknown variant `{found}`"), "unknown variant", Some(help))
        }
        RonError::InvalidValueForType { expected, found } => {
            ("dagrun::wrong-type", format!("expected {expected}, found {found}"), "wrong type", None)
        }
        RonError::ExpectedDifferentStructName { expected, found } => (
            "dagrun::wrong-struct-name",
            format!("expected `{expected}(...)`, found `{found}(...)`"),
            "wrong name",
            Some(format!("write `{expected}(` or just `(`")),
        ),
        other => {
            let text = other.to_string();
            let mut chars = text.chars();
            let msg = match chars.next() {
                Some(c) => c.to_lowercase().chain(chars).collect(),
                None => text,
            };
            ("dagrun::syntax", format!("invalid RON: {msg}"), "here", None)
        }
    };
    let mut d = Diagnostic::new(code, message, source).label(span, label);
    d.help = help;
    d
}

fn outer_name(outer: &Option<String>) -> String {
    match outer {
        Some(o) => format!("`{o}`"),
        None => "this struct".to_owned(),
    }
}

fn list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Reads a file to text, naming it in the error.
pub(crate) fn read(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}
