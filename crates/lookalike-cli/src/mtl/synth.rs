//! `lookalike mtl synth`: synthetic multi-task data (`lookalike_data::mtl_synth`).

use anyhow::{Context, Result};
use lookalike_data::mtl::write_csv;
use lookalike_data::mtl_synth::{MtlScale, MtlSynthConfig, generate};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ScaleArg {
    /// 4,000 train and 1,000 test rows (tests).
    Tiny,
    /// 40,000 and 10,000 (the bundled default's size).
    Demo,
    /// 1,000,000 and 250,000.
    Large,
}

#[derive(clap::Args)]
pub struct Args {
    /// Folder to write train.csv and test.csv into.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = ScaleArg::Demo)]
    scale: ScaleArg,
    #[arg(long, default_value_t = 2021)]
    seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    let start = Instant::now();
    let scale = match a.scale {
        ScaleArg::Tiny => MtlScale::Tiny,
        ScaleArg::Demo => MtlScale::Demo,
        ScaleArg::Large => MtlScale::Large,
    };
    let config = MtlSynthConfig::new(scale, a.seed);
    let ((train, train_ids), (test, test_ids)) = generate(&config);
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    write_csv(&a.out.join("train.csv"), &train, &train_ids)?;
    write_csv(&a.out.join("test.csv"), &test, &test_ids)?;
    println!("{}", super::describe("train.csv", &train));
    println!("{}", super::describe("test.csv", &test));
    println!(
        "wrote {} ({} users, {} items) in {:.1} s",
        a.out.display(),
        config.users,
        config.items,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
