//! Tests of reading inference requests and writing responses (no server, no model).

use std::path::PathBuf;
use std::sync::Arc;

use dagrun_onnx::rows::{FeatureBuf, Rows, Schema, TensorSpec};
use dagrun_onnx::{ClassLabel, IoDesc, ModelInfo, ModelKind, Predictions, ScoreTransform};
use serde_json::{Value, json};

use super::response::{self, Answer, OutputSpec, Role, Selected};
use super::{Parsed, parse, same_version};
use crate::error::ApiError;
use crate::worker::Output;

fn matrix(width: usize, single: bool) -> Schema {
    Schema {
        features: None,
        width: Some(width),
        single_precision: single,
        inputs: vec![TensorSpec {
            name: "input".into(),
            datatype: if single { "FP32" } else { "FP64" },
            shape: vec![-1, width as i64],
        }],
        per_feature: false,
    }
}

fn per_feature(names: &[&str]) -> Schema {
    Schema {
        features: Some(names.iter().map(|n| n.to_string()).collect()),
        width: Some(names.len()),
        single_precision: false,
        inputs: names
            .iter()
            .map(|n| TensorSpec { name: n.to_string(), datatype: "FP64", shape: vec![-1, 1] })
            .collect(),
        per_feature: true,
    }
}

fn info(kind: ModelKind, label: Option<&str>, score: (&str, &str)) -> ModelInfo {
    let mut outputs = vec![IoDesc { name: score.0.into(), ty: score.1.into() }];
    if let Some(l) = label {
        outputs.insert(0, IoDesc { name: l.into(), ty: "Tensor<i64>(dyn)".into() });
    }
    ModelInfo {
        path: PathBuf::from("model.onnx"),
        inputs: Vec::new(),
        outputs,
        kind: Some(kind),
        kind_overridden: false,
        label_output: label.map(str::to_owned),
        score_output: Some(score.0.into()),
        classes: None,
        class_source: None,
        feature_count: None,
        score_transform: (kind == ModelKind::Classifier).then_some(ScoreTransform::None),
        score_transform_reason: None,
        evaluator: None,
    }
}

fn ints(n: i64) -> Vec<ClassLabel> {
    (0..n).map(ClassLabel::Int).collect()
}

fn classifier_specs() -> Vec<OutputSpec> {
    let info = info(ModelKind::Classifier, Some("label"), ("probabilities", "Tensor<f32>(dyn, 2)"));
    response::output_specs(&info, Some(&ints(2)))
}

/// Parses `body` (JSON, or JSON then `binary` with the header set) for a model of `schema`.
fn read(schema: &Schema, body: &Value, binary: &[u8]) -> Result<Parsed, ApiError> {
    let mut bytes = body.to_string().into_bytes();
    let header = (!binary.is_empty()).then(|| bytes.len().to_string());
    bytes.extend_from_slice(binary);
    parse(&bytes, header.as_deref(), schema, &classifier_specs())
}

fn error(schema: &Schema, body: &Value, binary: &[u8]) -> String {
    let e = read(schema, body, binary).expect_err("the request should be refused");
    assert_eq!(e.status.as_u16(), 400, "{}", e.message);
    e.message
}

fn input(shape: &[i64], data: Value) -> Value {
    json!({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": data}]})
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn json_tensors_flat_or_nested() {
    let s = matrix(2, true);
    let flat = read(&s, &input(&[2, 2], json!([1, 2.5, 3, 4])), &[]).unwrap();
    let nested = read(&s, &input(&[2, 2], json!([[1, 2.5], [3, 4]])), &[]).unwrap();
    assert_eq!(flat.rows.values, FeatureBuf::F32(vec![1.0, 2.5, 3.0, 4.0]));
    assert_eq!((nested.rows.rows, nested.rows.width), (2, 2));
    assert_eq!(nested.rows.values, flat.rows.values);
    // Every output, as JSON, unless asked otherwise.
    assert_eq!(flat.selected, vec![Selected { spec: 0, binary: false }, Selected { spec: 1, binary: false }]);
    assert_eq!(flat.id, None);
}

#[test]
fn binary_tensors_follow_the_json_part() {
    let s = matrix(2, true);
    let body = json!({"id": "r1", "inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP32",
                      "parameters": {"binary_data_size": 16}}], "parameters": {"binary_data_output": true}});
    let p = read(&s, &body, &f32_bytes(&[1.0, -2.0, 0.5, 8.0])).unwrap();
    assert_eq!(p.rows.values, FeatureBuf::F32(vec![1.0, -2.0, 0.5, 8.0]));
    assert_eq!(p.id.as_deref(), Some("r1"));
    assert!(p.selected.iter().all(|s| s.binary));
    // Other numeric types are converted to the model's precision.
    let body = json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "INT64",
                      "parameters": {"binary_data_size": 16}}]});
    let bytes: Vec<u8> = [3i64, -7].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(read(&matrix(2, false), &body, &bytes).unwrap().rows.values, FeatureBuf::F64(vec![3.0, -7.0]));
}

