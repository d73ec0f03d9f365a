//! Model types that become ONNX graphs, with a reference `predict` that computes what the graph
//! computes (used to check a written model against ONNX Runtime).

use std::collections::BTreeMap;

use crate::proto::{AttrValue, DataType, Dim, Graph, Model, Node, Tensor, ValueInfo};
use crate::{
    Error, INPUT, IR_VERSION, ML_DOMAIN, ML_OPSET, OPSET, OUTPUT_LABEL, OUTPUT_PROBABILITIES, OUTPUT_VARIABLE,
};

/// Producer, documentation and metadata of a written model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInfo {
    /// `producer_name` (e.g. `dagrun-train`).
    pub producer_name: String,
    /// `producer_version`.
    pub producer_version: String,
    /// The model's `doc_string`.
    pub doc_string: String,
    /// `metadata_props` (e.g. feature names); written sorted by key.
    pub metadata: BTreeMap<String, String>,
}

/// Feature standardisation inside the graph: `(x - mean) / std`, per feature, in float32.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    /// Per-feature mean.
    pub mean: Vec<f32>,
    /// Per-feature standard deviation (must not be 0; use 1 for a constant feature).
    pub std: Vec<f32>,
}

impl Standardizer {
    /// No-op standardisation for `n` features (mean 0, std 1).
    pub fn identity(n: usize) -> Standardizer {
        Standardizer { mean: vec![0.0; n], std: vec![1.0; n] }
    }

    /// Feature `j` of a row, standardised exactly as the graph does it (float32 `Sub`, `Div`).
    pub fn apply(&self, j: usize, x: f32) -> f32 {
        (x - self.mean[j]) / self.std[j]
    }

    fn check(&self) -> Result<(), Error> {
        if self.mean.len() != self.std.len() {
            return Err(Error::new(format!("standardizer: {} means but {} stds", self.mean.len(), self.std.len())));
        }
        if let Some(j) = self.std.iter().position(|s| !s.is_finite() || *s == 0.0) {
            return Err(Error::new(format!(
                "standardizer: std of feature {j} is {} (must be finite, not 0)",
                self.std[j]
            )));
        }
        if let Some(j) = self.mean.iter().position(|m| !m.is_finite()) {
            return Err(Error::new(format!("standardizer: mean of feature {j} is not finite")));
        }
        Ok(())
    }

    /// Adds `input → Sub(mean) → Div(std) → "standardized"` to `graph`.
    fn add_to(&self, graph: &mut Graph) -> &'static str {
        let f = self.mean.len() as i64;
        graph.initializers.push(Tensor::float("mean", &[f], self.mean.clone()));
        graph.initializers.push(Tensor::float("std", &[f], self.std.clone()));
        graph.nodes.push(Node::new("Sub", "center", &[INPUT, "mean"], &["centered"]));
        graph.nodes.push(Node::new("Div", "scale", &["centered", "std"], &["standardized"]));
        "standardized"
    }
}

/// Predictions of a model for a batch of rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictions {
    /// A regressor's `variable` output, one value per row.
    Regression(Vec<f64>),
    /// A classifier's outputs.
    Classification {
        /// `label` per row (a class label, not an index).
        labels: Vec<i64>,
        /// `probabilities`, row-major `rows × classes`.
        probabilities: Vec<f64>,
        /// Number of classes (columns of `probabilities`).
        classes: usize,
    },
}

