//! The distribution of the two-sided one-sample Kolmogorov–Smirnov statistic `D_n`
//! (`scipy.stats.kstwo`), as SciPy's `_kolmogn` evaluates it following Simard & L'Ecuyer
//! (2011): Ruben–Gambino's closed forms at the ends, Durbin's matrix (Marsaglia–Tsang–Wang),
//! Pomeranz's recursion, Pelz–Good's asymptotic series, and `2·smirnov(n, d)` for the upper
//! tail ([`smirnov`]: the one-sided Birnbaum–Tingey sum).

use super::special::{Scaled, ln_factorial_over_power};
use std::f64::consts::{PI, TAU};

/// `2^128` and `2^-128`, the rescaling steps of Durbin's and Pomeranz's algorithms.
const EP128: f64 = 3.402_823_669_209_385e38;
const EM128: f64 = 2.938_735_877_055_719e-39;
const E128: i32 = 128;

/// `kstwo.sf(d, n)`: `P(D_n ≥ d)` (`n ≥ 1` integral, as a float).
pub fn kstwo_sf(d: f64, n: f64) -> f64 {
    if d.is_nan() || n.is_nan() || n < 1.0 {
        return f64::NAN;
    }
    // rv_continuous: the support is [1/(2n), 1].
    if d <= 0.5 / n {
        return 1.0;
    }
    if d >= 1.0 {
        return 0.0;
    }
    kolmogn_sf(n as u64, d)
}

/// `_kolmogn(n, x, cdf=False)`.
fn kolmogn_sf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let clip = |p: f64| p.clamp(0.0, 1.0);
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let prob = if n <= 140 {
            (1..=n).fold(1.0, |acc, i| acc * (i as f64 * (1.0 / nf) * (2.0 * t - 1.0)))
        } else {
            (ln_factorial_over_power(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip(1.0 - prob);
    }
    if t >= nf - 1.0 {
        return clip(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        return clip(2.0 * smirnov(n, x));
    }
    let nxsquared = t * x;
    if n <= 140 {
        if nxsquared <= 0.754_693 {
            return clip(1.0 - clip(durbin_cdf(n, x)));
        }
        if nxsquared <= 4.0 {
            return clip(1.0 - clip(pomeranz_cdf(n, x)));
        }
        return clip(2.0 * smirnov(n, x));
    }
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return clip(2.0 * smirnov(n, x));
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 { clip(durbin_cdf(n, x)) } else { pelz_good_cdf(n, x) };
    clip(1.0 - cdf)
}

/// Square matrix product `a · b` (row-major, `m × m`).
fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * m];
    for i in 0..m {
        let row = &mut out[i * m..(i + 1) * m];
        for k in 0..m {
            let aik = a[i * m + k];
            if aik != 0.0 {
                for (o, &bkj) in row.iter_mut().zip(&b[k * m..(k + 1) * m]) {
                    *o += aik * bkj;
                }
            }
        }
    }
    out
}

/// `_kolmogn_DMTW`: `P(D_n ≤ d)` by Durbin's matrix algorithm as Marsaglia, Tsang & Wang
/// compute it: the k-th diagonal entry of `H^n`, times `n!/n^n`, scaled by powers of 2^128.
fn durbin_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powi(j as i32)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = vec![0.0; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let mut power: Vec<f64> = (0..m * m).map(|idx| if idx / m == idx % m { 1.0 } else { 0.0 }).collect();
    let (mut nn, mut expnt, mut h_expnt) = (n, 0i32, 0i32);
    while nn > 0 {
        if nn % 2 == 1 {
            power = matmul(&power, &hm, m);
            expnt += h_expnt;
        }
        hm = matmul(&hm, &hm, m);
        h_expnt *= 2;
        if hm[(k - 1) * m + k - 1].abs() > EP128 {
            hm.iter_mut().for_each(|x| *x /= EP128);
            h_expnt += E128;
        }
        nn /= 2;
    }
    let mut p = power[(k - 1) * m + k - 1];
    let nf = n as f64;
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < EM128 {
            p *= EP128;
            expnt -= E128;
        }
    }
    ldexp(p, expnt)
}

