//! JSON rows (a `dagrun serve` `/predict` body) straight into a model's feature buffer: rows of
//! objects keyed by feature name or arrays in input order (or one object), parsed in one pass
//! with no JSON value per row. Every problem is found:
//! malformed JSON first, then the first row of the wrong shape or with a key given twice (a JSON
//! map keeps only the last of two equal keys, which would hide a mistake), then the first row the
//! model cannot take (a missing or unknown feature, a value that is not a number).

use std::fmt;

use crate::rows::{Rows, Schema, feature_position};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Why a JSON body gave no rows.
#[derive(Debug)]
pub enum JsonRowsError {
    /// It is not JSON (serde_json's message names the line and column).
    Malformed(serde_json::Error),
    /// It is JSON, but not rows this model takes.
    Rows(String),
}

/// The rows of a JSON body, checked against the model's features (every value is a number; whether
/// it is finite is [`Rows::first_not_finite`]'s to say).
pub fn from_json(bytes: &[u8], schema: &Schema) -> Result<Rows, JsonRowsError> {
    let mut reader = Reader::new(schema);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Top(&mut reader).deserialize(&mut de).map_err(JsonRowsError::Malformed)?;
    de.end().map_err(JsonRowsError::Malformed)?;
    match (reader.wrong_shape, reader.unfit) {
        (Some(e), _) | (None, Some(e)) => Err(JsonRowsError::Rows(e)),
        (None, None) => Ok(reader.rows),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Records,
    Arrays,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Records => "an object",
            Shape::Arrays => "an array",
        }
    }
}

/// One cell of the row being read.
enum Cell {
    Empty,
    Number(f64),
    /// Not a number: what was sent instead, for the message.
    Bad(String),
}

struct Reader<'s> {
    schema: &'s Schema,
    rows: Rows,
    shape: Option<Shape>,
    /// Index of the row being read.
    row: usize,
    /// The first row of another shape than row 0, or with a key twice.
    wrong_shape: Option<String>,
    /// The first row the model cannot take.
    unfit: Option<String>,
    cells: Vec<Cell>,
    /// Keys of the row that are not features (to find one given twice).
    extras: Vec<String>,
}

