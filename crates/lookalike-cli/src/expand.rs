//! `lookalike expand`: the online stage in one step, `finetune` then `score` without writing the
//! campaign's model in between.

use crate::finetune::{self, Campaign};
use crate::score::{self, Size};
use anyhow::Result;
use lookalike_core::expansion::Shard;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    campaign: Campaign,
    #[command(flatten)]
    size: Size,
    /// Output CSV (`uid,score`, best first, seeds excluded).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    a.size.check()?;
    let start = Instant::now();
    let tuned = finetune::tune(&a.campaign)?;
    let campaign = tuned.header.campaign.as_ref().expect("a tuned campaign");
    let seeds: HashSet<u64> = tuned.seeds.uids.iter().copied().collect();
    let k = a.size.k(tuned.candidates);
    let s = score::score_pool(
        &tuned.model,
        &campaign.ad,
        &tuned.header.schema,
        // The pool file `finetune` resolved and read.
        std::path::Path::new(&campaign.pool),
        &seeds,
        Shard::ALL,
        k,
    )?;
    score::write_audience(&a.out, &s.audience)?;
    println!(
        "scored {} candidates in {:.1} s ({:.0} users/s)",
        s.scored,
        s.seconds,
        s.scored as f64 / s.seconds.max(1e-9)
    );
    println!(
        "wrote {}: top {} users ({:.2} % of {} candidates, seeds excluded), score cut-off {:.4}; total {:.1} s",
        a.out.display(),
        s.audience.len(),
        s.audience.len() as f64 * 100.0 / s.scored.max(1) as f64,
        s.scored,
        s.audience.last().map_or(0.0, |x| x.score),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
