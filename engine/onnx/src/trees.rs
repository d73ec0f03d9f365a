//! Tree ensembles (`ai.onnx.ml` `TreeEnsembleClassifier` / `TreeEnsembleRegressor`, what
//! skl2onnx makes of gradient boosting, random forests and decision trees) evaluated natively:
//! the same float arithmetic as ONNX Runtime's kernel (comparisons, missing-value tracks, sums in
//! float, base values, the binary-case rules, logistic), rows split over threads, no per-batch
//! tensor round trip. Only graphs where the ensemble alone computes the outputs are taken; the
//! model checks the first batch against ONNX Runtime before trusting it (`model.rs`).

use std::collections::{BTreeMap, HashMap};

use crate::io::{Labels, RawOutputs, Scores};
use crate::proto::{Graph, Node};

/// How a node branches; `Leaf` ends a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => Mode::Leaf,
            _ => return None,
        })
    }
}

/// One node, flattened: children and leaf weights are indices.
#[derive(Debug, Clone, Copy)]
struct TreeNode {
    mode: Mode,
    feature: u32,
    value: f32,
    missing_true: bool,
    yes: u32,
    no: u32,
    /// Leaf weights: `weights[w_start..w_end]`.
    w_start: u32,
    w_end: u32,
}

/// After the trees: what the scores become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Post {
    None,
    Logistic,
    Softmax,
}

#[derive(Debug, Clone)]
enum Task {
    /// Class labels (int64), whether it is ONNX Runtime's "binary case" (two classes, weights for
    /// one) and whether every weight is ≥ 0.
    Classify { labels: Vec<i64>, binary_case: bool, all_positive: bool },
    /// Targets; `average` divides the sums by the number of trees.
    Regress { average: bool },
}

/// A tree ensemble ready to evaluate rows of `f32` features.
#[derive(Debug, Clone)]
pub(crate) struct Ensemble {
    nodes: Vec<TreeNode>,
    roots: Vec<u32>,
    weights: Vec<(u32, f32)>,
    n_out: usize,
    base: Vec<f32>,
    post: Post,
    task: Task,
    /// Highest feature index a node reads (rows must be wider).
    max_feature: usize,
    /// Every branch is `BRANCH_LEQ` with no missing-value track.
    plain: bool,
    /// Whether the label output is wired (classifiers) and the score output.
    pub label: bool,
    pub scores: bool,
}

impl Ensemble {
    /// The ensemble computing `label_output` and/or `score_output` straight from `input` (only
    /// `Identity` between them), when every attribute is one this evaluator follows exactly.
    pub(crate) fn from_graph(
        graph: &Graph,
        input: &str,
        label_output: Option<&str>,
        score_output: Option<&str>,
    ) -> Option<Ensemble> {
        let trace = |out: &str| -> Option<(&Node, usize)> {
            let mut value = out;
            for _ in 0..=graph.nodes.len() {
                let node = graph.producer(value)?;
                if node.op_type == "Identity" {
                    value = node.inputs.first()?;
                    continue;
                }
                return Some((node, node.outputs.iter().position(|o| o == value)?));
            }
            None
        };
        let label = label_output.map(trace);
        let score = score_output.map(trace);
        let node = match (&label, &score) {
            (Some(Some((a, 0))), Some(Some((b, 1)))) if std::ptr::eq(*a, *b) => *a,
            (None, Some(Some((b, 1)))) => *b,
            (None, Some(Some((b, 0)))) if b.op_type == "TreeEnsembleRegressor" => *b,
            _ => return None,
        };
        if node.domain != "ai.onnx.ml" || node.inputs.first().map(String::as_str) != Some(input) {
            return None;
        }
        let mut e = match node.op_type.as_str() {
            "TreeEnsembleClassifier" => build(node, "class")?,
            "TreeEnsembleRegressor" => build(node, "target")?,
            _ => return None,
        };
        e.label = label.is_some();
        e.scores = score.is_some();
        Some(e)
    }

