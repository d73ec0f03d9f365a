//! `dagrun serve`'s Open Inference Protocol (KServe V2) API end to end: NVIDIA's tritonclient
//! (a real third-party client, in a venv `scripts/serve-venv.sh` makes) gets the same labels and
//! probabilities as an `OnnxPredict` task on the same rows, with binary tensor data and with JSON;
//! bad requests get clear 4xx answers naming the version, and the service keeps serving.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Sandbox;
use common::serve::{Serve, add_version, fixture_data, fixture_model, set_current};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python (created on first use; the test needs it, so it never skips).
fn venv_python() -> PathBuf {
    let out = Command::new("bash").arg(repo().join("scripts/serve-venv.sh")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scripts/serve-venv.sh failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.lines().last().unwrap_or_else(|| panic!("serve-venv.sh printed nothing: {stderr}")))
}

/// A served fixture: the registry name, the fixture, and its label column.
struct Case {
    name: &'static str,
    fixture: &'static str,
    label: &'static str,
    /// Probabilities and values equal to the bit, as `f32`. Not for tree ensembles: ONNX Runtime
    /// sums their trees in an order that depends on its thread count (`dagrun serve` runs one
    /// thread per worker session, `OnnxPredict` its default), so they differ in the last bit.
    exact: bool,
}

const CASES: &[Case] = &[
    Case { name: "churn", fixture: "logreg_binary", label: "label", exact: true },
    Case { name: "species", fixture: "logreg_multiclass", label: "species", exact: true },
    Case { name: "species-mlp", fixture: "mlp_multiclass", label: "species", exact: true },
    Case { name: "price", fixture: "linear_regressor", label: "target", exact: true },
    Case { name: "price-tree", fixture: "tree_regressor", label: "target", exact: true },
    // Three FP64 inputs, one per feature, and an FP64 output.
    Case { name: "columns", fixture: "ridge_per_column", label: "target", exact: true },
    // String labels: BYTES tensors.
    Case { name: "answer", fixture: "gb_binary_strings", label: "answer", exact: false },
];

/// Whether `served` is `OnnxPredict`'s `predicted` as the case requires.
fn same(case: &Case, served: f32, predicted: f32) -> bool {
    if case.exact { served == predicted } else { (served - predicted).abs() <= 1e-6 }
}

/// The feature columns the fixture names (else every column but the label), in order.
fn features(case: &Case) -> Vec<String> {
    let dir = fixture_model(case.fixture).parent().unwrap().to_path_buf();
    let expected: Value = serde_json::from_slice(&std::fs::read(dir.join("expected_metrics.json")).unwrap()).unwrap();
    if let Some(f) = expected["features"].as_array() {
        return f.iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    }
    let text = std::fs::read_to_string(fixture_data(case.fixture)).unwrap();
    text.lines().next().unwrap().split(',').filter(|c| *c != case.label).map(str::to_owned).collect()
}

/// `OnnxPredict` on every case's model and data: case name → its predictions CSV (header, rows).
fn onnx_predict() -> BTreeMap<&'static str, (Vec<String>, Vec<Vec<String>>)> {
    let mut tasks = String::new();
    for case in CASES {
        let features: Vec<String> = features(case).iter().map(|f| format!("{f:?}")).collect();
        let features = if case.fixture == "ridge_per_column" {
            String::new()
        } else {
            format!(", features: [{}]", features.join(", "))
        };
        tasks.push_str(&format!(
            r#"Task(name: "{n}", kind: OnnxPredict(model: "model", data: "data", label: "{label}"{features}),
                    inputs: {{"model": File({model:?}), "data": File({data:?})}},
                    outputs: {{"predictions": "out/{n}.csv"}}),
            "#,
            n = case.name,
            label = case.label,
            model = fixture_model(case.fixture).canonicalize().unwrap(),
            data = fixture_data(case.fixture).canonicalize().unwrap(),
        ));
    }
    let sandbox = Sandbox::new(&format!("Workflow(name: \"predict\", tasks: [{tasks}])"));
    let (statuses, events, code) = sandbox.run_json(&[]);
    assert_eq!(code, 0, "{events:?}");
    assert!(statuses.values().all(|s| s == "succeeded"), "{statuses:?}");
    CASES
        .iter()
        .map(|c| {
            let text = sandbox.read(&format!("out/{}.csv", c.name));
            let mut lines = text.lines().map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>());
            (c.name, (lines.next().unwrap(), lines.collect()))
        })
        .collect()
}

