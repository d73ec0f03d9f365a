//! What starts a workflow without a person at a terminal: a cron `schedule`, `triggers`
//! (a file landing, a webhook, another workflow's task outcome) and the `concurrency` policy.
//!
//! This module reads and validates them; the daemon (`dagrun-automate`) acts on them.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

use crate::diag::{Diagnostic, Source, did_you_mean};
use crate::model::RawWorkflow;
use crate::spans::Node;
use crate::{duration, partition};

/// The fields of `Cron(...)`; a bare string is the expression with every default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename = "Cron")]
pub struct CronDef {
    /// The cron expression: minute hour day-of-month month day-of-week.
    pub expr: String,
    /// What to run after the daemon was down (or the clock jumped) over missed ticks.
    #[serde(default)]
    pub catchup: Catchup,
    /// IANA time zone the expression is read in (default `"UTC"`).
    #[serde(default)]
    pub timezone: Option<String>,
}

/// What to do about ticks missed while the daemon was not running.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
pub enum Catchup {
    /// Skip them: only ticks from now on run.
    None,
    /// Run once for the most recent missed tick (the default).
    #[default]
    Latest,
    /// Run every missed tick, oldest first, but at most the `max` most recent ones (default 10).
    All {
        /// The most missed ticks run (1 to 1,000).
        #[serde(default = "default_max")]
        max: u32,
    },
}

fn default_max() -> u32 {
    10
}

/// The most missed ticks `All(max: N)` may run.
pub const MAX_CATCHUP: u32 = 1_000;

impl<'de> Deserialize<'de> for CronDef2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = CronDef2;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a cron expression such as \"0 3 * * 1\", or (expr: \"0 3 * * 1\", catchup: Latest)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<CronDef2, E> {
                Ok(CronDef2(CronDef { expr: s.to_owned(), catchup: Catchup::default(), timezone: None }))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<CronDef2, A::Error> {
                CronDef::deserialize(de::value::MapAccessDeserializer::new(m)).map(CronDef2)
            }
        }
        d.deserialize_any(V)
    }
}

/// `CronDef` read from either a bare string or its fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CronDef2(pub CronDef);

/// `Cron(...)` as written: a string or fields.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) enum RawSchedule {
    Cron(CronDef2),
}

/// One trigger as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum TriggerDef {
    /// `FileLanded(glob: "landing/*.csv", settle: "2s")`: a new or changed file (by content).
    FileLanded(FileLanded),
    /// `Webhook(name: "new-data", token_env: "NEW_DATA_TOKEN")`: an authenticated HTTP POST.
    Webhook(Webhook),
    /// `TaskOutcome(workflow: "drift", task: "check", when: Succeeded)`: another workflow's task.
    TaskOutcome(TaskOutcome),
}

/// A file matching `glob` (relative to the workflow file) appeared or changed.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename = "FileLanded")]
pub struct FileLanded {
    /// Which files; may use partition variables (`landing/{date}.csv`) to name the partition
    /// a file belongs to.
    pub glob: String,
    /// How long a file must stay unchanged before it counts as landed (default `"2s"`).
    #[serde(default)]
    pub settle: Option<String>,
}

/// An HTTP POST to `/hooks/<workflow>/<name>` with `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename = "Webhook")]
pub struct Webhook {
    /// The hook's name in its URL.
    pub name: String,
    /// The environment variable holding the secret token (read by the daemon).
    pub token_env: String,
}

/// Task `task` of workflow `workflow` (run by the same daemon) ended as `when` says.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename = "TaskOutcome")]
pub struct TaskOutcome {
    /// The other workflow's `name`.
    pub workflow: String,
    /// Its task.
    pub task: String,
    /// Which outcome fires (default `Succeeded`).
    #[serde(default)]
    pub when: When,
}

/// Which outcome of a task fires a [`TaskOutcome`] trigger: as written (`V` = [`ron::Value`]),
/// or validated ([`Outcome`], with a JSON value).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub enum When<V = ron::Value> {
    /// It ran (not a cache hit) and succeeded.
    #[default]
    Succeeded,
    /// It failed.
    Failed,
    /// Its gate refused the candidate.
    Refused,
    /// A monitoring check (`Drift` with `fail_on_drift`, `Performance` with
    /// `fail_on_regression`) raised an alert.
    Alerted,
    /// It ran and ended, whatever the outcome.
    Finished,
    /// It ran, succeeded, and its JSON output `output` has `equals` at `pointer`
    /// (RFC 6901, e.g. `"/drifted"`).
    Json {
        /// The task's output name.
        output: String,
        /// A JSON pointer into that file.
        pointer: String,
        /// The value that fires the trigger.
        equals: V,
    },
}