    /// Evaluates `rows` rows of `width` features on up to `threads` threads. `threads` must be
    /// the ONNX Runtime session's intra-op thread count: it decides, as in ONNX Runtime, how the
    /// trees are split into partial sums (and so the float rounding).
    pub(crate) fn run(&self, x: &[f32], rows: usize, width: usize, threads: usize) -> Option<RawOutputs> {
        if width <= self.max_feature || x.len() != rows * width {
            return None;
        }
        let parts = self.tree_parts(rows, threads);
        let out_width = self.out_width();
        let mut labels = vec![0i64; rows];
        let mut scores = vec![0f32; rows * out_width];
        let threads = threads.clamp(1, rows.div_ceil(1024).max(1));
        let per = rows.div_ceil(threads);
        std::thread::scope(|s| {
            let chunks = labels.chunks_mut(per).zip(scores.chunks_mut(per * out_width)).enumerate();
            for (k, (l, z)) in chunks {
                let start = k * per;
                let x = &x[start * width..(start + l.len()) * width];
                let parts = &parts;
                if k + 1 == threads || threads == 1 {
                    self.rows(x, width, parts, l, z);
                } else {
                    s.spawn(move || self.rows(x, width, parts, l, z));
                }
            }
        });
        Some(RawOutputs {
            label: self.label.then_some(Labels::Int(labels)),
            scores: self.scores.then(|| Scores {
                width: out_width,
                values: scores.into_iter().map(f64::from).collect(),
                single_precision: true,
                keys: None,
            }),
        })
    }

    /// Values per row of the score output.
    fn out_width(&self) -> usize {
        match self.task {
            Task::Classify { .. } if self.n_out == 2 => 2,
            _ => self.n_out,
        }
    }

    /// The trees' split into partial sums for a batch of `rows`, as ONNX Runtime (1.31,
    /// `TreeEnsembleCommon::ComputeAgg`) splits them over `threads`: one sum over all trees in
    /// order for small batches or one thread, else contiguous blocks (`PartitionWork`) summed
    /// separately and merged in block order.
    fn tree_parts(&self, rows: usize, threads: usize) -> Vec<std::ops::Range<usize>> {
        const PARALLEL_TREE: usize = 80; // ONNX Runtime's defaults
        const PARALLEL_N: usize = 50;
        let n = self.roots.len();
        let split = if rows == 1 {
            n > PARALLEL_TREE && threads > 1
        } else if rows <= PARALLEL_N || threads == 1 {
            false
        } else if self.n_out >= 2 || matches!(self.task, Task::Classify { .. }) {
            n >= threads
        } else {
            n > threads
        };
        if !split {
            return std::iter::once(0..n).collect();
        }
        let parts = threads.min(n);
        let (each, extra) = (n / parts, n % parts);
        (0..parts)
            .map(|b| {
                let start = if b < extra { (each + 1) * b } else { each * b + extra };
                start..start + each + usize::from(b < extra)
            })
            .collect()
    }

    /// Rows in blocks: within a block each tree is walked for every row before the next tree,
    /// so the walks (chains of dependent loads) of different rows overlap in the processor;
    /// each row still adds its trees in order.
    fn rows(&self, x: &[f32], width: usize, parts: &[std::ops::Range<usize>], labels: &mut [i64], out: &mut [f32]) {
        const BLOCK: usize = 64;
        let (w, n, np) = (self.out_width(), self.n_out, parts.len());
        let mut acc = vec![0f32; BLOCK * np * n];
        let mut has = vec![false; BLOCK * np * n];
        for (b, block) in x.chunks(BLOCK * width).enumerate() {
            let rows = block.len() / width;
            acc.fill(0.0);
            has.fill(false);
            for (p, trees) in parts.iter().enumerate() {
                for &root in &self.roots[trees.clone()] {
                    for (r, row) in block.chunks_exact(width).enumerate() {
                        let leaf = &self.nodes[self.leaf(root, row) as usize];
                        let at = (r * np + p) * n;
                        for &(k, v) in &self.weights[leaf.w_start as usize..leaf.w_end as usize] {
                            acc[at + k as usize] += v;
                            has[at + k as usize] = true;
                        }
                    }
                }
            }
            for r in 0..rows {
                let (acc, has) = (&mut acc[r * np * n..(r + 1) * np * n], &mut has[r * np * n..(r + 1) * np * n]);
                for p in 1..np {
                    for k in 0..n {
                        if has[p * n + k] {
                            acc[k] += acc[p * n + k];
                            has[k] = true;
                        }
                    }
                }
                let row = b * BLOCK + r;
                labels[row] = self.finish(&mut acc[..n], &mut has[..n], &mut out[row * w..(row + 1) * w]);
            }
        }
    }

