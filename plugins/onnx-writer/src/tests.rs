use std::collections::BTreeMap;

use crate::proto::{AttrValue, Attribute, DataType, Dim, Node, Tensor, ValueInfo, put_int, put_varint};
use crate::*;

/// A decoded protobuf field value (enough of the wire format to inspect what we wrote).
#[derive(Debug, Clone, PartialEq)]
enum Wire {
    Varint(u64),
    Fixed32(u32),
    Fixed64(u64),
    Bytes(Vec<u8>),
}

fn read_varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn decode(b: &[u8]) -> Vec<(u32, Wire)> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < b.len() {
        let key = read_varint(b, &mut pos);
        let (number, wire) = ((key >> 3) as u32, key & 7);
        let value = match wire {
            0 => Wire::Varint(read_varint(b, &mut pos)),
            1 => {
                pos += 8;
                Wire::Fixed64(u64::from_le_bytes(b[pos - 8..pos].try_into().unwrap()))
            }
            2 => {
                let len = read_varint(b, &mut pos) as usize;
                pos += len;
                Wire::Bytes(b[pos - len..pos].to_vec())
            }
            5 => {
                pos += 4;
                Wire::Fixed32(u32::from_le_bytes(b[pos - 4..pos].try_into().unwrap()))
            }
            w => panic!("unexpected wire type {w}"),
        };
        out.push((number, value));
    }
    out
}

fn fields(b: &[u8], number: u32) -> Vec<Wire> {
    decode(b).into_iter().filter(|(n, _)| *n == number).map(|(_, v)| v).collect()
}

fn bytes(w: &Wire) -> &[u8] {
    match w {
        Wire::Bytes(b) => b,
        other => panic!("not bytes: {other:?}"),
    }
}

fn string(w: &Wire) -> String {
    String::from_utf8(bytes(w).to_vec()).unwrap()
}

fn strings(b: &[u8], number: u32) -> Vec<String> {
    fields(b, number).iter().map(string).collect()
}

fn int(b: &[u8], number: u32) -> i64 {
    match fields(b, number).as_slice() {
        [Wire::Varint(v)] => *v as i64,
        other => panic!("field {number}: {other:?}"),
    }
}

