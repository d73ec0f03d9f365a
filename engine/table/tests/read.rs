//! `read_table` and `column_names` on CSV and Parquet files written by the tests themselves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt8Array,
};
use dagrun_table::{Column, ColumnData, Format, Missing, ReadOptions, Table, TableError, column_names, read_table};
use parquet::arrow::ArrowWriter;

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn read(path: &Path) -> Table {
    read_table(path, &ReadOptions::default()).unwrap()
}

fn numeric(c: &Column) -> &[f64] {
    match &c.data {
        ColumnData::Numeric(v) => v,
        other => panic!("{} is not numeric: {other:?}", c.name),
    }
}

fn categories(c: &Column) -> Vec<(&str, u64)> {
    match &c.data {
        ColumnData::Categorical(m) => m.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
        other => panic!("{} is not categorical: {other:?}", c.name),
    }
}

fn missing(empty: u64, nan: u64, inf: u64) -> Missing {
    Missing { empty, nan, inf }
}

fn err(path: &Path, opts: &ReadOptions) -> String {
    read_table(path, opts).unwrap_err().to_string()
}

// ---------------------------------------------------------------- CSV

#[test]
fn csv_quoted_commas_and_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "q.csv", "name,x\n\"a, b\",1\n\"line1\nline2\",2\n\"say \"\"hi\"\"\",3\n");
    let t = read(&p);
    assert_eq!(t.format, Format::Csv);
    assert_eq!(t.rows, 3);
    assert_eq!(categories(&t.columns[0]), [("a, b", 1), ("line1\nline2", 1), ("say \"hi\"", 1)]);
    assert_eq!(numeric(&t.columns[1]), [1.0, 2.0, 3.0]);
}

#[test]
fn csv_missing_nan_and_infinities_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "m.csv",
        "x, y \n1, a\n,NA\nNaN,n/a\ninf,null\n-Infinity, None\n 2.5 ,b\nnan,nan\n-inf,inf\nN/A,a\n",
    );
    let t = read(&p);
    assert_eq!(t.rows, 9);
    let x = t.column("x").unwrap();
    assert_eq!(numeric(x), [1.0, 2.5]);
    assert_eq!(x.missing, missing(2, 2, 3));
    assert_eq!(x.missing.total(), 7);
    // In a text column NaN and infinity spellings are counted as missing too, not as categories.
    let y = t.column("y").unwrap();
    assert_eq!(categories(y), [("a", 2), ("b", 1)]);
    assert_eq!(y.missing, missing(4, 1, 1));
}

#[test]
fn csv_header_only_has_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "h.csv", "a,b\n");
    let t = read(&p);
    assert_eq!(t.rows, 0);
    assert_eq!(t.columns.len(), 2);
    assert!(t.columns.iter().all(|c| c.data.is_empty() && c.missing.total() == 0));
    assert_eq!(column_names(&p).unwrap(), ["a", "b"]);
}

#[test]
fn csv_empty_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("empty.csv", ""), ("blank.csv", "  \n\n \n")] {
        let p = write(dir.path(), name, text);
        let e = read_table(&p, &ReadOptions::default()).unwrap_err();
        assert!(matches!(e, TableError::Empty { .. }), "{name}: {e:?}");
        assert_eq!(e.to_string(), format!("{} is empty: expected a header row naming the columns", p.display()));
    }
}

#[test]
fn csv_wrong_field_count_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "w.csv", "a,b\n1,2\n\"x\ny\",3\n4,5,6\n");
    assert_eq!(
        err(&p, &ReadOptions::default()),
        format!(
            "{}:5: 3 fields, but the header has 2; quote values that contain commas (\"1,5\") and give every row 2 \
             fields",
            p.display()
        )
    );
}

#[test]
fn csv_invalid_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "u.csv", b"a,b\nx,1\n\xff\xfe,2\n");
    assert_eq!(
        err(&p, &ReadOptions::default()),
        format!("{}:3: column `a` is not valid UTF-8; save the file as UTF-8", p.display())
    );
}

#[test]
fn csv_column_turning_to_text_keeps_the_original_text_of_its_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("code,v\n");
    for i in 0..1000 {
        text.push_str(&format!("{},{i}\n", if i % 2 == 0 { "01" } else { "1.50" }));
    }
    text.push_str("NA,1\nabc,2\n1e3,3\n");
    let p = write(dir.path(), "t.csv", text);
    let t = read(&p);
    assert_eq!(t.rows, 1003);
    let code = t.column("code").unwrap();
    assert_eq!(categories(code), [("01", 500), ("1.50", 500), ("1e3", 1), ("abc", 1)]);
    assert_eq!(code.missing, missing(1, 0, 0));
    assert_eq!(numeric(t.column("v").unwrap()).len(), 1003);
}

