//! `dagrun serve` end to end: the real binary on a registry in a temp dir. Bad requests are
//! refused with a status and a message naming the problem and the service keeps answering; several
//! names; `/metrics`. Broken registries: `tests/serve_registry.rs`; hot swap under load, batching
//! and shutdown: `tests/serve_swap.rs`.

mod common;
mod serve_support;

use common::serve::{Serve, add_version, fixture_data, fixture_model, set_current, with_feature_names};
use serde_json::Value;
use serve_support::*;

#[test]
fn serves_the_current_version_and_names_it() {
    let (_dir, reg) = churn_registry();
    let serve = Serve::start(&reg, &[]);
    let digest = blake3::hash(&model8("logreg_binary")).to_hex().to_string();
    rt().block_on(async {
        let a = post(
            &serve.url("/predict/churn"),
            "application/json",
            r#"[{"f0":0,"f1":0,"f2":0,"f3":0,"f4":0,"f5":0,"f6":0,"f7":1}]"#,
        )
        .await;
        assert_eq!((a.status, a.version.as_deref()), (200, Some("v0001")), "{a:?}");
        assert_eq!(a.body["version"], "v0001");
        assert_eq!(a.body["digest"], digest.as_str());
        assert_eq!(a.body["rows"], 1);
        // The same rows as arrays, as one object, and as CSV (extra columns such as the label are ignored).
        let rows = fixture_rows(3);
        let arrays = Value::from(rows.clone()).to_string();
        let by_records = post(&serve.url("/predict/churn"), "application/json", records(&rows)).await;
        let by_arrays = post(&serve.url("/predict/churn"), "application/json", arrays).await;
        let csv: String = std::fs::read_to_string(fixture_data("logreg_binary"))
            .unwrap()
            .lines()
            .take(4)
            .map(|l| format!("{l}\n"))
            .collect();
        let by_csv = post(&serve.url("/predict/churn"), "text/csv", csv.clone()).await;
        // Media types are case-insensitive; parameters may follow.
        let by_csv_upper =
            post(&serve.url("/predict/churn"), "Text/CSV; charset=utf-8", csv.replace('\n', "\r\n")).await;
        for a in [&by_records, &by_arrays, &by_csv, &by_csv_upper] {
            assert_eq!(a.status, 200, "{a:?}");
            assert_eq!(a.body["rows"], 3);
            assert_eq!(a.body["predictions"], by_records.body["predictions"]);
            assert_eq!(a.body["probabilities"], by_records.body["probabilities"]);
        }
        let one = post(
            &serve.url("/predict/churn"),
            "application/json",
            records(&rows[..1])[1..].trim_end_matches(']').to_owned(),
        )
        .await;
        assert_eq!(one.status, 200, "{one:?}");
        assert_eq!(one.body["predictions"][0], by_records.body["predictions"][0]);
    });
    no_panic(&serve);
    assert_eq!(serve.terminate(), Some(0));
}

/// A bad request: what is sent, and the status and words of the refusal.
struct Bad {
    case: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: String,
    status: u16,
    says: &'static [&'static str],
}

fn bad(
    case: &'static str,
    content_type: &'static str,
    body: impl Into<String>,
    status: u16,
    says: &'static [&'static str],
) -> Bad {
    Bad { case, path: "/predict/churn", content_type, body: body.into(), status, says }
}

fn csv_with(header: &str, row: &str) -> String {
    format!("{header}\n{row}\n")
}

