//! `drift.json`: what a `Drift` task found, per column and for the dataset. Written by the
//! engine; read by people, triggers (`Json(output: "report", pointer: "/drifted", ...)`) and
//! plugins.

use serde::{Deserialize, Serialize};

/// Version of `drift.json` this build writes and the newest it reads.
pub const DRIFT_VERSION: u32 = 1;

/// The file name.
pub const DRIFT_FILE: &str = "drift.json";

/// A drift test. p-value tests (`ks`, `chi_square`) flag drift when p < threshold; distances
/// when the distance ≥ threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Two-sample Kolmogorov–Smirnov (numeric; p-value).
    Ks,
    /// Wasserstein-1 distance divided by the reference's standard deviation (numeric).
    Wasserstein,
    /// Population Stability Index (numeric: reference-quantile bins; categorical: categories).
    Psi,
    /// Jensen–Shannon distance (numeric: reference-quantile bins; categorical: categories).
    JensenShannon,
    /// Chi-square test of the 2×k contingency table (categorical; p-value).
    ChiSquare,
}

impl Method {
    /// Whether the method yields a p-value (else a distance).
    pub fn is_p_value(self) -> bool {
        matches!(self, Method::Ks | Method::ChiSquare)
    }

    /// The threshold used when none is configured: 0.05 for p-values, 0.1 for distances.
    pub fn default_threshold(self) -> f64 {
        if self.is_p_value() { 0.05 } else { 0.1 }
    }
}

/// `drift.json`. (Fields beyond these are added by the drift module's author.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// [`DRIFT_VERSION`].
    pub version: u32,
    /// The dataset decision.
    pub drifted: bool,
    /// Why, in one sentence.
    pub reason: String,
    /// Share of the compared columns that drifted.
    pub share: f64,
    /// The configured threshold on `share`.
    pub drift_share: f64,
    /// The columns that drifted, in order.
    pub drifted_columns: Vec<String>,
}
