//! The payoff report's renderings, from the history store's [`Report`]: a text table for the
//! terminal ([`table`]), versioned JSON ([`json`]), and one self-contained HTML page ([`html`])
//! whose charts ([`charts`]) are inline SVG drawn with `plotters` (no network, no script, no
//! font files). `dagrun report` prints these; the web UI embeds the same charts.

pub mod charts;
mod html;
mod table;

pub use dagrun_history::Report;
pub use html::html;
pub use table::table;

/// The report as pretty JSON (its fields in docs/report.md; `version` says which format).
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).expect("a report serializes") + "\n"
}

/// A duration for people: `45s`, `12m`, `3.5h`, `2.1d`.
pub fn duration(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    match s.abs() {
        x if x < 60.0 => format!("{}s", trim(s, 1)),
        x if x < 3600.0 => format!("{}m", trim(s / 60.0, 1)),
        x if x < 172_800.0 => format!("{}h", trim(s / 3600.0, 1)),
        _ => format!("{}d", trim(s / 86_400.0, 1)),
    }
}

/// `1 run`, `2 runs`.
pub fn plural(n: u64, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// A share as a percentage, or `n/a` when there was nothing to count.
pub fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "n/a".to_owned(), |s| format!("{}%", trim(s * 100.0, 1)))
}

/// `v` with at most `decimals` decimals, trailing zeros dropped.
pub fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

/// The window in words: `2026-10-29 → 2026-11-28 (30 days)`.
pub fn window(r: &Report) -> String {
    let days = (r.until_ms - r.since_ms).max(0) as f64 / 86_400_000.0;
    let from = dagrun_history::report::utc_day(r.since_ms);
    let to = dagrun_history::report::utc_day(r.until_ms);
    format!("{from} → {to} ({} days)", trim(days, 1))
}

/// What a block missed by, in words: `accuracy 0.62, needed 0.7 (short by 0.08)`.
pub fn missed(b: &dagrun_history::report::Block) -> Option<String> {
    let (metric, value, threshold, by) = (b.metric.as_ref()?, b.value?, b.threshold?, b.shortfall?);
    Some(format!("{metric} {}, needed {} (short by {})", trim(value, 4), trim(threshold, 4), trim(by, 4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(duration(45_000), "45s");
        assert_eq!(duration(12 * 60_000), "12m");
        assert_eq!(duration(3 * 3_600_000 + 30 * 60_000), "3.5h");
        assert_eq!(duration(3 * 86_400_000), "3d");
        assert_eq!((plural(1, "run"), plural(0, "run")), ("1 run".to_owned(), "0 runs".to_owned()));
        assert_eq!(percent(None), "n/a");
        assert_eq!(percent(Some(2.0 / 3.0)), "66.7%");
        assert_eq!(trim(-0.0001, 2), "0");
    }
}
