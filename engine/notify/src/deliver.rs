//! Delivering what is due: takes due rows from the outbox, makes a bounded number of attempts
//! at once within the per-attempt timeout and the call's budget, and records each outcome
//! (delivered; failed and retried after `retry_delay_ms`; given up after `MAX_ATTEMPTS`). Also
//! the daemon's loop around it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dagrun_history::{Delivery, History, outbox};
use dagrun_workflow::heal::NotifyDef;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::http::{self, Flavor};
use crate::{AttemptError, DeliverOptions, EnvSource, Summary, payload};

/// An attempt is not started with less time than this left in the budget.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// The daemon's loop looks at the outbox at least this often.
const LOOP_MAX_SLEEP_MS: i64 = 30_000;

/// Runs a (short) history call: on a multi-threaded runtime without holding up its other tasks.
fn db<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// What an attempt needs besides its row.
#[derive(Clone)]
struct Ctx {
    client: reqwest::Client,
    env: EnvSource,
}

/// Delivers the rows due at `now_ms` (at most `opts.batch`), `opts.concurrency` at a time, and
/// records every outcome in `history`. Never fails: problems are in the summary (and in the
/// rows' `last_error`).
pub async fn deliver_due(history: &History, now_ms: i64, opts: &DeliverOptions) -> Summary {
    let start = Instant::now();
    let deadline = opts.budget.map(|b| start + b);
    let mut summary = Summary::default();
    let due = match db(|| history.due(now_ms, opts.batch)) {
        Ok(d) => d,
        Err(e) => {
            summary.store_error = Some(e.to_string());
            return summary;
        }
    };
    if due.is_empty() {
        return summary;
    }
    let ctx = match http::client(opts.connect_timeout.min(opts.timeout)) {
        Ok(client) => Ctx { client, env: opts.env.clone() },
        Err(e) => {
            summary.store_error = Some(e);
            return summary;
        }
    };
    let mut queue = due.into_iter();
    let mut set = JoinSet::new();
    loop {
        while set.len() < opts.concurrency.max(1) {
            let Some(d) = queue.next() else { break };
            let left = deadline.map_or(opts.timeout, |dl| dl.saturating_duration_since(Instant::now()));
            if left < MIN_ATTEMPT {
                summary.not_attempted += 1 + queue.len();
                queue = Vec::new().into_iter();
                break;
            }
            let (ctx, limit) = (ctx.clone(), left.min(opts.timeout));
            set.spawn(async move {
                let result = attempt(&ctx, &d, limit).await;
                (d, result)
            });
        }
        let Some(joined) = set.join_next().await else { break };
        match joined {
            Ok((d, result)) => record(history, now_ms + start.elapsed().as_millis() as i64, &d, result, &mut summary),
            // A panicked attempt recorded nothing: the row is still due.
            Err(_) => summary.not_attempted += 1,
        }
    }
    summary
}

/// One attempt at one row.
async fn attempt(ctx: &Ctx, d: &Delivery, limit: Duration) -> Result<(), AttemptError> {
    let n = &d.notification;
    match &d.sink {
        NotifyDef::Slack(s) => {
            let body = payload::slack_payload(n).to_string();
            http::post(&ctx.client, &ctx.env, &s.webhook_env, None, body, limit, Flavor::Slack).await
        }
        NotifyDef::Webhook(w) => {
            let body = payload::webhook_body(n);
            let headers = w.headers_env.as_deref();
            http::post(&ctx.client, &ctx.env, &w.url_env, headers, body, limit, Flavor::Webhook).await
        }
        NotifyDef::Command(c) => crate::command::run(&c.run, &d.workflow_dir, n, payload::webhook_body(n), limit).await,
    }
}

/// Writes one outcome to the history and the summary.
fn record(history: &History, now_ms: i64, d: &Delivery, result: Result<(), AttemptError>, s: &mut Summary) {
    let written = match result {
        Ok(()) => {
            s.delivered += 1;
            db(|| history.delivered(d.id, now_ms))
        }
        Err(e) => {
            let attempt = d.attempts + 1;
            let retry = (attempt < outbox::MAX_ATTEMPTS)
                .then(|| now_ms.saturating_add(outbox::retry_delay_ms(attempt, fastrand::f64())));
            if retry.is_some() {
                s.retrying += 1;
            } else {
                s.gave_up += 1;
            }
            let text = e.to_string();
            let written = db(|| history.failed_attempt(d.id, &text, retry));
            s.errors.push((d.sink.label(), text));
            written
        }
    };
    if let Err(e) = written {
        s.store_error.get_or_insert_with(|| e.to_string());
    }
}

/// The daemon's deliverer: delivers what is due, then sleeps until the next row is due (at
/// most 30 s) or `wake` is notified (new rows), until `stop` turns true (or its sender is
/// dropped). `now_ms` is the wall clock; `report` hears of every round that did something.
pub async fn run_loop(
    history: Arc<History>,
    opts: DeliverOptions,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    now_ms: impl Fn() -> i64,
    mut report: impl FnMut(&Summary),
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let s = deliver_due(&history, now_ms(), &opts).await;
        if !s.is_empty() {
            report(&s);
        }
        if s.store_error.is_none() && s.attempted() >= opts.batch {
            continue; // a full batch: more may be due
        }
        // A row still due after a round that attempted nothing (a panicked attempt) waits a
        // second rather than spin.
        let least = if s.attempted() == 0 { 1_000 } else { 0 };
        let wait = match (&s.store_error, db(|| history.next_due())) {
            (None, Ok(Some(t))) => t.saturating_sub(now_ms()).clamp(least, LOOP_MAX_SLEEP_MS),
            (None, Ok(None)) => LOOP_MAX_SLEEP_MS,
            // The store is unusable now: look again a little later.
            _ => 5_000,
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = wake.notified() => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}
