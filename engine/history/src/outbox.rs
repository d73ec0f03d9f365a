//! The notification outbox: every notification is written here (one row per sink that wants
//! it) before anyone tries to deliver it, so none is lost to a crash or a failing receiver;
//! deliverers take due rows, and record success, a retry time, or a final failure.

use serde::{Deserialize, Serialize};

use dagrun_workflow::heal::{NotifyDef, NotifyEvent};

/// One notification, as every sink renders it (Slack text and blocks, the webhook JSON, a
/// command's stdin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// What happened.
    pub event: NotifyEvent,
    /// The workflow's name.
    pub workflow: String,
    /// The run it is about, if any.
    pub run_id: Option<String>,
    /// When it happened (Unix ms).
    pub at_ms: i64,
    /// One line, e.g. "self-heal: approval needed for churn (model a1b2c3d4)".
    pub title: String,
    /// The numbers, as name/value pairs in display order.
    pub facts: Vec<Fact>,
    /// The command a person runs to act, e.g. `dagrun approve 20261128T1203-ab12`.
    pub action: Option<String>,
    /// Event-specific structured details (documented per event in docs/notifications.md).
    pub details: serde_json::Value,
}

/// A name and its value, e.g. `("accuracy", "0.912 (champion 0.874)")`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// The name.
    pub name: String,
    /// The value, formatted.
    pub value: String,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet (maybe retried later).
    Pending,
    /// Delivered.
    Delivered,
    /// Given up after the last retry.
    Failed,
}

/// One notification for one sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Its row id.
    pub id: i64,
    /// The notification.
    pub notification: Notification,
    /// The sink (environment variable names only: secrets are read at delivery).
    pub sink: NotifyDef,
    /// The workflow's directory (where a `Command` sink runs).
    pub workflow_dir: std::path::PathBuf,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// Not before (Unix ms).
    pub next_ms: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

use rusqlite::{Row, Transaction, params};

use crate::{History, HistoryError};

/// Attempts before a delivery is given up: with [`retry_delay_ms`] between them, the last one
/// comes about 2½ hours after the first (a receiver down for two hours loses nothing).
pub const MAX_ATTEMPTS: u32 = 12;

/// The delay before retry `attempt` (1-based): 5 s doubling up to 1 h, with ±20% jitter from
/// `jitter` (a number in [0, 1)), so that many failed deliveries do not retry in step.
pub fn retry_delay_ms(attempt: u32, jitter: f64) -> i64 {
    let base = 5_000f64 * 2f64.powi(attempt.saturating_sub(1).min(20) as i32);
    let capped = base.min(3_600_000.0);
    (capped * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))) as i64
}

const COLUMNS: &str = "id, payload, sink, workflow_dir, state, attempts, next_ms, last_error";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let bad = |i: usize, e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let payload: String = r.get(1)?;
    let sink: String = r.get(2)?;
    Ok(Delivery {
        id: r.get(0)?,
        notification: serde_json::from_str(&payload).map_err(|e| bad(1, e))?,
        sink: serde_json::from_str(&sink).map_err(|e| bad(2, e))?,
        workflow_dir: std::path::PathBuf::from(r.get::<_, String>(3)?),
        state: match r.get::<_, String>(4)?.as_str() {
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => DeliveryState::Pending,
        },
        attempts: r.get(5)?,
        next_ms: r.get(6)?,
        last_error: r.get(7)?,
    })
}

fn select(tx: &Transaction<'_>, filter: &str, p: impl rusqlite::Params) -> rusqlite::Result<Vec<Delivery>> {
    let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM notifications {filter}"))?;
    stmt.query_map(p, from_row)?.collect()
}

impl History {
    /// Queues `n` for every sink in `sinks` that wants its event, one row each, due now. An
    /// optional sink whose variable is unset here is left out; a required one is always queued
    /// (its deliverer reports the missing variable and retries: the daemon may have it).
    /// `dedup` names the occurrence (e.g. `run 2026…/deploy churn v0004`): queuing the same
    /// occurrence again adds nothing, so a retried step never notifies twice. Returns how many
    /// rows were added.
    pub fn enqueue(
        &self,
        n: &Notification,
        sinks: &[NotifyDef],
        workflow_dir: &std::path::Path,
        dedup: &str,
        now_ms: i64,
    ) -> Result<usize, HistoryError> {
        let payload = serde_json::to_string(n).expect("a notification serializes");
        self.with(|tx| {
            let mut added = 0;
            let wanted = |s: &NotifyDef| s.events().contains(&n.event) && (!s.optional() || s.active());
            for (i, sink) in sinks.iter().enumerate().filter(|(_, s)| wanted(s)) {
                let sink_json = serde_json::to_string(sink).expect("a sink serializes");
                added += tx.execute(
                    "INSERT OR IGNORE INTO notifications (dedup, workflow, run_id, event, sink, workflow_dir, payload, \
                     created_ms, state, next_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?8)",
                    params![
                        format!("{dedup}#{}#{i}:{sink_json}", n.event.as_str()),
                        n.workflow,
                        n.run_id,
                        n.event.as_str(),
                        sink_json,
                        workflow_dir.display().to_string(),
                        payload,
                        now_ms,
                    ],
                )?;
            }
            Ok(added)
        })
    }

