//! `lookalike merge`: join the audiences that `lookalike score --shard I/N` wrote for the parts of a
//! pool into the one list the whole pool gives (the same order: score, then uid).

use crate::score::write_audience;
use anyhow::{Context, Result, bail};
use lookalike_core::online::{Scored, TopK};
use lookalike_data::columnar;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// The parts' audiences (`uid,score` CSV, or Parquet by extension).
    #[arg(required = true)]
    parts: Vec<PathBuf>,
    /// Users to keep [default: as many as the largest part holds, which is K when `score` ran with the
    /// same --top or --audience-pct on every part].
    #[arg(long)]
    top: Option<usize>,
    /// Output: CSV, or Parquet when the name ends in `.parquet`.
    #[arg(long)]
    out: PathBuf,
}

/// One part's audience: `uid,score` CSV or Parquet (by extension).
fn read_part(path: &Path) -> Result<Vec<Scored>> {
    if columnar::is_parquet(path) {
        return Ok(columnar::read_audience(path)?);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim() == "uid,score" => {}
        _ => bail!("{}:1: expected the header `uid,score`", path.display()),
    }
    let mut part = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |field: &str| format!("{}:{}: field `{field}`: {line:?}", path.display(), i + 1);
        let (u, s) = line.split_once(',').with_context(|| bad("score"))?;
        let uid: u64 = u.trim().parse().with_context(|| bad("uid"))?;
        let score: f32 = s.trim().parse().with_context(|| bad("score"))?;
        if !score.is_finite() {
            bail!("{}", bad("score"));
        }
        part.push(Scored { uid, score });
    }
    Ok(part)
}

pub fn run(a: Args) -> Result<()> {
    let mut parts = Vec::new();
    for path in &a.parts {
        parts.push(read_part(path)?);
    }
    let k = a
        .top
        .unwrap_or_else(|| parts.iter().map(Vec::len).max().unwrap_or(0));
    let mut top = TopK::new(k);
    let mut seen = std::collections::HashSet::new();
    for s in parts.into_iter().flatten() {
        if !seen.insert(s.uid) {
            bail!(
                "uid {} is in more than one part: were the parts scored from one pool with --shard I/N?",
                s.uid
            );
        }
        top.offer(s);
    }
    let audience = top.into_sorted();
    write_audience(&a.out, &audience)?;
    println!(
        "merged {} parts: wrote {}, top {} users",
        a.parts.len(),
        a.out.display(),
        audience.len()
    );
    Ok(())
}
