//! Just enough of the ONNX protobuf format to read what ONNX Runtime does not expose: the graph's nodes,
//! their attributes and the constant tensors.
//!
//! Two things are read from it:
//! * a classifier's class list. The probability columns of an `ai.onnx.ml` classifier (`LinearClassifier`,
//!   `TreeEnsembleClassifier`, `SVMClassifier`, `ZipMap`, ...) are ordered by its `classlabels_ints` /
//!   `classlabels_int64s` / `classlabels_strings` attribute; skl2onnx converters built from standard operators
//!   (MLP, k-neighbours) instead pick the label from a constant class tensor with `ArrayFeatureExtractor`.
//!   Models whose labels are not `0..C-1` (say 1, 2, 3) cannot be scored without it.
//! * which operator produced an output, with its attributes (see `crate::scores`).
//!
//! Field numbers (onnx.proto): ModelProto.graph = 7; GraphProto.node = 1, .initializer = 5; NodeProto.input = 1,
//! .output = 2, .op_type = 4, .attribute = 5, .domain = 7; AttributeProto.name = 1, .i = 3, .s = 4, .t = 5,
//! .floats = 7, .ints = 8, .strings = 9; TensorProto.data_type = 2, .float_data = 4, .int32_data = 5,
//! .string_data = 6, .int64_data = 7, .name = 8, .raw_data = 9, .double_data = 10.

use std::collections::HashMap;

use crate::model::ClassLabel;

/// A class list found in a model's graph: which node and attribute it came from, and the labels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClassList {
    pub op_type: String,
    pub labels: Vec<ClassLabel>,
}

/// The class list of the first node (in graph order) carrying a non-empty `classlabels_*` attribute.
/// `None` if there is none or the bytes are not a well-formed model.
#[cfg(test)]
pub(crate) fn class_labels(model: &[u8]) -> Option<ClassList> {
    Graph::parse(model)?.class_labels(None)
}

/// A constant tensor (initializer or `Constant` node), flattened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Const {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Strings(Vec<String>),
}

/// One attribute of a node; only the kinds dagrun reads are kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Attribute {
    pub name: String,
    pub i: Option<i64>,
    pub s: Option<String>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
    pub strings: Vec<String>,
    pub tensor: Option<Const>,
}

/// One node of the graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Node {
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<Attribute>,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// A string attribute (`post_transform`, `norm`, ...).
    pub fn attr_str(&self, name: &str) -> Option<&str> {
        self.attr(name).and_then(|a| a.s.as_deref())
    }

    /// Its class list, from a non-empty `classlabels_*` attribute.
    fn class_labels(&self) -> Option<Vec<ClassLabel>> {
        self.attributes.iter().find_map(|a| {
            let labels: Vec<ClassLabel> = match a.name.as_str() {
                "classlabels_ints" | "classlabels_int64s" => a.ints.iter().map(|&v| ClassLabel::Int(v)).collect(),
                "classlabels_strings" => a.strings.iter().map(|v| ClassLabel::Str(v.clone())).collect(),
                _ => return None,
            };
            (!labels.is_empty()).then_some(labels)
        })
    }
}

/// The nodes and constants of a model's main graph (subgraphs are not read).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Graph {
    pub nodes: Vec<Node>,
    /// Initializers and `Constant` node outputs by name.
    pub constants: HashMap<String, Const>,
}

/// Operators that pass their first input's values through unchanged (up to shape or element type).
const PASS_THROUGH: &[&str] = &["Identity", "Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze"];

impl Graph {
    /// `None` if the bytes are not a well-formed model.
    pub fn parse(model: &[u8]) -> Option<Graph> {
        let graph = fields(model).ok()?.into_iter().find(|f| f.number == 7)?.bytes()?;
        let mut out = Graph::default();
        for f in fields(graph).ok()? {
            match (f.number, f.bytes()) {
                (1, Some(b)) => {
                    let node = parse_node(b)?;
                    if node.op_type == "Constant"
                        && let (Some(name), Some(t)) =
                            (node.outputs.first(), node.attr("value").and_then(|a| a.tensor.clone()))
                    {
                        out.constants.insert(name.clone(), t);
                    }
                    out.nodes.push(node);
                }
                (5, Some(b)) => {
                    if let Some((name, t)) = parse_tensor(b) {
                        out.constants.insert(name, t);
                    }
                }
                _ => {}
            }
        }
        Some(out)
    }

