use super::*;
use crate::rows::FeatureBuf;
use crate::rows::tests::schema;

fn unnamed(width: Option<usize>) -> Schema {
    Schema { features: None, width, ..schema(&[]) }
}

fn err(json: &str, s: &Schema) -> String {
    match from_json(json.as_bytes(), s) {
        Err(JsonRowsError::Rows(m)) => m,
        Err(JsonRowsError::Malformed(e)) => format!("malformed: {e}"),
        Ok(r) => panic!("{json}: rows {r:?}"),
    }
}

#[test]
fn records_map_by_name_in_model_order() {
    let r = from_json(br#"[{"b": 2, "a": 1.5}, {"a": -1, "b": 0}]"#, &schema(&["a", "b"])).unwrap();
    assert_eq!((r.rows, r.width), (2, 2));
    assert_eq!(r.values, FeatureBuf::F64(vec![1.5, 2.0, -1.0, 0.0]));
    let one = from_json(br#"{"a": 3, "b": 4e2}"#, &schema(&["a", "b"])).unwrap();
    assert_eq!((one.rows, one.values), (1, FeatureBuf::F64(vec![3.0, 400.0])));
    let escaped = from_json(br#"[{"\u0061": 1, "b": 2}]"#, &schema(&["a", "b"])).unwrap();
    assert_eq!(escaped.values, FeatureBuf::F64(vec![1.0, 2.0]));
}

#[test]
fn arrays_take_the_model_width_or_the_first_row() {
    let mut single = schema(&["a", "b"]);
    single.single_precision = true;
    assert_eq!(from_json(b"[[1, 2], [3, 4.5]]", &single).unwrap().values, FeatureBuf::F32(vec![1.0, 2.0, 3.0, 4.5]));
    let r = from_json(b"[[1, 2, 3], [4, 5, 6]]", &unnamed(None)).unwrap();
    assert_eq!((r.rows, r.width), (2, 3));
    assert_eq!(err("[[1, 2, 3], [4, 5]]", &unnamed(None)), "row 1 has 2 values; the model takes 3 features");
    assert_eq!(err("[[1, true]]", &unnamed(Some(2))), "row 0, feature `#1`: true is a boolean; send a number");
}

#[test]
fn an_empty_array_is_no_rows() {
    let r = from_json(b" [ ] ", &schema(&["a", "b"])).unwrap();
    assert_eq!((r.rows, r.width), (0, 2));
}

#[test]
fn records_name_what_is_wrong() {
    let s = schema(&["a", "b"]);
    assert_eq!(err(r#"[{"a": 1}]"#, &s), "row 0: no feature `b`; the model takes a, b");
    assert_eq!(err(r#"[{"a": 1, "b": 2, "c": 3}]"#, &s), "row 0: `c` is not a feature of this model; it takes a, b");
    assert_eq!(
        err(r#"[{"a": 1, "b": 2}, {"a": "x", "b": 2}]"#, &s),
        r#"row 1, feature `a`: "x" is a string; send a number"#
    );
    assert_eq!(err(r#"[{"a": null, "b": 2}]"#, &s), "row 0, feature `a`: missing value (null); send a number");
    assert_eq!(err(r#"[{"a": [1], "b": 2}]"#, &s), "row 0, feature `a`: [1] is not a number");
    assert_eq!(err(r#"[{"a": {"x": 1}, "b": 2}]"#, &s), r#"row 0, feature `a`: {"x":1} is not a number"#);
    // Values are told in feature order, whatever the key order.
    assert_eq!(err(r#"[{"b": false, "a": "x"}]"#, &s), r#"row 0, feature `a`: "x" is a string; send a number"#);
    assert_eq!(
        err(r#"[{"a": 1, "b": 2}]"#, &unnamed(Some(2))),
        "this model does not name its features: send each row as an array of numbers in input order"
    );
}

#[test]
fn shapes_and_repeated_keys_come_before_what_the_model_takes() {
    let s = schema(&["a", "b"]);
    assert_eq!(err(r#"[{"a": 1}, {"a": 1, "b": 2, "a": 3}]"#, &s), "row 1: `a` appears twice");
    assert_eq!(err(r#"[{"a": 1, "b": 2, "z": 1, "z": 2}]"#, &s), "row 0: `z` appears twice");
    assert_eq!(err(r#"[{"a": 1}, [1, 2]]"#, &s), "row 1 is an array, row 0 an object");
    assert_eq!(err(r#"[[1, 2], {"a": 1, "b": 2}, 3]"#, &s), "row 1 is an object, row 0 an array");
    assert_eq!(err(r#"[[1, 2], 3]"#, &s), "row 1 is a number, row 0 an array");
    assert_eq!(err("[1, 2]", &s), "row 0 is a number: send an object of features or an array of numbers per row");
    assert_eq!(err(r#"["x"]"#, &s), "row 0 is a string: send an object of features or an array of numbers per row");
    assert_eq!(err("[null]", &s), "row 0 is null: send an object of features or an array of numbers per row");
    for (json, kind) in [(r#""hello""#, "a string"), ("7", "a number"), ("true", "a boolean"), ("null", "null")] {
        assert_eq!(
            err(json, &s),
            format!(
                "expected rows: an array of objects (`[{{\"feature\": 1.5}}]`) or of arrays of numbers, not {kind}"
            )
        );
    }
}

#[test]
fn malformed_json_wins_and_names_the_place() {
    let s = schema(&["a", "b"]);
    assert_eq!(err("[{", &s), "malformed: EOF while parsing an object at line 1 column 2");
    // A row error before the broken part does not hide it.
    assert!(err(r#"[{"a": "x"}, {"#, &s).starts_with("malformed: EOF"));
    assert!(err(r#"[{"a": 1, "b": 2}] x"#, &s).starts_with("malformed: trailing characters"));
    assert!(err("", &s).starts_with("malformed: EOF while parsing a value"));
    assert!(err("[1e999]", &s).starts_with("malformed: number out of range"));
}