impl<'s> Reader<'s> {
    fn new(schema: &'s Schema) -> Reader<'s> {
        let width = schema.features.as_ref().map(Vec::len).or(schema.width).unwrap_or(0);
        Reader {
            schema,
            rows: Rows::new(width, schema.single_precision),
            shape: None,
            row: 0,
            wrong_shape: None,
            unfit: None,
            cells: Vec::new(),
            extras: Vec::new(),
        }
    }

    fn failed(&self) -> bool {
        self.wrong_shape.is_some() || self.unfit.is_some()
    }

    /// Row `self.row` has `shape`: true when it is the shape of row 0 (recorded by the first).
    fn expect(&mut self, shape: Shape) -> bool {
        match self.shape {
            None => {
                self.shape = Some(shape);
                true
            }
            Some(s) if s == shape => true,
            Some(s) => {
                let (i, is, first) = (self.row, shape.name(), s.name());
                self.wrong_shape.get_or_insert_with(|| format!("row {i} is {is}, row 0 {first}"));
                false
            }
        }
    }

    /// A row that is neither an object nor an array.
    fn scalar(&mut self, kind: &str) {
        let message = match self.shape {
            None => format!("row 0 is {kind}: send an object of features or an array of numbers per row"),
            Some(s) => format!("row {} is {kind}, row 0 {}", self.row, s.name()),
        };
        self.wrong_shape.get_or_insert(message);
    }

    fn record<'de, A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        let (i, schema) = (self.row, self.schema);
        let fits = self.expect(Shape::Records);
        let Some(names) = schema.features.as_deref().filter(|_| fits) else {
            if fits {
                self.unfit.get_or_insert_with(|| {
                    "this model does not name its features: send each row as an array of numbers in input order"
                        .to_owned()
                });
            }
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        self.cells.clear();
        self.cells.resize_with(names.len(), || Cell::Empty);
        self.extras.clear();
        let mut twice: Option<String> = None;
        let mut next = 0;
        while let Some(key) = map.next_key_seed(KeySeed { names, hint: next })? {
            match key {
                Key::Feature(j) if matches!(self.cells[j], Cell::Empty) => {
                    self.cells[j] = map.next_value_seed(NumberSeed)?;
                    next = j + 1;
                }
                Key::Feature(j) => {
                    twice.get_or_insert_with(|| names[j].clone());
                    map.next_value::<IgnoredAny>()?;
                }
                Key::Other(k) => {
                    if self.extras.contains(&k) {
                        twice.get_or_insert(k);
                    } else {
                        self.extras.push(k);
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(k) = twice {
            self.wrong_shape.get_or_insert_with(|| format!("row {i}: `{k}` appears twice"));
        } else if self.unfit.is_none() {
            self.unfit = self.record_unfit(names);
        }
        self.keep();
        Ok(())
    }

    /// Why the record just read cannot be taken: a missing feature, an unknown key, a bad value.
    fn record_unfit(&self, names: &[String]) -> Option<String> {
        let (i, all) = (self.row, || names.join(", "));
        if let Some(j) = self.cells.iter().position(|c| matches!(c, Cell::Empty)) {
            return Some(format!("row {i}: no feature `{}`; the model takes {}", names[j], all()));
        }
        if let Some(extra) = self.extras.first() {
            return Some(format!("row {i}: `{extra}` is not a feature of this model; it takes {}", all()));
        }
        self.bad_value()
    }

    fn array<'de, A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
        if !self.expect(Shape::Arrays) {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let width = self.schema.width.unwrap_or(if self.row == 0 { usize::MAX } else { self.rows.width });
        self.cells.clear();
        let mut count = 0usize;
        while let Some(cell) = seq.next_element_seed(NumberSeed)? {
            if count < width {
                self.cells.push(cell);
            }
            count += 1;
        }
        if self.row == 0 && self.schema.width.is_none() {
            self.rows.width = count;
        }
        let width = self.rows.width;
        if self.unfit.is_none() {
            self.unfit = if count != width {
                Some(format!("row {} has {count} values; the model takes {width} features", self.row))
            } else {
                self.bad_value()
            };
        }
        self.keep();
        Ok(())
    }

    /// The first value of the row just read that is not a number, in feature order.
    fn bad_value(&self) -> Option<String> {
        let j = self.cells.iter().position(|c| matches!(c, Cell::Bad(_)))?;
        let Cell::Bad(what) = &self.cells[j] else { unreachable!("found above") };
        let feature = self.schema.features.as_ref().map_or_else(|| format!("#{j}"), |n| n[j].clone());
        Some(format!("row {}, feature `{feature}`: {what}", self.row))
    }

    /// Appends the row just read (once anything failed, rows are only checked).
    fn keep(&mut self) {
        if !self.failed() {
            for cell in &self.cells {
                if let Cell::Number(v) = cell {
                    self.rows.values.push(*v);
                }
            }
            self.rows.rows += 1;
        }
    }
}

/// The whole body: an array of rows, or one object.
struct Top<'r, 's>(&'r mut Reader<'s>);

impl<'de> DeserializeSeed<'de> for Top<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(RowSeed(self.0))?.is_some() {
            self.0.row += 1;
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.record(map)
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.not_rows("a boolean")
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.not_rows("a number")
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.not_rows("a number")
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.not_rows("a number")
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.not_rows("a string")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.not_rows("null")
    }
}

impl Top<'_, '_> {
    fn not_rows<E>(self, kind: &str) -> Result<(), E> {
        self.0.wrong_shape = Some(format!(
            "expected rows: an array of objects (`[{{\"feature\": 1.5}}]`) or of arrays of numbers, not {kind}"
        ));
        Ok(())
    }
}

/// One row: an object of features or an array of numbers.
struct RowSeed<'r, 's>(&'r mut Reader<'s>);

impl<'de> DeserializeSeed<'de> for RowSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.record(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.array(seq)
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.scalar("a boolean");
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.0.scalar("a number");
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.0.scalar("a number");
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.0.scalar("a number");
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.0.scalar("a string");
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.scalar("null");
        Ok(())
    }
}

/// A key of a record: which feature it names (`hint`: the one expected next, tried first).
enum Key {
    Feature(usize),
    Other(String),
}

struct KeySeed<'n> {
    names: &'n [String],
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a feature name")
    }
    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(feature_position(self.names, key, self.hint).map_or_else(|| Key::Other(key.to_owned()), Key::Feature))
    }
}

/// A feature's value: a number, or what was sent instead.
struct NumberSeed;

impl<'de> DeserializeSeed<'de> for NumberSeed {
    type Value = Cell;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cell, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NumberSeed {
    type Value = Cell;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Cell, E> {
        Ok(Cell::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Cell, E> {
        Ok(Cell::Number(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Cell, E> {
        Ok(Cell::Number(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Cell, E> {
        Ok(Cell::Bad(format!("{v} is a boolean; send a number")))
    }
    fn visit_unit<E>(self) -> Result<Cell, E> {
        Ok(Cell::Bad("missing value (null); send a number".to_owned()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cell, E> {
        Ok(Cell::Bad(format!("{v:?} is a string; send a number")))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Cell, A::Error> {
        let v: serde_json::Value = serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Cell::Bad(format!("{v} is not a number")))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Cell, A::Error> {
        let v: serde_json::Value = serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Cell::Bad(format!("{v} is not a number")))
    }
}

#[cfg(test)]
#[path = "json_rows_tests.rs"]
mod tests;
