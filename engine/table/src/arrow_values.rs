//! Arrow arrays (a Parquet column's batches) added to a column being built: which Arrow types dagrun reads,
//! and how each becomes numbers or categories.

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Decimal32Type, Decimal64Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{AnyDictionaryArray, Array, PrimitiveArray};
use arrow_schema::DataType;

use crate::accum::Acc;

/// What an Arrow type reads as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Integers, floats, decimals: numeric (categorical when declared so).
    Number,
    /// Strings and dictionary-encoded strings: categorical.
    Text,
    /// Booleans: categorical, `true` / `false`.
    Bool,
    /// A column of nulls only: numeric, every value missing.
    Null,
}

/// How `data_type` is read; `None`: not readable.
pub(crate) fn kind(data_type: &DataType) -> Option<Kind> {
    use DataType::*;
    match data_type {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float16 | Float32 | Float64 => {
            Some(Kind::Number)
        }
        Decimal32(..) | Decimal64(..) | Decimal128(..) => Some(Kind::Number),
        Utf8 | LargeUtf8 | Utf8View => Some(Kind::Text),
        Dictionary(_, values) if matches!(**values, Utf8 | LargeUtf8 | Utf8View) => Some(Kind::Text),
        Boolean => Some(Kind::Bool),
        Null => Some(Kind::Null),
        _ => None,
    }
}

/// Adds every value of `array` (whose type [`kind`] accepts) to `acc`. Nulls count as missing.
pub(crate) fn push(acc: &mut Acc, array: &dyn Array) {
    use DataType::*;
    match array.data_type() {
        Float64 => numbers(acc, array.as_primitive::<Float64Type>(), |v| v, |v, s| write!(s, "{v}")),
        Float32 => numbers(acc, array.as_primitive::<Float32Type>(), f64::from, |v, s| write!(s, "{v}")),
        Float16 => numbers(acc, array.as_primitive::<Float16Type>(), f64::from, |v, s| write!(s, "{v}")),
        Int8 => numbers(acc, array.as_primitive::<Int8Type>(), f64::from, |v, s| write!(s, "{v}")),
        Int16 => numbers(acc, array.as_primitive::<Int16Type>(), f64::from, |v, s| write!(s, "{v}")),
        Int32 => numbers(acc, array.as_primitive::<Int32Type>(), f64::from, |v, s| write!(s, "{v}")),
        Int64 => numbers(acc, array.as_primitive::<Int64Type>(), |v| v as f64, |v, s| write!(s, "{v}")),
        UInt8 => numbers(acc, array.as_primitive::<UInt8Type>(), f64::from, |v, s| write!(s, "{v}")),
        UInt16 => numbers(acc, array.as_primitive::<UInt16Type>(), f64::from, |v, s| write!(s, "{v}")),
        UInt32 => numbers(acc, array.as_primitive::<UInt32Type>(), f64::from, |v, s| write!(s, "{v}")),
        UInt64 => numbers(acc, array.as_primitive::<UInt64Type>(), |v| v as f64, |v, s| write!(s, "{v}")),
        Decimal32(_, scale) => {
            let d = 10f64.powi(i32::from(*scale));
            numbers(
                acc,
                array.as_primitive::<Decimal32Type>(),
                |v| f64::from(v) / d,
                |v, s| write!(s, "{}", f64::from(v) / d),
            )
        }
        Decimal64(_, scale) => {
            let d = 10f64.powi(i32::from(*scale));
            numbers(acc, array.as_primitive::<Decimal64Type>(), |v| v as f64 / d, |v, s| write!(s, "{}", v as f64 / d))
        }
        Decimal128(_, scale) => {
            let d = 10f64.powi(i32::from(*scale));
            numbers(acc, array.as_primitive::<Decimal128Type>(), |v| v as f64 / d, |v, s| write!(s, "{}", v as f64 / d))
        }
        Utf8 | LargeUtf8 | Utf8View => {
            for v in strings(array) {
                match v {
                    Some(s) => acc.category(s, 1),
                    None => acc.missing.empty += 1,
                }
            }
        }
        Dictionary(..) => dictionary(acc, array.as_any_dictionary()),
        Boolean => {
            let b = array.as_boolean();
            let (t, f) = (b.true_count() as u64, b.false_count() as u64);
            if t > 0 {
                acc.category("true", t);
            }
            if f > 0 {
                acc.category("false", f);
            }
            acc.missing.empty += b.null_count() as u64;
        }
        Null => acc.missing.empty += array.len() as u64,
        other => unreachable!("{other} was checked by kind()"),
    }
}

/// A primitive array: finite values in order (or, for a declared categorical column, their text as
/// `label` writes it); nulls, NaN and infinities counted.
fn numbers<T: ArrowPrimitiveType>(
    acc: &mut Acc,
    array: &PrimitiveArray<T>,
    to_f64: impl Fn(T::Native) -> f64,
    label: impl Fn(T::Native, &mut String) -> std::fmt::Result,
) {
    let values = array.values();
    let nulls = array.nulls().filter(|n| n.null_count() > 0);
    acc.missing.empty += nulls.map_or(0, |n| n.null_count() as u64);
    let valid = |i: usize| nulls.is_none_or(|n| n.is_valid(i));
    if acc.text {
        let mut text = String::new();
        for (i, &x) in values.iter().enumerate() {
            let v = to_f64(x);
            if !valid(i) {
            } else if v.is_finite() {
                text.clear();
                label(x, &mut text).expect("writing to a String");
                acc.category(&text, 1);
            } else {
                acc.not_finite(v);
            }
        }
    } else if nulls.is_none() {
        acc.values.reserve(values.len());
        for &x in values.iter() {
            acc.number(to_f64(x));
        }
    } else {
        for (i, &x) in values.iter().enumerate() {
            if valid(i) {
                acc.number(to_f64(x));
            }
        }
    }
}

/// The values of a string array (any of the three layouts).
fn strings(array: &dyn Array) -> Box<dyn Iterator<Item = Option<&str>> + '_> {
    match array.data_type() {
        DataType::Utf8 => Box::new(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => Box::new(array.as_string::<i64>().iter()),
        DataType::Utf8View => Box::new(array.as_string_view().iter()),
        other => unreachable!("{other} is not a string type"),
    }
}

/// A dictionary of strings: each dictionary value counted once with how often its key occurs.
fn dictionary(acc: &mut Acc, dict: &dyn AnyDictionaryArray) {
    let values = dict.values();
    if values.is_empty() {
        acc.missing.empty += dict.len() as u64; // only nulls
        return;
    }
    let keys = dict.normalized_keys();
    let key_nulls = dict.keys().nulls();
    let mut counts = vec![0u64; values.len()];
    for (i, &k) in keys.iter().enumerate() {
        if key_nulls.is_none_or(|n| n.is_valid(i)) {
            counts[k] += 1;
        } else {
            acc.missing.empty += 1;
        }
    }
    for (value, n) in strings(values.as_ref()).zip(counts) {
        match value {
            _ if n == 0 => {}
            Some(s) => acc.category(s, n),
            None => acc.missing.empty += n,
        }
    }
}
