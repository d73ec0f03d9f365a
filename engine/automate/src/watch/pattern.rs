//! Trigger globs: which files a `FileLanded` glob selects, which directory to watch for it, and
//! the partition variables (`{date}`, `{partition}`, ...) a landed file's path pins down.

use std::collections::BTreeMap;

use dagrun_workflow::automation::watch_glob;
use dagrun_workflow::partition::{VARS, parse_time};

/// A trigger glob compiled for matching paths relative to the workflow directory.
#[derive(Debug, Clone)]
pub(crate) struct SpecGlob {
    pattern: glob::Pattern,
    /// The literal directories before the first wildcard, `/`-joined (`""`: the directory itself).
    base: String,
    /// Whether matches can lie deeper than directly in `base`.
    recursive: bool,
}

/// `*`, `?` and `[..]` stay within a path segment; hidden names need a literal `.`.
const MATCH: glob::MatchOptions =
    glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: true };

impl SpecGlob {
    /// Compiles `glob` as written (partition variables become `*`).
    pub(crate) fn new(glob: &str) -> Result<SpecGlob, String> {
        let normal = normalize(glob);
        if normal.is_empty() {
            return Err("the glob is empty".to_owned());
        }
        let watched = watch_glob(&normal);
        let pattern = glob::Pattern::new(&watched).map_err(|e| format!("not a valid glob: {}", e.msg))?;
        let segments: Vec<&str> = watched.split('/').collect();
        let literal = segments.iter().take_while(|s| !s.contains(['*', '?', '['])).count();
        let base_len = literal.min(segments.len() - 1);
        let base = segments[..base_len].join("/");
        let recursive = segments.len() - base_len > 1;
        Ok(SpecGlob { pattern, base, recursive })
    }

    /// Whether the file at `rel` (`/`-separated, relative to the workflow directory) is selected.
    /// Nothing inside a `.dagrun` directory ever is.
    pub(crate) fn matches(&self, rel: &str) -> bool {
        !rel.split('/').any(|s| s == ".dagrun") && self.pattern.matches_with(rel, MATCH)
    }

    /// The directory to watch, relative to the workflow directory (`""`: the directory itself).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Whether the base directory must be watched (and scanned) recursively.
    pub(crate) fn recursive(&self) -> bool {
        self.recursive
    }
}

/// The glob without `.` and empty segments (`./landing//*.csv` is `landing/*.csv`).
fn normalize(glob: &str) -> String {
    glob.split('/').filter(|s| !s.is_empty() && *s != ".").collect::<Vec<_>>().join("/")
}

/// The partition variables a templated glob pins down for this path, e.g. glob
/// `landing/{date}.csv`, path `landing/2025-03-05.csv` -> `{"date": "2025-03-05"}`. `None` when
/// the path does not match (a variable appearing twice must take the same value both times).
///
/// `{partition}` matches one or more characters other than `/`; `{date}` is `YYYY-MM-DD`,
/// `{year}` `YYYY`, `{month}` `01`-`12`, `{day}` `01`-`31`, `{hour}` `00`-`23`, all digits.
/// `*`, `?`, `[..]` and `**` match as in the watched glob; everything else literally.
pub fn partition_vars(glob: &str, rel_path: &str) -> Option<BTreeMap<&'static str, String>> {
    let toks = tokenize(&normalize(glob));
    let path: Vec<char> = rel_path.chars().collect();
    let mut bound = Vec::new();
    matches(&toks, &path, &mut bound).then(|| bound.into_iter().collect())
}

/// A string `Scheme::find` accepts for these variables: `{partition}` as is; `{date}` (with
/// `{hour}`) as `2025-03-05` / `2025-03-05T07`; `{year}` + `{month}` (+ `{day}`, + `{hour}`) as
/// `2025-03-01` etc. `None` if the variables do not name a partition, disagree with each other
/// (`{year}` not the year of `{date}`) or name a day that does not exist.
pub fn partition_instant(vars: &BTreeMap<&'static str, String>) -> Option<String> {
    if let Some(p) = vars.get("partition") {
        return Some(p.clone());
    }
    let get = |k: &str| vars.get(k).map(String::as_str);
    let date = match get("date") {
        Some(d) => {
            let agree = |k: &str, range: std::ops::Range<usize>| get(k).is_none_or(|v| d.get(range) == Some(v));
            if !(agree("year", 0..4) && agree("month", 5..7) && agree("day", 8..10)) {
                return None;
            }
            d.to_owned()
        }
        None => {
            let (year, month) = (get("year")?, get("month")?);
            if get("hour").is_some() && get("day").is_none() {
                return None;
            }
            format!("{year}-{month}-{}", get("day").unwrap_or("01"))
        }
    };
    let instant = match get("hour") {
        Some(h) => format!("{date}T{h}"),
        None => date,
    };
    parse_time(&instant).is_ok().then_some(instant)
}