fn f32_of(v: &Value) -> f32 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number")) as f32
}

/// The client's outputs of one mode agree with OnnxPredict's CSV: labels as text, probabilities
/// and values as the same `f32`.
fn check_agrees(
    case: &Case,
    mode: &str,
    outputs: &Value,
    metadata: &Value,
    csv: &(Vec<String>, Vec<Vec<String>>),
) -> Vec<String> {
    let mut wrong = Vec::new();
    let (header, rows) = csv;
    let col = |n: &str| header.iter().position(|h| h == n).unwrap_or_else(|| panic!("no `{n}` in {header:?}"));
    let what = format!("{} ({}), {mode}", case.name, case.fixture);
    let specs = metadata["outputs"].as_array().unwrap();
    let by_type =
        |pred: &dyn Fn(&Value) -> bool| specs.iter().find(|s| pred(s)).map(|s| &outputs[s["name"].as_str().unwrap()]);
    let labels = by_type(&|s| s["datatype"] == "INT64" || s["datatype"] == "BYTES");
    let floats = by_type(&|s| s["datatype"] == "FP32" || s["datatype"] == "FP64").expect("a float output");
    let data = floats["data"].as_array().unwrap();
    let prediction = col("prediction");
    match labels {
        Some(labels) => {
            let labels = labels["data"].as_array().unwrap();
            assert_eq!(labels.len(), rows.len(), "{what}");
            let probas: Vec<usize> = (0..header.len()).filter(|&i| header[i].starts_with("proba_")).collect();
            assert_eq!(floats["shape"], json!([rows.len(), probas.len()]), "{what}");
            for (i, row) in rows.iter().enumerate() {
                let label = labels[i].as_str().map_or_else(|| labels[i].to_string(), str::to_owned);
                if label != row[prediction] {
                    wrong.push(format!("{what}: row {i}: label {label}, OnnxPredict {}", row[prediction]));
                }
                for (j, &c) in probas.iter().enumerate() {
                    let served = f32_of(&data[i * probas.len() + j]);
                    let predicted: f32 = row[c].parse().unwrap();
                    if !same(case, served, predicted) {
                        wrong.push(format!("{what}: row {i}: {} {served}, OnnxPredict {predicted}", header[c]));
                    }
                }
            }
        }
        None => {
            assert_eq!(data.len(), rows.len(), "{what}");
            for (i, row) in rows.iter().enumerate() {
                let predicted: f32 = row[prediction].parse().unwrap();
                if !same(case, f32_of(&data[i]), predicted) {
                    wrong.push(format!("{what}: row {i}: {}, OnnxPredict {predicted}", f32_of(&data[i])));
                }
            }
        }
    }
    wrong
}

#[test]
fn tritonclient_gets_what_onnx_predict_gets() {
    let python = venv_python();
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    for case in CASES {
        add_version(&reg, case.name, "v0001", &std::fs::read(fixture_model(case.fixture)).unwrap());
        set_current(&reg, case.name, "v0001");
    }
    let serve = Serve::start(&reg, &[]);
    let expected = onnx_predict();
    let script = repo().join("tests/serve/oip_client.py");
    let mut wrong = Vec::new();
    for case in CASES {
        let out = Command::new(&python)
            .arg(&script)
            .arg(serve.addr.to_string())
            .arg(case.name)
            .arg(fixture_data(case.fixture))
            .arg(features(case).join(","))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "oip_client.py on {}: {stderr}\nserve: {:?}", case.name, serve.lines());
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        let metadata = &result["metadata"];
        assert_eq!(metadata["platform"], "onnxruntime_onnx", "{metadata}");
        assert_eq!(metadata["versions"], json!(["v0001"]), "{metadata}");
        for mode in ["binary", "json"] {
            assert_eq!(result[mode]["version"], "v0001");
            let w = check_agrees(case, mode, &result[mode]["outputs"], metadata, &expected[case.name]);
            wrong.extend(w.into_iter().take(3));
        }
    }
    assert!(wrong.is_empty(), "tritonclient and OnnxPredict disagree:\n{}", wrong.join("\n"));
    assert_eq!(serve.terminate(), Some(0));
}