impl Predictions {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Predictions::Regression(v) => v.len(),
            Predictions::Classification { labels, .. } => labels.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The predictions as CSV: header `variable` or `label,p_<class>...`, one line per row, numbers
    /// in Rust's shortest round-trip form (deterministic).
    pub fn to_csv(&self, class_labels: &[i64]) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        match self {
            Predictions::Regression(v) => {
                out.push_str(OUTPUT_VARIABLE);
                out.push('\n');
                for x in v {
                    let _ = writeln!(out, "{x}");
                }
            }
            Predictions::Classification { labels, probabilities, classes } => {
                out.push_str(OUTPUT_LABEL);
                for c in class_labels {
                    let _ = write!(out, ",p_{c}");
                }
                out.push('\n');
                for (label, p) in labels.iter().zip(probabilities.chunks(*classes)) {
                    let _ = write!(out, "{label}");
                    for x in p {
                        let _ = write!(out, ",{x}");
                    }
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// How a classifier turns scores into outputs.
fn check_classes(classes: &[i64], scores: usize) -> Result<bool, Error> {
    if classes.len() < 2 {
        return Err(Error::new(format!("a classifier needs at least 2 classes, got {}", classes.len())));
    }
    if classes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::new("classes must be sorted and distinct"));
    }
    match (classes.len(), scores) {
        (2, 1) => Ok(true),
        (c, s) if c == s => Ok(false),
        (c, s) => Err(Error::new(format!("{c} classes need {c} score columns (or 1 for 2 classes), got {s}"))),
    }
}

/// Adds the classifier head: scores `[N, K]` → `probabilities` `[N, C]` (Sigmoid + `1 - p` for a
/// single binary score column, Softmax otherwise) → `label` `[N]` (ArgMax, mapped to the class
/// labels with Gather unless they are `0..C`).
fn add_classifier_head(graph: &mut Graph, scores: &str, classes: &[i64], binary: bool) {
    if binary {
        graph.initializers.push(Tensor::float("one", &[1], vec![1.0]));
        graph.nodes.push(Node::new("Sigmoid", "sigmoid", &[scores], &["p_positive"]));
        graph.nodes.push(Node::new("Sub", "complement", &["one", "p_positive"], &["p_negative"]));
        graph.nodes.push(
            Node::new("Concat", "stack", &["p_negative", "p_positive"], &[OUTPUT_PROBABILITIES])
                .attr("axis", AttrValue::Int(1)),
        );
    } else {
        graph
            .nodes
            .push(Node::new("Softmax", "softmax", &[scores], &[OUTPUT_PROBABILITIES]).attr("axis", AttrValue::Int(1)));
    }
    let identity = classes.iter().enumerate().all(|(i, &c)| c == i as i64);
    let argmax_out = if identity { OUTPUT_LABEL } else { "label_index" };
    graph.nodes.push(
        Node::new("ArgMax", "argmax", &[OUTPUT_PROBABILITIES], &[argmax_out])
            .attr("axis", AttrValue::Int(1))
            .attr("keepdims", AttrValue::Int(0)),
    );
    if !identity {
        graph.initializers.push(Tensor::int64("classes", &[classes.len() as i64], classes.to_vec()));
        graph.nodes.push(
            Node::new("Gather", "class_label", &["classes", "label_index"], &[OUTPUT_LABEL])
                .attr("axis", AttrValue::Int(0)),
        );
    }
    let n = || Dim::Param("N".into());
    graph.outputs.push(ValueInfo::tensor(OUTPUT_LABEL, DataType::Int64, vec![n()]));
    graph.outputs.push(ValueInfo::tensor(
        OUTPUT_PROBABILITIES,
        DataType::Float,
        vec![n(), Dim::Value(classes.len() as i64)],
    ));
}

/// The classifier head of [`add_classifier_head`] on one row of scores (float32 values, as the
/// graph has them): appends the probabilities to `probabilities` and returns the label.
fn classify(scores: &[f32], classes: &[i64], binary: bool, probabilities: &mut Vec<f64>) -> i64 {
    let start = probabilities.len();
    if binary {
        let p = 1.0 / (1.0 + libm::exp(-f64::from(scores[0])));
        probabilities.push(1.0 - p);
        probabilities.push(p);
    } else {
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let mut total = 0.0;
        for &s in scores {
            let e = libm::exp(f64::from(s) - f64::from(max));
            total += e;
            probabilities.push(e);
        }
        probabilities[start..].iter_mut().for_each(|p| *p /= total);
    }
    // ArgMax returns the first maximum.
    let row = &probabilities[start..];
    let mut best = 0;
    for (i, &p) in row.iter().enumerate() {
        if p > row[best] {
            best = i;
        }
    }
    classes[best]
}

fn new_graph(name: &str, n_features: usize) -> Graph {
    Graph {
        name: name.to_owned(),
        inputs: vec![ValueInfo::tensor(
            INPUT,
            DataType::Float,
            vec![Dim::Param("N".into()), Dim::Value(n_features as i64)],
        )],
        ..Graph::default()
    }
}

fn model(graph: Graph, info: &ModelInfo, ml: bool) -> Model {
    let mut opset_imports = BTreeMap::from([(String::new(), OPSET)]);
    if ml {
        opset_imports.insert(ML_DOMAIN.to_owned(), ML_OPSET);
    }
    Model {
        ir_version: IR_VERSION,
        opset_imports,
        producer_name: info.producer_name.clone(),
        producer_version: info.producer_version.clone(),
        domain: String::new(),
        model_version: 1,
        doc_string: info.doc_string.clone(),
        graph,
        metadata: info.metadata.clone(),
    }
}

fn check_rows(x: &[f32], n_features: usize) -> usize {
    assert!(n_features > 0 && x.len().is_multiple_of(n_features), "x must be rows × {n_features} features");
    x.len() / n_features
}

/// Standardised features times `coef` (`F × K`, row-major) plus `intercept`, one row: float32
/// standardisation as in the graph, products summed in f64, rounded to f32 like the graph's output.
fn linear_scores(s: &Standardizer, coef: &[f32], intercept: &[f32], row: &[f32], out: &mut [f32]) {
    let k = intercept.len();
    let mut acc = [0.0f64; 64];
    let mut acc_vec;
    let acc: &mut [f64] = if k <= 64 {
        &mut acc[..k]
    } else {
        acc_vec = vec![0.0; k];
        &mut acc_vec
    };
    for (j, &x) in row.iter().enumerate() {
        let z = f64::from(s.apply(j, x));
        for (a, &w) in acc.iter_mut().zip(&coef[j * k..(j + 1) * k]) {
            *a += z * f64::from(w);
        }
    }
    for ((o, a), &b) in out.iter_mut().zip(acc.iter()).zip(intercept) {
        *o = (*a as f32) + b;
    }
}

/// Linear regression: `variable = standardize(input) · coef + intercept`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearRegression {
    /// Feature standardisation.
    pub standardizer: Standardizer,
    /// One coefficient per (standardised) feature.
    pub coef: Vec<f32>,
    /// Intercept.
    pub intercept: f32,
}

impl LinearRegression {
    fn check(&self) -> Result<(), Error> {
        self.standardizer.check()?;
        if self.coef.len() != self.standardizer.mean.len() || self.coef.is_empty() {
            return Err(Error::new(format!(
                "linear regression: {} coefficients for {} features",
                self.coef.len(),
                self.standardizer.mean.len()
            )));
        }
        Ok(())
    }

