//! Gradient-boosted decision trees with histogram splits (second-order, like XGBoost/LightGBM):
//! squared error for regression, log loss for binary classification, softmax (one tree per class
//! and round) for more classes.
//!
//! Features are bucketed into at most `bins` bins per feature. A bin's upper edge is an actual
//! float32 value of the data, so the split `bin <= b` on the training data is exactly
//! `x <= edge` in float32 — what the ONNX TreeEnsembleRegressor evaluates.

use dagrun_onnx_writer::{Tree, TreeEnsemble, TreeHead, TreeNode};

use crate::data::Dataset;
use crate::rng::SplitMix64;

/// Training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GbdtSettings {
    /// Boosting rounds.
    pub rounds: u32,
    /// Maximum tree depth (0 = a single leaf).
    pub depth: u32,
    /// Shrinkage applied to each leaf.
    pub learning_rate: f64,
    /// L2 penalty on leaf values (XGBoost's lambda).
    pub l2: f64,
    /// Minimum (sampled) rows in a leaf.
    pub min_leaf: u32,
    /// Maximum bins per feature (2..=256).
    pub bins: u32,
    /// Fraction of rows sampled (without replacement, per round).
    pub subsample: f64,
    /// Seed of the row sampling.
    pub seed: u64,
}

/// What the loss is.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// Squared error.
    Regression,
    /// Log loss; `class_of[i]` is row `i`'s class index among `classes`.
    Classification {
        /// Class index per row.
        class_of: Vec<usize>,
        /// Class labels, sorted.
        classes: Vec<i64>,
    },
}

/// Bucketed features: `bins[i * f + j]` is row `i`'s bin of feature `j`; bin `b` of feature `j`
/// holds values `<= edges[j][b]` (and greater than the previous edge); the last bin has no edge.
struct Binned {
    bins: Vec<u8>,
    edges: Vec<Vec<f32>>,
    /// Histogram offset of each feature.
    offsets: Vec<usize>,
    total_bins: usize,
}

fn bin_features(d: &Dataset, max_bins: usize) -> Binned {
    let (n, f) = (d.rows(), d.n_features());
    let mut edges = Vec::with_capacity(f);
    let mut column = vec![0.0f32; n];
    for j in 0..f {
        for (i, c) in column.iter_mut().enumerate() {
            *c = d.x[i * f + j] + 0.0; // -0.0 → 0.0
        }
        column.sort_unstable_by(f32::total_cmp);
        let mut distinct = column.clone();
        distinct.dedup();
        let e: Vec<f32> = if distinct.len() <= max_bins {
            distinct[..distinct.len() - 1].to_vec()
        } else {
            // Quantile edges over the sorted values (duplicates count), deduplicated; the largest
            // value never is an edge, so every edge leaves something above it.
            let last = distinct[distinct.len() - 1];
            let mut e: Vec<f32> = (1..max_bins).map(|b| column[b * n / max_bins - 1]).filter(|&v| v < last).collect();
            e.dedup();
            e
        };
        edges.push(e);
    }
    let mut offsets = Vec::with_capacity(f);
    let mut total_bins = 0;
    for e in &edges {
        offsets.push(total_bins);
        total_bins += e.len() + 1;
    }
    let mut bins = vec![0u8; n * f];
    for (k, &x) in d.x.iter().enumerate() {
        let e = &edges[k % f];
        // The first edge >= x.
        bins[k] = e.partition_point(|&edge| edge < x) as u8;
    }
    Binned { bins, edges, offsets, total_bins }
}

/// Gradient, hessian and row count per bin.
#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    g: f64,
    h: f64,
    n: u32,
}

struct Grower<'a> {
    binned: &'a Binned,
    f: usize,
    grad: &'a [f64],
    hess: &'a [f64],
    settings: &'a GbdtSettings,
    nodes: Vec<TreeNode>,
    scratch: Vec<u32>,
    /// Each leaf's value and its rows (a range of the row array being partitioned).
    leaves: Vec<(f32, std::ops::Range<usize>)>,
}

struct Split {
    feature: usize,
    bin: usize,
    gain: f64,
}

