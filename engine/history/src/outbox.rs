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
