//! Reading an inference request: the JSON part and, with the binary tensor data extension, the
//! raw tensors after it; each input tensor decoded and checked against the model's inputs, then
//! laid out as the rows the model runs on.

use std::fmt;

use dagrun_onnx::rows::{FeatureBuf, Rows, Schema};
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The request header naming the length of the JSON part of a binary request.
pub(crate) const HEADER_LENGTH: &str = "inference-header-content-length";

/// What an inference request asks, as sent.
#[derive(Debug, Deserialize)]
pub(crate) struct InferRequest {
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    pub inputs: Vec<InputTensor>,
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One input tensor as sent: its data in `data`, or in the binary part (`binary_data_size`).
#[derive(Debug, Deserialize)]
pub(crate) struct InputTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    pub data: Option<Flat>,
}

/// An output asked for, and whether it should come back as binary data.
#[derive(Debug, Deserialize)]
pub(crate) struct RequestedOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

impl InferRequest {
    /// Request parameter `binary_data_output`: every output as binary data unless it says otherwise.
    pub fn binary_output(&self) -> Result<bool, ApiError> {
        flag(&self.parameters, "binary_data_output", "the request")
    }
}

impl RequestedOutput {
    /// Its `binary_data` parameter, if given.
    pub fn binary(&self) -> Result<Option<bool>, ApiError> {
        match self.parameters.get("binary_data") {
            None => Ok(None),
            Some(_) => flag(&self.parameters, "binary_data", &format!("output `{}`", self.name)).map(Some),
        }
    }
}

fn flag(parameters: &Map<String, Value>, key: &str, whose: &str) -> Result<bool, ApiError> {
    match parameters.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => {
            Err(ApiError::bad_request(format!("parameter `{key}` of {whose} is {other}; send true or false")))
        }
    }
}

/// The values of a JSON `data` field, flattened (nested arrays are read row-major). Elements that
/// are not numbers are not kept: the first is remembered for the error message.
#[derive(Debug, Default)]
pub(crate) struct Flat {
    pub values: Vec<f64>,
    /// Number of elements seen, numbers or not.
    pub count: usize,
    /// The first element that is not a number: its index and what it is.
    pub bad: Option<(usize, String)>,
}

impl Flat {
    fn not_number(&mut self, what: String) {
        if self.bad.is_none() {
            self.bad = Some((self.count, what));
        }
        self.count += 1;
    }

    fn number(&mut self, v: f64) {
        self.values.push(v);
        self.count += 1;
    }
}

impl<'de> Deserialize<'de> for Flat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Flat, D::Error> {
        let mut flat = Flat::default();
        d.deserialize_any(Flatten(&mut flat))?;
        Ok(flat)
    }
}

/// Reads one JSON value into a [`Flat`] (arrays recursively).
struct Flatten<'a>(&'a mut Flat);

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("numbers, or arrays of them")
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.number(v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.number(v as f64);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.number(v as f64);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.not_number(format!("{v} (a boolean)"));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        let shown: String = v.chars().take(40).collect();
        self.0.not_number(format!("{shown:?} (a string)"));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.not_number("null (a missing value)".into());
        Ok(())
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.0.not_number("an object".into());
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Splits a body into its JSON part and the binary tensors after it: `header` is the
/// `Inference-Header-Content-Length` value (absent: the whole body is JSON).
pub(crate) fn split<'a>(body: &'a [u8], header: Option<&str>) -> Result<(&'a [u8], &'a [u8]), ApiError> {
    let Some(text) = header else { return Ok((body, &[])) };
    let n: usize = text.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Inference-Header-Content-Length is {text:?}; send the length in bytes of the JSON part of the body"
        ))
    })?;
    if n > body.len() {
        return Err(ApiError::bad_request(format!(
            "Inference-Header-Content-Length says the JSON part is {n} bytes, but the body has only {}",
            body.len()
        )));
    }
    Ok(body.split_at(n))
}

/// Reads the JSON part of a request.
pub(crate) fn parse(json: &[u8]) -> Result<InferRequest, ApiError> {
    serde_json::from_slice(json).map_err(|e| {
        ApiError::bad_request(format!(
            "malformed inference request: {e}; send {{\"inputs\": [{{\"name\": ..., \"shape\": [rows, features], \
             \"datatype\": \"FP32\", \"data\": [...]}}]}}"
        ))
    })
}