#[test]
fn binary_sizes_must_add_up() {
    let s = matrix(2, true);
    let body = |size: usize| json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": size}}]});
    assert_eq!(
        error(&s, &body(8), &f32_bytes(&[1.0, 2.0, 3.0])),
        "4 bytes of binary data follow the last input's: the inputs' binary_data_size values must add up to the \
         body's length minus Inference-Header-Content-Length"
    );
    assert!(error(&s, &body(16), &f32_bytes(&[1.0, 2.0])).starts_with(
        "input `input`: binary_data_size is 16 bytes, but only 8 bytes of binary data are left in the body"
    ));
    assert_eq!(
        error(&s, &body(4), &f32_bytes(&[1.0])),
        "input `input`: shape [1, 2] of FP32 needs 8 bytes of binary data, binary_data_size says 4"
    );
    let e = parse(b"{}", Some("10"), &s, &[]).unwrap_err().message;
    assert_eq!(e, "Inference-Header-Content-Length says the JSON part is 10 bytes, but the body has only 2");
    let e = parse(b"{}", Some("x"), &s, &[]).unwrap_err().message;
    assert!(e.starts_with("Inference-Header-Content-Length is \"x\""), "{e}");
}

#[test]
fn malformed_requests_say_what_to_send() {
    let s = matrix(2, true);
    let e = parse(b"{\"inputs\": [", None, &s, &[]).unwrap_err().message;
    assert!(e.starts_with("malformed inference request: EOF while parsing"), "{e}");
    assert!(e.contains("send {\"inputs\": [{\"name\""), "{e}");
    let e = parse(b"{\"inputs\": [{\"name\": \"input\"}]}", None, &s, &[]).unwrap_err().message;
    assert!(e.starts_with("malformed inference request: missing field `shape`"), "{e}");
    let body = json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32"}]});
    assert_eq!(
        error(&s, &body, &[]),
        "input `input` has no data: send `data`, or binary data with parameters.binary_data_size"
    );
    let body = json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2],
                      "parameters": {"binary_data_size": 8}}]});
    assert_eq!(
        error(&s, &body, &f32_bytes(&[1.0, 2.0])),
        "input `input` has both `data` and binary data (binary_data_size): send one"
    );
    let deep = format!(
        "{{\"inputs\": [{{\"name\": \"input\", \"shape\": [1], \"datatype\": \"FP32\", \"data\": {}1{}}}]}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let e = parse(deep.as_bytes(), None, &s, &[]).unwrap_err().message;
    assert!(e.starts_with("malformed inference request: recursion limit exceeded"), "{e}");
    assert_eq!(
        error(&s, &input(&[1 << 62, 8], json!([1])), &[]),
        "input `input` has shape [4611686018427387904, 8]: too many elements"
    );
    let body = json!({"inputs": [], "parameters": {"binary_data_output": "yes"}});
    assert_eq!(error(&s, &body, &[]), "parameter `binary_data_output` of the request is \"yes\"; send true or false");
}

#[test]
fn inputs_must_be_the_models() {
    let s = matrix(2, true);
    let body = json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]});
    assert_eq!(error(&s, &body, &[]), "the model has no input `x`; its inputs are `input` (FP32 [-1, 2])");
    let body = json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]}]});
    assert_eq!(error(&s, &body, &[]), "input `input` is BYTES, but the model takes FP32 numbers: send datatype FP32");
    assert_eq!(error(&s, &json!({"inputs": []}), &[]), "missing input `input`: the model takes `input` (FP32 [-1, 2])");
    let twice = json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]},
                                  {"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]});
    assert_eq!(error(&s, &twice, &[]), "input `input` is sent twice; send it once");
}

#[test]
fn shapes_must_match_data_and_model() {
    let s = matrix(2, true);
    assert_eq!(
        error(&s, &input(&[2, 2], json!([1, 2, 3])), &[]),
        "input `input` has shape [2, 2] (4 values) but its `data` holds 3"
    );
    assert_eq!(
        error(&s, &input(&[1, 3], json!([1, 2, 3])), &[]),
        "input `input` has shape [1, 3]: rows of 3 features; the model takes [N, 2]"
    );
    assert_eq!(
        error(&matrix(0, true), &input(&[1, 0], json!([])), &[]),
        "input `input` has shape [1, 0]: rows of 0 features; the model takes [N, 0]"
    );
    assert_eq!(
        error(&s, &input(&[2], json!([1, 2])), &[]),
        "input `input` has shape [2]; the model takes [N, 2] (N rows of 2 features)"
    );
    assert_eq!(
        error(&s, &input(&[-1, 2], json!([1, 2])), &[]),
        "input `input` has shape [-1, 2]: sizes must be 0 or more"
    );
    // An empty batch parses; the handler refuses it (check_rows).
    assert_eq!(read(&s, &input(&[0, 2], json!([])), &[]).unwrap().rows.rows, 0);
}

