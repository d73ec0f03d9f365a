//! Delivery of the notification outbox (`dagrun-history`'s `notifications` table): each due
//! row is sent to its sink — a Slack incoming webhook, a JSON webhook, or a shell command —
//! and recorded as delivered, as a failed attempt retried later with a jittered backoff, or
//! as given up after [`MAX_ATTEMPTS`]. Secrets (URLs, header values) are read from the
//! environment at delivery time and never appear in an error, a log line or the history.
//!
//! Layout: [`payload`] (the bodies, pure functions), `http` (Slack and webhook POSTs, the
//! headers variable, redacted errors), `command` (the command sink), `deliver` (due rows,
//! concurrency, the time budget, the daemon's loop).

mod command;
mod deliver;
mod http;
pub mod payload;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use dagrun_history::outbox::{MAX_ATTEMPTS, retry_delay_ms};
pub use deliver::{deliver_due, run_loop};
pub use payload::{WEBHOOK_VERSION, slack_payload, webhook_body};

/// Where sinks' environment variables are read from.
#[derive(Debug, Clone, Default)]
pub enum EnvSource {
    /// The process environment (what `dagrun run` and the daemon use).
    #[default]
    Process,
    /// These values only (tests, embedders).
    Map(Arc<HashMap<String, String>>),
}

impl EnvSource {
    /// A map of `(name, value)` pairs.
    pub fn map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> EnvSource {
        EnvSource::Map(Arc::new(pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()))
    }

    /// The value of `name`; unset and empty are the same.
    pub fn get(&self, name: &str) -> Option<String> {
        let v = match self {
            EnvSource::Process => std::env::var(name).ok(),
            EnvSource::Map(m) => m.get(name).cloned(),
        };
        v.filter(|v| !v.is_empty())
    }
}

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct DeliverOptions {
    /// The longest one attempt may take, from connecting to the end of the response (or the
    /// command's exit).
    pub timeout: Duration,
    /// The longest connecting may take.
    pub connect_timeout: Duration,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// Due rows taken per call.
    pub batch: usize,
    /// The whole call's time limit (`dagrun run` waits no longer after a run): attempts still
    /// in flight then are recorded as timed out (and retried later); rows not started stay due.
    pub budget: Option<Duration>,
    /// Where secrets come from.
    pub env: EnvSource,
}

impl Default for DeliverOptions {
    fn default() -> Self {
        DeliverOptions {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            concurrency: 8,
            batch: 200,
            budget: None,
            env: EnvSource::Process,
        }
    }
}

/// What one call of [`deliver_due`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Delivered now.
    pub delivered: usize,
    /// Failed now, retried later.
    pub retrying: usize,
    /// Failed for the last time now (listed by `dagrun runs --notifications`).
    pub gave_up: usize,
    /// Due but not attempted (the budget ran out first): still due.
    pub not_attempted: usize,
    /// Each failure now: the sink (`slack`, `webhook`, `command`) and the error, in the
    /// order they happened.
    pub errors: Vec<(&'static str, String)>,
    /// The history store could not be read or written (the rows stay as they were).
    pub store_error: Option<String>,
}

impl Summary {
    /// Whether nothing was due.
    pub fn is_empty(&self) -> bool {
        self.delivered + self.undelivered() == 0 && self.store_error.is_none()
    }

    /// Due rows that are not delivered after this call.
    pub fn undelivered(&self) -> usize {
        self.retrying + self.gave_up + self.not_attempted
    }

    /// Rows attempted.
    pub fn attempted(&self) -> usize {
        self.delivered + self.retrying + self.gave_up
    }
}

/// Why one attempt failed. The texts name environment variables and hosts, never a URL's path
/// or query, nor a header's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// A variable the sink needs is not set (or empty).
    #[error("${var} is not set in the environment of the process delivering notifications (`dagrun run`, the daemon)")]
    MissingEnv {
        /// The variable.
        var: String,
    },
    /// The URL variable holds no usable URL.
    #[error("${var} does not hold an http(s) URL ({why})")]
    BadUrl {
        /// The variable.
        var: String,
        /// Why (never the value).
        why: String,
    },
    /// A line of the headers variable is malformed.
    #[error("line {line} of ${var}: {why} (expected one `Name: value` per line)")]
    BadHeader {
        /// The variable.
        var: String,
        /// Its 1-based line number.
        line: usize,
        /// What is wrong (never the value).
        why: &'static str,
    },
    /// The receiver answered with a status other than 2xx.
    #[error("POST to ${var} ({host}): HTTP {status}{code}")]
    Status {
        /// The URL's variable.
        var: String,
        /// The host (and port, if given).
        host: String,
        /// The status code.
        status: u16,
        /// Slack's error code (e.g. ` (no_service)`), when it answered with one.
        code: String,
    },
    /// The request could not be made or timed out.
    #[error("POST to ${var} ({host}): {why}")]
    Send {
        /// The URL's variable.
        var: String,
        /// The host (and port, if given).
        host: String,
        /// What happened (redacted).
        why: String,
    },
    /// The command could not start, failed, or timed out.
    #[error("command `{command}` {why}")]
    Command {
        /// The command line (from the workflow, clipped).
        command: String,
        /// What happened.
        why: String,
    },
}

/// `2s`, `0.3s`: a duration in error texts.
pub(crate) fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{:.1}s", d.as_secs_f64()) }
}

/// At most `max` characters of the first line of `s`, `…` when cut.
pub(crate) fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let mut out: String = line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_first_lines_read_well() {
        assert_eq!((secs(Duration::from_secs(10)), secs(Duration::from_millis(300))), ("10s".into(), "0.3s".into()));
        assert_eq!(first_line("\n  boom: it broke \nmore", 100), "boom: it broke");
        assert_eq!(first_line("abcdef", 4), "abc…");
    }

    #[test]
    fn empty_variables_are_missing() {
        let env = EnvSource::map([("A", "x"), ("B", "")]);
        assert_eq!((env.get("A").as_deref(), env.get("B"), env.get("C")), (Some("x"), None, None));
    }

    #[test]
    fn errors_name_the_variable_and_host_only() {
        let e =
            AttemptError::Status { var: "HOOK".into(), host: "127.0.0.1:4567".into(), status: 500, code: "".into() };
        assert_eq!(e.to_string(), "POST to $HOOK (127.0.0.1:4567): HTTP 500");
        let e = AttemptError::BadHeader { var: "HDRS".into(), line: 2, why: "no `:`" };
        assert_eq!(e.to_string(), "line 2 of $HDRS: no `:` (expected one `Name: value` per line)");
    }
}
