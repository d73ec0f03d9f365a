//! Parquet read through Arrow in record batches, only the selected columns (a projection), the columns
//! split across threads by their compressed size.

use std::fs::File;
use std::path::Path;

use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use crate::accum::Acc;
use crate::arrow_values::{Kind, kind, push};
use crate::{Format, ReadOptions, Table, TableError, Unsupported, is_pandas_index as pandas_index, select};

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

/// The schema's column names, without pandas' unnamed index columns.
pub(crate) fn column_names(path: &Path) -> Result<Vec<String>, TableError> {
    Ok(names(&open(path)?.1).into_iter().filter(|n| !pandas_index(n)).collect())
}

/// Reads the columns `opts` selects.
pub(crate) fn read(path: &Path, opts: &ReadOptions) -> Result<Table, TableError> {
    let (file, meta) = open(path)?;
    let names = names(&meta);
    let selected = if opts.columns.is_none() && names.iter().any(|n| pandas_index(n)) {
        let mut opts = opts.clone();
        opts.exclude.extend(names.iter().filter(|n| pandas_index(n)).cloned());
        select(path, &names, &opts)?
    } else {
        select(path, &names, opts)?
    };
    let schema = meta.schema().clone();
    let mut columns = Vec::with_capacity(selected.len());
    let mut unsupported = Vec::new();
    for &i in &selected {
        let field = schema.field(i);
        let Some(k) = kind(field.data_type()) else {
            let data_type = field.data_type().to_string();
            unsupported.push(Unsupported { column: field.name().clone(), data_type });
            continue;
        };
        let text = matches!(k, Kind::Text | Kind::Bool | Kind::Date) || opts.categorical.contains(field.name());
        columns.push(ColumnPlan { root: i, name: field.name(), text });
    }
    if !unsupported.is_empty() {
        return Err(TableError::UnsupportedType { path: path.to_path_buf(), columns: unsupported });
    }
    let rows = u64::try_from(meta.metadata().file_metadata().num_rows()).unwrap_or(0);
    let jobs = jobs(&meta, &columns);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs[1..]
            .iter()
            .map(|job| {
                let (meta, columns) = (&meta, &columns);
                scope.spawn(move || {
                    let file =
                        File::open(path).map_err(|source| TableError::Io { path: path.to_path_buf(), source })?;
                    read_job(path, file, meta, columns, job)
                })
            })
            .collect();
        let mut results = vec![read_job(path, file, &meta, &columns, &jobs[0])];
        results.extend(handles.into_iter().map(|h| h.join().expect("a Parquet reader thread panicked")));
        results
    });
    // Jobs over row groups come in file order: each appends to the column so far.
    let mut slots: Vec<Option<Acc>> = (0..columns.len()).map(|_| None).collect();
    for (job, accs) in jobs.iter().zip(results) {
        for (&k, acc) in job.columns.iter().zip(accs?) {
            match &mut slots[k] {
                Some(so_far) => so_far.absorb(acc),
                slot => *slot = Some(acc),
            }
        }
    }
    let columns = slots.into_iter().map(|a| a.expect("every column is in a job").finish()).collect();
    Ok(Table { path: path.to_path_buf(), format: Format::Parquet, rows, columns })
}

/// A selected column: its index in the schema, its name, whether it is read as categories.
#[derive(Debug)]
struct ColumnPlan<'a> {
    root: usize,
    name: &'a str,
    text: bool,
}

/// What one thread reads.
#[derive(Debug)]
struct Job {
    /// Positions in the selected columns, in file order.
    columns: Vec<usize>,
    /// The row groups (all when `None`).
    row_groups: Option<Vec<usize>>,
    /// Numbers to make room for in each numeric column.
    room: usize,
}

/// Reads the columns and row groups of `job` batch by batch.
fn read_job(
    path: &Path,
    file: File,
    meta: &ArrowReaderMetadata,
    columns: &[ColumnPlan<'_>],
    job: &Job,
) -> Result<Vec<Acc>, TableError> {
    let mut accs: Vec<Acc> = job.columns.iter().map(|&k| Acc::new(columns[k].name, columns[k].text)).collect();
    if job.columns.is_empty() {
        return Ok(accs);
    }
    for acc in accs.iter_mut().filter(|a| !a.text) {
        acc.values.reserve(job.room);
    }
    let mask = ProjectionMask::roots(meta.parquet_schema(), job.columns.iter().map(|&k| columns[k].root));
    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS);
    if let Some(row_groups) = &job.row_groups {
        builder = builder.with_row_groups(row_groups.clone());
    }
    let reader = builder.build().map_err(|e| parquet_error(path, e))?;
    for batch in reader {
        let batch = batch.map_err(|e| parquet_error(path, e))?;
        for (acc, array) in accs.iter_mut().zip(batch.columns()) {
            push(acc, array.as_ref());
        }
    }
    Ok(accs)
}

/// One job per thread: the columns split by compressed size when there are at least as many columns as
/// threads (or a single row group), else every column with the row groups split. Always at least one job.
fn jobs(meta: &ArrowReaderMetadata, columns: &[ColumnPlan<'_>]) -> Vec<Job> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let row_groups = meta.metadata().row_groups();
    let rows = |groups: &[usize]| usize::try_from(groups.iter().map(|&g| row_groups[g].num_rows()).sum::<i64>());
    let total = usize::try_from(meta.metadata().file_metadata().num_rows()).unwrap_or(0);
    if columns.len() >= threads || row_groups.len() < 2 || columns.is_empty() {
        return partition(meta, columns, threads)
            .into_iter()
            .map(|columns| Job { columns, row_groups: None, room: total })
            .collect();
    }
    let mut all: Vec<usize> = (0..columns.len()).collect();
    all.sort_by_key(|&k| columns[k].root);
    let parts = threads.min(row_groups.len());
    (0..parts)
        .map(|p| {
            let groups: Vec<usize> = (p * row_groups.len() / parts..(p + 1) * row_groups.len() / parts).collect();
            // The first job's columns get room for every row: the others are appended to them.
            let room = if p == 0 { total } else { rows(&groups).unwrap_or(0) };
            Job { columns: all.clone(), row_groups: Some(groups), room }
        })
        .collect()
}

/// Splits the columns (positions in `columns`) into up to `threads` groups, balanced by compressed size;
/// each group in file order. Always at least one group.
fn partition(meta: &ArrowReaderMetadata, columns: &[ColumnPlan<'_>], threads: usize) -> Vec<Vec<usize>> {
    let threads = threads.min(columns.len()).max(1);
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
