//! The histograms the HTML report draws: equal-width bins over both numeric samples' range, or
//! the most frequent categories (then "other").

use dagrun_contracts::drift::Histogram;

use super::measure::Contingency;

/// Bins of a numeric histogram.
pub const NUMERIC_BINS: usize = 20;

/// Categories shown before the rest is lumped into "other".
pub const MAX_CATEGORIES: usize = 20;

/// The label of the lumped categories.
pub const OTHER: &str = "other";

fn proportions(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts.iter().map(|&c| if total == 0 { 0.0 } else { c as f64 / total as f64 }).collect()
}

/// Equal-width bins over the range of two sorted, non-empty samples (one bin if the range is a
/// single value). Bins are [e_i, e_{i+1}), the last one closed.
pub fn numeric(reference: &[f64], current: &[f64]) -> Histogram {
    let lo = reference[0].min(current[0]);
    let hi = reference[reference.len() - 1].max(current[current.len() - 1]);
    let bins = if hi > lo && (hi - lo).is_finite() { NUMERIC_BINS } else { 1 };
    let width = (hi - lo) / bins as f64;
    let mut edges: Vec<f64> = (0..bins).map(|i| lo + width * i as f64).collect();
    edges.push(hi);
    let counts = |s: &[f64]| -> Vec<u64> {
        let mut below: Vec<usize> = edges[1..bins].iter().map(|&e| s.partition_point(|&x| x < e)).collect();
        below.insert(0, 0);
        below.push(s.len());
        below.windows(2).map(|w| (w[1] - w[0]) as u64).collect()
    };
    Histogram {
        reference: proportions(&counts(reference)),
        current: proportions(&counts(current)),
        edges,
        labels: vec![],
    }
}

/// The [`MAX_CATEGORIES`] most frequent categories (both sides pooled, by proportion), in that
/// order, then "other" for the rest.
pub fn categorical(t: &Contingency<'_>) -> Histogram {
    let (r, c) = (proportions(&t.reference), proportions(&t.current));
    let mut order: Vec<usize> = (0..t.keys.len()).collect();
    order.sort_by(|&a, &b| (r[b] + c[b]).total_cmp(&(r[a] + c[a])).then(a.cmp(&b)));
    let shown = order.len().min(MAX_CATEGORIES);
    let mut h = Histogram {
        edges: vec![],
        labels: order[..shown].iter().map(|&i| t.keys[i].to_string()).collect(),
        reference: order[..shown].iter().map(|&i| r[i]).collect(),
        current: order[..shown].iter().map(|&i| c[i]).collect(),
    };
    if order.len() > shown {
        h.labels.push(OTHER.into());
        h.reference.push(order[shown..].iter().map(|&i| r[i]).sum());
        h.current.push(order[shown..].iter().map(|&i| c[i]).sum());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn numeric_bins_cover_both_ranges() {
        let r: Vec<f64> = (0..100).map(f64::from).collect();
        let c: Vec<f64> = (50..150).map(f64::from).collect();
        let h = numeric(&r, &c);
        assert_eq!(h.edges.len(), NUMERIC_BINS + 1);
        assert_eq!((h.edges[0], h.edges[NUMERIC_BINS]), (0.0, 149.0));
        assert!((h.reference.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((h.current.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(h.reference[NUMERIC_BINS - 1], 0.0);
        assert!(h.current[NUMERIC_BINS - 1] > 0.0, "the maximum is in the last bin");
        let constant = numeric(&[2.0, 2.0], &[2.0]);
        assert_eq!((constant.edges, constant.reference, constant.current), (vec![2.0, 2.0], vec![1.0], vec![1.0]));
    }

    #[test]
    fn categories_beyond_twenty_are_other() {
        let r: BTreeMap<String, u64> = (0..30).map(|i| (format!("c{i:02}"), 30 - i)).collect();
        let c = BTreeMap::from([("c00".to_string(), 10), ("new".to_string(), 10)]);
        let t = Contingency::from_maps(&r, &c);
        let h = categorical(&t);
        assert_eq!(h.labels.len(), MAX_CATEGORIES + 1);
        assert_eq!(h.labels[0], "c00");
        assert_eq!(h.labels[1], "new");
        assert_eq!(h.labels[MAX_CATEGORIES], OTHER);
        assert!((h.reference.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((h.current.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
