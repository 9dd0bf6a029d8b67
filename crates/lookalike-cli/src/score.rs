//! `lookalike score`: the second half of the online stage. Rank a pool with a campaign's fine-tuned
//! model (`lookalike finetune`): the pool is streamed in pieces of a few blocks and only the best K
//! users are kept, so memory does not grow with the pool. `--shard I/N` scores one part of a split
//! pool; `lookalike merge` joins the parts' lists into the one the whole pool gives.

use crate::finetune::read_seeds;
use crate::{BackendArg, backend, progress};
use anyhow::{Context, Result, bail};
use lookalike_core::burn::tensor::Device;
use lookalike_core::data::UserTable;
use lookalike_core::expansion::{PoolScorer, Shard, score_into};
use lookalike_core::model::MetaHeac;
use lookalike_core::online::{Scored, TopK, audience_size};
use lookalike_core::record::{self, RecordHeader};
use lookalike_data::{columnar, pool};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How many users an audience holds.
#[derive(clap::Args)]
pub struct Size {
    /// Audience size as a percentage of the candidates (the pool less the excluded users; with
    /// --shard, of the whole pool's candidates, so the merged parts give the same list).
    #[arg(long, default_value_t = 5.0, conflicts_with = "top")]
    pub audience_pct: f64,
    /// Or an exact number of users.
    #[arg(long)]
    pub top: Option<usize>,
}

impl Size {
    pub fn check(&self) -> Result<()> {
        if !(self.audience_pct > 0.0 && self.audience_pct <= 100.0) {
            bail!("--audience-pct must be in (0, 100]");
        }
        Ok(())
    }

    /// K for `candidates` users.
    pub fn k(&self, candidates: usize) -> usize {
        match self.top {
            Some(k) => k.min(candidates),
            None => audience_size(candidates, self.audience_pct),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// A campaign's model record (`lookalike finetune`).
    #[arg(long)]
    model: PathBuf,
    /// The pool: a raw directory (its userFeature.data, or userFeature.parquet) or a user file, text or
    /// Parquet (by extension).
    #[arg(long)]
    pool: PathBuf,
    /// Users to leave out of the audience, e.g. the seed list (same format).
    #[arg(long)]
    exclude: Option<PathBuf>,
    #[command(flatten)]
    size: Size,
    /// Score only part I of N of the pool (users assigned by a hash of their uid), e.g. one per machine.
    #[arg(long, default_value = "0/1")]
    shard: Shard,
    /// Output: `uid,score` best first, CSV (or Parquet when the name ends in `.parquet`).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    backend: BackendArg,
}

/// What a scoring pass did.
pub struct Scoring {
    pub audience: Vec<Scored>,
    pub scored: usize,
    pub seconds: f64,
}

/// Streams the pool at `user_path` through `model`, keeping the best `k` users of `shard` that
/// `exclude` does not hold.
pub fn score_pool(
    model: &MetaHeac,
    ad: &[u32],
    schema: &lookalike_core::schema::Schema,
    user_path: &Path,
    exclude: &HashSet<u64>,
    shard: Shard,
    k: usize,
) -> Result<Scoring> {
    let start = Instant::now();
    let scorer = PoolScorer::new(model, ad);
    let mut top = TopK::new(k);
    let mut scored = 0;
    let bar = progress::bytes("scoring the pool");
    let keep = |uid| shard.contains(uid) && !exclude.contains(&uid);
    pool::stream_users(
        user_path,
        schema,
        &keep,
        &mut |b| bar.set_position(b),
        &mut |t: UserTable| -> Result<()> {
            scored += score_into(&scorer, &t, &mut top)?;
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    Ok(Scoring {
        audience: top.into_sorted(),
        scored,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Writes the audience best first, atomically: `uid,score` CSV, or Parquet (`uid` UInt64, `score`
/// Float32) when `out` ends in `.parquet`. CSV scores are written in full (shortest round-trip form),
/// so lists merged from parts order exactly as the whole pool's.
pub fn write_audience(out: &Path, audience: &[Scored]) -> Result<()> {
    if columnar::is_parquet(out) {
        columnar::write_audience(out, audience)?;
        return Ok(());
    }
    lookalike_data::atomic::write_atomic(out, |w| {
        writeln!(w, "uid,score")?;
        for s in audience {
            writeln!(w, "{},{}", s.uid, s.score)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// A campaign's model record (`lookalike finetune`) on `device`; a general model is refused.
pub fn load_campaign(path: &Path, device: &Device) -> Result<(RecordHeader, MetaHeac)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (header, model) =
        record::from_bytes(&bytes, device).with_context(|| format!("{}", path.display()))?;
    if header.campaign.is_none() {
        bail!(
            "{}: a general model, not a campaign's; fine-tune it first (`lookalike finetune`)",
            path.display()
        );
    }
    Ok((header, model))
}

pub fn run(a: Args) -> Result<()> {
    a.size.check()?;
    let start = Instant::now();
    let (header, model) = load_campaign(&a.model, &backend(a.backend)?)?;
    let campaign = header.campaign.as_ref().expect("a campaign's model");
    let user_path = pool::user_file(&a.pool)?;
    let exclude: HashSet<u64> = match &a.exclude {
        Some(p) => read_seeds(p)?.uids.into_iter().collect(),
        None => HashSet::new(),
    };
    let k = match a.size.top {
        Some(k) => k,
        // The whole pool's candidates, whatever the shard, so every part keeps the same K.
        None => a.size.k(pool::count_users(&user_path, &|uid| {
            exclude.contains(&uid)
        })?),
    };
    let s = score_pool(
        &model,
        &campaign.ad,
        &header.schema,
        &user_path,
        &exclude,
        a.shard,
        k,
    )?;
    write_audience(&a.out, &s.audience)?;
    println!(
        "scored {} users{} in {:.1} s ({:.0} users/s); wrote {}: top {} users, score cut-off {:.4}; total {:.1} s",
        s.scored,
        if a.shard.count > 1 {
            format!(" (shard {}/{})", a.shard.index, a.shard.count)
        } else {
            String::new()
        },
        s.seconds,
        s.scored as f64 / s.seconds.max(1e-9),
        a.out.display(),
        s.audience.len(),
        s.audience.last().map_or(0.0, |x| x.score),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
