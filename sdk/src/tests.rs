//! Host-side tests: everything that does not need a wasm runtime.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::__private::bindings::dagrun::task::types::{Artifact, NamedPath};
use crate::__private::bindings::{Context, TaskError};
use crate::__private::parse_params;
use crate::{Ctx, Error, ErrorKind, Info, Task};

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Params {
    factor: f64,
    name: String,
}

#[derive(Debug, Deserialize, PartialEq)]
struct WithDefault {
    #[serde(default = "one")]
    factor: f64,
}
fn one() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
struct Columns {
    columns: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Nested {
    columns: Vec<String>,
    split: Split,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Split {
    ratio: f64,
}

fn params_err<P: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> Error {
    parse_params::<P>(json).unwrap_err()
}

#[test]
fn params_parse() {
    let p: Params = parse_params(r#"{"factor": 2.5, "name": "x"}"#).unwrap();
    assert_eq!(p, Params { factor: 2.5, name: "x".into() });
    let d: WithDefault = parse_params("{}").unwrap();
    assert_eq!(d.factor, 1.0);
    let d: WithDefault = parse_params("").unwrap();
    assert_eq!(d.factor, 1.0);
}

#[test]
fn params_missing_field_keeps_serde_text() {
    let e = params_err::<Params>("{}");
    assert_eq!(e.kind(), ErrorKind::InvalidParams);
    assert_eq!(e.message(), "missing field `factor`");
    let e = params_err::<Params>(r#"{"factor": 2.0}"#);
    assert_eq!(e.message(), "missing field `name`");
}

#[test]
fn params_wrong_type_names_the_param() {
    let e = params_err::<Params>(r#"{"factor": "x"}"#);
    assert_eq!(e.kind(), ErrorKind::InvalidParams);
    assert_eq!(e.message(), r#"param `factor`: invalid type: string "x", expected f64"#);
    assert_eq!(e.to_string(), r#"invalid params: param `factor`: invalid type: string "x", expected f64"#);
    let ok: Columns = parse_params(r#"{"columns":["charges"]}"#).unwrap();
    assert_eq!(ok.columns, ["charges"]);
    let e = params_err::<Columns>(r#"{"columns":"charges"}"#);
    assert_eq!(e.message(), r#"param `columns`: invalid type: string "charges", expected a sequence"#);
}

#[test]
fn params_nested_errors_name_a_dotted_path() {
    let ok: Nested = parse_params(r#"{"columns": ["a"], "split": {"ratio": 0.5}}"#).unwrap();
    assert_eq!((ok.columns, ok.split.ratio), (vec!["a".to_owned()], 0.5));
    let e = params_err::<Nested>(r#"{"columns": ["a"], "split": {"ratio": "half"}}"#);
    assert_eq!(e.message(), r#"param `split.ratio`: invalid type: string "half", expected f64"#);
    let e = params_err::<Nested>(r#"{"columns": ["a", 2], "split": {"ratio": 0.5}}"#);
    assert_eq!(e.message(), "param `columns[1]`: invalid type: integer `2`, expected a string");
    let e = params_err::<Nested>(r#"{"columns": [], "split": {}}"#);
    assert_eq!(e.message(), "param `split`: missing field `ratio`");
    let e = params_err::<Nested>(r#"{"columns": [], "split": {"ratio": 0.5, "seed": 1}}"#);
    assert_eq!(e.message(), "param `split`: unknown field `seed`, expected `ratio`");
}

#[test]
fn params_unknown_field() {
    let e = params_err::<Params>(r#"{"facter": 2.0, "name": "n"}"#);
    assert_eq!(e.kind(), ErrorKind::InvalidParams);
    assert_eq!(e.message(), "unknown field `facter`, expected `factor` or `name`");
}

#[test]
fn params_not_an_object() {
    let e = params_err::<Params>("5");
    assert_eq!(e.message(), "invalid type: integer `5`, expected struct Params");
}

#[test]
fn params_syntax_error_keeps_its_position() {
    let e = params_err::<Params>(r#"{"factor": "#);
    assert_eq!(e.message(), "EOF while parsing a value at line 1 column 11");
}

#[test]
fn unit_and_option_params_accept_empty_object() {
    parse_params::<()>("{}").unwrap();
    parse_params::<()>("").unwrap();
    assert_eq!(parse_params::<Option<Params>>("{}").unwrap(), None);
    // A non-empty object is still an error for `()`, with serde's message.
    let e = params_err::<()>(r#"{"a": 1}"#);
    assert_eq!(e.message(), "invalid type: map, expected unit");
}

#[test]
fn error_constructors_and_display() {
    let e = Error::invalid_params("`factor` must be positive");
    assert_eq!((e.kind(), e.message()), (ErrorKind::InvalidParams, "`factor` must be positive"));
    assert_eq!(e.to_string(), "invalid params: `factor` must be positive");
    assert_eq!(Error::bad_input("empty file").to_string(), "bad input: empty file");
    assert_eq!(Error::failed("oops").to_string(), "failed: oops");
    let _: &dyn std::error::Error = &e;
}

#[test]
fn io_error_converts_with_question_mark() {
    fn read() -> Result<String, Error> {
        Ok(std::fs::read_to_string("/definitely/not/here")?)
    }
    let e = read().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert!(e.message().starts_with("No such file or directory"), "{}", e.message());
}

#[test]
fn serde_json_error_converts_with_question_mark() {
    fn parse() -> Result<serde_json::Value, Error> {
        Ok(serde_json::from_str("{oops")?)
    }
    let e = parse().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert_eq!(e.message(), "key must be a string at line 1 column 2");
}

#[test]
fn panic_payload_text() {
    let s: Box<dyn std::any::Any + Send> = Box::new("boom");
    assert_eq!(crate::host::panic_message(&*s), "boom");
    let s: Box<dyn std::any::Any + Send> = Box::new(format!("boom {}", 1));
    assert_eq!(crate::host::panic_message(&*s), "boom 1");
    let s: Box<dyn std::any::Any + Send> = Box::new(42);
    assert_eq!(crate::host::panic_message(&*s), "Box<dyn Any>");
}

/// A fresh directory under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dagrun-sdk-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ctx(inputs: &[(&str, &Path)], mounts: &[(&str, &Path)], out: &Path) -> Ctx {
    let list = |l: &[(&str, &Path)]| l.iter().map(|(n, p)| (n.to_string(), p.to_path_buf())).collect();
    Ctx::new("t".into(), "run-1".into(), Some("2025-01-31".into()), list(inputs), list(mounts), out.into())
}

#[test]
fn ctx_accessors_and_inputs() {
    let dir = temp_dir("inputs");
    let data = dir.join("data.csv");
    std::fs::write(&data, "1\n").unwrap();
    let c = ctx(&[("data", &data), ("model", &dir)], &[("cache", &dir)], &dir.join("out"));
    assert_eq!((c.task(), c.run_id(), c.partition()), ("t", "run-1", Some("2025-01-31")));
    assert_eq!(c.input("data").unwrap(), data);
    assert_eq!(c.mount("cache").unwrap(), dir);

    let e = c.input("dta").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    assert_eq!(e.message(), "no input named `dta`; the task's inputs are `data`, `model`");
    let e = c.mount("scratch").unwrap_err();
    assert_eq!(e.message(), "no mount named `scratch`; the task's mounts are `cache`");

    let none = ctx(&[], &[], &dir);
    assert_eq!(none.input("data").unwrap_err().message(), "no input named `data`; the task has no inputs");
    assert_eq!(none.mount("m").unwrap_err().message(), "no mount named `m`; the task has no mounts");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn input_files_of_file_and_directory() {
    let dir = temp_dir("files");
    let glob = dir.join("glob");
    std::fs::create_dir_all(glob.join("sub")).unwrap();
    for f in ["b.csv", "a.csv", "sub/c.csv"] {
        std::fs::write(glob.join(f), "x").unwrap();
    }
    let single = glob.join("a.csv");
    let c = ctx(&[("many", &glob), ("one", &single), ("gone", &dir.join("missing"))], &[], &dir);
    assert_eq!(c.input_files("many").unwrap(), vec![glob.join("a.csv"), glob.join("b.csv"), glob.join("sub/c.csv")]);
    assert_eq!(c.input_files("one").unwrap(), vec![single]);
    let e = c.input_files("gone").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    assert!(e.message().starts_with("input `gone`: cannot read "), "{}", e.message());
    assert_eq!(c.input_files("nope").unwrap_err().kind(), ErrorKind::BadInput);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn outputs_are_registered_and_checked() {
    let dir = temp_dir("outputs");
    let mut c = ctx(&[], &[], &dir);
    let a = c.output("a");
    assert_eq!(a, dir.join("a"));
    let m = c.output_file("model", "models/best.onnx");
    assert_eq!(m, dir.join("models/best.onnx"));
    assert!(dir.join("models").is_dir(), "output_file creates parent directories");
    std::fs::write(&a, "a").unwrap();
    std::fs::write(&m, "m").unwrap();
    let _ = c.output("a"); // asking again keeps one entry
    assert_eq!(c.into_outputs().unwrap(), vec![("a".to_string(), a), ("model".to_string(), m)]);

    let mut c = ctx(&[], &[], &dir);
    let never = c.output("never");
    let e = c.into_outputs().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert_eq!(e.message(), format!("output `never` was registered but never written ({})", never.display()));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[should_panic(expected = "must be a relative path inside the output directory")]
fn output_file_rejects_escapes() {
    let mut c = ctx(&[], &[], Path::new("/out"));
    c.output_file("x", "../x");
}

// --- The exported entry points, driven natively. ---

struct Scale;

#[derive(Deserialize)]
struct ScaleParams {
    #[serde(default = "one")]
    factor: f64,
    #[serde(default)]
    fail: Option<String>,
    #[serde(default)]
    skip_write: bool,
}

#[derive(Serialize)]
struct ScaleSummary {
    rows: usize,
    partition: Option<String>,
}

impl Task for Scale {
    type Params = ScaleParams;
    type Output = ScaleSummary;

    fn describe() -> Info {
        Info::new("scale", "1.2.3").description("Scales numbers.").params_schema(r#"{"type":"object"}"#)
    }

    fn run(ctx: &mut Ctx, p: ScaleParams) -> Result<ScaleSummary, Error> {
        match p.fail.as_deref() {
            Some("bad-input") => return Err(Error::bad_input("column `x` is missing")),
            Some("failed") => return Err(Error::failed("disk full")),
            _ => {}
        }
        let text = std::fs::read_to_string(ctx.input("data")?)?;
        let out: Vec<String> = text.lines().map(|l| (l.parse::<f64>().unwrap() * p.factor).to_string()).collect();
        let path = ctx.output("scaled");
        if !p.skip_write {
            std::fs::write(path, out.join("\n"))?;
        }
        ctx.log_info("done"); // prints to stderr natively
        Ok(ScaleSummary { rows: out.len(), partition: ctx.partition().map(str::to_owned) })
    }
}

fn context(dir: &Path, params: &str) -> Context {
    let data = dir.join("data.csv");
    std::fs::write(&data, "1\n2\n").unwrap();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    Context {
        task: "scale".into(),
        run_id: "r1".into(),
        partition: None,
        params_json: params.into(),
        inputs: vec![NamedPath { name: "data".into(), path: data.to_string_lossy().into() }],
        output_dir: out.to_string_lossy().into(),
        mounts: vec![],
    }
}

fn message(e: TaskError) -> (&'static str, String) {
    match e {
        TaskError::InvalidParams(m) => ("invalid-params", m),
        TaskError::BadInput(m) => ("bad-input", m),
        TaskError::Failed(m) => ("failed", m),
    }
}

#[test]
fn exported_describe() {
    let info = crate::__private::describe::<Scale>();
    assert_eq!(
        (info.name.as_str(), info.version.as_str(), info.description.as_str(), info.params_schema.as_str()),
        ("scale", "1.2.3", "Scales numbers.", r#"{"type":"object"}"#)
    );
    let plain = Info::new("p", "0.1.0");
    assert_eq!((plain.description.as_str(), plain.params_schema.as_str()), ("", "{}"));
}

#[test]
fn exported_run_success() {
    let dir = temp_dir("run-ok");
    let r = crate::__private::run::<Scale>(context(&dir, r#"{"factor": 3}"#)).unwrap();
    assert_eq!(r.summary_json, r#"{"rows":2,"partition":null}"#);
    let path = dir.join("out/scaled");
    assert_eq!(r.artifacts.len(), 1);
    let Artifact { name, path: p } = &r.artifacts[0];
    assert_eq!((name.as_str(), p.as_str()), ("scaled", path.to_str().unwrap()));
    assert_eq!(std::fs::read_to_string(path).unwrap(), "3\n6");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn exported_run_errors() {
    let dir = temp_dir("run-err");
    let run = |params: &str| message(crate::__private::run::<Scale>(context(&dir, params)).unwrap_err());
    assert_eq!(
        run(r#"{"factor": "x"}"#),
        ("invalid-params", r#"param `factor`: invalid type: string "x", expected f64"#.into())
    );
    assert_eq!(run(r#"{"fail": "bad-input"}"#), ("bad-input", "column `x` is missing".into()));
    assert_eq!(run(r#"{"fail": "failed"}"#), ("failed", "disk full".into()));
    let never = dir.join("out/scaled");
    assert_eq!(
        run(r#"{"skip_write": true}"#),
        ("failed", format!("output `scaled` was registered but never written ({})", never.display()))
    );
    let mut ctx = context(&dir, "{}");
    ctx.inputs.clear();
    assert_eq!(
        message(crate::__private::run::<Scale>(ctx).unwrap_err()),
        ("bad-input", "no input named `data`; the task has no inputs".into())
    );
    std::fs::remove_dir_all(dir).unwrap();
}