#[test]
fn csv_declared_categorical_keeps_number_text() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "c.csv", "zip,x\n02134,1\n2134,2\n02134.0,3\n,4\n");
    let opts = ReadOptions { categorical: vec!["zip".into()], ..Default::default() };
    let t = read_table(&p, &opts).unwrap();
    let zip = t.column("zip").unwrap();
    assert_eq!(categories(zip), [("02134", 1), ("02134.0", 1), ("2134", 1)]);
    assert_eq!(zip.missing, missing(1, 0, 0));
    assert_eq!(numeric(t.column("x").unwrap()), [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn csv_columns_exclude_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "o.csv", "\u{feff} a ,b,c\n1,2,3\n");
    assert_eq!(column_names(&p).unwrap(), ["a", "b", "c"]);
    let opts = ReadOptions {
        columns: Some(vec!["c".into(), "a".into(), "b".into()]),
        exclude: vec!["b".into(), "zz".into()],
        ..Default::default()
    };
    let t = read_table(&p, &opts).unwrap();
    let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["c", "a"]);
    let t = read_table(&p, &ReadOptions { exclude: vec!["a".into()], ..Default::default() }).unwrap();
    assert_eq!(t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["b", "c"]);
}

#[test]
fn missing_requested_column_lists_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "n.csv", "a,b\n1,2\n");
    let opts = ReadOptions { columns: Some(vec!["a".into(), "z".into()]), ..Default::default() };
    assert_eq!(err(&p, &opts), format!("{}: no column `z` (columns: a, b)", p.display()));
}

#[test]
fn duplicate_header_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "d.csv", "a,b,a\n1,2,3\n");
    assert_eq!(err(&p, &ReadOptions::default()), format!("{}: column `a` appears twice in the header", p.display()));
    // Not reading it is fine.
    let t = read_table(&p, &ReadOptions { columns: Some(vec!["b".into()]), ..Default::default() }).unwrap();
    assert_eq!(numeric(&t.columns[0]), [2.0]);
}

// ---------------------------------------------------------------- Parquet

fn write_parquet(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>) -> PathBuf {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let p = dir.join(name);
    let mut w = ArrowWriter::try_new(std::fs::File::create(&p).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    p
}

#[test]
fn parquet_numbers_strings_dictionaries_booleans_and_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    for v in [Some("red"), Some("blue"), None, Some("red"), Some("red")] {
        dict.append_option(v);
    }
    let p = write_parquet(
        dir.path(),
        "data.bin", // the magic bytes decide, not the name
        vec![
            (
                "f",
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(f64::NAN), Some(f64::NEG_INFINITY), Some(-2.0)]))
                    as ArrayRef,
            ),
            ("g", Arc::new(Float32Array::from(vec![0.5f32, 1.0, 2.0, 3.0, f32::INFINITY]))),
            ("i", Arc::new(Int64Array::from(vec![Some(7), Some(-3), None, Some(0), Some(1 << 40)]))),
            ("u", Arc::new(UInt8Array::from(vec![1u8, 2, 3, 4, 255]))),
            ("s", Arc::new(StringArray::from(vec![Some("x"), Some("y"), Some("x"), None, Some("")]))),
            ("d", Arc::new(dict.finish())),
            ("b", Arc::new(BooleanArray::from(vec![Some(true), Some(false), None, Some(true), Some(true)]))),
        ],
    );
    assert_eq!(Format::of(&p), Format::Parquet);
    assert_eq!(column_names(&p).unwrap(), ["f", "g", "i", "u", "s", "d", "b"]);
    let t = read(&p);
    assert_eq!(t.format, Format::Parquet);
    assert_eq!(t.rows, 5);
    let f = t.column("f").unwrap();
    assert_eq!(numeric(f), [1.5, -2.0]);
    assert_eq!(f.missing, missing(1, 1, 1));
    assert_eq!(numeric(t.column("g").unwrap()), [0.5, 1.0, 2.0, 3.0]);
    assert_eq!(t.column("g").unwrap().missing, missing(0, 0, 1));
    assert_eq!(numeric(t.column("i").unwrap()), [7.0, -3.0, 0.0, (1u64 << 40) as f64]);
    assert_eq!(t.column("i").unwrap().missing, missing(1, 0, 0));
    assert_eq!(numeric(t.column("u").unwrap()), [1.0, 2.0, 3.0, 4.0, 255.0]);
    let s = t.column("s").unwrap();
    assert_eq!(categories(s), [("", 1), ("x", 2), ("y", 1)]);
    assert_eq!(s.missing, missing(1, 0, 0));
    let d = t.column("d").unwrap();
    assert_eq!(categories(d), [("blue", 1), ("red", 3)]);
    assert_eq!(d.missing, missing(1, 0, 0));
    let b = t.column("b").unwrap();
    assert_eq!(categories(b), [("false", 1), ("true", 3)]);
    assert_eq!(b.missing, missing(1, 0, 0));
}