    /// The ONNX model: `input` float `[N, F]` → Sub, Div, MatMul, Add → `variable` float `[N, 1]`.
    pub fn to_model(&self, info: &ModelInfo) -> Result<Model, Error> {
        self.check()?;
        let f = self.coef.len();
        let mut g = new_graph("linear_regression", f);
        let z = self.standardizer.add_to(&mut g);
        g.initializers.push(Tensor::float("coef", &[f as i64, 1], self.coef.clone()));
        g.initializers.push(Tensor::float("intercept", &[1], vec![self.intercept]));
        g.nodes.push(Node::new("MatMul", "matmul", &[z, "coef"], &["product"]));
        g.nodes.push(Node::new("Add", "add_intercept", &["product", "intercept"], &[OUTPUT_VARIABLE]));
        g.outputs.push(ValueInfo::tensor(
            OUTPUT_VARIABLE,
            DataType::Float,
            vec![Dim::Param("N".into()), Dim::Value(1)],
        ));
        Ok(model(g, info, false))
    }

    /// What the graph computes for `x` (row-major, `rows × F`).
    pub fn predict(&self, x: &[f32]) -> Predictions {
        let f = self.coef.len();
        let mut out = Vec::with_capacity(check_rows(x, f));
        let mut score = [0.0f32];
        for row in x.chunks(f) {
            linear_scores(&self.standardizer, &self.coef, &[self.intercept], row, &mut score);
            out.push(f64::from(score[0]));
        }
        Predictions::Regression(out)
    }
}

/// Logistic regression, binary (one score column and Sigmoid) or multinomial (one column per
/// class and Softmax).
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    /// Feature standardisation.
    pub standardizer: Standardizer,
    /// Coefficients, `F × K` row-major (K = 1 for binary, else the number of classes).
    pub coef: Vec<f32>,
    /// Intercepts, `K`.
    pub intercept: Vec<f32>,
    /// Class labels, sorted; the binary score is the log-odds of `classes[1]`.
    pub classes: Vec<i64>,
}

