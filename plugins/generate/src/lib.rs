//! `generate`: a dagrun plugin that writes one day's batch of a synthetic, realistic-looking
//! customer-churn table (numeric features + a 0/1 `label`), deterministically: the same params give
//! the same bytes. After `drift_after` the relationship between features and label changes (and
//! some feature distributions shift), so a model trained before the drift gets worse.

use std::fmt::Write;

use dagrun_sdk::{Ctx, Error, Info, Task};
use serde::{Deserialize, Serialize};

/// The task's `params`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Rows to write (default 1000).
    #[serde(default = "default_rows")]
    pub rows: u64,
    /// Feature columns (default 10; at most 100). The first 10 have names and realistic
    /// distributions, further ones are `x10`, `x11`, ...: Gaussian, half of them weakly informative.
    #[serde(default = "default_features")]
    pub features: usize,
    /// Seed (default 0). The concept depends on nothing else; each day's rows on seed and date.
    #[serde(default)]
    pub seed: u64,
    /// The batch's day, `YYYY-MM-DD` (default `2025-01-01`).
    #[serde(default = "default_date")]
    pub date: String,
    /// Days strictly after this one (`YYYY-MM-DD`) follow the drifted concept. Default: no drift.
    #[serde(default)]
    pub drift_after: Option<String>,
    /// Standard deviation of the Gaussian noise added to the label's latent score (default 1; 0
    /// makes the label a deterministic function of the features).
    #[serde(default = "default_noise")]
    pub noise: f64,
}

fn default_rows() -> u64 {
    1000
}
fn default_features() -> usize {
    10
}
fn default_date() -> String {
    "2025-01-01".into()
}
fn default_noise() -> f64 {
    1.0
}

/// The run's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Rows written.
    pub rows: u64,
    /// Feature column names.
    pub features: Vec<String>,
    /// Label column name (`label`).
    pub label: String,
    /// Share of rows with label 1.
    pub positive_rate: f64,
    /// The batch's day.
    pub date: String,
    /// Whether the batch follows the drifted concept.
    pub drifted: bool,
}

/// Names of the first features.
pub const NAMED: [&str; 10] = [
    "age",
    "income",
    "tenure_months",
    "region",
    "num_purchases",
    "avg_basket",
    "days_since_last",
    "support_calls",
    "discount_rate",
    "session_minutes",
];

/// SplitMix64: the same numbers on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `(0, 1)`.
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller; `libm` so every platform agrees).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        libm::sqrt(-2.0 * libm::log(u)) * libm::cos(std::f64::consts::TAU * v)
    }

    /// Poisson with a small mean (inversion).
    fn poisson(&mut self, mean: f64) -> u32 {
        let u = self.uniform();
        let (mut k, mut p) = (0u32, libm::exp(-mean));
        let mut cdf = p;
        while u > cdf && k < 1000 {
            k += 1;
            p *= mean / f64::from(k);
            cdf += p;
        }
        k
    }
}

/// FNV-1a of a string (to derive a day's seed from its date).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Parses `YYYY-MM-DD` into a comparable `(year, month, day)`.
pub fn parse_date(s: &str, param: &str) -> Result<(u32, u32, u32), Error> {
    let bad = || Error::invalid_params(format!("`{param}`: `{s}` is not a date (YYYY-MM-DD)"));
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().map_err(|_| bad());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d == 0 || d > days[m as usize - 1] {
        return Err(bad());
    }
    Ok((y, m, d))
}

/// Column names for `k` features, then `label`.
pub fn columns(k: usize) -> Vec<String> {
    (0..k).map(|i| NAMED.get(i).map_or_else(|| format!("x{i}"), |n| (*n).to_owned())).collect()
}