/// While a run of the workflow is in progress, what happens to new events.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
pub enum Concurrency {
    /// Queue them and run once more after the current run, for all of them together.
    #[default]
    Coalesce,
    /// Record them as skipped.
    Skip,
}

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The expression as written.
    pub expr: String,
    /// The parsed expression.
    pub cron: croner::Cron,
    /// Its time zone.
    pub timezone: chrono_tz::Tz,
    /// The catch-up policy.
    pub catchup: Catchup,
}

/// A validated trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A file landed.
    FileLanded {
        /// The glob as written (relative to the workflow directory; may hold partition variables).
        glob: String,
        /// Quiet time before a changed file counts.
        settle: Duration,
    },
    /// An authenticated webhook.
    Webhook(Webhook),
    /// Another workflow's task outcome.
    TaskOutcome {
        /// The other workflow's name.
        workflow: String,
        /// Its task.
        task: String,
        /// The outcome.
        when: Outcome,
    },
}

/// [`When`] with its JSON value converted.
pub type Outcome = When<serde_json::Value>;

/// Everything that starts a workflow by itself.
#[derive(Debug, Clone, Default)]
pub struct Automation {
    /// The cron schedule, if any.
    pub schedule: Option<Schedule>,
    /// The triggers, in file order.
    pub triggers: Vec<Trigger>,
    /// What happens to events while a run is in progress.
    pub concurrency: Concurrency,
}

impl Automation {
    /// Whether anything starts this workflow by itself.
    pub fn is_empty(&self) -> bool {
        self.schedule.is_none() && self.triggers.is_empty()
    }
}

/// The default quiet time of `FileLanded`.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// A cron parser for standard 5-field expressions and `@daily`-style aliases (no seconds).
pub fn cron_parser() -> croner::parser::CronParser {
    croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Disallowed).build()
}

const CRON_HELP: &str = "cron has 5 fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * 1\" \
     (03:00 every Monday), \"*/15 * * * *\" (every 15 minutes), or an alias: @hourly, @daily, @weekly, @monthly, @yearly";

/// Validates what the workflow file says about schedules, triggers and concurrency.
pub(crate) fn validate(
    source: &Source,
    workflow: &str,
    raw: &RawWorkflow,
    tasks: &[crate::Task],
    doc: Option<&Node>,
    diags: &mut Vec<Diagnostic>,
) -> Automation {
    let top = |f: &str| doc.and_then(|d| d.field(f));
    let sched = top("schedule");
    let schedule = raw.schedule.as_ref().and_then(|RawSchedule::Cron(CronDef2(def))| {
        let at = |f: &str| sched.and_then(|n| n.field(f)).map(|n| n.span.clone());
        let expr_span = at("expr").or_else(|| sched.and_then(|s| s.index(0)).map(|n| n.span.clone()));
        let expr_span = expr_span.or_else(|| sched.map(|n| n.span.clone()));
        schedule(source, def, expr_span, at("timezone"), at("catchup"), diags)
    });
    let mut triggers = Vec::new();
    let mut hooks: Vec<&str> = Vec::new();
    for (i, def) in raw.triggers.iter().enumerate() {
        let node = top("triggers").and_then(|t| t.index(i));
        let at = |f: &str| node.and_then(|n| n.field(f)).or(node).map(|n| n.span.clone());
        let before = diags.len();
        let trigger = match def {
            TriggerDef::FileLanded(f) => file_landed(source, f, tasks, &at, diags),
            TriggerDef::Webhook(w) => {
                if hooks.contains(&w.name.as_str()) {
                    diags.push(
                        Diagnostic::new(
                            "dagrun::duplicate-webhook",
                            format!("webhook `{}` is defined twice", w.name),
                            source,
                        )
                        .label(at("name"), "defined again here")
                        .help("webhook names must be unique within a workflow: rename one of them"),
                    );
                }
                hooks.push(&w.name);
                webhook(source, w, &at, diags)
            }
            TriggerDef::TaskOutcome(t) => task_outcome(source, workflow, t, &at, diags),
        };
        if diags.len() == before {
            triggers.extend(trigger);
        }
    }
    Automation { schedule, triggers, concurrency: raw.concurrency }
}