impl LogisticRegression {
    fn check(&self) -> Result<bool, Error> {
        self.standardizer.check()?;
        let binary = check_classes(&self.classes, self.intercept.len())?;
        let f = self.standardizer.mean.len();
        if f == 0 || self.coef.len() != f * self.intercept.len() {
            return Err(Error::new(format!(
                "logistic regression: {} coefficients for {f} features × {} scores",
                self.coef.len(),
                self.intercept.len()
            )));
        }
        Ok(binary)
    }

    /// The ONNX model: `input` float `[N, F]` → Sub, Div, MatMul, Add → Sigmoid (binary) or
    /// Softmax → `probabilities` float `[N, C]`, ArgMax → `label` int64 `[N]`.
    pub fn to_model(&self, info: &ModelInfo) -> Result<Model, Error> {
        let binary = self.check()?;
        let f = self.standardizer.mean.len();
        let k = self.intercept.len();
        let mut g = new_graph("logistic_regression", f);
        let z = self.standardizer.add_to(&mut g);
        g.initializers.push(Tensor::float("coef", &[f as i64, k as i64], self.coef.clone()));
        g.initializers.push(Tensor::float("intercept", &[k as i64], self.intercept.clone()));
        g.nodes.push(Node::new("MatMul", "matmul", &[z, "coef"], &["product"]));
        g.nodes.push(Node::new("Add", "add_intercept", &["product", "intercept"], &["scores"]));
        add_classifier_head(&mut g, "scores", &self.classes, binary);
        Ok(model(g, info, false))
    }

    /// What the graph computes for `x` (row-major, `rows × F`).
    pub fn predict(&self, x: &[f32]) -> Predictions {
        let binary = self.classes.len() == 2 && self.intercept.len() == 1;
        let f = self.standardizer.mean.len();
        let rows = check_rows(x, f);
        let mut labels = Vec::with_capacity(rows);
        let mut probabilities = Vec::with_capacity(rows * self.classes.len());
        let mut scores = vec![0.0f32; self.intercept.len()];
        for row in x.chunks(f) {
            linear_scores(&self.standardizer, &self.coef, &self.intercept, row, &mut scores);
            labels.push(classify(&scores, &self.classes, binary, &mut probabilities));
        }
        Predictions::Classification { labels, probabilities, classes: self.classes.len() }
    }
}

/// A node of a decision tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TreeNode {
    /// `input[feature] <= threshold` → `left`, otherwise (and for NaN) → `right`. Children are
    /// indices into the tree's nodes, greater than this node's.
    Branch {
        /// Feature index.
        feature: u32,
        /// Threshold (compared in float32).
        threshold: f32,
        /// Node taken when `x <= threshold`.
        left: u32,
        /// Node taken otherwise.
        right: u32,
    },
    /// A leaf: adds `value` to the tree's target score.
    Leaf {
        /// The leaf's contribution.
        value: f32,
    },
}

/// A decision tree; `nodes[0]` is the root.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    /// The score column the tree adds to (0 for regression and binary classification).
    pub target: u32,
    /// Nodes, root first.
    pub nodes: Vec<TreeNode>,
}

impl Tree {
    /// The leaf value reached by `row`.
    pub fn leaf_value(&self, row: &[f32]) -> f32 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                TreeNode::Branch { feature, threshold, left, right } => {
                    i = if row[feature as usize] <= threshold { left as usize } else { right as usize };
                }
                TreeNode::Leaf { value } => return value,
            }
        }
    }
}

/// What a tree ensemble's scores are.
#[derive(Debug, Clone, PartialEq)]
pub enum TreeHead {
    /// Scores are the prediction: `variable` `[N, 1]` (one target).
    Regression,
    /// Scores are logits: one column and Sigmoid for 2 classes, one column per class and
    /// Softmax otherwise.
    Classification {
        /// Class labels, sorted.
        classes: Vec<i64>,
    },
}

