//! Readers for the Tencent 2018 look-alike raw layout: `adFeature.csv`, `userFeature.data`,
//! `train.csv` (stage 1) and `test1_truth.csv` (stage 2). Each file may also be gzipped (`NAME.gz`).
//! Every problem is reported with the file, line and field.

use crate::error::{DataError, Result};
use lookalike_core::data::UserTable;
use lookalike_core::schema::{
    DEFAULT_AD, DEFAULT_USER_MULTI, DEFAULT_USER_SINGLE, Schema, Vocabulary,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

pub const AD_FILE: &str = "adFeature.csv";
pub const USER_FILE: &str = "userFeature.data";
pub const STAGE1_FILE: &str = "train.csv";
pub const STAGE2_FILE: &str = "test1_truth.csv";

/// Which raw fields the model reads, and the max length of each multi-valued field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FieldSpec {
    pub user_single: Vec<String>,
    pub user_multi: Vec<(String, usize)>,
    pub ad: Vec<String>,
}

impl Default for FieldSpec {
    fn default() -> Self {
        FieldSpec {
            user_single: DEFAULT_USER_SINGLE.iter().map(|s| s.to_string()).collect(),
            user_multi: DEFAULT_USER_MULTI
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
            ad: DEFAULT_AD.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl FieldSpec {
    /// The spec a schema was built from.
    pub fn of(schema: &Schema) -> Self {
        FieldSpec {
            user_single: schema.user_single.iter().map(|f| f.name.clone()).collect(),
            user_multi: schema
                .user_multi
                .iter()
                .map(|f| (f.name.clone(), f.max_len))
                .collect(),
            ad: schema.ad.iter().map(|f| f.name.clone()).collect(),
        }
    }

    pub fn multi_width(&self) -> usize {
        self.user_multi.iter().map(|(_, n)| n).sum()
    }

    /// Each multi-valued field's first slot in a user's row.
    pub fn multi_offsets(&self) -> Vec<usize> {
        self.user_multi
            .iter()
            .scan(0, |o, (_, n)| {
                let cur = *o;
                *o += n;
                Some(cur)
            })
            .collect()
    }

    /// The user fields it names, single- and multi-valued.
    pub fn user_names(&self) -> HashSet<&str> {
        self.user_single
            .iter()
            .map(String::as_str)
            .chain(self.user_multi.iter().map(|(n, _)| n.as_str()))
            .collect()
    }
}

/// `dir/name`, or `dir/name.gz` when only that exists.
pub fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(DataError::new(
        &plain,
        format!(
            "missing file (neither {name} nor {name}.gz is in {})",
            dir.display()
        ),
    ))
}

/// Opens a file, decompressing `.gz` transparently.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>> {
    let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(
            BufReader::with_capacity(1 << 20, f),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
    }
}

fn utf8<'a>(path: &Path, line: usize, field: Option<&str>, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        DataError::at(
            path,
            line,
            field,
            format!("not valid UTF-8 (byte {} of the value)", e.valid_up_to()),
        )
    })
}

fn strip_bom(s: &[u8]) -> &[u8] {
    s.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(s)
}

/// Ad-side feature values per aid (raw strings; empty = missing).
#[derive(Debug, Clone, Default)]
pub struct AdTable {
    pub fields: Vec<String>,
    pub ads: HashMap<String, Vec<String>>,
}

