//! Whether a classifier's score output already holds probabilities or raw scores, decided from the graph.
//!
//! The operator that computed the output says what it holds; its values do not: a random forest's
//! float32 sums come out as `1.0000001` and `-1.1920929e-07`, which are probabilities, not scores to
//! softmax (issue #8). The output is traced back through value-preserving operators (`Identity`, `Cast`,
//! `Reshape`, `Flatten`, `Squeeze`, `Unsqueeze`; `ZipMap` to its input tensor) to the operator that computed
//! it:
//!
//! | operator | holds |
//! | --- | --- |
//! | `Softmax`, `Sigmoid` | probabilities |
//! | `LogSoftmax` | scores (a softmax of log-probabilities gives the probabilities back) |
//! | `Normalizer` with `norm` `L1` | probabilities (the inputs are taken to be non-negative) |
//! | `Div(x, ReduceSum(x))` | probabilities (counts normalised per row, as skl2onnx's k-neighbours) |
//! | `Concat` | probabilities if every part holds probabilities, scores if every part holds scores |
//! | `Sub(constant 1, p)` | probabilities if `p` does (the `1 - p` column of a binary classifier) |
//! | `ai.onnx.ml` `LinearClassifier`, `TreeEnsembleClassifier`, `SVMClassifier` with `post_transform` `SOFTMAX`, `SOFTMAX_ZERO` or `LOGISTIC` | probabilities |
//! | `TreeEnsembleClassifier` with `post_transform` `NONE` | probabilities: the leaf weights are taken to be class probabilities, as skl2onnx writes them for random forests, extra trees and decision trees |
//! | `SVMClassifier` with `post_transform` `NONE` | probabilities if it has `prob_a` (Platt scaling, `SVC(probability=True)`), else decision values (scores) |
//! | `LinearClassifier` with `post_transform` `NONE` | scores (margins) |
//!
//! **Fallback** for anything else (a raw `MatMul`/`Add`, `PROBIT`, custom operators, a graph that cannot be
//! read): the first batch decides, once for the whole run. The output is taken to hold probabilities if every
//! value lies in [0, 1] up to float rounding ([`ROUNDING`]) and, with several columns, every row sums to 1
//! within 1e-3; otherwise scores. A ZipMap output whose input cannot be classified holds probabilities
//! (skl2onnx only builds a ZipMap over probabilities).
//!
//! Scores are turned into probabilities with a softmax over the columns (a sigmoid for a single column);
//! probabilities are then clamped to [0, 1], as scikit-learn's `log_loss` clips them, so rounding slightly
//! outside the interval changes nothing.

use crate::proto::{Const, Graph, Node};

/// How much float rounding may put a probability outside [0, 1] (about 8 float32 ulps at 1) before the
/// first-batch fallback takes the output for scores.
pub(crate) const ROUNDING: f64 = 1e-6;

/// What a score output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Meaning {
    /// Probabilities (per class, or P(positive class) for a single column).
    Probabilities,
    /// Raw scores: softmax (several columns) or sigmoid (one column) gives the probabilities.
    Scores,
}

/// How the score output is turned into probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreTransform {
    /// Already probabilities: used as they are (clamped to [0, 1]).
    None,
    /// A single raw score: P(positive) = 1 / (1 + e^-score).
    Sigmoid,
    /// Raw scores per class: softmax over the columns.
    Softmax,
}

impl ScoreTransform {
    /// The transform for an output holding `meaning` in `width` columns.
    pub(crate) fn for_meaning(meaning: Meaning, width: usize) -> ScoreTransform {
        match meaning {
            Meaning::Probabilities => ScoreTransform::None,
            Meaning::Scores if width == 1 => ScoreTransform::Sigmoid,
            Meaning::Scores => ScoreTransform::Softmax,
        }
    }
}

/// What the graph says `output` holds, and why (e.g. `TreeEnsembleClassifier (post_transform NONE)`).
/// `None` if it does not say: then [`from_values`] decides.
pub(crate) fn from_graph(graph: &Graph, output: &str) -> Option<(Meaning, String)> {
    let (node, value) = graph.origin(output)?;
    if node.op_type == "ZipMap" {
        return from_graph(graph, node.inputs.first()?);
    }
    meaning_of(graph, node, value, 0)
}

/// The fallback: whether the first batch's `values` (`width` per row) look like probabilities.
pub(crate) fn from_values(values: &[f64], width: usize) -> Meaning {
    let in_range = values.iter().all(|v| (-ROUNDING..=1.0 + ROUNDING).contains(v));
    let sums_to_one = width <= 1 || values.chunks(width).all(|row| (row.iter().sum::<f64>() - 1.0).abs() <= 1e-3);
    if in_range && sums_to_one { Meaning::Probabilities } else { Meaning::Scores }
}

