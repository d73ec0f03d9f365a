//! Drift detection: reads the reference and current data, tests each column with the method
//! its sample size calls for (or the one configured), decides per column and for the dataset,
//! and writes `drift.json` and the HTML report.
