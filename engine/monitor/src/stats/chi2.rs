//! The chi-square test of independence on a 2×k contingency table, as
//! `scipy.stats.chi2_contingency` computes it with its defaults (Pearson's statistic, Yates'
//! continuity correction when there is one degree of freedom).

use super::Chi2;
use super::special::chi2_sf;

/// `chi2_contingency([reference, current])` (see [`super::chi2_contingency`]).
pub(crate) fn chi2_contingency(reference: &[u64], current: &[u64]) -> Chi2 {
    assert_eq!(reference.len(), current.len(), "chi2_contingency: the two tables must have the same categories");
    let k = reference.len();
    let dof = k.saturating_sub(1);
    if dof == 0 {
        // One category (or none): observed == expected.
        return Chi2 { statistic: 0.0, pvalue: 1.0, dof };
    }
    let row_totals = [reference.iter().sum::<u64>(), current.iter().sum::<u64>()];
    let total = row_totals[0] + row_totals[1];
    let mut terms = Vec::with_capacity(2 * k);
    for (row, &row_total) in [reference, current].into_iter().zip(&row_totals) {
        for (c, &observed) in row.iter().enumerate() {
            let column_total = reference[c] + current[c];
            // numpy: the integer product of the margins, then one division.
            let expected = (u128::from(row_total) * u128::from(column_total)) as f64 / total as f64;
            if expected == 0.0 {
                // SciPy refuses a table with an expected frequency of zero.
                return Chi2 { statistic: f64::NAN, pvalue: f64::NAN, dof };
            }
            let mut observed = observed as f64;
            if dof == 1 {
                // Yates: move each cell towards its expectation by ½ (never past it).
                let diff = expected - observed;
                if diff != 0.0 {
                    observed += diff.abs().min(0.5).copysign(diff);
                }
            }
            let deviation = observed - expected;
            terms.push(deviation * deviation / expected);
        }
    }
    let statistic = super::sum(&terms);
    Chi2 { statistic, pvalue: chi2_sf(statistic, dof as f64), dof }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yates_on_two_categories() {
        // scipy.stats.chi2_contingency([[10, 20], [20, 10]]):
        // statistic 5.4 (Yates: |10 - 15| - 0.5 = 4.5 → 4 · 4.5² / 15), p 0.0201...
        let r = chi2_contingency(&[10, 20], &[20, 10]);
        assert_eq!(r.dof, 1);
        assert!((r.statistic - 5.4).abs() < 1e-12, "{}", r.statistic);
        assert!((r.pvalue - 0.020_136_751_550_346_33).abs() < 1e-12, "{}", r.pvalue);
    }

    #[test]
    fn yates_never_overshoots() {
        // Differences below ½ are corrected to zero, not past the expectation.
        let r = chi2_contingency(&[50, 50], &[50, 51]);
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.pvalue, 1.0);
    }

    #[test]
    fn one_category_is_degenerate() {
        assert_eq!(chi2_contingency(&[7], &[3]), Chi2 { statistic: 0.0, pvalue: 1.0, dof: 0 });
    }

    #[test]
    fn identical_tables_give_zero() {
        let r = chi2_contingency(&[5, 10, 15], &[10, 20, 30]);
        assert!(r.statistic.abs() < 1e-12);
        assert!((r.pvalue - 1.0).abs() < 1e-12);
        assert_eq!(r.dof, 2);
    }

    #[test]
    fn huge_differences_give_tiny_pvalues() {
        let r = chi2_contingency(&[100_000, 1, 1], &[1, 1, 100_000]);
        assert!(r.statistic > 1e5);
        assert_eq!(r.pvalue, 0.0);
    }
}
