//! The subset of the ONNX protobuf messages (`onnx.proto`, proto2) that a model needs, encoded
//! by hand in the protobuf wire format.
//!
//! Encoding is canonical and deterministic: fields are written in field-number order, attributes
//! of a node sorted by name, metadata sorted by key, repeated scalars packed exactly where
//! `onnx.proto` declares `[packed = true]`. The same value always gives the same bytes.

use std::collections::BTreeMap;

/// Field numbers and wire types of the messages written here (from `onnx.proto`).
mod field {
    pub const VARINT: u32 = 0;
    pub const I64: u32 = 1;
    pub const LEN: u32 = 2;
    pub const I32: u32 = 5;
}

/// Appends `v` as a base-128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, number: u32, wire: u32) {
    put_varint(out, u64::from((number << 3) | wire));
}

/// An `int64`/`int32`/enum field (negative values take 10 bytes, as protobuf requires).
pub fn put_int(out: &mut Vec<u8>, number: u32, v: i64) {
    put_key(out, number, field::VARINT);
    put_varint(out, v as u64);
}

/// A `bytes` or `string` field.
pub fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(out, number, field::LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A `float` field.
pub fn put_f32(out: &mut Vec<u8>, number: u32, v: f32) {
    put_key(out, number, field::I32);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A `double` field.
pub fn put_f64(out: &mut Vec<u8>, number: u32, v: f64) {
    put_key(out, number, field::I64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// An embedded message, encoded by `body`.
pub fn put_message(out: &mut Vec<u8>, number: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    put_bytes(out, number, &inner);
}

/// A packed repeated `int64` field (nothing when empty).
pub fn put_packed_ints(out: &mut Vec<u8>, number: u32, values: &[i64]) {
    if values.is_empty() {
        return;
    }
    let mut inner = Vec::new();
    for &v in values {
        put_varint(&mut inner, v as u64);
    }
    put_bytes(out, number, &inner);
}

/// ONNX tensor element types (`TensorProto.DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `FLOAT` (1).
    Float = 1,
    /// `INT64` (7).
    Int64 = 7,
    /// `STRING` (8).
    String = 8,
    /// `DOUBLE` (11).
    Double = 11,
}

/// A constant tensor (an initializer or a tensor attribute), stored as little-endian `raw_data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Name (the graph refers to an initializer by it).
    pub name: String,
    /// Shape; `[]` is a scalar.
    pub dims: Vec<i64>,
    /// Values, row-major.
    pub data: TensorData,
}

/// The values of a [`Tensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// `float` values.
    Float(Vec<f32>),
    /// `double` values.
    Double(Vec<f64>),
    /// `int64` values.
    Int64(Vec<i64>),
}

impl Tensor {
    /// A float tensor.
    pub fn float(name: &str, dims: &[i64], values: Vec<f32>) -> Tensor {
        Tensor { name: name.to_owned(), dims: dims.to_vec(), data: TensorData::Float(values) }
    }

    /// An int64 tensor.
    pub fn int64(name: &str, dims: &[i64], values: Vec<i64>) -> Tensor {
        Tensor { name: name.to_owned(), dims: dims.to_vec(), data: TensorData::Int64(values) }
    }

    /// Number of values the shape calls for.
    pub fn expected_len(&self) -> usize {
        self.dims.iter().map(|&d| d.max(0) as usize).product()
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::Float(v) => v.len(),
            TensorData::Double(v) => v.len(),
            TensorData::Int64(v) => v.len(),
        }
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn data_type(&self) -> DataType {
        match self.data {
            TensorData::Float(_) => DataType::Float,
            TensorData::Double(_) => DataType::Double,
            TensorData::Int64(_) => DataType::Int64,
        }
    }

    /// `TensorProto`: dims = 1, data_type = 2, name = 8, raw_data = 9.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for &d in &self.dims {
            put_int(out, 1, d); // `repeated int64 dims = 1;` is not packed in onnx.proto
        }
        put_int(out, 2, self.data_type() as i64);
        put_bytes(out, 8, self.name.as_bytes());
        let mut raw = Vec::with_capacity(self.len() * 8);
        match &self.data {
            TensorData::Float(v) => v.iter().for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
            TensorData::Double(v) => v.iter().for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
            TensorData::Int64(v) => v.iter().for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
        }
        put_bytes(out, 9, &raw);
    }
}

