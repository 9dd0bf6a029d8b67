//! Multi-task mode's data: MTReclib's processed AliExpress layout (`train.csv`, `test.csv` with a header
//! `search_id, categorical_1..16, numerical_1..63, click, conversion`), read by column name so any number
//! of `categorical_*` and `numerical_*` columns works; the original Tianchi files converted as MTReclib's
//! preprocessing does; and the train/validation/test split with field sizes and standardisation.
//!
//! Two of MTReclib's choices are fixed here (reference doc §5.1, §6.2): field sizes are taken over train ∪
//! test (the reference sizes them from train and indexes out of range on a larger test id), and early
//! stopping gets a validation split carved from train (the reference selects on the test set).

use crate::error::{DataError, Result};
use crate::raw::{find, for_each_line, open};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The rows (defined in core, where the models batch them).
pub use lookalike_core::mtl::MtlTable;

/// The numeric suffix of `prefix_N` (columns are ordered by it, as MTReclib numbers them).
fn suffix(name: &str, prefix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?.parse().ok()
}

/// Where each kind of column sits in a file's header.
struct Columns {
    categorical: Vec<(String, usize)>,
    numerical: Vec<(String, usize)>,
    click: usize,
    conversion: usize,
    width: usize,
}

impl Columns {
    fn of(path: &Path, header: &csv::StringRecord, like: Option<&MtlTable>) -> Result<Columns> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            if seen.insert(name.trim(), i).is_some() {
                return Err(DataError::at(
                    path,
                    1,
                    Some(name),
                    "this column name appears twice in the header",
                ));
            }
        }
        let label = |name: &str| {
            seen.get(name).copied().ok_or_else(|| {
                DataError::at(
                    path,
                    1,
                    Some(name),
                    "missing: the header needs `click` and `conversion` columns",
                )
            })
        };
        let (click, conversion) = (label("click")?, label("conversion")?);
        let kind = |prefix: &str, expected: Option<&[String]>| -> Result<Vec<(String, usize)>> {
            match expected {
                // The test file takes the train file's columns, by name, in the train file's order.
                Some(names) => names
                    .iter()
                    .map(|n| {
                        seen.get(n.as_str())
                            .map(|&i| (n.clone(), i))
                            .ok_or_else(|| {
                                DataError::at(
                                    path,
                                    1,
                                    Some(n),
                                    "missing: the train file has this column",
                                )
                            })
                    })
                    .collect(),
                None => {
                    let mut v: Vec<(String, usize)> = seen
                        .iter()
                        .filter(|(n, _)| n.starts_with(prefix))
                        .map(|(n, &i)| (n.to_string(), i))
                        .collect();
                    v.sort_by_key(|(n, i)| (suffix(n, prefix).unwrap_or(u64::MAX), *i));
                    Ok(v)
                }
            }
        };
        let categorical = kind("categorical_", like.map(|t| &t.categorical[..]))?;
        let numerical = kind("numerical_", like.map(|t| &t.numerical[..]))?;
        if categorical.is_empty() && numerical.is_empty() {
            return Err(DataError::at(
                path,
                1,
                None,
                "no `categorical_*` or `numerical_*` columns in the header",
            ));
        }
        Ok(Columns {
            categorical,
            numerical,
            click,
            conversion,
            width: header.len(),
        })
    }
}