/// A sum of decision trees (e.g. gradient boosting) with a base score per target, written as
/// `ai.onnx.ml` TreeEnsembleRegressor (`aggregate_function` SUM, `post_transform` NONE) followed
/// by the classifier head for classification.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsemble {
    /// Number of input features.
    pub n_features: usize,
    /// Base score per target (its length is the number of targets).
    pub base_values: Vec<f32>,
    /// The trees, summed in this order.
    pub trees: Vec<Tree>,
    /// Regression or classification.
    pub head: TreeHead,
}

impl TreeEnsemble {
    fn check(&self) -> Result<Option<bool>, Error> {
        let k = self.base_values.len();
        let binary = match &self.head {
            TreeHead::Regression if k == 1 => None,
            TreeHead::Regression => return Err(Error::new(format!("a tree regressor has 1 target, not {k}"))),
            TreeHead::Classification { classes } => Some(check_classes(classes, k)?),
        };
        if self.n_features == 0 {
            return Err(Error::new("a tree ensemble needs at least one feature"));
        }
        for (t, tree) in self.trees.iter().enumerate() {
            let bad = |msg: String| Err(Error::new(format!("tree {t}: {msg}")));
            if tree.nodes.is_empty() {
                return bad("no nodes".into());
            }
            if tree.target as usize >= k {
                return bad(format!("target {} of {k}", tree.target));
            }
            for (i, node) in tree.nodes.iter().enumerate() {
                match *node {
                    TreeNode::Branch { feature, threshold, left, right } => {
                        let n = tree.nodes.len() as u32;
                        if feature as usize >= self.n_features || !threshold.is_finite() {
                            return bad(format!("node {i}: feature {feature}, threshold {threshold}"));
                        }
                        if left <= i as u32 || right <= i as u32 || left >= n || right >= n || left == right {
                            return bad(format!("node {i}: children {left}, {right} (must follow the node)"));
                        }
                    }
                    TreeNode::Leaf { value } if !value.is_finite() => return bad(format!("node {i}: leaf {value}")),
                    TreeNode::Leaf { .. } => {}
                }
            }
        }
        Ok(binary)
    }