    /// The node that computes `value`, if any (not for graph inputs and constants).
    pub fn producer(&self, value: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.outputs.iter().any(|o| o == value))
    }

    /// The constant tensor named `value` (an initializer or the output of a `Constant` node).
    pub fn constant(&self, value: &str) -> Option<&Const> {
        self.constants.get(value)
    }

    /// `value` traced back through [`PASS_THROUGH`] operators to the node that computed it: (that node, the
    /// name of its output). `None` for a graph input or constant.
    pub fn origin<'g>(&'g self, mut value: &'g str) -> Option<(&'g Node, &'g str)> {
        for _ in 0..=self.nodes.len() {
            let node = self.producer(value)?;
            match node.inputs.first() {
                Some(input) if PASS_THROUGH.contains(&node.op_type.as_str()) => value = input,
                _ => return Some((node, value)),
            }
        }
        None // a cycle: not a valid ONNX graph
    }

    /// The class list: the first node (in graph order) with a non-empty `classlabels_*` attribute; else, if
    /// `label_output` is computed by `ArrayFeatureExtractor` from a constant int64/string tensor (skl2onnx's
    /// MLP and k-neighbours classifiers), that tensor.
    pub fn class_labels(&self, label_output: Option<&str>) -> Option<ClassList> {
        if let Some((node, labels)) = self.nodes.iter().find_map(|n| Some((n, n.class_labels()?))) {
            return Some(ClassList { op_type: node.op_type.clone(), labels });
        }
        let (node, _) = self.origin(label_output?)?;
        if node.op_type != "ArrayFeatureExtractor" {
            return None;
        }
        let labels: Vec<ClassLabel> = match self.constant(node.inputs.first()?)? {
            Const::Ints(v) => v.iter().map(|&i| ClassLabel::Int(i)).collect(),
            Const::Strings(v) => v.iter().map(|s| ClassLabel::Str(s.clone())).collect(),
            Const::Floats(_) => return None,
        };
        (!labels.is_empty()).then(|| ClassList { op_type: node.op_type.clone(), labels })
    }
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn parse_node(buf: &[u8]) -> Option<Node> {
    let mut node = Node::default();
    for f in fields(buf).ok()? {
        match (f.number, f.bytes()) {
            (1, Some(b)) => node.inputs.push(utf8(b)),
            (2, Some(b)) => node.outputs.push(utf8(b)),
            (4, Some(b)) => node.op_type = utf8(b),
            (5, Some(b)) => node.attributes.push(parse_attribute(b)?),
            (7, Some(b)) => node.domain = utf8(b),
            _ => {}
        }
    }
    Some(node)
}