/// One element of a glob with partition variables.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: any run of non-`/` characters.
    Any,
    /// `?`: one non-`/` character.
    One,
    /// `[..]` / `[!..]`: one non-`/` character in (or not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**/` at the start of a segment: zero or more whole directories.
    Dirs,
    /// A trailing `**`: everything that is left.
    Rest,
    /// `{date}` etc.
    Var(&'static str),
}

fn tokenize(glob: &str) -> Vec<Tok> {
    let chars: Vec<char> = glob.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let at_segment_start = i == 0 || chars[i - 1] == '/';
        let (tok, len) = match chars[i] {
            '*' if at_segment_start && chars.get(i + 1) == Some(&'*') => match chars.get(i + 2) {
                Some('/') => (Tok::Dirs, 3),
                None => (Tok::Rest, 2),
                Some(_) => (Tok::Any, 2),
            },
            '*' => (Tok::Any, 1),
            '?' => (Tok::One, 1),
            '[' => class(&chars[i..]).unwrap_or((Tok::Lit('['), 1)),
            '{' => var(&chars[i..]).unwrap_or((Tok::Lit('{'), 1)),
            c => (Tok::Lit(c), 1),
        };
        toks.push(tok);
        i += len;
    }
    toks
}

/// `[abc]`, `[a-z]`, `[!a]` (a `]` right after `[` or `[!` is a member), and its length.
fn class(chars: &[char]) -> Option<(Tok, usize)> {
    let negated = chars.get(1) == Some(&'!');
    let start = if negated { 2 } else { 1 };
    let close = start + 1 + chars.get(start + 1..)?.iter().position(|&c| c == ']')?;
    let body = &chars[start..close];
    let mut ranges = Vec::new();
    let mut j = 0;
    while j < body.len() {
        if j + 2 < body.len() && body[j + 1] == '-' {
            ranges.push((body[j], body[j + 2]));
            j += 3;
        } else {
            ranges.push((body[j], body[j]));
            j += 1;
        }
    }
    Some((Tok::Class { negated, ranges }, close + 1))
}

/// `{name}` for a known partition variable, and its length.
fn var(chars: &[char]) -> Option<(Tok, usize)> {
    let close = chars.iter().position(|&c| c == '}')?;
    let name: String = chars[1..close].iter().collect();
    let name = VARS.iter().find(|v| **v == name)?;
    Some((Tok::Var(name), close + 1))
}