/// Turns `values` (`width` per row) into probabilities in place: the transform, then a clamp to [0, 1].
/// A single column (`Sigmoid` or `None`) stays one column: P(positive class).
pub(crate) fn apply(transform: ScoreTransform, values: &mut [f64], width: usize) {
    match transform {
        ScoreTransform::None => {}
        ScoreTransform::Sigmoid => values.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
        ScoreTransform::Softmax => values.chunks_mut(width.max(1)).for_each(softmax),
    }
    for v in values.iter_mut() {
        *v = v.clamp(0.0, 1.0);
    }
}

pub(crate) fn softmax(row: &mut [f64]) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

fn meaning_of(graph: &Graph, node: &Node, value: &str, depth: usize) -> Option<(Meaning, String)> {
    if depth > 16 {
        return None;
    }
    let op = node.op_type.as_str();
    let post_transform = node.attr_str("post_transform").unwrap_or("NONE");
    let with_transform = || format!("{op} (post_transform {post_transform})");
    match op {
        "Softmax" | "Sigmoid" => Some((Meaning::Probabilities, op.to_string())),
        "LogSoftmax" => Some((Meaning::Scores, op.to_string())),
        "Normalizer" if node.attr_str("norm") == Some("L1") => {
            Some((Meaning::Probabilities, "Normalizer (norm L1)".to_string()))
        }
        "LinearClassifier" | "TreeEnsembleClassifier" | "SVMClassifier"
            if node.outputs.get(1).is_some_and(|o| o == value) =>
        {
            match post_transform {
                "SOFTMAX" | "SOFTMAX_ZERO" | "LOGISTIC" => Some((Meaning::Probabilities, with_transform())),
                "NONE" => {
                    let meaning = match op {
                        "TreeEnsembleClassifier" => Meaning::Probabilities,
                        "SVMClassifier" if node.attr("prob_a").is_some_and(|a| !a.floats.is_empty()) => {
                            Meaning::Probabilities
                        }
                        _ => Meaning::Scores,
                    };
                    Some((meaning, with_transform()))
                }
                _ => None, // PROBIT: not a probability; let the values decide
            }
        }
        "Concat" => {
            let parts = node
                .inputs
                .iter()
                .map(|i| {
                    let (n, v) = graph.origin(i)?;
                    meaning_of(graph, n, v, depth + 1).map(|(m, _)| m)
                })
                .collect::<Option<Vec<_>>>()?;
            let first = *parts.first()?;
            parts.iter().all(|m| *m == first).then(|| (first, format!("Concat of {}", describe(first))))
        }
        "Sub" => {
            let [one, p] = node.inputs.as_slice() else { return None };
            let is_one =
                matches!(graph.constant(one), Some(Const::Floats(v)) if !v.is_empty() && v.iter().all(|&x| x == 1.0));
            let (n, v) = graph.origin(p)?;
            let (inner, _) = meaning_of(graph, n, v, depth + 1)?;
            (is_one && inner == Meaning::Probabilities)
                .then(|| (Meaning::Probabilities, "Sub (1 - probabilities)".to_string()))
        }
        "Div" => {
            let [x, sum] = node.inputs.as_slice() else { return None };
            let (sum_node, _) = graph.origin(sum)?;
            let summed = sum_node.inputs.first().and_then(|i| graph.origin(i));
            let normalises = sum_node.op_type == "ReduceSum"
                && matches!((summed, graph.origin(x)), (Some((a, u)), Some((b, v))) if std::ptr::eq(a, b) && u == v);
            normalises.then(|| (Meaning::Probabilities, "Div by its ReduceSum (row normalisation)".to_string()))
        }
        _ => None,
    }
}