/// Reads `adFeature.csv` (with header) keeping the `aid` column and the requested ad fields.
pub fn read_ads(path: &Path, fields: &[String]) -> Result<AdTable> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(open(path)?);
    let mut records = rdr.byte_records();
    let header = match records.next() {
        None => {
            return Err(DataError::new(
                path,
                "empty file (expected a header line starting with `aid`)",
            ));
        }
        Some(r) => r.map_err(|e| csv_error(path, e))?,
    };
    let names: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 { strip_bom(h) } else { h };
            utf8(path, 1, None, h).map(|s| s.trim().to_string())
        })
        .collect::<Result<_>>()?;
    let col = |name: &str| {
        names.iter().position(|n| n == name).ok_or_else(|| {
            DataError::at(
                path,
                1,
                Some(name),
                format!("missing column in header {names:?}"),
            )
        })
    };
    let aid_col = col("aid")?;
    let cols: Vec<usize> = fields.iter().map(|f| col(f)).collect::<Result<_>>()?;
    let mut ads = HashMap::new();
    for rec in records {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        if rec.len() == 1 && rec[0].is_empty() {
            continue;
        }
        if rec.len() != names.len() {
            return Err(DataError::at(
                path,
                line,
                None,
                format!(
                    "expected {} columns like the header, found {}",
                    names.len(),
                    rec.len()
                ),
            ));
        }
        let aid = utf8(path, line, Some("aid"), &rec[aid_col])?
            .trim()
            .to_string();
        if aid.is_empty() {
            return Err(DataError::at(path, line, Some("aid"), "empty aid"));
        }
        let values = cols
            .iter()
            .zip(fields)
            .map(|(&c, f)| utf8(path, line, Some(f), &rec[c]).map(|s| s.trim().to_string()))
            .collect::<Result<Vec<_>>>()?;
        if ads.insert(aid.clone(), values).is_some() {
            return Err(DataError::at(
                path,
                line,
                Some("aid"),
                format!("aid {aid} appears twice"),
            ));
        }
    }
    if ads.is_empty() {
        return Err(DataError::new(
            path,
            "no ads (the file has a header but no rows)",
        ));
    }
    Ok(AdTable {
        fields: fields.to_vec(),
        ads,
    })
}

fn csv_error(path: &Path, e: csv::Error) -> DataError {
    let line = e.position().map(|p| p.line() as usize);
    let msg = match e.kind() {
        csv::ErrorKind::Io(io) => format!("cannot read: {io}"),
        _ => e.to_string(),
    };
    DataError {
        file: path.to_path_buf(),
        line,
        field: None,
        message: msg,
    }
}

/// Labelled rows of one stage: (aid, uid, label), the aids interned.
#[derive(Debug, Clone, Default)]
pub struct RowFile {
    pub aids: Vec<String>,
    /// (aid index, uid, label)
    pub rows: Vec<(u32, u64, bool)>,
}

/// Reads `aid,uid,label` rows (label 1 = seed/positive, −1 or 0 = negative).
///
/// `header`: `true` requires the `aid,uid,label` header (train.csv); `false` means none is expected
/// (test1_truth.csv), though a header line is tolerated. Aids must exist in `ads`.
pub fn read_rows(path: &Path, header: bool, ads: &AdTable) -> Result<RowFile> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(open(path)?);
    let mut out = RowFile::default();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut rec = csv::ByteRecord::new();
    let mut first = true;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, e)),
        }
        let line = rec.position().map_or(0, |p| p.line() as usize);
        if rec.len() == 1 && rec[0].is_empty() {
            continue;
        }
        let col0 = if first { strip_bom(&rec[0]) } else { &rec[0] };
        if first {
            first = false;
            let is_header = col0.eq_ignore_ascii_case(b"aid");
            if header && !is_header {
                return Err(DataError::at(
                    path,
                    line,
                    None,
                    "expected the header `aid,uid,label`",
                ));
            }
            if is_header {
                let names: Vec<&[u8]> = rec.iter().collect();
                if names.len() != 3 || names[1] != b"uid" || names[2] != b"label" {
                    return Err(DataError::at(
                        path,
                        line,
                        None,
                        "expected the header `aid,uid,label`",
                    ));
                }
                continue;
            }
        }
        if rec.len() != 3 {
            return Err(DataError::at(
                path,
                line,
                None,
                format!("expected 3 columns (aid,uid,label), found {}", rec.len()),
            ));
        }
        let aid = utf8(path, line, Some("aid"), col0)?.trim();
        let uid_s = utf8(path, line, Some("uid"), &rec[1])?.trim();
        let uid: u64 = uid_s.parse().map_err(|_| {
            DataError::at(
                path,
                line,
                Some("uid"),
                format!("{uid_s:?} is not a non-negative integer id"),
            )
        })?;
        let label = match utf8(path, line, Some("label"), &rec[2])?.trim() {
            "1" => true,
            "-1" | "0" => false,
            other => {
                return Err(DataError::at(
                    path,
                    line,
                    Some("label"),
                    format!("{other:?} is not a label (expected 1, -1 or 0)"),
                ));
            }
        };
        let a = match index.get(aid) {
            Some(&a) => a,
            None => {
                if aid.is_empty() {
                    return Err(DataError::at(path, line, Some("aid"), "empty aid"));
                }
                if !ads.ads.contains_key(aid) {
                    return Err(DataError::at(
                        path,
                        line,
                        Some("aid"),
                        format!("aid {aid} is not in {AD_FILE}"),
                    ));
                }
                let a = out.aids.len() as u32;
                out.aids.push(aid.to_string());
                index.insert(aid.to_string(), a);
                a
            }
        };
        out.rows.push((a, uid, label));
    }
    if out.rows.is_empty() {
        return Err(DataError::new(path, "no rows"));
    }
    Ok(out)
}

