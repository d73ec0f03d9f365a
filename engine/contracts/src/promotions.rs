//! What the circuit breaker, the drift cooldown and rollbacks read from a model registry: when
//! each version was promoted, whether a person approved it, and the version deployed before it.
//!
//! Only the promotions a self-healing loop made count: versions deployed through an `Approval`
//! step (their `metadata.json` records its `approval`). A model deployed by hand, or by a
//! pipeline without an `Approval` step, starts no cooldown and is not counted by the breaker.
//!
//! The promotion time is `metadata.json`'s `promoted_ms`; versions deployed before it was
//! recorded fall back to the modification time of their `metadata.json` (written once, when
//! the version was staged). Metadata that cannot be parsed (a newer layout) still counts, by
//! that time, as an automatic loop promotion: the breaker errs on the side of asking a person.

use std::fs;
use std::path::Path;

use crate::approval::ApprovalDecision;
use crate::registry::{Metadata, metadata_file, model_file, parse_version, read_metadata, versions};

/// How a version was promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Without an `Approval` step (by hand, or a pipeline without one).
    Outside,
    /// Through an `Approval` step that let it through by itself.
    Automatic,
    /// Through an `Approval` step, approved by a person.
    Approved,
}

/// When `version` was promoted (Unix ms) and how; `None` when it has no `metadata.json`.
fn promotion(registry: &Path, name: &str, version: &str) -> Option<(i64, How)> {
    let meta = read_metadata(registry, name, version);
    let recorded = meta.as_ref().ok().and_then(|m| m.promoted_ms);
    let at = match recorded {
        Some(t) => t,
        None => mtime_ms(&metadata_file(registry, name, version))?,
    };
    let how = meta.as_ref().map_or(How::Automatic, how);
    Some((at, how))
}

fn how(m: &Metadata) -> How {
    match m.approval.as_ref().map(|a| a.decision) {
        None => How::Outside,
        Some(ApprovalDecision::Automatic) => How::Automatic,
        Some(ApprovalDecision::Approved) => How::Approved,
    }
}

/// A file's modification time in Unix ms.
fn mtime_ms(path: &Path) -> Option<i64> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since.as_millis() as i64)
}

/// Every version with a known promotion time, oldest promotion first (ties: lower version
/// first): `(version, promoted_ms, how)`.
fn promotions(registry: &Path, name: &str) -> Vec<(String, i64, How)> {
    let mut out: Vec<(String, i64, How)> = versions(registry, name)
        .into_iter()
        .filter_map(|v| promotion(registry, name, &v.version).map(|(at, auto)| (v.version, at, auto)))
        .collect();
    // `versions` is in version order; a stable sort keeps it among equal times.
    out.sort_by_key(|(_, at, _)| *at);
    out
}

/// Versions an `Approval` step let through by itself (`decision: automatic`) at or after
/// `since_ms`, oldest first: what the circuit breaker counts within its window.
pub fn automatic_promotions(registry: &Path, name: &str, since_ms: i64) -> Vec<(String, i64)> {
    promotions(registry, name)
        .into_iter()
        .filter(|(_, at, how)| *how == How::Automatic && *at >= since_ms)
        .map(|(v, at, _)| (v, at))
        .collect()
}

/// The most recent promotion of `name` through an `Approval` step (automatic or approved):
/// `(version, promoted_ms)`; `None` when the loop never promoted one. A rollback is not a
/// promotion: after one, this is still the version rolled back from (a cooldown runs from the
/// last promotion).
pub fn last_promotion(registry: &Path, name: &str) -> Option<(String, i64)> {
    promotions(registry, name).into_iter().rev().find(|(_, _, how)| *how != How::Outside).map(|(v, at, _)| (v, at))
}