/// One dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Value(i64),
    /// A symbolic size, e.g. `N` for the batch.
    Param(String),
}

/// A graph input or output: name, element type and shape (`ValueInfoProto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueInfo {
    /// Name.
    pub name: String,
    /// Element type.
    pub elem_type: DataType,
    /// Shape.
    pub shape: Vec<Dim>,
}

impl ValueInfo {
    /// A tensor value.
    pub fn tensor(name: &str, elem_type: DataType, shape: Vec<Dim>) -> ValueInfo {
        ValueInfo { name: name.to_owned(), elem_type, shape }
    }

    /// `ValueInfoProto`: name = 1, type = 2 (`TypeProto.tensor_type` = 1: elem_type = 1, shape = 2;
    /// `TensorShapeProto.dim` = 1: dim_value = 1, dim_param = 2).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, 1, self.name.as_bytes());
        put_message(out, 2, |ty| {
            put_message(ty, 1, |tensor| {
                put_int(tensor, 1, self.elem_type as i64);
                put_message(tensor, 2, |shape| {
                    for d in &self.shape {
                        put_message(shape, 1, |dim| match d {
                            Dim::Value(v) => put_int(dim, 1, *v),
                            Dim::Param(p) => put_bytes(dim, 2, p.as_bytes()),
                        });
                    }
                });
            });
        });
    }
}

/// The value of a node attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// `FLOAT`.
    Float(f32),
    /// `INT`.
    Int(i64),
    /// `STRING`.
    String(String),
    /// `TENSOR`.
    Tensor(Tensor),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `STRINGS`.
    Strings(Vec<String>),
}

/// A node attribute (`AttributeProto`).
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// Name.
    pub name: String,
    /// Value.
    pub value: AttrValue,
}

impl Attribute {
    /// `AttributeProto`: name = 1, f = 2, i = 3, s = 4, t = 5, floats = 7, ints = 8, strings = 9,
    /// type = 20. Repeated `floats`/`ints` are not packed in onnx.proto.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, 1, self.name.as_bytes());
        let ty = match &self.value {
            AttrValue::Float(v) => {
                put_f32(out, 2, *v);
                1
            }
            AttrValue::Int(v) => {
                put_int(out, 3, *v);
                2
            }
            AttrValue::String(s) => {
                put_bytes(out, 4, s.as_bytes());
                3
            }
            AttrValue::Tensor(t) => {
                put_message(out, 5, |m| t.encode(m));
                4
            }
            AttrValue::Floats(v) => {
                v.iter().for_each(|&x| put_f32(out, 7, x));
                6
            }
            AttrValue::Ints(v) => {
                v.iter().for_each(|&x| put_int(out, 8, x));
                7
            }
            AttrValue::Strings(v) => {
                v.iter().for_each(|s| put_bytes(out, 9, s.as_bytes()));
                8
            }
        };
        put_int(out, 20, ty);
    }
}

/// A graph node (`NodeProto`).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Operator, e.g. `MatMul`.
    pub op_type: String,
    /// Operator domain: `""` for ai.onnx, `"ai.onnx.ml"` for the ML operators.
    pub domain: String,
    /// Node name (unique in the graph).
    pub name: String,
    /// Input value names.
    pub inputs: Vec<String>,
    /// Output value names.
    pub outputs: Vec<String>,
    /// Attributes (written sorted by name).
    pub attributes: Vec<Attribute>,
}