/// Statistics of a user-file pass.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserStats {
    pub lines: usize,
    pub bytes: u64,
    pub kept: usize,
    pub seconds: f64,
}

impl UserStats {
    pub fn lines_per_second(&self) -> f64 {
        self.lines as f64 / self.seconds.max(1e-9)
    }
}

/// How user tokens become ids.
pub enum Vocabs<'a> {
    /// Build sorted vocabularies from the users read.
    Build,
    /// Use existing ones (a record's schema); unseen tokens map to 0.
    Apply(&'a Schema),
}

/// Users read from `userFeature.data`, with the vocabularies of their fields.
pub struct Users {
    pub table: UserTable,
    pub single_vocab: Vec<Vocabulary>,
    pub multi_vocab: Vec<Vocabulary>,
    pub stats: UserStats,
}

enum Slot {
    Single(usize),
    Multi(usize),
}

/// Per-field token → id mapping for one block: local ids while building, global ids when applying.
enum Interner<'a> {
    Local(HashMap<&'a str, u32>, Vec<&'a str>),
    Global(&'a Vocabulary),
}

impl<'a> Interner<'a> {
    fn id(&mut self, token: &'a str) -> u32 {
        match self {
            Interner::Global(v) => v.id(token),
            Interner::Local(map, list) => *map.entry(token).or_insert_with(|| {
                list.push(token);
                list.len() as u32
            }),
        }
    }

    fn tokens(&self) -> Vec<String> {
        match self {
            Interner::Local(_, list) => list.iter().map(|s| s.to_string()).collect(),
            Interner::Global(_) => Vec::new(),
        }
    }
}

struct Block {
    data: Vec<u8>,
    first_line: usize,
}

impl Block {
    /// Its non-blank lines as (line number, text), CR stripped, UTF-8 checked against `path`.
    fn lines<'b>(&'b self, path: &'b Path) -> impl Iterator<Item = Result<(usize, &'b str)>> + 'b {
        self.data
            .split(|&c| c == b'\n')
            .enumerate()
            .map(|(k, raw)| (self.first_line + k, raw.strip_suffix(b"\r").unwrap_or(raw)))
            .filter(|(_, raw)| !raw.iter().all(|c| c.is_ascii_whitespace()))
            .map(move |(n, raw)| Ok((n, utf8(path, n, None, raw)?)))
    }
}

struct Chunk {
    uids: Vec<u64>,
    lines: Vec<usize>,
    single: Vec<u32>,
    multi: Vec<u32>,
    lens: Vec<u8>,
    /// Local vocabularies (build mode): token of local id i+1.
    single_tokens: Vec<Vec<String>>,
    multi_tokens: Vec<Vec<String>>,
    lines_read: usize,
}

const BLOCK_BYTES: usize = 8 << 20;

/// Where each user field goes: its slot, and each multi-valued field's first column.
struct Layout<'a> {
    slots: HashMap<&'a str, Slot>,
    offsets: Vec<usize>,
}

impl<'a> Layout<'a> {
    fn of(spec: &'a FieldSpec) -> Self {
        let mut slots: HashMap<&str, Slot> = HashMap::new();
        for (i, f) in spec.user_single.iter().enumerate() {
            slots.insert(f, Slot::Single(i));
        }
        for (i, (f, _)) in spec.user_multi.iter().enumerate() {
            slots.insert(f, Slot::Multi(i));
        }
        Layout {
            slots,
            offsets: spec.multi_offsets(),
        }
    }
}

/// A user file read in groups of blocks of whole lines (a few per thread), to be parsed in parallel.
struct Blocks {
    reader: Box<dyn Read + Send>,
    path: PathBuf,
    carry: Vec<u8>,
    next_line: usize,
    bytes_read: u64,
    eof: bool,
    first_block: bool,
}

impl Blocks {
    fn open(path: &Path) -> Result<Self> {
        Ok(Blocks {
            reader: open(path)?,
            path: path.to_path_buf(),
            carry: Vec::new(),
            next_line: 1,
            bytes_read: 0,
            eof: false,
            first_block: true,
        })
    }

