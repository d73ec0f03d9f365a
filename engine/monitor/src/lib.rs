//! Native monitoring for dagrun: data and prediction drift (`Drift` tasks) and live
//! performance checks (`Performance` tasks).
//!
//! * [`stats`]: the statistics (two-sample Kolmogorov–Smirnov, Wasserstein-1, PSI,
//!   Jensen–Shannon, chi-square contingency), computed as SciPy computes them.
//! * [`drift`]: per-column tests with sample-size-aware defaults, the dataset decision,
//!   `drift.json` and the HTML report.
//! * [`performance`]: a deployed model's metrics on freshly labelled data, compared with the
//!   metrics its gate verdict recorded.

pub mod drift;
pub mod performance;
pub mod stats;
