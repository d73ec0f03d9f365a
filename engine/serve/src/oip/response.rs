//! The model's outputs as the protocol describes them (label, probabilities or values, under the
//! model's own output names), which of them a request asks for, and the response: JSON tensors,
//! or binary tensor data after the JSON part.

use std::fmt::Write;

use dagrun_onnx::{ClassLabel, ModelInfo, ModelKind, Predictions, ScoreTransform};
use serde_json::Value;

use super::request::RequestedOutput;
use crate::api::{push_float, push_label};
use crate::error::ApiError;
use crate::worker::Output;

/// What an output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The predicted class per row.
    Label,
    /// `rows × classes` probabilities, in class order.
    Probabilities,
    /// A regressor's prediction per row.
    Values,
}

/// One output as the model metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct OutputSpec {
    pub name: String,
    #[serde(skip)]
    pub role: Role,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

/// The outputs dagrun answers with: a classifier's label and probabilities, or a regressor's
/// values, named like the model's outputs.
pub(crate) fn output_specs(info: &ModelInfo, classes: Option<&[ClassLabel]>) -> Vec<OutputSpec> {
    let score_name = info.score_output.clone();
    let desc = |name: &str| info.outputs.iter().find(|o| o.name == name).map_or("", |o| o.ty.as_str());
    let score_type = score_name.as_deref().map_or("", desc);
    let transformed = info.score_transform.is_some_and(|t| t != ScoreTransform::None);
    let float = if score_type.contains("f32") && !transformed { "FP32" } else { "FP64" };
    if info.kind == Some(ModelKind::Regressor) {
        let Some(name) = score_name else { return Vec::new() };
        let shape = if rank(score_type) == Some(1) { vec![-1] } else { vec![-1, 1] };
        return vec![OutputSpec { name, role: Role::Values, datatype: float, shape }];
    }
    let label_name = info.label_output.clone().unwrap_or_else(|| {
        if score_name.as_deref() == Some("label") { "predicted_label".to_owned() } else { "label".to_owned() }
    });
    let label_type = match classes {
        Some(c) => label_datatype(c),
        None if desc(&label_name).contains("String") => "BYTES",
        None => "INT64",
    };
    let mut specs = vec![OutputSpec { name: label_name, role: Role::Label, datatype: label_type, shape: vec![-1] }];
    if let Some(name) = score_name {
        let c = classes.map_or(-1, |c| c.len() as i64);
        specs.push(OutputSpec { name, role: Role::Probabilities, datatype: float, shape: vec![-1, c] });
    }
    specs
}

/// `INT64` when every class is a number, else `BYTES`.
fn label_datatype(classes: &[ClassLabel]) -> &'static str {
    if classes.iter().all(|c| matches!(c, ClassLabel::Int(_))) { "INT64" } else { "BYTES" }
}

/// The number of dimensions in an output type as ONNX Runtime prints it (`Tensor<f32>(dyn, 1)`).
fn rank(ty: &str) -> Option<usize> {
    let dims = ty.strip_prefix("Tensor<")?.split_once('(')?.1.strip_suffix(')')?;
    Some(if dims.trim().is_empty() { 0 } else { dims.split(',').count() })
}

/// One output to send: which spec, and whether as binary data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Selected {
    pub spec: usize,
    pub binary: bool,
}

/// The outputs to send, in the order asked (every output when none is named). `binary_output`:
/// the request's `binary_data_output`, for outputs that do not say.
pub(crate) fn select(
    specs: &[OutputSpec],
    asked: Option<&[RequestedOutput]>,
    binary_output: bool,
) -> Result<Vec<Selected>, ApiError> {
    let Some(asked) = asked.filter(|a| !a.is_empty()) else {
        return Ok((0..specs.len()).map(|spec| Selected { spec, binary: binary_output }).collect());
    };
    let mut selected = Vec::with_capacity(asked.len());
    for out in asked {
        let Some(spec) = specs.iter().position(|s| s.name == out.name) else {
            let names: Vec<String> = specs.iter().map(|s| format!("`{}`", s.name)).collect();
            return Err(ApiError::bad_request(format!(
                "the model has no output `{}`; its outputs are {}",
                out.name,
                names.join(", ")
            )));
        };
        if out.parameters.contains_key("classification") {
            return Err(ApiError::bad_request(format!(
                "output `{}`: the classification extension is not supported; ask for the label output, \
                 which holds each row's predicted class",
                out.name
            )));
        }
        if selected.iter().any(|s: &Selected| s.spec == spec) {
            return Err(ApiError::bad_request(format!("output `{}` is asked for twice; ask once", out.name)));
        }
        selected.push(Selected { spec, binary: out.binary()?.unwrap_or(binary_output) });
    }
    Ok(selected)
}

/// Who answered, for the response's JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer<'a> {
    pub model: &'a str,
    pub version: &'a str,
    pub digest: &'a str,
    pub id: Option<&'a str>,
}

/// An encoded response: the JSON part, then the binary outputs (empty when all are JSON).
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    pub json: String,
    pub binary: Vec<u8>,
}