/// One answer: status, `dagrun-model-version` header, JSON body.
struct Answer {
    status: u16,
    version: Option<String>,
    body: Value,
}

fn send(
    rt: &tokio::runtime::Runtime,
    serve: &Serve,
    path: &str,
    header_length: Option<usize>,
    body: Vec<u8>,
) -> Answer {
    rt.block_on(async {
        let mut request = reqwest::Client::new().post(serve.url(path)).body(body);
        if let Some(n) = header_length {
            request = request.header("Inference-Header-Content-Length", n);
        }
        let r = request.send().await.unwrap();
        let version = r.headers().get("dagrun-model-version").map(|v| v.to_str().unwrap().to_owned());
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {bytes:?}"));
        Answer { status, version, body }
    })
}

fn get(rt: &tokio::runtime::Runtime, serve: &Serve, path: &str) -> Answer {
    rt.block_on(async {
        let r = reqwest::get(serve.url(path)).await.unwrap();
        let version = r.headers().get("dagrun-model-version").map(|v| v.to_str().unwrap().to_owned());
        Answer { status: r.status().as_u16(), version, body: r.json().await.unwrap() }
    })
}

/// A request for the 8-feature binary classifier: JSON, then the binary part (if any).
fn request(shape: &[i64], datatype: &str, data: Option<Value>, binary: &[u8]) -> (Vec<u8>, Option<usize>) {
    let mut input = json!({"name": "input", "shape": shape, "datatype": datatype});
    match data {
        Some(d) => input["data"] = d,
        None => input["parameters"] = json!({"binary_data_size": binary.len()}),
    }
    let mut bytes = json!({"inputs": [input]}).to_string().into_bytes();
    let n = bytes.len();
    bytes.extend_from_slice(binary);
    (bytes, (!binary.is_empty()).then_some(n))
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `dagrun serve` with the binary classifier as `churn` v0001.
fn serve_churn() -> (tempfile::TempDir, Serve) {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    add_version(&reg, "churn", "v0001", &std::fs::read(fixture_model("logreg_binary")).unwrap());
    set_current(&reg, "churn", "v0001");
    let serve = Serve::start(&reg, &[]);
    (dir, serve)
}

#[test]
fn metadata_and_readiness_name_the_version() {
    let (dir, serve) = serve_churn();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let meta = get(&rt, &serve, "/v2/models/churn");
    assert_eq!(meta.version.as_deref(), Some("v0001"));
    assert_eq!(
        meta.body,
        json!({"name": "churn", "versions": ["v0001"], "platform": "onnxruntime_onnx",
               "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 8]}],
               "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                           {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]})
    );
    assert_eq!(get(&rt, &serve, "/v2/models/churn/versions/1/ready").status, 200);
    let other = get(&rt, &serve, "/v2/models/churn/versions/2/ready");
    assert_eq!((other.status, other.version.as_deref()), (404, Some("v0001")));
    assert!(
        other.body["error"].as_str().unwrap().starts_with("version `2` of model `churn` is not served"),
        "{}",
        other.body
    );

    // A deploy: the new version answers, and the old one is no longer served by its name.
    let reg = dir.path().join("registry");
    add_version(&reg, "churn", "v0002", &std::fs::read(fixture_model("mlp_binary")).unwrap());
    set_current(&reg, "churn", "v0002");
    let meta = get(&rt, &serve, "/v2/models/churn/versions/v0002");
    assert_eq!((meta.status, meta.version.as_deref()), (200, Some("v0002")), "{}", meta.body);
    assert_eq!(meta.body["versions"], json!(["v0002"]));
    let old = get(&rt, &serve, "/v2/models/churn/versions/1");
    assert_eq!((old.status, old.version.as_deref()), (404, Some("v0002")), "{}", old.body);
    assert!(old.body["error"].as_str().unwrap().contains("current version, v0002"), "{}", old.body);
    assert_eq!(serve.terminate(), Some(0));
}

#[test]
fn bad_requests_get_clear_answers_and_the_service_keeps_serving() {
    let (_dir, serve) = serve_churn();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let row: Vec<f32> = vec![0.5; 8];
    let infer = "/v2/models/churn/infer";

    let refused = |path: &str, (body, header_length): (Vec<u8>, Option<usize>), status: u16, says: &str| {
        let a = send(&rt, &serve, path, header_length, body);
        let error = a.body["error"].as_str().unwrap_or_default().to_owned();
        assert_eq!(a.status, status, "{says}: {}", a.body);
        assert!(error.contains(says), "expected {says:?} in {error:?}");
        if path.contains("churn") {
            assert_eq!(a.version.as_deref(), Some("v0001"), "{says}");
            assert_eq!(a.body["model_version"], "v0001", "{says}");
        }
    };
    refused(infer, (b"{\"inputs\": [".to_vec(), None), 400, "malformed inference request");
    let named_x = json!({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": row}]});
    refused(
        infer,
        (named_x.to_string().into_bytes(), None),
        400,
        "no input `x`; its inputs are `input` (FP32 [-1, 8])",
    );
    refused(
        infer,
        request(&[1, 8], "BYTES", Some(json!(vec!["a"; 8])), &[]),
        400,
        "is BYTES, but the model takes FP32",
    );
    refused(
        infer,
        request(&[2, 8], "FP32", Some(json!(row)), &[]),
        400,
        "shape [2, 8] (16 values) but its `data` holds 8",
    );
    refused(infer, request(&[2, 4], "FP32", Some(json!(row)), &[]), 400, "rows of 4 features; the model takes [N, 8]");
    refused(infer, (br#"{"inputs": []}"#.to_vec(), None), 400, "missing input `input`");
    refused(infer, request(&[0, 8], "FP32", Some(json!([])), &[]), 400, "empty batch");
    let mut nan = row.clone();
    nan[3] = f32::NAN;
    refused(infer, request(&[1, 8], "FP32", None, &f32_bytes(&nan)), 400, "is a missing value");
    let (mut body, n) = request(&[1, 8], "FP32", None, &f32_bytes(&row));
    body.extend_from_slice(&[0; 4]);
    refused(infer, (body, n), 400, "4 bytes of binary data follow the last input's");
    refused(infer, (b"{}".to_vec(), Some(100)), 400, "says the JSON part is 100 bytes, but the body has only 2");
    let mut asks = json!({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": row}]});
    asks["outputs"] = json!([{"name": "proba"}]);
    refused(
        infer,
        (asks.to_string().into_bytes(), None),
        400,
        "no output `proba`; its outputs are `label`, `probabilities`",
    );
    refused(
        "/v2/models/churn/versions/v0002/infer",
        request(&[1, 8], "FP32", Some(json!(row)), &[]),
        404,
        "serves the registry's current version, v0001",
    );
    refused(
        "/v2/models/fraud/infer",
        request(&[1, 8], "FP32", Some(json!(row)), &[]),
        404,
        "no model `fraud` is served here",
    );

    // Still serving, by any name of the version.
    for path in [infer, "/v2/models/churn/versions/1/infer", "/v2/models/churn/versions/v0001/infer"] {
        let ok = send(&rt, &serve, path, None, request(&[1, 8], "FP32", Some(json!(row)), &[]).0);
        assert_eq!((ok.status, ok.version.as_deref()), (200, Some("v0001")), "{}", ok.body);
        assert_eq!(ok.body["model_version"], "v0001");
        assert_eq!(ok.body["outputs"][1]["shape"], json!([1, 2]));
    }
    // Counted: the 11 refusals after the version was chosen, and 3 answers; the wrong version and
    // the unknown model are refused before.
    let metrics = rt.block_on(async { reqwest::get(serve.url("/metrics")).await.unwrap().text().await.unwrap() });
    assert!(metrics.contains("dagrun_serve_unrouted_requests_total{code=\"404\"} 2"), "{metrics}");
    assert!(metrics.contains("dagrun_serve_requests_total{model=\"churn\",version=\"v0001\"} 14"), "{metrics}");
    assert!(metrics.contains("dagrun_serve_request_errors_total{model=\"churn\",version=\"v0001\"} 11"), "{metrics}");
    assert_eq!(serve.terminate(), Some(0));
}