/// Reads one file of the layout (`.csv`, or `.csv.gz`). With `like`, the columns are taken in `like`'s
/// order and every one of them must be present (a test file read against its train file).
pub fn read_csv(path: &Path, like: Option<&MtlTable>) -> Result<MtlTable> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(open(path)?);
    let header = reader
        .headers()
        .map_err(|e| DataError::at(path, 1, None, format!("cannot read the header: {e}")))?
        .clone();
    let cols = Columns::of(path, &header, like)?;
    let name = |i: usize| header.get(i).unwrap_or("").trim().to_string();
    let mut table = MtlTable::new(
        cols.categorical.iter().map(|(n, _)| n.clone()).collect(),
        cols.numerical.iter().map(|(n, _)| n.clone()).collect(),
    );
    let mut cat = vec![0u32; cols.categorical.len()];
    let mut num = vec![0f32; cols.numerical.len()];
    let mut record = csv::StringRecord::new();
    let mut line = 1;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let at = e.position().map_or(line + 1, |p| p.line() as usize);
                return Err(DataError::at(path, at, None, format!("not valid CSV: {e}")));
            }
        }
        line = record.position().map_or(line + 1, |p| p.line() as usize);
        if record.len() != cols.width {
            return Err(DataError::at(
                path,
                line,
                None,
                format!("{} fields, the header has {}", record.len(), cols.width),
            ));
        }
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        for (slot, (n, i)) in cat.iter_mut().zip(&cols.categorical) {
            let v = field(*i);
            *slot = v.parse::<u32>().map_err(|_| {
                DataError::at(
                    path,
                    line,
                    Some(n),
                    format!("{v:?} is not a category id (an integer ≥ 0)"),
                )
            })?;
        }
        for (slot, (n, i)) in num.iter_mut().zip(&cols.numerical) {
            let v = field(*i);
            *slot = match v.parse::<f32>() {
                Ok(x) if x.is_finite() => x,
                _ => {
                    return Err(DataError::at(
                        path,
                        line,
                        Some(n),
                        format!("{v:?} is not a finite number"),
                    ));
                }
            };
        }
        let label = |i: usize| -> Result<bool> {
            match field(i) {
                "0" | "0.0" => Ok(false),
                "1" | "1.0" => Ok(true),
                v => Err(DataError::at(
                    path,
                    line,
                    Some(&name(i)),
                    format!("{v:?} is not a label (0 or 1)"),
                )),
            }
        };
        table.push(&cat, &num, label(cols.click)?, label(cols.conversion)?);
    }
    Ok(table)
}

/// How numerical features enter the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Numerical {
    /// Standardised with the training rows' mean and standard deviation (the product's default).
    Standardise,
    /// As delivered (MTReclib feeds them raw).
    Raw,
}

/// Train, validation and test rows with what the models need to size themselves.
#[derive(Debug, Clone)]
pub struct MtlDataset {
    pub train: MtlTable,
    pub valid: MtlTable,
    pub test: MtlTable,
    /// Rows per categorical field's table: the largest id over train ∪ test, plus one.
    pub field_sizes: Vec<usize>,
    /// Per numerical column (mean, standard deviation) of the training rows, when standardised.
    pub standardised: Option<Vec<(f32, f32)>>,
    pub source: PathBuf,
}

/// Reads `dir/train.csv` and `dir/test.csv`, carves `val_fraction` of the training rows out for
/// validation (a seeded draw; both parts keep the file's order) and prepares the numerical features.
pub fn load(dir: &Path, val_fraction: f64, seed: u64, numerical: Numerical) -> Result<MtlDataset> {
    let train_path = find(dir, "train.csv")?;
    let all = read_csv(&train_path, None)?;
    let test = read_csv(&find(dir, "test.csv")?, Some(&all))?;
    if all.len() < 2 {
        return Err(DataError::new(
            &train_path,
            "fewer than 2 rows: nothing to train and validate on",
        ));
    }
    let (train, valid) = split(&all, val_fraction, seed);
    Ok(assemble(train, valid, test, numerical, dir))
}

/// Splits rows into (train, validation), each in the original order.
pub fn split(all: &MtlTable, val_fraction: f64, seed: u64) -> (MtlTable, MtlTable) {
    let n = all.len();
    let k = ((n as f64 * val_fraction).round() as usize).min(n.saturating_sub(1));
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut valid: Vec<usize> = idx[..k].to_vec();
    let mut train: Vec<usize> = idx[k..].to_vec();
    valid.sort_unstable();
    train.sort_unstable();
    (all.select(&train), all.select(&valid))
}

/// Field sizes over every part, and the numerical features prepared with the training rows' statistics.
pub fn assemble(
    mut train: MtlTable,
    mut valid: MtlTable,
    mut test: MtlTable,
    numerical: Numerical,
    source: &Path,
) -> MtlDataset {
    let c = train.categorical.len();
    let mut field_sizes = vec![1usize; c];
    for t in [&train, &valid, &test] {
        for row in t.cat.chunks(c.max(1)) {
            for (s, &v) in field_sizes.iter_mut().zip(row) {
                *s = (*s).max(v as usize + 1);
            }
        }
    }
    let standardised = (numerical == Numerical::Standardise).then(|| {
        let stats = column_stats(&train);
        for t in [&mut train, &mut valid, &mut test] {
            standardise(t, &stats);
        }
        stats
    });
    MtlDataset {
        train,
        valid,
        test,
        field_sizes,
        standardised,
        source: source.to_path_buf(),
    }
}

