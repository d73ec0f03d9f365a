//! Times for people, in reasons and notifications: spans like `5h` or `1d2h`, instants like
//! `2026-11-28T12:03:00Z` (UTC), and the wall clock in Unix ms.

/// Now, in Unix ms.
pub(crate) fn now_ms() -> i64 {
    dagrun_cache::now_ms() as i64
}

/// A span, coarse: `40s`, `12m`, `5h`, `5h12m`, `1d`, `1d2h` (negative spans count as 0).
pub(crate) fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m:02}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// An instant in UTC, to the second: `2026-11-28T12:03:00Z`.
pub(crate) fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, mo, d, h) = dagrun_workflow::partition::civil(secs);
    let rem = secs.rem_euclid(3600);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{:02}:{:02}Z", rem / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_instants() {
        assert_eq!(span(-5), "0s");
        assert_eq!(span(40_999), "40s");
        assert_eq!(span(12 * 60_000 + 5_000), "12m");
        assert_eq!(span(5 * 3_600_000), "5h");
        assert_eq!(span(5 * 3_600_000 + 12 * 60_000), "5h12m");
        assert_eq!(span(86_400_000 + 60_000), "1d");
        assert_eq!(span(2 * 86_400_000 + 3 * 3_600_000), "2d3h");
        assert_eq!(utc(1_764_331_200_000), "2025-11-28T12:00:00Z");
        assert_eq!(utc(1_764_331_200_000 + 3_723_000), "2025-11-28T13:02:03Z");
    }
}
