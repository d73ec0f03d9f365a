//! `performance.json`: what a `Performance` task found when it compared a model's metrics on
//! freshly labelled data with the baseline its gate recorded. Written by the engine; read by
//! people, triggers (`pointer: "/regressed"`) and plugins.
//!
//! ```json
//! {"version": 1, "status": "regressed", "regressed": true,
//!  "reason": "accuracy 0.81 fell 0.07 below the baseline 0.88 (tolerance 0.05)", "rows": 512,
//!  "metrics": [{"metric": "accuracy", "baseline": 0.88, "current": 0.81, "change": -0.07,
//!               "tolerance": 0.05, "regressed": true}]}
//! ```

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ContractError, parse_versioned};

/// Version of `performance.json` this build writes and the newest it reads.
pub const PERFORMANCE_VERSION: u32 = 1;

/// The file name.
pub const PERFORMANCE_FILE: &str = "performance.json";

/// The outcome: `"regressed"`, `"ok"`, `"insufficient_data"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerformanceStatus {
    /// At least one metric fell behind its baseline by more than its tolerance.
    Regressed,
    /// None did.
    Ok,
    /// Too few labelled rows to say (never reported as a regression).
    InsufficientData,
}

impl PerformanceStatus {
    /// `regressed`, `ok` or `insufficient_data`.
    pub fn as_str(self) -> &'static str {
        match self {
            PerformanceStatus::Regressed => "regressed",
            PerformanceStatus::Ok => "ok",
            PerformanceStatus::InsufficientData => "insufficient_data",
        }
    }
}

impl fmt::Display for PerformanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `performance.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceReport {
    /// [`PERFORMANCE_VERSION`].
    pub version: u32,
    /// The decision.
    pub status: PerformanceStatus,
    /// `status == regressed`.
    pub regressed: bool,
    /// Why, in one sentence.
    pub reason: String,
    /// Labelled rows the current metrics were computed on.
    pub rows: u64,
    /// Every metric compared, by name.
    pub metrics: Vec<MetricComparison>,
}

/// One metric, baseline against current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// `accuracy`, `rmse`, ...
    pub metric: String,
    /// The value the gate recorded.
    pub baseline: f64,
    /// The value on the fresh data.
    pub current: f64,
    /// `current - baseline` (negative: lower now).
    pub change: f64,
    /// How far the metric may fall behind (absolute): below `baseline - tolerance` for
    /// higher-is-better metrics, above `baseline + tolerance` for `log_loss`, `rmse`, `mae`.
    pub tolerance: f64,
    /// Whether it fell behind by more than the tolerance.
    pub regressed: bool,
}

impl PerformanceReport {
    /// Pretty JSON with a trailing newline, as the engine writes it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a performance report serializes") + "\n"
    }

    /// Parses `performance.json`; a newer or unknown `version` is an error that says so.
    pub fn from_json(bytes: &[u8]) -> Result<PerformanceReport, ContractError> {
        parse_versioned(PERFORMANCE_FILE, bytes, PERFORMANCE_VERSION)
    }

    /// Reads and parses a `performance.json` file.
    pub fn read(path: &Path) -> Result<PerformanceReport, ContractError> {
        Self::from_json(&std::fs::read(path).map_err(ContractError::io(path))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_and_version_check() {
        let r = PerformanceReport {
            version: PERFORMANCE_VERSION,
            status: PerformanceStatus::Regressed,
            regressed: true,
            reason: "accuracy fell".into(),
            rows: 512,
            metrics: vec![MetricComparison {
                metric: "accuracy".into(),
                baseline: 0.88,
                current: 0.81,
                change: 0.81 - 0.88,
                tolerance: 0.05,
                regressed: true,
            }],
        };
        let text = r.to_json();
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(j["status"], "regressed");
        assert_eq!(j["metrics"][0]["metric"], "accuracy");
        assert_eq!(PerformanceReport::from_json(text.as_bytes()).unwrap(), r);
        let mut newer = j.clone();
        newer["version"] = json!(PERFORMANCE_VERSION + 1);
        let e = PerformanceReport::from_json(newer.to_string().as_bytes()).unwrap_err();
        assert!(matches!(e, ContractError::NewerVersion { file: "performance.json", .. }), "{e}");
        assert_eq!(PerformanceStatus::InsufficientData.to_string(), "insufficient_data");
    }
}