    /// The leaf `row` reaches from `root`.
    #[inline]
    fn leaf(&self, root: u32, row: &[f32]) -> u32 {
        if self.plain {
            return self.leaf_leq(root, row);
        }
        let mut i = root;
        loop {
            let n = &self.nodes[i as usize];
            let v = row[n.feature as usize];
            let yes = match n.mode {
                Mode::Leq => v <= n.value,
                Mode::Lt => v < n.value,
                Mode::Gte => v >= n.value,
                Mode::Gt => v > n.value,
                Mode::Eq => v == n.value,
                Mode::Neq => v != n.value,
                Mode::Leaf => return i,
            } || (n.missing_true && v.is_nan());
            i = if yes { n.yes } else { n.no };
        }
    }

    /// [`Ensemble::leaf`] when every branch is `BRANCH_LEQ` without missing-value tracks (what
    /// skl2onnx writes): the child picked without a branch the processor must guess (a tree
    /// walk's comparisons are coin flips, and mispredictions were most of its time).
    #[inline]
    fn leaf_leq(&self, root: u32, row: &[f32]) -> u32 {
        let mut i = root;
        loop {
            let n = &self.nodes[i as usize];
            if n.mode == Mode::Leaf {
                return i;
            }
            let go = row[n.feature as usize] <= n.value;
            i = [n.no, n.yes][usize::from(go)];
        }
    }

    /// Base values, the binary-case rules and the transform, as ONNX Runtime finalizes a row;
    /// writes the row's scores and returns its label.
    fn finish(&self, acc: &mut [f32], has: &mut [bool], out: &mut [f32]) -> i64 {
        match &self.task {
            Task::Regress { average } => {
                let n = self.roots.len() as f32;
                let origin = if self.base.len() == 1 && self.n_out == 1 { self.base[0] } else { 0.0 };
                for (k, o) in out.iter_mut().enumerate() {
                    let s = if *average { acc[k] / n } else { acc[k] };
                    *o = if self.n_out == 1 {
                        s + origin
                    } else if self.base.len() == self.n_out {
                        s + self.base[k]
                    } else {
                        s
                    };
                }
                0
            }
            Task::Classify { labels, binary_case, all_positive } => {
                if self.n_out > 2 {
                    for (k, b) in self.base.iter().enumerate() {
                        acc[k] = if has[k] { acc[k] + b } else { *b };
                        has[k] = true;
                    }
                    let mut best: Option<usize> = None;
                    for k in 0..self.n_out {
                        if has[k] && best.is_none_or(|b| acc[k] > acc[b]) {
                            best = Some(k);
                        }
                    }
                    self.transform(acc, out);
                    return best.map_or(labels[0], |b| labels[b]);
                }
                self.finish_binary(acc, has, out, labels, *binary_case, *all_positive)
            }
        }
    }

