//! Drift incidents: from the first drift alert on a deployed model to a healthy model deployed
//! (or the drift cleared), for the time-to-recovery the payoff report shows.

use serde::Serialize;

/// One incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// Its id.
    pub id: i64,
    /// The workflow that detected it.
    pub workflow: String,
    /// The registry directory of the drifted model.
    pub registry: String,
    /// The model's name.
    pub model: String,
    /// When drift was first detected (Unix ms).
    pub detected_ms: i64,
    /// The run that detected it.
    pub detected_run: String,
    /// Drift alerts seen while it was open (a drift storm coalesces here).
    pub alerts: u32,
    /// When it ended, if it did.
    pub resolved_ms: Option<i64>,
    /// The run that ended it.
    pub resolved_run: Option<String>,
    /// How: `deployed v0004`, `cleared` (a later check found no drift), `rolled back to v0002`.
    pub resolution: Option<String>,
}
