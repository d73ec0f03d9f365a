//! What the `dagrun serve` test files share besides `common::serve`: the 8-feature fixtures, rows
//! as JSON records, a client that keeps status, version header and body, reference answers, and
//! raw HTTP for what reqwest does not send (chunked bodies, `Expect: 100-continue`).
#![allow(dead_code)] // each test binary uses some of these helpers

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::serve::{Serve, add_version, fixture_data, fixture_model, set_current, with_feature_names};

pub const FEATURES: [&str; 8] = ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"];
pub const JSON: &str = "application/json";
pub const CSV: &str = "text/csv";
pub const WAIT: Duration = Duration::from_secs(30);

/// A fixture model with the feature names `FEATURES` (8 features) recorded in its metadata.
pub fn model8(fixture: &str) -> Vec<u8> {
    with_feature_names(&std::fs::read(fixture_model(fixture)).unwrap(), &FEATURES)
}

/// The first `n` rows of logreg_binary's test data (the 8 features).
pub fn fixture_rows(n: usize) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(fixture_data("logreg_binary")).unwrap();
    text.lines().skip(1).take(n).map(|l| l.split(',').take(8).map(|v| v.parse().unwrap()).collect()).collect()
}

/// `[{"f0": .., ..}, ..]`.
pub fn records<'a>(rows: impl IntoIterator<Item = &'a Vec<f64>>) -> String {
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| Value::Object(FEATURES.iter().zip(r).map(|(f, v)| (f.to_string(), (*v).into())).collect()))
        .collect();
    Value::Array(rows).to_string()
}

/// One answer: status, the `dagrun-model-version` header, the body (JSON, or the text as a string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub version: Option<String>,
    pub body: Value,
}

impl Answer {
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_else(|| panic!("no error message: {self:?}"))
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let version = r.headers().get("dagrun-model-version").map(|v| v.to_str().unwrap().to_owned());
    let bytes = r.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer { status, version, body }
}

pub async fn post(url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Answer {
    let r = reqwest::Client::new().post(url).header("content-type", content_type).body(body).send().await;
    answer(r.unwrap_or_else(|e| panic!("POST {url}: {e}"))).await
}

pub async fn get(url: &str) -> Answer {
    answer(reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"))).await
}

/// A good request to `name` is answered by `version` (and nothing panicked so far).
pub async fn answers_with(serve: &Serve, name: &str, version: &str) {
    let a = post(&serve.url(&format!("/predict/{name}")), "application/json", records(&fixture_rows(2))).await;
    assert_eq!((a.status, a.version.as_deref()), (200, Some(version)), "{a:?}\n{:?}", serve.lines());
    assert_eq!(a.body["version"], version);
    assert_eq!(a.body["rows"], 2);
    no_panic(serve);
}

pub fn no_panic(serve: &Serve) {
    let lines = serve.lines();
    assert!(!lines.iter().any(|l| l.contains("panicked")), "{lines:?}");
}

/// Writes `current` with any text, atomically (what `set_current` refuses to write).
pub fn write_current(reg: &Path, name: &str, text: &str) {
    let tmp = reg.join(name).join(".current.test.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, reg.join(name).join("current")).unwrap();
}

/// `churn` v0001 (logreg_binary) deployed.
pub fn churn_registry() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    add_version(&reg, "churn", "v0001", &model8("logreg_binary"));
    set_current(&reg, "churn", "v0001");
    (dir, reg)
}

/// A value of `/metrics`: the sample whose name and labels are exactly `series`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// POST `body` with `Transfer-Encoding: chunked` (no Content-Length) in chunks of `chunk` bytes,
/// reading the answer while writing (as a client would): the status and the response text.
pub async fn chunked_post(addr: std::net::SocketAddr, path: &str, body: &[u8], chunk: usize) -> (u16, String) {
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

/// One row's answer: the predicted class and its probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct RowAnswer {
    pub class: Value,
    pub probabilities: Vec<f64>,
}

pub fn row_answers(body: &Value) -> Vec<RowAnswer> {
    let predictions = body["predictions"].as_array().unwrap_or_else(|| panic!("no predictions: {body}"));
    let probabilities = body["probabilities"].as_array().unwrap_or_else(|| panic!("no probabilities: {body}"));
    predictions
        .iter()
        .zip(probabilities)
        .map(|(c, p)| RowAnswer {
            class: c.clone(),
            probabilities: p.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect(),
        })
        .collect()
}

/// Same class, probabilities equal up to float noise (a row's answer may come from a batch of any size).
pub fn same(a: &RowAnswer, b: &RowAnswer) -> bool {
    a.class == b.class
        && a.probabilities.len() == b.probabilities.len()
        && a.probabilities.iter().zip(&b.probabilities).all(|(x, y)| (x - y).abs() <= 1e-5)
}

/// Each model's answer for each row, from a separate `dagrun serve`, one row a request.
pub fn reference_answers(models: &[(&str, &[u8])], rows: &[Vec<f64>]) -> BTreeMap<String, Vec<RowAnswer>> {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    for (name, bytes) in models {
        add_version(&reg, name, "v0001", bytes);
        set_current(&reg, name, "v0001");
    }
    let serve = Serve::start(&reg, &["--workers", "1"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let out = models
        .iter()
        .map(|(name, _)| {
            let answers = rows
                .iter()
                .map(|row| {
                    rt.block_on(async {
                        let r = client.post(serve.url(&format!("/predict/{name}"))).body(records([row])).send();
                        let body: Value = r.await.unwrap().json().await.unwrap();
                        row_answers(&body).remove(0)
                    })
                })
                .collect();
            (name.to_string(), answers)
        })
        .collect();
    assert_eq!(serve.terminate(), Some(0));
    out
}

/// Reads from `s` until the end of a response head (`\r\n\r\n`); the head.
pub async fn read_head(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "connection closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}
