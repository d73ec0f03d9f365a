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

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
        (line, col)
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

/// Renders as a miette report: the CLI draws it with source lines and carets.
#[derive(Debug)]
pub struct Report<'a> {
    diag: &'a Diagnostic,
    named: NamedSource<Arc<str>>,
}

impl<'a> Report<'a> {
    /// Prepares a diagnostic for miette's renderers.
    pub fn new(diag: &'a Diagnostic) -> Self {
        let named = NamedSource::new(diag.source.name.clone(), diag.source.text.clone()).with_language("ron");
        Report { diag, named }
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.diag.message)
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
        if self.diag.labels.is_empty() { None } else { Some(&self.named) }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.diag.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.diag.labels.iter().enumerate().map(|(i, l)| {
            let len = l.span.end.saturating_sub(l.span.start).max(1);
            let span = (l.span.start, len);
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