#[test]
fn data_must_be_numbers() {
    let s = matrix(2, true);
    assert_eq!(
        error(&s, &input(&[1, 2], json!([1, "two"])), &[]),
        "input `input`: element 1 of `data` is \"two\" (a string); FP32 data are numbers"
    );
    assert_eq!(
        error(&s, &input(&[1, 2], json!([[null, 1]])), &[]),
        "input `input`: element 0 of `data` is null (a missing value); FP32 data are numbers"
    );
    assert_eq!(
        error(&s, &input(&[1, 2], json!([1, true])), &[]),
        "input `input`: element 1 of `data` is true (a boolean); FP32 data are numbers"
    );
    let ints = |datatype: &str, data: Value| json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": datatype, "data": data}]});
    assert_eq!(
        error(&s, &ints("INT8", json!([1, 300])), &[]),
        "input `input`: element 1 of `data` is 300, out of its range for INT8 (-128 to 127)"
    );
    assert_eq!(
        error(&s, &ints("UINT32", json!([-1, 2])), &[]),
        "input `input`: element 0 of `data` is -1, out of its range for UINT32 (0 to 4294967295)"
    );
    assert_eq!(
        error(&s, &ints("INT64", json!([1, 2.5])), &[]),
        "input `input`: element 1 of `data` is 2.5, not a whole number for INT64 (-9223372036854775808 to 9223372036854775807)"
    );
    assert_eq!(read(&s, &ints("INT16", json!([-32768, 32767])), &[]).unwrap().rows.get(0, 1), 32767.0);
    // NaN travels in binary data; the handler refuses it (check_rows).
    let body = json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]});
    let rows = read(&s, &body, &f32_bytes(&[1.0, f32::NAN])).unwrap().rows;
    assert_eq!(rows.first_not_finite(), Some((0, 1)));
}

