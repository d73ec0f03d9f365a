//! Timings of the drift statistics on the sizes that matter (issue #11): one 1,000,000 vs
//! 1,000,000 numeric column (sort both, KS + Wasserstein, quantile edges, bins, PSI) and the
//! exact KS p-value at 10,000 values a side. Ignored by default (meaningful in release only):
//!
//! ```text
//! cargo test --release -p dagrun-monitor --test scipy_timing -- --ignored --nocapture
//! ```

use dagrun_monitor::stats;
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*) and standard normals by Box–Muller.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn normals(&mut self, n: usize, shift: f64) -> Vec<f64> {
        (0..n).map(|_| self.normal() + shift).collect()
    }
}

/// The time this thread has run on a CPU (Linux: /proc/thread-self/schedstat, nanoseconds), so
/// that other processes competing for the cores do not count; wall time elsewhere.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(stat.split_whitespace().next()?.parse().ok()?))
}

/// The mean time of calls of `f` on fresh copies of `input` (the copying excluded), repeated
/// until 0.3 s have been spent (at least `runs` times), in this thread's CPU time when the
/// system tells it (the counter is only updated at scheduler ticks, so single short runs cannot
/// be timed with it, but the total over back-to-back runs can), else in wall time.
fn best<T: Clone, R>(runs: usize, input: &T, mut f: impl FnMut(T) -> R) -> (Duration, R) {
    let clock = || cpu_time().unwrap_or_else(|| Instant::now().duration_since(*EPOCH.get_or_init(Instant::now)));
    let mut result = None;
    let (mut total, mut count) = (Duration::ZERO, 0u32);
    while count < runs as u32 || total < Duration::from_millis(300) {
        let copies = (0..8).map(|_| input.clone()).collect::<Vec<_>>();
        let start = clock();
        for copy in copies {
            result = Some(std::hint::black_box(f(copy)));
        }
        total += clock().saturating_sub(start);
        count += 8;
    }
    (total / count, result.expect("runs > 0"))
}

static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn one_million_row_column() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let reference = rng.normals(1_000_000, 0.0);
    let current = rng.normals(1_000_000, 0.01);
    let (sort_time, (a, b)) = best(15, &(reference.clone(), current.clone()), |(mut a, mut b)| {
        stats::sort(&mut a);
        stats::sort(&mut b);
        (a, b)
    });
    let (radsort_time, _) = best(15, &(reference.clone(), current.clone()), |(mut a, mut b)| {
        radsort::sort(&mut a);
        radsort::sort(&mut b);
        (a, b)
    });
    eprintln!("  radsort (both)           {:8.2} ms", ms(radsort_time));
    let (compare_time, comparison) = best(15, &(), |()| stats::compare(&a, &b));
    let (ks_time, _) = best(15, &(), |()| stats::ks_2samp(&a, &b));
    let (wasserstein_time, _) = best(15, &(), |()| stats::wasserstein(&a, &b));
    let (binned_time, psi) = best(15, &(), |()| {
        let edges = stats::quantile_edges(&a, stats::DEFAULT_BINS);
        let (r, c) = (stats::bin_counts(&a, &edges), stats::bin_counts(&b, &edges));
        (stats::psi(&r, &c), stats::js_distance(&r, &c))
    });
    let (std_time, _) = best(15, &(), |()| stats::std_dev(&a));
    let d = comparison.ks.statistic;
    let (pvalue_time, _) = best(15, &(), |()| stats::kolmogorov::kstwo_sf(d, 500_000.0));
    eprintln!("1,000,000 vs 1,000,000 normal values:");
    eprintln!("  sort (both)              {:8.2} ms", ms(sort_time));
    eprintln!("  compare (KS + W1)        {:8.2} ms  {:?}", ms(compare_time), comparison);
    eprintln!("  ks_2samp alone           {:8.2} ms", ms(ks_time));
    eprintln!("  wasserstein alone        {:8.2} ms", ms(wasserstein_time));
    eprintln!("  edges + bins + PSI + JS  {:8.2} ms  {psi:?}", ms(binned_time));
    eprintln!("  std_dev                  {:8.2} ms", ms(std_time));
    eprintln!("  kstwo.sf(d, 500000)      {:8.2} ms", ms(pvalue_time));
    eprintln!("  total (sort+compare+bin) {:8.2} ms", ms(sort_time + compare_time + binned_time));
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn exact_ks_pvalues_at_ten_thousand() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for (n1, n2, shift) in [
        (10_000, 10_000, 0.05),
        (10_000, 10_000, 1.0),
        (9_000, 10_000, 0.05),
        (9_000, 10_000, 1.0),
        (9_999, 10_000, 0.05),
        (9_999, 10_000, 1.0),
    ] {
        let mut a = rng.normals(n1, 0.0);
        let mut b = rng.normals(n2, shift);
        stats::sort(&mut a);
        stats::sort(&mut b);
        let (time, ks) = best(3, &(), |()| stats::ks_2samp(&a, &b));
        eprintln!("  ks_2samp {n1} vs {n2} (shift {shift}): {:8.2} ms  {ks:?}", ms(time));
    }
}