/// (mean, standard deviation) of each numerical column; a constant column gets deviation 1.
pub fn column_stats(t: &MtlTable) -> Vec<(f32, f32)> {
    let n = t.numerical.len();
    let rows = t.len().max(1) as f64;
    let mut sum = vec![0f64; n];
    let mut sq = vec![0f64; n];
    for row in t.num.chunks(n.max(1)) {
        for (j, &x) in row.iter().enumerate() {
            sum[j] += x as f64;
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / rows).collect();
    for row in t.num.chunks(n.max(1)) {
        for (j, &x) in row.iter().enumerate() {
            let d = x as f64 - mean[j];
            sq[j] += d * d;
        }
    }
    mean.iter()
        .zip(&sq)
        .map(|(&m, &s)| {
            let sd = (s / rows).sqrt();
            (m as f32, if sd > 1e-12 { sd as f32 } else { 1.0 })
        })
        .collect()
}

pub fn standardise(t: &mut MtlTable, stats: &[(f32, f32)]) {
    let n = stats.len();
    for row in t.num.chunks_mut(n.max(1)) {
        for (x, &(m, s)) in row.iter_mut().zip(stats) {
            *x = (*x - m) / s;
        }
    }
}

/// Writes a table in the layout (`search_id` first, from `search_ids`), atomically.
pub fn write_csv(path: &Path, t: &MtlTable, search_ids: &[u64]) -> Result<()> {
    crate::atomic::write_atomic_buffered(path, |w| {
        write!(w, "search_id")?;
        for n in t.categorical.iter().chain(&t.numerical) {
            write!(w, ",{n}")?;
        }
        writeln!(w, ",click,conversion")?;
        let (c, n) = (t.categorical.len(), t.numerical.len());
        for (r, id) in search_ids.iter().enumerate().take(t.len()) {
            write!(w, "{id}")?;
            for v in &t.cat[r * c..(r + 1) * c] {
                write!(w, ",{v}")?;
            }
            for v in &t.num[r * n..(r + 1) * n] {
                write_number(w, *v)?;
            }
            writeln!(w, ",{},{}", t.click[r], t.conversion[r])?;
        }
        Ok(())
    })
}

/// A number as `,x` with at most 5 significant digits (the data's precision; keeps files small).
fn write_number(w: &mut dyn Write, v: f32) -> std::io::Result<()> {
    if v == v.trunc() && v.abs() < 1e7 {
        return write!(w, ",{}", v as i64);
    }
    let digits = (4 - v.abs().log10().floor() as i32).clamp(0, 8) as usize;
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    write!(w, ",{s}")
}

/// The original Tianchi files' columns (MTReclib's `data/preprocess.py`): categorical user and item
/// columns (the first, `user_1`, is the search id) and the label column.
const USER_CATEGORICAL: [usize; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 32, 33];
const ITEM_CATEGORICAL: [usize; 7] = [19, 34, 35, 36, 40, 41, 42];
const USER_COLUMNS: usize = 33;
const ITEM_COLUMNS: usize = 49;

/// The four countries MTReclib's preprocessing supports.
pub const COUNTRIES: [&str; 4] = ["NL", "ES", "FR", "US"];

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub train_rows: usize,
    pub test_rows: usize,
    /// Item rows whose search id has no user row (an inner join drops them).
    pub unmatched: usize,
}