#[test]
fn parquet_declared_categorical_numbers_are_written_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_parquet(
        dir.path(),
        "c.parquet",
        vec![
            ("i", Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(1), None])) as ArrayRef),
            ("f", Arc::new(Float64Array::from(vec![1.0, 0.1, f64::NAN, 2.5]))),
        ],
    );
    let opts = ReadOptions { categorical: vec!["i".into(), "f".into()], ..Default::default() };
    let t = read_table(&p, &opts).unwrap();
    assert_eq!(categories(&t.columns[0]), [("1", 2), ("2", 1)]);
    assert_eq!(t.columns[0].missing, missing(1, 0, 0));
    assert_eq!(categories(&t.columns[1]), [("0.1", 1), ("1", 1), ("2.5", 1)]);
    assert_eq!(t.columns[1].missing, missing(0, 1, 0));
}

#[test]
fn parquet_many_columns_and_batches_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let n = 150_000;
    let cols: Vec<(String, ArrayRef)> = (0..7)
        .map(|c| {
            (format!("c{c}"), Arc::new(Float64Array::from_iter_values((0..n).map(|r| (r * 10 + c) as f64))) as ArrayRef)
        })
        .collect();
    let p = write_parquet(dir.path(), "big.parquet", cols.iter().map(|(n, a)| (n.as_str(), a.clone())).collect());
    let opts = ReadOptions { columns: Some(vec!["c6".into(), "c0".into(), "c3".into()]), ..Default::default() };
    let t = read_table(&p, &opts).unwrap();
    assert_eq!(t.rows, n as u64);
    for (col, c) in t.columns.iter().zip([6, 0, 3]) {
        assert_eq!(col.name, format!("c{c}"));
        let v = numeric(col);
        assert_eq!(v.len(), n);
        assert!(v.iter().enumerate().all(|(r, &x)| x == (r * 10 + c) as f64), "{}", col.name);
    }
}

#[test]
fn parquet_unsupported_types_name_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = ListBuilder::new(arrow_array::builder::Int64Builder::new());
    list.values().append_value(1);
    list.append(true);
    list.append(false);
    let p = write_parquet(
        dir.path(),
        "u.parquet",
        vec![
            ("x", Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef),
            ("tags", Arc::new(list.finish())),
            ("at", Arc::new(TimestampMillisecondArray::from(vec![0, 1]))),
        ],
    );
    let opts = |cols: &[&str]| ReadOptions {
        columns: Some(cols.iter().map(|c| c.to_string()).collect()),
        ..Default::default()
    };
    assert_eq!(
        err(&p, &opts(&["x", "tags"])),
        format!(
            "{}: column `tags` has type List(Int64), which dagrun cannot read; leave it out with `exclude: [\"tags\"]` \
             or list the `columns` to read",
            p.display()
        )
    );
    assert_eq!(
        err(&p, &opts(&["at"])),
        format!(
            "{}: column `at` has type Timestamp(ms), which dagrun cannot read; leave it out with `exclude: [\"at\"]` \
             or list the `columns` to read",
            p.display()
        )
    );
    let t = read_table(&p, &ReadOptions { exclude: vec!["tags".into(), "at".into()], ..Default::default() }).unwrap();
    assert_eq!(numeric(&t.columns[0]), [1.0, 2.0]);
}

#[test]
fn garbage_parquet_is_a_parquet_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "g.parquet", "a,b\n1,2\n");
    assert_eq!(Format::of(&p), Format::Parquet);
    let e = read_table(&p, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, TableError::Parquet { .. }), "{e:?}");
    assert!(e.to_string().starts_with(&format!("{}: not a readable Parquet file: ", p.display())), "{e}");
    assert!(matches!(column_names(&p), Err(TableError::Parquet { .. })));
}

#[test]
fn parquet_and_csv_of_the_same_data_agree() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "same.csv", "x,s\n1.5,a\n,b\n2,a\n");
    let pq = write_parquet(
        dir.path(),
        "same.parquet",
        vec![
            ("x", Arc::new(Float64Array::from(vec![Some(1.5), None, Some(2.0)])) as ArrayRef),
            ("s", Arc::new(StringArray::from(vec!["a", "b", "a"]))),
        ],
    );
    let (a, b) = (read(&csv), read(&pq));
    assert_eq!(a.columns, b.columns);
    assert_eq!(a.rows, b.rows);
    let want: BTreeMap<String, u64> = [("a".to_string(), 2), ("b".to_string(), 1)].into();
    assert_eq!(b.columns[1].data, ColumnData::Categorical(want));
}

#[test]
fn missing_file_is_an_io_error() {
    let e = read_table(Path::new("/nonexistent/x.csv"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, TableError::Io { .. }), "{e:?}");
    assert!(e.to_string().starts_with("cannot read /nonexistent/x.csv: "), "{e}");
}
