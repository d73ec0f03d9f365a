//! Parquet read through Arrow in record batches, only the selected columns (a projection), the columns
//! split across threads by their compressed size.

use std::fs::File;
use std::path::Path;

use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use crate::accum::Acc;
use crate::arrow_values::{Kind, kind, push};
use crate::{Format, ReadOptions, Table, TableError, select};

/// Rows per record batch.
const BATCH_ROWS: usize = 64 * 1024;

/// Opens `path` and reads its footer (schema, row groups).
pub(crate) fn open(path: &Path) -> Result<(File, ArrowReaderMetadata), TableError> {
    let file = File::open(path).map_err(|source| TableError::Io { path: path.to_path_buf(), source })?;
    if file.metadata().map_err(|source| TableError::Io { path: path.to_path_buf(), source })?.len() == 0 {
        return Err(TableError::Empty { path: path.to_path_buf() });
    }
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| parquet_error(path, e))?;
    Ok((file, meta))
}

pub(crate) fn parquet_error(path: &Path, e: impl std::fmt::Display) -> TableError {
    TableError::Parquet { path: path.to_path_buf(), message: e.to_string() }
}

fn names(meta: &ArrowReaderMetadata) -> Vec<String> {
    meta.schema().fields().iter().map(|f| f.name().clone()).collect()
}

/// The schema's column names.
pub(crate) fn column_names(path: &Path) -> Result<Vec<String>, TableError> {
    Ok(names(&open(path)?.1))
}

/// Reads the columns `opts` selects.
pub(crate) fn read(path: &Path, opts: &ReadOptions) -> Result<Table, TableError> {
    let (file, meta) = open(path)?;
    let names = names(&meta);
    let selected = select(path, &names, opts)?;
    let schema = meta.schema().clone();
    let mut columns = Vec::with_capacity(selected.len());
    for &i in &selected {
        let field = schema.field(i);
        let Some(k) = kind(field.data_type()) else {
            return Err(TableError::UnsupportedType {
                path: path.to_path_buf(),
                column: field.name().clone(),
                data_type: field.data_type().to_string(),
            });
        };
        let text = matches!(k, Kind::Text | Kind::Bool) || opts.categorical.contains(field.name());
        columns.push(ColumnPlan { root: i, name: field.name(), text });
    }
    let rows = u64::try_from(meta.metadata().file_metadata().num_rows()).unwrap_or(0);
    let groups = partition(&meta, &columns);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = groups[1..]
            .iter()
            .map(|g| {
                let (meta, columns) = (&meta, &columns);
                scope.spawn(move || {
                    let file =
                        File::open(path).map_err(|source| TableError::Io { path: path.to_path_buf(), source })?;
                    read_group(path, file, meta, columns, g)
                })
            })
            .collect();
        let mut results = vec![read_group(path, file, &meta, &columns, &groups[0])];
        results.extend(handles.into_iter().map(|h| h.join().expect("a Parquet reader thread panicked")));
        results
    });
    let mut slots: Vec<Option<Acc>> = (0..columns.len()).map(|_| None).collect();
    for (g, accs) in groups.iter().zip(results) {
        for (&k, acc) in g.iter().zip(accs?) {
            slots[k] = Some(acc);
        }
    }
    let columns = slots.into_iter().map(|a| a.expect("every column is in a group").finish()).collect();
    Ok(Table { path: path.to_path_buf(), format: Format::Parquet, rows, columns })
}

/// A selected column: its index in the schema, its name, whether it is read as categories.
#[derive(Debug)]
struct ColumnPlan<'a> {
    root: usize,
    name: &'a str,
    text: bool,
}

/// Reads the columns `group` (positions in `columns`, in file order) batch by batch.
fn read_group(
    path: &Path,
    file: File,
    meta: &ArrowReaderMetadata,
    columns: &[ColumnPlan<'_>],
    group: &[usize],
) -> Result<Vec<Acc>, TableError> {
    let mut accs: Vec<Acc> = group.iter().map(|&k| Acc::new(columns[k].name, columns[k].text)).collect();
    if group.is_empty() {
        return Ok(accs);
    }
    let rows = usize::try_from(meta.metadata().file_metadata().num_rows()).unwrap_or(0);
    for acc in accs.iter_mut().filter(|a| !a.text) {
        acc.values.reserve(rows);
    }
    let mask = ProjectionMask::roots(meta.parquet_schema(), group.iter().map(|&k| columns[k].root));
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| parquet_error(path, e))?;
    for batch in reader {
        let batch = batch.map_err(|e| parquet_error(path, e))?;
        for (acc, array) in accs.iter_mut().zip(batch.columns()) {
            push(acc, array.as_ref());
        }
    }
    Ok(accs)
}

/// Splits the columns (positions in `columns`) into one group per thread, balanced by compressed size;
/// each group in file order. Always at least one group.
fn partition(meta: &ArrowReaderMetadata, columns: &[ColumnPlan<'_>]) -> Vec<Vec<usize>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8).min(columns.len()).max(1);
    let schema = meta.parquet_schema();
    let mut size_of_root = vec![0i64; meta.schema().fields().len()];
    for rg in meta.metadata().row_groups() {
        for leaf in 0..rg.num_columns() {
            size_of_root[schema.get_column_root_idx(leaf)] += rg.column(leaf).compressed_size();
        }
    }
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(size_of_root[columns[k].root]));
    let mut groups: Vec<(i64, Vec<usize>)> = vec![(0, Vec::new()); threads];
    for k in order {
        let lightest = groups.iter_mut().min_by_key(|(size, _)| *size).expect("at least one group");
        lightest.0 += size_of_root[columns[k].root].max(1);
        lightest.1.push(k);
    }
    groups
        .into_iter()
        .map(|(_, mut g)| {
            g.sort_by_key(|&k| columns[k].root);
            g
        })
        .collect()
}
