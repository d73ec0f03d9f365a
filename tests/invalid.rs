//! Broken workflows in `tests/invalid/`: each `NN-name.ron` must fail `dagrun validate` with exit code 3
//! and exactly the stderr stored next to it in `NN-name.stderr`.
//!
//! Run with `DAGRUN_BLESS=1` to (re)write the `.stderr` files from the current output instead of comparing.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Every case must exit with this code (`Exit::InvalidWorkflow`).
const INVALID_WORKFLOW: i32 = 3;

/// The suite must not silently shrink.
const MIN_CASES: usize = 20;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/invalid")
}

/// File stems in `dir` with the given extension, sorted.
fn stems(dir: &Path, ext: &str) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|p| p.extension() == Some(OsStr::new(ext)))
        .map(|p| p.file_stem().expect("file has a name").to_string_lossy().into_owned())
        .collect()
}

/// Runs `dagrun validate <file>` the way the `.stderr` files were recorded.
fn validate(dir: &Path, file: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dagrun"))
        .arg("validate")
        .arg(file)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run dagrun: {e}"));
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Where two texts first differ, as `at line N: expected .. / actual ..`.
fn first_difference(expected: &str, actual: &str) -> String {
    let (mut e, mut a) = (expected.split_inclusive('\n'), actual.split_inclusive('\n'));
    for line in 1.. {
        match (e.next(), a.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (x, y) => {
                let show = |l: Option<&str>| l.map_or("<end of output>".to_owned(), |l| format!("{l:?}"));
                return format!("at line {line}:\n  expected {}\n  actual   {}", show(x), show(y));
            }
        }
    }
    unreachable!("the loop only ends by returning")
}

#[test]
fn invalid_workflows_report_exact_diagnostics() {
    let dir = cases_dir();
    let bless = std::env::var_os("DAGRUN_BLESS").is_some_and(|v| v == "1");
    let rons = stems(&dir, "ron");
    let expected_files = stems(&dir, "stderr");

    assert!(rons.len() >= MIN_CASES, "expected at least {MIN_CASES} cases in {}, found {}", dir.display(), rons.len());
    let orphans: Vec<&String> = expected_files.difference(&rons).collect();
    assert!(orphans.is_empty(), "`.stderr` files without a `.ron` case: {orphans:?}");
    if !bless {
        let missing: Vec<&String> = rons.difference(&expected_files).collect();
        assert!(missing.is_empty(), "cases without a `.stderr` file (run with DAGRUN_BLESS=1): {missing:?}");
    }

    let mut failures = Vec::new();
    for stem in &rons {
        let ron = format!("{stem}.ron");
        let expected_path = dir.join(format!("{stem}.stderr"));
        let (code, actual) = validate(&dir, &ron);
        let mut problems = String::new();
        if code != Some(INVALID_WORKFLOW) {
            let _ = writeln!(problems, "exit code: expected {INVALID_WORKFLOW}, got {code:?}");
        }
        if bless {
            fs::write(&expected_path, &actual)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", expected_path.display()));
        } else {
            let expected = fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", expected_path.display()));
            if expected != actual {
                let _ = writeln!(problems, "stderr differs {}", first_difference(&expected, &actual));
                let _ = write!(problems, "--- expected\n{expected}--- actual\n{actual}--- end\n");
            }
        }
        if !problems.is_empty() {
            failures.push(format!("=== {ron}\n{problems}"));
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {} invalid-workflow cases failed (DAGRUN_BLESS=1 rewrites the .stderr files):\n\n{}",
        failures.len(),
        rons.len(),
        failures.join("\n")
    );
}