    /// The next group of blocks; `None` at the end of the file.
    fn next_group(&mut self) -> Result<Option<Vec<Block>>> {
        if self.eof {
            return Ok(None);
        }
        let threads = rayon::current_num_threads().max(1);
        let mut group = Vec::with_capacity(threads * 2);
        while group.len() < threads * 2 && !self.eof {
            let mut buf = std::mem::take(&mut self.carry);
            let old = buf.len();
            buf.resize(old + BLOCK_BYTES, 0);
            let mut filled = old;
            while filled < buf.len() {
                let n = self
                    .reader
                    .read(&mut buf[filled..])
                    .map_err(|e| DataError::io(&self.path, e))?;
                if n == 0 {
                    self.eof = true;
                    break;
                }
                filled += n;
            }
            buf.truncate(filled);
            self.bytes_read += (filled - old) as u64;
            if self.first_block {
                self.first_block = false;
                if buf.starts_with(b"\xEF\xBB\xBF") {
                    buf.drain(..3);
                }
            }
            if !self.eof {
                match memchr::memrchr(b'\n', &buf) {
                    Some(cut) => self.carry = buf.split_off(cut + 1),
                    None => {
                        // A line longer than a block: read on.
                        self.carry = buf;
                        continue;
                    }
                }
            }
            let lines = memchr::memchr_iter(b'\n', &buf).count()
                + usize::from(!buf.ends_with(b"\n") && !buf.is_empty());
            group.push(Block {
                data: buf,
                first_line: self.next_line,
            });
            self.next_line += lines;
        }
        Ok(Some(group))
    }
}