fn parse_attribute(buf: &[u8]) -> Option<Attribute> {
    let mut a = Attribute::default();
    for f in fields(buf).ok()? {
        match (f.number, f.value) {
            (1, Value::Bytes(b)) => a.name = utf8(b),
            (3, Value::Varint(v)) => a.i = Some(v as i64),
            (4, Value::Bytes(b)) => a.s = Some(utf8(b)),
            (5, Value::Bytes(b)) => a.tensor = parse_tensor(b).map(|(_, t)| t),
            (7, Value::Fixed32(v)) => a.floats.push(f32::from_le_bytes(v)),
            (7, Value::Bytes(b)) => {
                a.floats.extend(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            }
            (8, v) => a.ints.extend(int_values(v)?),
            (9, Value::Bytes(b)) => a.strings.push(utf8(b)),
            _ => {}
        }
    }
    Some(a)
}

/// One repeated int64 field: a single varint, or a packed run of them.
fn int_values(v: Value<'_>) -> Option<Vec<i64>> {
    match v {
        Value::Varint(v) => Some(vec![v as i64]),
        Value::Bytes(mut b) => {
            let mut out = Vec::new();
            while !b.is_empty() {
                out.push(varint(&mut b).ok()? as i64);
            }
            Some(out)
        }
        _ => None,
    }
}

/// (name, values) of a TensorProto holding floats, doubles, integers or strings; `None` for other types.
fn parse_tensor(buf: &[u8]) -> Option<(String, Const)> {
    const FLOAT: u64 = 1;
    const INT32: u64 = 6;
    const INT64: u64 = 7;
    const STRING: u64 = 8;
    const DOUBLE: u64 = 11;
    let fields = fields(buf).ok()?;
    let name = fields.iter().find(|f| f.number == 8).and_then(|f| f.bytes()).map(utf8).unwrap_or_default();
    let data_type = fields.iter().find_map(|f| match (f.number, f.value) {
        (2, Value::Varint(v)) => Some(v),
        _ => None,
    })?;
    let raw = fields.iter().find(|f| f.number == 9).and_then(|f| f.bytes());
    let of = |number: u64| fields.iter().filter(move |f| f.number == number);
    let values = match data_type {
        FLOAT => Const::Floats(match raw {
            Some(r) => r.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
            None => of(4)
                .flat_map(|f| match f.value {
                    Value::Fixed32(v) => vec![f64::from(f32::from_le_bytes(v))],
                    Value::Bytes(b) => {
                        b.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
                    }
                    _ => Vec::new(),
                })
                .collect(),
        }),
        DOUBLE => Const::Floats(match raw {
            Some(r) => r.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default())).collect(),
            None => of(10)
                .flat_map(|f| match f.value {
                    Value::Fixed64(v) => vec![f64::from_le_bytes(v)],
                    Value::Bytes(b) => {
                        b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default())).collect()
                    }
                    _ => Vec::new(),
                })
                .collect(),
        }),
        INT32 | INT64 => Const::Ints(match (raw, data_type) {
            (Some(r), INT64) => {
                r.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default())).collect()
            }
            (Some(r), _) => {
                r.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
            }
            (None, _) => {
                let number = if data_type == INT64 { 7 } else { 5 };
                let mut out = Vec::new();
                for f in of(number) {
                    out.extend(int_values(f.value)?);
                }
                if data_type == INT32 {
                    out.iter_mut().for_each(|v| *v = i64::from(*v as i32));
                }
                out
            }
        }),
        STRING => Const::Strings(of(6).filter_map(|f| f.bytes()).map(utf8).collect()),
        _ => return None,
    };
    Some((name, values))
}

#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

#[derive(Debug, Clone, Copy)]
struct Field<'a> {
    number: u64,
    value: Value<'a>,
}

