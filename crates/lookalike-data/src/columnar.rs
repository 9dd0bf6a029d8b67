//! Pools and audiences as Parquet (arrow-rs), beside the text layout.
//!
//! A pool file holds a `uid` column (any integer type) and one column per user field, named as in
//! `userFeature.data`: a single-valued field as integers or strings, a multi-valued one as a list of
//! them. Columns the model does not read are ignored; a field without a column, or a null, is unknown.
//! Problems name the file, the row (1-based, counted over the whole file) and the column.

use crate::error::{DataError, Result};
use crate::raw::{self, StreamStats};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema as ArrowSchema};
use lookalike_core::data::UserTable;
use lookalike_core::online::Scored;
use lookalike_core::schema::{Schema, Vocabulary};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

/// Rows per batch read or written.
const BATCH_ROWS: usize = 16_384;

/// Whether `path` names a Parquet file (by its extension).
pub fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

fn pq_error(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::new(path, format!("not a readable Parquet file: {e}"))
}

/// Reads the file's batches, only the columns named in `columns` (where present).
fn batches(
    path: &Path,
    columns: &[&str],
) -> Result<impl Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>>> {
    Ok(reader(path, columns)?.0)
}

/// [`batches`] with the file's row count.
fn reader(
    path: &Path,
    columns: &[&str],
) -> Result<(
    impl Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>>,
    usize,
)> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| pq_error(path, e))?;
    let total = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let present: Vec<&str> = columns
        .iter()
        .copied()
        .filter(|c| builder.schema().field_with_name(c).is_ok())
        .collect();
    let mask = ProjectionMask::columns(builder.parquet_schema(), present);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| pq_error(path, e))?;
    Ok((reader, total))
}

/// Integer value of an integer column's cell.
fn int_at(col: &dyn Array, i: usize) -> Option<i128> {
    macro_rules! try_int {
        ($($t:ty),*) => {$(
            if let Some(a) = col.as_primitive_opt::<$t>() {
                return Some(a.value(i) as i128);
            }
        )*};
    }
    try_int!(
        Int64Type, UInt64Type, Int32Type, UInt32Type, Int16Type, UInt16Type, Int8Type, UInt8Type
    );
    None
}

/// One cell as a token (integers in decimal, as the text layout writes them); `None` for a null.
fn token<'a>(col: &'a dyn Array, i: usize, buf: &'a mut String) -> Option<Cow<'a, str>> {
    if col.is_null(i) {
        return None;
    }
    if let Some(a) = col.as_string_opt::<i32>() {
        return Some(Cow::Borrowed(a.value(i)));
    }
    if let Some(a) = col.as_string_opt::<i64>() {
        return Some(Cow::Borrowed(a.value(i)));
    }
    if let Some(a) = col.as_string_view_opt() {
        return Some(Cow::Borrowed(a.value(i)));
    }
    let v = int_at(col, i)?;
    buf.clear();
    let _ = write!(buf, "{v}");
    Some(Cow::Borrowed(buf.as_str()))
}

