//! The self-healing parts of a workflow: conditional tasks (`only_if`), the `Approval` step
//! with its circuit breaker, and the `notify` sinks. Types as written; checks live in
//! `heal_checks.rs`.

use serde::{Deserialize, Serialize};

use crate::model::DeployedDef;

/// `only_if: Alerted("drift")`: the task runs only when that upstream task raised an alert in
/// this run; otherwise it (and what depends on it) is skipped, which is not a failure.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub enum Condition {
    /// The named upstream task (a `Drift` with `fail_on_drift`, a `Performance` with
    /// `fail_on_regression`) raised an alert; for a partitioned upstream, any of its instances.
    Alerted(String),
}

impl Condition {
    /// The task the condition looks at.
    pub fn task(&self) -> &str {
        match self {
            Condition::Alerted(t) => t,
        }
    }
}

/// `Approval(model: "model", verdict: "verdict", deploys: Deployed(registry: "registry", name: "churn"))`:
/// lets the deploy after it go ahead automatically, or parks the run until a person approves
/// (`dagrun approve RUN`) or rejects it — when the model changes behaviour too much, when the
/// workflow says `always`, or when the circuit breaker has tripped.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Approval")]
pub struct ApprovalTask {
    /// Name of the input holding the candidate model (an approval is bound to its bytes).
    pub model: String,
    /// Name of the input holding its gate `verdict.json` (bound too; its `behaviour` is read).
    pub verdict: String,
    /// The registry model the deploy after this step promotes (its promotions feed the breaker).
    pub deploys: DeployedDef,
    /// Classifiers: ask a person when more than this share of predictions change (default 0.1).
    #[serde(default)]
    pub max_label_change: Option<f64>,
    /// Regressors (and classifiers' probabilities): ask when the mean absolute change of the
    /// prediction exceeds this (default: not checked).
    #[serde(default)]
    pub max_score_change: Option<f64>,
    /// Always ask a person.
    #[serde(default)]
    pub always: bool,
    /// At most `max` automatic promotions per `window`; beyond that, ask a person.
    #[serde(default)]
    pub breaker: Option<BreakerDef>,
    /// How long a request waits for a person (default `"3d"`), then `on_timeout` applies.
    #[serde(default)]
    pub timeout: Option<String>,
    /// What an unanswered request becomes (default `Reject`).
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

/// The default share of changed predictions above which a person must approve.
pub const DEFAULT_MAX_LABEL_CHANGE: f64 = 0.1;
/// The default time an approval request waits.
pub const DEFAULT_APPROVAL_TIMEOUT: &str = "3d";

/// `Breaker(max: 2, window: "7d")`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Breaker")]
pub struct BreakerDef {
    /// Automatic promotions allowed per window (default 2).
    #[serde(default = "default_breaker_max")]
    pub max: u32,
    /// The sliding window (default `"7d"`).
    #[serde(default = "default_breaker_window")]
    pub window: String,
}

impl Default for BreakerDef {
    fn default() -> Self {
        BreakerDef { max: default_breaker_max(), window: default_breaker_window() }
    }
}

fn default_breaker_max() -> u32 {
    2
}

fn default_breaker_window() -> String {
    "7d".to_owned()
}

/// What an approval request nobody answered becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum OnTimeout {
    /// Rejected: the model is not deployed (the default).
    #[default]
    Reject,
    /// Approved.
    Approve,
}

/// One notification sink under `notify: [...]`. Secrets (URLs, headers) come only from the
/// environment variables named here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub enum NotifyDef {
    /// `Slack(webhook_env: "SLACK_WEBHOOK_URL")`: a Slack incoming webhook.
    Slack(SlackSink),
    /// `Webhook(url_env: "ALERT_URL", headers_env: "ALERT_HEADERS")`: a JSON POST.
    Webhook(WebhookSink),
    /// `Command(run: "./page-oncall.sh")`: a shell command, the JSON payload on its stdin.
    Command(CommandSink),
}

impl NotifyDef {
    /// The events this sink receives.
    pub fn events(&self) -> &[NotifyEvent] {
        match self {
            NotifyDef::Slack(s) => &s.events,
            NotifyDef::Webhook(s) => &s.events,
            NotifyDef::Command(s) => &s.events,
        }
    }