    /// The ONNX model: `input` float `[N, F]` → TreeEnsembleRegressor (ai.onnx.ml) → `variable`
    /// float `[N, 1]`, or → Sigmoid/Softmax → `probabilities` float `[N, C]` and `label` int64 `[N]`.
    pub fn to_model(&self, info: &ModelInfo) -> Result<Model, Error> {
        let binary = self.check()?;
        let mut g = new_graph("tree_ensemble", self.n_features);
        let (mut tree_ids, mut node_ids, mut features, mut modes, mut values, mut trues, mut falses) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut leaf_trees, mut leaf_nodes, mut leaf_targets, mut weights) = (vec![], vec![], vec![], vec![]);
        for (t, tree) in self.trees.iter().enumerate() {
            for (i, node) in tree.nodes.iter().enumerate() {
                tree_ids.push(t as i64);
                node_ids.push(i as i64);
                match *node {
                    TreeNode::Branch { feature, threshold, left, right } => {
                        features.push(i64::from(feature));
                        modes.push("BRANCH_LEQ".to_owned());
                        values.push(threshold);
                        trues.push(i64::from(left));
                        falses.push(i64::from(right));
                    }
                    TreeNode::Leaf { value } => {
                        features.push(0);
                        modes.push("LEAF".to_owned());
                        values.push(0.0);
                        trues.push(0);
                        falses.push(0);
                        leaf_trees.push(t as i64);
                        leaf_nodes.push(i as i64);
                        leaf_targets.push(i64::from(tree.target));
                        weights.push(value);
                    }
                }
            }
        }
        let scores = if binary.is_none() { OUTPUT_VARIABLE } else { "scores" };
        g.nodes.push(
            Node::new("TreeEnsembleRegressor", "trees", &[INPUT], &[scores])
                .domain(ML_DOMAIN)
                .attr("aggregate_function", AttrValue::String("SUM".into()))
                .attr("base_values", AttrValue::Floats(self.base_values.clone()))
                .attr("n_targets", AttrValue::Int(self.base_values.len() as i64))
                .attr("nodes_falsenodeids", AttrValue::Ints(falses))
                .attr("nodes_featureids", AttrValue::Ints(features))
                .attr("nodes_modes", AttrValue::Strings(modes))
                .attr("nodes_nodeids", AttrValue::Ints(node_ids))
                .attr("nodes_treeids", AttrValue::Ints(tree_ids))
                .attr("nodes_truenodeids", AttrValue::Ints(trues))
                .attr("nodes_values", AttrValue::Floats(values))
                .attr("post_transform", AttrValue::String("NONE".into()))
                .attr("target_ids", AttrValue::Ints(leaf_targets))
                .attr("target_nodeids", AttrValue::Ints(leaf_nodes))
                .attr("target_treeids", AttrValue::Ints(leaf_trees))
                .attr("target_weights", AttrValue::Floats(weights)),
        );
        match (&self.head, binary) {
            (TreeHead::Classification { classes }, Some(binary)) => {
                add_classifier_head(&mut g, scores, classes, binary);
            }
            _ => g.outputs.push(ValueInfo::tensor(
                OUTPUT_VARIABLE,
                DataType::Float,
                vec![Dim::Param("N".into()), Dim::Value(1)],
            )),
        }
        Ok(model(g, info, true))
    }

    /// The raw scores of one row: per target, the float32 sum of its trees' leaves in tree order,
    /// plus the base value (what TreeEnsembleRegressor computes).
    pub fn scores(&self, row: &[f32], out: &mut [f32]) {
        out.iter_mut().for_each(|s| *s = 0.0);
        for tree in &self.trees {
            out[tree.target as usize] += tree.leaf_value(row);
        }
        for (s, b) in out.iter_mut().zip(&self.base_values) {
            *s += b;
        }
    }

    /// What the graph computes for `x` (row-major, `rows × F`).
    pub fn predict(&self, x: &[f32]) -> Predictions {
        let rows = check_rows(x, self.n_features);
        let mut scores = vec![0.0f32; self.base_values.len()];
        match &self.head {
            TreeHead::Regression => Predictions::Regression(
                x.chunks(self.n_features)
                    .map(|row| {
                        self.scores(row, &mut scores);
                        f64::from(scores[0])
                    })
                    .collect(),
            ),
            TreeHead::Classification { classes } => {
                let binary = classes.len() == 2 && scores.len() == 1;
                let mut labels = Vec::with_capacity(rows);
                let mut probabilities = Vec::with_capacity(rows * classes.len());
                for row in x.chunks(self.n_features) {
                    self.scores(row, &mut scores);
                    labels.push(classify(&scores, classes, binary, &mut probabilities));
                }
                Predictions::Classification { labels, probabilities, classes: classes.len() }
            }
        }
    }
}

/// Any model this crate writes.
#[derive(Debug, Clone, PartialEq)]
pub enum OnnxModel {
    /// Linear regression.
    Linear(LinearRegression),
    /// Logistic regression.
    Logistic(LogisticRegression),
    /// Tree ensemble.
    Trees(TreeEnsemble),
}

impl OnnxModel {
    /// The ONNX model.
    pub fn to_model(&self, info: &ModelInfo) -> Result<Model, Error> {
        match self {
            OnnxModel::Linear(m) => m.to_model(info),
            OnnxModel::Logistic(m) => m.to_model(info),
            OnnxModel::Trees(m) => m.to_model(info),
        }
    }

    /// The `.onnx` file's bytes.
    pub fn to_bytes(&self, info: &ModelInfo) -> Result<Vec<u8>, Error> {
        Ok(self.to_model(info)?.encode())
    }

    /// What the graph computes for `x` (row-major, `rows × F`).
    pub fn predict(&self, x: &[f32]) -> Predictions {
        match self {
            OnnxModel::Linear(m) => m.predict(x),
            OnnxModel::Logistic(m) => m.predict(x),
            OnnxModel::Trees(m) => m.predict(x),
        }
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        match self {
            OnnxModel::Linear(m) => m.coef.len(),
            OnnxModel::Logistic(m) => m.standardizer.mean.len(),
            OnnxModel::Trees(m) => m.n_features,
        }
    }

    /// Class labels of a classifier (empty for a regressor).
    pub fn classes(&self) -> &[i64] {
        match self {
            OnnxModel::Linear(_) => &[],
            OnnxModel::Logistic(m) => &m.classes,
            OnnxModel::Trees(TreeEnsemble { head: TreeHead::Classification { classes }, .. }) => classes,
            OnnxModel::Trees(_) => &[],
        }
    }
}
