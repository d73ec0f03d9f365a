//! The measures of one column, computed once from both sides' sorted values (numeric) or
//! frequency tables (categorical): every measure always, except the chi-square of binned
//! numbers (only when it decides).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use dagrun_contracts::drift::Method;

use crate::stats::{self, Chi2};

/// Whether the sorted values hold at most `limit` distinct values.
pub fn few_distinct(sorted: &[f64], limit: usize) -> bool {
    let mut distinct = 0;
    let mut previous = None;
    for &v in sorted {
        if previous != Some(v) {
            distinct += 1;
            if distinct > limit {
                return false;
            }
            previous = Some(v);
        }
    }
    true
}

/// Each distinct value of a sorted sample with its count.
pub fn runs(sorted: &[f64]) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = Vec::new();
    for &v in sorted {
        match out.last_mut() {
            Some((last, n)) if *last == v => *n += 1,
            _ => out.push((v, 1)),
        }
    }
    out
}

/// A numeric column's measures.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericMeasures {
    /// KS statistic.
    pub ks: f64,
    /// KS p-value (as `ks_2samp`: exact up to 10,000 values a side, else asymptotic).
    pub ks_pvalue: f64,
    /// Wasserstein-1 distance.
    pub wasserstein: f64,
    /// The reference's population standard deviation.
    pub reference_std: f64,
    /// PSI over the reference-quantile bins.
    pub psi: f64,
    /// Jensen–Shannon distance over the same bins.
    pub js: f64,
    /// Chi-square over the same bins (only when chi-square decides).
    pub chi2: Option<Chi2>,
}

impl NumericMeasures {
    /// Measures two sorted, finite, non-empty samples; `method` says whether the binned
    /// chi-square is needed. KS (with its p-value) and Wasserstein come from one merge of the
    /// two samples ([`stats::compare`]), the costliest step after sorting.
    pub fn compute(reference: &[f64], current: &[f64], method: Method, bins: usize) -> NumericMeasures {
        let both = stats::compare(reference, current);
        let edges = stats::quantile_edges(reference, bins);
        let r_bins = stats::bin_counts(reference, &edges);
        let c_bins = stats::bin_counts(current, &edges);
        let chi2 = (method == Method::ChiSquare).then(|| chi2_nonempty(&r_bins, &c_bins));
        NumericMeasures {
            ks: both.ks.statistic,
            ks_pvalue: both.ks.pvalue,
            wasserstein: both.wasserstein,
            reference_std: stats::std_dev(reference),
            psi: stats::psi(&r_bins, &c_bins),
            js: stats::js_distance(&r_bins, &c_bins),
            chi2,
        }
    }

    /// Wasserstein ÷ the reference's standard deviation; with a constant reference, 0 when the
    /// current sample is the same constant, else `None` (infinite).
    pub fn wasserstein_normed(&self) -> Option<f64> {
        if self.reference_std > 0.0 {
            Some(self.wasserstein / self.reference_std)
        } else if self.wasserstein == 0.0 {
            Some(0.0)
        } else {
            None
        }
    }

    /// Every measure computed, by its `drift.json` name (finite ones only).
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        m.insert("ks_statistic".into(), self.ks);
        m.insert("ks_p_value".into(), self.ks_pvalue);
        m.insert("wasserstein".into(), self.wasserstein);
        if let Some(w) = self.wasserstein_normed() {
            m.insert("wasserstein_normed".into(), w);
        }
        m.insert("psi".into(), self.psi);
        m.insert("jensen_shannon".into(), self.js);
        if let Some(c) = self.chi2 {
            m.insert("chi_square".into(), c.statistic);
            m.insert("chi_square_p_value".into(), c.pvalue);
        }
        m.retain(|_, v| v.is_finite());
        m
    }
}

/// Chi-square of two frequency tables, leaving out the categories (bins) empty on both sides;
/// a single category is no evidence of a difference: statistic 0, p-value 1 (as SciPy says of
/// a 2×1 table).
pub fn chi2_nonempty(reference: &[u64], current: &[u64]) -> Chi2 {
    let (r, c): (Vec<u64>, Vec<u64>) =
        reference.iter().zip(current).filter(|(r, c)| **r + **c > 0).map(|(r, c)| (*r, *c)).unzip();
    if r.len() < 2 {
        return Chi2 { statistic: 0.0, pvalue: 1.0, dof: 0 };
    }
    stats::chi2_contingency(&r, &c)
}

/// A category: text, or a number of a low-cardinality numeric column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Key<'a> {
    /// A text value.
    Text(&'a str),
    /// A number.
    Number(f64),
}

impl Key<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Key::Text(a), Key::Text(b)) => a.cmp(b),
            (Key::Number(a), Key::Number(b)) => a.total_cmp(b),
            (Key::Number(_), Key::Text(_)) => Ordering::Less,
            (Key::Text(_), Key::Number(_)) => Ordering::Greater,
        }
    }
}

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Text(s) => f.write_str(s),
            Key::Number(v) => write!(f, "{v}"),
        }
    }
}

/// Both sides' counts over the union of their categories, in category order.
#[derive(Debug, Clone, PartialEq)]
pub struct Contingency<'a> {
    /// The categories.
    pub keys: Vec<Key<'a>>,
    /// Reference counts.
    pub reference: Vec<u64>,
    /// Current counts.
    pub current: Vec<u64>,
}