    /// Environment variables this sink reads (checked when the workflow is loaded).
    pub fn env_vars(&self) -> Vec<&str> {
        match self {
            NotifyDef::Slack(s) => vec![s.webhook_env.as_str()],
            NotifyDef::Webhook(s) => std::iter::once(s.url_env.as_str()).chain(s.headers_env.as_deref()).collect(),
            NotifyDef::Command(_) => Vec::new(),
        }
    }

    /// Whether the sink may be left out when its environment variables are unset.
    pub fn optional(&self) -> bool {
        match self {
            NotifyDef::Slack(s) => s.optional,
            NotifyDef::Webhook(s) => s.optional,
            NotifyDef::Command(_) => false,
        }
    }

    /// Whether the sink takes notifications here: every variable it reads is set (a required
    /// sink with an unset variable is refused when the workflow is loaded).
    pub fn active(&self) -> bool {
        self.env_vars().iter().all(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
    }

    /// `slack`, `webhook` or `command`.
    pub fn label(&self) -> &'static str {
        match self {
            NotifyDef::Slack(_) => "slack",
            NotifyDef::Webhook(_) => "webhook",
            NotifyDef::Command(_) => "command",
        }
    }
}

/// A Slack incoming webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Slack")]
pub struct SlackSink {
    /// The environment variable holding the webhook URL.
    pub webhook_env: String,
    /// When the variable is unset, leave this sink out instead of refusing the workflow.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Which events (default: all but `FileLanded`).
    #[serde(default = "default_events")]
    pub events: Vec<NotifyEvent>,
}

/// A generic JSON webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Webhook")]
pub struct WebhookSink {
    /// The environment variable holding the URL.
    pub url_env: String,
    /// When the variable is unset, leave this sink out instead of refusing the workflow.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// The environment variable holding extra headers, one `Name: value` per line.
    #[serde(default)]
    pub headers_env: Option<String>,
    /// Which events (default: all but `FileLanded`).
    #[serde(default = "default_events")]
    pub events: Vec<NotifyEvent>,
}

/// A shell command.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Command")]
pub struct CommandSink {
    /// The command line (`sh -c`, in the workflow's directory).
    pub run: String,
    /// Which events (default: all but `FileLanded`).
    #[serde(default = "default_events")]
    pub events: Vec<NotifyEvent>,
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum NotifyEvent {
    /// A run failed.
    RunFailed,
    /// An evaluation gate refused a model.
    GateRefused,
    /// A drift check raised an alert (also during a cooldown).
    DriftDetected,
    /// A new model version became current.
    ModelDeployed,
    /// The registry went back to an earlier version.
    RolledBack,
    /// A run waits for a person's approval.
    ApprovalNeeded,
    /// A person approved.
    ApprovalGranted,
    /// A person rejected, or the request timed out.
    ApprovalRejected,
    /// A file landed (a `FileLanded` trigger fired).
    FileLanded,
}

impl NotifyEvent {
    /// Every event.
    pub const ALL: [NotifyEvent; 9] = [
        NotifyEvent::RunFailed,
        NotifyEvent::GateRefused,
        NotifyEvent::DriftDetected,
        NotifyEvent::ModelDeployed,
        NotifyEvent::RolledBack,
        NotifyEvent::ApprovalNeeded,
        NotifyEvent::ApprovalGranted,
        NotifyEvent::ApprovalRejected,
        NotifyEvent::FileLanded,
    ];

    /// `run_failed`, `gate_refused`, ...: the name in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::RunFailed => "run_failed",
            NotifyEvent::GateRefused => "gate_refused",
            NotifyEvent::DriftDetected => "drift_detected",
            NotifyEvent::ModelDeployed => "model_deployed",
            NotifyEvent::RolledBack => "rolled_back",
            NotifyEvent::ApprovalNeeded => "approval_needed",
            NotifyEvent::ApprovalGranted => "approval_granted",
            NotifyEvent::ApprovalRejected => "approval_rejected",
            NotifyEvent::FileLanded => "file_landed",
        }
    }
}

fn default_events() -> Vec<NotifyEvent> {
    NotifyEvent::ALL.into_iter().filter(|e| *e != NotifyEvent::FileLanded).collect()
}
