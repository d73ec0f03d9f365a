//! Drift per column over time: each `Drift` task's per-column results (test, statistic,
//! p-value, threshold, decision), kept with its run so the web UI can chart a column's statistic
//! run after run. Written with the run ([`crate::History::record_run`], the import); runs
//! recorded before schema version 3, or whose records carry no per-column results, have none.

use std::collections::HashMap;

use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};

use crate::{History, HistoryError};

/// Migration 2 → 3: the per-column drift results.
pub(crate) const MIGRATION: &str = "
CREATE TABLE drift_columns (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    seq INTEGER NOT NULL,
    column_name TEXT NOT NULL,
    prediction INTEGER NOT NULL,
    kind TEXT NOT NULL,
    test TEXT NOT NULL,
    statistic REAL,
    p_value REAL,
    threshold REAL NOT NULL,
    decision TEXT NOT NULL,
    critical INTEGER NOT NULL,
    registry TEXT,
    model TEXT,
    PRIMARY KEY (run_id, task, seq)
);
";

/// What one `Drift` task instance found, per column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftRow {
    /// With `reference: Deployed(...)`: the registry directory (keyed like registry moves and
    /// incidents: resolved) and the model checked.
    pub registry: Option<String>,
    /// The model's name (with `registry`).
    pub model: Option<String>,
    /// The compared columns in the data's order, then the model's outputs (`prediction`).
    pub columns: Vec<DriftColumn>,
}

/// One column's comparison in one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftColumn {
    /// The column (for prediction drift: the output, `prediction`, `proba_1`).
    pub column: String,
    /// A model output (prediction drift), not a data column.
    pub prediction: bool,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// The test that decided: `ks`, `wasserstein`, `psi`, `jensen_shannon`, `chi_square`.
    pub test: String,
    /// The test's statistic (the KS D, the chi-square statistic, or the distance).
    pub statistic: Option<f64>,
    /// The p-value (KS and chi-square).
    pub p_value: Option<f64>,
    /// p-value tests: drift when p < threshold; distances: drift when distance ≥ threshold.
    pub threshold: f64,
    /// `drift`, `no_drift` or `insufficient_data`.
    pub decision: String,
    /// A configured critical column.
    pub critical: bool,
}

impl DriftColumn {
    /// Whether the test decides by a p-value (`ks`, `chi_square`), else by a distance.
    pub fn is_p_value(&self) -> bool {
        matches!(self.test.as_str(), "ks" | "chi_square")
    }

    /// The number the threshold applies to: the p-value of a p-value test, else the distance.
    pub fn value(&self) -> Option<f64> {
        if self.is_p_value() { self.p_value } else { self.statistic }
    }

    /// The column drifted.
    pub fn drifted(&self) -> bool {
        self.decision == "drift"
    }
}

/// One column's result of one run, with where it comes from (the UI's `/drift` page).
#[derive(Debug, Clone, PartialEq)]
pub struct DriftPoint {
    /// The run's workflow.
    pub workflow: String,
    /// The `Drift` task (`drift`; without the partition).
    pub task: String,
    /// The partition of the task instance, if partitioned.
    pub partition: Option<String>,
    /// The registry directory of the model checked (`reference: Deployed(...)`).
    pub registry: Option<String>,
    /// The model checked.
    pub model: Option<String>,
    /// The run.
    pub run_id: String,
    /// When the run started (Unix ms).
    pub started_ms: i64,
    /// The column's result.
    pub column: DriftColumn,
}

pub(crate) fn put(tx: &Transaction<'_>, run_id: &str, task: &str, d: &DriftRow) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO drift_columns (run_id, task, seq, column_name, prediction, kind, test, statistic, \
         p_value, threshold, decision, critical, registry, model) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    for (seq, c) in d.columns.iter().enumerate() {
        stmt.execute(params![
            run_id,
            task,
            seq as i64,
            c.column,
            c.prediction,
            c.kind,
            c.test,
            c.statistic,
            c.p_value,
            c.threshold,
            c.decision,
            c.critical,
            d.registry,
            d.model
        ])?;
    }
    Ok(())
}

const COLUMNS: &str = "column_name, prediction, kind, test, statistic, p_value, threshold, decision, critical";

fn column_from(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<DriftColumn> {
    Ok(DriftColumn {
        column: r.get(at)?,
        prediction: r.get(at + 1)?,
        kind: r.get(at + 2)?,
        test: r.get(at + 3)?,
        statistic: r.get(at + 4)?,
        p_value: r.get(at + 5)?,
        threshold: r.get(at + 6)?,
        decision: r.get(at + 7)?,
        critical: r.get(at + 8)?,
    })
}

/// The drift results of run `id`, by task instance.
pub(crate) fn of_run(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<HashMap<String, DriftRow>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT task, registry, model, {COLUMNS} FROM drift_columns WHERE run_id = ?1 ORDER BY task, seq"
    ))?;
    let mut out: HashMap<String, DriftRow> = HashMap::new();
    let rows = stmt.query_map(params![id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<String>>(2)?, column_from(r, 3)?))
    })?;
    for row in rows {
        let (task, registry, model, column) = row?;
        let d = out.entry(task).or_insert_with(|| DriftRow { registry, model, columns: Vec::new() });
        d.columns.push(column);
    }
    Ok(out)
}

