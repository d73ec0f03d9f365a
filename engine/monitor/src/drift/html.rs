//! The HTML report: one self-contained page (inline CSS, inline SVG, no script, no network):
//! the dataset decision at the top, then one row per column with its test, numbers, decision
//! and a small histogram (the reference as a filled step outline, the current as a line).
//! Every piece of text from the data (column names, categories, paths) is escaped. About 1 KB
//! per column, so 1,000 columns stay around a megabyte.

use std::fmt::Write;

use dagrun_contracts::drift::{ColumnResult, DriftReport, DriftStatus, Histogram, Sample};

use super::decide::fmt_num;

/// Width and height of a histogram, in CSS pixels.
const WIDTH: f64 = 180.0;
const HEIGHT: f64 = 40.0;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.4em}table{border-collapse:collapse;margin:1em 0}\
td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:middle}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.drift{color:#fff;background:#c62828}.no_drift{color:#fff;background:#2e7d32}\
.insufficient_data{color:#fff;background:#757575}.tag{padding:1px 6px;border-radius:3px;white-space:nowrap}\
.why{color:#555;font-size:.85em}.crit{font-weight:bold;color:#c62828}\
svg .r{fill:#90a4ae88;stroke:#607d8b}svg .c{fill:none;stroke:#ef6c00;stroke-width:1.5}\
.legend .r{color:#607d8b}.legend .c{color:#ef6c00}";

pub use dagrun_contracts::html::escape;

fn tag(status: DriftStatus) -> String {
    format!("<span class=\"tag {0}\">{0}</span>", status.as_str())
}

/// The whole page.
pub fn render(r: &DriftReport) -> String {
    let mut h = String::with_capacity(4096 + 1100 * (r.columns.len() + r.predictions.len()));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Drift report: {}</title><style>{STYLE}</style></head><body>\n",
        r.status
    );
    let _ = write!(h, "<h1>Drift report: {}</h1>\n<p>{}</p>\n", tag(r.status), escape(&r.reason));
    summary(&mut h, r);
    if !r.columns.is_empty() {
        h.push_str("<h2>Columns</h2>\n");
        table(&mut h, &r.columns);
    }
    if !r.predictions.is_empty() {
        h.push_str("<h2>Predictions</h2>\n");
        table(&mut h, &r.predictions);
    }
    h.push_str("</body></html>\n");
    h
}

fn summary(h: &mut String, r: &DriftReport) {
    h.push_str("<table>\n");
    for (name, d) in [("Reference", &r.reference), ("Current", &r.current)] {
        let _ = writeln!(h, "<tr><th>{name}</th><td>{} ({}, {} rows)</td></tr>", escape(&d.path), d.format, d.rows);
    }
    if let Some(m) = &r.model {
        let _ = writeln!(h, "<tr><th>Model</th><td>{}</td></tr>", escape(m));
    }
    let _ = writeln!(
        h,
        "<tr><th>Drifted share</th><td>{} (drifted when ≥ {}; {} of {} columns drifted)</td></tr>",
        fmt_num(r.share),
        fmt_num(r.drift_share),
        r.drifted_columns.len(),
        r.columns.len()
    );
    let lists = [
        ("Critical", &r.critical),
        ("Only in reference", &r.skipped.only_in_reference),
        ("Only in current", &r.skipped.only_in_current),
        ("Excluded", &r.skipped.excluded),
    ];
    for (name, list) in lists.into_iter().filter(|(_, l)| !l.is_empty()) {
        let names: Vec<String> = list.iter().map(|c| escape(c)).collect();
        let _ = writeln!(h, "<tr><th>{name}</th><td>{}</td></tr>", names.join(", "));
    }
    h.push_str(
        "</table>\n<p class=\"legend\"><span class=\"r\">■ reference</span> <span class=\"c\">▬ current</span></p>\n",
    );
}

fn table(h: &mut String, columns: &[ColumnResult]) {
    h.push_str(
        "<table><tr><th>Column</th><th>Test</th><th>Statistic</th><th>p-value</th><th>Threshold</th>\
         <th>Decision</th><th>Reference</th><th>Current</th><th>Distribution</th></tr>\n",
    );
    for c in columns {
        let opt = |x: Option<f64>| x.map(fmt_num).unwrap_or_else(|| "–".into());
        let critical = if c.critical { " <span class=\"crit\" title=\"critical\">!</span>" } else { "" };
        let _ = write!(
            h,
            "<tr><td>{}{critical}<div class=\"why\">{}</div></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}<div class=\"why\">{}</div></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>",
            escape(&c.column),
            c.kind.as_str(),
            c.test,
            opt(c.statistic),
            opt(c.p_value),
            fmt_num(c.threshold),
            tag(c.decision),
            escape(&c.reason),
            sample(&c.reference),
            sample(&c.current),
        );
        if let Some(hist) = &c.histogram {
            svg(h, hist);
        }
        h.push_str("</td></tr>\n");
    }
    h.push_str("</table>\n");
}

fn sample(s: &Sample) -> String {
    let m = s.missing;
    let parts: Vec<String> = [(m.empty, "empty"), (m.nan, "NaN"), (m.inf, "inf")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if parts.is_empty() {
        s.values.to_string()
    } else {
        format!("{}<div class=\"why\">missing: {}</div>", s.values, parts.join(", "))
    }
}

/// A coordinate with one decimal, without a trailing `.0`.
fn coord(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// A step outline of proportions over `bins` equal slots, as an SVG path.
fn step_path(proportions: &[f64], top: f64, closed: bool) -> String {
    let w = WIDTH / proportions.len().max(1) as f64;
    let mut d = format!("M0 {HEIGHT}");
    for (i, p) in proportions.iter().enumerate() {
        let y = HEIGHT - if top > 0.0 { p / top * (HEIGHT - 2.0) } else { 0.0 };
        let _ = write!(d, "V{}H{}", coord(y), coord(w * (i + 1) as f64));
    }
    let _ = write!(d, "V{HEIGHT}");
    if closed {
        d.push('Z');
    }
    d
}

fn svg(h: &mut String, hist: &Histogram) {
    let top = hist.reference.iter().chain(&hist.current).copied().fold(0.0, f64::max);
    let title = if hist.labels.is_empty() {
        match (hist.edges.first(), hist.edges.last()) {
            (Some(lo), Some(hi)) => format!("{} … {}", fmt_num(*lo), fmt_num(*hi)),
            _ => String::new(),
        }
    } else {
        escape(&hist.labels.join(", "))
    };
    let _ = write!(
        h,
        "<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\"><title>{title}</title><path class=\"r\" d=\"{}\"/><path class=\"c\" d=\"{}\"/></svg>",
        step_path(&hist.reference, top, true),
        step_path(&hist.current, top, false)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }

    #[test]
    fn step_paths_stay_in_the_box() {
        assert_eq!(step_path(&[0.5, 1.0], 1.0, true), "M0 40V21H90V2H180V40Z");
        assert_eq!(step_path(&[0.0, 0.25], 1.0, false), "M0 40V40H90V30.5H180V40");
    }
}
