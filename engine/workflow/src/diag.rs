//! Workflow diagnostics: one problem, the source it is in, labelled spans and a hint.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceCode};

/// The text of a workflow file with the name it is shown under.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as the user gave it.
    pub name: String,
    /// The whole file.
    pub text: Arc<str>,
}

impl Source {
    /// Wraps a file's text.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Source { name: name.into(), text: text.into() }
    }

    /// 1-based line and column (in characters) of a byte offset; lines end at `\n` only, like
    /// ron counts them. An offset inside a character counts as that character.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }

    /// Byte offset of a 1-based line and column (clamped to the text).
    pub fn offset_of(&self, line: usize, col: usize) -> usize {
        let mut offset = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let in_line = l.char_indices().nth(col.saturating_sub(1)).map_or(l.len(), |(b, _)| b);
                return offset + in_line;
            }
            offset += l.len();
        }
        self.text.len()
    }
}

/// [`Source::line_col`] of `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// One labelled place in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Byte range in the source.
    pub span: Range<usize>,
    /// Short text shown under the span.
    pub text: String,
}

/// One problem in a workflow file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// A stable code such as `dagrun::unknown-task` (documented in docs/workflow-format.md#validation-errors).
    pub code: &'static str,
    /// One-line description.
    pub message: String,
    /// Places in the source; the first is the primary one.
    pub labels: Vec<Label>,
    /// How to fix it.
    pub help: Option<String>,
    /// The file it is in.
    pub source: Source,
}

impl Diagnostic {
    /// A diagnostic with no labels yet.
    pub fn new(code: &'static str, message: impl Into<String>, source: &Source) -> Self {
        Diagnostic { code, message: message.into(), labels: Vec::new(), help: None, source: source.clone() }
    }

    /// Adds a labelled span (ignored when the span is unknown).
    pub fn label(mut self, span: Option<Range<usize>>, text: impl Into<String>) -> Self {
        if let Some(span) = span {
            self.labels.push(Label { span, text: text.into() });
        }
        self
    }

    /// Sets the hint.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:col` of the primary label, or just the file.
    pub fn location(&self) -> String {
        match self.labels.first() {
            Some(l) => {
                let (line, col) = self.source.line_col(l.span.start);
                format!("{}:{line}:{col}", self.source.name)
            }
            None => self.source.name.clone(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Source lines longer than this (in bytes) are not drawn: miette pads carets to the column and
/// panics past column 65,535, and a megabyte line helps no one. The location is named instead.
pub const MAX_SHOWN_LINE: usize = 1_000;

/// Renders as a miette report: the CLI draws it with source lines and carets.
#[derive(Debug)]
pub struct Report<'a> {
    diag: &'a Diagnostic,
    named: NamedSource<Arc<str>>,
    /// Whether the labelled lines are short enough to draw.
    snippet: bool,
}

impl<'a> Report<'a> {
    /// Prepares a diagnostic for miette's renderers.
    pub fn new(diag: &'a Diagnostic) -> Self {
        let named = NamedSource::new(diag.source.name.clone(), diag.source.text.clone()).with_language("ron");
        let text = &*diag.source.text;
        let snippet = !diag.labels.is_empty() && diag.labels.iter().all(|l| lines_are_short(text, &l.span));
        Report { diag, named, snippet }
    }
}

/// Whether the lines `span` touches, and one line of context on each side, are all short.
fn lines_are_short(text: &str, span: &Range<usize>) -> bool {
    let b = text.as_bytes();
    let start = span.start.min(b.len());
    let end = span.end.clamp(start, b.len());
    let nl_before = |to: usize| b[..to].iter().rposition(|&c| c == b'\n');
    let nl_after = |from: usize| b[from..].iter().position(|&c| c == b'\n').map(|i| from + i);
    let first = nl_before(start).map_or(0, |i| nl_before(i).map_or(0, |j| j + 1));
    let last = nl_after(end).map_or(b.len(), |i| nl_after(i + 1).unwrap_or(b.len()));
    b[first..last].split(|&c| c == b'\n').all(|line| line.len() <= MAX_SHOWN_LINE)
}

/// `span` within `text`, widened to whole characters and at least one byte where possible.
fn char_span(text: &str, span: &Range<usize>) -> (usize, usize) {
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = span.end.clamp(start, text.len());
    if end == start {
        end = text[start..].chars().next().map_or(start, |c| start + c.len_utf8());
    }
    while !text.is_char_boundary(end) {
        end += 1;
    }
    (start, (end - start).max(1))
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.snippet || self.diag.labels.is_empty() {
            write!(f, "{}", self.diag.message)
        } else {
            write!(f, "{}\n  at {} (the line is too long to show)", self.diag.message, self.diag.location())
        }
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        if self.snippet { Some(&self.named) } else { None }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if !self.snippet {
            return None;
        }
        let text = &*self.diag.source.text;
        Some(Box::new(self.diag.labels.iter().enumerate().map(move |(i, l)| {
            let span = char_span(text, &l.span);
            if i == 0 {
                LabeledSpan::new_primary_with_span(Some(l.text.clone()), span)
            } else {
                LabeledSpan::new_with_span(Some(l.text.clone()), span)
            }
        })))
    }
}

/// The closest candidate to a misspelt name, if one is close enough to suggest.
pub fn did_you_mean<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(wrong, c), c))
        .filter(|&(d, c)| d <= c.len().max(wrong.len()).div_ceil(3))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_round_trips() {
        let s = Source::new("w.ron", "ab\ncdé\nf");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(4), (2, 2));
        assert_eq!(s.line_col(7), (2, 4), "columns count characters, like ron and offset_of");
        assert_eq!(s.line_col(6), (2, 3), "inside `é`");
        assert_eq!(s.offset_of(2, 2), 4);
        assert_eq!(s.offset_of(3, 1), 8);
        assert_eq!(s.offset_of(9, 1), s.text.len());
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("trian", ["train", "deploy"]), Some("train"));
        assert_eq!(did_you_mean("zzz", ["train", "deploy"]), None);
    }
}
