//! `lookalike convert`: a user file between the Tencent text layout and Parquet (by extension).

use anyhow::{Result, bail};
use lookalike_data::columnar;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The user file to read: `userFeature.data` (maybe `.gz`) or a `.parquet` pool.
    #[arg(long)]
    from: PathBuf,
    /// The file to write, in the other format.
    #[arg(long)]
    to: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let start = Instant::now();
    let users = match (columnar::is_parquet(&a.from), columnar::is_parquet(&a.to)) {
        (false, true) => columnar::text_to_parquet(&a.from, &a.to)?,
        (true, false) => columnar::parquet_to_text(&a.from, &a.to)?,
        _ => bail!(
            "--from {} --to {}: one of the two must be a .parquet file and the other a text user file",
            a.from.display(),
            a.to.display()
        ),
    };
    let size = |p: &PathBuf| std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6);
    println!(
        "converted {} users: {} ({:.1} MB) → {} ({:.1} MB) in {:.1} s",
        users,
        a.from.display(),
        size(&a.from),
        a.to.display(),
        size(&a.to),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