#[test]
fn varints() {
    let enc = |v: u64| {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    };
    assert_eq!(enc(0), [0]);
    assert_eq!(enc(1), [1]);
    assert_eq!(enc(127), [0x7f]);
    assert_eq!(enc(128), [0x80, 0x01]);
    assert_eq!(enc(300), [0xac, 0x02]);
    assert_eq!(enc(u64::MAX), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    // A negative int64 is its two's complement as a 10-byte varint.
    let mut out = Vec::new();
    put_int(&mut out, 3, -1);
    assert_eq!(out, [0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
}

#[test]
fn tensor_bytes() {
    let mut out = Vec::new();
    Tensor::float("w", &[2], vec![1.0, -2.0]).encode(&mut out);
    let mut expected = vec![0x08, 0x02, 0x10, 0x01, 0x42, 0x01, b'w', 0x4a, 0x08];
    expected.extend_from_slice(&1.0f32.to_le_bytes());
    expected.extend_from_slice(&(-2.0f32).to_le_bytes());
    assert_eq!(out, expected);

    let mut out = Vec::new();
    Tensor::int64("c", &[1, 1], vec![-3]).encode(&mut out);
    assert_eq!(fields(&out, 1), [Wire::Varint(1), Wire::Varint(1)]);
    assert_eq!(int(&out, 2), DataType::Int64 as i64);
    assert_eq!(bytes(&fields(&out, 9)[0]), (-3i64).to_le_bytes());
}

#[test]
fn attribute_bytes() {
    let mut out = Vec::new();
    Attribute { name: "axis".into(), value: AttrValue::Int(1) }.encode(&mut out);
    // name (1), i (3), type (20) = INT (2); field 20 with wire type 0 is the key 0xa0 0x01.
    assert_eq!(out, [0x0a, 0x04, b'a', b'x', b'i', b's', 0x18, 0x01, 0xa0, 0x01, 0x02]);

    let mut out = Vec::new();
    Attribute { name: "v".into(), value: AttrValue::Floats(vec![0.5, 2.0]) }.encode(&mut out);
    assert_eq!(
        fields(&out, 7),
        [Wire::Fixed32(0.5f32.to_bits()), Wire::Fixed32(2.0f32.to_bits())],
        "repeated floats are unpacked, as declared in onnx.proto"
    );
    assert_eq!(int(&out, 20), 6);

    let mut out = Vec::new();
    Attribute { name: "m".into(), value: AttrValue::Strings(vec!["LEAF".into(), "BRANCH_LEQ".into()]) }
        .encode(&mut out);
    assert_eq!(strings(&out, 9), ["LEAF", "BRANCH_LEQ"]);
    assert_eq!(int(&out, 20), 8);
}

#[test]
fn node_attributes_sorted_and_domain() {
    let node = Node::new("ArgMax", "am", &["x"], &["y"])
        .attr("keepdims", AttrValue::Int(0))
        .attr("axis", AttrValue::Int(1))
        .domain("ai.onnx.ml");
    let mut out = Vec::new();
    node.encode(&mut out);
    let names: Vec<String> = fields(&out, 5).iter().map(|a| strings(bytes(a), 1)[0].clone()).collect();
    assert_eq!(names, ["axis", "keepdims"]);
    assert_eq!(strings(&out, 1), ["x"]);
    assert_eq!(strings(&out, 2), ["y"]);
    assert_eq!(strings(&out, 4), ["ArgMax"]);
    assert_eq!(strings(&out, 7), ["ai.onnx.ml"]);
}

#[test]
fn value_info_shape() {
    let mut out = Vec::new();
    ValueInfo::tensor("input", DataType::Float, vec![Dim::Param("N".into()), Dim::Value(3)]).encode(&mut out);
    assert_eq!(strings(&out, 1), ["input"]);
    let ty = fields(&out, 2);
    let tensor = fields(bytes(&ty[0]), 1);
    let tensor = bytes(&tensor[0]);
    assert_eq!(int(tensor, 1), 1);
    let shape = fields(tensor, 2);
    let dims = fields(bytes(&shape[0]), 1);
    assert_eq!(strings(bytes(&dims[0]), 2), ["N"]);
    assert_eq!(int(bytes(&dims[1]), 1), 3);
}

fn linear() -> LinearRegression {
    LinearRegression {
        standardizer: Standardizer { mean: vec![1.0, 2.0], std: vec![0.5, 4.0] },
        coef: vec![3.0, -1.0],
        intercept: 0.25,
    }
}

fn info() -> ModelInfo {
    ModelInfo {
        producer_name: "test".into(),
        producer_version: "1".into(),
        doc_string: "doc".into(),
        metadata: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
    }
}

fn graph(model: &[u8]) -> Vec<u8> {
    bytes(&fields(model, 7)[0]).to_vec()
}

fn op_types(graph: &[u8]) -> Vec<String> {
    fields(graph, 1).iter().map(|n| strings(bytes(n), 4)[0].clone()).collect()
}

fn value_names(graph: &[u8], number: u32) -> Vec<String> {
    fields(graph, number).iter().map(|v| strings(bytes(v), 1)[0].clone()).collect()
}

#[test]
fn linear_model_structure() {
    let bytes_ = linear().to_model(&info()).unwrap().encode();
    assert_eq!(int(&bytes_, 1), IR_VERSION);
    assert_eq!(strings(&bytes_, 2), ["test"]);
    let opsets: Vec<(String, i64)> =
        fields(&bytes_, 8).iter().map(|o| (strings(bytes(o), 1)[0].clone(), int(bytes(o), 2))).collect();
    assert_eq!(opsets, [(String::new(), 17)]);
    let meta: Vec<String> = fields(&bytes_, 14).iter().map(|m| strings(bytes(m), 1)[0].clone()).collect();
    assert_eq!(meta, ["a", "b"], "metadata sorted by key");
    let g = graph(&bytes_);
    assert_eq!(op_types(&g), ["Sub", "Div", "MatMul", "Add"]);
    assert_eq!(value_names(&g, 11), ["input"]);
    assert_eq!(value_names(&g, 12), ["variable"]);
    let initializers: Vec<String> = fields(&g, 5).iter().map(|t| strings(bytes(t), 8)[0].clone()).collect();
    assert_eq!(initializers, ["mean", "std", "coef", "intercept"]);
}

#[test]
fn deterministic() {
    let a = linear().to_model(&info()).unwrap().encode();
    let mut other = info();
    other.metadata = BTreeMap::new();
    other.metadata.insert("a".into(), "1".into());
    other.metadata.insert("b".into(), "2".into());
    assert_eq!(a, linear().to_model(&other).unwrap().encode());
    let mut changed = linear();
    changed.coef[1] = -1.5;
    assert_ne!(a, changed.to_model(&info()).unwrap().encode());
}

#[test]
fn linear_predict() {
    let p = linear().predict(&[1.0, 2.0, 1.5, 6.0]);
    // Row 1 is the mean: intercept. Row 2: 3 * (0.5 / 0.5) - 1 * (4 / 4) + 0.25.
    assert_eq!(p, Predictions::Regression(vec![0.25, 2.25]));
    assert_eq!(p.to_csv(&[]), "variable\n0.25\n2.25\n");
}

#[test]
fn logistic_binary_and_multiclass() {
    let binary = LogisticRegression {
        standardizer: Standardizer::identity(1),
        coef: vec![2.0],
        intercept: vec![0.0],
        classes: vec![0, 1],
    };
    let g = graph(&binary.to_model(&info()).unwrap().encode());
    assert_eq!(op_types(&g), ["Sub", "Div", "MatMul", "Add", "Sigmoid", "Sub", "Concat", "ArgMax"]);
    assert_eq!(value_names(&g, 12), ["label", "probabilities"]);
    let Predictions::Classification { labels, probabilities, classes } = binary.predict(&[0.0, 1.0, -1.0]) else {
        panic!()
    };
    assert_eq!(classes, 2);
    assert_eq!(labels, [0, 1, 0], "a tie (p = 0.5) goes to the first class, like ArgMax");
    let s = 1.0 / (1.0 + (-2.0f64).exp());
    assert!((probabilities[3] - s).abs() < 1e-12 && (probabilities[2] - (1.0 - s)).abs() < 1e-12);

    let multi = LogisticRegression {
        standardizer: Standardizer::identity(1),
        coef: vec![1.0, 0.0, -1.0],
        intercept: vec![0.0, 0.5, 0.0],
        classes: vec![3, 5, 9],
    };
    let g = graph(&multi.to_model(&info()).unwrap().encode());
    assert_eq!(op_types(&g), ["Sub", "Div", "MatMul", "Add", "Softmax", "ArgMax", "Gather"]);
    let Predictions::Classification { labels, probabilities, .. } = multi.predict(&[3.0, 0.0, -3.0]) else { panic!() };
    assert_eq!(labels, [3, 5, 9]);
    for row in probabilities.chunks(3) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    let bad = LogisticRegression { classes: vec![1, 0], ..binary.clone() };
    assert!(bad.to_model(&info()).is_err());
    let bad = LogisticRegression { intercept: vec![0.0, 0.0, 0.0], ..binary };
    assert!(bad.to_model(&info()).unwrap_err().to_string().contains("score columns"));
}

fn stump(target: u32, threshold: f32, left: f32, right: f32) -> Tree {
    Tree {
        target,
        nodes: vec![
            TreeNode::Branch { feature: 1, threshold, left: 1, right: 2 },
            TreeNode::Leaf { value: left },
            TreeNode::Leaf { value: right },
        ],
    }
}

#[test]
fn tree_ensemble() {
    let reg = TreeEnsemble {
        n_features: 2,
        base_values: vec![10.0],
        trees: vec![stump(0, 0.5, -1.0, 1.0), Tree { target: 0, nodes: vec![TreeNode::Leaf { value: 0.25 }] }],
        head: TreeHead::Regression,
    };
    let bytes_ = reg.to_model(&info()).unwrap().encode();
    let opsets: Vec<(String, i64)> =
        fields(&bytes_, 8).iter().map(|o| (strings(bytes(o), 1)[0].clone(), int(bytes(o), 2))).collect();
    assert_eq!(opsets, [(String::new(), 17), ("ai.onnx.ml".into(), 3)]);
    let g = graph(&bytes_);
    assert_eq!(op_types(&g), ["TreeEnsembleRegressor"]);
    assert_eq!(value_names(&g, 12), ["variable"]);
    let node = bytes(&fields(&g, 1)[0]).to_vec();
    let attrs: BTreeMap<String, Vec<u8>> =
        fields(&node, 5).iter().map(|a| (strings(bytes(a), 1)[0].clone(), bytes(a).to_vec())).collect();
    assert_eq!(strings(&attrs["nodes_modes"], 9), ["BRANCH_LEQ", "LEAF", "LEAF", "LEAF"]);
    assert_eq!(fields(&attrs["nodes_treeids"], 8), [0, 0, 0, 1].map(Wire::Varint));
    assert_eq!(fields(&attrs["target_nodeids"], 8), [1, 2, 0].map(Wire::Varint));
    // x <= threshold goes left (the true branch); NaN goes right.
    assert_eq!(reg.predict(&[0.0, 0.5, 0.0, 0.6, 0.0, f32::NAN]), Predictions::Regression(vec![9.25, 11.25, 11.25]));

    let multi = TreeEnsemble {
        n_features: 2,
        base_values: vec![0.0, 0.0, 0.0],
        trees: vec![stump(0, 0.0, 1.0, 0.0), stump(1, 0.0, 0.0, 1.0), stump(2, 5.0, 0.0, -1.0)],
        head: TreeHead::Classification { classes: vec![0, 1, 2] },
    };
    let g = graph(&multi.to_model(&info()).unwrap().encode());
    assert_eq!(op_types(&g), ["TreeEnsembleRegressor", "Softmax", "ArgMax"]);
    let Predictions::Classification { labels, .. } = multi.predict(&[0.0, -1.0, 0.0, 1.0]) else { panic!() };
    assert_eq!(labels, [0, 1]);

    let mut bad = reg.clone();
    bad.trees[0].nodes[0] = TreeNode::Branch { feature: 1, threshold: 0.5, left: 0, right: 2 };
    assert!(bad.to_model(&info()).unwrap_err().to_string().contains("tree 0: node 0"));
    let mut bad = reg;
    bad.trees[0].nodes[0] = TreeNode::Branch { feature: 2, threshold: 0.5, left: 1, right: 2 };
    assert!(bad.to_model(&info()).is_err());
}

#[test]
fn predictions_csv() {
    let p = Predictions::Classification { labels: vec![1, 0], probabilities: vec![0.25, 0.75, 1.0, 0.0], classes: 2 };
    assert_eq!(p.to_csv(&[0, 1]), "label,p_0,p_1\n1,0.25,0.75\n0,1,0\n");
}