/// `_pomeranz_compute_j1j2`: the non-zero stretch of row `i`.
fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (ip1div2, ip1mod2) = ((i + 1) / 2, (i + 1) % 2);
        if ip1mod2 == 0 {
            if ip1div2 == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1)
            }
        } else {
            (ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// `_kolmogn_Pomeranz`: `P(D_n ≤ d)` by Pomeranz's recursion (rows convolved with
/// truncated Poisson weights, two rows kept, rescaled by 2^128 against underflow).
fn pomeranz_cdf(n: u64, x: f64) -> f64 {
    let ni = n as i64;
    let nf = n as f64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let (mut gpower, mut twogpower, mut onem2gpower) = (vec![1.0; npwrs], vec![1.0; npwrs], vec![1.0; npwrs]);
    let (g_n, two_g_n, one_m2g_n) = (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        let mf = m as f64;
        gpower[m] = gpower[m - 1] * g_n / mf;
        twogpower[m] = twogpower[m - 1] * two_g_n / mf;
        onem2gpower[m] = onem2gpower[m - 1] * one_m2g_n / mf;
    }
    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let mut expnt = 0i32;
    let (mut j1, _) = pomeranz_j1j2(0, ni, ll, ceilf, roundf);
    for i in 1..(2 * ni + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.fill(0.0);
        let (nj1, j2) = pomeranz_j1j2(i, ni, ll, ceilf, roundf);
        j1 = nj1;
        let pwrs = if i == 1 || i == 2 * ni + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let ln2 = ln2 as usize;
            let start = (k1 - v0s) as usize;
            let src = &v0[start..(start + ln2).min(npwrs)];
            let kernel = &pwrs[..ln2.min(npwrs)];
            let conv_start = (j1 - k1) as usize;
            let conv_len = (j2 - j1 + 1).max(0) as usize;
            // numpy.convolve(src, kernel) (full), entries conv_start .. conv_start + conv_len.
            for (out, c) in v1.iter_mut().zip(conv_start..conv_start + conv_len) {
                let lo = c.saturating_sub(kernel.len() - 1);
                let hi = c.min(src.len() - 1);
                *out = (lo..=hi).map(|s| src[s] * kernel[c - s]).sum();
            }
            let max = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < max && max < EM128 {
                v1.iter_mut().for_each(|x| *x *= EP128);
                expnt -= E128;
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = v1[(ni - v1s) as usize];
    for m in 1..=n {
        if ans.abs() > EP128 {
            ans *= EM128;
            expnt += E128;
        }
        ans *= m as f64;
    }
    ldexp(ans, expnt)
}

/// `x · 2^e` without intermediate overflow or underflow of the power of two.
fn ldexp(mut x: f64, mut e: i32) -> f64 {
    while e != 0 && x != 0.0 && x.is_finite() {
        let step = e.clamp(-1000, 1000);
        x *= 2f64.powi(step);
        e -= step;
    }
    x
}

/// `_kolmogn_PelzGood`: Pelz & Good's approximation of `P(D_n ≤ x)`: Li-Chien/Korolyuk's
/// expansion in `1/√n` with each term rewritten by Jacobi's theta-function identity.
fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let pi2 = PI * PI;
    let (pi4, pi6) = (pi2 * pi2, pi2 * pi2 * pi2);
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let (k1a, k1b) = (-z2, pi2 / 4.0);
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0_f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf((8 * kk) as f64);
        let coeffs = [1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6];
        for (acc, c) in k.iter_mut().zip(coeffs) {
            *acc = *acc * qpower + c;
        }
    }
    let sqrt2pi = TAU.sqrt();
    let divisors = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (acc, div) in k.iter_mut().zip(divisors) {
        *acc = *acc * q * sqrt2pi / div;
    }
    let q = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for kk in (1..=maxk).rev() {
        let ks = kk as f64;
        let ks2 = ks * ks;
        let qp = q.powf(ks2);
        let kspi = PI * ks;
        k2extra += ks2 * qp;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ks2 * qp;
    }
    k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    (0..4).map(|i| k[i] / nf.powf(i as f64 / 2.0)).sum()
}

/// `n·x` split exactly into `floor(n·x)` and the fraction (rounded up to the next integer when
/// the fraction rounds to 1).
fn floor_and_fraction(n: u64, x: f64) -> (u64, f64) {
    let nf = n as f64;
    let hi = nf * x;
    let lo = nf.mul_add(x, -hi);
    let mut floor = hi.floor();
    let mut frac = (hi - floor) + lo;
    if frac < 0.0 {
        floor -= 1.0;
        frac += 1.0;
    } else if frac >= 1.0 {
        floor += 1.0;
        frac -= 1.0;
    }
    (floor as u64, frac)
}

/// `scipy.special.smirnov(n, x)`: `P(D_n^+ ≥ x)`, the one-sided statistic's survival function,
/// by the Birnbaum–Tingey sum `x Σ_j C(n, j) (1 - x - j/n)^(n-j) (x + j/n)^(j-1)` over
/// `j < n(1 - x)`, each term in logarithms (so nothing overflows), stopped once the remaining
/// terms cannot change the sum.
pub fn smirnov(n: u64, x: f64) -> f64 {
    if n == 0 || !(0.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let (nxfl, alpha) = floor_and_fraction(n, x);
    if nxfl == 0 || (nxfl == 1 && alpha == 0.0) {
        // x ≤ 1/n.
        return 1.0 - x * ((nf - 1.0) * x.ln_1p()).exp();
    }
    if -2.0 * nf * x * x < -708.396_418_532_264_1 {
        return 0.0;
    }
    if nxfl >= n - 1 {
        return (nf * (-x).ln_1p()).exp();
    }
    if n > 1_000_000 {
        let logp = -(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf;
        return if logp < -std::f64::consts::LN_2 { logp.exp() } else { 1.0 + logp.exp_m1() };
    }
    let terms = n - nxfl;
    // j = 0: (1 - x)^n / x.
    let mut sum = (nf * (-x).ln_1p()).exp() / x;
    let mut binomial = Scaled { mantissa: 1.0, exponent: 0 };
    let vmid = n / 2;
    for j in 1..terms {
        let jf = j as f64;
        binomial.mul((nf - jf + 1.0) / jf);
        let log_term = binomial.ln() + (nf - jf) * (-(x + jf / nf)).ln_1p() + (jf - 1.0) * (x + jf / nf).ln();
        let term = log_term.exp();
        if term.is_finite() && term != 0.0 {
            sum += term;
            if 4.0 * (terms - j) as f64 * term < f64::EPSILON * sum && j != terms - 1 {
                break;
            }
        } else if j > vmid {
            break;
        }
    }
    (x * sum).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smirnov_closed_forms() {
        // n = 2: P(D+ ≥ x) = 1 - (1+x)... check against direct enumeration of the small sum.
        assert!((smirnov(1, 0.3) - 0.7).abs() < 1e-15);
        assert_eq!(smirnov(5, 0.0), 1.0);
        assert_eq!(smirnov(5, 1.0), 0.0);
        // x ≥ 1 - 1/n: (1 - x)^n.
        assert!((smirnov(10, 0.95) - 0.05f64.powi(10)).abs() < 1e-25);
    }

    #[test]
    fn kstwo_sf_is_monotone_and_bounded() {
        for n in [5.0, 50.0, 140.0, 141.0, 1000.0, 5000.0, 200_000.0] {
            let mut last = 1.0;
            for k in 1..200 {
                let d = f64::from(k) / 200.0;
                let p = kstwo_sf(d, n);
                assert!((0.0..=1.0).contains(&p), "n={n} d={d}: {p}");
                assert!(p <= last + 1e-12, "n={n} d={d}: {p} > {last}");
                last = p;
            }
        }
    }
}