fn schedule(
    source: &Source,
    def: &CronDef,
    expr_span: Option<Range<usize>>,
    tz_span: Option<Range<usize>>,
    catchup_span: Option<Range<usize>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Schedule> {
    let never = |c: &croner::Cron| {
        // From a fixed instant, so validation does not depend on today's date; croner searches
        // years ahead (February 29 is found), and gives up on dates that do not exist.
        let start = chrono::DateTime::from_timestamp(946_684_800, 0).unwrap_or_default();
        c.find_next_occurrence(&start, false).is_err()
    };
    let cron = match cron_parser().parse(&def.expr) {
        Ok(c) if never(&c) => {
            diags.push(
                Diagnostic::new("dagrun::invalid-cron", format!("cron expression `{}` never fires", def.expr), source)
                    .label(expr_span, "no date matches")
                    .help(
                        "that day does not exist in that month (e.g. 31 February); \"L\" is the last day of the month",
                    ),
            );
            None
        }
        Ok(c) => Some(c),
        Err(e) => {
            diags.push(
                Diagnostic::new(
                    "dagrun::invalid-cron",
                    format!("invalid cron expression `{}`: {}", def.expr, cron_why(&def.expr, &e)),
                    source,
                )
                .label(expr_span, "not a cron expression")
                .help(CRON_HELP),
            );
            None
        }
    };
    let timezone = match def.timezone.as_deref() {
        None => Some(chrono_tz::UTC),
        // Valid tz names, but fixed offsets that never observe daylight saving time: almost
        // never what someone writing "EST" in New York means.
        Some(name @ ("EST" | "MST" | "HST")) => {
            let (city, fixed) = match name {
                "EST" => ("America/New_York", "Etc/GMT+5"),
                "MST" => ("America/Denver", "Etc/GMT+7"),
                _ => ("Pacific/Honolulu", "Etc/GMT+10"),
            };
            diags.push(
                Diagnostic::new("dagrun::unknown-timezone", format!("`{name}` is a fixed offset without daylight saving time"), source)
                    .label(tz_span.clone(), "not a place's time zone")
                    .help(format!("write the place, e.g. \"{city}\" (it follows daylight saving time), or \"{fixed}\" for the fixed offset")),
            );
            None
        }
        Some(name) => match chrono_tz::Tz::from_str(name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
                let help = match abbreviation(name).or_else(|| did_you_mean(name, names)) {
                    Some(s) => {
                        format!("did you mean \"{s}\"? time zones are IANA names such as \"Europe/Berlin\" or \"UTC\"")
                    }
                    None => "time zones are IANA names such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
                        .to_owned(),
                };
                diags.push(
                    Diagnostic::new("dagrun::unknown-timezone", format!("unknown time zone `{name}`"), source)
                        .label(tz_span, "not an IANA time zone")
                        .help(help),
                );
                None
            }
        },
    };
    if let Catchup::All { max } = def.catchup
        && !(1..=MAX_CATCHUP).contains(&max)
    {
        diags.push(
            Diagnostic::new(
                "dagrun::invalid-catchup",
                format!("`All(max: {max})` must run between 1 and {MAX_CATCHUP} missed ticks"),
                source,
            )
            .label(catchup_span, "out of range")
            .help("e.g. `catchup: All(max: 24)`; `Latest` runs only the most recent missed tick, `None` none"),
        );
        return None;
    }
    Some(Schedule { expr: def.expr.clone(), cron: cron?, timezone: timezone?, catchup: def.catchup })
}

/// The IANA zone people usually mean by a common abbreviation (which are not zone names: an
/// abbreviation does not say when daylight saving time starts).
fn abbreviation(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_uppercase().as_str() {
        "PST" | "PDT" | "PT" => "America/Los_Angeles",
        "MDT" | "MT" => "America/Denver",
        "CST" | "CDT" | "CT" => "America/Chicago",
        "EDT" | "ET" => "America/New_York",
        "BST" => "Europe/London",
        "CEST" => "Europe/Berlin",
        "IST" => "Asia/Kolkata",
        "JST" => "Asia/Tokyo",
        "AEST" | "AEDT" => "Australia/Sydney",
        _ => return None,
    })
}