/// Writes the batch as CSV; returns it with the number of positive rows.
pub fn generate(p: &Params) -> Result<(String, u64, bool), Error> {
    if p.features == 0 || p.features > 100 {
        return Err(Error::invalid_params("`features` must be in 1..=100"));
    }
    if p.rows > 10_000_000 {
        return Err(Error::invalid_params("`rows` must be at most 10000000"));
    }
    if !p.noise.is_finite() || p.noise < 0.0 {
        return Err(Error::invalid_params("`noise` must be >= 0"));
    }
    let day = parse_date(&p.date, "date")?;
    let drifted = match &p.drift_after {
        Some(after) => day > parse_date(after, "drift_after")?,
        None => false,
    };
    let k = p.features;
    let names = columns(k);
    let mut out = String::with_capacity(p.rows as usize * (k * 8 + 4));
    out.push_str(&names.join(","));
    out.push_str(",label\n");
    let mut rng = Rng(p.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ fnv1a(&p.date));
    // Weights of the extra Gaussian features depend only on the seed.
    let mut concept = Rng(p.seed ^ 0x5eed_0fc0_ffee);
    let extra: Vec<f64> = (NAMED.len()..k).map(|i| if i % 2 == 0 { 0.35 * concept.normal() } else { 0.0 }).collect();
    let mut positives = 0;
    let mut v = vec![0.0f64; k];
    for _ in 0..p.rows {
        // Named features: a plausible customer.
        let age = (40.0 + 12.0 * rng.normal()).clamp(18.0, 90.0).round();
        let income_shift = if drifted { 0.15 } else { 0.0 };
        let income = (libm::exp(10.4 + income_shift + 0.01 * (age - 40.0) + 0.45 * rng.normal()) / 10.0).round() * 10.0;
        let tenure = (libm::exp(2.8 + 0.9 * rng.normal()).min((age - 17.0) * 12.0)).round();
        let region = (rng.uniform() * 5.0).floor().min(4.0);
        let purchases = f64::from(rng.poisson(2.0 + tenure.min(120.0) / 20.0));
        let basket = (libm::exp(3.6 + 0.5 * rng.normal() + 0.1 * libm::log(income / 30_000.0)) * 100.0).round() / 100.0;
        let recency_mean = if drifted { 45.0 } else { 30.0 };
        let days_since = (-recency_mean * libm::log(rng.uniform())).round().min(365.0);
        let calls = f64::from(rng.poisson(0.8));
        let discount = (rng.uniform() * 0.5 * 1000.0).round() / 1000.0;
        let session = ((8.0 + 4.0 * rng.normal()).abs() * 10.0).round() / 10.0;
        let named = [age, income, tenure, region, purchases, basket, days_since, calls, discount, session];
        for (j, x) in v.iter_mut().enumerate() {
            *x = match named.get(j) {
                Some(&n) => n,
                None => (rng.normal() * 10_000.0).round() / 10_000.0,
            };
        }
        // The label's latent score: standardised effects, an interaction and thresholds.
        let has = |j: usize| j < k;
        let z_tenure = (libm::log(1.0 + tenure) - 2.9) / 0.9;
        let z_recency = (days_since - 30.0) / 30.0;
        let z_calls = (calls - 0.8) / 0.9;
        let z_purchases = (purchases - 4.0) / 2.5;
        let z_income = libm::log(income / 33_000.0) / 0.45;
        let c = if drifted { &DRIFTED } else { &ORIGINAL };
        let mut s = -0.9;
        if has(2) {
            s += c.tenure * z_tenure;
        }
        if has(6) {
            s += c.recency * z_recency;
        }
        if has(7) {
            s += c.calls * z_calls;
        }
        if has(4) {
            s += c.purchases * z_purchases;
        }
        if has(1) {
            s += c.income * z_income;
        }
        if has(8) && has(7) && discount > 0.3 && calls >= 2.0 {
            s += c.promo_complaint;
        }
        if has(3) {
            s += c.regions[region as usize];
        }
        if has(0) && age < 25.0 {
            s += c.young;
        }
        for (j, &wj) in extra.iter().enumerate() {
            s += wj * v[NAMED.len() + j];
        }
        s += p.noise * rng.normal();
        let label = u8::from(s > 0.0);
        positives += u64::from(label);
        for (j, x) in v.iter().enumerate() {
            // Fixed decimals per column: integers, money with 2, rates with 3, noise with 4.
            let _ = match j {
                0 | 2 | 3 | 4 | 6 | 7 => write!(out, "{x:.0},"),
                1 | 5 => write!(out, "{x:.2},"),
                8 => write!(out, "{x:.3},"),
                9 => write!(out, "{x:.1},"),
                _ => write!(out, "{x:.4},"),
            };
        }
        let _ = writeln!(out, "{label}");
    }
    Ok((out, positives, drifted))
}

/// How the label depends on the (standardised) features.
struct Concept {
    tenure: f64,
    recency: f64,
    calls: f64,
    purchases: f64,
    income: f64,
    /// Interaction: a big discount and at least 2 support calls.
    promo_complaint: f64,
    regions: [f64; 5],
    /// Age under 25.
    young: f64,
}

