//! Partition schemes: hourly, daily, weekly and monthly time partitions, and static lists.
//!
//! A partition has a key (`2025-01-31`, `2025-01-31T05`, `2025-01`, `eu`), a time range for
//! time schemes, and template variables (`{partition}`, `{date}`, `{year}`, `{month}`, `{day}`,
//! `{hour}`) used in input paths, output paths and string params.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A partition scheme as written in the workflow: `Daily(start: "2025-01-01", end: "2025-03-31")`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub enum SchemeDef {
    /// One partition per hour.
    Hourly(TimeRangeDef),
    /// One partition per day.
    Daily(TimeRangeDef),
    /// One partition per 7 days, starting on `start`'s weekday.
    Weekly(TimeRangeDef),
    /// One partition per calendar month.
    Monthly(TimeRangeDef),
    /// One partition per listed key, e.g. `List(["eu", "us"])`.
    List(Vec<String>),
}

/// `(start: "2025-01-01", end: "2025-03-31")`; `end` is optional (open-ended, up to now).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename = "Range")]
pub struct TimeRangeDef {
    /// First partition: `YYYY-MM-DD` or `YYYY-MM-DDTHH`.
    pub start: String,
    /// Last partition (inclusive), if the range is closed.
    #[serde(default)]
    pub end: Option<String>,
}

/// The unit of a time scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// 1 hour.
    Hour,
    /// 1 day.
    Day,
    /// 7 days.
    Week,
    /// A calendar month.
    Month,
}

/// A validated scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// Time partitions from `start` to `end` (Unix seconds, UTC; `end` = start of the last one).
    Time {
        /// Step.
        unit: Unit,
        /// Start of the first partition.
        start: i64,
        /// Start of the last partition, if closed.
        end: Option<i64>,
    },
    /// Static keys.
    List(Vec<String>),
}

/// One partition of a scheme.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// Its key (part of cache keys and instance names).
    pub key: String,
    /// Start of its time range (Unix seconds) or its position in a list.
    pub start: i64,
    /// End (exclusive) of its time range, or position + 1 in a list.
    pub end: i64,
}

impl Partition {
    /// Template variables: `partition`, and for time partitions `date`, `year`, `month`, `day`, `hour`.
    pub fn vars(&self, scheme: &Scheme) -> BTreeMap<&'static str, String> {
        let mut vars = BTreeMap::from([("partition", self.key.clone())]);
        if let Scheme::Time { .. } = scheme {
            let (y, m, d, h) = civil(self.start);
            vars.insert("date", format!("{y:04}-{m:02}-{d:02}"));
            vars.insert("year", format!("{y:04}"));
            vars.insert("month", format!("{m:02}"));
            vars.insert("day", format!("{d:02}"));
            vars.insert("hour", format!("{h:02}"));
        }
        vars
    }
}