    fn finish_binary(
        &self,
        acc: &mut [f32],
        has: &mut [bool],
        out: &mut [f32],
        labels: &[i64],
        binary_case: bool,
        all_positive: bool,
    ) -> i64 {
        let mut two = true;
        let mut add_second = -1;
        match self.base.len() {
            2 if has[1] => {
                // As ONNX Runtime does: class 1's score is base 1 plus class 0's sum.
                acc[1] = self.base[1] + acc[0];
                acc[0] = -acc[1];
            }
            2 => {
                acc[1] += self.base[1];
                acc[0] += self.base[0];
            }
            1 => {
                acc[0] += self.base[0];
                two = has[1];
            }
            _ => {
                add_second = 3;
                two = has[1];
            }
        }
        let (s1, h1) = if two && has[1] { (acc[1], true) } else { (0.0, false) };
        let pos = if h1 {
            s1
        } else if has[0] {
            acc[0]
        } else {
            0.0
        };
        let label = if binary_case {
            let (a, l) = match (all_positive, all_positive && pos > 0.5, pos > 0.0) {
                (true, true, _) => (0, labels[1]),
                (true, false, _) => (1, labels[0]),
                (false, _, true) => (2, labels[1]),
                (false, _, false) => (3, labels[0]),
            };
            add_second = a;
            l
        } else if pos > 0.0 {
            labels[1]
        } else {
            labels[0]
        };
        if two {
            self.transform(&acc[..2], out);
            return label;
        }
        let s = acc[0];
        match add_second {
            0 | 1 => {
                out[0] = 1.0 - s;
                out[1] = s;
            }
            _ if self.post == Post::Logistic => {
                out[0] = logistic(-s);
                out[1] = logistic(s);
            }
            _ => {
                out[0] = -s;
                out[1] = s;
            }
        }
        label
    }

    fn transform(&self, scores: &[f32], out: &mut [f32]) {
        if self.post == Post::Softmax {
            // ONNX Runtime's softmax: shifted by the maximum, summed in float.
            let max = scores.iter().copied().fold(-f32::MAX, f32::max);
            let mut sum = 0f32;
            for (o, &s) in out.iter_mut().zip(scores) {
                *o = (s - max).exp();
                sum += *o;
            }
            out.iter_mut().for_each(|o| *o /= sum);
            return;
        }
        for (o, &s) in out.iter_mut().zip(scores) {
            *o = match self.post {
                Post::Logistic => logistic(s),
                _ => s,
            };
        }
    }
}

/// ONNX Runtime's logistic: `1 / (1 + e^-|v|)`, mirrored for negative `v`, in float.
fn logistic(v: f32) -> f32 {
    let p = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - p } else { p }
}

