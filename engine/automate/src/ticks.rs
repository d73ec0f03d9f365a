//! Cron evaluation: the next tick of a schedule, the ticks due since the last one handled (with
//! the catch-up policy bounding how many run), and the partition a tick closes.

use chrono::{DateTime, TimeZone, Utc};
use dagrun_workflow::Workflow;
use dagrun_workflow::automation::{Catchup, Schedule};

/// What is due at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Ticks to run, oldest first (Unix ms).
    pub fire: Vec<i64>,
    /// Ticks missed and not run by the catch-up policy (a lower bound when `more` is set).
    pub skipped: u64,
    /// Whether even more ticks were missed than were counted.
    pub more: bool,
    /// The newest tick at or before `now`: the mark to remember.
    pub mark: i64,
}

/// The most missed ticks counted (beyond it, `Due::more` is set).
const COUNT_LIMIT: u64 = 10_000;

/// `ms` in the schedule's time zone, cut to the whole second (croner keeps the fraction of the
/// instant it starts from, which would give every look a tick of its own).
fn at(s: &Schedule, ms: i64) -> DateTime<chrono_tz::Tz> {
    let utc = Utc.timestamp_opt(ms.div_euclid(1000), 0).single().unwrap_or_default();
    utc.with_timezone(&s.timezone)
}

/// The first tick strictly after `after_ms`, if the expression has one.
pub fn next_after(s: &Schedule, after_ms: i64) -> Option<i64> {
    s.cron.find_next_occurrence(&at(s, after_ms), false).ok().map(|t| t.timestamp_millis())
}

/// The ticks in `(last_ms, now_ms]`, newest first, at most `limit`.
fn before(s: &Schedule, last_ms: i64, now_ms: i64, limit: u64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut cursor = at(s, now_ms);
    let mut inclusive = true;
    while (out.len() as u64) < limit {
        let Ok(t) = s.cron.find_previous_occurrence(&cursor, inclusive) else { break };
        let ms = t.timestamp_millis();
        if ms <= last_ms {
            break;
        }
        out.push(ms);
        cursor = t;
        inclusive = false;
    }
    out
}

/// What to run at `now_ms` when ticks up to `last_ms` were handled. A clock that jumped
/// backwards fires nothing (no tick at or before the mark fires twice).
pub fn due(s: &Schedule, last_ms: i64, now_ms: i64) -> Due {
    if now_ms <= last_ms {
        return Due { fire: Vec::new(), skipped: 0, more: false, mark: last_ms };
    }
    let run = match s.catchup {
        Catchup::None => 0,
        Catchup::Latest => 1,
        Catchup::All { max } => u64::from(max),
    };
    let mut missed = before(s, last_ms, now_ms, COUNT_LIMIT.max(run) + 1);
    let more = missed.len() as u64 > COUNT_LIMIT.max(run);
    if more {
        missed.pop();
    }
    let Some(&newest) = missed.first() else {
        return Due { fire: Vec::new(), skipped: 0, more: false, mark: last_ms };
    };
    // A tick exactly at `now` is on time, not missed: it runs under every policy.
    let on_time = usize::from(newest == now_ms);
    let take = (run as usize).max(on_time).min(missed.len());
    let mut fire: Vec<i64> = missed[..take].to_vec();
    fire.reverse();
    Due { fire, skipped: (missed.len() - take) as u64, more, mark: newest }
}