#[test]
fn bad_requests_are_refused_naming_the_problem_and_the_service_keeps_answering() {
    let (_dir, reg) = churn_registry();
    let serve = Serve::start(&reg, &["--max-body", "4KiB"]);
    let row = fixture_rows(1).remove(0);
    let full: serde_json::Map<String, Value> =
        FEATURES.iter().zip(&row).map(|(f, v)| (f.to_string(), (*v).into())).collect();
    let without = |f: &str| {
        let mut r = full.clone();
        r.remove(f);
        Value::Array(vec![Value::Object(r)]).to_string()
    };
    let with = |f: &str, v: Value| {
        let mut r = full.clone();
        r.insert(f.to_owned(), v);
        Value::Array(vec![Value::Object(r)]).to_string()
    };
    let header = FEATURES.join(",");
    let csv_row = |j: usize, text: &str| {
        let mut fields: Vec<String> = row.iter().map(f64::to_string).collect();
        fields[j] = text.to_owned();
        csv_with(&header, &fields.join(","))
    };
    let cases = vec![
        bad("malformed JSON", JSON, r#"[{"f0": 1.0,"#, 400, &["malformed JSON"]),
        bad("JSON that is not rows", JSON, r#""hello""#, 400, &["expected rows", "a string"]),
        bad("a number out of range", JSON, with("f1", Value::Null).replace("null", "1e999"), 400, &["malformed JSON"]),
        bad(
            "a missing feature",
            JSON,
            without("f7"),
            400,
            &["row 0", "no feature `f7`", "f0, f1, f2, f3, f4, f5, f6, f7"],
        ),
        bad(
            "a number too large for float32",
            JSON,
            with("f1", 1e300.into()),
            400,
            &["row 0", "feature `f1`", "float32"],
        ),
        bad(
            "a feature twice",
            JSON,
            with("f1", 1.into()).replacen(r#""f1":1"#, r#""f1":1,"f1":2"#, 1),
            400,
            &["row 0", "`f1` appears twice"],
        ),
        bad("a boolean for a number", JSON, with("f2", true.into()), 400, &["feature `f2`", "true is a boolean"]),
        bad(
            "CSV sent as form data",
            "application/x-www-form-urlencoded",
            csv_row(1, "2"),
            400,
            &["malformed JSON", "Content-Type: text/csv"],
        ),
        bad(
            "CSV with a feature twice",
            CSV,
            csv_with("f0,f1,f2,f3,f4,f5,f6,f7,f1", "1,2,3,4,5,6,7,8,9"),
            400,
            &["`f1` appears twice in the header"],
        ),
        bad("an unknown extra feature", JSON, with("zz", 1.into()), 400, &["row 0", "`zz` is not a feature"]),
        bad(
            "a misspelt feature",
            JSON,
            with("F3", 1.into()).replace(r#""f3""#, r#""x3""#),
            400,
            &["row 0", "no feature `f3`"],
        ),
        bad("too few values", JSON, "[[1, 2, 3]]", 400, &["row 0 has 3 values", "takes 8 features"]),
        bad(
            "too many values",
            JSON,
            "[[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,8,9]]",
            400,
            &["row 1 has 9 values", "takes 8 features"],
        ),
        bad(
            "a string for a number",
            JSON,
            with("f3", "1.5".into()),
            400,
            &["row 0", "feature `f3`", "\"1.5\" is a string"],
        ),
        bad(
            "a string in an array",
            JSON,
            r#"[[1,2,3,"x",5,6,7,8]]"#,
            400,
            &["row 0", "feature `f3`", "\"x\" is a string"],
        ),
        bad("null for a number", JSON, with("f2", Value::Null), 400, &["row 0", "feature `f2`", "missing value"]),
        bad(
            "an object for a number",
            JSON,
            with("f2", serde_json::json!({"v": 1})),
            400,
            &["feature `f2`", "not a number"],
        ),
        bad(
            "rows of mixed kinds",
            JSON,
            format!("[{}, [1,2,3,4,5,6,7,8]]", Value::Object(full.clone())),
            400,
            &["row 1 is an array"],
        ),
        bad("a row that is a number", JSON, "[1, 2]", 400, &["row 0 is a number"]),
        bad("an empty batch", JSON, "[]", 400, &["empty batch"]),
        bad("an empty CSV batch", CSV, format!("{header}\n"), 400, &["empty batch"]),
        bad("an empty body", JSON, "", 400, &["malformed JSON"]),
        bad("CSV NaN", CSV, csv_row(4, "NaN"), 400, &["row 0", "feature `f4`", "NaN", "a missing value"]),
        bad("CSV empty field", CSV, csv_row(5, ""), 400, &["row 0", "feature `f5`", "a missing value"]),
        bad("CSV infinity", CSV, csv_row(6, "inf"), 400, &["row 0", "feature `f6`", "inf"]),
        bad("CSV text for a number", CSV, csv_row(1, "abc"), 400, &["`f1`", "`abc` is not a number"]),
        bad(
            "CSV without a feature column",
            CSV,
            csv_with("f0,f1,f2,f3,f4,f5,f7", "1,2,3,4,5,6,7"),
            400,
            &["no column `f6`"],
        ),
        bad(
            "CSV rows of different lengths",
            CSV,
            format!("{header}\n1,2,3,4,5,6,7,8\n1,2,3\n"),
            400,
            &["found record with 3 fields"],
        ),
        bad(
            "a body over --max-body",
            JSON,
            records(&vec![row.clone(); 60]),
            413,
            &["over the limit of 4096 bytes", "--max-body"],
        ),
        Bad {
            path: "/predict/nope",
            ..bad("an unknown model", JSON, records([&row]), 404, &["no model `nope`", "served: churn"])
        },
        Bad {
            path: "/predict/..%2Fchurn",
            ..bad("a model name that is a path", JSON, records([&row]), 404, &["served: churn"])
        },
        Bad { path: "/nope", ..bad("an unknown endpoint", JSON, "{}", 404, &["no such endpoint"]) },
    ];
    let failures: Vec<String> = rt().block_on(async {
        let mut failures = Vec::new();
        for c in cases {
            let a = post(&serve.url(c.path), c.content_type, c.body.clone()).await;
            let message = a.body["error"].as_str().unwrap_or_default();
            if a.status != c.status || c.says.iter().any(|s| !message.contains(s)) {
                failures.push(format!(
                    "{}: expected {} saying {:?}, got {} {}",
                    c.case, c.status, c.says, a.status, a.body
                ));
            }
            // Refused after the model was chosen: the answer names the version.
            if c.path == "/predict/churn" && a.version.as_deref() != Some("v0001") {
                failures.push(format!("{}: no dagrun-model-version header: {a:?}", c.case));
            }
            answers_with(&serve, "churn", "v0001").await;
        }
        // The wrong method: refused in JSON too, naming the one to use.
        let r = reqwest::get(serve.url("/predict/churn")).await.unwrap();
        let allow = r.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        let a = answer(r).await;
        if a.status != 405
            || !a.body["error"].as_str().is_some_and(|m| m.contains("POST"))
            || allow.as_deref() != Some("POST")
        {
            failures.push(format!("GET /predict/churn: expected 405 naming POST, got {a:?}, allow: {allow:?}"));
        }
        answers_with(&serve, "churn", "v0001").await;
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    no_panic(&serve);
    assert_eq!(serve.terminate(), Some(0));
}

/// A body over `--max-body`, declared by Content-Length or sent chunked without one, large or just
/// over: 413 the client can read (not a reset connection), and the service goes on.
#[test]
fn a_body_over_the_limit_is_413_with_or_without_content_length() {
    let (_dir, reg) = churn_registry();
    let serve = Serve::start(&reg, &["--max-body", "64KiB"]);
    let big = records(&vec![fixture_rows(1).remove(0); 4000]); // ~600 KB
    assert!(big.len() > 64 << 10);
    rt().block_on(async {
        let url = serve.url("/predict/churn");
        let declared = post(&url, JSON, big.clone()).await;
        assert_eq!(declared.status, 413, "{declared:?}");
        assert!(declared.error().contains("over the limit of 65536 bytes"), "{declared:?}");
        let (status, body) = chunked_post(serve.addr, "/predict/churn", big.as_bytes(), 8 << 10).await;
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("over the limit of 65536 bytes"), "{body}");
        // Just under the limit is fine, chunked too.
        let small = records(&fixture_rows(100));
        assert!(small.len() < 64 << 10);
        let (status, body) = chunked_post(serve.addr, "/predict/churn", small.as_bytes(), 1000).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"rows\":100"), "{body}");
        answers_with(&serve, "churn", "v0001").await;
    });
    assert_eq!(serve.terminate(), Some(0));
}

/// The 10-feature rows of rf_multiclass's test data as CSV (extra columns included).
fn iris_csv(rows: usize) -> String {
    let text = std::fs::read_to_string(fixture_data("rf_multiclass")).unwrap();
    text.lines().take(rows + 1).map(|l| format!("{l}\n")).collect()
}

fn iris_model() -> Vec<u8> {
    let names = ["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9"];
    with_feature_names(&std::fs::read(fixture_model("rf_multiclass")).unwrap(), &names)
}

/// Every model of the registry is served, each with its own features, models added after the start
/// too (asked for at once, or found by the poll); `--name` serves only the names given.
#[test]
fn serves_every_name_in_the_registry_or_those_named() {
    let (_dir, reg) = churn_registry();
    add_version(&reg, "iris", "v0003", &iris_model());
    set_current(&reg, "iris", "v0003");
    let all = Serve::start(&reg, &["--poll", "100ms"]);
    let only = Serve::start(&reg, &["--name", "churn"]);
    rt().block_on(async {
        for serve in [&all, &only] {
            answers_with(serve, "churn", "v0001").await;
        }
        let iris = post(&all.url("/predict/iris"), CSV, iris_csv(3)).await;
        assert_eq!((iris.status, iris.version.as_deref()), (200, Some("v0003")), "{iris:?}");
        assert_eq!(iris.body["rows"], 3);
        assert_eq!(iris.body["classes"].as_array().map(Vec::len), Some(3), "{iris:?}");
        // The churn rows are not iris rows.
        let wrong = post(&all.url("/predict/iris"), JSON, records(&fixture_rows(1))).await;
        assert_eq!(wrong.status, 400, "{wrong:?}");
        assert!(wrong.error().contains("no feature `x0`"), "{wrong:?}");
        let refused = post(&only.url("/predict/iris"), CSV, iris_csv(3)).await;
        assert_eq!(refused.status, 404, "{refused:?}");
        assert!(refused.error().contains("no model `iris` is served here; served: churn"), "{refused:?}");

        // Added after the start: served when asked for, without waiting for the poll.
        add_version(&reg, "late", "v0001", &model8("gb_binary"));
        set_current(&reg, "late", "v0001");
        answers_with(&all, "late", "v0001").await;
        // Added after the start and not asked for: the poll loads it.
        add_version(&reg, "later", "v0002", &model8("gb_binary"));
        set_current(&reg, "later", "v0002");
        all.wait_for_line("serving later v0002", WAIT);
        answers_with(&all, "later", "v0002").await;
        let refused = post(&only.url("/predict/late"), JSON, records(&fixture_rows(1))).await;
        assert_eq!(refused.status, 404, "{refused:?}");
        let unknown = post(&all.url("/predict/nope"), JSON, records(&fixture_rows(1))).await;
        assert_eq!(unknown.status, 404, "{unknown:?}");
        assert!(unknown.error().contains("served: churn, iris, late, later"), "{unknown:?}");
        assert_eq!(get(&all.url("/v2/health/ready")).await.status, 200);
    });
    no_panic(&all);
    no_panic(&only);
    assert!(!only.lines().iter().any(|l| l.contains("iris") || l.contains("late")), "{:?}", only.lines());
    assert_eq!(all.terminate(), Some(0));
    assert_eq!(only.terminate(), Some(0));
}

/// After N requests the counters say N for that model and version (answered and refused, rows,
/// the histogram's count), requests refused before a model was chosen are counted apart, and the
/// info gauge names the version serving, before and after a swap.
#[test]
fn metrics_count_each_request_by_model_and_version() {
    let (_dir, reg) = churn_registry();
    let serve = Serve::start(&reg, &[]);
    let digest = |m: &[u8]| blake3::hash(m).to_hex().to_string();
    let series = |name: &str, version: &str| format!(r#"{name}{{model="churn",version="{version}"}}"#);
    rt().block_on(async {
        let url = serve.url("/predict/churn");
        for n in 1..=5 {
            assert_eq!(post(&url, JSON, records(&fixture_rows(n))).await.status, 200);
        }
        assert_eq!(post(&url, JSON, "[]").await.status, 400);
        assert_eq!(post(&url, JSON, "[[1]]").await.status, 400);
        assert_eq!(post(&serve.url("/predict/nope"), JSON, "[]").await.status, 404);
        let text = get(&serve.url("/metrics")).await.body.as_str().unwrap().to_owned();
        let m = |s: String| metric(&text, &s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
        assert_eq!(m(series("dagrun_serve_requests_total", "v0001")), 7.0);
        assert_eq!(m(series("dagrun_serve_request_errors_total", "v0001")), 2.0);
        assert_eq!(m(series("dagrun_serve_rows_total", "v0001")), 15.0);
        assert_eq!(m(series("dagrun_serve_request_duration_seconds_count", "v0001")), 7.0);
        let inf = r#"dagrun_serve_request_duration_seconds_bucket{model="churn",version="v0001",le="+Inf"}"#;
        assert_eq!(m(inf.to_owned()), 7.0);
        assert_eq!(m(r#"dagrun_serve_unrouted_requests_total{code="404"}"#.to_owned()), 1.0);
        let info = |v: &str, d: &str| format!(r#"dagrun_serve_model_info{{model="churn",version="{v}",digest="{d}"}}"#);
        assert_eq!(m(info("v0001", &digest(&model8("logreg_binary")))), 1.0);

        add_version(&reg, "churn", "v0002", &model8("gb_binary"));
        set_current(&reg, "churn", "v0002");
        for n in 1..=3 {
            let a = post(&url, JSON, records(&fixture_rows(n))).await;
            assert_eq!((a.status, a.version.as_deref()), (200, Some("v0002")), "{a:?}");
        }
        let text = get(&serve.url("/metrics")).await.body.as_str().unwrap().to_owned();
        let m = |s: String| metric(&text, &s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
        assert_eq!(m(series("dagrun_serve_requests_total", "v0002")), 3.0);
        assert_eq!(m(series("dagrun_serve_rows_total", "v0002")), 6.0);
        assert_eq!(m(series("dagrun_serve_request_duration_seconds_count", "v0002")), 3.0);
        assert_eq!(m(series("dagrun_serve_requests_total", "v0001")), 7.0, "the old version's counts stay");
        assert_eq!(m(info("v0002", &digest(&model8("gb_binary")))), 1.0);
        assert!(!text.contains(r#"dagrun_serve_model_info{model="churn",version="v0001""#), "{text}");
    });
    no_panic(&serve);
    assert_eq!(serve.terminate(), Some(0));
}

/// A body far over the default limit (16 MiB), declared or sent chunked, several times over: the
/// client reads the 413 each time instead of finding its connection reset (the server answering
/// and closing while the client still sends); a client that waits for `100 Continue` gets the 413
/// without sending its body.
#[test]
fn a_body_far_over_the_default_limit_is_a_413_the_client_reads() {
    let (_dir, reg) = churn_registry();
    let serve = Serve::start(&reg, &[]);
    let row = records(&fixture_rows(1));
    let mut big = String::with_capacity(24 << 20);
    big.push('[');
    while big.len() < 20 << 20 {
        big.push_str(&row[1..row.len() - 1]);
        big.push(',');
    }
    big.push_str(&row[1..]);
    rt().block_on(async {
        let url = serve.url("/predict/churn");
        for round in 0..6 {
            let r = reqwest::Client::new().post(&url).header("content-type", JSON).body(big.clone()).send().await;
            let declared = answer(r.unwrap_or_else(|e| panic!("round {round}: {e:?}"))).await;
            assert_eq!(declared.status, 413, "{declared:?}");
            assert!(declared.error().contains("over the limit of 16777216 bytes"), "{declared:?}");
        }
        for _ in 0..3 {
            let (status, body) = chunked_post(serve.addr, "/predict/churn", big.as_bytes(), 64 << 10).await;
            assert_eq!(status, 413, "{body}");
        }
        let mut s = tokio::net::TcpStream::connect(serve.addr).await.unwrap();
        let head = format!(
            "POST /predict/churn HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
            big.len()
        );
        tokio::io::AsyncWriteExt::write_all(&mut s, head.as_bytes()).await.unwrap();
        let answer = read_head(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        answers_with(&serve, "churn", "v0001").await;
    });
    assert_eq!(serve.terminate(), Some(0));
}

/// Every ONNX fixture (classifiers with numeric or string labels, ZipMap outputs, regressors, one
/// input per feature) served at once: each answers rows of the width it takes, and nothing panics.
#[test]
fn every_fixture_model_answers_rows_of_its_width() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    let fixtures = common::serve::fixture_model("x").parent().unwrap().parent().unwrap().to_path_buf();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        let Ok(model) = std::fs::read(path.join("model.onnx")) else { continue };
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        add_version(&reg, &name, "v0001", &model);
        set_current(&reg, &name, "v0001");
        names.push(name);
    }
    names.sort();
    assert!(names.len() >= 20, "{names:?}");
    let serve = Serve::start(&reg, &["--workers", "1"]);
    let failures: Vec<String> = rt().block_on(async {
        let mut failures = Vec::new();
        for name in &names {
            let url = serve.url(&format!("/predict/{name}"));
            // The refusal of a row of one value says how many the model takes.
            let probe = post(&url, JSON, "[[0.5]]").await;
            let width = match probe.status {
                200 => 1,
                400 => match probe.error().split("the model takes ").nth(1).and_then(|t| t.split(' ').next()) {
                    Some(n) => n.parse::<usize>().unwrap(),
                    None => {
                        failures.push(format!("{name}: {probe:?}"));
                        continue;
                    }
                },
                _ => {
                    failures.push(format!("{name}: {probe:?}"));
                    continue;
                }
            };
            let rows: Vec<Vec<f64>> =
                (0..3).map(|i| (0..width).map(|j| (i * width + j) as f64 / 7.0 - 1.0).collect()).collect();
            let a = post(&url, JSON, Value::from(rows).to_string()).await;
            if a.status != 200 || a.body["rows"] != 3 || a.body["predictions"].as_array().map(Vec::len) != Some(3) {
                failures.push(format!("{name} ({width} features): {a:?}"));
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{}\n{:?}", failures.join("\n"), serve.lines());
    no_panic(&serve);
    assert!(!serve.lines().iter().any(|l| l.contains("not served")), "{:?}", serve.lines());
    assert_eq!(serve.terminate(), Some(0));
}

/// Options that cannot work stop `dagrun serve` at start with exit code 2 and say which.
#[test]
fn unusable_options_are_refused_at_start() {
    let (_dir, reg) = churn_registry();
    let refuse = |args: &[&str], says: &str| {
        let out = std::process::Command::new(common::BIN)
            .args(["serve", "--addr", "127.0.0.1:0", "--registry"])
            .arg(&reg)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    };
    refuse(&["--name", "nope"], "no model `nope` in registry");
    refuse(&["--name", "nope"], "models there: churn");
    refuse(&["--workers", "100000"], "--workers 100000: from 1 to 256");
    refuse(&["--max-batch", "0"], "--max-batch 0");
    refuse(&["--threads", "0"], "--threads 0: from 1 to 256");
}

/// A compressed body is refused with 415 on both inference endpoints (one check in `read_body`),
/// and the service answers the next request.
#[test]
fn compressed_bodies_are_refused_on_both_endpoints() {
    let (_dir, reg) = churn_registry();
    let serve = Serve::start(&reg, &[]);
    rt().block_on(async {
        for path in ["/predict/churn", "/v2/models/churn/infer"] {
            let r = reqwest::Client::new()
                .post(serve.url(path))
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(records(&fixture_rows(1)))
                .send()
                .await
                .unwrap();
            let a = answer(r).await;
            assert_eq!(a.status, 415, "{path}: {a:?}");
            assert_eq!(
                a.error(),
                "Content-Encoding \"gzip\" is not supported: send the request uncompressed",
                "{path}"
            );
            assert_eq!(a.version.as_deref(), Some("v0001"), "{path}");
        }
        answers_with(&serve, "churn", "v0001").await;
    });
    assert_eq!(serve.terminate(), Some(0));
}