/// Reads the node's attributes (`prefix` is `class` or `target`). `None` for anything this
/// evaluator does not follow exactly (double-precision tensors, other transforms, string labels).
fn build(node: &Node, prefix: &str) -> Option<Ensemble> {
    let ints = |name: &str| node.attr(name).map(|a| a.ints.clone());
    let floats = |name: &str| node.attr(name).map(|a| a.floats.clone());
    if node.attributes.iter().any(|a| a.name.ends_with("_as_tensor")) {
        return None;
    }
    let tree_ids = ints("nodes_treeids")?;
    let node_ids = ints("nodes_nodeids")?;
    let features = ints("nodes_featureids")?;
    let values = floats("nodes_values")?;
    let modes = node.attr("nodes_modes")?.strings.clone();
    let yes_ids = ints("nodes_truenodeids")?;
    let no_ids = ints("nodes_falsenodeids")?;
    let n = tree_ids.len();
    let missing = ints("nodes_missing_value_tracks_true").unwrap_or_else(|| vec![0; n]);
    if [node_ids.len(), features.len(), values.len(), modes.len(), yes_ids.len(), no_ids.len(), missing.len()]
        .iter()
        .any(|&l| l != n)
    {
        return None;
    }
    let index: HashMap<(i64, i64), u32> =
        tree_ids.iter().zip(&node_ids).enumerate().map(|(i, (&t, &id))| ((t, id), i as u32)).collect();
    let mut nodes = Vec::with_capacity(n);
    let mut is_child = vec![false; n];
    for i in 0..n {
        let mode = Mode::parse(&modes[i])?;
        let (yes, no) = if mode == Mode::Leaf {
            (0, 0)
        } else {
            let y = *index.get(&(tree_ids[i], yes_ids[i]))?;
            let f = *index.get(&(tree_ids[i], no_ids[i]))?;
            is_child[y as usize] = true;
            is_child[f as usize] = true;
            (y, f)
        };
        let feature = u32::try_from(features[i]).ok()?;
        nodes.push(TreeNode {
            mode,
            feature,
            value: values[i],
            missing_true: missing[i] != 0,
            yes,
            no,
            w_start: 0,
            w_end: 0,
        });
    }
    let mut roots: BTreeMap<i64, u32> = BTreeMap::new();
    for i in 0..n {
        if !is_child[i] && roots.insert(tree_ids[i], i as u32).is_some() {
            return None; // two roots in one tree
        }
    }
    let (w_trees, w_nodes) = (ints(&format!("{prefix}_treeids"))?, ints(&format!("{prefix}_nodeids"))?);
    let (w_ids, w_values) = (ints(&format!("{prefix}_ids"))?, floats(&format!("{prefix}_weights"))?);
    if [w_nodes.len(), w_ids.len(), w_values.len()].iter().any(|&l| l != w_trees.len()) {
        return None;
    }
    let mut per_leaf: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    for k in 0..w_trees.len() {
        let at = *index.get(&(w_trees[k], w_nodes[k]))? as usize;
        per_leaf[at].push((u32::try_from(w_ids[k]).ok()?, w_values[k]));
    }
    let mut weights = Vec::with_capacity(w_trees.len());
    for (i, ws) in per_leaf.into_iter().enumerate() {
        nodes[i].w_start = weights.len() as u32;
        weights.extend(ws);
        nodes[i].w_end = weights.len() as u32;
    }
    let post = match node.attr_str("post_transform").unwrap_or("NONE") {
        "NONE" => Post::None,
        "LOGISTIC" if prefix == "class" => Post::Logistic,
        "SOFTMAX" if prefix == "class" => Post::Softmax,
        _ => return None,
    };
    let base = floats("base_values").unwrap_or_default();
    let max_id = weights.iter().map(|&(k, _)| k as usize).max().unwrap_or(0);
    let (task, n_out) = if prefix == "class" {
        let labels = ints("classlabels_int64s").filter(|l| !l.is_empty())?;
        let weight_classes: std::collections::BTreeSet<u32> = weights.iter().map(|&(k, _)| k).collect();
        let all_positive = weights.iter().all(|&(_, v)| v >= 0.0);
        let binary_case = labels.len() == 2 && weight_classes.len() == 1;
        (Task::Classify { labels: labels.clone(), binary_case, all_positive }, labels.len())
    } else {
        let average = match node.attr_str("aggregate_function").unwrap_or("SUM") {
            "SUM" => false,
            "AVERAGE" => true,
            _ => return None,
        };
        let targets = node.attr("n_targets").and_then(|a| a.i).unwrap_or(1);
        (Task::Regress { average }, usize::try_from(targets).ok()?)
    };
    if max_id >= n_out || (n_out == 2 && matches!(task, Task::Classify { .. }) && base.len() > 2) {
        return None;
    }
    let max_feature = nodes.iter().filter(|n| n.mode != Mode::Leaf).map(|n| n.feature as usize).max().unwrap_or(0);
    let plain = nodes.iter().all(|n| n.mode == Mode::Leaf || (n.mode == Mode::Leq && !n.missing_true));
    Some(Ensemble {
        plain,
        nodes,
        roots: roots.into_values().collect(),
        weights,
        n_out,
        base,
        post,
        task,
        max_feature,
        label: false,
        scores: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Attribute;

    fn ints(name: &str, v: &[i64]) -> Attribute {
        Attribute { name: name.into(), ints: v.to_vec(), ..Attribute::default() }
    }

    fn floats(name: &str, v: &[f32]) -> Attribute {
        Attribute { name: name.into(), floats: v.to_vec(), ..Attribute::default() }
    }

    /// One stump on feature 1 (`x1 <= 0.5` → leaf 1, else leaf 2), NaN to the true side, as a
    /// regressor with the given leaf values.
    fn stump(missing_true: i64, leaves: [f32; 2]) -> Graph {
        let modes = Attribute {
            name: "nodes_modes".into(),
            strings: vec!["BRANCH_LEQ".into(), "LEAF".into(), "LEAF".into()],
            ..Attribute::default()
        };
        let node = Node {
            op_type: "TreeEnsembleRegressor".into(),
            domain: "ai.onnx.ml".into(),
            inputs: vec!["x".into()],
            outputs: vec!["y".into()],
            attributes: vec![
                ints("nodes_treeids", &[0, 0, 0]),
                ints("nodes_nodeids", &[0, 1, 2]),
                ints("nodes_featureids", &[1, 0, 0]),
                floats("nodes_values", &[0.5, 0.0, 0.0]),
                modes,
                ints("nodes_truenodeids", &[1, 0, 0]),
                ints("nodes_falsenodeids", &[2, 0, 0]),
                ints("nodes_missing_value_tracks_true", &[missing_true, 0, 0]),
                ints("target_treeids", &[0, 0]),
                ints("target_nodeids", &[1, 2]),
                ints("target_ids", &[0, 0]),
                floats("target_weights", &leaves),
                floats("base_values", &[10.0]),
            ],
        };
        Graph { nodes: vec![node], ..Graph::default() }
    }

    fn predict(g: &Graph, x: &[f32]) -> Vec<f64> {
        let e = Ensemble::from_graph(g, "x", None, Some("y")).expect("taken natively");
        e.run(x, x.len() / 2, 2, 2).unwrap().scores.unwrap().values
    }

    #[test]
    fn branches_add_the_base_value_and_send_missing_values_where_the_model_says() {
        let g = stump(1, [1.0, 2.0]);
        assert_eq!(predict(&g, &[0.0, 0.5, 0.0, 0.6, 0.0, f32::NAN]), [11.0, 12.0, 11.0]);
        let g = stump(0, [1.0, 2.0]);
        assert_eq!(predict(&g, &[0.0, f32::NAN]), [12.0], "NaN <= 0.5 is false");
    }

    #[test]
    fn rows_split_over_threads_keep_their_order() {
        let g = stump(0, [1.0, 2.0]);
        let x: Vec<f32> = (0..5000).flat_map(|i| [0.0, (i % 2) as f32]).collect();
        let want: Vec<f64> = (0..5000).map(|i| if i % 2 == 0 { 11.0 } else { 12.0 }).collect();
        assert_eq!(predict(&g, &x), want);
    }

    #[test]
    fn graphs_it_does_not_follow_exactly_are_left_to_onnx_runtime() {
        let mut g = stump(0, [1.0, 2.0]);
        g.nodes[0].attributes.push(Attribute {
            name: "post_transform".into(),
            s: Some("PROBIT".into()),
            ..Default::default()
        });
        assert!(Ensemble::from_graph(&g, "x", None, Some("y")).is_none(), "PROBIT");
        let g = stump(0, [1.0, 2.0]);
        assert!(Ensemble::from_graph(&g, "other", None, Some("y")).is_none(), "not fed by the input");
        let mut g = stump(0, [1.0, 2.0]);
        g.nodes[0].attributes[5] = ints("nodes_truenodeids", &[7, 0, 0]);
        assert!(Ensemble::from_graph(&g, "x", None, Some("y")).is_none(), "a child that does not exist");
        let g = stump(0, [1.0, 2.0]);
        let e = Ensemble::from_graph(&g, "x", None, Some("y")).unwrap();
        assert!(e.run(&[0.0], 1, 1, 1).is_none(), "rows narrower than the features it reads");
    }
}
