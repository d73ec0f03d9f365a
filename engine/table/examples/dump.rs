//! Prints what `read_table` reads from a file: each column's kind, usable values, missing counts.
//!
//! `cargo run -p dagrun-table --example dump -- FILE [columns=a,b] [exclude=c] [categorical=d]`

use dagrun_table::{ColumnData, Format, ReadOptions, read_table};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: dump FILE [columns=a,b] [exclude=c] [categorical=d]");
    let mut opts = ReadOptions::default();
    let list = |v: &str| v.split(',').map(String::from).collect::<Vec<_>>();
    for arg in args {
        match arg.split_once('=') {
            Some(("columns", v)) => opts.columns = Some(list(v)),
            Some(("exclude", v)) => opts.exclude = list(v),
            Some(("categorical", v)) => opts.categorical = list(v),
            _ => panic!("unknown argument {arg}"),
        }
    }
    let path = std::path::Path::new(&path);
    println!("format: {:?}", Format::of(path));
    let table = match read_table(path, &opts) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("rows: {}", table.rows);
    for c in &table.columns {
        let m = c.missing;
        let data = match &c.data {
            ColumnData::Numeric(v) => format!("numeric {:?}", &v[..v.len().min(8)]),
            ColumnData::Categorical(counts) => format!("categorical {:?}", counts.iter().take(8).collect::<Vec<_>>()),
        };
        println!("{}: {data}; missing: empty {}, nan {}, inf {}", c.name, m.empty, m.nan, m.inf);
    }
}