impl<'a> Contingency<'a> {
    /// Merges two frequency tables sorted by key (categories counted 0 on a side are dropped).
    pub fn merge(reference: &[(Key<'a>, u64)], current: &[(Key<'a>, u64)]) -> Contingency<'a> {
        let mut out = Contingency { keys: Vec::new(), reference: Vec::new(), current: Vec::new() };
        let (mut i, mut j) = (0, 0);
        loop {
            let order = match (reference.get(i), current.get(j)) {
                (Some(r), Some(c)) => r.0.cmp(&c.0),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            let (key, r, c) = match order {
                Ordering::Less => (reference[i].0, reference[i].1, 0),
                Ordering::Greater => (current[j].0, 0, current[j].1),
                Ordering::Equal => (reference[i].0, reference[i].1, current[j].1),
            };
            i += usize::from(order != Ordering::Greater);
            j += usize::from(order != Ordering::Less);
            if r + c > 0 {
                out.keys.push(key);
                out.reference.push(r);
                out.current.push(c);
            }
        }
        out
    }

    /// From text frequency tables.
    pub fn from_maps(reference: &'a BTreeMap<String, u64>, current: &'a BTreeMap<String, u64>) -> Contingency<'a> {
        let side = |m: &'a BTreeMap<String, u64>| -> Vec<(Key<'a>, u64)> {
            m.iter().map(|(k, n)| (Key::Text(k.as_str()), *n)).collect()
        };
        Contingency::merge(&side(reference), &side(current))
    }

    /// From sorted numbers, each distinct value a category.
    pub fn from_sorted(reference: &[f64], current: &[f64]) -> Contingency<'static> {
        let side =
            |v: &[f64]| -> Vec<(Key<'static>, u64)> { runs(v).into_iter().map(|(k, n)| (Key::Number(k), n)).collect() };
        Contingency::merge(&side(reference), &side(current))
    }

    /// Indexes of the categories the current data has and the reference does not.
    pub fn unseen(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.keys.len()).filter(|&i| self.reference[i] == 0 && self.current[i] > 0)
    }
}

/// Most unseen categories listed in `drift.json` (all are counted in `stats`).
pub const MAX_UNSEEN_LISTED: usize = 100;

/// A categorical column's measures.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoricalMeasures {
    /// Chi-square contingency test (always: it is cheap on categories).
    pub chi2: Chi2,
    /// PSI over the categories.
    pub psi: f64,
    /// Jensen–Shannon distance over the categories.
    pub js: f64,
    /// Unseen categories (the first [`MAX_UNSEEN_LISTED`]).
    pub unseen: Vec<String>,
    /// How many categories are unseen.
    pub unseen_categories: u64,
    /// Share of the current values in unseen categories.
    pub unseen_share: f64,
}

impl CategoricalMeasures {
    /// Measures a contingency table whose sides are both non-empty.
    pub fn compute(t: &Contingency<'_>) -> CategoricalMeasures {
        let unseen: Vec<usize> = t.unseen().collect();
        let unseen_values: u64 = unseen.iter().map(|&i| t.current[i]).sum();
        let current_total: u64 = t.current.iter().sum();
        CategoricalMeasures {
            chi2: chi2_nonempty(&t.reference, &t.current),
            psi: stats::psi(&t.reference, &t.current),
            js: stats::js_distance(&t.reference, &t.current),
            unseen: unseen.iter().take(MAX_UNSEEN_LISTED).map(|&i| t.keys[i].to_string()).collect(),
            unseen_categories: unseen.len() as u64,
            unseen_share: if current_total == 0 { 0.0 } else { unseen_values as f64 / current_total as f64 },
        }
    }

    /// Every measure, by its `drift.json` name (finite ones only).
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::from([
            ("chi_square".to_string(), self.chi2.statistic),
            ("chi_square_p_value".to_string(), self.chi2.pvalue),
            ("psi".to_string(), self.psi),
            ("jensen_shannon".to_string(), self.js),
            ("unseen_categories".to_string(), self.unseen_categories as f64),
            ("unseen_share".to_string(), self.unseen_share),
        ]);
        m.retain(|_, v| v.is_finite());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_values_and_runs() {
        assert!(few_distinct(&[1.0, 1.0, 2.0, 3.0, 4.0, 5.0], 5));
        assert!(!few_distinct(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 5));
        assert!(few_distinct(&[], 5));
        assert_eq!(runs(&[1.0, 1.0, 2.5]), vec![(1.0, 2), (2.5, 1)]);
    }

    #[test]
    fn contingency_merges_the_union_and_finds_unseen_categories() {
        let r = BTreeMap::from([("a".to_string(), 5), ("b".to_string(), 3)]);
        let c = BTreeMap::from([("b".to_string(), 4), ("c".to_string(), 2), ("z".to_string(), 0)]);
        let t = Contingency::from_maps(&r, &c);
        assert_eq!(t.keys, [Key::Text("a"), Key::Text("b"), Key::Text("c")]);
        assert_eq!((t.reference.as_slice(), t.current.as_slice()), (&[5, 3, 0][..], &[0, 4, 2][..]));
        assert_eq!(t.unseen().collect::<Vec<_>>(), [2]);
        let n = Contingency::from_sorted(&[1.0, 1.0, 2.0], &[2.0, 3.0]);
        assert_eq!(n.keys.iter().map(ToString::to_string).collect::<Vec<_>>(), ["1", "2", "3"]);
        assert_eq!(n.reference, [2, 1, 0]);
    }

    #[test]
    fn a_single_category_is_no_evidence() {
        assert_eq!(chi2_nonempty(&[10, 0], &[7, 0]), Chi2 { statistic: 0.0, pvalue: 1.0, dof: 0 });
    }
}