/// A tensor element type of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Datatype {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl Datatype {
    /// The numeric types (any of them feeds a model's float or integer input); `None` for the
    /// rest (`BYTES`, `BOOL`, `FP16`, `BF16`) and unknown names.
    fn parse(s: &str) -> Option<Datatype> {
        Some(match s {
            "UINT8" => Datatype::U8,
            "UINT16" => Datatype::U16,
            "UINT32" => Datatype::U32,
            "UINT64" => Datatype::U64,
            "INT8" => Datatype::I8,
            "INT16" => Datatype::I16,
            "INT32" => Datatype::I32,
            "INT64" => Datatype::I64,
            "FP32" => Datatype::F32,
            "FP64" => Datatype::F64,
            _ => return None,
        })
    }

    /// The values an integer type holds (`None`: a float type).
    fn range(self) -> Option<(i128, i128)> {
        Some(match self {
            Datatype::U8 => (0, u8::MAX.into()),
            Datatype::U16 => (0, u16::MAX.into()),
            Datatype::U32 => (0, u32::MAX.into()),
            Datatype::U64 => (0, u64::MAX.into()),
            Datatype::I8 => (i8::MIN.into(), i8::MAX.into()),
            Datatype::I16 => (i16::MIN.into(), i16::MAX.into()),
            Datatype::I32 => (i32::MIN.into(), i32::MAX.into()),
            Datatype::I64 => (i64::MIN.into(), i64::MAX.into()),
            Datatype::F32 | Datatype::F64 => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Datatype::U8 | Datatype::I8 => 1,
            Datatype::U16 | Datatype::I16 => 2,
            Datatype::U32 | Datatype::I32 | Datatype::F32 => 4,
            Datatype::U64 | Datatype::I64 | Datatype::F64 => 8,
        }
    }

    /// Appends little-endian `bytes` (a whole number of elements) to `out`.
    fn decode(self, bytes: &[u8], out: &mut FeatureBuf) {
        let chunks = bytes.chunks_exact(self.size());
        macro_rules! each {
            ($t:ty) => {
                chunks.for_each(|c| out.push(<$t>::from_le_bytes(c.try_into().unwrap_or_default()) as f64))
            };
        }
        match (self, &mut *out) {
            (Datatype::F32, FeatureBuf::F32(v)) => {
                v.extend(chunks.map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default())));
            }
            (Datatype::F32, _) => each!(f32),
            (Datatype::F64, _) => each!(f64),
            (Datatype::U8, _) => each!(u8),
            (Datatype::U16, _) => each!(u16),
            (Datatype::U32, _) => each!(u32),
            (Datatype::U64, _) => each!(u64),
            (Datatype::I8, _) => each!(i8),
            (Datatype::I16, _) => each!(i16),
            (Datatype::I32, _) => each!(i32),
            (Datatype::I64, _) => each!(i64),
        }
    }
}

/// One input tensor, decoded: its shape and values in the model's precision.
#[derive(Debug)]
pub(crate) struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: FeatureBuf,
}

/// Decodes every input tensor, taking binary data from `binary` in input order. Every byte of
/// `binary` must belong to an input.
pub(crate) fn decode_inputs(inputs: Vec<InputTensor>, binary: &[u8], schema: &Schema) -> Result<Vec<Tensor>, ApiError> {
    let mut rest = binary;
    let mut tensors = Vec::with_capacity(inputs.len());
    for input in inputs {
        let Some(spec) = schema.inputs.iter().find(|s| s.name == input.name) else {
            return Err(ApiError::bad_request(format!(
                "the model has no input `{}`; its inputs are {}",
                input.name,
                input_list(schema)
            )));
        };
        if tensors.iter().any(|t: &Tensor| t.name == input.name) {
            return Err(ApiError::bad_request(format!("input `{}` is sent twice; send it once", input.name)));
        }
        tensors.push(decode(input, spec.datatype, &mut rest, schema.single_precision)?);
    }
    if !rest.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} bytes of binary data follow the last input's: the inputs' binary_data_size values must add up to \
             the body's length minus Inference-Header-Content-Length",
            rest.len()
        )));
    }
    Ok(tensors)
}

fn input_list(schema: &Schema) -> String {
    let list: Vec<String> =
        schema.inputs.iter().map(|s| format!("`{}` ({} {:?})", s.name, s.datatype, s.shape)).collect();
    list.join(", ")
}