    /// Pending deliveries due at `now_ms`, oldest first, at most `limit`.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>, HistoryError> {
        let lim = limit.min(i64::MAX as usize) as i64;
        self.with(|tx| {
            select(tx, "WHERE state = 'pending' AND next_ms <= ?1 ORDER BY id LIMIT ?2", params![now_ms, lim])
        })
    }

    /// The earliest time a pending delivery is due, if any.
    pub fn next_due(&self) -> Result<Option<i64>, HistoryError> {
        self.with(|tx| tx.query_row("SELECT MIN(next_ms) FROM notifications WHERE state = 'pending'", [], |r| r.get(0)))
    }

    /// Delivery `id` succeeded.
    pub fn delivered(&self, id: i64, now_ms: i64) -> Result<(), HistoryError> {
        self.with(|tx| {
            tx.execute(
                "UPDATE notifications SET state = 'delivered', attempts = attempts + 1, delivered_ms = ?2, \
                 last_error = NULL WHERE id = ?1",
                params![id, now_ms],
            )
            .map(drop)
        })
    }

    /// Delivery `id` failed with `error`: retried at `retry_at_ms`, or given up (`None`). The
    /// error must not hold secrets (the deliverer redacts URLs).
    pub fn failed_attempt(&self, id: i64, error: &str, retry_at_ms: Option<i64>) -> Result<(), HistoryError> {
        self.with(|tx| {
            let (state, next) = match retry_at_ms {
                Some(t) => ("pending", t),
                None => ("failed", i64::MAX),
            };
            tx.execute(
                "UPDATE notifications SET state = ?2, attempts = attempts + 1, next_ms = ?3, last_error = ?4 WHERE id = ?1",
                params![id, state, next, error],
            )
            .map(drop)
        })
    }

    /// Deliveries not (yet) made — pending or failed — of one run, or of all runs, newest first.
    pub fn undelivered(&self, run_id: Option<&str>, limit: usize) -> Result<Vec<Delivery>, HistoryError> {
        let lim = limit.min(i64::MAX as usize) as i64;
        self.with(|tx| match run_id {
            Some(r) => {
                select(tx, "WHERE state != 'delivered' AND run_id = ?1 ORDER BY id DESC LIMIT ?2", params![r, lim])
            }
            None => select(tx, "WHERE state != 'delivered' ORDER BY id DESC LIMIT ?1", params![lim]),
        })
    }

    /// Deliveries of one run, in order (every state).
    pub fn deliveries_of_run(&self, run_id: &str) -> Result<Vec<Delivery>, HistoryError> {
        self.with(|tx| select(tx, "WHERE run_id = ?1 ORDER BY id", params![run_id]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_workflow::heal::{CommandSink, SlackSink};

    fn note(event: NotifyEvent) -> Notification {
        Notification {
            event,
            workflow: "self-heal".into(),
            run_id: Some("r1".into()),
            at_ms: 5,
            title: "self-heal: model churn v0002 deployed".into(),
            facts: vec![Fact { name: "accuracy".into(), value: "0.91".into() }],
            action: None,
            details: serde_json::json!({"version": "v0002"}),
        }
    }

    fn sinks() -> Vec<NotifyDef> {
        vec![
            NotifyDef::Slack(SlackSink {
                webhook_env: "PATH".into(), // set in every test environment
                optional: false,
                events: vec![NotifyEvent::ModelDeployed],
            }),
            NotifyDef::Command(CommandSink { run: "cat".into(), events: vec![NotifyEvent::RolledBack] }),
        ]
    }

    #[test]
    fn queued_once_per_interested_sink_and_never_twice() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let n = note(NotifyEvent::ModelDeployed);
        assert_eq!(h.enqueue(&n, &sinks(), dir.path(), "r1/deploy", 10).unwrap(), 1);
        assert_eq!(h.enqueue(&n, &sinks(), dir.path(), "r1/deploy", 11).unwrap(), 0, "same occurrence");
        let due = h.due(10, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((&due[0].notification, &due[0].sink), (&n, &sinks()[0]));
        assert_eq!(h.next_due().unwrap(), Some(10));
    }

    #[test]
    fn a_required_sink_is_queued_without_its_variable_and_an_optional_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let unset = "DAGRUN_TEST_NEVER_SET_8c1f";
        let sink = |optional| {
            NotifyDef::Slack(SlackSink {
                webhook_env: unset.into(),
                optional,
                events: vec![NotifyEvent::ModelDeployed],
            })
        };
        assert_eq!(
            h.enqueue(&note(NotifyEvent::ModelDeployed), &[sink(false), sink(true)], dir.path(), "a", 0).unwrap(),
            1
        );
        assert!(matches!(&h.due(0, 10).unwrap()[0].sink, NotifyDef::Slack(s) if !s.optional));
    }

    #[test]
    fn failures_retry_then_give_up_and_stay_listed() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        h.enqueue(&note(NotifyEvent::ModelDeployed), &sinks(), dir.path(), "a", 0).unwrap();
        let id = h.due(0, 1).unwrap()[0].id;
        h.failed_attempt(id, "HTTP 500 from hooks.slack.com", Some(100)).unwrap();
        assert!(h.due(99, 10).unwrap().is_empty());
        let d = h.due(100, 10).unwrap();
        assert_eq!((d[0].attempts, d[0].last_error.as_deref()), (1, Some("HTTP 500 from hooks.slack.com")));
        h.failed_attempt(id, "connection refused", None).unwrap();
        assert!(h.due(i64::MAX - 1, 10).unwrap().is_empty());
        let u = h.undelivered(Some("r1"), 10).unwrap();
        assert_eq!((u.len(), u[0].state), (1, DeliveryState::Failed));
        h.enqueue(&note(NotifyEvent::ModelDeployed), &sinks(), dir.path(), "b", 0).unwrap();
        let id2 = h.due(0, 1).unwrap()[0].id;
        h.delivered(id2, 3).unwrap();
        assert_eq!(h.undelivered(None, 10).unwrap().len(), 1);
        assert_eq!(h.deliveries_of_run("r1").unwrap().len(), 2);
    }

    #[test]
    fn the_report_counts_the_windows_deliveries_per_sink_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let q = |workflow: Option<&str>| crate::ReportQuery {
            workflow: workflow.map(str::to_owned),
            since_ms: 100,
            until_ms: 1_000,
            manual_minutes: None,
        };
        assert_eq!(h.facts(&q(None)).unwrap().notifications, crate::report::Notifications::default());
        // Slack takes deploys, the command rollbacks: one row each per occurrence.
        let mut ids = Vec::new();
        let (deployed, rolled_back) = (NotifyEvent::ModelDeployed, NotifyEvent::RolledBack);
        for (i, (event, at)) in
            [(deployed, 200), (rolled_back, 201), (deployed, 202), (deployed, 50)].into_iter().enumerate()
        {
            assert_eq!(h.enqueue(&note(event), &sinks(), dir.path(), &format!("o{i}"), at).unwrap(), 1);
            ids.push(h.due(i64::MAX - 1, 100).unwrap().into_iter().map(|d| d.id).max().unwrap());
        }
        h.delivered(ids[0], 300).unwrap();
        h.failed_attempt(ids[1], "exit 1", None).unwrap();
        h.delivered(ids[3], 60).unwrap();
        let n = h.facts(&q(None)).unwrap().notifications;
        assert_eq!((n.delivered, n.pending, n.given_up), (1, 1, 1), "the one queued before the window is not counted");
        let sinks: Vec<(&str, u64, u64, u64)> =
            n.sinks.iter().map(|s| (s.sink.as_str(), s.delivered, s.pending, s.given_up)).collect();
        assert_eq!(sinks, [("command", 0, 0, 1), ("slack", 1, 1, 0)]);
        assert!(h.facts(&q(Some("other"))).unwrap().notifications.sinks.is_empty(), "per workflow");
        assert_eq!(h.report(&q(Some("self-heal"))).unwrap().notifications, n);
    }

    #[test]
    fn retry_delays_grow_with_jitter_and_cap() {
        assert_eq!(retry_delay_ms(1, 0.5), 5_000);
        assert_eq!(retry_delay_ms(2, 0.0), 8_000);
        assert_eq!(retry_delay_ms(3, 1.0), 24_000);
        assert_eq!(retry_delay_ms(30, 0.5), 3_600_000);
    }
}