const ORIGINAL: Concept = Concept {
    tenure: -0.9,
    recency: 0.9,
    calls: 0.6,
    purchases: -0.5,
    income: -0.3,
    promo_complaint: 0.8,
    regions: [0.3, -0.2, 0.0, 0.1, -0.4],
    young: 0.5,
};

/// After the drift: recency barely matters and flips, support calls and income matter more, the
/// interaction reverses, the region effects change.
const DRIFTED: Concept = Concept {
    tenure: -0.4,
    recency: -0.2,
    calls: 1.3,
    purchases: -0.6,
    income: 0.5,
    promo_complaint: -0.9,
    regions: [-0.4, 0.3, 0.5, -0.2, 0.0],
    young: -0.3,
};

/// The plugin.
#[derive(Debug)]
pub struct Generate;

impl Task for Generate {
    type Params = Params;
    type Output = Summary;

    fn describe() -> Info {
        Info::new("generate", env!("CARGO_PKG_VERSION"))
            .description(
                "Writes output `data` (CSV): one day's batch of a synthetic churn-like binary classification \
                 table, deterministic in its params, with a concept drift after `drift_after`.",
            )
            .params_schema(
                r#"{"type": "object", "additionalProperties": false, "properties": {
  "rows": {"type": "integer", "minimum": 0, "default": 1000},
  "features": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
  "seed": {"type": "integer", "minimum": 0, "default": 0},
  "date": {"type": "string", "format": "date", "default": "2025-01-01"},
  "drift_after": {"type": "string", "format": "date"},
  "noise": {"type": "number", "minimum": 0, "default": 1.0}}}"#,
            )
    }

    fn run(ctx: &mut Ctx, params: Params) -> Result<Summary, Error> {
        let (csv, positives, drifted) = generate(&params)?;
        std::fs::write(ctx.output_file("data", "data.csv"), csv)?;
        let rate = if params.rows == 0 { 0.0 } else { positives as f64 / params.rows as f64 };
        ctx.log_info(format!(
            "{} rows × {} features for {}{}; {:.1}% positive",
            params.rows,
            params.features,
            params.date,
            if drifted { " (drifted)" } else { "" },
            100.0 * rate
        ));
        Ok(Summary {
            rows: params.rows,
            features: columns(params.features),
            label: "label".into(),
            positive_rate: rate,
            date: params.date,
            drifted,
        })
    }
}

dagrun_sdk::export_task!(Generate);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn deterministic_and_shaped() {
        let p = params(r#"{"rows": 500, "features": 12, "seed": 7, "date": "2025-01-31"}"#);
        let (a, pos, drifted) = generate(&p).unwrap();
        assert_eq!(a, generate(&p).unwrap().0);
        assert!(!drifted);
        let lines: Vec<&str> = a.lines().collect();
        assert_eq!(lines.len(), 501);
        assert!(lines[0].starts_with("age,income,tenure_months,region,"));
        assert!(lines[0].ends_with(",x10,x11,label"));
        assert!(
            lines[1..].iter().all(|l| l.split(',').count() == 13 && l.split(',').all(|f| f.parse::<f64>().is_ok()))
        );
        assert!((100..350).contains(&pos), "{pos} positives of 500");
        let other_day = params(r#"{"rows": 500, "features": 12, "seed": 7, "date": "2025-02-01"}"#);
        assert_ne!(a, generate(&other_day).unwrap().0);
    }

    #[test]
    fn drift() {
        let before = params(r#"{"rows": 50, "date": "2025-03-01", "drift_after": "2025-03-01"}"#);
        assert!(!generate(&before).unwrap().2);
        let after = params(r#"{"rows": 50, "date": "2025-03-02", "drift_after": "2025-03-01"}"#);
        assert!(generate(&after).unwrap().2);
    }

    #[test]
    fn bad_params() {
        let err = |json: &str| generate(&params(json)).unwrap_err().to_string();
        assert!(err(r#"{"date": "2025-02-30"}"#).contains("not a date"));
        assert!(err(r#"{"drift_after": "tomorrow"}"#).contains("`drift_after`"));
        assert!(err(r#"{"features": 0}"#).contains("`features`"));
        assert!(err(r#"{"noise": -1}"#).contains("`noise`"));
        assert!(serde_json::from_str::<Params>(r#"{"row": 5}"#).is_err());
    }
}
