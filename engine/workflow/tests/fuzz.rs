//! A deterministic mutation fuzzer for the workflow parser: mutates the workflows in `workflows/`
//! and `tests/invalid/` (byte flips, inserted brackets, quotes and unusual whitespace, truncations,
//! duplications, deep nesting, long lines) and checks that loading and rendering never panic.
//!
//! `DAGRUN_FUZZ_SECS` sets how long it runs (default 10), `DAGRUN_FUZZ_SEED` the seed (default:
//! from the clock). It prints the seed and the number of inputs tried; a failure names the seed
//! and the input's index, and rerunning with that seed replays the same inputs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dagrun_workflow::{Report, Source, Workflow};
use miette::{GraphicalReportHandler, GraphicalTheme};

/// Text fragments worth inserting: structure, quoting, and characters that confuse line counting.
const SNIPPETS: &[&str] = &[
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    "\"",
    "'",
    ",",
    ":",
    "r#\"",
    "\"#",
    "//",
    "/*",
    "*/",
    "\\",
    "\u{2028}",
    "\u{2029}",
    "\u{85}",
    "\u{b}",
    "\u{c}",
    "\u{feff}",
    "\u{200e}",
    "é",
    "😀",
    "\r\n",
    "\n",
    "\t",
    "#![enable(implicit_some)]",
    "Some(",
    "None",
    "File(\"",
    "Output(\"",
    "Task(",
    "{date}",
    "..",
    "/",
    ".dagrun/",
    "1e999",
    "-",
    "NaN",
];

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files: Vec<PathBuf> = ["workflows", "tests/invalid"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap_or_else(|e| panic!("cannot read {d}: {e}")))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "expected the workflow corpus, found {} files", files.len());
    files.iter().map(|p| std::fs::read(p).expect("readable corpus file")).collect()
}

/// One to four random mutations of `input`.
fn mutate(rng: &mut fastrand::Rng, mut input: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.usize(..4) {
        let at = rng.usize(..input.len() + 1);
        match rng.usize(..9) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] ^= 1 << rng.usize(..8);
            }
            1 | 2 => {
                let s = SNIPPETS[rng.usize(..SNIPPETS.len())].as_bytes();
                input.splice(at..at, s.iter().copied());
            }
            3 => input.truncate(at),
            4 => {
                let end = (at + rng.usize(..200)).min(input.len());
                let chunk = input[at..end].to_vec();
                input.splice(end..end, chunk);
            }
            5 => {
                let end = (at + rng.usize(..50)).min(input.len());
                input.drain(at..end);
            }
            6 => {
                let open = [b"[".as_slice(), b"(", b"{", b"Some("][rng.usize(..4)];
                let deep = open.repeat(100 + rng.usize(..300));
                input.splice(at..at, deep);
            }
            7 => input.splice(at..at, std::iter::repeat_n(b' ', 60_000 + rng.usize(..10_000))).for_each(drop),
            _ => input.insert(at, rng.u8(..)),
        }
    }
    input
}

/// Loads `bytes` like `Workflow::load` does and renders every diagnostic like the CLI.
fn check(bytes: &[u8], handler: &GraphicalReportHandler) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    if let Err(diags) = Workflow::from_source(Source::new("fuzz.ron", text), PathBuf::from("/tmp")) {
        assert!(!diags.is_empty(), "an invalid workflow must have at least one diagnostic");
        for d in &diags {
            let mut out = String::new();
            handler.render_report(&mut out, &Report::new(d)).expect("diagnostic renders");
            let _ = d.to_string();
        }
    }
}

#[test]
fn mutated_workflows_never_panic() {
    let secs: u64 = std::env::var("DAGRUN_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = std::env::var("DAGRUN_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    }) | 1;
    println!("fuzz: seed {seed} (rerun with DAGRUN_FUZZ_SEED={seed}), {secs} s");
    let corpus = corpus();
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(100);
    let mut rng = fastrand::Rng::with_seed(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tried = 0u64;
    while Instant::now() < deadline {
        let base = corpus[rng.usize(..corpus.len())].clone();
        let input = mutate(&mut rng, base);
        if catch_unwind(AssertUnwindSafe(|| check(&input, &handler))).is_err() {
            let path = std::env::temp_dir().join(format!("dagrun-fuzz-{seed}-{tried}.ron"));
            let _ = std::fs::write(&path, &input);
            panic!("input #{tried} of seed {seed} panicked; saved to {}", path.display());
        }
        tried += 1;
    }
    println!("fuzz: {tried} inputs tried in {secs} s, no panic");
    assert!(tried > 0, "the fuzzer tried no input");
}