impl Grower<'_> {
    fn histogram(&self, rows: &[u32]) -> Vec<Bin> {
        let mut hist = vec![Bin::default(); self.binned.total_bins];
        let f = self.f;
        for &r in rows {
            let r = r as usize;
            let (g, h) = (self.grad[r], self.hess[r]);
            let row_bins = &self.binned.bins[r * f..(r + 1) * f];
            for (&b, &off) in row_bins.iter().zip(&self.binned.offsets) {
                let bin = &mut hist[off + usize::from(b)];
                bin.g += g;
                bin.h += h;
                bin.n += 1;
            }
        }
        hist
    }

    fn score(&self, g: f64, h: f64) -> f64 {
        g * g / (h + self.settings.l2)
    }

    fn best_split(&self, hist: &[Bin], total: Bin) -> Option<Split> {
        let min_leaf = self.settings.min_leaf.max(1);
        let parent = self.score(total.g, total.h);
        let mut best: Option<Split> = None;
        for j in 0..self.f {
            let off = self.binned.offsets[j];
            let edges = self.binned.edges[j].len();
            let mut left = Bin::default();
            for b in 0..edges {
                let bin = hist[off + b];
                left.g += bin.g;
                left.h += bin.h;
                left.n += bin.n;
                let right_n = total.n - left.n;
                if left.n < min_leaf {
                    continue;
                }
                if right_n < min_leaf {
                    break;
                }
                let (rg, rh) = (total.g - left.g, total.h - left.h);
                if left.h < 1e-6 || rh < 1e-6 {
                    continue;
                }
                let gain = self.score(left.g, left.h) + self.score(rg, rh) - parent;
                if gain > 1e-9 && best.as_ref().is_none_or(|s| gain > s.gain) {
                    best = Some(Split { feature: j, bin: b, gain });
                }
            }
        }
        best
    }

    /// Grows the subtree of `rows` (whose histogram is `hist`; `start` is the position of
    /// `rows` in the whole row array); returns its node index.
    fn grow(&mut self, rows: &mut [u32], start: usize, hist: Vec<Bin>, depth: u32) -> u32 {
        // Every row falls in one bin of feature 0 (whose bins come first).
        let total = hist[..=self.binned.edges[0].len()].iter().fold(Bin::default(), |a, b| Bin {
            g: a.g + b.g,
            h: a.h + b.h,
            n: a.n + b.n,
        });
        let index = self.nodes.len() as u32;
        let split = if depth < self.settings.depth { self.best_split(&hist, total) } else { None };
        let Some(Split { feature, bin, .. }) = split else {
            let value = (-self.settings.learning_rate * total.g / (total.h + self.settings.l2)) as f32;
            self.leaves.push((value, start..start + rows.len()));
            self.nodes.push(TreeNode::Leaf { value });
            return index;
        };
        // Stable, branch-free partition: rows with bin <= `bin` first.
        let f = self.f;
        let bins = &self.binned.bins;
        self.scratch.resize(rows.len(), 0);
        let (mut l, mut m) = (0, 0);
        for k in 0..rows.len() {
            let r = rows[k];
            let left = usize::from(usize::from(bins[r as usize * f + feature]) <= bin);
            rows[l] = r; // l <= k: never a row not yet read
            self.scratch[m] = r;
            l += left;
            m += 1 - left;
        }
        rows[l..].copy_from_slice(&self.scratch[..m]);
        let (left_rows, right_rows) = rows.split_at_mut(l);
        // Histogram of the smaller child by scanning, the larger one by subtraction.
        let (left_hist, right_hist) = if left_rows.len() <= right_rows.len() {
            let small = self.histogram(left_rows);
            let large = subtract(hist, &small);
            (small, large)
        } else {
            let small = self.histogram(right_rows);
            let large = subtract(hist, &small);
            (large, small)
        };
        self.nodes.push(TreeNode::Branch {
            feature: feature as u32,
            threshold: self.binned.edges[feature][bin],
            left: 0,
            right: 0,
        });
        let left = self.grow(left_rows, start, left_hist, depth + 1);
        let right = self.grow(right_rows, start + l, right_hist, depth + 1);
        if let TreeNode::Branch { left: l, right: r, .. } = &mut self.nodes[index as usize] {
            *l = left;
            *r = right;
        }
        index
    }
}

fn subtract(mut parent: Vec<Bin>, child: &[Bin]) -> Vec<Bin> {
    for (p, c) in parent.iter_mut().zip(child) {
        p.g -= c.g;
        p.h -= c.h;
        p.n -= c.n;
    }
    parent
}

