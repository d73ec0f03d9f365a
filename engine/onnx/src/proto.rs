//! Just enough of the ONNX protobuf format to read a classifier's class list from the model file.
//!
//! ONNX Runtime does not expose node attributes, and the probability columns of an `ai.onnx.ml` classifier
//! (`LinearClassifier`, `TreeEnsembleClassifier`, `SVMClassifier`, `ZipMap`, ...) are ordered by its
//! `classlabels_ints` / `classlabels_int64s` / `classlabels_strings` attribute. skl2onnx writes it; models whose
//! labels are not `0..C-1` (say 1, 2, 3) cannot be scored without it.
//!
//! Field numbers (onnx.proto): ModelProto.graph = 7; GraphProto.node = 1; NodeProto.op_type = 4,
//! NodeProto.attribute = 5; AttributeProto.name = 1, .ints = 8, .strings = 9.

use crate::model::ClassLabel;

/// A class list found in a model's graph: which node and attribute it came from, and the labels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClassList {
    pub op_type: String,
    pub labels: Vec<ClassLabel>,
}

/// The class list of the first node (in graph order) carrying a non-empty `classlabels_*` attribute.
/// `None` if there is none or the bytes are not a well-formed model.
pub(crate) fn class_labels(model: &[u8]) -> Option<ClassList> {
    let graph = fields(model).ok()?.into_iter().find(|f| f.number == 7)?.bytes()?;
    for node in fields(graph).ok()?.into_iter().filter(|f| f.number == 1) {
        let Some(node) = node.bytes() else { continue };
        let Ok(node_fields) = fields(node) else { continue };
        let op_type =
            node_fields.iter().find(|f| f.number == 4).and_then(|f| f.bytes()).map(|b| String::from_utf8_lossy(b));
        for attr in node_fields.iter().filter(|f| f.number == 5) {
            let Some(labels) = attr.bytes().and_then(attribute_class_labels) else { continue };
            if !labels.is_empty() {
                return Some(ClassList { op_type: op_type.unwrap_or_default().into_owned(), labels });
            }
        }
    }
    None
}

fn attribute_class_labels(attr: &[u8]) -> Option<Vec<ClassLabel>> {
    let fields = fields(attr).ok()?;
    let name = fields.iter().find(|f| f.number == 1)?.bytes()?;
    match name {
        b"classlabels_ints" | b"classlabels_int64s" => {
            let mut out = Vec::new();
            for f in fields.iter().filter(|f| f.number == 8) {
                match f.value {
                    Value::Varint(v) => out.push(ClassLabel::Int(v as i64)),
                    // packed repeated int64
                    Value::Bytes(mut b) => {
                        while !b.is_empty() {
                            out.push(ClassLabel::Int(varint(&mut b).ok()? as i64));
                        }
                    }
                    _ => return None,
                }
            }
            Some(out)
        }
        b"classlabels_strings" => fields
            .iter()
            .filter(|f| f.number == 9)
            .map(|f| f.bytes().map(|b| ClassLabel::Str(String::from_utf8_lossy(b).into_owned())))
            .collect(),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32,
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
            1 => {
                take(&mut buf, 8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| Malformed)?;
                Value::Bytes(take(&mut buf, len)?)
            }
            5 => {
                take(&mut buf, 4)?;
                Value::Fixed32
            }
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

    #[test]
    fn none_for_garbage_or_no_labels() {
        assert_eq!(class_labels(b"\xff\xff\xff"), None);
        assert_eq!(class_labels(&model_with_node("MatMul", &[])), None);
        assert_eq!(class_labels(&[]), None);
    }
}
