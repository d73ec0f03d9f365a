//! Linear models on standardised features: ridge linear regression (closed form) and L2-regularised
//! logistic regression (binary or multinomial) by full-batch gradient descent.

use dagrun_onnx_writer::{LinearRegression, LogisticRegression, Standardizer};
use dagrun_sdk::Error;

use crate::data::Dataset;

/// Per-feature mean and standard deviation (population), rounded to f32 as stored in the graph.
/// A constant feature gets std 1.
pub fn fit_standardizer(d: &Dataset) -> Standardizer {
    let (n, f) = (d.rows(), d.n_features());
    let mut mean = vec![0.0f64; f];
    for i in 0..n {
        for (m, &x) in mean.iter_mut().zip(d.row(i)) {
            *m += f64::from(x);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0.0f64; f];
    for i in 0..n {
        for ((v, &x), m) in var.iter_mut().zip(d.row(i)).zip(&mean) {
            let c = f64::from(x) - m;
            *v += c * c;
        }
    }
    let std = var
        .iter()
        .map(|v| {
            let s = (v / n as f64).sqrt() as f32;
            if s.is_finite() && s > 1e-30 { s } else { 1.0 }
        })
        .collect();
    Standardizer { mean: mean.iter().map(|&m| m as f32).collect(), std }
}

/// The standardised features, row-major, as the graph computes them (float32; half the memory
/// traffic of f64 per gradient descent epoch, and exactly the values the graph sees).
fn standardized(d: &Dataset, s: &Standardizer) -> Vec<f32> {
    let f = d.n_features();
    d.x.iter().enumerate().map(|(k, &x)| s.apply(k % f, x)).collect()
}

/// Solves `a · x = b` for a symmetric positive definite `a` (`n × n`, row-major) by Cholesky.
fn cholesky_solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d.is_nan() || d <= 1e-12 * a[j * n + j].abs().max(1e-300) {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    Some(b)
}

/// Ridge regression in closed form: minimises `mean((z·w + b - y)²) + l2·|w|²` over standardised
/// features `z` (the intercept is not penalised).
pub fn linear_regression(d: &Dataset, l2: f64) -> Result<LinearRegression, Error> {
    let standardizer = fit_standardizer(d);
    let z = standardized(d, &standardizer);
    let (n, f) = (d.rows(), d.n_features());
    let m = f + 1; // the last unknown is the intercept
    let mut a = vec![0.0f64; m * m];
    let mut b = vec![0.0f64; m];
    for (i, row) in z.chunks(f).enumerate() {
        let y = d.y[i];
        for j in 0..f {
            let zj = f64::from(row[j]);
            for k in 0..=j {
                a[j * m + k] += zj * f64::from(row[k]);
            }
            a[f * m + j] += zj;
            b[j] += zj * y;
        }
        b[f] += y;
    }
    a[f * m + f] = n as f64;
    for j in 0..m {
        for k in 0..j {
            a[k * m + j] = a[j * m + k];
        }
    }
    a.iter_mut().for_each(|v| *v /= n as f64);
    b.iter_mut().for_each(|v| *v /= n as f64);
    for j in 0..f {
        a[j * m + j] += l2;
    }
    let w = cholesky_solve(a, b).ok_or_else(|| {
        Error::failed("linear regression: the features are linearly dependent (set `l2` > 0 or drop features)")
    })?;
    Ok(LinearRegression { standardizer, coef: w[..f].iter().map(|&v| v as f32).collect(), intercept: w[f] as f32 })
}

/// How logistic regression training went.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticReport {
    /// Epochs run (fewer than asked when the gradient vanished).
    pub epochs: u32,
    /// Regularised training loss of the final weights.
    pub loss: f64,
}

/// Rows per block of a gradient descent epoch.
const BLOCK: usize = 256;

