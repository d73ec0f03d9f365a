//! Queries for the web UI's pages that the report does not need: the partitioned task instances
//! of a workflow (the backfill grid), the models runs touched, and recent gate verdicts.

use rusqlite::params;

use crate::{History, HistoryError, VerdictRow};

/// One partitioned task instance of one run (`train@2025-03-02`, split at the `@`).
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionCell {
    /// The task's name (`train`).
    pub task: String,
    /// The partition key (`2025-03-02`).
    pub partition: String,
    /// Its final state in that run.
    pub status: String,
    /// The run.
    pub run_id: String,
}

/// A gate verdict with the run and task that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunVerdict {
    /// The run.
    pub run_id: String,
    /// The run's workflow.
    pub workflow: String,
    /// The gate task.
    pub task: String,
    /// When the run started (Unix ms).
    pub started_ms: i64,
    /// The decision.
    pub verdict: VerdictRow,
}

impl History {
    /// Every partitioned task instance of `workflow`'s runs, oldest run first (a later row of the
    /// same cell is newer).
    pub fn partition_cells(&self, workflow: &str) -> Result<Vec<PartitionCell>, HistoryError> {
        self.with(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT t.task, t.status, t.run_id FROM run_tasks t JOIN runs r ON r.id = t.run_id \
                 WHERE r.workflow = ?1 AND instr(t.task, '@') > 0 ORDER BY r.started_ms, r.id, t.seq",
            )?;
            let rows = stmt.query_map(params![workflow], |r| {
                let (name, status, run_id): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
                Ok((name, status, run_id))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (name, status, run_id) = row?;
                if let Some((task, partition)) = name.split_once('@') {
                    out.push(PartitionCell { task: task.to_owned(), partition: partition.to_owned(), status, run_id });
                }
            }
            Ok(out)
        })
    }

    /// The (registry, model) pairs any run recorded, sorted.
    pub fn models(&self) -> Result<Vec<(String, String)>, HistoryError> {
        self.with(|tx| {
            let mut stmt =
                tx.prepare_cached("SELECT DISTINCT registry, model FROM registry_changes ORDER BY registry, model")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
    }

    /// The most recent gate verdicts first, at most `limit`.
    pub fn verdicts(&self, limit: usize) -> Result<Vec<RunVerdict>, HistoryError> {
        let lim = limit.min(i64::MAX as usize) as i64;
        self.with(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT v.run_id, r.workflow, v.task, r.started_ms, v.decision, v.reason, v.metric, v.value, \
                 v.threshold, v.shortfall FROM verdicts v JOIN runs r ON r.id = v.run_id \
                 ORDER BY r.started_ms DESC, v.run_id DESC LIMIT ?1",
            )?;
            stmt.query_map(params![lim], |r| {
                Ok(RunVerdict {
                    run_id: r.get(0)?,
                    workflow: r.get(1)?,
                    task: r.get(2)?,
                    started_ms: r.get(3)?,
                    verdict: crate::runs::verdict_from(r, r.get(4)?, 5)?,
                })
            })?
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RunRow, TaskRow};

    fn task(name: &str, status: &str) -> TaskRow {
        TaskRow { task: name.into(), status: status.into(), ..Default::default() }
    }

    #[test]
    fn partition_cells_split_instances_and_keep_run_order() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let mut a = RunRow {
            id: "a".into(),
            workflow: "bf".into(),
            started_ms: 1,
            status: "failed".into(),
            ..Default::default()
        };
        a.tasks = vec![task("data@2025-01-01", "failed"), task("report", "succeeded")];
        let mut b = RunRow {
            id: "b".into(),
            workflow: "bf".into(),
            started_ms: 2,
            status: "succeeded".into(),
            ..Default::default()
        };
        b.tasks = vec![task("data@2025-01-01", "cached")];
        h.import_runs(&[b, a]).unwrap();
        let cells = h.partition_cells("bf").unwrap();
        let got: Vec<_> = cells.iter().map(|c| (c.task.as_str(), c.partition.as_str(), c.status.as_str())).collect();
        assert_eq!(got, [("data", "2025-01-01", "failed"), ("data", "2025-01-01", "cached")]);
        assert!(h.partition_cells("other").unwrap().is_empty());
        assert!(h.models().unwrap().is_empty() && h.verdicts(5).unwrap().is_empty());
    }
}
