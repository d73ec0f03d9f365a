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

/// The number of cases: the suite must not silently shrink, nor grow without this line saying so.
const CASES: usize = 63;

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

    assert_eq!(rons.len(), CASES, "expected exactly {CASES} cases in {}: update CASES with the cases", dir.display());
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

/// Inputs that once crashed the parser or lost every location, generated (some are large):
/// `(file name, contents, expected stderr)`.
fn generated_cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let wf = |task: &str| format!("Workflow(\n    name: \"gen\",\n    tasks: [\n        {task},\n    ],\n)\n");
    let long_name = "t".repeat(300);
    vec![
        ("deep.ron", "[".repeat(20_000).into_bytes(), DEEP),
        (
            "long-line.ron",
            wf(&format!("Task(name: \"a\", kind: Command(run: \"x\"), retries:{}\"three\")", " ".repeat(70_000)))
                .into_bytes(),
            LONG_LINE,
        ),
        (
            "not-utf8.ron",
            // A Latin-1 `é` (0xE9) where UTF-8 is expected.
            wf("Task(name: \"caf@\", kind: Command(run: \"x\"))")
                .bytes()
                .map(|b| if b == b'@' { 0xe9 } else { b })
                .collect(),
            NOT_UTF8,
        ),
        (
            "line-separators.ron",
            wf("Task(\u{2028}name: \"a\",\u{2029}kind:\u{b}Command(run: \"x\"),\u{c}after: [\u{85}\"nope\"])")
                .into_bytes(),
            LINE_SEPARATORS,
        ),
        (
            "bom.ron",
            format!("\u{feff}{}", wf("Task(name: \"a\", kind: Command(run: \"x\"), retries: -1)")).into_bytes(),
            BOM,
        ),
        (
            "long-name.ron",
            wf(&format!("Task(name: \"{long_name}\", kind: Command(run: \"x\"))")).into_bytes(),
            LONG_NAME,
        ),
    ]
}

const DEEP: &str = concat!(
    "dagrun::too-deep\n",
    "\n",
    "  × brackets nest more than 128 levels deep\n",
    "  │   at deep.ron:1:129 (the line is too long to show)\n",
    "  help: a workflow needs only a few levels of `(`, `[` and `{`: look for unclosed or repeated\n",
    "        brackets\n",
    "\n",
    "error: deep.ron is invalid: 1 problem\n",
);

const LONG_LINE: &str = concat!(
    "dagrun::wrong-type\n",
    "\n",
    "  × `retries` expects a whole number, found `\"three\"`\n",
    "  │   at long-line.ron:4:70058 (the line is too long to show)\n",
    "  help: write it like `retries: 3`\n",
    "\n",
    "error: long-line.ron is invalid: 1 problem\n",
);

const NOT_UTF8: &str = concat!(
    "dagrun::not-utf8\n",
    "\n",
    "  × the file is not valid UTF-8 (byte 63, line 4, column 24)\n",
    "   ╭─[not-utf8.ron:4:24]\n",
    " 3 │     tasks: [\n",
    " 4 │         Task(name: \"caf�\", kind: Command(run: \"x\")),\n",
    "   ·                        ┬\n",
    "   ·                        ╰── invalid byte here (shown as �)\n",
    " 5 │     ],\n",
    "   ╰────\n",
    "  help: save the workflow file as UTF-8\n",
    "\n",
    "error: not-utf8.ron is invalid: 1 problem\n",
);

const LINE_SEPARATORS: &str = concat!(
    "dagrun::unknown-task\n",
    "\n",
    "  × task `a` runs after unknown task `nope`\n",
    "   ╭─[line-separators.ron:4:65]\n",
    " 3 │     tasks: [\n",
    " 4 │         Task(\u{2028}name: \"a\",\u{2029}kind:\u{b}Command(run: \"x\"),\u{c}after: [\u{85}\"nope\"]),\n",
    "   ·                                                         ───┬──\n",
    "   ·                                                            ╰── no task has this name\n",
    " 5 │     ],\n",
    "   ╰────\n",
    "  help: this is the only task\n",
    "\n",
    "error: line-separators.ron is invalid: 1 problem\n",
);

const BOM: &str = concat!(
    "dagrun::wrong-type\n",
    "\n",
    "  × `retries` expects a whole number, found `-1`\n",
    "   ╭─[bom.ron:4:59]\n",
    " 3 │     tasks: [\n",
    " 4 │         Task(name: \"a\", kind: Command(run: \"x\"), retries: -1),\n",
    "   ·                                                           ─┬\n",
    "   ·                                                            ╰── expected a whole number\n",
    " 5 │     ],\n",
    "   ╰────\n",
    "  help: write it like `retries: 3`\n",
    "\n",
    "error: bom.ron is invalid: 1 problem\n",
);

const LONG_NAME: &str = concat!(
    "dagrun::name-too-long\n",
    "\n",
    "  × task name `tttttttttttttttttttt…` is 300 bytes long, more than 100\n",
    "   ╭─[long-name.ron:4:20]\n",
    " 3 │     tasks: [\n",
    " 4 │         Task(name: \"tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\", kind: Command(run: \"x\")),\n",
    "   ·                    ───────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┬──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────\n",
    "   ·                                                                                                                                                                           ╰── too long\n",
    " 5 │     ],\n",
    "   ╰────\n",
    "  help: dagrun names state files after it, and file names are limited: shorten it to at most 100\n",
    "        bytes\n",
    "\n",
    "error: long-name.ron is invalid: 1 problem\n",
);

#[test]
fn generated_hostile_workflows_fail_cleanly() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut failures = Vec::new();
    for (name, bytes, expected) in generated_cases() {
        fs::write(dir.path().join(name), &bytes).expect("write generated case");
        let (code, actual) = validate(dir.path(), name);
        if code != Some(INVALID_WORKFLOW) || actual != expected {
            failures.push(format!("=== {name}: exit code {code:?} (expected {INVALID_WORKFLOW})\n{actual}--- end\n"));
        }
    }
    assert!(failures.is_empty(), "generated cases failed:\n{}", failures.join("\n"));
}

/// A byte order mark is skipped: the file is valid.
#[test]
fn a_byte_order_mark_is_skipped() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let text = "\u{feff}Workflow(name: \"bom\", tasks: [Task(name: \"a\", kind: Command(run: \"x\"))])\n";
    fs::write(dir.path().join("bom.ron"), text).expect("write workflow");
    let (code, stderr) = validate(dir.path(), "bom.ron");
    assert_eq!(code, Some(0), "a workflow starting with a BOM must validate:\n{stderr}");
}