/// The response for `output` (`rows` rows): each selected output as JSON `data` or as binary data
/// (`parameters.binary_data_size`) after the JSON part.
pub(crate) fn encode(
    who: Answer<'_>,
    specs: &[OutputSpec],
    selected: &[Selected],
    output: &Output,
    rows: usize,
) -> Encoded {
    let mut e = Encoded { json: String::with_capacity(256 + rows * 24), binary: Vec::new() };
    let s = &mut e.json;
    let _ = write!(s, "{{\"model_name\":{},\"model_version\":{}", Value::from(who.model), Value::from(who.version));
    if let Some(id) = who.id {
        let _ = write!(s, ",\"id\":{}", Value::from(id));
    }
    let _ = write!(s, ",\"parameters\":{{\"model_digest\":{}}},\"outputs\":[", Value::from(who.digest));
    let classes = output.classes.as_deref().map_or(&[][..], Vec::as_slice);
    let mut first = true;
    for sel in selected {
        let spec = &specs[sel.spec];
        let Some(tensor) = tensor(spec.role, &output.predictions, classes, &spec.shape, rows) else { continue };
        if !first {
            s.push(',');
        }
        first = false;
        let _ = write!(
            s,
            "{{\"name\":{},\"datatype\":\"{}\",\"shape\":[",
            Value::from(spec.name.as_str()),
            tensor.datatype
        );
        for (i, d) in tensor.shape.iter().enumerate() {
            let _ = write!(s, "{}{d}", if i > 0 { "," } else { "" });
        }
        s.push(']');
        if sel.binary {
            let before = e.binary.len();
            tensor.data.write_binary(&mut e.binary);
            let _ = write!(s, ",\"parameters\":{{\"binary_data_size\":{}}}}}", e.binary.len() - before);
        } else {
            s.push_str(",\"data\":[");
            tensor.data.write_json(s);
            s.push_str("]}");
        }
    }
    s.push_str("]}");
    e
}

/// An output tensor's values.
enum Data<'a> {
    Labels(&'a [usize], &'a [ClassLabel], bool),
    Floats(&'a [f64], bool),
}

struct OutTensor<'a> {
    datatype: &'static str,
    shape: Vec<usize>,
    data: Data<'a>,
}

/// The tensor of `role` in `predictions`; `None` when the predictions do not have it.
fn tensor<'a>(
    role: Role,
    predictions: &'a Predictions,
    classes: &'a [ClassLabel],
    spec_shape: &[i64],
    rows: usize,
) -> Option<OutTensor<'a>> {
    let float = |single: bool| if single { "FP32" } else { "FP64" };
    match (role, predictions) {
        (Role::Label, Predictions::Classes { predicted, .. }) => {
            let datatype = label_datatype(classes);
            Some(OutTensor { datatype, shape: vec![rows], data: Data::Labels(predicted, classes, datatype == "BYTES") })
        }
        (Role::Probabilities, Predictions::Classes { probabilities: Some(p), single_precision, .. }) => {
            let shape = vec![rows, p.len().checked_div(rows).unwrap_or(classes.len())];
            Some(OutTensor { datatype: float(*single_precision), shape, data: Data::Floats(p, *single_precision) })
        }
        (Role::Values, Predictions::Values { values, single_precision }) => {
            let shape = if spec_shape.len() == 1 { vec![rows] } else { vec![rows, 1] };
            Some(OutTensor { datatype: float(*single_precision), shape, data: Data::Floats(values, *single_precision) })
        }
        _ => None,
    }
}

impl Data<'_> {
    fn write_json(&self, s: &mut String) {
        match self {
            Data::Labels(predicted, classes, as_text) => {
                for (i, &k) in predicted.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    match class(classes, k) {
                        ClassLabel::Int(v) if *as_text => {
                            let _ = write!(s, "\"{v}\"");
                        }
                        label => push_label(s, &label),
                    }
                }
            }
            Data::Floats(values, single) => {
                for (i, &v) in values.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    push_float(s, v, *single);
                }
            }
        }
    }

    /// Little-endian values; `BYTES` elements as a 4-byte little-endian length, then the bytes.
    fn write_binary(&self, out: &mut Vec<u8>) {
        match self {
            Data::Labels(predicted, classes, true) => {
                for &k in predicted.iter() {
                    let text = class(classes, k).to_string();
                    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
            }
            Data::Labels(predicted, classes, false) => {
                for &k in predicted.iter() {
                    let v = if let ClassLabel::Int(v) = class(classes, k) { v } else { k as i64 };
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Data::Floats(values, true) => values.iter().for_each(|&v| out.extend_from_slice(&(v as f32).to_le_bytes())),
            Data::Floats(values, false) => values.iter().for_each(|&v| out.extend_from_slice(&v.to_le_bytes())),
        }
    }
}

/// Class `k` (its index when the class list is unknown).
fn class(classes: &[ClassLabel], k: usize) -> ClassLabel {
    classes.get(k).cloned().unwrap_or(ClassLabel::Int(k as i64))
}