fn decode(input: InputTensor, takes: &str, rest: &mut &[u8], single: bool) -> Result<Tensor, ApiError> {
    let name = &input.name;
    let Some(datatype) = Datatype::parse(&input.datatype) else {
        return Err(ApiError::bad_request(format!(
            "input `{name}` is {}, but the model takes {takes} numbers: send datatype {takes}",
            input.datatype
        )));
    };
    let shape = input.shape.iter().map(|&d| usize::try_from(d)).collect::<Result<Vec<usize>, _>>().map_err(|_| {
        ApiError::bad_request(format!("input `{name}` has shape {:?}: sizes must be 0 or more", input.shape))
    })?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| ApiError::bad_request(format!("input `{name}` has shape {shape:?}: too many elements")))?;
    if input.parameters.contains_key("shared_memory_region") {
        return Err(ApiError::bad_request(format!(
            "input `{name}` is in shared memory, which dagrun serve does not support: send `data` or binary data"
        )));
    }
    let mut values = if single { FeatureBuf::F32(Vec::new()) } else { FeatureBuf::F64(Vec::new()) };
    match (input.parameters.get("binary_data_size"), input.data) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "input `{name}` has both `data` and binary data (binary_data_size): send one"
            )));
        }
        (Some(size), None) => {
            let bytes = take_binary(name, size, rest)?;
            let want = count.saturating_mul(datatype.size());
            if bytes.len() != want {
                return Err(ApiError::bad_request(format!(
                    "input `{name}`: shape {shape:?} of {} needs {want} bytes of binary data, binary_data_size says {}",
                    input.datatype,
                    bytes.len()
                )));
            }
            datatype.decode(bytes, &mut values);
        }
        (None, Some(flat)) => {
            if let Some((i, what)) = flat.bad {
                return Err(ApiError::bad_request(format!(
                    "input `{name}`: element {i} of `data` is {what}; {} data are numbers",
                    input.datatype
                )));
            }
            if flat.count != count {
                return Err(ApiError::bad_request(format!(
                    "input `{name}` has shape {shape:?} ({count} values) but its `data` holds {}",
                    flat.count
                )));
            }
            if let Some((lo, hi)) = datatype.range()
                && let Some((i, v)) =
                    flat.values.iter().enumerate().find(|(_, v)| v.fract() != 0.0 || **v < lo as f64 || **v > hi as f64)
            {
                let why = if v.fract() != 0.0 { "not a whole number" } else { "out of its range" };
                return Err(ApiError::bad_request(format!(
                    "input `{name}`: element {i} of `data` is {v}, {why} for {} ({lo} to {hi})",
                    input.datatype
                )));
            }
            flat.values.into_iter().for_each(|v| values.push(v));
        }
        (None, None) => {
            return Err(ApiError::bad_request(format!(
                "input `{name}` has no data: send `data`, or binary data with parameters.binary_data_size"
            )));
        }
    }
    Ok(Tensor { name: input.name, shape, values })
}

/// The next `size` bytes of the binary part.
fn take_binary<'a>(name: &str, size: &Value, rest: &mut &'a [u8]) -> Result<&'a [u8], ApiError> {
    let n = size.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
        ApiError::bad_request(format!("input `{name}`: binary_data_size is {size}; send a number of bytes"))
    })?;
    if n > rest.len() {
        return Err(ApiError::bad_request(format!(
            "input `{name}`: binary_data_size is {n} bytes, but only {} bytes of binary data are left in the body \
             (is Inference-Header-Content-Length the length of the JSON part?)",
            rest.len()
        )));
    }
    let (bytes, after) = rest.split_at(n);
    *rest = after;
    Ok(bytes)
}

/// Lays the decoded inputs out as the model's rows: the `[N, F]` matrix as it is, or one `[N]`
/// (or `[N, 1]`) tensor per feature interleaved into rows.
pub(crate) fn to_rows(mut tensors: Vec<Tensor>, schema: &Schema) -> Result<Rows, ApiError> {
    if !schema.per_feature {
        let (Some(tensor), Some(spec)) = (tensors.pop(), schema.inputs.first()) else {
            return Err(missing(schema, &[]));
        };
        let width = schema.width.map_or_else(|| "F".to_owned(), |w| w.to_string());
        let [rows, w] = tensor.shape[..] else {
            return Err(ApiError::bad_request(format!(
                "input `{}` has shape {:?}; the model takes [N, {width}] (N rows of {width} features)",
                spec.name, tensor.shape
            )));
        };
        if w == 0 || schema.width.is_some_and(|f| f != w) {
            return Err(ApiError::bad_request(format!(
                "input `{}` has shape {:?}: rows of {w} features; the model takes [N, {width}]",
                spec.name, tensor.shape
            )));
        }
        return Ok(Rows { values: tensor.values, rows, width: w });
    }
    if schema.inputs.iter().any(|s| !tensors.iter().any(|t| t.name == s.name)) {
        return Err(missing(schema, &tensors));
    }
    let mut columns = Vec::with_capacity(schema.inputs.len());
    for spec in &schema.inputs {
        if let Some(at) = tensors.iter().position(|t| t.name == spec.name) {
            columns.push(tensors.swap_remove(at));
        }
    }
    let rows = columns.first().map_or(0, |c| c.shape.first().copied().unwrap_or(0));
    for c in &columns {
        if !matches!(c.shape[..], [n] | [n, 1] if n == rows) {
            return Err(ApiError::bad_request(format!(
                "input `{}` has shape {:?}; the model takes one value per row of each feature input: \
                 shape [{rows}] or [{rows}, 1] like input `{}`",
                c.name, c.shape, columns[0].name
            )));
        }
    }
    let mut out = Rows::new(columns.len(), schema.single_precision);
    for i in 0..rows {
        for c in &columns {
            out.values.push(match &c.values {
                FeatureBuf::F32(v) => f64::from(v[i]),
                FeatureBuf::F64(v) => v[i],
            });
        }
    }
    out.rows = rows;
    Ok(out)
}

fn missing(schema: &Schema, sent: &[Tensor]) -> ApiError {
    let absent: Vec<String> = schema
        .inputs
        .iter()
        .filter(|s| !sent.iter().any(|t| t.name == s.name))
        .map(|s| format!("`{}`", s.name))
        .collect();
    ApiError::bad_request(format!("missing input {}: the model takes {}", absent.join(", "), input_list(schema)))
}
