//! `dagrun serve` end to end: the real binary on a registry in a temp dir. Bad requests and broken
//! registries are refused with a status and a message naming the problem, and the service keeps
//! answering; several names; `/metrics`. Hot swap under load and shutdown: `tests/serve_swap.rs`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::serve::{Serve, add_version, fixture_data, fixture_model, set_current, with_feature_names};
use serde_json::Value;

const FEATURES: [&str; 8] = ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"];
const WAIT: Duration = Duration::from_secs(30);

/// A fixture model with the feature names `FEATURES` (8 features) recorded in its metadata.
fn model8(fixture: &str) -> Vec<u8> {
    with_feature_names(&std::fs::read(fixture_model(fixture)).unwrap(), &FEATURES)
}

/// The first `n` rows of logreg_binary's test data (the 8 features).
fn fixture_rows(n: usize) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(fixture_data("logreg_binary")).unwrap();
    text.lines().skip(1).take(n).map(|l| l.split(',').take(8).map(|v| v.parse().unwrap()).collect()).collect()
}

/// `[{"f0": .., ..}, ..]`.
fn records(rows: &[Vec<f64>]) -> String {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| Value::Object(FEATURES.iter().zip(r).map(|(f, v)| (f.to_string(), (*v).into())).collect()))
        .collect();
    Value::Array(rows).to_string()
}

/// One answer: status, the `dagrun-model-version` header, the body (JSON, or the text as a string).
#[derive(Debug)]
struct Answer {
    status: u16,
    version: Option<String>,
    body: Value,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_else(|| panic!("no error message: {self:?}"))
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let version = r.headers().get("dagrun-model-version").map(|v| v.to_str().unwrap().to_owned());
    let bytes = r.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer { status, version, body }
}

