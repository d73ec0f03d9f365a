//! `drift.json`: what a `Drift` task found, per column and for the dataset. Written by the
//! engine; read by people, triggers (`Json(output: "report", pointer: "/drifted", ...)`) and
//! plugins.
//!
//! ```json
//! {"version": 1, "status": "drift", "drifted": true,
//!  "reason": "2 of 3 columns drifted (share 0.67 ≥ drift_share 0.5)",
//!  "share": 0.6667, "drift_share": 0.5, "drifted_columns": ["age", "income"], "critical": [],
//!  "reference": {"path": "ref.csv", "format": "csv", "rows": 5000},
//!  "current": {"path": "cur.csv", "format": "csv", "rows": 4800},
//!  "columns": [{"column": "age", "kind": "numeric", "test": "wasserstein", "statistic": 0.31,
//!               "p_value": null, "threshold": 0.1, "decision": "drift",
//!               "reason": "normed Wasserstein 0.31 ≥ 0.1", ...}],
//!  "predictions": [], "skipped": {"only_in_reference": [], "only_in_current": [], "excluded": []}}
//! ```
//!
//! Every number is finite (JSON has no NaN): a measure that cannot be computed is absent
//! (`stats`) or `null` (`statistic`, `p_value`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ContractError, parse_versioned};

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

    /// Whether the method needs numbers (KS, Wasserstein): not applicable to categories.
    pub fn is_numeric_only(self) -> bool {
        matches!(self, Method::Ks | Method::Wasserstein)
    }

    /// The name in `drift.json` and workflow files: `ks`, `wasserstein`, `psi`,
    /// `jensen_shannon`, `chi_square`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ks => "ks",
            Method::Wasserstein => "wasserstein",
            Method::Psi => "psi",
            Method::JensenShannon => "jensen_shannon",
            Method::ChiSquare => "chi_square",
        }
    }

    /// The statistic's name in a sentence: "KS", "normed Wasserstein", "PSI", ...
    pub fn label(self) -> &'static str {
        match self {
            Method::Ks => "KS",
            Method::Wasserstein => "normed Wasserstein",
            Method::Psi => "PSI",
            Method::JensenShannon => "Jensen–Shannon",
            Method::ChiSquare => "chi-square",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision, for one column or the dataset: `"drift"`, `"no_drift"`, `"insufficient_data"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    /// The distributions differ beyond the threshold.
    Drift,
    /// They do not.
    NoDrift,
    /// Too few usable values to say (never reported as drift).
    InsufficientData,
}

impl DriftStatus {
    /// `drift`, `no_drift` or `insufficient_data`.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftStatus::Drift => "drift",
            DriftStatus::NoDrift => "no_drift",
            DriftStatus::InsufficientData => "insufficient_data",
        }
    }
}

impl fmt::Display for DriftStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a column was compared: `"numeric"` or `"categorical"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Numbers (KS, Wasserstein; PSI and Jensen–Shannon on reference-quantile bins).
    Numeric,
    /// Categories (chi-square; PSI and Jensen–Shannon over the categories).
    Categorical,
}

impl ColumnKind {
    /// `numeric` or `categorical`.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnKind::Numeric => "numeric",
            ColumnKind::Categorical => "categorical",
        }
    }
}

/// `drift.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// [`DRIFT_VERSION`].
    pub version: u32,
    /// The dataset decision.
    pub status: DriftStatus,
    /// `status == drift`.
    pub drifted: bool,
    /// Why, in one sentence: which rule fired.
    pub reason: String,
    /// Share of the compared columns that drifted: drifted ÷ columns with a decision (columns
    /// with `insufficient_data` are left out of both); 0 when no column had enough data.
    pub share: f64,
    /// The configured threshold on `share`.
    pub drift_share: f64,
    /// The columns that drifted, in order.
    pub drifted_columns: Vec<String>,
    /// The columns configured as critical (any of them drifting makes the dataset drifted).
    #[serde(default)]
    pub critical: Vec<String>,
    /// The reference data.
    pub reference: DataSummary,
    /// The current data.
    pub current: DataSummary,
    /// The model whose predictions were compared, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// One result per compared column, in the reference file's order.
    pub columns: Vec<ColumnResult>,
    /// Prediction drift: the model's outputs on both datasets compared the same way (empty
    /// without a model).
    #[serde(default)]
    pub predictions: Vec<ColumnResult>,
    /// Columns not compared, and why.
    #[serde(default)]
    pub skipped: Skipped,
}