/// The leaf value of a training row, walking the tree on its bins (the same path as `x <= edge`).
fn leaf_of(tree: &[TreeNode], binned: &Binned, f: usize, row: usize) -> f32 {
    let mut i = 0;
    loop {
        match tree[i] {
            TreeNode::Branch { feature, threshold, left, right } => {
                let j = feature as usize;
                let b = usize::from(binned.bins[row * f + j]);
                let goes_left = b < binned.edges[j].len() && binned.edges[j][b] <= threshold;
                i = if goes_left { left as usize } else { right as usize };
            }
            TreeNode::Leaf { value } => return value,
        }
    }
}

fn sigmoid(t: f64) -> f64 {
    1.0 / (1.0 + libm::exp(-t))
}

/// Trains the ensemble. `progress(done, total)` is called after each round.
pub fn train(d: &Dataset, objective: &Objective, s: &GbdtSettings, progress: &mut dyn FnMut(u64, u64)) -> TreeEnsemble {
    let (n, f) = (d.rows(), d.n_features());
    let binned = bin_features(d, s.bins.clamp(2, 256) as usize);
    let (k, base_values, head) = match objective {
        Objective::Regression => {
            let mean = d.y.iter().sum::<f64>() / n as f64;
            (1, vec![mean as f32], TreeHead::Regression)
        }
        Objective::Classification { class_of, classes } => {
            let mut counts = vec![0usize; classes.len()];
            class_of.iter().for_each(|&c| counts[c] += 1);
            let prior = |c: usize| (counts[c] as f64 / n as f64).clamp(1e-12, 1.0 - 1e-12);
            let base = if classes.len() == 2 {
                vec![libm::log(prior(1) / prior(0)) as f32]
            } else {
                (0..classes.len()).map(|c| libm::log(prior(c)) as f32).collect()
            };
            (base.len(), base, TreeHead::Classification { classes: classes.clone() })
        }
    };
    // Current raw scores, row-major n × k.
    let mut scores: Vec<f64> = (0..n).flat_map(|_| base_values.iter().map(|&b| f64::from(b))).collect();
    let mut grad = vec![0.0f64; n];
    let mut hess = vec![0.0f64; n];
    let mut rng = SplitMix64::new(s.seed);
    let mut trees = Vec::with_capacity(s.rounds as usize * k);
    let mut probs = vec![0.0f64; k];
    for round in 0..s.rounds {
        let mut rows: Vec<u32> = if s.subsample < 1.0 {
            (0..n as u32).filter(|_| rng.next_f64() < s.subsample).collect()
        } else {
            (0..n as u32).collect()
        };
        if rows.is_empty() {
            rows.push(rng.below(n as u64) as u32);
        }
        // The gradients of all targets come from the scores at the start of the round.
        let mut all_grad = vec![0.0f64; if k > 1 { n * k } else { 0 }];
        let mut all_hess = vec![0.0f64; all_grad.len()];
        if k > 1 {
            let Objective::Classification { class_of, .. } = objective else { unreachable!() };
            for i in 0..n {
                let row = &scores[i * k..(i + 1) * k];
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let mut total = 0.0;
                for (p, &sc) in probs.iter_mut().zip(row) {
                    *p = libm::exp(sc - max);
                    total += *p;
                }
                for (c, p) in probs.iter().enumerate() {
                    let p = p / total;
                    all_grad[i * k + c] = p - if class_of[i] == c { 1.0 } else { 0.0 };
                    all_hess[i * k + c] = (p * (1.0 - p)).max(1e-16);
                }
            }
        }
        for target in 0..k {
            match objective {
                Objective::Regression => {
                    for i in 0..n {
                        grad[i] = scores[i] - d.y[i];
                        hess[i] = 1.0;
                    }
                }
                Objective::Classification { class_of, .. } if k == 1 => {
                    for i in 0..n {
                        let p = sigmoid(scores[i]);
                        grad[i] = p - class_of[i] as f64;
                        hess[i] = (p * (1.0 - p)).max(1e-16);
                    }
                }
                Objective::Classification { .. } => {
                    for i in 0..n {
                        grad[i] = all_grad[i * k + target];
                        hess[i] = all_hess[i * k + target];
                    }
                }
            }
            let mut grower = Grower {
                binned: &binned,
                f,
                grad: &grad,
                hess: &hess,
                settings: s,
                nodes: Vec::new(),
                scratch: Vec::new(),
                leaves: Vec::new(),
            };
            let hist = grower.histogram(&rows);
            let mut tree_rows = rows.clone();
            grower.grow(&mut tree_rows, 0, hist, 0);
            if tree_rows.len() == n {
                // Every row was in the tree: the partition says which leaf each one reached.
                for (value, range) in &grower.leaves {
                    for &r in &tree_rows[range.clone()] {
                        scores[r as usize * k + target] += f64::from(*value);
                    }
                }
            } else {
                for i in 0..n {
                    scores[i * k + target] += f64::from(leaf_of(&grower.nodes, &binned, f, i));
                }
            }
            trees.push(Tree { target: target as u32, nodes: grower.nodes });
        }
        progress(u64::from(round + 1), u64::from(s.rounds));
    }
    TreeEnsemble { n_features: f, base_values, trees, head }
}