async fn post(url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Answer {
    let r = reqwest::Client::new().post(url).header("content-type", content_type).body(body).send().await;
    answer(r.unwrap_or_else(|e| panic!("POST {url}: {e}"))).await
}

async fn get(url: &str) -> Answer {
    answer(reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"))).await
}

/// A good request to `name` is answered by `version` (and nothing panicked so far).
async fn answers_with(serve: &Serve, name: &str, version: &str) {
    let a = post(&serve.url(&format!("/predict/{name}")), "application/json", records(&fixture_rows(2))).await;
    assert_eq!((a.status, a.version.as_deref()), (200, Some(version)), "{a:?}\n{:?}", serve.lines());
    assert_eq!(a.body["version"], version);
    assert_eq!(a.body["rows"], 2);
    no_panic(serve);
}

fn no_panic(serve: &Serve) {
    let lines = serve.lines();
    assert!(!lines.iter().any(|l| l.contains("panicked")), "{lines:?}");
}

/// Writes `current` with any text, atomically (what `set_current` refuses to write).
fn write_current(reg: &Path, name: &str, text: &str) {
    let tmp = reg.join(name).join(".current.test.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, reg.join(name).join("current")).unwrap();
}

/// `churn` v0001 (logreg_binary) deployed.
fn churn_registry() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    add_version(&reg, "churn", "v0001", &model8("logreg_binary"));
    set_current(&reg, "churn", "v0001");
    (dir, reg)
}

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
        let by_csv = post(&serve.url("/predict/churn"), "text/csv", csv).await;
        for a in [&by_records, &by_arrays, &by_csv] {
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

const JSON: &str = "application/json";
const CSV: &str = "text/csv";

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
        bad(
            "CSV NaN",
            CSV,
            csv_row(4, "NaN"),
            400,
            &["row 0", "feature `f4`", "NaN", "missing values are not accepted"],
        ),
        bad("CSV empty field", CSV, csv_row(5, ""), 400, &["row 0", "feature `f5`", "missing values are not accepted"]),
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
            ..bad("an unknown model", JSON, records(&[row.clone()]), 404, &["no model `nope`", "served: churn"])
        },
        Bad {
            path: "/predict/..%2Fchurn",
            ..bad("a model name that is a path", JSON, records(&[row.clone()]), 404, &["served: churn"])
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

/// POST `body` with `Transfer-Encoding: chunked` (no Content-Length) in chunks of `chunk` bytes,
/// reading the answer while writing (as a client would): the status and the response text.
async fn chunked_post(addr: std::net::SocketAddr, path: &str, body: &[u8], chunk: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for c in body.chunks(chunk) {
        request.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        request.extend_from_slice(c);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer (413) before reading everything: writing may then fail; reading must not.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&request).await;
        wr
    });
    let mut response = Vec::new();
    let read = rd.read_to_end(&mut response).await;
    let _ = writer.await;
    let text = String::from_utf8_lossy(&response).into_owned();
    assert!(read.is_ok() || text.contains("\r\n\r\n"), "reading the answer: {read:?} after {text:?}");
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

/// A value of `/metrics`: the sample whose name and labels are exactly `series`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// While v0001 serves, `current` is moved to versions that cannot be served: a missing directory,
/// a directory without model.onnx, a model.onnx changed after its digest was recorded, bytes that
/// are no ONNX model (with their true digest), and garbage in `current` itself. Each is reported
/// once with the reason, v0001 keeps answering (requests see each move at once), and a good
/// deploy afterwards is served.
#[test]
fn a_version_that_cannot_be_loaded_is_reported_and_the_old_one_keeps_serving() {
    let (_dir, reg) = churn_registry();
    let gb = model8("gb_binary");
    std::fs::create_dir_all(reg.join("churn/v0003")).unwrap();
    std::fs::write(reg.join("churn/v0003/metadata.json"), r#"{"name":"churn"}"#).unwrap();
    add_version(&reg, "churn", "v0004", &gb);
    let mut changed = gb.clone();
    let mid = changed.len() / 2;
    changed[mid] ^= 0x55;
    std::fs::write(reg.join("churn/v0004/model.onnx"), &changed).unwrap();
    add_version(&reg, "churn", "v0005", b"this is not an ONNX model at all");
    add_version(&reg, "churn", "v0006", &gb);
    // Polling often, so that the poller's retries race with the requests too.
    let serve = Serve::start(&reg, &["--poll", "50ms"]);
    let cases: [(&str, &str, &[&str]); 5] = [
        ("v0002\n", "churn v0002 not served", &["v0002", "model.onnx", "No such file"]),
        ("v0003\n", "churn v0003 not served", &["v0003", "model.onnx", "No such file"]),
        ("v0004\n", "churn v0004 not served", &["is corrupt", "metadata.json records"]),
        ("v0005\n", "churn v0005 not served", &["v0005", "cannot be served"]),
        ("../../etc\n", "churn ? not served", &["../../etc"]),
    ];
    rt().block_on(async {
        for (text, event, says) in cases {
            write_current(&reg, "churn", text);
            answers_with(&serve, "churn", "v0001").await;
            let line = serve.wait_for_line(event, WAIT);
            assert!(line.contains("(still serving v0001)"), "{line}");
            for s in says {
                assert!(line.contains(s), "{line} does not say {s:?}");
            }
            answers_with(&serve, "churn", "v0001").await;
            assert_eq!(get(&serve.url("/v2/health/ready")).await.status, 200);
        }
        // Each failure is reported once, not on every request or retry.
        let lines = serve.lines();
        for (_, event, _) in cases {
            assert_eq!(lines.iter().filter(|l| l.contains(event)).count(), 1, "{event}: {lines:#?}");
        }
        // Counted once each too, however often the poll looks again (20 polls here).
        tokio::time::sleep(Duration::from_secs(1)).await;
        let text = get(&serve.url("/metrics")).await.body.as_str().unwrap().to_owned();
        assert_eq!(metric(&text, r#"dagrun_serve_load_failures_total{model="churn"}"#), Some(5.0), "{text}");
        set_current(&reg, "churn", "v0006");
        answers_with(&serve, "churn", "v0006").await;
        let line = serve.wait_for_line("serving churn v0006", WAIT);
        assert!(line.contains("(was v0001)"), "{line}");
    });
    no_panic(&serve);
    assert_eq!(serve.terminate(), Some(0));
}

/// The acceptance test of a failed load: the old version keeps answering, the service stays ready,
/// `/metrics` counts the failure and still names the old version; a good deploy is then picked up.
#[test]
fn a_failed_load_keeps_the_old_version_ready_and_counted_until_a_good_deploy() {
    let (_dir, reg) = churn_registry();
    let serve = Serve::start(&reg, &[]);
    rt().block_on(async {
        add_version(&reg, "churn", "v0002", &model8("gb_binary")[..100]);
        std::fs::write(reg.join("churn/v0002/model.onnx"), model8("gb_binary")).unwrap(); // digest mismatch
        set_current(&reg, "churn", "v0002");
        for _ in 0..3 {
            answers_with(&serve, "churn", "v0001").await;
        }
        serve.wait_for_line("churn v0002 not served", WAIT);
        let ready = get(&serve.url("/v2/health/ready")).await;
        assert_eq!(ready.status, 200, "{ready:?}");
        let text = get(&serve.url("/metrics")).await.body.as_str().unwrap().to_owned();
        assert!(
            metric(&text, r#"dagrun_serve_load_failures_total{model="churn"}"#).is_some_and(|n| n >= 1.0),
            "{text}"
        );
        assert!(text.contains(r#"dagrun_serve_model_info{model="churn",version="v0001""#), "{text}");
        assert!(!text.contains(r#"dagrun_serve_model_info{model="churn",version="v0002""#), "{text}");
        add_version(&reg, "churn", "v0003", &model8("gb_binary"));
        set_current(&reg, "churn", "v0003");
        answers_with(&serve, "churn", "v0003").await;
        let text = get(&serve.url("/metrics")).await.body.as_str().unwrap().to_owned();
        assert!(text.contains(r#"dagrun_serve_model_info{model="churn",version="v0003""#), "{text}");
        assert!(!text.contains(r#"dagrun_serve_model_info{model="churn",version="v0001""#), "{text}");
    });
    no_panic(&serve);
    assert_eq!(serve.terminate(), Some(0));
}

/// Nothing loadable at start (current names a missing version): the service starts, says why,
/// is not ready and refuses with 503 naming the problem; a good deploy makes it serve.
#[test]
fn nothing_loadable_at_start_is_503_until_a_good_version_is_deployed() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    add_version(&reg, "churn", "v0001", &model8("logreg_binary"));
    write_current(&reg, "churn", "v0007\n");
    let serve = Serve::start(&reg, &[]);
    let line = serve.wait_for_line("churn v0007 not served", WAIT);
    assert!(line.contains("nothing to serve yet"), "{line}");
    rt().block_on(async {
        let a = post(&serve.url("/predict/churn"), JSON, records(&fixture_rows(1))).await;
        assert_eq!(a.status, 503, "{a:?}");
        assert!(a.error().contains("v0007") && a.error().contains("model.onnx"), "{a:?}");
        let ready = get(&serve.url("/v2/health/ready")).await;
        assert_eq!(ready.status, 503, "{ready:?}");
        assert_eq!(ready.body["not_loaded"], serde_json::json!(["churn"]));
        set_current(&reg, "churn", "v0001");
        answers_with(&serve, "churn", "v0001").await;
        assert_eq!(get(&serve.url("/v2/health/ready")).await.status, 200);
    });
    no_panic(&serve);
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