/// A dataset as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSummary {
    /// The file, as given.
    pub path: String,
    /// `csv` or `parquet`.
    pub format: String,
    /// Data rows.
    pub rows: u64,
}

/// Columns present in the files but not compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// In the reference file only.
    #[serde(default)]
    pub only_in_reference: Vec<String>,
    /// In the current file only.
    #[serde(default)]
    pub only_in_current: Vec<String>,
    /// Left out by `exclude` (those present in either file).
    #[serde(default)]
    pub excluded: Vec<String>,
}

impl Skipped {
    /// Nothing was skipped.
    pub fn is_empty(&self) -> bool {
        self.only_in_reference.is_empty() && self.only_in_current.is_empty() && self.excluded.is_empty()
    }
}

/// One column's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnResult {
    /// The column.
    pub column: String,
    /// How it was compared.
    pub kind: ColumnKind,
    /// The test that decided.
    pub test: Method,
    /// The test's statistic: the KS D, the chi-square statistic, or the distance; `null` when
    /// it could not be computed (a side without usable values, a type mismatch).
    pub statistic: Option<f64>,
    /// The p-value (KS and chi-square only).
    pub p_value: Option<f64>,
    /// p-values: drift when p < threshold; distances: drift when distance ≥ threshold.
    pub threshold: f64,
    /// The column's decision.
    pub decision: DriftStatus,
    /// Why, in one sentence ("normed Wasserstein 0.31 ≥ 0.1").
    pub reason: String,
    /// The reference side.
    pub reference: Sample,
    /// The current side.
    pub current: Sample,
    /// A configured critical column.
    #[serde(default)]
    pub critical: bool,
    /// Every measure computed: `ks_statistic`, `ks_p_value`, `wasserstein`,
    /// `wasserstein_normed` (absent when the reference is constant and the current is not),
    /// `psi`, `jensen_shannon` (numeric; `chi_square`, `chi_square_p_value` too when the binned
    /// chi-square decides); `chi_square`, `chi_square_p_value`, `psi`, `jensen_shannon`,
    /// `unseen_categories` (a count), `unseen_share` (categorical).
    #[serde(default)]
    pub stats: BTreeMap<String, f64>,
    /// Categories of the current data that the reference never had (categorical).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unseen_categories: Vec<String>,
    /// What the HTML report draws.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

/// One side of a column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Usable values (tested).
    pub values: u64,
    /// Values left out of the tests.
    pub missing: Missing,
}

/// Values that are not usable, counted per column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// Empty cells, `NA`, `null`, Parquet nulls.
    pub empty: u64,
    /// NaN.
    pub nan: u64,
    /// +/- infinity.
    pub inf: u64,
}

/// Reference and current distributions over the same bins, for display.
///
/// Numeric: `edges` holds the `bins + 1` edges of equal-width bins over the range of both
/// samples; categorical: `labels` holds the categories (at most 20, the most frequent, then
/// `"other"` for the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Bin edges (numeric).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<f64>,
    /// Category labels (categorical).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The reference's proportion in each bin.
    pub reference: Vec<f64>,
    /// The current's proportion in each bin.
    pub current: Vec<f64>,
}