/// Whether `toks` match all of `s`, binding variables in `bound` (left as they were on failure).
fn matches(toks: &[Tok], s: &[char], bound: &mut Vec<(&'static str, String)>) -> bool {
    let Some((tok, rest)) = toks.split_first() else { return s.is_empty() };
    let segment = s.iter().position(|&c| c == '/').unwrap_or(s.len());
    match tok {
        Tok::Lit(c) => s.first() == Some(c) && matches(rest, &s[1..], bound),
        Tok::Any => (0..=segment).rev().any(|n| matches(rest, &s[n..], bound)),
        Tok::One => segment >= 1 && matches(rest, &s[1..], bound),
        Tok::Class { negated, ranges } => {
            let Some(&c) = s.first().filter(|&&c| c != '/') else { return false };
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated && matches(rest, &s[1..], bound)
        }
        Tok::Dirs => {
            let ends = s.iter().enumerate().filter(|(_, c)| **c == '/').map(|(i, _)| i + 1);
            std::iter::once(0).chain(ends).any(|n| matches(rest, &s[n..], bound))
        }
        Tok::Rest => !s.is_empty(),
        Tok::Var(name) => match_var(name, rest, s, segment, bound),
    }
}

fn match_var(
    name: &'static str,
    rest: &[Tok],
    s: &[char],
    segment: usize,
    bound: &mut Vec<(&'static str, String)>,
) -> bool {
    let candidates: Vec<usize> = match bound.iter().find(|(k, _)| *k == name) {
        Some((_, v)) => {
            let v: Vec<char> = v.chars().collect();
            return s.starts_with(&v) && matches(rest, &s[v.len()..], bound);
        }
        None if name == "partition" => (1..=segment).rev().collect(),
        None => var_len(name).into_iter().filter(|&n| n <= segment).collect(),
    };
    for n in candidates {
        let value: String = s[..n].iter().collect();
        if !valid_value(name, &value) {
            continue;
        }
        bound.push((name, value));
        if matches(rest, &s[n..], bound) {
            return true;
        }
        bound.pop();
    }
    false
}

/// The length of a time variable's value.
fn var_len(name: &str) -> Option<usize> {
    match name {
        "date" => Some(10),
        "year" => Some(4),
        "month" | "day" | "hour" => Some(2),
        _ => None,
    }
}

/// Whether `value` has the shape (and range) of variable `name`.
fn valid_value(name: &str, value: &str) -> bool {
    let number = |v: &str, lo: u32, hi: u32| {
        v.bytes().all(|b| b.is_ascii_digit()) && v.parse::<u32>().is_ok_and(|n| (lo..=hi).contains(&n))
    };
    match name {
        "partition" => !value.is_empty() && !value.contains('/'),
        "year" => value.len() == 4 && number(value, 0, 9999),
        "month" => number(value, 1, 12),
        "day" => number(value, 1, 31),
        "hour" => number(value, 0, 23),
        "date" => {
            let parts: Vec<&str> = value.split('-').collect();
            matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2
                && number(y, 0, 9999) && number(m, 1, 12) && number(d, 1, 31))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(glob: &str, path: &str) -> Option<Vec<(&'static str, String)>> {
        partition_vars(glob, path).map(|m| m.into_iter().collect())
    }

    fn v(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    #[test]
    fn base_directory_and_recursion() {
        let g = |s: &str| {
            let g = SpecGlob::new(s).unwrap();
            (g.base().to_owned(), g.recursive())
        };
        assert_eq!(g("landing/*.csv"), ("landing".into(), false));
        assert_eq!(g("landing/{date}.csv"), ("landing".into(), false));
        assert_eq!(g("*.csv"), ("".into(), false));
        assert_eq!(g("a/b/data.csv"), ("a/b".into(), false));
        assert_eq!(g("./landing//x/*.csv"), ("landing/x".into(), false));
        assert_eq!(g("landing/{date}/*.csv"), ("landing".into(), true));
        assert_eq!(g("data/**/*.csv"), ("data".into(), true));
        assert_eq!(g("[ab]/x.csv"), ("".into(), true));
        assert!(SpecGlob::new("").is_err());
        assert!(SpecGlob::new("a/[b").is_err());
    }

    #[test]
    fn glob_matching_stays_within_segments() {
        let g = SpecGlob::new("landing/*.csv").unwrap();
        assert!(g.matches("landing/a.csv"));
        assert!(!g.matches("landing/sub/a.csv"));
        assert!(!g.matches("landing/.a.csv"), "hidden files (temporaries) need a literal dot");
        assert!(!g.matches("landing/a.csv.tmp"));
        let g = SpecGlob::new("data/**/*.csv").unwrap();
        assert!(g.matches("data/a.csv"));
        assert!(g.matches("data/x/y/a.csv"));
        assert!(!g.matches("data/.dagrun/a.csv"));
        assert!(!SpecGlob::new("**/*.csv").unwrap().matches(".dagrun/x/a.csv"));
        assert!(SpecGlob::new("landing/{date}.csv").unwrap().matches("landing/2025-03-05.csv"));
    }

    #[test]
    fn dates_and_parts_of_dates() {
        assert_eq!(vars("landing/{date}.csv", "landing/2025-03-05.csv"), Some(vec![("date", "2025-03-05".into())]));
        assert_eq!(
            vars("raw/{year}/{month}/{day}/{hour}.json", "raw/2025/03/05/07.json"),
            Some(vec![("day", "05".into()), ("hour", "07".into()), ("month", "03".into()), ("year", "2025".into())])
        );
        assert_eq!(vars("landing/{date}.csv", "landing/2025-3-05.csv"), None, "digits of the right length");
        assert_eq!(vars("landing/{date}.csv", "landing/2025-13-05.csv"), None);
        assert_eq!(vars("landing/{date}.csv", "landing/20250305.csv"), None);
        assert_eq!(vars("landing/{date}.csv", "landing/2025-03-0x.csv"), None);
        assert_eq!(vars("raw/{year}/{hour}.json", "raw/2025/24.json"), None);
        assert_eq!(vars("raw/{year}/{month}.json", "raw/25/03.json"), None);
    }

    #[test]
    fn partition_is_one_segment_and_literals_match_exactly() {
        assert_eq!(vars("in/{partition}.csv", "in/eu-west.csv"), Some(vec![("partition", "eu-west".into())]));
        assert_eq!(vars("in/{partition}.csv", "in/a/b.csv"), None);
        assert_eq!(vars("in/{partition}.csv", "in/.csv"), None);
        assert_eq!(vars("in/{partition}/data.csv", "in/us/data.csv"), Some(vec![("partition", "us".into())]));
        assert_eq!(vars("in/{partition}.csv", "IN/eu.csv"), None);
        assert_eq!(vars("in/{partition}.csv", "in/eu.csv.bak"), None);
        assert_eq!(vars("in/{date}.csv", "other/2025-03-05.csv"), None);
        // A longest-first match of `{partition}` backtracks to let the literal match.
        assert_eq!(vars("in/{partition}.csv.gz", "in/a.csv.csv.gz"), Some(vec![("partition", "a.csv".into())]));
    }

    #[test]
    fn wildcards_around_variables() {
        assert_eq!(vars("in/*_{date}.csv", "in/sales_eu_2025-03-05.csv"), Some(vec![("date", "2025-03-05".into())]));
        assert_eq!(vars("in/**/{date}.csv", "in/a/b/2025-03-05.csv"), Some(vec![("date", "2025-03-05".into())]));
        assert_eq!(vars("in/**/{date}.csv", "in/2025-03-05.csv"), Some(vec![("date", "2025-03-05".into())]));
        assert_eq!(vars("in/{date}_v?.csv", "in/2025-03-05_v2.csv"), Some(vec![("date", "2025-03-05".into())]));
        assert_eq!(vars("in/{date}_[ab].csv", "in/2025-03-05_b.csv"), Some(vec![("date", "2025-03-05".into())]));
        assert_eq!(vars("in/{date}_[!ab].csv", "in/2025-03-05_b.csv"), None);
        assert_eq!(vars("in/**", "in/x/y"), Some(vec![]));
        assert_eq!(vars("in/*.csv", "in/x.csv"), Some(vec![]), "no variables: matches with none bound");
        assert_eq!(vars("in/{unknown}.csv", "in/{unknown}.csv"), Some(vec![]), "unknown braces are literal");
    }

    #[test]
    fn a_variable_used_twice_must_agree() {
        let g = "in/{date}/{date}.csv";
        assert_eq!(vars(g, "in/2025-03-05/2025-03-05.csv"), Some(vec![("date", "2025-03-05".into())]));
        assert_eq!(vars(g, "in/2025-03-05/2025-03-06.csv"), None);
    }

    #[test]
    fn instants_scheme_find_accepts() {
        assert_eq!(partition_instant(&v(&[("partition", "eu")])).as_deref(), Some("eu"));
        assert_eq!(partition_instant(&v(&[("date", "2025-03-05")])).as_deref(), Some("2025-03-05"));
        assert_eq!(partition_instant(&v(&[("date", "2025-03-05"), ("hour", "07")])).as_deref(), Some("2025-03-05T07"));
        assert_eq!(partition_instant(&v(&[("year", "2025"), ("month", "03")])).as_deref(), Some("2025-03-01"));
        let ymd = v(&[("year", "2025"), ("month", "03"), ("day", "05"), ("hour", "23")]);
        assert_eq!(partition_instant(&ymd).as_deref(), Some("2025-03-05T23"));
        let agreeing = v(&[("date", "2025-03-05"), ("year", "2025"), ("month", "03")]);
        assert_eq!(partition_instant(&agreeing).as_deref(), Some("2025-03-05"));
    }

    #[test]
    fn variables_that_name_no_partition() {
        assert_eq!(partition_instant(&v(&[])), None);
        assert_eq!(partition_instant(&v(&[("year", "2025")])), None);
        assert_eq!(partition_instant(&v(&[("month", "03"), ("day", "05")])), None);
        assert_eq!(partition_instant(&v(&[("hour", "07")])), None);
        assert_eq!(partition_instant(&v(&[("year", "2025"), ("month", "03"), ("hour", "07")])), None);
        assert_eq!(partition_instant(&v(&[("date", "2025-02-30")])), None, "no such day");
        assert_eq!(partition_instant(&v(&[("date", "2025-03-05"), ("year", "2024")])), None, "disagree");
        assert_eq!(partition_instant(&v(&[("date", "2025-03-05"), ("day", "06")])), None);
    }

    #[test]
    fn vars_round_trip_through_scheme_find() {
        use dagrun_workflow::partition::{Scheme, SchemeDef, TimeRangeDef};
        let monthly =
            Scheme::from_def(&SchemeDef::Monthly(TimeRangeDef { start: "2025-01".into(), end: None })).unwrap();
        let vars = partition_vars("m/{year}-{month}.csv", "m/2025-03.csv").unwrap();
        assert_eq!(monthly.find(&partition_instant(&vars).unwrap()).unwrap().key, "2025-03");
        let hourly =
            Scheme::from_def(&SchemeDef::Hourly(TimeRangeDef { start: "2025-01-01".into(), end: None })).unwrap();
        let vars = partition_vars("h/{date}/{hour}.csv", "h/2025-03-05/07.csv").unwrap();
        assert_eq!(hourly.find(&partition_instant(&vars).unwrap()).unwrap().key, "2025-03-05T07");
    }
}
