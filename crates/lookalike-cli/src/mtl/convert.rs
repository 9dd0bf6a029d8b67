//! `lookalike mtl convert`: a country's original Tianchi AliExpress files → MTReclib's layout.

use anyhow::Result;
use lookalike_data::mtl::convert_tianchi;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Country {
    Nl,
    Es,
    Fr,
    Us,
}

#[derive(clap::Args)]
pub struct Args {
    /// Folder with `{cc}_user_{train,test}.csv` and `{cc}_item_{train,test}.csv` (the unzipped
    /// `aliexpress_{CC}_datasets.zip`; `.csv.gz` works too).
    #[arg(long)]
    tianchi: PathBuf,
    #[arg(long, value_enum)]
    country: Country,
    /// Folder to write train.csv and test.csv into.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let start = Instant::now();
    let cc = format!("{:?}", a.country).to_uppercase();
    let c = convert_tianchi(&a.tianchi, &cc, &a.out)?;
    println!(
        "{cc}: {} train and {} test rows written to {} in {:.1} s ({} item rows without a user row dropped, as an inner join does)",
        c.train_rows,
        c.test_rows,
        a.out.display(),
        start.elapsed().as_secs_f64(),
        c.unmatched
    );
    Ok(())
}
