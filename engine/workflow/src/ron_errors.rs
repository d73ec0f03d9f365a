//! Turns ron's parse errors into diagnostics a user can act on: which task, which field, what to write.

use ron::error::{Error as RonError, SpannedError};

use crate::diag::{Diagnostic, Source, did_you_mean};
use crate::spans::{Node, NodeKind};

/// An example of a correct value for each field, used in hints.
fn example(field: &str) -> Option<&'static str> {
    Some(match field {
        "name" => "name: \"train\"",
        "kind" => "kind: Command(run: \"python train.py\")",
        "run" => "run: \"python train.py\"",
        "plugin" => "plugin: \"plugins/train\"",
        "retries" => "retries: 3",
        "timeout" => "timeout: \"30s\"",
        "backoff" => "backoff: \"1s\"",
        "after" => "after: [\"prepare\"]",
        "inputs" => "inputs: {\"data\": File(\"data/train.csv\")}",
        "outputs" => "outputs: {\"model\": \"out/model.onnx\"}",
        "params" => "params: {\"learning_rate\": 0.1}",
        "env" => "env: {\"SEED\": \"42\"}",
        "tasks" => "tasks: [Task(name: \"train\", kind: Command(run: \"python train.py\"))]",
        "defaults" => "defaults: (retries: 1, timeout: \"1h\")",
        "model" => "model: \"model\" (the name of one of this task's inputs)",
        "data" => "data: \"test\" (the name of one of this task's inputs)",
        _ => return None,
    })
}

const TASK_KINDS: &str = "`Command(run: \"...\")`, `Wasm(plugin: \"...\")`, `OnnxEval(model: \"...\", data: \"...\")`, \
                          `OnnxPredict(data: \"...\", model: \"...\")`";
const INPUT_KINDS: &str = "`File(\"path\")`, `Glob(\"pattern\")`, `Output(\"task\", \"output\")`";

fn skip_ws(text: &str, off: usize) -> usize {
    let off = off.min(text.len());
    match text.get(off..) {
        Some(rest) => text.len() - rest.trim_start_matches(crate::spans::is_ron_whitespace).len(),
        None => off,
    }
}

/// The start of the character at byte `off` (which may be inside it).
fn char_start(text: &str, mut off: usize) -> usize {
    off = off.min(text.len());
    while !text.is_char_boundary(off) {
        off -= 1;
    }
    off
}

/// The deepest struct field whose value contains `off`.
fn field_at(node: &Node, off: usize) -> Option<(&str, &Node)> {
    let inner = |n: &'_ Node| n.span.start <= off && off < n.span.end;
    match &node.kind {
        NodeKind::Struct(fields) => fields
            .iter()
            .find(|f| inner(&f.value))
            .map(|f| field_at(&f.value, off).unwrap_or((f.name.as_str(), &f.value))),
        NodeKind::List(items) | NodeKind::Tuple(items) => {
            items.iter().find(|n| inner(n)).and_then(|n| field_at(n, off))
        }
        NodeKind::Map(entries) => entries.iter().find(|(_, v)| inner(v)).and_then(|(_, v)| field_at(v, off)),
        _ => None,
    }
}

/// The task (its node) containing `off`.
fn task_at(doc: &Node, off: usize) -> Option<&Node> {
    doc.field("tasks")?.items().iter().find(|n| n.span.start <= off && off < n.span.end)
}

/// A string literal that runs past the end of its line and ends right where ron gave up
/// (or never ends): almost always a missing closing quote.
fn unterminated_string(text: &str, err: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() && i <= err {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if i >= b.len() {
                    return Some(start);
                }
                let multiline = text[start..i].contains('\n');
                i += 1;
                if multiline && skip_ws(text, i) >= err {
                    return Some(start);
                }
            }
            _ => i += 1,
        }
    }
    None
}

fn what_was_expected(e: &RonError) -> Option<String> {
    Some(match e {
        RonError::ExpectedInteger | RonError::IntegerOutOfBounds => "a whole number".into(),
        RonError::ExpectedFloat => "a number".into(),
        RonError::ExpectedBoolean => "`true` or `false`".into(),
        RonError::ExpectedString => "a string in double quotes".into(),
        RonError::ExpectedArray => "a list `[...]`".into(),
        RonError::ExpectedMap => "a map `{...}`".into(),
        RonError::ExpectedStructLike | RonError::ExpectedNamedStructLike(_) => "a struct `(...)`".into(),
        RonError::ExpectedChar => "a character".into(),
        RonError::ExpectedUnit => "`()`".into(),
        RonError::InvalidValueForType { expected, .. } => expected.clone(),
        RonError::ExpectedDifferentLength { expected, .. } => expected.clone(),
        _ => return None,
    })
}

fn shown(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 40 {
        format!("{}…", line.chars().take(40).collect::<String>())
    } else {
        line.to_owned()
    }
}

