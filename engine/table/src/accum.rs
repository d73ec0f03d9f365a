//! A column being built: finite numbers in row order, or category counts, with missing values counted.

use std::collections::{BTreeMap, HashMap};

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
    pub missing: Missing,
}

impl Acc {
    pub fn new(name: &str, text: bool) -> Acc {
        Acc { name: name.to_string(), values: Vec::new(), counts: HashMap::new(), text, missing: Missing::default() }
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

    /// The column turns out to be text: its numbers so far are dropped (the caller recounts their text).
    pub fn become_text(&mut self) {
        self.text = true;
        self.values = Vec::new();
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
