//! Reading a `/predict` JSON body: rows of objects or arrays (or one object), with every object's
//! keys checked for duplicates while it is read (a JSON map keeps only the last of two equal keys,
//! which would hide a mistake).

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON object, and the first key it held twice.
#[derive(Debug)]
pub(crate) struct Record {
    pub map: Map<String, Value>,
    pub duplicate: Option<String>,
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Record;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Record, A::Error> {
                let (mut map, mut duplicate) = (Map::new(), None);
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&k) {
                        duplicate.get_or_insert(k);
                    } else {
                        map.insert(k, v);
                    }
                }
                Ok(Record { map, duplicate })
            }
        }
        d.deserialize_map(V)
    }
}

/// One row as sent.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum Row {
    Record(Record),
    Array(Vec<Value>),
    Other(Value),
}

/// A whole body as sent.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum Body {
    Many(Vec<Row>),
    One(Record),
    Other(Value),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_and_shapes_told_apart() {
        let b: Body = serde_json::from_str(r#"[{"a": 1, "b": 2, "a": 3}, [1, 2], 5]"#).unwrap();
        let Body::Many(rows) = b else { panic!("many") };
        let Row::Record(r) = &rows[0] else { panic!("record") };
        assert_eq!(r.duplicate.as_deref(), Some("a"));
        assert_eq!(r.map["a"], 1);
        assert!(matches!(&rows[1], Row::Array(a) if a.len() == 2));
        assert!(matches!(&rows[2], Row::Other(Value::Number(_))));
        assert!(matches!(serde_json::from_str::<Body>(r#"{"a": 1}"#).unwrap(), Body::One(r) if r.duplicate.is_none()));
        assert!(matches!(serde_json::from_str::<Body>("7").unwrap(), Body::Other(_)));
        let e = serde_json::from_str::<Body>("[{").unwrap_err().to_string();
        assert!(e.contains("line 1 column 2"), "{e}");
    }
}