fn list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Diagnoses a ron error found in `source.text[base..]`; `doc` is the whole file's span tree.
pub(crate) fn diagnose(source: &Source, base: usize, e: &SpannedError, doc: Option<&Node>) -> Diagnostic {
    let text = &*source.text;
    let sub = Source::new("", &text[base..]);
    let start = base + sub.offset_of(e.span.start.line, e.span.start.col);
    let at = char_start(text, skip_ws(text, start).min(text.len().saturating_sub(1)));
    let here = Some(at..at + 1);
    let task = doc.and_then(|d| task_at(d, at));
    let task_name = task.and_then(|t| t.field("name")).and_then(Node::as_str);
    let in_what = |outer: &Option<String>| match (outer.as_deref(), task_name) {
        (Some("Task"), Some(name)) => format!("task `{name}`"),
        (Some(o), _) => format!("`{o}`"),
        (None, _) => "this struct".to_owned(),
    };

    match &e.code {
        RonError::NoSuchStructField { expected, found, outer } => {
            let mut help = did_you_mean(found, expected.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            help.push_str(&format!(
                "{} accepts: {}",
                outer.as_deref().map_or("it".to_owned(), |o| format!("`{o}`")),
                list(expected)
            ));
            Diagnostic::new("dagrun::unknown-field", format!("unknown field `{found}` in {}", in_what(outer)), source)
                .label(Some(at..at + found.len()), "unknown field")
                .help(help)
        }
        RonError::MissingStructField { field, outer } => {
            let message = match (outer.as_deref(), task_name) {
                (Some("Task"), Some(name)) => format!("task `{name}` has no `{field}`"),
                (Some("Workflow"), _) => format!("the workflow has no `{field}`"),
                _ => format!("missing field `{field}` in {}", in_what(outer)),
            };
            let span = match (outer.as_deref(), task) {
                (Some("Task"), Some(t)) => t.field("name").map(|n| n.span.clone()).or(here),
                _ => here,
            };
            let d = Diagnostic::new("dagrun::missing-field", message, source).label(span, format!("needs `{field}`"));
            match example(field) {
                Some(ex) => d.help(format!("add `{ex}`")),
                None => d.help(format!("add `{field}: ...`")),
            }
        }
        RonError::DuplicateStructField { field, outer } => Diagnostic::new(
            "dagrun::duplicate-field",
            format!("field `{field}` is given twice in {}", in_what(outer)),
            source,
        )
        .label(Some(at..at + field.len()), "given again here")
        .help("remove one of them"),
        RonError::NoSuchEnumVariant { expected, found, .. } => {
            let (what, kinds) = if expected.contains(&"Command") {
                ("task kind", TASK_KINDS)
            } else if expected.contains(&"File") {
                ("input kind", INPUT_KINDS)
            } else {
                ("variant", "")
            };
            let mut help = did_you_mean(found, expected.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            if kinds.is_empty() {
                help.push_str(&format!("expected one of: {}", list(expected)));
            } else {
                help.push_str(&format!("{what}s: {kinds}"));
            }
            Diagnostic::new("dagrun::unknown-variant", format!("unknown {what} `{found}`"), source)
                .label(Some(at..at + found.len()), format!("not a {what}"))
                .help(help)
        }
        code => {
            if let Some(expected) = what_was_expected(code) {
                let field = doc.and_then(|d| field_at(d, at));
                let (span, found) = match field {
                    Some((_, v)) => (v.span.clone(), shown(&text[v.span.clone()])),
                    None => (at..at + 1, shown(&text[at..])),
                };
                let message = match field {
                    Some((name, _)) => format!("`{name}` expects {expected}, found `{found}`"),
                    None => format!("expected {expected}, found `{found}`"),
                };
                let d = Diagnostic::new("dagrun::wrong-type", message, source)
                    .label(Some(span), format!("expected {expected}"));
                return match field.and_then(|(name, _)| example(name)) {
                    Some(ex) => d.help(format!("write it like `{ex}`")),
                    None => d,
                };
            }
            if let Some(quote) = unterminated_string(text, at) {
                return Diagnostic::new("dagrun::syntax", "unterminated string", source)
                    .label(Some(quote..quote + 1), "this string is never closed")
                    .help("add the closing `\"` at the end of the string");
            }
            if matches!(code, RonError::ExpectedComma) {
                let before = text[..start].trim_end();
                let prev = before.len().saturating_sub(before.chars().next_back().map_or(0, char::len_utf8));
                return Diagnostic::new("dagrun::syntax", "missing `,`", source)
                    .label(Some(prev..before.len().max(prev + 1)), "add `,` after this")
                    .help("separate fields, list items and map entries with `,`");
            }
            let msg = code.to_string();
            let mut chars = msg.chars();
            let msg: String = chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default();
            Diagnostic::new("dagrun::syntax", format!("invalid RON: {msg}"), source)
                .label(here, "here")
                .help("check the brackets, quotes and commas around this point (format: docs/workflow-format.md)")
        }
    }
}