impl History {
    /// The per-column drift results of the most recent runs, at most `limit` column results,
    /// oldest first (by run start, then run, task instance, and the column's place).
    pub fn drift_points(&self, limit: usize) -> Result<Vec<DriftPoint>, HistoryError> {
        let lim = limit.min(i64::MAX as usize) as i64;
        self.with(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT r.workflow, d.task, d.registry, d.model, d.run_id, r.started_ms, {} \
                 FROM drift_columns d JOIN runs r ON r.id = d.run_id \
                 ORDER BY r.started_ms DESC, d.run_id DESC, d.task DESC, d.seq DESC LIMIT ?1",
                COLUMNS.split(", ").map(|c| format!("d.{c}")).collect::<Vec<_>>().join(", ")
            ))?;
            let mut points = stmt
                .query_map(params![lim], |r| {
                    let instance: String = r.get(1)?;
                    let (task, partition) = match instance.split_once('@') {
                        Some((t, p)) => (t.to_owned(), Some(p.to_owned())),
                        None => (instance, None),
                    };
                    Ok(DriftPoint {
                        workflow: r.get(0)?,
                        task,
                        partition,
                        registry: r.get(2)?,
                        model: r.get(3)?,
                        run_id: r.get(4)?,
                        started_ms: r.get(5)?,
                        column: column_from(r, 6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            points.reverse();
            Ok(points)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RunRow, TaskRow};

    fn col(name: &str, test: &str, statistic: f64, p: Option<f64>, decision: &str) -> DriftColumn {
        DriftColumn {
            column: name.into(),
            kind: "numeric".into(),
            test: test.into(),
            statistic: Some(statistic),
            p_value: p,
            threshold: if p.is_some() { 0.05 } else { 0.1 },
            decision: decision.into(),
            ..DriftColumn::default()
        }
    }

    fn run(id: &str, started_ms: i64, task: &str, columns: Vec<DriftColumn>) -> RunRow {
        let drift = DriftRow { registry: Some("/w/registry".into()), model: Some("churn".into()), columns };
        RunRow {
            id: id.into(),
            workflow: "monitor".into(),
            started_ms,
            finished_ms: Some(started_ms + 10),
            status: "succeeded".into(),
            tasks: vec![
                TaskRow { task: "train".into(), status: "succeeded".into(), ..TaskRow::default() },
                TaskRow { task: task.into(), status: "succeeded".into(), drift: Some(drift), ..TaskRow::default() },
            ],
            ..RunRow::default()
        }
    }

    #[test]
    fn per_column_results_are_written_with_the_run_read_back_and_listed_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let a = run(
            "a",
            1_000,
            "drift",
            vec![col("age", "ks", 0.1, Some(0.6), "no_drift"), col("income", "wasserstein", 0.02, None, "no_drift")],
        );
        let b = run(
            "b",
            2_000,
            "drift",
            vec![col("age", "ks", 0.4, Some(0.001), "drift"), col("income", "wasserstein", 0.3, None, "drift")],
        );
        h.import_runs(&[b.clone(), a.clone()]).unwrap();
        h.record_run(&b).unwrap();
        assert_eq!(h.run("b").unwrap().as_ref(), Some(&b), "the run reads back with its drift results");
        assert_eq!(h.run("a").unwrap().unwrap().tasks[0].drift, None, "a task without results has none");
        let points = h.drift_points(100).unwrap();
        let got: Vec<(&str, &str, Option<f64>, bool)> = points
            .iter()
            .map(|p| (p.run_id.as_str(), p.column.column.as_str(), p.column.value(), p.column.drifted()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "age", Some(0.6), false),
                ("a", "income", Some(0.02), false),
                ("b", "age", Some(0.001), true),
                ("b", "income", Some(0.3), true)
            ],
            "oldest first, replaced not doubled; the value is the p-value for KS, the distance otherwise"
        );
        assert_eq!((points[0].model.as_deref(), points[0].partition.as_deref()), (Some("churn"), None));
        let last2: Vec<String> = h.drift_points(2).unwrap().into_iter().map(|p| p.run_id).collect();
        assert_eq!(last2, ["b", "b"], "the limit keeps the newest");
    }

    #[test]
    fn a_partitioned_instance_names_its_partition() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        h.record_run(&run("a", 1, "drift@2025-03-02", vec![col("x", "psi", 0.2, None, "drift")])).unwrap();
        let p = &h.drift_points(10).unwrap()[0];
        assert_eq!((p.task.as_str(), p.partition.as_deref()), ("drift", Some("2025-03-02")));
    }
}
