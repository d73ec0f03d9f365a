//! Drift incidents: from the first drift alert on a deployed model to a healthy model deployed
//! (or the drift cleared), for the time-to-recovery the payoff report shows.
//!
//! At most one incident per model (`registry`, `model`) is open at a time: a drift alert opens
//! one, or counts another alert on the open one (a drift storm coalesces into one incident);
//! a deploy of the model or a drift check that finds no drift resolves it.

use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::Serialize;

use crate::{History, HistoryError};

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

impl Incident {
    /// From detection to resolution (ms), once resolved.
    pub fn time_to_recovery_ms(&self) -> Option<i64> {
        self.resolved_ms.map(|r| r - self.detected_ms)
    }
}

pub(crate) const COLUMNS: &str =
    "id, workflow, registry, model, detected_ms, detected_run, alerts, resolved_ms, resolved_run, resolution";

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        workflow: r.get(1)?,
        registry: r.get(2)?,
        model: r.get(3)?,
        detected_ms: r.get(4)?,
        detected_run: r.get(5)?,
        alerts: r.get(6)?,
        resolved_ms: r.get(7)?,
        resolved_run: r.get(8)?,
        resolution: r.get(9)?,
    })
}

fn select(tx: &Transaction<'_>, filter: &str, p: impl rusqlite::Params) -> rusqlite::Result<Vec<Incident>> {
    let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM incidents {filter}"))?;
    stmt.query_map(p, from_row)?.collect()
}

const OPEN: &str = "WHERE registry = ?1 AND model = ?2 AND resolved_ms IS NULL ORDER BY id";

impl History {
    /// A drift alert on `model` in `registry` (a resolved directory path) at `now_ms`: opens an
    /// incident, or counts another alert on the one already open. Returns it.
    pub fn drift_alert(
        &self,
        workflow: &str,
        registry: &str,
        model: &str,
        run_id: &str,
        now_ms: i64,
    ) -> Result<Incident, HistoryError> {
        self.with(|tx| {
            let open: Option<i64> = tx
                .query_row(&format!("SELECT id FROM incidents {OPEN} LIMIT 1"), params![registry, model], |r| r.get(0))
                .optional()?;
            let id = match open {
                Some(id) => {
                    tx.execute("UPDATE incidents SET alerts = alerts + 1 WHERE id = ?1", params![id])?;
                    id
                }
                None => {
                    tx.execute(
                        "INSERT INTO incidents (workflow, registry, model, detected_ms, detected_run, alerts) \
                         VALUES (?1, ?2, ?3, ?4, ?5, 1)",
                        params![workflow, registry, model, now_ms, run_id],
                    )?;
                    tx.last_insert_rowid()
                }
            };
            tx.query_row(&format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"), params![id], from_row)
        })
    }

    /// Resolves the open incident(s) of `model` in `registry` at `now_ms` (`resolution`:
    /// `deployed v0004`, `cleared`). Returns those it resolved (none when nothing was open).
    pub fn resolve_incidents(
        &self,
        registry: &str,
        model: &str,
        run_id: &str,
        resolution: &str,
        now_ms: i64,
    ) -> Result<Vec<Incident>, HistoryError> {
        self.with(|tx| {
            let open = select(tx, OPEN, params![registry, model])?;
            for i in &open {
                tx.execute(
                    "UPDATE incidents SET resolved_ms = ?2, resolved_run = ?3, resolution = ?4 WHERE id = ?1",
                    params![i.id, now_ms.max(i.detected_ms), run_id, resolution],
                )?;
            }
            let ids: Vec<i64> = open.iter().map(|i| i.id).collect();
            let mut done = Vec::with_capacity(ids.len());
            for id in ids {
                done.push(tx.query_row(
                    &format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"),
                    params![id],
                    from_row,
                )?);
            }
            Ok(done)
        })
    }

    /// The most recent incidents first (open and resolved), at most `limit`.
    pub fn incidents(&self, limit: usize) -> Result<Vec<Incident>, HistoryError> {
        let lim = limit.min(i64::MAX as usize) as i64;
        self.with(|tx| select(tx, "ORDER BY detected_ms DESC, id DESC LIMIT ?1", params![lim]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        (dir, h)
    }

    #[test]
    fn alerts_coalesce_into_one_open_incident_until_a_deploy_resolves_it() {
        let (_dir, h) = open();
        let first = h.drift_alert("self-heal", "/w/registry", "churn", "r1", 1_000).unwrap();
        assert_eq!((first.alerts, first.detected_ms, first.detected_run.as_str()), (1, 1_000, "r1"));
        assert_eq!(first.resolved_ms, None);
        for (n, run) in ["r2", "r3"].iter().enumerate() {
            let again = h.drift_alert("self-heal", "/w/registry", "churn", run, 2_000).unwrap();
            assert_eq!(
                (again.id, again.alerts, again.detected_ms),
                (first.id, n as u32 + 2, 1_000),
                "the same incident"
            );
        }
        let other = h.drift_alert("self-heal", "/w/registry", "fraud", "r3", 2_500).unwrap();
        assert_ne!(other.id, first.id, "one incident per model");

        let done = h.resolve_incidents("/w/registry", "churn", "r4", "deployed v0004", 61_000).unwrap();
        assert_eq!(done.len(), 1);
        let d = &done[0];
        assert_eq!(
            (d.id, d.alerts, d.resolution.as_deref(), d.resolved_run.as_deref()),
            (first.id, 3, Some("deployed v0004"), Some("r4"))
        );
        assert_eq!(d.time_to_recovery_ms(), Some(60_000));
        assert!(
            h.resolve_incidents("/w/registry", "churn", "r5", "cleared", 70_000).unwrap().is_empty(),
            "nothing open"
        );

        let next = h.drift_alert("self-heal", "/w/registry", "churn", "r6", 80_000).unwrap();
        assert_ne!(next.id, first.id, "after resolution a new alert opens a new incident");
        let all = h.incidents(10).unwrap();
        let ids: Vec<i64> = all.iter().map(|i| i.id).collect();
        assert_eq!(ids, [next.id, other.id, first.id], "newest first");
        assert_eq!(h.incidents(1).unwrap().len(), 1);
    }

    #[test]
    fn cleared_drift_resolves_and_a_resolution_never_precedes_detection() {
        let (_dir, h) = open();
        let i = h.drift_alert("monitor", "/w/registry", "churn", "r1", 5_000).unwrap();
        let done = h.resolve_incidents("/w/registry", "churn", "r2", "cleared", 4_000).unwrap();
        assert_eq!((done[0].id, done[0].resolution.as_deref()), (i.id, Some("cleared")));
        assert_eq!(done[0].time_to_recovery_ms(), Some(0), "a clock step back does not make it negative");
        assert!(h.resolve_incidents("/other", "churn", "r2", "cleared", 9_000).unwrap().is_empty(), "per registry");
    }
}