fn is_scalar(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The values of a list column's cell (`None` for a null).
fn list_at(col: &dyn Array, i: usize) -> Option<ArrayRef> {
    if col.is_null(i) {
        return None;
    }
    if let Some(l) = col.as_list_opt::<i32>() {
        return Some(l.value(i));
    }
    col.as_list_opt::<i64>().map(|l| l.value(i))
}

/// The `uid` column's values.
fn uids(path: &Path, batch: &RecordBatch, first_row: usize) -> Result<Vec<u64>> {
    let col = batch
        .column_by_name("uid")
        .ok_or_else(|| DataError::new(path, "no `uid` column"))?;
    if !col.data_type().is_integer() {
        return Err(DataError::at(
            path,
            first_row,
            Some("uid"),
            format!("expected integers, found {}", col.data_type()),
        ));
    }
    (0..batch.num_rows())
        .map(|i| {
            let bad = |msg: &str| DataError::at(path, first_row + i, Some("uid"), msg.to_string());
            if col.is_null(i) {
                return Err(bad("missing (null)"));
            }
            let v = int_at(col.as_ref(), i).expect("an integer column");
            u64::try_from(v).map_err(|_| bad(&format!("{v} is not a non-negative integer id")))
        })
        .collect()
}

/// Checks a field's column type: scalars for single-valued fields, lists of scalars for multi-valued.
fn check_column(path: &Path, field: &Field, multi: bool) -> Result<()> {
    let ok = match field.data_type() {
        DataType::List(inner) | DataType::LargeList(inner) => multi && is_scalar(inner.data_type()),
        t => !multi && is_scalar(t),
    };
    if ok {
        return Ok(());
    }
    Err(DataError {
        file: path.to_path_buf(),
        line: None,
        field: Some(field.name().clone()),
        message: format!(
            "column type {} is not {}",
            field.data_type(),
            if multi {
                "a list of integers or strings (a multi-valued field)"
            } else {
                "integers or strings (a single-valued field)"
            }
        ),
    })
}

/// One batch's users that `keep` accepts, encoded with `schema`'s vocabularies (a batch read from a
/// file, or handed over in memory, e.g. by Spark; `path` names its source in messages, `first_row` its
/// first row).
pub fn encode_batch(
    path: &Path,
    schema: &Schema,
    batch: &RecordBatch,
    first_row: usize,
    keep: &(dyn Fn(u64) -> bool + Sync),
) -> Result<UserTable> {
    for (fields, multi) in [(&schema.user_single, false), (&schema.user_multi, true)] {
        for f in fields.iter() {
            if let Ok(field) = batch.schema().field_with_name(&f.name) {
                check_column(path, field, multi)?;
            }
        }
    }
    let uids = uids(path, batch, first_row)?;
    let single_cols: Vec<Option<&ArrayRef>> = schema
        .user_single
        .iter()
        .map(|f| batch.column_by_name(&f.name))
        .collect();
    let multi_cols: Vec<Option<&ArrayRef>> = schema
        .user_multi
        .iter()
        .map(|f| batch.column_by_name(&f.name))
        .collect();
    let mut table = UserTable::new(schema);
    let (mut single, mut multi, mut lens) = (
        vec![0u32; table.single_fields],
        vec![0u32; table.multi_width],
        vec![0u8; table.multi_fields],
    );
    let mut buf = String::new();
    let id = |vocab: &Vocabulary, col: &dyn Array, i: usize, buf: &mut String| -> u32 {
        if col.is_null(i) {
            return 0;
        }
        if col.data_type().is_integer() {
            int_at(col, i).map_or(0, |v| vocab.id_of_integer(v))
        } else {
            token(col, i, buf).map_or(0, |t| vocab.id(&t))
        }
    };
    for (i, &uid) in uids.iter().enumerate() {
        if !keep(uid) {
            continue;
        }
        for (k, col) in single_cols.iter().enumerate() {
            single[k] = col.map_or(0, |c| {
                id(&schema.user_single[k].vocab, c.as_ref(), i, &mut buf)
            });
        }
        multi.fill(0);
        let mut offset = 0;
        for (k, col) in multi_cols.iter().enumerate() {
            let field = &schema.user_multi[k];
            let mut n = 0;
            if let Some(values) = col.and_then(|c| list_at(c.as_ref(), i)) {
                for j in 0..values.len() {
                    if n == field.max_len {
                        break;
                    }
                    // Tokens the vocabulary lacks are left out, as the text reader does.
                    let v = id(&field.vocab, values.as_ref(), j, &mut buf);
                    if v != 0 {
                        multi[offset + n] = v;
                        n += 1;
                    }
                }
            }
            lens[k] = n as u8;
            offset += field.max_len;
        }
        table.push(uid, &single, &multi, &lens);
    }
    Ok(table)
}

/// [`raw::stream_users`] for a Parquet pool.
pub fn stream_users<E: From<DataError>>(
    path: &Path,
    schema: &Schema,
    keep: &(dyn Fn(u64) -> bool + Sync),
    progress: &mut dyn FnMut(u64),
    each: &mut dyn FnMut(UserTable) -> std::result::Result<(), E>,
) -> std::result::Result<StreamStats, E> {
    let start = std::time::Instant::now();
    let mut columns = vec!["uid"];
    columns.extend(schema.user_single.iter().map(|f| f.name.as_str()));
    columns.extend(schema.user_multi.iter().map(|f| f.name.as_str()));
    let (batches, total) = reader(path, &columns)?;
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let mut rows = 0;
    for batch in batches {
        let batch = batch.map_err(|e| pq_error(path, e))?;
        let table = encode_batch(path, schema, &batch, rows + 1, keep)?;
        rows += batch.num_rows();
        // Progress in bytes, as the text reader reports it: the file's share read so far.
        progress((bytes as f64 * rows as f64 / total.max(1) as f64) as u64);
        if !table.is_empty() {
            each(table)?;
        }
    }
    if rows == 0 {
        return Err(DataError::new(path, "empty file (no users)").into());
    }
    Ok(StreamStats {
        lines: rows,
        bytes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// [`raw::count_users`] for a Parquet pool (the `uid` column only).
pub fn count_users(path: &Path, skip: &(dyn Fn(u64) -> bool + Sync)) -> Result<usize> {
    let mut rows = 0;
    let mut n = 0;
    for batch in batches(path, &["uid"])? {
        let batch = batch.map_err(|e| pq_error(path, e))?;
        n += uids(path, &batch, rows + 1)?
            .into_iter()
            .filter(|&u| !skip(u))
            .count();
        rows += batch.num_rows();
    }
    Ok(n)
}

/// Writes `uid,score` rows best first as Parquet (`uid` UInt64, `score` Float32), atomically.
pub fn write_audience(path: &Path, rows: &[Scored]) -> Result<()> {
    let schema = Arc::new(ArrowSchema::new(vec![
        Field::new("uid", DataType::UInt64, false),
        Field::new("score", DataType::Float32, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(arrow_array::UInt64Array::from_iter_values(
                rows.iter().map(|r| r.uid),
            )),
            Arc::new(arrow_array::Float32Array::from_iter_values(
                rows.iter().map(|r| r.score),
            )),
        ],
    )
    .map_err(|e| DataError::new(path, format!("cannot build the table: {e}")))?;
    write_batches(path, schema, std::iter::once(Ok(batch)))
}

/// Reads an audience written by [`write_audience`] (any integer `uid`, a float `score`).
pub fn read_audience(path: &Path) -> Result<Vec<Scored>> {
    let mut out = Vec::new();
    for batch in batches(path, &["uid", "score"])? {
        let batch = batch.map_err(|e| pq_error(path, e))?;
        let ids = uids(path, &batch, out.len() + 1)?;
        let col = batch
            .column_by_name("score")
            .ok_or_else(|| DataError::new(path, "no `score` column"))?;
        let scores: Vec<f32> =
            if let Some(a) = col.as_primitive_opt::<arrow_array::types::Float32Type>() {
                a.values().to_vec()
            } else if let Some(a) = col.as_primitive_opt::<arrow_array::types::Float64Type>() {
                a.values().iter().map(|&v| v as f32).collect()
            } else {
                return Err(DataError {
                    file: path.to_path_buf(),
                    line: None,
                    field: Some("score".into()),
                    message: format!("expected floats, found {}", col.data_type()),
                });
            };
        if let Some(i) = (0..batch.num_rows()).find(|&i| col.is_null(i) || !scores[i].is_finite()) {
            return Err(DataError::at(
                path,
                out.len() + i + 1,
                Some("score"),
                "missing or not a finite number",
            ));
        }
        out.extend(
            ids.into_iter()
                .zip(scores)
                .map(|(uid, score)| Scored { uid, score }),
        );
    }
    Ok(out)
}

fn props() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build()
}

/// Writes batches as one Parquet file, atomically.
fn write_batches(
    path: &Path,
    schema: Arc<ArrowSchema>,
    batches: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<()> {
    let mut failure = None;
    crate::atomic::write_atomic_buffered(path, |w| {
        let io = |e: parquet::errors::ParquetError| std::io::Error::other(e.to_string());
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(w, schema, Some(props())).map_err(io)?;
        for b in batches {
            match b {
                Ok(b) => writer.write(&b).map_err(io)?,
                Err(e) => {
                    failure = Some(e);
                    return Err(std::io::Error::other("stopped"));
                }
            }
        }
        writer.close().map_err(io)?;
        Ok(())
    })
    .map_err(|e| failure.unwrap_or(e))
}

/// The fields of a text user file and whether each is multi-valued (some line lists two values or
/// more), in first-seen order: one pass, uids checked.
fn text_fields(path: &Path) -> Result<Vec<(String, bool)>> {
    let mut fields: Vec<(String, bool)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    raw::for_each_line(path, &mut |_, line| {
        for part in line.split('|') {
            let part = part.trim();
            let (name, values) = part.split_once(' ').unwrap_or((part, ""));
            if name.is_empty() || name == "uid" {
                continue;
            }
            let many = values.split_ascii_whitespace().nth(1).is_some();
            let k = *index.entry(name.to_string()).or_insert_with(|| {
                fields.push((name.to_string(), false));
                fields.len() - 1
            });
            fields[k].1 |= many;
        }
        Ok(())
    })?;
    Ok(fields)
}

/// Converts a text user file (`uid N|field v v …|…`) to Parquet: `uid` UInt64, each single-valued
/// field a string column, each multi-valued one a list of strings. Returns the number of users.
pub fn text_to_parquet(src: &Path, dst: &Path) -> Result<usize> {
    use arrow_array::builder::{ListBuilder, StringBuilder, UInt64Builder};
    let fields = text_fields(src)?;
    let mut arrow_fields = vec![Field::new("uid", DataType::UInt64, false)];
    for (name, multi) in &fields {
        arrow_fields.push(if *multi {
            Field::new(
                name,
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                true,
            )
        } else {
            Field::new(name, DataType::Utf8, true)
        });
    }
    let schema = Arc::new(ArrowSchema::new(arrow_fields));
    let position: std::collections::HashMap<&str, usize> = fields
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();

    struct Builders {
        uid: UInt64Builder,
        single: Vec<Option<StringBuilder>>,
        multi: Vec<Option<ListBuilder<StringBuilder>>>,
    }
    let new_builders = || Builders {
        uid: UInt64Builder::new(),
        single: fields
            .iter()
            .map(|(_, m)| (!m).then(StringBuilder::new))
            .collect(),
        multi: fields
            .iter()
            .map(|(_, m)| m.then(|| ListBuilder::new(StringBuilder::new())))
            .collect(),
    };
    let finish = |b: &mut Builders| -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = vec![Arc::new(b.uid.finish())];
        for k in 0..fields.len() {
            cols.push(match (&mut b.single[k], &mut b.multi[k]) {
                (Some(s), _) => Arc::new(s.finish()),
                (_, Some(m)) => Arc::new(m.finish()),
                _ => unreachable!("every field has one builder"),
            });
        }
        RecordBatch::try_new(schema.clone(), cols)
            .map_err(|e| DataError::new(dst, format!("cannot build the table: {e}")))
    };

    // Batches are written as they fill, so memory holds one batch whatever the file's size.
    let mut users = 0;
    let mut failure: Option<DataError> = None;
    crate::atomic::write_atomic_buffered(dst, |w| {
        let io = |e: parquet::errors::ParquetError| std::io::Error::other(e.to_string());
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(w, schema.clone(), Some(props())).map_err(io)?;
        let mut b = new_builders();
        let mut rows = 0;
        let flush = |b: &mut Builders, writer: &mut parquet::arrow::ArrowWriter<_>| {
            let batch = finish(b)?;
            writer
                .write(&batch)
                .map_err(|e| DataError::new(dst, format!("cannot write: {e}")))
        };
        let read = raw::for_each_line(src, &mut |line_no, line| {
            let uid = raw::line_uid(src, line_no, line)?;
            let mut values: Vec<Option<&str>> = vec![None; fields.len()];
            for part in line.split('|') {
                let part = part.trim();
                let (name, v) = part.split_once(' ').unwrap_or((part, ""));
                if let Some(&k) = position.get(name) {
                    values[k] = Some(v.trim());
                }
            }
            b.uid.append_value(uid);
            for (k, v) in values.iter().enumerate() {
                match (&mut b.single[k], &mut b.multi[k], v) {
                    (Some(s), _, Some(v)) if !v.is_empty() => s.append_value(v),
                    (Some(s), _, _) => s.append_null(),
                    (_, Some(m), Some(v)) => {
                        for t in v.split_ascii_whitespace() {
                            m.values().append_value(t);
                        }
                        m.append(true);
                    }
                    (_, Some(m), None) => m.append(false),
                    _ => unreachable!("every field has one builder"),
                }
            }
            rows += 1;
            users += 1;
            if rows == BATCH_ROWS {
                flush(&mut b, &mut writer)?;
                rows = 0;
            }
            Ok(())
        })
        .and_then(|()| match (rows, users) {
            (_, 0) => Err(DataError::new(src, "empty file (no users)")),
            (0, _) => Ok(()),
            _ => flush(&mut b, &mut writer),
        });
        if let Err(e) = read {
            failure = Some(e);
            return Err(std::io::Error::other("stopped"));
        }
        writer.close().map_err(io)?;
        Ok(())
    })
    .map_err(|e| failure.take().unwrap_or(e))?;
    Ok(users)
}

/// Converts a Parquet pool back to the text layout (integers and strings as tokens). Returns the
/// number of users.
pub fn parquet_to_text(src: &Path, dst: &Path) -> Result<usize> {
    let file = std::fs::File::open(src).map_err(|e| DataError::io(src, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| pq_error(src, e))?;
    let arrow_schema = builder.schema().clone();
    let mut fields = Vec::new();
    for f in arrow_schema.fields() {
        if f.name() == "uid" {
            continue;
        }
        let multi = matches!(f.data_type(), DataType::List(_) | DataType::LargeList(_));
        check_column(src, f, multi)?;
        fields.push((f.name().clone(), multi));
    }
    let names: Vec<&str> = std::iter::once("uid")
        .chain(fields.iter().map(|(n, _)| n.as_str()))
        .collect();
    let mut users = 0;
    let mut failure = None;
    let reader = batches(src, &names)?;
    crate::atomic::write_atomic(dst, |w| {
        let (mut buf, mut line) = (String::new(), String::new());
        for batch in reader {
            let read = batch
                .map_err(|e| pq_error(src, e))
                .and_then(|b| uids(src, &b, users + 1).map(|ids| (b, ids)));
            let (batch, ids) = match read {
                Ok(r) => r,
                Err(e) => {
                    failure = Some(e);
                    return Err(std::io::Error::other("stopped"));
                }
            };
            for (i, uid) in ids.iter().enumerate() {
                line.clear();
                let _ = write!(line, "uid {uid}");
                for (name, multi) in &fields {
                    let col = batch.column_by_name(name).expect("projected column");
                    if *multi {
                        let Some(values) = list_at(col.as_ref(), i) else {
                            continue;
                        };
                        let _ = write!(line, "|{name}");
                        for j in 0..values.len() {
                            if let Some(t) = token(values.as_ref(), j, &mut buf) {
                                let _ = write!(line, " {t}");
                            }
                        }
                    } else if let Some(t) = token(col.as_ref(), i, &mut buf) {
                        let _ = write!(line, "|{name} {t}");
                    }
                }
                line.push('\n');
                w.write_all(line.as_bytes())?;
            }
            users += ids.len();
        }
        Ok(())
    })
    .map_err(|e| failure.take().unwrap_or(e))?;
    Ok(users)
}