/// `a · b` with four partial sums (no serial dependency chain; a fixed order, so deterministic).
fn dot(a: &[f32], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for l in 0..4 {
            acc[l] += f64::from(x[l]) * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += f64::from(*x) * y;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `y += r · x`.
fn axpy(r: f64, x: &[f32], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += r * f64::from(*xi);
    }
}

/// Scores of one row: `b_k + row · w_k` for each class `k` (`w` is `K × F`, class-major).
fn scores(row: &[f32], w: &[f64], b: &[f64], out: &mut [f64]) {
    let f = row.len();
    for ((o, wk), bk) in out.iter_mut().zip(w.chunks_exact(f)).zip(b) {
        *o = bk + dot(row, wk);
    }
}

/// Turns scores into softmax probabilities in place.
fn softmax(s: &mut [f64]) {
    let max = s.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    let mut total = 0.0;
    for v in s.iter_mut() {
        *v = libm::exp(*v - max);
        total += *v;
    }
    s.iter_mut().for_each(|v| *v /= total);
}

/// `log(sum(exp(s)))`.
fn log_sum_exp(s: &[f64]) -> f64 {
    let max = s.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    max + libm::log(s.iter().map(|v| libm::exp(v - max)).sum::<f64>())
}

/// `sigmoid(t)` without overflow.
fn sigmoid(t: f64) -> f64 {
    let e = libm::exp(-t.abs());
    if t >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) }
}

/// Mean log loss plus `l2/2·|W|²`.
fn logistic_loss(z: &[f32], f: usize, class_of: &[usize], w: &[f64], b: &[f64], l2: f64) -> f64 {
    let k = b.len();
    let mut s = vec![0.0f64; k];
    let mut loss = 0.0;
    for (row, &c) in z.chunks_exact(f).zip(class_of) {
        scores(row, w, b, &mut s);
        loss += if k == 1 {
            // log(1 + e^t) - y·t
            let t = s[0];
            t.max(0.0) + libm::log1p(libm::exp(-t.abs())) - if c == 1 { t } else { 0.0 }
        } else {
            log_sum_exp(&s) - s[c]
        };
    }
    loss / class_of.len() as f64 + 0.5 * l2 * w.iter().map(|v| v * v).sum::<f64>()
}