#[test]
fn one_input_per_feature_is_interleaved_into_rows() {
    let s = per_feature(&["a", "b"]);
    let body = json!({"inputs": [
        {"name": "b", "shape": [2, 1], "datatype": "FP64", "data": [10, 20]},
        {"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},
    ]});
    let rows = read(&s, &body, &[]).unwrap().rows;
    assert_eq!((rows.rows, rows.width), (2, 2));
    assert_eq!(rows.values, FeatureBuf::F64(vec![1.0, 10.0, 2.0, 20.0]));
    let one = json!({"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]}]});
    assert_eq!(error(&s, &one, &[]), "missing input `b`: the model takes `a` (FP64 [-1, 1]), `b` (FP64 [-1, 1])");
    let uneven = json!({"inputs": [
        {"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},
        {"name": "b", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]},
    ]});
    assert!(error(&s, &uneven, &[]).starts_with("input `b` has shape [3]; the model takes one value per row"));
}

#[test]
fn outputs_asked_for_by_name() {
    let s = matrix(2, true);
    let mut body = input(&[1, 2], json!([1, 2]));
    body["outputs"] = json!([{"name": "probabilities", "parameters": {"binary_data": true}}]);
    assert_eq!(read(&s, &body, &[]).unwrap().selected, vec![Selected { spec: 1, binary: true }]);
    body["outputs"] = json!([{"name": "label", "parameters": {"classification": 2}}]);
    assert!(error(&s, &body, &[]).starts_with("output `label`: the classification extension is not supported"));
    body["outputs"] = json!([{"name": "proba"}]);
    assert_eq!(error(&s, &body, &[]), "the model has no output `proba`; its outputs are `label`, `probabilities`");
}

#[test]
fn output_specs_follow_the_model() {
    let specs = classifier_specs();
    assert_eq!((specs[0].name.as_str(), specs[0].datatype, &specs[0].shape[..]), ("label", "INT64", &[-1][..]));
    assert_eq!((specs[1].role, specs[1].datatype, &specs[1].shape[..]), (Role::Probabilities, "FP32", &[-1, 2][..]));
    let strings = [ClassLabel::Str("no".into()), ClassLabel::Str("yes".into())];
    let info = info(ModelKind::Classifier, Some("label"), ("probabilities", "Tensor<f32>(dyn, 2)"));
    assert_eq!(response::output_specs(&info, Some(&strings))[0].datatype, "BYTES");
    let reg = info_regressor("Tensor<f32>(dyn, 1)");
    let specs = response::output_specs(&reg, None);
    assert_eq!((specs.len(), specs[0].role, &specs[0].shape[..]), (1, Role::Values, &[-1, 1][..]));
    assert_eq!(response::output_specs(&info_regressor("Tensor<f64>(dyn)"), None)[0].shape, vec![-1]);
    assert_eq!(response::output_specs(&info_regressor("Tensor<f64>(dyn)"), None)[0].datatype, "FP64");
}

fn info_regressor(ty: &str) -> ModelInfo {
    info(ModelKind::Regressor, None, ("variable", ty))
}

fn who() -> Answer<'static> {
    Answer { model: "churn", version: "v0002", digest: "abc", id: Some("r1") }
}

fn classified(classes: Vec<ClassLabel>) -> Output {
    Output {
        predictions: Predictions::Classes {
            predicted: vec![1, 0],
            probabilities: Some(vec![0.25, 0.75, 0.875, 0.125]),
            single_precision: true,
        },
        classes: Some(Arc::new(classes)),
        rows: two_rows(),
    }
}

/// The rows an `Output` hands back (their values do not matter to the encoding).
fn two_rows() -> Rows {
    Rows { values: FeatureBuf::F32(vec![0.0, 0.0]), rows: 2, width: 1 }
}

#[test]
fn json_responses() {
    let both = [Selected { spec: 0, binary: false }, Selected { spec: 1, binary: false }];
    let e = response::encode(who(), &classifier_specs(), &both, &classified(ints(2)), 2);
    assert!(e.binary.is_empty());
    let v: Value = serde_json::from_str(&e.json).unwrap();
    assert_eq!(
        v,
        json!({"model_name": "churn", "model_version": "v0002", "id": "r1", "parameters": {"model_digest": "abc"},
               "outputs": [{"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]},
                           {"name": "probabilities", "datatype": "FP32", "shape": [2, 2],
                            "data": [0.25, 0.75, 0.875, 0.125]}]})
    );
    let strings = vec![ClassLabel::Str("no".into()), ClassLabel::Str("yes \"sure\"".into())];
    let e = response::encode(who(), &classifier_specs(), &both[..1], &classified(strings), 2);
    let v: Value = serde_json::from_str(&e.json).unwrap();
    assert_eq!(
        v["outputs"],
        json!([{"name": "label", "datatype": "BYTES", "shape": [2], "data": ["yes \"sure\"", "no"]}])
    );
}

#[test]
fn binary_responses() {
    let both = [Selected { spec: 1, binary: true }, Selected { spec: 0, binary: true }];
    let e = response::encode(who(), &classifier_specs(), &both, &classified(ints(2)), 2);
    let v: Value = serde_json::from_str(&e.json).unwrap();
    assert_eq!(v["outputs"][0]["parameters"], json!({"binary_data_size": 16}));
    assert_eq!(v["outputs"][1]["parameters"], json!({"binary_data_size": 16}));
    assert!(v["outputs"][0].get("data").is_none());
    let mut want = f32_bytes(&[0.25, 0.75, 0.875, 0.125]);
    want.extend([1i64, 0].iter().flat_map(|v| v.to_le_bytes()));
    assert_eq!(e.binary, want);
    // BYTES: a 4-byte little-endian length, then the bytes.
    let strings = vec![ClassLabel::Str("no".into()), ClassLabel::Str("yes".into())];
    let e = response::encode(who(), &classifier_specs(), &both[1..], &classified(strings), 2);
    assert_eq!(e.binary, b"\x03\0\0\0yes\x02\0\0\0no");
    // A regressor's values, in its precision and output shape.
    let reg = response::output_specs(&info_regressor("Tensor<f64>(dyn, 1)"), None);
    let out = Output {
        predictions: Predictions::Values { values: vec![1.5, -2.0], single_precision: false },
        classes: None,
        rows: two_rows(),
    };
    let e = response::encode(who(), &reg, &[Selected { spec: 0, binary: true }], &out, 2);
    let v: Value = serde_json::from_str(&e.json).unwrap();
    assert_eq!(v["outputs"][0]["shape"], json!([2, 1]));
    assert_eq!(v["outputs"][0]["datatype"], "FP64");
    assert_eq!(e.binary, [1.5f64, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
}

#[test]
fn versions_in_paths() {
    assert!(same_version("v0003", "v0003"));
    assert!(same_version("3", "v0003"));
    assert!(same_version("0003", "v0003"));
    assert!(!same_version("4", "v0003"));
    assert!(!same_version("v", "v0003"));
    assert!(same_version("latest", "latest"));
}
