//! A column being built: finite numbers in row order, or category counts, with missing values counted.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::{Column, ColumnData, Missing};

/// The values of one column read so far.
#[derive(Debug)]
pub(crate) struct Acc {
    pub name: String,
    /// Finite values while the column is numeric.
    pub values: Vec<f64>,
    /// Category counts once the column is text (or declared categorical).
    pub counts: HashMap<String, u64>,
    /// The column is text: `counts` holds its values, `values` is unused.
    pub text: bool,
    /// Declared categorical (CSV): numbers are counted as the Parquet reader writes them.
    pub declared: bool,
    pub missing: Missing,
    /// Room to write a label in.
    scratch: String,
}

impl Acc {
    pub fn new(name: &str, text: bool) -> Acc {
        Acc {
            name: name.to_string(),
            values: Vec::new(),
            counts: HashMap::new(),
            text,
            declared: false,
            missing: Missing::default(),
            scratch: String::new(),
        }
    }

    /// A column read as categories even when its values are numbers (a CSV column in
    /// `ReadOptions::categorical`).
    pub fn declared(name: &str) -> Acc {
        Acc { declared: true, ..Acc::new(name, true) }
    }

    /// A number (NaN and infinities are counted as missing).
    #[inline]
    pub fn number(&mut self, v: f64) {
        if v.is_finite() {
            self.values.push(v);
        } else {
            self.not_finite(v);
        }
    }

    #[inline]
    pub fn not_finite(&mut self, v: f64) {
        if v.is_nan() {
            self.missing.nan += 1;
        } else {
            self.missing.inf += 1;
        }
    }

    /// A category value, `n` times.
    #[inline]
    pub fn category(&mut self, value: &str, n: u64) {
        match self.counts.get_mut(value) {
            Some(c) => *c += n,
            None => {
                self.counts.insert(value.to_string(), n);
            }
        }
    }

    /// A finite number `v` written as `text` (trimmed ASCII), counted as a category the way the Parquet
    /// reader writes numbers: an integer as an integer (`+01` is `1`), anything else as Rust prints
    /// the `f64` (`1.0` and `1.00` are `1`, `2.50` is `2.5`, `1e3` is `1000`).
    pub fn number_category(&mut self, text: &[u8], v: f64) {
        let mut label = std::mem::take(&mut self.scratch);
        label.clear();
        match integer(text) {
            Some(i) => write!(label, "{i}"),
            None => write!(label, "{v}"),
        }
        .expect("writing to a String");
        self.category(&label, 1);
        self.scratch = label;
    }

    /// The column turns out to be text: its numbers so far are dropped (the caller recounts their text).
    pub fn become_text(&mut self) {
        self.text = true;
        self.values = Vec::new();
    }

    /// Adds the values of the same column from later rows. When `self` is text and `other` is not,
    /// `other`'s numbers are dropped (the caller recounts their text).
    pub fn absorb(&mut self, other: Acc) {
        self.missing.empty += other.missing.empty;
        self.missing.nan += other.missing.nan;
        self.missing.inf += other.missing.inf;
        if self.text {
            for (value, n) in other.counts {
                *self.counts.entry(value).or_default() += n;
            }
        } else {
            self.values.extend_from_slice(&other.values);
        }
    }

    pub fn finish(self) -> Column {
        let data = if self.text {
            ColumnData::Categorical(self.counts.into_iter().collect::<BTreeMap<_, _>>())
        } else {
            ColumnData::Numeric(self.values)
        };
        Column { name: self.name, data, missing: self.missing }
    }
}

/// `text` as an integer when it is one: an optional sign and digits only (no `.`, no exponent).
fn integer(text: &[u8]) -> Option<i128> {
    let digits = text.strip_prefix(b"-").or_else(|| text.strip_prefix(b"+")).unwrap_or(text);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// `true` or `false` for those words in any case (`True`, `FALSE`: how pandas writes booleans to CSV),
/// as the Parquet reader writes booleans.
#[inline]
pub(crate) fn boolean(text: &str) -> Option<&'static str> {
    match text.len() {
        4 if text.eq_ignore_ascii_case("true") => Some("true"),
        5 if text.eq_ignore_ascii_case("false") => Some("false"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(cells: &[&str]) -> Vec<(String, u64)> {
        let mut acc = Acc::declared("x");
        for cell in cells {
            let v: f64 = cell.trim().parse().unwrap();
            acc.number_category(cell.trim().as_bytes(), v);
        }
        acc.counts.into_iter().collect::<BTreeMap<_, _>>().into_iter().collect()
    }

    #[test]
    fn declared_numbers_are_counted_as_parquet_writes_them() {
        let got = labels(&["1", "1.0", " 1 ", "1.00", "+1", "01", "2.5", "2.50", "1e3", "-3", "-3.0"]);
        let want = [("-3", 2), ("1", 6), ("1000", 1), ("2.5", 2)];
        assert_eq!(got, want.map(|(k, n)| (k.to_string(), n)));
        // Integers beyond f64's exact range keep every digit, as an Int64 column writes them.
        assert_eq!(labels(&["9007199254740993"]), [("9007199254740993".to_string(), 1)]);
        assert_eq!(labels(&["0.1"]), [("0.1".to_string(), 1)]);
    }

    #[test]
    fn booleans_in_any_case() {
        for (text, want) in [("True", Some("true")), ("TRUE", Some("true")), ("false", Some("false"))] {
            assert_eq!(boolean(text), want, "{text}");
        }
        assert_eq!(boolean("FaLsE"), Some("false"));
        for text in ["t", "yes", "1", "truth", "falsey", ""] {
            assert_eq!(boolean(text), None, "{text}");
        }
    }
}