/// Converts a country's Tianchi files (`{cc}_user_{train,test}.csv`, 33 columns, and
/// `{cc}_item_{train,test}.csv`, 49 columns, no headers) in `src` into `out/train.csv` and `out/test.csv`:
/// user and item rows inner-joined on the search id, 16 categorical and 63 numerical columns, label
/// 0/1/2 → (click, conversion) = (0,0), (1,0), (1,1).
pub fn convert_tianchi(src: &Path, country: &str, out: &Path) -> Result<Converted> {
    let cc = country.to_lowercase();
    if !COUNTRIES.iter().any(|c| c.eq_ignore_ascii_case(country)) {
        return Err(DataError::new(
            src,
            format!("country {country:?}: MTReclib's preprocessing supports NL, ES, FR and US"),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| DataError::new(out, format!("cannot create: {e}")))?;
    let mut counts = [0usize; 2];
    let mut unmatched = 0;
    for (k, part) in ["train", "test"].into_iter().enumerate() {
        let user_path = find(src, &format!("{cc}_user_{part}.csv"))?;
        let item_path = find(src, &format!("{cc}_item_{part}.csv"))?;
        // One user row per search id: kept in memory, the item rows streamed past it.
        let mut users: HashMap<String, Vec<String>> = HashMap::new();
        for_each_row(&user_path, USER_COLUMNS, &mut |_, row| {
            users.insert(row[0].clone(), row);
            Ok(())
        })?;
        let user_num: Vec<usize> = (2..=USER_COLUMNS)
            .filter(|c| !USER_CATEGORICAL.contains(c))
            .collect();
        let item_num: Vec<usize> = (2..ITEM_COLUMNS)
            .filter(|c| !ITEM_CATEGORICAL.contains(c))
            .collect();
        let categorical: Vec<String> = (1..=USER_CATEGORICAL.len() + ITEM_CATEGORICAL.len() - 1)
            .map(|i| format!("categorical_{i}"))
            .collect();
        let numerical: Vec<String> = (1..=user_num.len() + item_num.len())
            .map(|i| format!("numerical_{i}"))
            .collect();
        let dst = out.join(format!("{part}.csv"));
        let mut rows = 0;
        // A bad item row stops the write (nothing is left half-written) and is reported as itself.
        let mut failure: Option<DataError> = None;
        let written = crate::atomic::write_atomic_buffered(&dst, |w| {
            write!(w, "search_id")?;
            for n in categorical.iter().chain(&numerical) {
                write!(w, ",{n}")?;
            }
            writeln!(w, ",click,conversion")?;
            let r = for_each_row(&item_path, ITEM_COLUMNS, &mut |line, item| {
                let Some(user) = users.get(&item[0]) else {
                    unmatched += 1;
                    return Ok(());
                };
                let (click, conversion) = match item[ITEM_COLUMNS - 1].as_str() {
                    "0" => (0, 0),
                    "1" => (1, 0),
                    "2" => (1, 1),
                    v => {
                        return Err(DataError::at(
                            &item_path,
                            line,
                            Some(&format!("item_{ITEM_COLUMNS}")),
                            format!("{v:?} is not a label (0, 1 or 2)"),
                        ));
                    }
                };
                let io = |e: std::io::Error| DataError::new(&dst, format!("cannot write: {e}"));
                write!(w, "{}", user[0]).map_err(io)?;
                for &c in &USER_CATEGORICAL[1..] {
                    write!(w, ",{}", user[c - 1]).map_err(io)?;
                }
                for &c in &ITEM_CATEGORICAL {
                    write!(w, ",{}", item[c - 1]).map_err(io)?;
                }
                for &c in &user_num {
                    write!(w, ",{}", user[c - 1]).map_err(io)?;
                }
                for &c in &item_num {
                    write!(w, ",{}", item[c - 1]).map_err(io)?;
                }
                writeln!(w, ",{click},{conversion}").map_err(io)?;
                rows += 1;
                Ok(())
            });
            r.map_err(|e| {
                failure = Some(e);
                std::io::Error::other("a bad row")
            })
        });
        if let Some(e) = failure {
            return Err(e);
        }
        written?;
        counts[k] = rows;
    }
    Ok(Converted {
        train_rows: counts[0],
        test_rows: counts[1],
        unmatched,
    })
}

/// Each row of a header-less CSV file of `width` columns, with its line number.
fn for_each_row(
    path: &Path,
    width: usize,
    each: &mut dyn FnMut(usize, Vec<String>) -> Result<()>,
) -> Result<()> {
    for_each_line(path, &mut |line, text| {
        let row: Vec<String> = text.split(',').map(|s| s.trim().to_string()).collect();
        if row.len() != width {
            return Err(DataError::at(
                path,
                line,
                None,
                format!("{} columns, expected {width}", row.len()),
            ));
        }
        each(line, row)
    })
}
