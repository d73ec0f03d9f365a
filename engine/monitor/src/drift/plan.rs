//! Which columns are compared, from both files' column names and the options: the columns in
//! both files (or the listed ones), minus `exclude`; the rest is reported as skipped. Options
//! that name columns the comparison cannot honour are errors naming the file and the column.

use std::collections::HashSet;
use std::path::Path;

use dagrun_contracts::drift::Skipped;

use super::{DriftError, DriftOptions};

/// The columns to compare and the ones skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Compared, in the reference's order (or the `columns` order).
    pub compared: Vec<String>,
    /// Not compared, and why.
    pub skipped: Skipped,
}

/// Names for an error message: the first 20, then how many more.
fn list(names: &[String]) -> String {
    const SHOWN: usize = 20;
    if names.is_empty() {
        return "none".into();
    }
    let mut s = names.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" … ({} more)", names.len() - SHOWN));
    }
    s
}

/// Plans the comparison of `reference` (columns `ref_names`) with `current` (`cur_names`).
pub fn plan(
    (reference, ref_names): (&Path, &[String]),
    (current, cur_names): (&Path, &[String]),
    opts: &DriftOptions,
) -> Result<Plan, DriftError> {
    let in_ref: HashSet<&str> = ref_names.iter().map(String::as_str).collect();
    let in_cur: HashSet<&str> = cur_names.iter().map(String::as_str).collect();
    let excluded: HashSet<&str> = opts.exclude.iter().map(String::as_str).collect();
    let compared: Vec<String> = match &opts.columns {
        Some(listed) => {
            for c in listed {
                for (file, names, set) in [(reference, ref_names, &in_ref), (current, cur_names, &in_cur)] {
                    if !set.contains(c.as_str()) {
                        return Err(DriftError::Options(format!(
                            "`columns` lists `{c}`, which is not in {} (its columns: {})",
                            file.display(),
                            list(names)
                        )));
                    }
                }
            }
            listed.iter().filter(|c| !excluded.contains(c.as_str())).cloned().collect()
        }
        None => ref_names
            .iter()
            .filter(|c| in_cur.contains(c.as_str()) && !excluded.contains(c.as_str()))
            .cloned()
            .collect(),
    };
    let only = |names: &[String], other: &HashSet<&str>| -> Vec<String> {
        names.iter().filter(|c| !other.contains(c.as_str()) && !excluded.contains(c.as_str())).cloned().collect()
    };
    let skipped = Skipped {
        only_in_reference: only(ref_names, &in_cur),
        only_in_current: only(cur_names, &in_ref),
        excluded: opts
            .exclude
            .iter()
            .filter(|c| in_ref.contains(c.as_str()) || in_cur.contains(c.as_str()))
            .cloned()
            .collect(),
    };
    let why_not = |c: &str| -> String {
        if excluded.contains(c) {
            "it is in `exclude`".into()
        } else if !in_ref.contains(c) {
            format!("it is not in {}", reference.display())
        } else if !in_cur.contains(c) {
            format!("it is not in {}", current.display())
        } else {
            "it is not in `columns`".into()
        }
    };
    let is_compared: HashSet<&str> = compared.iter().map(String::as_str).collect();
    if let Some(c) = opts.critical.iter().find(|c| !is_compared.contains(c.as_str())) {
        return Err(DriftError::Options(format!("critical column `{c}` is not compared: {}", why_not(c))));
    }
    if let Some(c) = opts.tests.keys().find(|c| !in_ref.contains(c.as_str()) && !in_cur.contains(c.as_str())) {
        return Err(DriftError::Options(format!(
            "`tests` names column `{c}`, which is in neither {} nor {}",
            reference.display(),
            current.display()
        )));
    }
    if compared.is_empty() {
        return Err(DriftError::Options(format!(
            "no column to compare: {} has {}; {} has {}; excluded: {}",
            reference.display(),
            list(ref_names),
            current.display(),
            list(cur_names),
            list(&opts.exclude)
        )));
    }
    Ok(Plan { compared, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn run(r: &[&str], c: &[&str], opts: &DriftOptions) -> Result<Plan, DriftError> {
        plan((Path::new("ref.csv"), &names(r)), (Path::new("cur.csv"), &names(c)), opts)
    }

    #[test]
    fn common_columns_in_reference_order_the_rest_skipped() {
        let opts = DriftOptions { exclude: names(&["id", "nowhere"]), ..DriftOptions::default() };
        let p = run(&["id", "b", "a", "old"], &["a", "new", "b", "id"], &opts).unwrap();
        assert_eq!(p.compared, ["b", "a"]);
        assert_eq!(p.skipped.only_in_reference, ["old"]);
        assert_eq!(p.skipped.only_in_current, ["new"]);
        assert_eq!(p.skipped.excluded, ["id"]);
    }

    #[test]
    fn listed_columns_must_be_on_both_sides() {
        let opts = DriftOptions { columns: Some(names(&["a", "b"])), ..DriftOptions::default() };
        assert_eq!(run(&["a", "b", "c"], &["b", "a"], &opts).unwrap().compared, ["a", "b"]);
        let e = run(&["a", "b"], &["a"], &opts).unwrap_err().to_string();
        assert_eq!(e, "`columns` lists `b`, which is not in cur.csv (its columns: a)");
    }

    #[test]
    fn critical_columns_must_be_compared() {
        let opts = DriftOptions { critical: names(&["b"]), ..DriftOptions::default() };
        let e = run(&["a", "b"], &["a"], &opts).unwrap_err().to_string();
        assert_eq!(e, "critical column `b` is not compared: it is not in cur.csv");
        let opts = DriftOptions { critical: names(&["a"]), exclude: names(&["a"]), ..DriftOptions::default() };
        let e = run(&["a", "b"], &["a", "b"], &opts).unwrap_err().to_string();
        assert_eq!(e, "critical column `a` is not compared: it is in `exclude`");
    }

    #[test]
    fn unknown_test_columns_and_nothing_in_common_are_errors() {
        let mut opts = DriftOptions::default();
        opts.tests.insert("typo".into(), Default::default());
        let e = run(&["a"], &["a"], &opts).unwrap_err().to_string();
        assert_eq!(e, "`tests` names column `typo`, which is in neither ref.csv nor cur.csv");
        let e = run(&["a"], &["b"], &DriftOptions::default()).unwrap_err().to_string();
        assert_eq!(e, "no column to compare: ref.csv has a; cur.csv has b; excluded: none");
    }
}