/// Replaces `{name}` for every known variable; unknown `{...}` are left as written. One pass:
/// a value is never itself rendered (it runs for every path of every instance).
pub fn render(template: &str, vars: &BTreeMap<&'static str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let name = after.find('}').map(|end| &after[..end]);
        match name.and_then(|n| Some((n, vars.get(n)?))) {
            Some((n, value)) => {
                out.push_str(value);
                rest = &after[n.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The partition variables a template may use, without braces.
pub const VARS: [&str; 6] = ["partition", "date", "year", "month", "day", "hour"];

/// Whether a template uses any partition variable.
pub fn is_templated(template: &str) -> bool {
    template.match_indices('{').any(|(at, _)| {
        let rest = &template[at + 1..];
        VARS.iter().any(|v| rest.strip_prefix(v).is_some_and(|r| r.starts_with('}')))
    })
}

/// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day, hour) of a Unix time (UTC).
pub fn civil(t: i64) -> (i64, u32, u32, u32) {
    let days = t.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (t.rem_euclid(86_400) / 3600) as u32)
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH` or `YYYY-MM` to Unix seconds (UTC).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}` is not a date: write YYYY-MM-DD (or YYYY-MM-DDTHH for hours, YYYY-MM for months)");
    let (date, hour) = match s.split_once('T') {
        Some((d, h)) => (d, h.parse::<u32>().ok().filter(|h| *h < 24).ok_or_else(bad)?),
        None => (s, 0),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let (y, m, d) = match parts.as_slice() {
        [y, m, d] => (y.parse::<i64>(), m.parse::<u32>(), d.parse::<u32>()),
        [y, m] => (y.parse::<i64>(), m.parse::<u32>(), Ok(1)),
        _ => return Err(bad()),
    };
    let (Ok(y), Ok(m), Ok(d)) = (y, m, d) else { return Err(bad()) };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || parts[0].len() != 4 {
        return Err(bad());
    }
    let t = days_from_civil(y, m, d) * 86_400 + i64::from(hour) * 3600;
    if civil(t).1 != m {
        return Err(format!("`{s}` is not a valid date (month {m:02} has no day {d})"));
    }
    Ok(t)
}

/// The end (exclusive, Unix seconds) of the period that a `YYYY-MM-DDTHH`, `YYYY-MM-DD` or
/// `YYYY-MM` value names: its hour, day or month. E.g. `backfill --to 2025-02` covers February.
pub fn parse_period_end(s: &str) -> Result<i64, String> {
    let start = parse_time(s)?;
    Ok(match (s.contains('T'), s.len()) {
        (true, _) => start + 3600,
        (false, 7) => add_months(start, 1),
        (false, _) => start + 86_400,
    })
}

fn add_months(t: i64, n: i64) -> i64 {
    let (y, m, _, _) = civil(t);
    let total = y * 12 + i64::from(m) - 1 + n;
    days_from_civil(total.div_euclid(12), (total.rem_euclid(12) + 1) as u32, 1) * 86_400
}

impl Unit {
    fn step(self, t: i64) -> i64 {
        match self {
            Unit::Hour => t + 3600,
            Unit::Day => t + 86_400,
            Unit::Week => t + 7 * 86_400,
            Unit::Month => add_months(t, 1),
        }
    }

    /// The key of the partition starting at `t`.
    fn key(self, t: i64) -> String {
        let (y, m, d, h) = civil(t);
        match self {
            Unit::Hour => format!("{y:04}-{m:02}-{d:02}T{h:02}"),
            Unit::Day | Unit::Week => format!("{y:04}-{m:02}-{d:02}"),
            Unit::Month => format!("{y:04}-{m:02}"),
        }
    }

    fn align(self, t: i64) -> i64 {
        match self {
            Unit::Hour => t - t.rem_euclid(3600),
            Unit::Day | Unit::Week => t - t.rem_euclid(86_400),
            Unit::Month => add_months(t, 0),
        }
    }
}

/// Whether a list key can stand as one path component and in a file name.
fn plain_key(key: &str) -> bool {
    !matches!(key, "" | "." | "..") && !key.contains(['/', '\\']) && !key.chars().any(char::is_control)
}

impl Scheme {
    /// Validates a scheme as written.
    pub fn from_def(def: &SchemeDef) -> Result<Scheme, String> {
        let time = |unit: Unit, r: &TimeRangeDef| -> Result<Scheme, String> {
            let start = unit.align(parse_time(&r.start)?);
            let end = r.end.as_deref().map(parse_time).transpose()?.map(|e| unit.align(e));
            if let Some(e) = end
                && e < start
            {
                return Err(format!("`end` ({}) is before `start` ({})", unit.key(e), unit.key(start)));
            }
            Ok(Scheme::Time { unit, start, end })
        };
        match def {
            SchemeDef::Hourly(r) => time(Unit::Hour, r),
            SchemeDef::Daily(r) => time(Unit::Day, r),
            SchemeDef::Weekly(r) => time(Unit::Week, r),
            SchemeDef::Monthly(r) => time(Unit::Month, r),
            SchemeDef::List(items) if items.is_empty() => Err("a partition list needs at least one key".to_owned()),
            SchemeDef::List(items) => match items.iter().find(|k| !plain_key(k)) {
                Some(bad) => Err(format!(
                    "partition key {bad:?} cannot name a file: keys go into output paths and instance names, so \
                     they are not empty, `.` or `..`, and hold no `/`, `\\` or control characters"
                )),
                None => Ok(Scheme::List(items.clone())),
            },
        }
    }

    /// Every partition that starts in `[from, to]` (Unix seconds), within the scheme's range.
    /// List schemes ignore the time range and return every key.
    pub fn between(&self, from: i64, to: i64) -> Vec<Partition> {
        match self {
            Scheme::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, k)| Partition { key: k.clone(), start: i as i64, end: i as i64 + 1 })
                .collect(),
            Scheme::Time { unit, start, end } => {
                let last = end.map_or(to, |e| e.min(to));
                let mut out = Vec::new();
                let mut t = *start;
                while t <= last {
                    let next = unit.step(t);
                    if t >= from {
                        out.push(Partition { key: unit.key(t), start: t, end: next });
                    }
                    t = next;
                }
                out
            }
        }
    }

    /// The partitions whose time range has ended by `now` (for a list: every key).
    pub fn complete_before(&self, now: i64) -> Vec<Partition> {
        match self {
            Scheme::List(_) => self.between(0, 0),
            Scheme::Time { .. } => {
                let mut all = self.between(i64::MIN, now);
                all.retain(|p| p.end <= now);
                all
            }
        }
    }

    /// The partition of this scheme with this key, or containing the instant it names.
    pub fn find(&self, key: &str) -> Option<Partition> {
        match self {
            Scheme::List(items) => items.iter().position(|k| k == key).map(|i| Partition {
                key: key.to_owned(),
                start: i as i64,
                end: i as i64 + 1,
            }),
            Scheme::Time { .. } => {
                let t = parse_time(key).ok()?;
                self.between(i64::MIN, t).into_iter().rev().find(|p| p.start <= t && t < p.end)
            }
        }
    }

    /// Whether this is a time scheme.
    pub fn is_time(&self) -> bool {
        matches!(self, Scheme::Time { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templated_means_a_whole_partition_variable_in_braces() {
        for t in ["out/{date}.csv", "{partition}", "a/{x}/{hour}", "{{day}}", "{year}{month}"] {
            assert!(is_templated(t), "{t}");
        }
        for t in ["out/data.csv", "{", "{date", "date}", "{dates}", "{ date}", "{x}", "{}", "out/{"] {
            assert!(!is_templated(t), "{t}");
        }
    }

    fn daily(start: &str, end: Option<&str>) -> Scheme {
        Scheme::from_def(&SchemeDef::Daily(TimeRangeDef { start: start.into(), end: end.map(Into::into) })).unwrap()
    }

    #[test]
    fn dates_round_trip() {
        let t = parse_time("2024-02-29").unwrap();
        assert_eq!(civil(t), (2024, 2, 29, 0));
        assert_eq!(parse_time("2025-02-29").unwrap_err(), "`2025-02-29` is not a valid date (month 02 has no day 29)");
        assert_eq!(civil(parse_time("2025-01-31T05").unwrap()), (2025, 1, 31, 5));
        assert!(parse_time("31/01/2025").is_err());
    }

    #[test]
    fn daily_partitions_in_a_range() {
        let s = daily("2025-01-01", Some("2025-12-31"));
        assert_eq!(s.between(i64::MIN, i64::MAX).len(), 365);
        let jan = s.between(parse_time("2025-01-30").unwrap(), parse_time("2025-02-02").unwrap());
        let keys: Vec<&str> = jan.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["2025-01-30", "2025-01-31", "2025-02-01", "2025-02-02"]);
        assert_eq!(s.find("2025-03-04").unwrap().key, "2025-03-04");
        let vars = jan[1].vars(&s);
        assert_eq!(render("data/{year}/{month}/{date}.csv", &vars), "data/2025/01/2025-01-31.csv");
        assert_eq!(render("{{date}}/{nope}/{year", &vars), "{2025-01-31}/{nope}/{year");
        assert_eq!(render("{date}{date}", &vars), "2025-01-312025-01-31");
        assert_eq!(render("", &vars), "");
    }

    #[test]
    fn weekly_and_monthly() {
        let w = Scheme::from_def(&SchemeDef::Weekly(TimeRangeDef { start: "2025-01-06".into(), end: None })).unwrap();
        assert_eq!(w.find("2025-01-15").unwrap().key, "2025-01-13");
        let m = Scheme::from_def(&SchemeDef::Monthly(TimeRangeDef {
            start: "2025-01".into(),
            end: Some("2025-12".into()),
        }))
        .unwrap();
        let all = m.between(i64::MIN, i64::MAX);
        assert_eq!(all.len(), 12);
        assert_eq!(all[1].key, "2025-02");
        assert_eq!(all[1].end - all[1].start, 28 * 86_400);
    }

    #[test]
    fn latest_complete_partition() {
        let s = daily("2025-01-01", None);
        let now = parse_time("2025-01-10T13").unwrap();
        assert_eq!(s.complete_before(now).last().unwrap().key, "2025-01-09");
    }

    #[test]
    fn period_end_covers_the_hour_day_or_month_named() {
        let t = |s: &str| parse_time(s).unwrap();
        assert_eq!(parse_period_end("2025-02"), Ok(t("2025-03-01")));
        assert_eq!(parse_period_end("2024-12"), Ok(t("2025-01-01")));
        assert_eq!(parse_period_end("2024-02-29"), Ok(t("2024-03-01")));
        assert_eq!(parse_period_end("2025-01-31T23"), Ok(t("2025-02-01")));
        assert!(parse_period_end("2025-13").is_err());
    }
}