/// croner's message without its type names, or what is wrong in our words.
fn cron_why(expr: &str, e: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    let fields = expr.split_whitespace().count();
    if let Some(alias) = expr.trim().strip_prefix('@') {
        return format!("`@{alias}` is not one of the aliases @hourly, @daily, @weekly, @monthly, @yearly");
    }
    if fields != 5 {
        return format!("it has {fields} field(s); a cron expression has 5");
    }
    match e {
        E::EmptyPattern => "it is empty".to_owned(),
        E::InvalidPattern(m) | E::IllegalCharacters(m) | E::ComponentError(m) => m
            .trim_end_matches('.')
            .replace("CronPattern contains", "it contains")
            .replace("CronPattern", "the expression"),
        e => e.to_string(),
    }
}

fn file_landed(
    source: &Source,
    f: &FileLanded,
    tasks: &[crate::Task],
    at: &dyn Fn(&str) -> Option<Range<usize>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Trigger> {
    let settle = match f.settle.as_deref() {
        None => DEFAULT_SETTLE,
        Some(s) => match duration::parse(s) {
            Ok(d) if d <= Duration::from_secs(3600) => d,
            Ok(_) | Err(_) => {
                diags.push(
                    Diagnostic::new("dagrun::invalid-duration", format!("invalid settle time `{s}`"), source)
                        .label(at("settle"), "not a duration up to 1h")
                        .help("the quiet time before a file counts as landed, e.g. \"2s\" or \"1m\" (at most \"1h\")"),
                );
                return None;
            }
        },
    };
    if let Some(why) = glob_problem(&f.glob) {
        diags.push(
            Diagnostic::new("dagrun::invalid-trigger-glob", format!("file trigger glob `{}` {why}", f.glob), source)
                .label(at("glob"), "invalid glob")
                .help("a glob relative to the workflow file's directory, inside it, e.g. \"landing/*.csv\" or \"landing/{date}.csv\""),
        );
        return None;
    }
    if let Some((task, output, path)) = own_output(&f.glob, tasks) {
        diags.push(
            Diagnostic::new(
                "dagrun::trigger-on-output",
                format!("file trigger glob `{}` matches output `{output}` of task `{task}` (`{path}`)", f.glob),
                source,
            )
            .label(at("glob"), "would fire on the workflow's own output")
            .help("every run would write that file and start the next run: narrow the glob (e.g. `landing/*.csv`) or write outputs elsewhere"),
        );
        return None;
    }
    Some(Trigger::FileLanded { glob: f.glob.clone(), settle })
}

/// The first output of the workflow that a trigger glob matches: (task, output, path).
pub fn own_output<'a>(glob: &str, tasks: &'a [crate::Task]) -> Option<(&'a str, &'a str, &'a str)> {
    let pattern = glob::Pattern::new(&normal(&watch_glob(glob))).ok()?;
    let opts = glob::MatchOptions { require_literal_separator: true, ..glob::MatchOptions::new() };
    tasks.iter().find_map(|t| {
        t.outputs.iter().find_map(|(name, path)| {
            let sample = normal(&partition::render(path, &sample_vars()));
            pattern.matches_with(&sample, opts).then_some((t.name.as_str(), name.as_str(), path.as_str()))
        })
    })
}

/// Whether `rel_path` (relative to the workflow directory) is, or can be, one of the outputs of
/// these tasks (partition variables match anything within a path segment).
pub fn is_output(tasks: &[crate::Task], rel_path: &str) -> bool {
    let path = normal(rel_path);
    let opts = glob::MatchOptions { require_literal_separator: true, ..glob::MatchOptions::new() };
    tasks.iter().flat_map(|t| t.outputs.values()).any(|out| {
        let escaped = glob::Pattern::escape(&normal(out));
        // Partition variables survive `escape` (braces are not special): turn them into `*`.
        glob::Pattern::new(&watch_glob(&escaped)).is_ok_and(|p| p.matches_with(&path, opts))
    })
}

/// A relative path or glob without `.` components and repeated `/` (`./out//x` is `out/x`), as
/// the watcher sees paths.
pub fn normal(path: &str) -> String {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/")
}

/// Plausible values of the partition variables, to see what a templated path can become.
fn sample_vars() -> std::collections::BTreeMap<&'static str, String> {
    [("partition", "p"), ("date", "2025-01-31"), ("year", "2025"), ("month", "01"), ("day", "31"), ("hour", "05")]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect()
}