impl<'a> Field<'a> {
    fn bytes(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Malformed;

fn varint(buf: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or(Malformed)?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed)
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], Malformed> {
    if buf.len() < n {
        return Err(Malformed);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// The top-level fields of one message.
fn fields(mut buf: &[u8]) -> Result<Vec<Field<'_>>, Malformed> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let number = key >> 3;
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut buf)?),
            1 => Value::Fixed64(take(&mut buf, 8)?.try_into().map_err(|_| Malformed)?),
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| Malformed)?;
                Value::Bytes(take(&mut buf, len)?)
            }
            5 => Value::Fixed32(take(&mut buf, 4)?.try_into().map_err(|_| Malformed)?),
            _ => return Err(Malformed), // groups (3, 4) are not used by ONNX
        };
        out.push(Field { number, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(number: u64, wire: u64) -> Vec<u8> {
        enc_varint((number << 3) | wire)
    }

    fn enc_varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = key(number, 2);
        out.extend(enc_varint(payload.len() as u64));
        out.extend(payload);
        out
    }

    fn model_with_node(op: &str, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut node = bytes_field(1, b"input");
        node.extend(bytes_field(4, op.as_bytes()));
        for a in attrs {
            node.extend(bytes_field(5, a));
        }
        let mut model = key(1, 0);
        model.extend(enc_varint(8)); // ir_version
        model.extend(bytes_field(7, &bytes_field(1, &node)));
        model
    }

    #[test]
    fn reads_int_labels_packed_and_unpacked() {
        let mut unpacked = bytes_field(1, b"classlabels_int64s");
        for v in [1u64, 2, 3] {
            unpacked.extend(key(8, 0));
            unpacked.extend(enc_varint(v));
        }
        let model = model_with_node("ZipMap", &[unpacked]);
        let found = class_labels(&model).unwrap();
        assert_eq!(found.op_type, "ZipMap");
        assert_eq!(found.labels, [ClassLabel::Int(1), ClassLabel::Int(2), ClassLabel::Int(3)]);

        let mut packed = bytes_field(1, b"classlabels_ints");
        let payload: Vec<u8> = [0u64, 7, 300].iter().flat_map(|v| enc_varint(*v)).collect();
        packed.extend(bytes_field(8, &payload));
        let model = model_with_node("LinearClassifier", &[packed]);
        assert_eq!(
            class_labels(&model).unwrap().labels,
            [ClassLabel::Int(0), ClassLabel::Int(7), ClassLabel::Int(300)]
        );
    }

    #[test]
    fn reads_string_labels_and_ignores_other_attributes() {
        let mut other = bytes_field(1, b"post_transform");
        other.extend(bytes_field(4, b"LOGISTIC"));
        let mut labels = bytes_field(1, b"classlabels_strings");
        labels.extend(bytes_field(9, b"cat"));
        labels.extend(bytes_field(9, b"dog"));
        let model = model_with_node("TreeEnsembleClassifier", &[other, labels]);
        assert_eq!(
            class_labels(&model).unwrap().labels,
            [ClassLabel::Str("cat".into()), ClassLabel::Str("dog".into())]
        );
    }

    fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut node = Vec::new();
        for i in inputs {
            node.extend(bytes_field(1, i.as_bytes()));
        }
        for o in outputs {
            node.extend(bytes_field(2, o.as_bytes()));
        }
        node.extend(bytes_field(4, op.as_bytes()));
        for a in attrs {
            node.extend(bytes_field(5, a));
        }
        node
    }

    fn graph(nodes: &[Vec<u8>], initializers: &[Vec<u8>]) -> Vec<u8> {
        let mut graph = Vec::new();
        for n in nodes {
            graph.extend(bytes_field(1, n));
        }
        for t in initializers {
            graph.extend(bytes_field(5, t));
        }
        bytes_field(7, &graph)
    }

    /// An int64 tensor stored as raw little-endian bytes, as onnx's numpy_helper writes it.
    fn int64_tensor(name: &str, values: &[i64]) -> Vec<u8> {
        let mut t = key(2, 0);
        t.extend(enc_varint(7));
        t.extend(bytes_field(8, name.as_bytes()));
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        t.extend(bytes_field(9, &raw));
        t
    }

    #[test]
    fn reads_nodes_attributes_and_the_class_tensor_of_array_feature_extractor() {
        // skl2onnx's MLP: the label is picked from a constant class tensor, there is no classlabels_* attribute.
        let mut post = bytes_field(1, b"post_transform");
        post.extend(bytes_field(4, b"SOFTMAX"));
        let mut prob_a = bytes_field(1, b"prob_a");
        prob_a.extend(bytes_field(7, &1.5f32.to_le_bytes()));
        let model = graph(
            &[
                node("Softmax", &["z"], &["probabilities"], &[post, prob_a]),
                node("ArgMax", &["probabilities"], &["idx"], &[]),
                node("ArrayFeatureExtractor", &["classes", "idx"], &["picked"], &[]),
                node("Reshape", &["picked", "shape"], &["reshaped"], &[]),
                node("Cast", &["reshaped"], &["label"], &[]),
            ],
            &[int64_tensor("classes", &[-1, 1, 7])],
        );
        let g = Graph::parse(&model).unwrap();
        assert_eq!(g.nodes.len(), 5);
        assert_eq!(g.nodes[0].attr_str("post_transform"), Some("SOFTMAX"));
        assert_eq!(g.nodes[0].attr("prob_a").unwrap().floats, [1.5]);
        assert_eq!(g.constant("classes"), Some(&Const::Ints(vec![-1, 1, 7])));
        let (origin, value) = g.origin("label").unwrap();
        assert_eq!((origin.op_type.as_str(), value), ("ArrayFeatureExtractor", "picked"));
        let found = g.class_labels(Some("label")).unwrap();
        assert_eq!(found.op_type, "ArrayFeatureExtractor");
        assert_eq!(found.labels, [ClassLabel::Int(-1), ClassLabel::Int(1), ClassLabel::Int(7)]);
        assert_eq!(g.class_labels(Some("probabilities")), None);
        assert_eq!(g.class_labels(None), None);
    }

    #[test]
    fn none_for_garbage_or_no_labels() {
        assert_eq!(class_labels(b"\xff\xff\xff"), None);
        assert_eq!(class_labels(&model_with_node("MatMul", &[])), None);
        assert_eq!(class_labels(&[]), None);
    }
}