fn describe(m: Meaning) -> &'static str {
    match m {
        Meaning::Probabilities => "probabilities",
        Meaning::Scores => "scores",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Attribute, Node};

    fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, &str)]) -> Node {
        Node {
            op_type: op.into(),
            domain: String::new(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attributes: attrs
                .iter()
                .map(|(k, v)| Attribute { name: k.to_string(), s: Some(v.to_string()), ..Default::default() })
                .collect(),
        }
    }

    fn graph(nodes: Vec<Node>) -> Graph {
        Graph { nodes, ..Default::default() }
    }

    fn meaning(g: &Graph, output: &str) -> Option<Meaning> {
        from_graph(g, output).map(|(m, _)| m)
    }

    #[test]
    fn tree_ensemble_without_post_transform_holds_probabilities() {
        // skl2onnx's random forest: probabilities straight from the leaves, whatever their rounding.
        let g = graph(vec![node(
            "TreeEnsembleClassifier",
            &["X"],
            &["label", "probabilities"],
            &[("post_transform", "NONE")],
        )]);
        let (m, why) = from_graph(&g, "probabilities").unwrap();
        assert_eq!(m, Meaning::Probabilities);
        assert_eq!(why, "TreeEnsembleClassifier (post_transform NONE)");
        // The label output is not a probability output.
        assert_eq!(meaning(&g, "label"), None);
    }

    #[test]
    fn classifiers_by_post_transform() {
        let g = |op: &str, t: &str| graph(vec![node(op, &["X"], &["l", "p"], &[("post_transform", t)])]);
        assert_eq!(meaning(&g("LinearClassifier", "LOGISTIC"), "p"), Some(Meaning::Probabilities));
        assert_eq!(meaning(&g("TreeEnsembleClassifier", "SOFTMAX"), "p"), Some(Meaning::Probabilities));
        assert_eq!(meaning(&g("LinearClassifier", "NONE"), "p"), Some(Meaning::Scores));
        assert_eq!(meaning(&g("SVMClassifier", "NONE"), "p"), Some(Meaning::Scores));
        assert_eq!(meaning(&g("LinearClassifier", "PROBIT"), "p"), None);
        let mut svc = g("SVMClassifier", "NONE");
        svc.nodes[0].attributes.push(Attribute { name: "prob_a".into(), floats: vec![-1.5], ..Default::default() });
        assert_eq!(meaning(&svc, "p"), Some(Meaning::Probabilities));
    }

    #[test]
    fn traces_through_pass_through_ops_and_zipmap() {
        let g = graph(vec![
            node("LinearClassifier", &["X"], &["l", "raw"], &[("post_transform", "SOFTMAX")]),
            node("Normalizer", &["raw"], &["n"], &[("norm", "L1")]),
            node("Cast", &["n"], &["probabilities"], &[]),
            node("ZipMap", &["probabilities"], &["output_probability"], &[]),
        ]);
        assert_eq!(
            from_graph(&g, "output_probability"),
            Some((Meaning::Probabilities, "Normalizer (norm L1)".to_string()))
        );
        let g = graph(vec![node("MatMul", &["X", "w"], &["z"], &[]), node("Identity", &["z"], &["score"], &[])]);
        assert_eq!(meaning(&g, "score"), None, "an unknown producer leaves it to the fallback");
        assert_eq!(meaning(&g, "X"), None, "a graph input");
    }

    #[test]
    fn mlp_binary_concat_and_knn_division() {
        let mut g = graph(vec![
            node("Sigmoid", &["z"], &["p1"], &[]),
            node("Sub", &["unity", "p1"], &["p0"], &[]),
            node("Concat", &["p0", "p1"], &["probabilities"], &[]),
        ]);
        assert_eq!(meaning(&g, "probabilities"), None, "1 - p needs the constant to be 1");
        g.constants.insert("unity".into(), Const::Floats(vec![1.0]));
        assert_eq!(meaning(&g, "probabilities"), Some(Meaning::Probabilities));

        let g = graph(vec![
            node("Concat", &["c0", "c1"], &["counts"], &[]),
            node("ReduceSum", &["counts", "axes"], &["total"], &[]),
            node("Div", &["counts", "total"], &["probabilities"], &[]),
            node("Div", &["counts", "other"], &["ratio"], &[]),
        ]);
        assert_eq!(meaning(&g, "probabilities"), Some(Meaning::Probabilities));
        assert_eq!(meaning(&g, "ratio"), None);
    }

    #[test]
    fn fallback_tolerates_rounding_and_apply_clamps() {
        let rf = [1.000_000_1, -1.192_092_9e-7, 0.25, 0.75];
        assert_eq!(from_values(&rf, 2), Meaning::Probabilities);
        assert_eq!(from_values(&[2.0, -1.0], 2), Meaning::Scores);
        assert_eq!(from_values(&[0.2, 0.2], 2), Meaning::Scores, "rows must sum to 1");
        assert_eq!(from_values(&[0.2, 0.9], 1), Meaning::Probabilities);
        assert_eq!(from_values(&[3.0], 1), Meaning::Scores);

        let mut p = rf;
        apply(ScoreTransform::None, &mut p, 2);
        assert_eq!(p, [1.0, 0.0, 0.25, 0.75]);
        let mut s = [1.0, 2.0, 3.0];
        apply(ScoreTransform::Softmax, &mut s, 3);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12 && s[2] > s[1] && s[1] > s[0]);
        let mut one = [0.0];
        apply(ScoreTransform::Sigmoid, &mut one, 1);
        assert_eq!(one, [0.5]);
        assert_eq!(ScoreTransform::for_meaning(Meaning::Scores, 1), ScoreTransform::Sigmoid);
        assert_eq!(ScoreTransform::for_meaning(Meaning::Scores, 3), ScoreTransform::Softmax);
        assert_eq!(ScoreTransform::for_meaning(Meaning::Probabilities, 3), ScoreTransform::None);
    }
}
