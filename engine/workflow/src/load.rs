//! Reads a workflow file: RON syntax and types via serde, task by task, so every error shows at once.

use std::path::Path;

use crate::diag::{Diagnostic, Source};
use crate::model::{RawWorkflow, TaskDef};
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

/// Parses `source`; syntax errors stop early, per-task type errors are all collected.
pub(crate) fn parse(source: &Source) -> Parsed {
    let text = &*source.text;
    // The span reader fails on invalid syntax (and on RON it does not know): then we simply
    // lose the precise locations, never the errors themselves.
    let doc = spans::parse(text).ok();
    let raw = match options().from_str::<RawWorkflow>(text) {
        Ok(raw) => raw,
        Err(e) => {
            let diagnostics = vec![diagnose(source, 0, &e, doc.as_ref())];
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
        match options().from_str::<RawWorkflow<TaskDef>>(text) {
            Ok(full) => tasks = full.tasks.into_iter().map(Some).collect(),
            Err(e) => diagnostics.push(diagnose(source, 0, &e, doc.as_ref())),
        }
    }
    Parsed { raw: Some(raw), tasks, doc, diagnostics }
}

/// Reads a file to text, naming it in the error.
pub(crate) fn read(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}