/// Statistics of a streamed pass (see [`stream_users`]).
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    pub lines: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// Streams the users of `userFeature.data` that `keep` accepts (judged by uid before anything else
/// on the line is parsed), encoded with a record's vocabularies (unseen tokens as unknown), to `each`
/// in pieces of a few blocks (file order), so a pool of any size is read in memory bounded by a few
/// blocks. Unlike [`read_users`] a uid listed twice is not detected (that would need every uid in
/// memory).
pub fn stream_users<E: From<DataError>>(
    path: &Path,
    schema: &Schema,
    keep: &(dyn Fn(u64) -> bool + Sync),
    progress: &mut dyn FnMut(u64),
    each: &mut dyn FnMut(UserTable) -> std::result::Result<(), E>,
) -> std::result::Result<StreamStats, E> {
    let start = std::time::Instant::now();
    let spec = FieldSpec::of(schema);
    let Layout { slots, offsets } = Layout::of(&spec);
    let mut blocks = Blocks::open(path)?;
    let mut lines = 0;
    while let Some(group) = blocks.next_group()? {
        let parsed: Vec<Chunk> = group
            .par_iter()
            .map(|b| parse_block(path, b, &spec, &slots, &offsets, keep, Some(schema)))
            .collect::<Result<_>>()?;
        for c in parsed {
            lines += c.lines_read;
            if c.uids.is_empty() {
                continue;
            }
            let mut table = UserTable::new(schema);
            table.uids = c.uids;
            table.single = c.single;
            table.multi = c.multi;
            table.lens = c.lens;
            each(table)?;
        }
        progress(blocks.bytes_read);
    }
    if lines == 0 {
        return Err(DataError::new(path, "empty file (no users)").into());
    }
    Ok(StreamStats {
        lines,
        bytes: blocks.bytes_read,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Calls `f(line number, line)` for every non-blank line of a text file (gzip, BOM and CRLF handled),
/// in order.
pub(crate) fn for_each_line(
    path: &Path,
    f: &mut dyn FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    let mut blocks = Blocks::open(path)?;
    while let Some(group) = blocks.next_group()? {
        for b in group {
            for line in b.lines(path) {
                let (n, line) = line?;
                f(n, line)?;
            }
        }
    }
    Ok(())
}

/// The users of `userFeature.data` (lines with a uid) that `skip` does not reject, counted from the
/// uids alone (no feature is parsed).
pub fn count_users(path: &Path, skip: &(dyn Fn(u64) -> bool + Sync)) -> Result<usize> {
    let mut blocks = Blocks::open(path)?;
    let mut n = 0;
    while let Some(group) = blocks.next_group()? {
        let counts: Vec<usize> = group
            .par_iter()
            .map(|b| -> Result<usize> {
                let mut n = 0;
                for line in b.lines(path) {
                    let (no, line) = line?;
                    n += usize::from(!skip(line_uid(path, no, line)?));
                }
                Ok(n)
            })
            .collect::<Result<_>>()?;
        n += counts.iter().sum::<usize>();
    }
    Ok(n)
}

/// The `uid N` field of one line of `userFeature.data`.
pub(crate) fn line_uid(path: &Path, line_no: usize, line: &str) -> Result<u64> {
    for part in line.split('|') {
        let part = part.trim();
        let (name, values) = part.split_once(' ').unwrap_or((part, ""));
        if name == "uid" {
            let v = values.trim();
            return v.parse().map_err(|_| {
                DataError::at(
                    path,
                    line_no,
                    Some("uid"),
                    format!("{v:?} is not a non-negative integer id"),
                )
            });
        }
    }
    Err(DataError::at(
        path,
        line_no,
        Some("uid"),
        "missing (each line must hold `uid N`)",
    ))
}

/// Streams `userFeature.data` in blocks of whole lines, parses blocks in parallel, and keeps the users
/// in `needed` (all users when `None`). Memory holds the kept users plus a few blocks in flight.
pub fn read_users(
    path: &Path,
    spec: &FieldSpec,
    needed: Option<&HashSet<u64>>,
    vocabs: Vocabs<'_>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Users> {
    let start = std::time::Instant::now();
    let Layout { slots, offsets } = Layout::of(spec);
    let schema = match &vocabs {
        Vocabs::Apply(s) => Some(*s),
        Vocabs::Build => None,
    };
    let keep = |uid: u64| needed.is_none_or(|set| set.contains(&uid));
    let parse = |b: &Block| parse_block(path, b, spec, &slots, &offsets, &keep, schema);

    let mut blocks = Blocks::open(path)?;
    let mut chunks: Vec<Chunk> = Vec::new();
    while let Some(group) = blocks.next_group()? {
        let parsed: Vec<Chunk> = group.par_iter().map(parse).collect::<Result<_>>()?;
        chunks.extend(parsed);
        progress(blocks.bytes_read);
    }
    let bytes_read = blocks.bytes_read;
    let lines_read: usize = chunks.iter().map(|c| c.lines_read).sum();
    if lines_read == 0 {
        return Err(DataError::new(path, "empty file (no users)"));
    }

    // Global vocabularies, then local → global ids.
    let (single_vocab, multi_vocab) = match vocabs {
        Vocabs::Apply(s) => (
            s.user_single.iter().map(|f| f.vocab.clone()).collect(),
            s.user_multi.iter().map(|f| f.vocab.clone()).collect(),
        ),
        Vocabs::Build => {
            let build =
                |n: usize, get: &(dyn Fn(&Chunk) -> &Vec<Vec<String>> + Sync)| -> Vec<Vocabulary> {
                    (0..n)
                        .into_par_iter()
                        .map(|f| {
                            let mut set: HashSet<&str> = HashSet::new();
                            for c in &chunks {
                                set.extend(get(c)[f].iter().map(String::as_str));
                            }
                            Vocabulary::from_tokens(set.into_iter().map(str::to_string))
                        })
                        .collect()
                };
            (
                build(spec.user_single.len(), &|c| &c.single_tokens),
                build(spec.user_multi.len(), &|c| &c.multi_tokens),
            )
        }
    };
    let remap = |tokens: &Vec<Vec<String>>, vocab: &[Vocabulary]| -> Vec<Vec<u32>> {
        tokens
            .iter()
            .zip(vocab)
            .map(|(t, v)| {
                std::iter::once(0)
                    .chain(t.iter().map(|s| v.id(s)))
                    .collect()
            })
            .collect()
    };
    // Build mode: the blocks hold local ids; map them to the global vocabularies.
    if schema.is_none() {
        let slot_field: Vec<usize> = spec
            .user_multi
            .iter()
            .enumerate()
            .flat_map(|(f, (_, len))| std::iter::repeat_n(f, *len))
            .collect();
        chunks.par_iter_mut().for_each(|c| {
            let sm = remap(&c.single_tokens, &single_vocab);
            for (i, id) in c.single.iter_mut().enumerate() {
                *id = sm[i % sm.len()][*id as usize];
            }
            let mm = remap(&c.multi_tokens, &multi_vocab);
            for (i, id) in c.multi.iter_mut().enumerate() {
                *id = mm[slot_field[i % slot_field.len()]][*id as usize];
            }
        });
    }

    let mut table = UserTable {
        single_fields: spec.user_single.len(),
        multi_width: spec.multi_width(),
        multi_fields: spec.user_multi.len(),
        ..Default::default()
    };
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for c in chunks {
        for (&uid, &line) in c.uids.iter().zip(&c.lines) {
            if let Some(prev) = seen.insert(uid, line) {
                return Err(DataError::at(
                    path,
                    line,
                    Some("uid"),
                    format!("uid {uid} appears twice (first on line {prev})"),
                ));
            }
        }
        table.uids.extend(c.uids);
        table.single.extend(c.single);
        table.multi.extend(c.multi);
        table.lens.extend(c.lens);
    }
    let stats = UserStats {
        lines: lines_read,
        bytes: bytes_read,
        kept: table.len(),
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok(Users {
        table,
        single_vocab,
        multi_vocab,
        stats,
    })
}

fn parse_block(
    path: &Path,
    block: &Block,
    spec: &FieldSpec,
    slots: &HashMap<&str, Slot>,
    offsets: &[usize],
    keep: &(dyn Fn(u64) -> bool + Sync),
    schema: Option<&Schema>,
) -> Result<Chunk> {
    let n_single = spec.user_single.len();
    let width = spec.multi_width();
    let n_multi = spec.user_multi.len();
    let mut single_int: Vec<Interner> = (0..n_single)
        .map(|i| match schema {
            Some(s) => Interner::Global(&s.user_single[i].vocab),
            None => Interner::Local(HashMap::new(), Vec::new()),
        })
        .collect();
    let mut multi_int: Vec<Interner> = (0..n_multi)
        .map(|i| match schema {
            Some(s) => Interner::Global(&s.user_multi[i].vocab),
            None => Interner::Local(HashMap::new(), Vec::new()),
        })
        .collect();
    let mut c = Chunk {
        uids: Vec::new(),
        lines: Vec::new(),
        single: Vec::new(),
        multi: Vec::new(),
        lens: Vec::new(),
        single_tokens: Vec::new(),
        multi_tokens: Vec::new(),
        lines_read: 0,
    };
    let mut single = vec![0u32; n_single];
    let mut multi = vec![0u32; width];
    let mut lens = vec![0u8; n_multi];
    let mut seen_field = vec![false; n_single + n_multi];
    for (k, raw) in block.data.split(|&b| b == b'\n').enumerate() {
        let line_no = block.first_line + k;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        c.lines_read += 1;
        let line = utf8(path, line_no, None, raw)?;
        // uid first: most lines of a big file may be skipped.
        let uid = line_uid(path, line_no, line)?;
        single.fill(0);
        multi.fill(0);
        lens.fill(0);
        seen_field.fill(false);
        if !keep(uid) {
            continue;
        }
        for part in line.split('|') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, values) = part.split_once(' ').unwrap_or((part, ""));
            let Some(slot) = slots.get(name) else {
                continue;
            };
            let values = values.trim();
            match *slot {
                Slot::Single(i) => {
                    if std::mem::replace(&mut seen_field[i], true) {
                        return Err(DataError::at(
                            path,
                            line_no,
                            Some(name),
                            "appears twice on the line",
                        ));
                    }
                    if !values.is_empty() {
                        single[i] = single_int[i].id(values);
                    }
                }
                Slot::Multi(i) => {
                    if std::mem::replace(&mut seen_field[n_single + i], true) {
                        return Err(DataError::at(
                            path,
                            line_no,
                            Some(name),
                            "appears twice on the line",
                        ));
                    }
                    let max = spec.user_multi[i].1;
                    let mut n = 0;
                    for tok in values.split_ascii_whitespace() {
                        if n == max {
                            break;
                        }
                        // A token the vocabulary lacks (a new pool read with a record's vocabulary)
                        // is left out, so it does not count as present in the masked mean.
                        let id = multi_int[i].id(tok);
                        if id == 0 {
                            continue;
                        }
                        multi[offsets[i] + n] = id;
                        n += 1;
                    }
                    lens[i] = n as u8;
                }
            }
        }
        c.uids.push(uid);
        c.lines.push(line_no);
        c.single.extend_from_slice(&single);
        c.multi.extend_from_slice(&multi);
        c.lens.extend_from_slice(&lens);
    }
    c.single_tokens = single_int.iter().map(Interner::tokens).collect();
    c.multi_tokens = multi_int.iter().map(Interner::tokens).collect();
    Ok(c)
}

/// What one user field of `userFeature.data` looks like over the users a survey kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSeen {
    pub name: String,
    /// The most values one user's line holds.
    pub max_len: usize,
    /// Values over all users (a value listed twice by a user counts twice).
    pub values: usize,
    /// Distinct values; counted only for fields not in the list the survey was given (see
    /// [`survey_users`]), 0 for the others.
    pub distinct: usize,
}

impl FieldSeen {
    /// A field whose values are mostly one user's own (a device id, a phone number): no other user
    /// shares them, so no model can learn from them, and its table would grow with the users.
    pub fn is_id_like(&self) -> bool {
        self.distinct * 2 > self.values && self.values >= 20
    }
}

#[derive(Default)]
struct Tally<'a> {
    max_len: usize,
    values: usize,
    distinct: HashSet<&'a str>,
}