impl DriftReport {
    /// Pretty JSON with a trailing newline, as the engine writes it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a drift report serializes") + "\n"
    }

    /// Parses `drift.json`; a newer or unknown `version` is an error that says so.
    pub fn from_json(bytes: &[u8]) -> Result<DriftReport, ContractError> {
        parse_versioned(DRIFT_FILE, bytes, DRIFT_VERSION)
    }

    /// Reads and parses a `drift.json` file.
    pub fn read(path: &Path) -> Result<DriftReport, ContractError> {
        Self::from_json(&std::fs::read(path).map_err(ContractError::io(path))?)
    }

    /// A column's result (features first, then predictions).
    pub fn column(&self, name: &str) -> Option<&ColumnResult> {
        self.columns.iter().chain(&self.predictions).find(|c| c.column == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> DriftReport {
        let column = ColumnResult {
            column: "age".into(),
            kind: ColumnKind::Numeric,
            test: Method::Wasserstein,
            statistic: Some(0.31),
            p_value: None,
            threshold: 0.1,
            decision: DriftStatus::Drift,
            reason: "normed Wasserstein 0.31 ≥ 0.1".into(),
            reference: Sample { values: 5000, missing: Missing::default() },
            current: Sample { values: 4790, missing: Missing { empty: 7, nan: 2, inf: 1 } },
            critical: false,
            stats: BTreeMap::from([("wasserstein".into(), 3.1), ("wasserstein_normed".into(), 0.31)]),
            unseen_categories: vec![],
            histogram: Some(Histogram {
                edges: vec![0.0, 1.0, 2.0],
                labels: vec![],
                reference: vec![0.5, 0.5],
                current: vec![0.25, 0.75],
            }),
        };
        DriftReport {
            version: DRIFT_VERSION,
            status: DriftStatus::Drift,
            drifted: true,
            reason: "1 of 1 columns drifted (share 1 ≥ drift_share 0.5)".into(),
            share: 1.0,
            drift_share: 0.5,
            drifted_columns: vec!["age".into()],
            critical: vec![],
            reference: DataSummary { path: "ref.csv".into(), format: "csv".into(), rows: 5000 },
            current: DataSummary { path: "cur.parquet".into(), format: "parquet".into(), rows: 4800 },
            model: None,
            columns: vec![column],
            predictions: vec![],
            skipped: Skipped { only_in_reference: vec!["old".into()], ..Skipped::default() },
        }
    }

    #[test]
    fn round_trips_and_keeps_the_fields_the_engine_reads() {
        let r = report();
        let text = r.to_json();
        assert!(text.ends_with("}\n"));
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in ["drifted", "reason", "share", "drift_share", "drifted_columns", "status"] {
            assert!(j.get(key).is_some(), "{key} missing from {text}");
        }
        assert_eq!(j["status"], "drift");
        assert_eq!(j["columns"][0]["test"], "wasserstein");
        assert_eq!(j["columns"][0]["kind"], "numeric");
        assert_eq!(j["columns"][0]["p_value"], serde_json::Value::Null);
        assert!(j["columns"][0].get("unseen_categories").is_none(), "empty lists are left out");
        assert!(j["columns"][0]["histogram"].get("labels").is_none());
        assert!(j.get("model").is_none());
        assert_eq!(DriftReport::from_json(text.as_bytes()).unwrap(), r);
        assert_eq!(r.column("age").unwrap().current.missing.nan, 2);
    }

    #[test]
    fn newer_versions_are_refused() {
        let mut j = serde_json::to_value(report()).unwrap();
        j["version"] = json!(DRIFT_VERSION + 1);
        let e = DriftReport::from_json(j.to_string().as_bytes()).unwrap_err();
        assert!(matches!(e, ContractError::NewerVersion { file: "drift.json", .. }), "{e}");
        let e = DriftReport::from_json(br#"{"drifted": true}"#).unwrap_err();
        assert!(matches!(e, ContractError::UnknownVersion { .. }), "{e}");
    }

    #[test]
    fn method_names_and_thresholds() {
        for m in [Method::Ks, Method::Wasserstein, Method::Psi, Method::JensenShannon, Method::ChiSquare] {
            assert_eq!(serde_json::to_value(m).unwrap(), json!(m.as_str()));
            assert_eq!(m.default_threshold(), if m.is_p_value() { 0.05 } else { 0.1 });
        }
        assert!(Method::Ks.is_numeric_only() && !Method::Psi.is_numeric_only());
        assert_eq!(serde_json::to_value(DriftStatus::InsufficientData).unwrap(), json!("insufficient_data"));
        assert_eq!(DriftStatus::NoDrift.to_string(), "no_drift");
    }
}