/// The version a rollback from `version` returns to: the one current when it was promoted
/// (its metadata's `previous`) if that still has its model, else the highest version below it
/// that has one; `None` when there is none.
pub fn previous_of(registry: &Path, name: &str, version: &str) -> Option<String> {
    let n = parse_version(version)?;
    let usable = |v: &str| v != version && model_file(registry, name, v).is_file();
    if let Some(prev) = read_metadata(registry, name, version).ok().and_then(|m| m.previous)
        && parse_version(&prev).is_some()
        && usable(&prev)
    {
        return Some(prev);
    }
    versions(registry, name)
        .into_iter()
        .rev()
        .find(|v| parse_version(&v.version).is_some_and(|m| m < n) && usable(&v.version))
        .map(|v| v.version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::ApprovalRecord;
    use crate::registry::{promote, set_current, version_dir};

    fn approval(decision: ApprovalDecision) -> ApprovalRecord {
        ApprovalRecord {
            version: 1,
            decision,
            model: None,
            model_digest: "m".into(),
            verdict_digest: "v".into(),
            reasons: vec![],
            by: Some("ana".into()),
            note: None,
            decided_ms: Some(1),
            request: Some(1),
        }
    }

    /// Rewrites a version's `promoted_ms` (tests need times apart).
    fn set_promoted(reg: &Path, version: &str, at: Option<i64>) {
        let mut m = read_metadata(reg, "churn", version).unwrap();
        m.promoted_ms = at;
        fs::write(metadata_file(reg, "churn", version), m.to_json()).unwrap();
    }

    #[test]
    fn promote_records_time_previous_and_approval() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path();
        let before = crate::registry::now_ms();
        promote(reg, "churn", b"m1", "d1", b"{}", None, None).unwrap();
        let approved = approval(ApprovalDecision::Approved);
        promote(reg, "churn", b"m2", "d2", b"{}", None, Some(&approved)).unwrap();
        let m1 = read_metadata(reg, "churn", "v0001").unwrap();
        let m2 = read_metadata(reg, "churn", "v0002").unwrap();
        assert_eq!((m1.previous, m1.approval), (None, None));
        assert_eq!((m2.previous.as_deref(), m2.approval.as_ref()), (Some("v0001"), Some(&approved)));
        assert!(m2.promoted_ms.unwrap() >= before);
        let json: serde_json::Value = serde_json::from_str(&m2.to_json()).unwrap();
        assert_eq!(json["approval"]["decision"], "approved");
        assert_eq!(json["previous"], "v0001");
    }

    #[test]
    fn automatic_promotions_within_a_window_and_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path();
        assert_eq!(last_promotion(reg, "churn"), None);
        promote(reg, "churn", b"m1", "d1", b"{}", None, None).unwrap();
        promote(reg, "churn", b"m2", "d2", b"{}", None, Some(&approval(ApprovalDecision::Approved))).unwrap();
        promote(reg, "churn", b"m3", "d3", b"{}", None, Some(&approval(ApprovalDecision::Automatic))).unwrap();
        promote(reg, "churn", b"m4", "d4", b"{}", None, None).unwrap();
        for (v, at) in [("v0001", 1_000), ("v0002", 2_000), ("v0003", 3_000), ("v0004", 4_000)] {
            set_promoted(reg, v, Some(at));
        }
        // v0001 and v0004 were deployed without an Approval step: not the loop's promotions.
        assert_eq!(automatic_promotions(reg, "churn", 0), [("v0003".to_owned(), 3_000)]);
        assert_eq!(automatic_promotions(reg, "churn", 3_000), [("v0003".to_owned(), 3_000)], "at or after");
        assert!(automatic_promotions(reg, "churn", 3_001).is_empty());
        assert_eq!(last_promotion(reg, "churn"), Some(("v0003".into(), 3_000)), "the loop's last promotion");
        promote(reg, "churn", b"m5", "d5", b"{}", None, Some(&approval(ApprovalDecision::Approved))).unwrap();
        set_promoted(reg, "v0005", Some(5_000));
        assert_eq!(last_promotion(reg, "churn"), Some(("v0005".into(), 5_000)), "approved ones start a cooldown too");
        set_current(reg, "churn", "v0002").unwrap();
        assert_eq!(last_promotion(reg, "churn"), Some(("v0005".into(), 5_000)), "a rollback is not a promotion");
    }

    #[test]
    fn metadata_without_a_promotion_time_falls_back_to_its_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path();
        promote(reg, "churn", b"m1", "d1", b"{}", None, Some(&approval(ApprovalDecision::Automatic))).unwrap();
        set_promoted(reg, "v0001", None);
        let mtime = mtime_ms(&metadata_file(reg, "churn", "v0001")).unwrap();
        assert_eq!(last_promotion(reg, "churn"), Some(("v0001".into(), mtime)));
        assert_eq!(automatic_promotions(reg, "churn", mtime), [("v0001".to_owned(), mtime)]);
        // A version added by hand (no metadata) has no promotion time.
        fs::create_dir_all(version_dir(reg, "churn", "v0002")).unwrap();
        fs::write(model_file(reg, "churn", "v0002"), b"m2").unwrap();
        assert_eq!(last_promotion(reg, "churn"), Some(("v0001".into(), mtime)));
        // Unparseable metadata counts as automatic, by its mtime.
        fs::write(metadata_file(reg, "churn", "v0002"), r#"{"version": 9}"#).unwrap();
        assert_eq!(automatic_promotions(reg, "churn", 0).len(), 2);
    }

    #[test]
    fn previous_of_prefers_the_recorded_version_then_the_highest_below() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path();
        for m in [b"m1", b"m2", b"m3"] {
            promote(reg, "churn", m, "d", b"{}", None, None).unwrap();
        }
        assert_eq!(previous_of(reg, "churn", "v0003").as_deref(), Some("v0002"));
        assert_eq!(previous_of(reg, "churn", "v0001"), None, "nothing before the first");
        // v0004 promoted while v0001 was current (after a rollback): back to v0001.
        set_current(reg, "churn", "v0001").unwrap();
        promote(reg, "churn", b"m4", "d", b"{}", None, None).unwrap();
        assert_eq!(previous_of(reg, "churn", "v0004").as_deref(), Some("v0001"));
        // The recorded one is gone: the highest version below that has a model.
        fs::remove_file(model_file(reg, "churn", "v0001")).unwrap();
        assert_eq!(previous_of(reg, "churn", "v0004").as_deref(), Some("v0003"));
        fs::remove_file(model_file(reg, "churn", "v0003")).unwrap();
        assert_eq!(previous_of(reg, "churn", "v0004").as_deref(), Some("v0002"));
        assert_eq!(previous_of(reg, "churn", "garbage"), None);
    }
}