/// Every field `userFeature.data` holds for the users `keep` accepts (`uid` aside), sorted by name:
/// how many values its users list, and the most one of them lists. Distinct values are counted for the
/// fields not in `listed` only (those the caller may add), since that needs their values in memory.
pub fn survey_users(
    path: &Path,
    listed: &HashSet<&str>,
    keep: &(dyn Fn(u64) -> bool + Sync),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<FieldSeen>> {
    let mut blocks = Blocks::open(path)?;
    let mut all: HashMap<String, (FieldSeen, HashSet<String>)> = HashMap::new();
    while let Some(group) = blocks.next_group()? {
        let parsed: Vec<HashMap<&str, Tally>> = group
            .par_iter()
            .map(|b| -> Result<HashMap<&str, Tally>> {
                let mut t: HashMap<&str, Tally> = HashMap::new();
                for line in b.lines(path) {
                    let (no, line) = line?;
                    if !keep(line_uid(path, no, line)?) {
                        continue;
                    }
                    for part in line.split('|') {
                        let part = part.trim();
                        let (name, values) = part.split_once(' ').unwrap_or((part, ""));
                        if name.is_empty() || name == "uid" {
                            continue;
                        }
                        let n = values.split_ascii_whitespace().count();
                        if n == 0 {
                            continue;
                        }
                        let e = t.entry(name).or_default();
                        e.values += n;
                        e.max_len = e.max_len.max(n);
                        if !listed.contains(name) {
                            e.distinct.extend(values.split_ascii_whitespace());
                        }
                    }
                }
                Ok(t)
            })
            .collect::<Result<_>>()?;
        for t in parsed {
            for (name, tally) in t {
                let (seen, distinct) = all.entry(name.to_string()).or_insert_with(|| {
                    let seen = FieldSeen {
                        name: name.to_string(),
                        max_len: 0,
                        values: 0,
                        distinct: 0,
                    };
                    (seen, HashSet::new())
                });
                seen.values += tally.values;
                seen.max_len = seen.max_len.max(tally.max_len);
                distinct.extend(tally.distinct.into_iter().map(str::to_string));
            }
        }
        progress(blocks.bytes_read);
    }
    let mut out: Vec<FieldSeen> = all
        .into_values()
        .map(|(mut seen, distinct)| {
            seen.distinct = distinct.len();
            seen
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// How [`FieldSpec::with_every_field`] changed a listed spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldsAdded {
    /// Fields the list did not name, read: single-valued ones, then multi-valued ones with the
    /// length kept (after `prepare`'s screening, those it kept).
    pub single: Vec<String>,
    pub multi: Vec<(String, usize)>,
    /// Listed multi-valued fields whose users list more values than the listed length: (name, the
    /// listed length, the length now kept).
    pub longer: Vec<(String, usize, usize)>,
    /// Fields left out because their values are one user's own ([`FieldSeen::is_id_like`]).
    pub id_like: Vec<String>,
    /// Fields cut to `max_tokens` values: (name, the most values a user lists).
    pub clipped: Vec<(String, usize)>,
    /// Each field found beyond the list with its relation to the training campaigns' labels
    /// ([`crate::screen::field_z`]), set by `prepare`.
    #[serde(default)]
    pub scores: Vec<(String, f64)>,
    /// Fields found beyond the list but left out by that screening (no longer in `single`/`multi`).
    #[serde(default)]
    pub unrelated: Vec<String>,
}

impl FieldsAdded {
    /// What `prepare` says of it, a line each: `Ok` to say, `Err` a warning.
    pub fn report(&self, max_tokens: usize) -> Vec<std::result::Result<String, String>> {
        let list = |items: Vec<String>| items.join(", ");
        let z = |name: &str| {
            self.scores
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |s| s.1)
        };
        let mut out = Vec::new();
        let mut read = Vec::new();
        if !self.single.is_empty() {
            read.push(format!("single-valued {}", self.single.join(", ")));
        }
        if !self.multi.is_empty() {
            let m = self.multi.iter().map(|(n, l)| format!("{n}:{l}"));
            read.push(format!("multi-valued {}", list(m.collect())));
        }
        if !read.is_empty() {
            let names = self.single.iter().chain(self.multi.iter().map(|(n, _)| n));
            out.push(Ok(format!(
                "user fields beyond the reference's list, read (--fields listed leaves them out): {} \
                 (related to the training campaigns' labels, z: {})",
                read.join("; "),
                list(names.map(|n| format!("{n} {:.1}", z(n))).collect())
            )));
        }
        if !self.unrelated.is_empty() {
            let m = self
                .unrelated
                .iter()
                .map(|n| format!("{n} (z {:.1})", z(n)));
            out.push(Ok(format!(
                "user fields beyond the reference's list, left out as unrelated to the training \
                 campaigns' labels (z ≤ {}): {}",
                crate::screen::KEEP_Z,
                list(m.collect())
            )));
        }
        if !self.longer.is_empty() {
            let m = self
                .longer
                .iter()
                .map(|(n, was, now)| format!("{n} {was} → {now}"));
            out.push(Ok(format!(
                "values kept per user, longer than the reference's: {}",
                list(m.collect())
            )));
        }
        if !self.id_like.is_empty() {
            out.push(Err(format!(
                "left out as ids (most values belong to one user, so nothing can be learned from \
                 them): {}",
                self.id_like.join(", ")
            )));
        }
        if !self.clipped.is_empty() {
            let m = self
                .clipped
                .iter()
                .map(|(n, most)| format!("{n} (up to {most})"));
            out.push(Err(format!(
                "the first {max_tokens} values kept of {} (--max-tokens)",
                list(m.collect())
            )));
        }
        out
    }
}

impl FieldSpec {
    /// This spec with every other user field the data holds (`seen`, from [`survey_users`]) added
    /// after the listed ones, in name order (a field with more than one value on some line as
    /// multi-valued), and each multi-valued field long enough for its users' values, up to
    /// `max_tokens`; a listed field keeps at least its listed length, so data within the listed
    /// lengths is read exactly as the list reads it. Id-like fields are not added.
    pub fn with_every_field(
        &self,
        seen: &[FieldSeen],
        max_tokens: usize,
    ) -> (FieldSpec, FieldsAdded) {
        let mut spec = self.clone();
        let mut added = FieldsAdded::default();
        let by_name: HashMap<&str, &FieldSeen> =
            seen.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut clip = |name: &str, max_len: usize| {
            if max_len > max_tokens {
                added.clipped.push((name.to_string(), max_len));
            }
            max_len.min(max_tokens)
        };
        let mut longer = Vec::new();
        for (name, len) in &mut spec.user_multi {
            if let Some(s) = by_name.get(name.as_str()).filter(|s| s.max_len > *len) {
                let new = clip(name, s.max_len).max(*len);
                if new > *len {
                    longer.push((name.clone(), *len, new));
                    *len = new;
                }
            }
        }
        let listed = self.user_names();
        let (mut single, mut multi, mut id_like) = (Vec::new(), Vec::new(), Vec::new());
        for s in seen.iter().filter(|s| !listed.contains(s.name.as_str())) {
            if s.is_id_like() {
                id_like.push(s.name.clone());
            } else if s.max_len > 1 {
                multi.push((s.name.clone(), clip(&s.name, s.max_len)));
            } else {
                single.push(s.name.clone());
            }
        }
        added.longer = longer;
        added.single = single;
        added.multi = multi;
        added.id_like = id_like;
        spec.user_single.extend(added.single.iter().cloned());
        spec.user_multi.extend(added.multi.iter().cloned());
        (spec, added)
    }
}