impl Node {
    /// A node of the default (ai.onnx) domain.
    pub fn new(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> Node {
        Node {
            op_type: op_type.to_owned(),
            domain: String::new(),
            name: name.to_owned(),
            inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
            outputs: outputs.iter().map(|s| (*s).to_owned()).collect(),
            attributes: Vec::new(),
        }
    }

    /// Sets the operator domain.
    pub fn domain(mut self, domain: &str) -> Node {
        self.domain = domain.to_owned();
        self
    }

    /// Adds an attribute.
    pub fn attr(mut self, name: &str, value: AttrValue) -> Node {
        self.attributes.push(Attribute { name: name.to_owned(), value });
        self
    }

    /// `NodeProto`: input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.inputs.iter().for_each(|s| put_bytes(out, 1, s.as_bytes()));
        self.outputs.iter().for_each(|s| put_bytes(out, 2, s.as_bytes()));
        put_bytes(out, 3, self.name.as_bytes());
        put_bytes(out, 4, self.op_type.as_bytes());
        let mut attributes: Vec<&Attribute> = self.attributes.iter().collect();
        attributes.sort_by(|a, b| a.name.cmp(&b.name));
        for a in attributes {
            put_message(out, 5, |m| a.encode(m));
        }
        if !self.domain.is_empty() {
            put_bytes(out, 7, self.domain.as_bytes());
        }
    }
}

/// A computation graph (`GraphProto`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    /// Name.
    pub name: String,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Constant tensors.
    pub initializers: Vec<Tensor>,
    /// Documentation.
    pub doc_string: String,
    /// Graph inputs.
    pub inputs: Vec<ValueInfo>,
    /// Graph outputs.
    pub outputs: Vec<ValueInfo>,
}

impl Graph {
    /// `GraphProto`: node = 1, name = 2, initializer = 5, doc_string = 10, input = 11, output = 12.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for n in &self.nodes {
            put_message(out, 1, |m| n.encode(m));
        }
        put_bytes(out, 2, self.name.as_bytes());
        for t in &self.initializers {
            put_message(out, 5, |m| t.encode(m));
        }
        if !self.doc_string.is_empty() {
            put_bytes(out, 10, self.doc_string.as_bytes());
        }
        for v in &self.inputs {
            put_message(out, 11, |m| v.encode(m));
        }
        for v in &self.outputs {
            put_message(out, 12, |m| v.encode(m));
        }
    }
}

/// A model (`ModelProto`): the graph plus the versions needed to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// ONNX IR version.
    pub ir_version: i64,
    /// Operator sets used: domain (`""` = ai.onnx) → version. Written sorted by domain.
    pub opset_imports: BTreeMap<String, i64>,
    /// Producer name.
    pub producer_name: String,
    /// Producer version.
    pub producer_version: String,
    /// Model domain (reverse-DNS style), may be empty.
    pub domain: String,
    /// Model version.
    pub model_version: i64,
    /// Documentation.
    pub doc_string: String,
    /// The graph.
    pub graph: Graph,
    /// Free-form key/value metadata (written sorted by key).
    pub metadata: BTreeMap<String, String>,
}

impl Model {
    /// The model's bytes (a `.onnx` file).
    ///
    /// `ModelProto`: ir_version = 1, producer_name = 2, producer_version = 3, domain = 4,
    /// model_version = 5, doc_string = 6, graph = 7, opset_import = 8 (`OperatorSetIdProto`:
    /// domain = 1, version = 2), metadata_props = 14 (`StringStringEntryProto`: key = 1, value = 2).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_int(&mut out, 1, self.ir_version);
        put_bytes(&mut out, 2, self.producer_name.as_bytes());
        put_bytes(&mut out, 3, self.producer_version.as_bytes());
        if !self.domain.is_empty() {
            put_bytes(&mut out, 4, self.domain.as_bytes());
        }
        put_int(&mut out, 5, self.model_version);
        if !self.doc_string.is_empty() {
            put_bytes(&mut out, 6, self.doc_string.as_bytes());
        }
        put_message(&mut out, 7, |m| self.graph.encode(m));
        for (domain, version) in &self.opset_imports {
            put_message(&mut out, 8, |m| {
                put_bytes(m, 1, domain.as_bytes());
                put_int(m, 2, *version);
            });
        }
        for (key, value) in &self.metadata {
            put_message(&mut out, 14, |m| {
                put_bytes(m, 1, key.as_bytes());
                put_bytes(m, 2, value.as_bytes());
            });
        }
        out
    }
}
