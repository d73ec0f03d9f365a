//! Parses human durations such as `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"1d"`.

use std::time::Duration;

/// Parses `<number><unit>`; the number may be fractional (`"1.5h"`).
pub fn parse(text: &str) -> Result<Duration, &'static str> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or("missing unit")?;
    let (num, unit) = text.split_at(split);
    let value: f64 = num.parse().map_err(|_| "not a number")?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => return Err("unknown unit"),
    };
    if secs <= 0.0 {
        return Err("must be positive");
    }
    Duration::try_from_secs_f64(secs).map_err(|_| "too large")
}

/// A correct spelling of a duration written with a long unit name (`"10 minutes"` → `"10m"`).
pub fn suggest(text: &str) -> Option<String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = text.split_at(split);
    if num.is_empty() {
        return None;
    }
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => "ms",
        "sec" | "secs" | "second" | "seconds" => "s",
        "min" | "mins" | "minute" | "minutes" => "m",
        "hr" | "hrs" | "hour" | "hours" => "h",
        "day" | "days" => "d",
        "ms" | "s" | "m" | "h" | "d" => unit.trim(),
        _ => return None,
    };
    let s = format!("{num}{unit}");
    (s != text && parse(&s).is_ok()).then_some(s)
}

/// Formats a duration the way users write them (`"1.5s"`, `"250ms"`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("30"), Err("missing unit"));
        assert_eq!(parse("3 weeks"), Err("unknown unit"));
        assert_eq!(parse("0s"), Err("must be positive"));
    }

    #[test]
    fn suggests_short_units() {
        assert_eq!(suggest("10 minutes").as_deref(), Some("10m"));
        assert_eq!(suggest("2 Hours").as_deref(), Some("2h"));
        assert_eq!(suggest("30s"), None);
        assert_eq!(suggest("soon"), None);
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_secs(125)), "2m05s");
    }
}
