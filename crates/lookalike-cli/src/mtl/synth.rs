//! `lookalike mtl synth`: synthetic multi-task data (`lookalike_data::mtl_synth`).

use anyhow::{Context, Result, bail};
use lookalike_data::mtl::write_csv;
use lookalike_data::mtl_synth::{MtlScale, MtlSynthConfig, generate};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ScaleArg {
    /// 4,000 train and 1,000 test rows (tests).
    Tiny,
    /// 80,000 and 20,000 rows of 1,500 users and 500 items, CTCVR about 0.4 % (seed 2021: the
    /// built-in default of `mtl train` and `mtl bench`).
    Demo,
    /// 1,000,000 and 250,000 rows of 120,000 users and 30,000 items.
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
    /// Users [default: the scale's].
    #[arg(long)]
    users: Option<usize>,
    /// Items [default: the scale's].
    #[arg(long)]
    items: Option<usize>,
    /// Training rows [default: the scale's].
    #[arg(long)]
    train_rows: Option<usize>,
    /// Test rows [default: the scale's].
    #[arg(long)]
    test_rows: Option<usize>,
    /// Share of impressions clicked [default: 0.04].
    #[arg(long)]
    ctr: Option<f64>,
    /// Share of clicks converted [default: the scale's, 0.1 for demo, 0.06 otherwise].
    #[arg(long)]
    cvr: Option<f64>,
    /// How much of the conversion affinity is the click affinity, 0 to 1 [default: 0.6].
    #[arg(long)]
    shared: Option<f64>,
}

pub fn run(a: Args) -> Result<()> {
    let start = Instant::now();
    let scale = match a.scale {
        ScaleArg::Tiny => MtlScale::Tiny,
        ScaleArg::Demo => MtlScale::Demo,
        ScaleArg::Large => MtlScale::Large,
    };
    let mut config = MtlSynthConfig::new(scale, a.seed);
    config.users = a.users.unwrap_or(config.users);
    config.items = a.items.unwrap_or(config.items);
    config.train_rows = a.train_rows.unwrap_or(config.train_rows);
    config.test_rows = a.test_rows.unwrap_or(config.test_rows);
    config.ctr = a.ctr.unwrap_or(config.ctr);
    config.cvr = a.cvr.unwrap_or(config.cvr);
    config.shared = a.shared.unwrap_or(config.shared);
    if config.users == 0 || config.items == 0 || config.train_rows == 0 {
        bail!("--users, --items and --train-rows must be at least 1");
    }
    for (name, v) in [("--ctr", config.ctr), ("--cvr", config.cvr)] {
        if !(v > 0.0 && v < 1.0) {
            bail!("{name} must lie strictly between 0 and 1, not {v}");
        }
    }
    if !(0.0..=1.0).contains(&config.shared) {
        bail!("--shared must lie in [0, 1], not {}", config.shared);
    }
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