/// Why a trigger glob cannot be watched, if it cannot.
fn glob_problem(glob: &str) -> Option<String> {
    let path = std::path::Path::new(glob);
    if glob.is_empty() {
        return Some("is empty".to_owned());
    }
    if path.is_absolute() || path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Some("leaves the workflow directory (absolute or with `..`)".to_owned());
    }
    let pattern = watch_glob(glob);
    if let Err(e) = glob::Pattern::new(&pattern) {
        return Some(format!("is not a valid glob: {}", e.msg));
    }
    if pattern.split('/').any(|c| c == ".dagrun") {
        return Some("watches the state directory `.dagrun`".to_owned());
    }
    None
}

/// The glob with partition variables (`{date}`, ...) replaced by `*`: what is watched.
pub fn watch_glob(glob: &str) -> String {
    let vars = partition::VARS;
    let mut out = glob.to_owned();
    for v in vars {
        out = out.replace(&format!("{{{v}}}"), "*");
    }
    out
}

fn webhook(
    source: &Source,
    w: &Webhook,
    at: &dyn Fn(&str) -> Option<Range<usize>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Trigger> {
    if !crate::validate::valid_name(&w.name) {
        diags.push(
            Diagnostic::new("dagrun::invalid-name", format!("invalid webhook name `{}`", w.name), source)
                .label(at("name"), "not a valid name")
                .help("webhook names are part of a URL: letters, digits, `_` and `-`, e.g. \"new-data\""),
        );
        return None;
    }
    // Upper case only: a lower-case "name" is far more likely a token pasted in by mistake
    // (which the daemon would then print in its warnings) than a real variable name.
    let env_ok = !w.token_env.is_empty()
        && !w.token_env.starts_with(|c: char| c.is_ascii_digit())
        && w.token_env.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    // Variables whose value anyone on the machine can read or guess are no secret.
    let public = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "LANG", "TERM", "HOSTNAME", "TMPDIR"];
    if env_ok && public.contains(&w.token_env.as_str()) {
        diags.push(
            Diagnostic::new("dagrun::invalid-token-env", format!("`{}` holds no secret", w.token_env), source)
                .label(at("token_env"), "a public variable")
                .help("name a variable that holds a secret token only, e.g. \"NEW_DATA_TOKEN\""),
        );
        return None;
    }
    if !env_ok {
        diags.push(
            Diagnostic::new(
                "dagrun::invalid-token-env",
                format!("`{}` is not an upper-case environment variable name", w.token_env),
                source,
            )
            .label(at("token_env"), "not a variable name")
            .help(
                "name the variable that holds the secret, in upper case, e.g. \"NEW_DATA_TOKEN\"; never write the token itself here",
            ),
        );
        return None;
    }
    Some(Trigger::Webhook(w.clone()))
}

fn task_outcome(
    source: &Source,
    own: &str,
    t: &TaskOutcome,
    at: &dyn Fn(&str) -> Option<Range<usize>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Trigger> {
    if t.workflow == own {
        diags.push(
            Diagnostic::new("dagrun::self-trigger", format!("workflow `{own}` triggers itself"), source)
                .label(at("workflow"), "this workflow")
                .help("a workflow started by its own outcome would run forever; make the follow-up work a task that depends on it"),
        );
        return None;
    }
    let when = match &t.when {
        When::Succeeded => Outcome::Succeeded,
        When::Failed => Outcome::Failed,
        When::Refused => Outcome::Refused,
        When::Alerted => Outcome::Alerted,
        When::Finished => Outcome::Finished,
        When::Json { output, pointer, equals } => {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                diags.push(
                    Diagnostic::new("dagrun::invalid-pointer", format!("`{pointer}` is not a JSON pointer"), source)
                        .label(at("when"), "here")
                        .help(format!("JSON pointers start with `/`, e.g. \"/{}\"", pointer.trim_start_matches('/'))),
                );
                return None;
            }
            let Ok(equals) = serde_json::to_value(equals) else {
                diags.push(
                    Diagnostic::new("dagrun::invalid-json", "`equals` is not a JSON value", source)
                        .label(at("when"), "here")
                        .help("compare with a number, a string, a bool, a list or a map with string keys"),
                );
                return None;
            };
            Outcome::Json { output: output.clone(), pointer: pointer.clone(), equals }
        }
    };
    Some(Trigger::TaskOutcome { workflow: t.workflow.clone(), task: t.task.clone(), when })
}

#[cfg(test)]
#[path = "automation_tests.rs"]
mod tests;