/// The partition(s) a tick at `tick_ms` closes, one key per time scheme of the workflow's
/// partitioned tasks: the latest partition that has ended by then ("03:00 daily runs
/// yesterday"). Empty for an unpartitioned workflow (the run takes its defaults).
pub fn closed_partitions(wf: &Workflow, tick_ms: i64) -> Vec<String> {
    let mut keys = Vec::new();
    for scheme in wf.used_schemes().into_values() {
        if !scheme.is_time() {
            continue;
        }
        if let Some(p) = scheme.complete_before(tick_ms.div_euclid(1000)).pop() {
            keys.push(p.key);
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_workflow::automation::cron_parser;

    fn sched(expr: &str, catchup: Catchup, tz: chrono_tz::Tz) -> Schedule {
        Schedule { expr: expr.into(), cron: cron_parser().parse(expr).unwrap(), timezone: tz, catchup }
    }

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn next_tick_of_a_weekly_schedule_in_utc_and_in_a_time_zone() {
        let s = sched("0 3 * * 1", Catchup::Latest, chrono_tz::UTC);
        // 2025-03-05 is a Wednesday: next Monday 03:00 UTC.
        assert_eq!(next_after(&s, ms("2025-03-05T12:00:00Z")), Some(ms("2025-03-10T03:00:00Z")));
        assert_eq!(next_after(&s, ms("2025-03-10T03:00:00Z")), Some(ms("2025-03-17T03:00:00Z")));
        let berlin = sched("0 3 * * 1", Catchup::Latest, chrono_tz::Europe::Berlin);
        assert_eq!(next_after(&berlin, ms("2025-03-05T12:00:00Z")), Some(ms("2025-03-10T02:00:00Z")));
        // Summer time: 03:00 in Berlin is 01:00 UTC.
        assert_eq!(next_after(&berlin, ms("2025-07-01T00:00:00Z")), Some(ms("2025-07-07T01:00:00Z")));
        let daily = sched("@daily", Catchup::Latest, chrono_tz::UTC);
        assert_eq!(next_after(&daily, ms("2025-03-05T12:00:00Z")), Some(ms("2025-03-06T00:00:00Z")));
    }

    #[test]
    fn catchup_policies_bound_what_runs_after_downtime() {
        let last = ms("2025-03-01T00:00:00Z");
        let now = ms("2025-03-05T12:00:00Z"); // 4 daily ticks missed: 2nd..5th
        let latest = due(&sched("@daily", Catchup::Latest, chrono_tz::UTC), last, now);
        assert_eq!(latest.fire, vec![ms("2025-03-05T00:00:00Z")]);
        assert_eq!((latest.skipped, latest.more, latest.mark), (3, false, ms("2025-03-05T00:00:00Z")));
        let none = due(&sched("@daily", Catchup::None, chrono_tz::UTC), last, now);
        assert_eq!((none.fire.len(), none.skipped), (0, 4));
        let all = due(&sched("@daily", Catchup::All { max: 3 }, chrono_tz::UTC), last, now);
        assert_eq!(all.fire, vec![ms("2025-03-03T00:00:00Z"), ms("2025-03-04T00:00:00Z"), ms("2025-03-05T00:00:00Z")]);
        assert_eq!(all.skipped, 1);
    }

    #[test]
    fn a_tick_exactly_now_runs_even_with_catchup_none() {
        let s = sched("@hourly", Catchup::None, chrono_tz::UTC);
        let d = due(&s, ms("2025-03-05T11:00:00Z"), ms("2025-03-05T12:00:00Z"));
        assert_eq!((d.fire, d.skipped), (vec![ms("2025-03-05T12:00:00Z")], 0));
        // Nothing due between ticks; nothing when the clock went backwards.
        assert!(due(&s, ms("2025-03-05T12:00:00Z"), ms("2025-03-05T12:30:00Z")).fire.is_empty());
        let back = due(&s, ms("2025-03-05T12:00:00Z"), ms("2025-03-05T09:00:00Z"));
        assert_eq!((back.fire.len(), back.mark), (0, ms("2025-03-05T12:00:00Z")));
    }

    #[test]
    fn ticks_are_whole_instants_whatever_the_fraction_of_now() {
        let s = sched("* * * * *", Catchup::Latest, chrono_tz::UTC);
        let d = due(&s, ms("2025-03-05T11:59:00Z"), ms("2025-03-05T12:00:00.270Z"));
        assert_eq!(d.fire, vec![ms("2025-03-05T12:00:00Z")]);
        // Looking again a moment later finds nothing new.
        assert!(due(&s, d.mark, ms("2025-03-05T12:00:00.274Z")).fire.is_empty());
        assert_eq!(next_after(&s, ms("2025-03-05T12:00:00.500Z")), Some(ms("2025-03-05T12:01:00Z")));
    }

    #[test]
    fn a_clock_jumping_years_ahead_is_bounded() {
        let s = sched("* * * * *", Catchup::All { max: 5 }, chrono_tz::UTC);
        let d = due(&s, ms("2020-01-01T00:00:00Z"), ms("2025-01-01T00:00:30Z"));
        assert_eq!(d.fire.len(), 5);
        assert!(d.more && d.skipped >= COUNT_LIMIT - 5);
        assert_eq!(*d.fire.last().unwrap(), ms("2025-01-01T00:00:00Z"));
    }

    #[test]
    fn a_tick_closes_the_previous_partition() {
        let src = r#"Workflow(name: "w", partitions: {"day": Daily(start: "2025-01-01")},
            tasks: [Task(name: "t", kind: Command(run: "true"), partitioned: "day")])"#;
        let wf = Workflow::from_source(dagrun_workflow::Source::new("w.ron", src), "/wf".into()).unwrap();
        assert_eq!(closed_partitions(&wf, ms("2025-03-05T03:00:00Z")), ["2025-03-04"]);
        assert_eq!(closed_partitions(&wf, ms("2025-03-05T00:00:00Z")), ["2025-03-04"]);
        let plain = r#"Workflow(name: "w", tasks: [Task(name: "t", kind: Command(run: "true"))])"#;
        let wf = Workflow::from_source(dagrun_workflow::Source::new("w.ron", plain), "/wf".into()).unwrap();
        assert!(closed_partitions(&wf, ms("2025-03-05T03:00:00Z")).is_empty());
    }
}
