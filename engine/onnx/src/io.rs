//! Feeding a model and reading its outputs: the input layout, which output is the label and which the scores,
//! and reading them out of ONNX Runtime's values.

use std::path::Path;

use ort::session::{Session, SessionInputValue};
use ort::value::{DynMapValueType, DynValue, TensorElementType, TensorRef, ValueType};

use crate::error::Result;
use crate::model::{ClassLabel, ModelKind, unsupported};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    F32,
    F64,
    I64,
}

#[derive(Debug, Clone)]
pub(crate) enum InputLayout {
    /// One `[N, F]` tensor.
    Matrix { name: String, elem: Elem, width: Option<usize>, batch: Option<usize> },
    /// One `[N, 1]` (or `[N]`) tensor per feature, named like the feature columns.
    Columns { inputs: Vec<(String, Elem, bool)> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelElem {
    I64,
    I32,
    Str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScoreOutput {
    /// A float tensor `[N]` or `[N, C]`.
    Tensor { name: String, width: Option<usize> },
    /// A sequence of maps `{class: probability}` (skl2onnx with ZipMap on).
    ZipMap { name: String, string_keys: bool },
}

impl ScoreOutput {
    pub(crate) fn name(&self) -> &str {
        match self {
            ScoreOutput::Tensor { name, .. } | ScoreOutput::ZipMap { name, .. } => name,
        }
    }
}

pub(crate) fn static_dim(d: i64) -> Option<usize> {
    usize::try_from(d).ok()
}

pub(crate) fn fill(
    elem: Elem,
    values: impl Iterator<Item = f64>,
    f32s: &mut Vec<f32>,
    f64s: &mut Vec<f64>,
    i64s: &mut Vec<i64>,
) {
    match elem {
        Elem::F32 => f32s.extend(values.map(|v| v as f32)),
        Elem::F64 => f64s.extend(values),
        Elem::I64 => i64s.extend(values.map(|v| v as i64)),
    }
}

pub(crate) fn tensor_ref<'a>(
    elem: Elem,
    shape: Vec<usize>,
    f32s: &'a [f32],
    f64s: &'a [f64],
    i64s: &'a [i64],
    range: std::ops::Range<usize>,
) -> ort::Result<SessionInputValue<'a>> {
    Ok(match elem {
        Elem::F32 => TensorRef::from_array_view((shape, &f32s[range]))?.into(),
        Elem::F64 => TensorRef::from_array_view((shape, &f64s[range]))?.into(),
        Elem::I64 => TensorRef::from_array_view((shape, &i64s[range]))?.into(),
    })
}

pub(crate) struct RawOutputs {
    pub label: Option<Labels>,
    pub scores: Option<Scores>,
}

pub(crate) enum Labels {
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl Labels {
    pub(crate) fn len(&self) -> usize {
        match self {
            Labels::Int(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }

    pub(crate) fn display(&self, i: usize) -> String {
        match self {
            Labels::Int(v) => v[i].to_string(),
            Labels::Str(v) => v[i].clone(),
        }
    }

    pub(crate) fn class_index(&self, i: usize, classes: &[ClassLabel]) -> Option<usize> {
        match self {
            Labels::Int(v) => {
                let x = v[i];
                classes.iter().position(|c| *c == ClassLabel::Int(x)).or_else(|| {
                    let s = x.to_string();
                    classes.iter().position(|c| matches!(c, ClassLabel::Str(t) if *t == s))
                })
            }
            Labels::Str(v) => {
                let s = v[i].as_str();
                classes.iter().position(|c| match c {
                    ClassLabel::Str(t) => t == s,
                    ClassLabel::Int(n) => s.trim().parse::<i64>().ok() == Some(*n),
                })
            }
        }
    }
}

pub(crate) struct Scores {
    pub width: usize,
    pub values: Vec<f64>,
    pub single_precision: bool,
    /// ZipMap: the map's keys in column order.
    pub keys: Option<Vec<ClassLabel>>,
}

pub(crate) fn read_labels(value: &DynValue, elem: LabelElem) -> ort::Result<Labels> {
    Ok(match elem {
        LabelElem::I64 => Labels::Int(value.try_extract_tensor::<i64>()?.1.to_vec()),
        LabelElem::I32 => Labels::Int(value.try_extract_tensor::<i32>()?.1.iter().map(|&v| i64::from(v)).collect()),
        LabelElem::Str => Labels::Str(value.try_extract_strings()?.1),
    })
}

pub(crate) fn read_scores(value: &DynValue, spec: &ScoreOutput) -> ort::Result<Scores> {
    match spec {
        ScoreOutput::Tensor { .. } => {
            let (shape, values, single_precision) = match value.data_type() {
                TensorElementType::Float32 => {
                    let (shape, data) = value.try_extract_tensor::<f32>()?;
                    (shape.clone(), data.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), true)
                }
                _ => {
                    let (shape, data) = value.try_extract_tensor::<f64>()?;
                    (shape.clone(), data.to_vec(), false)
                }
            };
            let width = if shape.len() >= 2 { shape[1..].iter().map(|&d| d.max(0) as usize).product() } else { 1 };
            Ok(Scores { width, values, single_precision, keys: None })
        }
        ScoreOutput::ZipMap { string_keys, .. } => {
            let maps = value.try_extract_sequence::<DynMapValueType>()?;
            let mut keys: Option<Vec<ClassLabel>> = None;
            let mut values = Vec::new();
            for map in &maps {
                let row: Vec<(ClassLabel, f32)> = if *string_keys {
                    map.try_extract_key_values::<String, f32>()?
                        .into_iter()
                        .map(|(k, v)| (ClassLabel::Str(k), v))
                        .collect()
                } else {
                    map.try_extract_key_values::<i64, f32>()?
                        .into_iter()
                        .map(|(k, v)| (ClassLabel::Int(k), v))
                        .collect()
                };
                match &keys {
                    None => keys = Some(row.iter().map(|(k, _)| k.clone()).collect()),
                    Some(ks) if ks.len() == row.len() && ks.iter().zip(&row).all(|(a, (b, _))| a == b) => {}
                    Some(ks) => {
                        // Same keys in another order: put them in the first row's order.
                        if ks.len() != row.len() {
                            return Err(ort::Error::new("ZipMap rows have different numbers of classes"));
                        }
                        for k in ks {
                            let v = row.iter().find(|(rk, _)| rk == k).map(|(_, v)| *v);
                            values.push(f64::from(
                                v.ok_or_else(|| ort::Error::new("ZipMap rows have different classes"))?,
                            ));
                        }
                        continue;
                    }
                }
                values.extend(row.iter().map(|(_, v)| f64::from(*v)));
            }
            let mut keys = keys.unwrap_or_default();
            // Zero rows: no keys known; leave them empty.
            let width = keys.len();
            if maps.is_empty() {
                keys.clear();
            }
            Ok(Scores { width, values, single_precision: true, keys: Some(keys) })
        }
    }
}

fn elem_of(ty: &TensorElementType) -> Option<Elem> {
    match ty {
        TensorElementType::Float32 => Some(Elem::F32),
        TensorElementType::Float64 => Some(Elem::F64),
        TensorElementType::Int64 => Some(Elem::I64),
        _ => None,
    }
}

pub(crate) fn input_layout(path: &Path, session: &Session) -> Result<InputLayout> {
    let inputs = session.inputs();
    let describe = |o: &ort::value::Outlet| format!("`{}`: {}", o.name(), o.dtype());
    match inputs {
        [] => Err(unsupported(path, "it has no inputs")),
        [only] => match only.dtype() {
            ValueType::Tensor { ty, shape, .. } if shape.len() == 2 => {
                let elem = elem_of(ty).ok_or_else(|| {
                    unsupported(path, format!("input {} is not a float, double or int64 tensor", describe(only)))
                })?;
                Ok(InputLayout::Matrix {
                    name: only.name().to_string(),
                    elem,
                    width: static_dim(shape[1]),
                    batch: static_dim(shape[0]),
                })
            }
            ValueType::Tensor { ty, shape, .. } if shape.len() == 1 => {
                let elem = elem_of(ty).ok_or_else(|| {
                    unsupported(path, format!("input {} is not a float, double or int64 tensor", describe(only)))
                })?;
                Ok(InputLayout::Columns { inputs: vec![(only.name().to_string(), elem, false)] })
            }
            _ => Err(unsupported(path, format!("input {} is not a [N, features] tensor", describe(only)))),
        },
        many => {
            let mut cols = Vec::new();
            for o in many {
                match o.dtype() {
                    ValueType::Tensor { ty, shape, .. } if (shape.len() == 2 && shape[1] == 1) || shape.len() == 1 => {
                        let elem = elem_of(ty).ok_or_else(|| {
                            unsupported(path, format!("input {} is not a float, double or int64 tensor", describe(o)))
                        })?;
                        cols.push((o.name().to_string(), elem, shape.len() == 2));
                    }
                    _ => {
                        return Err(unsupported(
                            path,
                            format!("with several inputs, each must be one feature ([N, 1]); {} is not", describe(o)),
                        ));
                    }
                }
            }
            Ok(InputLayout::Columns { inputs: cols })
        }
    }
}

pub(crate) fn output_roles(session: &Session) -> (Option<(String, LabelElem)>, Option<ScoreOutput>) {
    let mut labels = Vec::new();
    let mut scores = Vec::new();
    for o in session.outputs() {
        let name = o.name().to_string();
        match o.dtype() {
            ValueType::Tensor { ty: TensorElementType::Int64, .. } => labels.push((name, LabelElem::I64)),
            ValueType::Tensor { ty: TensorElementType::Int32, .. } => labels.push((name, LabelElem::I32)),
            ValueType::Tensor { ty: TensorElementType::String, .. } => labels.push((name, LabelElem::Str)),
            ValueType::Tensor { ty: TensorElementType::Float32 | TensorElementType::Float64, shape, .. } => {
                let width = if shape.len() >= 2 {
                    shape[1..].iter().try_fold(1usize, |acc, &d| static_dim(d).map(|d| acc * d))
                } else {
                    Some(1)
                };
                scores.push(ScoreOutput::Tensor { name, width });
            }
            ValueType::Sequence(inner) => {
                if let ValueType::Map { key, value: TensorElementType::Float32 } = inner.as_ref()
                    && matches!(key, TensorElementType::Int64 | TensorElementType::String)
                {
                    scores.push(ScoreOutput::ZipMap { name, string_keys: *key == TensorElementType::String });
                }
            }
            _ => {}
        }
    }
    let preferred = |names: &[&str], name: &str| names.contains(&name);
    let label = labels
        .iter()
        .position(|(n, _)| preferred(&["label", "output_label"], n))
        .or(if labels.is_empty() { None } else { Some(0) })
        .map(|i| labels.swap_remove(i));
    let score = scores
        .iter()
        .position(|s| preferred(&["probabilities", "output_probability", "probability"], s.name()))
        .or_else(|| scores.iter().position(|s| matches!(s, ScoreOutput::ZipMap { .. })))
        .or(if scores.is_empty() { None } else { Some(0) })
        .map(|i| scores.swap_remove(i));
    (label, score)
}

pub(crate) fn detect_kind(label: Option<&(String, LabelElem)>, score: Option<&ScoreOutput>) -> Option<ModelKind> {
    if label.is_some() {
        return Some(ModelKind::Classifier);
    }
    match score {
        Some(ScoreOutput::ZipMap { .. }) => Some(ModelKind::Classifier),
        Some(ScoreOutput::Tensor { width: Some(1), .. }) => Some(ModelKind::Regressor),
        Some(ScoreOutput::Tensor { width: Some(_), .. }) => Some(ModelKind::Classifier),
        Some(ScoreOutput::Tensor { width: None, .. }) => None,
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_detection() {
        let t = |w| Some(ScoreOutput::Tensor { name: "s".into(), width: w });
        let label = ("label".to_string(), LabelElem::I64);
        assert_eq!(detect_kind(Some(&label), t(Some(2)).as_ref()), Some(ModelKind::Classifier));
        assert_eq!(detect_kind(None, t(Some(1)).as_ref()), Some(ModelKind::Regressor));
        assert_eq!(detect_kind(None, t(Some(3)).as_ref()), Some(ModelKind::Classifier));
        assert_eq!(detect_kind(None, t(None).as_ref()), None);
        let zipmap = ScoreOutput::ZipMap { name: "p".into(), string_keys: false };
        assert_eq!(detect_kind(None, Some(&zipmap)), Some(ModelKind::Classifier));
    }
}