/// Logistic regression by full-batch gradient descent on standardised features, weights starting
/// at 0: minimises `mean(log loss) + l2/2·|W|²`. Binary (2 classes): one score column, the
/// log-odds of `classes[1]`; more classes: softmax over one column per class. `class_of[i]` is
/// the class index of row `i`. Stops early when every gradient component is below 1e-7.
pub fn logistic_regression(
    d: &Dataset,
    class_of: &[usize],
    classes: &[i64],
    epochs: u32,
    learning_rate: f64,
    l2: f64,
    progress: &mut dyn FnMut(u64, u64),
) -> (LogisticRegression, LogisticReport) {
    let standardizer = fit_standardizer(d);
    let z = standardized(d, &standardizer);
    let (n, f) = (d.rows(), d.n_features());
    let k = if classes.len() == 2 { 1 } else { classes.len() };
    let mut w = vec![0.0f64; k * f]; // K × F, class-major
    let mut b = vec![0.0f64; k];
    let mut gw = vec![0.0f64; k * f];
    let mut gb = vec![0.0f64; k];
    let mut residuals = vec![0.0f64; BLOCK * k];
    let inv_n = 1.0 / n as f64;
    let mut epochs_run = 0;
    for epoch in 0..epochs {
        gw.iter_mut().for_each(|g| *g = 0.0);
        gb.iter_mut().for_each(|g| *g = 0.0);
        // Blocks of rows in three passes (scores, residuals, gradient sums): the exps of a block
        // are independent, so they overlap instead of forming one long dependency chain. The
        // arithmetic and its order per row are those of a plain row-by-row loop.
        for (rows, classes) in z.chunks(BLOCK * f).zip(class_of.chunks(BLOCK)) {
            let m = classes.len();
            let res = &mut residuals[..m * k];
            for (row, out) in rows.chunks_exact(f).zip(res.chunks_exact_mut(k)) {
                scores(row, &w, &b, out);
            }
            for (out, &c) in res.chunks_exact_mut(k).zip(classes) {
                if k == 1 {
                    out[0] = sigmoid(out[0]) - c as f64;
                } else {
                    softmax(out);
                    out[c] -= 1.0;
                }
            }
            for (row, out) in rows.chunks_exact(f).zip(res.chunks_exact(k)) {
                for ((r, gk), g0) in out.iter().zip(gw.chunks_exact_mut(f)).zip(gb.iter_mut()) {
                    axpy(*r, row, gk);
                    *g0 += r;
                }
            }
        }
        let mut largest = 0.0f64;
        for (g, wj) in gw.iter_mut().zip(&w) {
            *g = *g * inv_n + l2 * wj;
            largest = largest.max(g.abs());
        }
        for g in gb.iter_mut() {
            *g *= inv_n;
            largest = largest.max(g.abs());
        }
        epochs_run = epoch + 1;
        if largest < 1e-7 {
            break;
        }
        for (wj, g) in w.iter_mut().zip(&gw) {
            *wj -= learning_rate * g;
        }
        for (bj, g) in b.iter_mut().zip(&gb) {
            *bj -= learning_rate * g;
        }
        if epoch % 10 == 9 {
            progress(u64::from(epoch + 1), u64::from(epochs));
        }
    }
    let loss = logistic_loss(&z, f, class_of, &w, &b, l2);
    // The graph's MatMul wants F × K.
    let coef = (0..f * k).map(|idx| w[(idx % k) * f + idx / k] as f32).collect();
    let model = LogisticRegression {
        standardizer,
        coef,
        intercept: b.iter().map(|&v| v as f32).collect(),
        classes: classes.to_vec(),
    };
    (model, LogisticReport { epochs: epochs_run, loss })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(x: Vec<f32>, f: usize, y: Vec<f64>) -> Dataset {
        Dataset { features: (0..f).map(|j| format!("x{j}")).collect(), x, y }
    }

    #[test]
    fn standardizer() {
        let d = dataset(vec![1.0, 5.0, 3.0, 5.0], 2, vec![0.0, 0.0]);
        let s = fit_standardizer(&d);
        assert_eq!(s.mean, [2.0, 5.0]);
        assert_eq!(s.std, [1.0, 1.0], "constant feature gets std 1");
    }

    #[test]
    fn cholesky() {
        let x = cholesky_solve(vec![4.0, 2.0, 2.0, 3.0], vec![2.0, 5.0]).unwrap();
        assert!((x[0] + 0.5).abs() < 1e-12 && (x[1] - 2.0).abs() < 1e-12);
        assert!(cholesky_solve(vec![1.0, 1.0, 1.0, 1.0], vec![1.0, 1.0]).is_none());
    }

    #[test]
    fn linear_regression_recovers_coefficients() {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let (a, b) = ((i % 17) as f32, (i % 5) as f32 * 0.5);
            x.extend([a, b]);
            y.push(3.0 * f64::from(a) - 2.0 * f64::from(b) + 1.0);
        }
        let d = dataset(x, 2, y);
        let m = linear_regression(&d, 0.0).unwrap();
        let s = &m.standardizer;
        let raw = |j: usize| f64::from(m.coef[j]) / f64::from(s.std[j]);
        assert!((raw(0) - 3.0).abs() < 1e-4 && (raw(1) + 2.0).abs() < 1e-4, "{m:?}");
        let dup = dataset(vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0], 2, vec![1.0, 2.0, 3.0]);
        assert!(linear_regression(&dup, 0.0).is_err());
        assert!(linear_regression(&dup, 1e-3).is_ok());
    }

    #[test]
    fn logistic_separates() {
        let mut x = Vec::new();
        let mut class_of = Vec::new();
        for i in 0..300 {
            let v = (i as f32 - 150.0) / 10.0;
            x.extend([v, (i % 7) as f32]);
            class_of.push(if v > 3.0 {
                2
            } else if v > -3.0 {
                1
            } else {
                0
            });
        }
        let y = class_of.iter().map(|&c| c as f64).collect();
        let d = dataset(x.clone(), 2, y);
        let (m, r) = logistic_regression(&d, &class_of, &[0, 1, 2], 500, 1.0, 0.0, &mut |_, _| {});
        assert_eq!(r.epochs, 500);
        let dagrun_onnx_writer::Predictions::Classification { labels, .. } = m.predict(&d.x) else { panic!() };
        let correct = labels.iter().zip(&class_of).filter(|(l, c)| **l == **c as i64).count();
        assert!(correct >= 285, "{correct}/300");

        let binary: Vec<usize> = class_of.iter().map(|&c| usize::from(c == 2)).collect();
        let (m, r) = logistic_regression(&d, &binary, &[0, 1], 300, 1.0, 1e-3, &mut |_, _| {});
        assert_eq!(m.intercept.len(), 1);
        assert!(r.loss < 0.2, "{r:?}");
    }
}
