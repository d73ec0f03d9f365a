//! Draws workflow diagnostics with miette: file, line, column, the offending line and a hint.

use std::io::IsTerminal;

use dagrun_workflow::{Diagnostic, Report};
use miette::{GraphicalReportHandler, GraphicalTheme};

use crate::env;

/// Whether to use colour on stderr.
pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os(env::NO_COLOR).is_none()
}

/// Renders diagnostics, then a one-line count.
pub fn diagnostics(diags: &[Diagnostic]) -> String {
    let theme = if color() { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
    let mut out = String::new();
    for d in diags {
        let _ = handler.render_report(&mut out, &Report::new(d));
        out.push('\n');
    }
    let file = diags.first().map_or("workflow", |d| d.source.name.as_str());
    let n = diags.len();
    out.push_str(&format!("error: {file} is invalid: {n} problem{}\n", if n == 1 { "" } else { "s" }));
    out
}