#[cfg(test)]
mod tests {
    use dagrun_onnx_writer::Predictions;

    use super::*;

    fn settings() -> GbdtSettings {
        GbdtSettings {
            rounds: 30,
            depth: 3,
            learning_rate: 0.3,
            l2: 1.0,
            min_leaf: 5,
            bins: 16,
            subsample: 1.0,
            seed: 1,
        }
    }

    fn xor_data() -> Dataset {
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut rng = SplitMix64::new(3);
        for _ in 0..800 {
            let (a, b) = (rng.next_f64() as f32 * 2.0 - 1.0, rng.next_f64() as f32 * 2.0 - 1.0);
            x.extend([a, b, rng.next_f64() as f32]);
            y.push(if (a > 0.0) != (b > 0.0) { 1.0 } else { 0.0 });
        }
        Dataset { features: vec!["a".into(), "b".into(), "noise".into()], x, y }
    }

    #[test]
    fn edges_are_data_values() {
        let d = xor_data();
        let b = bin_features(&d, 16);
        for (j, e) in b.edges.iter().enumerate() {
            assert!(e.len() <= 15 && e.windows(2).all(|w| w[0] < w[1]));
            for &edge in e {
                assert!((0..d.rows()).any(|i| d.row(i)[j] == edge));
            }
        }
        for i in 0..d.rows() {
            for j in 0..3 {
                let bin = usize::from(b.bins[i * 3 + j]);
                let x = d.row(i)[j];
                assert!(bin == b.edges[j].len() || x <= b.edges[j][bin]);
                assert!(bin == 0 || x > b.edges[j][bin - 1]);
            }
        }
    }

    #[test]
    fn learns_xor_and_matches_binned_scores() {
        let d = xor_data();
        let class_of: Vec<usize> = d.y.iter().map(|&y| y as usize).collect();
        let obj = Objective::Classification { class_of: class_of.clone(), classes: vec![0, 1] };
        let m = train(&d, &obj, &settings(), &mut |_, _| {});
        assert_eq!(m.trees.len(), 30);
        let Predictions::Classification { labels, .. } = m.predict(&d.x) else { panic!() };
        let correct = labels.iter().zip(&class_of).filter(|(l, c)| **l == **c as i64).count();
        assert!(correct > 760, "{correct}/800");
        // The float32 walk of the model equals the binned walk of training.
        let binned = bin_features(&d, 16);
        for tree in &m.trees {
            for i in 0..d.rows() {
                assert_eq!(tree.leaf_value(d.row(i)), leaf_of(&tree.nodes, &binned, 3, i));
            }
        }
        assert_eq!(m, train(&d, &obj, &settings(), &mut |_, _| {}), "deterministic");
    }

    #[test]
    fn regression_and_multiclass() {
        let d = xor_data();
        let mut r = d.clone();
        r.y = (0..d.rows()).map(|i| f64::from(d.row(i)[0]) * 3.0 + f64::from(d.row(i)[1])).collect();
        let m = train(&r, &Objective::Regression, &settings(), &mut |_, _| {});
        let Predictions::Regression(p) = m.predict(&r.x) else { panic!() };
        let mse = p.iter().zip(&r.y).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / p.len() as f64;
        assert!(mse < 0.05, "{mse}");

        let class_of: Vec<usize> = (0..d.rows()).map(|i| ((d.row(i)[0] + 1.0) * 1.5) as usize).collect();
        let obj = Objective::Classification { class_of: class_of.clone(), classes: vec![0, 1, 2] };
        let s = GbdtSettings { subsample: 0.8, ..settings() };
        let m = train(&d, &obj, &s, &mut |_, _| {});
        assert_eq!(m.trees.len(), 90);
        let Predictions::Classification { labels, .. } = m.predict(&d.x) else { panic!() };
        let correct = labels.iter().zip(&class_of).filter(|(l, c)| **l == **c as i64).count();
        assert!(correct > 770, "{correct}/800");
    }
}
